"""Periods in the workspace timezone, estimates against published prices, billing/ledger merge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tools.cost.estimate import pod_estimate, rate, serverless_estimate
from tools.cost.periods import resolve_period
from tools.cost.spend import BillingLine, DeploymentInfo, EstimateLine, merge
from tools.errors import InvalidInput

# Wednesday 2026-11-25 12:00 in Tokyo (UTC+9)
WED_NOON_TOKYO = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def test_this_week_on_a_wednesday_in_tokyo_starts_monday_midnight_tokyo() -> None:
    p = resolve_period("this week", now=WED_NOON_TOKYO, tz="Asia/Tokyo")
    assert p.start == datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # Mon 23 Nov 00:00 JST
    assert p.end == WED_NOON_TOKYO
    assert p.full_end == datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
    assert p.describe().startswith("Mon 23 Nov 00:00")


@pytest.mark.parametrize(
    ("word", "start", "end"),
    [
        ("today", datetime(2026, 11, 24, 15, tzinfo=UTC), WED_NOON_TOKYO),
        (
            "yesterday",
            datetime(2026, 11, 23, 15, tzinfo=UTC),
            datetime(2026, 11, 24, 15, tzinfo=UTC),
        ),
        (
            "last week",
            datetime(2026, 11, 15, 15, tzinfo=UTC),
            datetime(2026, 11, 22, 15, tzinfo=UTC),
        ),
        ("this month", datetime(2026, 10, 31, 15, tzinfo=UTC), WED_NOON_TOKYO),
        (
            "last month",
            datetime(2026, 9, 30, 15, tzinfo=UTC),
            datetime(2026, 10, 31, 15, tzinfo=UTC),
        ),
        ("last 7 days", datetime(2026, 11, 18, 15, tzinfo=UTC), WED_NOON_TOKYO),
        (
            "2026-11-01..2026-11-02",
            datetime(2026, 10, 31, 15, tzinfo=UTC),
            datetime(2026, 11, 2, 15, tzinfo=UTC),
        ),
    ],
)
def test_period_words_in_tokyo(word: str, start: datetime, end: datetime) -> None:
    p = resolve_period(word, now=WED_NOON_TOKYO, tz="Asia/Tokyo")
    assert (p.start, p.end) == (start, end)


def test_periods_across_the_berlin_dst_change() -> None:
    # Clocks went back on Sunday 2026-10-25 03:00 CEST → 02:00 CET: that day has 25 hours.
    now = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)
    day = resolve_period("2026-10-25", now=now, tz="Europe/Berlin")
    assert day.start == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # midnight CEST
    assert day.end == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # midnight CET
    assert day.hours == 25
    week = resolve_period("last week", now=now, tz="Europe/Berlin")
    assert week.start == datetime(2026, 10, 18, 22, 0, tzinfo=UTC)
    assert week.end == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)
    assert week.hours == 7 * 24 + 1
    this_week = resolve_period("this week", now=now, tz="Europe/Berlin")
    assert this_week.start == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # Monday 00:00 CET
    # Spring forward: 2026-03-29 has 23 hours.
    spring = resolve_period("2026-03-29", now=now, tz="Europe/Berlin")
    assert spring.hours == 23


def test_previous_period_covers_the_same_elapsed_span() -> None:
    p = resolve_period("this week", now=WED_NOON_TOKYO, tz="Asia/Tokyo")
    prev = p.previous()
    assert prev.start == p.start - timedelta(days=7)
    assert prev.end - prev.start == p.end - p.start


def test_bad_period_names_the_forms() -> None:
    with pytest.raises(InvalidInput) as err:
        resolve_period("fortnight", now=WED_NOON_TOKYO, tz="UTC")
    assert "this week" in str(err.value) and "2026-11-01..2026-11-15" in str(err.value)
    with pytest.raises(InvalidInput, match="Unknown timezone"):
        resolve_period("today", now=WED_NOON_TOKYO, tz="Mars/Olympus")


def test_ada24_flex_estimate_equals_published_price() -> None:
    est = serverless_estimate(pool="ADA_24", flex_per_hour=Decimal("0.00031") * 3600)
    assert est.per_hour == Decimal("1.116")
    assert rate(est.per_hour) == "$1.116"
    assert est.per_second == Decimal("0.00031")
    two = serverless_estimate(
        pool="ADA_24", flex_per_hour=Decimal("1.116"), gpu_count=2, workers_min=1, workers_max=1
    )
    # always-on = list price × hours (issue 16: the unpublished ~30 % "active" rate is gone)
    assert two.monthly == Decimal("0.00031") * 3600 * 2 * 730
    pod = pod_estimate(gpu="NVIDIA GeForce RTX 4090", per_gpu_hour=Decimal("0.44"))
    assert pod.monthly == Decimal("321.20")


def _summary(billing, estimates, agent=Decimal(0)):
    period = resolve_period("today", now=datetime(2026, 11, 25, 10, 30, tzinfo=UTC), tz="UTC")
    deps = [
        DeploymentInfo(1, "qwen", "alice", "ADA_24", ("ep1", "tpl1")),
        DeploymentInfo(2, "llama", "bob", "AMPERE_80", ("ep2",)),
    ]
    return merge(
        period=period, deployments=deps, billing=billing, estimates=estimates, agent_total=agent
    ), {d.id: d for d in deps}


def test_billing_wins_per_hour_and_estimates_fill_the_lag() -> None:
    h = lambda n: datetime(2026, 11, 25, n, tzinfo=UTC)  # noqa: E731
    billing = [
        BillingLine("ep1", h(8), Decimal("1.11")),
        BillingLine("ep1", h(9), Decimal("0.57")),
        BillingLine("ep2", h(9), Decimal("2.74")),
        BillingLine("someone-elses-endpoint", h(9), Decimal("99")),
    ]
    estimates = [
        EstimateLine(1, h(8), Decimal("1.00")),  # billed: ignored
        EstimateLine(1, h(10), Decimal("0.40")),  # not billed yet: counted
        EstimateLine(2, h(10), Decimal("1.37")),
    ]
    s, deps = _summary(billing, estimates, agent=Decimal("0.12"))
    assert s.billed == Decimal("4.42")  # exactly the sum of this org's billing records
    assert s.estimated == Decimal("1.77")
    assert s.total == Decimal("6.31")
    by_user = s.group("user", deps)
    assert by_user[0] == ("bob", Decimal("4.11"), True)
    assert by_user[1] == ("alice", Decimal("2.08"), True)
    by_day = s.group("day", deps)
    assert by_day == [("2026-11-25", Decimal("6.19"), True)]
    assert s.forecast() > s.total


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.00031"), "$0.00031/s"),
        (Decimal("0.24") / 3600, "$0.0000667/s"),  # a pod's $0.24/h, not 30 digits
        (Decimal("4.896") / 3600, "$0.00136/s"),
        (Decimal("0"), "$0/s"),
    ],
)
def test_per_second_prices_show_three_significant_digits(value: Decimal, shown: str) -> None:
    from tools.cost.estimate import per_second

    assert per_second(value) == shown
