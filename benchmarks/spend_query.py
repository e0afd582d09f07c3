"""Spend query benchmark: one organisation's spend over 1 M ledger rows < 200 ms.

Builds a ledger of 1,000,000 rows (storage.models.LedgerEntry, SQLAlchemy core `insert` with
executemany in chunks) for 20 organisations and 500 deployments over 90 days: hourly GPU
estimate rows per deployment (96 %) and hourly agent (Claude) usage rows per organisation (4 %).
Then it times the storage queries `tools.cost.billing.compute_spend` makes for one organisation
and "this month" (resolved by `tools.cost.periods.resolve_period`, as the tool does):
`storage.ledger.entries(kind="gpu")`, `storage.ledger.total(kind="agent")`, and both together
in one session (the spend query), 20 runs each after one warm-up, printing p50/p95/max.

SQLite runs on a temporary file migrated with `storage.db.Database(...).upgrade()`. When
COCKPIT_BENCH_POSTGRES_URL is set (a database the script may fill; its ledger is emptied
first), the same runs on PostgreSQL.

    .venv/bin/python benchmarks/spend_query.py [--rows 1000000] [--runs 20] [--sqlite-only]
        [--keep PATH]   # build the SQLite file at PATH once and reuse it on later runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Connection

from storage import ledger
from storage.db import Database
from storage.models import Deployment, LedgerEntry, Organization
from tools.cost.periods import resolve_period

BUDGET_MS = 200.0
DEFAULT_ROWS = 1_000_000
ORGS = 20
DEPLOYMENTS = 500
DAYS = 90
AGENT_SHARE = 0.04
DEFAULT_RUNS = 20
CHUNK = 20_000
NOW = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)  # late in the month: the largest "this month"
ORG_UNDER_TEST = 1
POSTGRES_ENV = "COCKPIT_BENCH_POSTGRES_URL"


# --- data ----------------------------------------------------------------------------------


def org_of(deployment_index: int) -> int:
    return deployment_index % ORGS + 1


def ledger_rows(rows: int) -> Iterator[dict[str, Any]]:
    """Hourly rows up to NOW's hour, in time order as the cost sweep writes them: each
    deployment runs a contiguous stretch of the 90 days (staggered starts), each organisation
    has agent usage in the most recent hours."""
    last_hour = NOW.replace(minute=0, second=0, microsecond=0)
    span = DAYS * 24
    first = last_hour - timedelta(hours=span - 1)
    agent_rows = int(rows * AGENT_SHARE)
    per_deployment = (rows - agent_rows) // DEPLOYMENTS
    per_org = agent_rows // ORGS
    assert per_deployment <= span and per_org <= span, "more rows than hours: raise DAYS"
    dep_from = [(d * 7) % (span - per_deployment + 1) for d in range(DEPLOYMENTS)]
    org_from = [max(span - per_org - o, 0) for o in range(ORGS)]
    prices = [Decimal("0.44") + Decimal(d % 9) * Decimal("0.31") for d in range(DEPLOYMENTS)]
    hour = timedelta(hours=1)
    for h in range(span):
        start = first + h * hour
        common = {"period_start": start, "period_end": start + hour, "created_at": start + hour}
        for d in range(DEPLOYMENTS):
            if dep_from[d] <= h < dep_from[d] + per_deployment:
                yield {
                    **common,
                    "org_id": org_of(d),
                    "deployment_id": d + 1,
                    "kind": "gpu",
                    "source": "estimate",
                    "amount": prices[d],
                    "user": f"user{d % 7}",
                    "gpu": "ADA_24",
                    "description": "uptime × price",
                }
        for o in range(ORGS):
            if org_from[o] <= h < org_from[o] + per_org:
                yield {
                    **common,
                    "org_id": o + 1,
                    "deployment_id": None,
                    "kind": "agent",
                    "source": "estimate",
                    "amount": Decimal("0.012345"),
                    "user": f"user{h % 7}",
                    "gpu": None,
                    "description": "claude usage",
                }


def chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def populate(db: Database, rows: int) -> float:
    """Fill an upgraded database; returns the seconds it took."""
    t0 = time.perf_counter()
    created = NOW - timedelta(days=DAYS + 1)
    with db.engine.begin() as conn:
        conn.execute(delete(LedgerEntry))
        conn.execute(delete(Deployment))
        conn.execute(delete(Organization))
        conn.execute(
            insert(Organization),
            [{"id": o + 1, "name": f"org-{o + 1:02d}", "created_at": created} for o in range(ORGS)],
        )
        conn.execute(
            insert(Deployment),
            [
                {
                    "id": d + 1,
                    "org_id": org_of(d),
                    "name": f"bench-{d + 1:03d}",
                    "model_id": "Qwen/Qwen3-8B",
                    "status": "healthy",
                    "gpu_pool": "ADA_24",
                    "price_per_hour": Decimal("0.44"),
                    "created_by": "bench",
                    "created_at": created,
                    "updated_at": created,
                }
                for d in range(DEPLOYMENTS)
            ],
        )
        for batch in chunks(ledger_rows(rows), CHUNK):
            conn.execute(insert(LedgerEntry), batch)
        if db.is_sqlite:
            conn.execute(text("ANALYZE"))
    if not db.is_sqlite:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE ledgerentry"))
    return time.perf_counter() - t0


def row_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(LedgerEntry)).scalar_one())


# --- timing --------------------------------------------------------------------------------


@dataclass
class Timing:
    label: str
    samples_ms: list[float]
    result: str

    def pct(self, p: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)


def timed(label: str, runs: int, fn: Callable[[], str]) -> Timing:
    fn()  # warm-up: connection, statement cache, OS page cache
    samples, result = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return Timing(label, samples, result)


def measure(db: Database, runs: int) -> list[Timing]:
    period = resolve_period("this month", now=NOW, tz="UTC")
    window = {"org_id": ORG_UNDER_TEST, "start": period.start, "end": period.end}

    def gpu_entries() -> str:
        with db.session() as s:
            rows = ledger.entries(s, **window, kind="gpu")
        return f"{len(rows)} rows"

    def agent_total() -> str:
        with db.session() as s:
            return f"${ledger.total(s, **window, kind='agent')}"

    def spend_query() -> str:  # what compute_spend asks storage, in its one session
        with db.session() as s:
            rows = ledger.entries(s, **window, kind="gpu")
            estimates = [(e.deployment_id, e.period_start, e.amount) for e in rows]
            agent = ledger.total(s, **window, kind="agent")
        return f"{len(estimates)} rows + ${agent}"

    return [
        timed("entries(kind=gpu)", runs, gpu_entries),
        timed("total(kind=agent)", runs, agent_total),
        timed("spend query (both)", runs, spend_query),
    ]


def query_plans(db: Database) -> list[str]:
    """How each engine answers the two queries (the index it uses)."""
    period = resolve_period("this month", now=NOW, tz="UTC")
    explain = "EXPLAIN QUERY PLAN" if db.is_sqlite else "EXPLAIN"
    sql = (
        f"{explain} SELECT deployment_id, period_start, amount FROM ledgerentry "
        "WHERE org_id = :o AND period_start >= :a AND period_start < :b AND kind = :k "
        "ORDER BY period_start"
    )
    plans = []
    with db.engine.connect() as conn:
        for kind in ("gpu", "agent"):
            params = {"o": ORG_UNDER_TEST, "a": period.start, "b": period.end, "k": kind}
            lines = [str(row[-1]) for row in conn.execute(text(sql), params)]
            plans.append(f"{kind}: {' / '.join(line.strip() for line in lines[:2])}")
    return plans


def run_engine(name: str, db: Database, rows: int, runs: int, reuse: bool) -> bool:
    db.upgrade()
    with db.engine.connect() as conn:
        have = row_count(conn)
    if reuse and have == rows:
        print(f"{name}: reusing {have:,} ledger rows")
    else:
        seconds = populate(db, rows)
        print(f"{name}: inserted {rows:,} ledger rows in {seconds:.1f} s")
    with db.engine.connect() as conn:
        have = row_count(conn)
    period = resolve_period("this month", now=NOW, tz="UTC")
    print(
        f"  {have:,} rows, {ORGS} organisations, {DEPLOYMENTS} deployments, {DAYS} days; "
        f"org {ORG_UNDER_TEST}, this month = {period.start:%Y-%m-%d} .. {period.end:%Y-%m-%d %H:%M}"
    )
    for plan in query_plans(db):
        print(f"  plan {plan}")
    timings = measure(db, runs)
    for t in timings:
        print(
            f"  {t.label:<20} p50 {t.p50:7.1f} ms  p95 {t.pct(95):7.1f} ms  "
            f"max {max(t.samples_ms):7.1f} ms  ({t.result})"
        )
    spend = timings[-1]
    ok = spend.pct(95) < BUDGET_MS
    print(f"  budget: spend query p95 < {BUDGET_MS:.0f} ms: {'OK' if ok else 'OVER BUDGET'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--keep", type=Path, help="SQLite file to build once and reuse")
    parser.add_argument("--sqlite-only", action="store_true", help=f"ignore ${POSTGRES_ENV}")
    args = parser.parse_args()

    ok = True
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        path = args.keep or Path(tmp) / "spend.db"
        db = Database(f"sqlite:///{path}")
        try:
            ok = run_engine("SQLite", db, args.rows, args.runs, reuse=args.keep is not None)
        finally:
            db.dispose()
    pg_url = os.environ.get(POSTGRES_ENV)
    if pg_url and not args.sqlite_only:
        db = Database(pg_url)
        try:
            ok = run_engine("PostgreSQL", db, args.rows, args.runs, reuse=False) and ok
        finally:
            db.dispose()
    elif not args.sqlite_only:
        print(f"PostgreSQL: skipped (set {POSTGRES_ENV} to a database this script may fill)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
