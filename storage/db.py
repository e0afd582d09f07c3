"""Engine, sessions and migrations. SQLite by default, PostgreSQL via DATABASE_URL.

Storage work never runs on the event loop. Every unit of work goes through one bounded thread
pool per process (`Database.run` / `read` / `call`), sized with the connection pool so a thread
never waits for a connection:

    dep = await db.read(deployments.find, org_id=org, ref="3")      # fn(session, ...)
    await db.run(audit.record, org_id=org, ...)                    # one transaction, committed

Why an executor and not SQLAlchemy's asyncio extension: the storage functions stay the small,
synchronous, tested functions they are (≈100 call sites, several people editing them), and the
figures (benchmarks/README.md, "Storage off the event loop") show the loop, not the database, was
the bottleneck: moving the calls off the loop took 100 concurrent /status at PG + 5 ms from 36 s
to ~1 s with a loop stall under 50 ms. `session()` stays for code that already runs on a worker
thread (inside `run`/`call`) and for start-up, migrations and tests.

PostgreSQL round trips: no pre-ping per checkout (`pool_recycle` retires old connections and a
unit that meets a dropped connection is retried once on a fresh one); `read` runs in autocommit,
so a read pays no BEGIN/COMMIT. Every connection has a statement timeout and a connect timeout;
a unit that does not answer within `answer_seconds` raises `DatabaseUnavailable`, whose message
is what a person sees.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from prometheus_client import Counter, Histogram
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, create_engine

from storage.files import private_dir, private_file, tighten_if_exists

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Connections (and storage threads) per process. One number sizes both: a storage thread always
# finds a connection. 10 covers a web process at hundreds of commands/s (a /status holds a
# connection ~3 round trips) and a worker's sweeps; `COCKPIT_DB_POOL_SIZE` overrides it per
# process (see README, "Database connections"). SQLite gets one writer thread: it serialises
# writers anyway, and two threads upgrading read transactions to write ones would fail with
# SQLITE_BUSY instead of waiting.
DEFAULT_POOL_SIZE = 10
SQLITE_THREADS = 1
# Extra connections for code that still opens `session()` on its own thread (start-up,
# APScheduler's thread jobs) so it never steals one from the storage threads.
POOL_OVERFLOW = 5
POOL_RECYCLE_SECONDS = 300  # managed PostgreSQL and proxies drop idle connections after minutes
POOL_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_MS = 5_000
# How long a caller waits for one unit of work (queue + connect + statements) before it tells
# the person the database is not answering.
ANSWER_SECONDS = 8.0
DATABASE_DOWN_TEXT = (
    "The database is not answering, so nothing was done. Try again in a minute; if it keeps "
    "happening, an admin should check the database (`cockpit doctor`, /readyz)."
)

P = ParamSpec("P")
T = TypeVar("T")

DB_UNITS = Counter(
    "cockpit_db_units_total", "Storage units of work by kind and outcome", ["kind", "outcome"]
)
DB_UNIT_SECONDS = Histogram(
    "cockpit_db_unit_seconds",
    "Time from asking for a unit of work to its result (queue included)",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


DB_ON_LOOP = Counter(
    "cockpit_db_statements_on_event_loop_total",
    "SQL statements run on the event loop's thread (code not yet moved to Database.run/read)",
)
_ON_LOOP_SITES: set[str] = set()
_PROJECT = Path(__file__).resolve().parents[1]
_PROJECT_PREFIX = f"{_PROJECT}/"


def _on_loop_check(*_: Any) -> None:
    """Counts (and logs once per call site) a statement run on the event loop's thread: each
    one stalls Slack, Discord, the HTTP API and the scheduler for a database round trip."""
    if asyncio._get_running_loop() is None:
        return
    DB_ON_LOOP.inc()
    frames = [
        f"{Path(f.filename).relative_to(_PROJECT)}:{f.lineno}"
        for f in traceback.extract_stack(limit=40)
        if f.filename.startswith(_PROJECT_PREFIX)
        and "/.venv/" not in f.filename
        and not f.filename.endswith("storage/db.py")
    ]
    site = " < ".join(reversed(frames[-4:]))
    if site not in _ON_LOOP_SITES:
        _ON_LOOP_SITES.add(site)
        log.info("database statement on the event loop: %s", site)


def on_loop_sites() -> list[str]:
    """Call sites that ran SQL on the event loop so far in this process (benchmarks)."""
    return sorted(_ON_LOOP_SITES)


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or refused the connection. `str()` is the message a
    person sees; the cause is logged."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(DATABASE_DOWN_TEXT)
        self.detail = detail


def normalise_url(url: str) -> str:
    """Accept the URLs hosts hand out (`postgres://`, `postgresql://`) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def pool_size_from_env(default: int = DEFAULT_POOL_SIZE) -> int:
    raw = os.environ.get("COCKPIT_DB_POOL_SIZE", "").strip()
    return max(1, int(raw)) if raw.isdecimal() else default


