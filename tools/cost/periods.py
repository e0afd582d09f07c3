"""Period words ("this week", "last month", "2026-11-01..2026-11-15") resolved in a workspace's
timezone. Weeks start on Monday. Boundaries are local midnights converted to UTC, so a period
that spans a DST change is 1 hour shorter or longer in UTC, as the wall clock says."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tools.errors import InvalidInput

PERIOD_WORDS = (
    "today",
    "yesterday",
    "this week",
    "last week",
    "this month",
    "last month",
    "last 7 days",
)
DEFAULT_PERIOD = "this week"
_LAST_N_DAYS = re.compile(r"^(?:last|past)\s+(\d{1,3})\s+days?$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*(?:\.\.|to|–|-{1,2}>?)\s*(\d{4}-\d{2}-\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC; `full_end` is where the named period ends (for forecasts)."""

    label: str
    start: datetime
    end: datetime
    full_end: datetime
    tz: str

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def is_partial(self) -> bool:
        return self.end < self.full_end

    def previous(self) -> Period:
        """The period before, over the same elapsed span (a fair comparison for a partial
        period: this week so far against last week up to the same weekday and hour)."""
        zone = ZoneInfo(self.tz)
        local_start = self.start.astimezone(zone)
        full_local_days = (self.full_end.astimezone(zone).date() - local_start.date()).days
        prev_start_day = local_start.date() - _span_days(
            self.label, local_start.date(), full_local_days
        )
        prev_start = _local_midnight(prev_start_day, zone)
        prev_full_end = self.start
        elapsed = self.end - self.start
        return Period(
            label=f"previous {self.label}" if not self.label.startswith("previous") else self.label,
            start=prev_start,
            end=min(prev_start + elapsed, prev_full_end),
            full_end=prev_full_end,
            tz=self.tz,
        )

    def describe(self) -> str:
        zone = ZoneInfo(self.tz)
        s = self.start.astimezone(zone)
        e = self.end.astimezone(zone)
        return f"{s:%a %d %b %H:%M} – {e:%a %d %b %H:%M} {self.tz}"


def zone_for(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"Unknown timezone {tz!r}.", fix="Use an IANA name such as Europe/Berlin or Asia/Tokyo."
        ) from None


def resolve_period(text: str | None, *, now: datetime, tz: str) -> Period:
    """Turn words or ISO dates into a Period in `tz`. Raises InvalidInput naming the forms."""
    zone = zone_for(tz)
    word = " ".join((text or DEFAULT_PERIOD).lower().replace("_", " ").split())
    local_now = now.astimezone(zone)
    today = local_now.date()
    mk = _Builder(now=now, zone=zone, tz=tz, label=word)
    if word == "today":
        return mk.days(today, 1)
    if word == "yesterday":
        return mk.days(today - timedelta(days=1), 1)
    if word == "this week":
        return mk.days(today - timedelta(days=today.weekday()), 7)
    if word == "last week":
        return mk.days(today - timedelta(days=today.weekday() + 7), 7)
    if word == "this month":
        return mk.between(today.replace(day=1), _next_month(today.replace(day=1)))
    if word == "last month":
        first = today.replace(day=1)
        prev_first = (first - timedelta(days=1)).replace(day=1)
        return mk.between(prev_first, first)
    m = _LAST_N_DAYS.match(word)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 366:
            raise InvalidInput("Use between 1 and 366 days.", fix="For example: last 30 days.")
        # Rolling window ending now, starting at local midnight n-1 days ago (today included).
        return mk.between(today - timedelta(days=n - 1), today + timedelta(days=1))
    m = _RANGE.match(word)
    if m:
        first, last = _parse_date(m.group(1)), _parse_date(m.group(2))
        if last < first:
            raise InvalidInput("The range ends before it starts.", fix="Write it as START..END.")
        return mk.between(first, last + timedelta(days=1), label=f"{first}..{last}")
    if _DATE.match(word):
        day = _parse_date(word)
        return mk.days(day, 1, label=str(day))
    raise InvalidInput(
        f"I don't know the period {text!r}.",
        fix="Use one of: "
        + ", ".join(PERIOD_WORDS)
        + ", last N days, 2026-11-01, or 2026-11-01..2026-11-15.",
    )


@dataclass
class _Builder:
    now: datetime
    zone: ZoneInfo
    tz: str
    label: str

    def days(self, first: date, count: int, *, label: str | None = None) -> Period:
        return self.between(first, first + timedelta(days=count), label=label)

    def between(self, first: date, end_exclusive: date, *, label: str | None = None) -> Period:
        start = _local_midnight(first, self.zone)
        full_end = _local_midnight(end_exclusive, self.zone)
        end = min(full_end, self.now.astimezone(UTC))
        if end < start:
            end = start
        return Period(
            label=label or self.label, start=start, end=end, full_end=full_end, tz=self.tz
        )


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _span_days(label: str, start: date, full_days: int) -> timedelta:
    if label in ("this month", "last month"):
        prev_first = (start - timedelta(days=1)).replace(day=1)
        return start - prev_first
    return timedelta(days=max(full_days, 1))


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date.", fix="Write dates as YYYY-MM-DD.") from None
