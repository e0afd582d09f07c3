"""The local RunPod emulator ("sandbox cloud").

It speaks the same REST v2 and serverless data-plane protocol as RunPod so the real client runs
against it: validated against the official OpenAPI spec (package data), with a simulated worker
lifecycle, per-second billing, a deterministic chat model and fault injection. It never
pretends to be real: chat replies start with `[sandbox]`, GPU prices are labelled sandbox data.

    emulator = RunPodEmulator(clock=FakeClock())
    await emulator.start()            # port 0: a free port
    client = RunPodClient(api_key="k", api_url=emulator.api_url,
                          serverless_url=emulator.serverless_url)

Modules, in dependency order: `catalog`, `chat`, `faults`, `spec`, `vllm`, `throughput`, `state`
(the simulated account), `persist` (its state on disk), `server` (the aiohttp app). The names
below are loaded on first use, so importing one module (say `state`) does not import `server`
and nothing here depends on import order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.runpod.sandbox.faults import Fault, FaultInjector, FaultKind
    from tools.runpod.sandbox.server import (
        DEFAULT_PORT,
        INVALID_KEY_PREFIX,
        Exchange,
        RunPodEmulator,
        main,
        make_app,
    )
    from tools.runpod.sandbox.spec import SPEC_FILE, OpenApiSpec, load_spec

_EXPORTS = {
    "Fault": "faults",
    "FaultInjector": "faults",
    "FaultKind": "faults",
    "DEFAULT_PORT": "server",
    "INVALID_KEY_PREFIX": "server",
    "Exchange": "server",
    "RunPodEmulator": "server",
    "main": "server",
    "make_app": "server",
    "SPEC_FILE": "spec",
    "OpenApiSpec": "spec",
    "load_spec": "spec",
}

__all__ = [
    "DEFAULT_PORT",
    "INVALID_KEY_PREFIX",
    "SPEC_FILE",
    "Exchange",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "OpenApiSpec",
    "RunPodEmulator",
    "load_spec",
    "main",
    "make_app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
