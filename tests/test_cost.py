"""Spend, ledger accrual, budgets and the hard cap through the bot and the sandbox billing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.testing import BotHarness, running_bot
from storage import ledger
from tools.cost.accrual import BudgetStatus, accrue_all, budget_period, new_threshold_alerts
from tools.cost.billing import compute_spend
from tools.cost.periods import resolve_period


@pytest.fixture
async def bot(tmp_path: Path):
    async with running_bot(tmp_path) as harness:
        yield harness


async def deploy(bot: BotHarness, user: str = "alice") -> None:
    ask = await bot.send("/deploy qwen 0.5b", user=user)
    done = await bot.approve(ask.approval_id, user=user)
    assert done.ok, done.as_plain_text()


async def keep_busy(bot: BotHarness, minutes: int) -> None:
    """Chat every minute so the worker stays up, accruing the ledger as the scheduler would."""
    for _ in range(minutes):
        bot.clock.advance(50)  # under the 60 s idle timeout: the worker stays up
        await bot.send("/chat 1 ping", user="alice")
        await accrue_all(bot.services)


async def test_spend_totals_equal_billing_and_never_double_count(bot: BotHarness) -> None:
    await deploy(bot)
    await keep_busy(bot, 90)
    org = bot.ctx(user="alice").org_id
    period = resolve_period("today", now=bot.clock.now(), tz="UTC")
    summary, note = await compute_spend(bot.services, org_id=org, period=period)
    assert note is None
    client = bot.services.runpod_for(org)
    billing = await client.billing_serverless(period.start, period.end, bucket_size="hour")
    assert summary.billed == sum((r.total_amount for r in billing.records), Decimal(0))
    assert summary.billed > 0
    # the ledger estimated the same hours; billing replaced them instead of adding to them
    with bot.services.db.session() as s:
        estimated = ledger.total(s, org_id=org, start=period.start, end=period.end, kind="gpu")
    assert estimated > 0
    assert summary.estimated == 0
    assert summary.gpu_total == summary.billed
    # estimate close to billing: same price, same uptime (sampling error under 10%)
    assert abs(estimated - summary.billed) / summary.billed < Decimal("0.1")
    reply = await bot.send("/spend today --by user", user="alice")
    text = reply.as_plain_text()
    assert "alice" in text and "billed by RunPod" in text


async def test_estimate_fills_hours_billing_has_not_reported(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        bot.cockpit.runpod.emulator.state.billing_lag = timedelta(hours=2)
        await deploy(bot)
        await keep_busy(bot, 30)
        org = bot.ctx(user="alice").org_id
        period = resolve_period("today", now=bot.clock.now(), tz="UTC")
        summary, _ = await compute_spend(bot.services, org_id=org, period=period)
        assert summary.billed == 0 and summary.estimated > 0
        reply = await bot.send("/spend today", user="alice")
        assert "incl. estimate" in reply.as_plain_text()


async def test_budget_alert_fires_once_per_threshold_per_period(bot: BotHarness) -> None:
    assert (await bot.send("/budget set 10 --weekly", user="alice", role="admin")).ok
    org = bot.ctx(user="alice").org_id
    now = bot.clock.now()
    with bot.services.db.session() as s:
        budget = ledger.get_budget(s, org_id=org)
        ledger.add(
            s,
            org_id=org,
            kind="agent",
            start=now - timedelta(hours=1),
            end=now,
            amount=Decimal("8.50"),
            now=now,
        )
    assert budget is not None
    period = budget_period(budget, now=now, tz="UTC")

    async def sweep() -> list[str]:
        spend, _ = await compute_spend(bot.services, org_id=org, period=period)
        status = BudgetStatus(budget=budget, period=period, spent=spend.total)
        return [a.title for a in await new_threshold_alerts(bot.services, status)]

    first = await sweep()
    assert first == [
        "Spend reached 50% of the weekly budget",
        "Spend reached 80% of the weekly budget",
    ]
    assert await sweep() == []  # the next sweep says nothing new


async def test_hard_cap_needs_an_admin_and_shows_the_numbers(bot: BotHarness) -> None:
    await bot.send("/whoami", user="owner")  # first user owns the org
    assert (await bot.send("/budget set 5 --monthly --hard-cap", user="owner")).ok
    org = bot.ctx(user="owner").org_id
    now = bot.clock.now()
    with bot.services.db.session() as s:
        ledger.add(
            s,
            org_id=org,
            kind="agent",
            start=now - timedelta(hours=1),
            end=now,
            amount=Decimal("4.90"),
            now=now,
        )
    ask = await bot.send("/deploy qwen 7b --workers-min 1", user="mia", role="member")
    card = ask.as_plain_text()
    assert "Over the hard cap" in card and "$5.00" in card and "$4.90 is spent" in card
    assert "only an admin can approve" in (ask.footer or "")
    own = await bot.approve(ask.approval_id, user="mia", role="member")
    assert not own.ok and "needs approval by an admin" in own.text
    admin = await bot.approve(ask.approval_id, user="owner")
    assert admin.ok, admin.as_plain_text()


async def test_budget_commands_and_roles(bot: BotHarness) -> None:
    refused = await bot.send("/budget set 100", user="mia", role="member")
    assert not refused.ok and "admin" in refused.text
    assert (await bot.send("/budget set 100 --weekly --auto-stop", user="boss", role="admin")).ok
    shown = (await bot.send("/budget", user="mia", role="member")).as_plain_text()
    assert "Weekly budget $100.00" in shown and "Auto-stop: on" in shown


async def test_spend_chart_is_a_png_file(bot: BotHarness) -> None:
    reply = await bot.send("/spend this week --chart", user="alice")
    assert reply.image is not None
    data = Path(reply.image.path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


async def test_bad_period_changes_nothing(bot: BotHarness) -> None:
    reply = await bot.send("/spend fortnight", user="alice")
    assert not reply.ok and "last 7 days" in reply.text
