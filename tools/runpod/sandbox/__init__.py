"""The local RunPod emulator ("sandbox cloud").

It speaks the same REST v2 and serverless data-plane protocol as RunPod so the real client runs
against it: validated against the official OpenAPI spec (package data), with a simulated worker
lifecycle, per-second billing, a deterministic chat model and fault injection. It never
pretends to be real: chat replies start with `[sandbox]`, GPU prices are labelled sandbox data.

    emulator = RunPodEmulator(clock=FakeClock())
    await emulator.start()            # port 0: a free port
    client = RunPodClient(api_key="k", api_url=emulator.api_url,
                          serverless_url=emulator.serverless_url)
"""

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