class Database:
    """One engine and one storage thread pool per process. `run`/`read`/`call` are the async
    API; `session()` is a synchronous unit of work that commits on success."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        answer_seconds: float = ANSWER_SECONDS,
    ) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.answer_seconds = answer_seconds
        size = pool_size or pool_size_from_env()
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            _ensure_sqlite_dir(self.url)
            self.threads = SQLITE_THREADS
        else:
            self.threads = size
            kwargs.update(
                pool_pre_ping=False,
                pool_recycle=POOL_RECYCLE_SECONDS,
                pool_size=size,
                max_overflow=POOL_OVERFLOW,
                pool_timeout=POOL_TIMEOUT_SECONDS,
                connect_args={
                    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                    "options": f"-c statement_timeout={int(statement_timeout_ms)}",
                },
            )
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self._read_engine = self.engine
        else:
            # Reads (and `autocommit` units) need no transaction: no BEGIN/COMMIT round trips.
            # Their own pool, so a connection never switches between autocommit and
            # transactions (switching back costs a round trip on the next BEGIN).
            self._read_engine = create_engine(self.url, isolation_level="AUTOCOMMIT", **kwargs)
        for engine in {self.engine, self._read_engine}:
            event.listen(engine, "before_cursor_execute", _on_loop_check)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # -- synchronous unit of work ----------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A synchronous read for code already on a storage thread: no transaction on
        PostgreSQL, nothing written is kept."""
        with Session(self._read_engine, expire_on_commit=False) as s:
            yield s

    # -- off the event loop ----------------------------------------------------------------

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.threads, thread_name_prefix="cockpit-db"
                )
            return self._executor

    async def run(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(session, *args, **kwargs)` in one transaction on a storage thread; committed when
        it returns, rolled back when it raises."""
        return await self._submit("write", functools.partial(self._unit, fn, *args, **kwargs))

    async def read(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `run` for reads: no transaction on PostgreSQL (each statement sees committed
        data), so a one-query read is one round trip. Nothing `fn` writes is kept."""
        return await self._submit("read", functools.partial(self._read, fn, *args, **kwargs))

    async def autocommit(
        self, fn: Callable[Concatenate[Session, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `run` for a unit whose statements each stand on their own (a claim, then an
        audit row): on PostgreSQL each statement commits by itself, so the unit pays no
        BEGIN/COMMIT round trips; on SQLite it is one transaction, as in `run`."""
        bind = self.engine if self.is_sqlite else self._read_engine
        job = functools.partial(_retry_on_disconnect, bind, True, fn, args, kwargs)
        return await self._submit("write", job)

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Any synchronous function that opens `session()` itself, on a storage thread."""
        return await self._submit("call", functools.partial(fn, *args, **kwargs))

    async def ping(self, *, timeout: float = 2.0) -> None:
        """Raise DatabaseUnavailable unless `SELECT 1` answers within `timeout`."""

        def select_one(s: Session) -> None:
            s.execute(text("SELECT 1"))

        await self._submit("ping", functools.partial(self._read, select_one), timeout=timeout)

    async def _submit(self, kind: str, job: Callable[[], T], *, timeout: float | None = None) -> T:
        loop = asyncio.get_running_loop()
        started = loop.time()
        future = loop.run_in_executor(self.executor, job)
        try:
            result = await asyncio.wait_for(future, timeout or self.answer_seconds)
        except TimeoutError:
            DB_UNITS.labels(kind=kind, outcome="timeout").inc()
            log.warning("database unit (%s) did not answer in %.1f s", kind, loop.time() - started)
            raise DatabaseUnavailable(
                f"no answer in {timeout or self.answer_seconds:.0f} s"
            ) from None
        except (OperationalError, PoolTimeout) as exc:
            DB_UNITS.labels(kind=kind, outcome="unavailable").inc()
            log.warning("database unavailable: %s", exc.__class__.__name__, exc_info=True)
            raise DatabaseUnavailable(exc.__class__.__name__) from exc
        except BaseException:
            DB_UNITS.labels(kind=kind, outcome="error").inc()
            raise
        DB_UNITS.labels(kind=kind, outcome="ok").inc()
        DB_UNIT_SECONDS.labels(kind=kind).observe(loop.time() - started)
        return result

    def _unit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return _retry_on_disconnect(self.engine, True, fn, args, kwargs)

    def _read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return _retry_on_disconnect(self._read_engine, False, fn, args, kwargs)

    # -- schema ----------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply migrations up to head (idempotent)."""
        from alembic import command

        command.upgrade(self.alembic_config(), "head")

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def is_current(self) -> bool:
        return self.current_revision() == self.head_revision()

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        cfg.attributes["engine"] = self.engine
        return cfg

    def dispose(self) -> None:
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()


def _once(bind: Engine, commit: bool, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    with Session(bind, expire_on_commit=False) as s:
        try:
            result = fn(s, *args, **kwargs)
            if commit:
                s.commit()
            # A read just closes: close() detaches what it loaded without expiring it.
            return result
        except BaseException:
            s.rollback()
            raise


def _retry_on_disconnect(
    bind: Engine, commit: bool, fn: Callable[..., T], args: Any, kwargs: Any
) -> T:
    """Without a pre-ping, a pooled connection the server (or a proxy) dropped is found by the
    first statement; SQLAlchemy then invalidates the pool's old connections and the unit is run
    again once on a fresh one. A unit whose COMMIT was cut off may run twice: units are small
    and the dispatcher's writes are guarded by unique keys."""
    try:
        return _once(bind, commit, fn, args, kwargs)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.info("database connection was dropped; retrying once on a new one")
        return _once(bind, commit, fn, args, kwargs)


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _ensure_sqlite_dir(url: str) -> None:
    """The database file holds encrypted credentials, audit and memory: create its folder (if
    missing) 0700 and the file 0600 before SQLite does (it would use 0644). SQLite gives the
    -wal/-shm files the database file's mode; ones left looser by an older version are
    tightened."""
    path = url.split("///", 1)[-1] if "///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    db_file = Path(path).expanduser()
    if not db_file.parent.exists():
        private_dir(db_file.parent)
    private_file(db_file)
    for suffix in SQLITE_SIDE_FILES:
        tighten_if_exists(db_file.with_name(db_file.name + suffix))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the web and worker processes read while one writes; FKs are off by default.
    cur.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL is safe (only the newest commits can be lost on power failure) and saves
    # an fsync per commit, which keeps the event loop responsive under bursts.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
