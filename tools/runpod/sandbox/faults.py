"""Fault injection for the sandbox: latency, rate limits, server errors, crashes, failed creates.

Faults match on the request's method and its full path as served by the emulator, e.g.
`/rest/v2/serverless` (REST) or `/sls/v2/<endpoint_id>/health` (data plane), with shell-style
wildcards (`*` also crosses `/`, so `"*/health"` hits every endpoint's health route).

    emulator.faults.inject("*/health", "latency", delay=0.1)             # every call, +100 ms
    emulator.faults.inject("/rest/v2/catalog/gpus", "rate_limit", times=1, retry_after=3)
    emulator.faults.inject("/rest/v2/*", "server_error", times=2, status=503)
    emulator.faults.inject("/sls/v2/abc/*", "crash")                     # endpoint abc crashes
    emulator.faults.inject("/rest/v2/serverless", "fail_create", create_anyway=True)
    emulator.faults.clear()

`times=None` means every matching request; otherwise the fault fires that many times and
then disarms. Several faults may match one request: latency always applies first, then the
first armed error fault wins.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    LATENCY = "latency"  # real asyncio.sleep(delay) before the request is handled
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After: retry_after
    SERVER_ERROR = "server_error"  # `status` (default 500) before the handler runs
    CRASH = "crash"  # the addressed endpoint's workers turn UNHEALTHY; its jobs fail
    # A write (POST by default; any `method=`) answers `status`; with create_anyway=True the
    # request takes effect first, as RunPod has been seen creating a pod while answering 500.
    FAIL_CREATE = "fail_create"


@dataclass
class Fault:
    route: str
    kind: FaultKind
    method: str | None = None
    times: int | None = None
    delay: float = 0.1
    status: int = 500
    retry_after: int = 1
    create_anyway: bool = False
    hits: int = 0

    @property
    def armed(self) -> bool:
        return self.times is None or self.hits < self.times

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.route)


class FaultInjector:
    """The emulator's list of active faults, driven from tests and the benchmark."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def inject(
        self,
        route: str,
        kind: FaultKind | str,
        *,
        times: int | None = None,
        method: str | None = None,
        delay: float = 0.1,
        status: int | None = None,
        retry_after: int = 1,
        create_anyway: bool = False,
    ) -> Fault:
        """Arm a fault on requests whose path matches `route` (see the module docstring)."""
        kind = FaultKind(kind)
        if kind is FaultKind.FAIL_CREATE and method is None:
            method = "POST"
        default_status = 429 if kind is FaultKind.RATE_LIMIT else 500
        fault = Fault(
            route=route,
            kind=kind,
            method=method,
            times=times,
            delay=delay,
            status=status or default_status,
            retry_after=retry_after,
            create_anyway=create_anyway,
        )
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def take(self, method: str, path: str) -> tuple[float, Fault | None]:
        """Consume the faults matching one request: (total added latency, error fault)."""
        delay = 0.0
        chosen: Fault | None = None
        for fault in self.faults:
            if not fault.armed or not fault.matches(method, path):
                continue
            if fault.kind is FaultKind.LATENCY:
                fault.hits += 1
                delay += fault.delay
            elif chosen is None:
                fault.hits += 1
                chosen = fault
        return delay, chosen
