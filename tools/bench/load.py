"""The load generator: `concurrency` streams at a time until `requests` are done, each token
timed on the injectable clock. It knows nothing of RunPod: it gets a factory of streams of
chat deltas (the RunPod client's `stream_chat` / `stream_pod_chat`), so the same code drives
the real endpoint, the sandbox and `benchmarks/bench_client.py`."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.clock import Clock
from tools.errors import CockpitError, ProviderError, RateLimited

OOM_MARKERS = ("out of memory", "outofmemory", "cuda oom", "oom")


class Delta(Protocol):
    content: str

    @property
    def usage(self) -> Any: ...


StreamFactory = Callable[[], AsyncIterator[Any]]


@dataclass
class RequestResult:
    started: float
    first_token: float | None = None
    last_token: float | None = None
    chunks: int = 0  # content deltas received
    prompt_tokens: int = 0  # from the usage the server reported
    completion_tokens: int = 0
    error: str | None = None  # error kind: throttled | oom | server_error | client | timeout
    detail: str = ""
    cut_off: bool = False  # stopped by the duration limit or a cancel, not an error

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cut_off and self.first_token is not None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def inter_token(self) -> float | None:
        """Mean gap between tokens after the first (what vLLM calls TPOT)."""
        if self.first_token is None or self.last_token is None or self.chunks < 2:
            return None
        return (self.last_token - self.first_token) / (self.chunks - 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LevelResult:
    concurrency: int
    requests: list[RequestResult] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def wall_seconds(self) -> float:
        return max(self.ended - self.started, 0.0)

    @property
    def done(self) -> list[RequestResult]:
        return [r for r in self.requests if r.ok]

    @property
    def errors(self) -> Counter[str]:
        return Counter(r.error for r in self.requests if r.error)

    @property
    def output_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.requests)

    @property
    def input_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.requests)

    def summary(self) -> dict[str, Any]:
        """The figures of this level, as stored and shown (seconds, tokens/s)."""
        done = self.done
        ttfts = [r.ttft for r in done if r.ttft is not None]
        itls = [r.inter_token for r in done if r.inter_token is not None]
        wall = self.wall_seconds
        attempted = [r for r in self.requests if not r.cut_off]
        return {
            "concurrency": self.concurrency,
            "requests": len(self.requests),
            "succeeded": len(done),
            "success_rate": len(done) / len(attempted) if attempted else 0.0,
            "errors": dict(self.errors),
            "cut_off": sum(r.cut_off for r in self.requests),
            "ttft_p50": percentile(ttfts, 50),
            "ttft_p95": percentile(ttfts, 95),
            "itl_mean": sum(itls) / len(itls) if itls else None,
            "itl_p95": percentile(itls, 95),
            "tokens_per_second_per_request": (
                sum(1 / i for i in itls) / len(itls) if itls else None
            ),
            "output_tokens": self.output_tokens,
            "input_tokens": self.input_tokens,
            "wall_seconds": wall,
            "output_tokens_per_second": self.output_tokens / wall if wall > 0 else None,
            "input_tokens_per_second": self.input_tokens / wall if wall > 0 else None,
        }


def error_kind(exc: BaseException) -> str:
    """The kind of failure a person can act on: throttling, an OOM, a server error..."""
    text = str(exc).lower()
    if isinstance(exc, RateLimited) or getattr(exc, "status", None) == 429:
        return "throttled"
    if any(marker in text for marker in OOM_MARKERS):
        return "oom"
    if isinstance(exc, ProviderError):
        status = exc.status or 0
        if status >= 500 or status == 0:
            return "server_error"
        return "client_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


class LoadRun:
    """Cancellable: `cancel()` stops every stream at once (their tasks are cancelled, which
    closes the connections), so a Cancel click ends the load within one event-loop turn."""

    def __init__(self, *, clock: Clock) -> None:
        self.clock = clock
        self.cancelled = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def cancel(self) -> None:
        self.cancelled = True
        for task in list(self._tasks):
            task.cancel()

    async def level(
        self,
        stream: StreamFactory,
        *,
        concurrency: int,
        requests: int,
        deadline: float | None = None,
        stop_on: Callable[[RequestResult], bool] | None = None,
    ) -> LevelResult:
        """Run `requests` streams, `concurrency` at a time. New requests stop at `deadline`
        (clock.monotonic()), streams in flight are cut there; `stop_on(result)` true for a
        finished request stops the level early (e.g. throttling)."""
        level = LevelResult(concurrency=concurrency, started=self.clock.monotonic())
        issued = 0
        stop = False

        def more() -> bool:
            if self.cancelled or stop or issued >= requests:
                return False
            return deadline is None or self.clock.monotonic() < deadline

        async def one() -> RequestResult:
            result = RequestResult(started=self.clock.monotonic())
            level.requests.append(result)
            try:
                async for delta in stream():
                    now = self.clock.monotonic()
                    if delta.content:
                        result.chunks += 1
                        if result.first_token is None:
                            result.first_token = now
                        result.last_token = now
                    usage = getattr(delta, "usage", None)
                    if usage is not None:
                        result.prompt_tokens = int(usage.prompt_tokens)
                        result.completion_tokens = int(usage.completion_tokens)
                    if deadline is not None and now >= deadline and usage is None:
                        result.cut_off = True
                        break
            except asyncio.CancelledError:
                result.cut_off = True
                raise
            except CockpitError as exc:
                result.error, result.detail = error_kind(exc), str(exc)
            except Exception as exc:  # a broken stream must not end the benchmark silently
                result.error, result.detail = error_kind(exc), f"{type(exc).__name__}: {exc}"
            if result.completion_tokens == 0 and result.error is None:
                result.completion_tokens = result.chunks  # server sent no usage
            return result

        async def worker() -> None:
            nonlocal issued, stop
            while more():
                issued += 1
                task = asyncio.ensure_future(one())
                self._tasks.add(task)
                try:
                    result = await task
                except asyncio.CancelledError:
                    if self.cancelled:
                        return
                    raise
                finally:
                    self._tasks.discard(task)
                if stop_on is not None and stop_on(result):
                    stop = True

        workers = [asyncio.ensure_future(worker()) for _ in range(max(concurrency, 1))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        level.ended = self.clock.monotonic()
        return level
