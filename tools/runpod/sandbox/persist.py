"""Optional persistence of the sandbox account, so `cockpit console` can restart without losing
the endpoints, templates and pods its database points at.

What is kept (JSON, times as ISO 8601 strings, money as decimal strings): templates; endpoints
with their configuration, version and releases; pods with their lifecycle phase; every billing
meter (so billing totals survive); the id generator's state (so new ids never repeat old ones);
the job counts the health route reports.

What is not kept, on purpose: serverless workers and jobs. After a reload workers restart cold,
as after a real outage: an endpoint with `workers.min > 0` starts its keep-warm workers again
(INITIALIZING, billed from when they are ready); a worker that was running at the last save is
billed up to that save; jobs still queued or in progress then count as failed and their results
are gone (`/status` answers 404). A crash injected with `faults` is cleared too, and faults
themselves are test tooling and never saved. Pods keep running (and billing) while the sandbox
is down, as RunPod's do.

Writes are atomic: the JSON goes to a temporary file in the same folder, then `os.replace`
puts it in place, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.runpod.sandbox import catalog
from tools.runpod.sandbox.state import (
    EndpointSim,
    Meter,
    PodSim,
    SandboxState,
    iso,
    round_up_end,
)

log = logging.getLogger(__name__)

STATE_FORMAT = "cockpit-sandbox-state"
STATE_VERSION = 1
UNFINISHED_JOBS = ("IN_QUEUE", "IN_PROGRESS")


class StateFileError(ValueError):
    """The state file is not a sandbox state this version can read."""


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _opt_time(value: str | None) -> datetime | None:
    return None if value is None else _time(value)


# --- dump ----------------------------------------------------------------------------------


def _job_counts(ep: EndpointSim, now: datetime) -> dict[str, int]:
    counts = Counter(ep.done)
    for job in ep.jobs.values():
        status = job.status(now)
        # the job's worker does not survive a reload, so an unfinished job is lost
        counts["FAILED" if status in UNFINISHED_JOBS else status] += 1
    return dict(counts)


def _meter_json(meter: Meter, now: datetime, *, close_open: bool) -> dict[str, Any]:
    end = meter.end
    if end is None and close_open:
        end = round_up_end(meter.start, now)
    return {
        "kind": meter.kind,
        "resourceId": meter.resource_id,
        "rate": str(meter.rate),
        "start": iso(meter.start),
        "end": iso(end) if end is not None else None,
    }


def dump_state(state: SandboxState, now: datetime) -> dict[str, Any]:
    """A JSON-ready snapshot of `state` at `now` (the live state is brought up to `now`)."""
    state.advance_all(now)
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "savedAt": iso(now),
        "rng": _rng_json(state.rng_state()),
        "templates": list(state.templates.values()),
        "endpoints": [
            {
                "id": ep.id,
                "config": ep.config,
                "createdAt": iso(ep.created_at),
                "templateId": ep.template_id,
                "version": ep.version,
                "releases": ep.releases,
                "jobCounts": _job_counts(ep, now),
            }
            for ep in state.endpoints.values()
        ],
        "pods": [
            {
                "id": pod.id,
                "name": pod.name,
                "config": pod.config,
                "gpuId": pod.gpu.id,
                "gpuCount": pod.gpu_count,
                "cloud": pod.cloud,
                "dataCenterId": pod.data_center_id,
                "createdAt": iso(pod.created_at),
                "phaseAt": iso(pod.phase_at),
                "phase": pod.phase,
                "desired": pod.desired,
                "templateId": pod.template_id,
            }
            for pod in state.pods.values()
        ],
        # an open serverless meter is a live worker's: its session ends at this snapshot as
        # far as a reload is concerned; open pod meters stay open (pods outlive the sandbox)
        "meters": [_meter_json(m, now, close_open=m.kind == "serverless") for m in state.meters],
    }


def _rng_json(rng_state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss_next = rng_state
    return [version, list(internal), gauss_next]


# --- load ----------------------------------------------------------------------------------


def load_state(state: SandboxState, data: Any, now: datetime) -> None:
    """Replace the contents of `state` with a snapshot from `dump_state`; workers restart cold."""
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateFileError("not a sandbox state file")
    if data.get("version") != STATE_VERSION:
        raise StateFileError(f"unsupported sandbox state version {data.get('version')!r}")
    try:
        templates = {t["id"]: t for t in data["templates"]}
        meters = [
            Meter(
                kind=m["kind"],
                resource_id=m["resourceId"],
                rate=Decimal(m["rate"]),
                start=_time(m["start"]),
                end=_opt_time(m["end"]),
            )
            for m in data["meters"]
        ]
        endpoints = {e["id"]: _endpoint(e) for e in data["endpoints"]}
        pods = {p["id"]: _pod(p, meters) for p in data["pods"]}
        version, internal, gauss_next = data["rng"]
        rng = (int(version), tuple(int(x) for x in internal), gauss_next)
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"malformed sandbox state: {exc!r}") from exc
    state.templates, state.endpoints, state.pods, state.meters = templates, endpoints, pods, meters
    state.set_rng_state(rng)
    for ep in state.endpoints.values():
        state.restart_workers(ep, now)


def _endpoint(raw: dict[str, Any]) -> EndpointSim:
    ep = EndpointSim(
        id=raw["id"],
        config=raw["config"],
        created_at=_time(raw["createdAt"]),
        template_id=raw["templateId"],
        version=int(raw["version"]),
        releases=list(raw["releases"]),
    )
    ep.done.update({str(k): int(v) for k, v in raw.get("jobCounts", {}).items()})
    return ep


def _pod(raw: dict[str, Any], meters: list[Meter]) -> PodSim:
    gpu = catalog.GPUS_BY_ID.get(raw["gpuId"])
    if gpu is None:
        raise ValueError(f"unknown GPU type {raw['gpuId']!r}")
    pod = PodSim(
        id=raw["id"],
        name=raw["name"],
        config=raw["config"],
        gpu=gpu,
        gpu_count=int(raw["gpuCount"]),
        cloud=raw["cloud"],
        data_center_id=raw["dataCenterId"],
        created_at=_time(raw["createdAt"]),
        phase_at=_time(raw["phaseAt"]),
        phase=raw["phase"],
        desired=raw["desired"],
        template_id=raw.get("templateId"),  # absent in files saved before it was kept
    )
    # a pod has at most one open meter: the one `stop`/`terminate` would close
    pod.meter = next(
        (m for m in meters if m.kind == "pod" and m.resource_id == pod.id and m.end is None),
        None,
    )
    return pod


# --- files ---------------------------------------------------------------------------------


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read(path: Path) -> Any | None:
    """The parsed state file, or None when there is none. A file that cannot be read as a
    sandbox state is moved aside (`<name>.corrupt`) with a warning, and the sandbox starts
    empty: losing a simulated account is better than a bot that does not start."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        set_aside(path, exc)
        return None


def set_aside(path: Path, reason: Exception) -> None:
    aside = path.with_name(path.name + ".corrupt")
    log.warning(
        "sandbox state %s is unreadable (%s); moved to %s, starting empty", path, reason, aside
    )
    with contextlib.suppress(OSError):
        os.replace(path, aside)
