"""What a deployment's workers are doing, and why they fail, read from RunPod itself.

`/health` only documents ready workers (idle, running), so per-status counts come from
`GET /v2/serverless/{id}/workers`; a pod is RUNNING as soon as its container is, so readiness
is vLLM answering `/v1/models` through the pod's proxy with the pod's key. When something is
wrong, the few log lines that explain it (vLLM's own error) are quoted, redacted: worker-vllm
logs its whole `vllm serve` command line, which is where a token would show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from storage.redaction import scrub
from tools.errors import CockpitError
from tools.runpod.models import PodStatus

MAX_REASON_LINES = 2
MAX_LINE_CHARS = 400
# Lines that say why a start failed: exceptions (vLLM's ValueError / OutOfMemoryError /
# GatedRepoError, worker-vllm's RuntimeError) and RunPod's own verdicts.
_FATAL = re.compile(r"(Error\b|Error:|Traceback|marked unhealthy|crashed|exited with code)")
# worker-vllm's own "vLLM serve exited" and the container restart say only that it failed.
_GENERIC = re.compile(r"(exited during startup|exited with code \d+; restarting)")
_PROGRESS = re.compile(r"Downloading weights of \S+: (\d+)% \(([\d.]+)/([\d.]+) GB")


def redact(line: str) -> str:
    text = scrub(line)
    text = re.sub(r"(--hf-token\s+)\S+", r"\1[redacted]", text)
    return text[:MAX_LINE_CHARS]


def reason_lines(lines: list[Any]) -> list[str]:
    """The log lines that explain a failure, most specific first, redacted and de-duplicated
    (a crash loop repeats the same error on every restart)."""
    fatal = [str(x.line) for x in lines if _FATAL.search(str(x.line))]
    specific = [t for t in fatal if not _GENERIC.search(t)] or fatal
    picked: list[str] = []
    for text in specific:
        clean = redact(text)
        if clean not in picked:
            picked.append(clean)
    return picked[:MAX_REASON_LINES]


def progress(lines: list[Any]) -> str | None:
    """ "downloading weights: 40% (58.2/145.4 GB)" from the latest progress line, or None."""
    for entry in reversed(lines):
        found = _PROGRESS.search(str(entry.line))
        if found:
            pct, done, total = found.groups()
            if pct == "100":
                return "weights downloaded, loading onto the GPU"
            return f"downloading weights: {pct}% ({done}/{total} GB)"
    return None


@dataclass
class WorkerView:
    ready: int
    starting: int
    throttled: int
    unhealthy: int
    total: int
    detail: str | None = None  # progress of a starting worker, or why one is unhealthy

    @property
    def crashed(self) -> bool:
        """Every worker is unhealthy: nothing is still starting or waiting."""
        return self.unhealthy > 0 and self.ready == 0 and self.starting + self.throttled == 0


async def serverless_workers(
    client: Any, endpoint_id: str, *, logs: bool = True, progress_logs: bool = True
) -> WorkerView:
    """Per-status worker counts from `/workers`; with `logs`, why the first unhealthy worker
    failed (when none is ready) or, with `progress_logs` too, how far the first starting one
    has got."""
    listing = await client.list_workers(endpoint_id)
    s = listing.summary
    view = WorkerView(
        ready=s.idle + s.running,
        starting=s.initializing,
        throttled=s.throttled,
        unhealthy=s.unhealthy,
        total=s.total,
    )
    if not logs or view.ready:
        return view
    wanted = "UNHEALTHY" if view.unhealthy and not view.starting else "INITIALIZING"
    if wanted == "INITIALIZING" and not progress_logs:
        return view
    worker = next((w for w in listing.workers if w.status == wanted), None)
    if worker is None:
        return view
    try:
        lines = await client.worker_logs(endpoint_id, worker.id)
    except CockpitError:
        return view  # logs are a courtesy: the counts still stand
    if wanted == "UNHEALTHY":
        view.detail = "; ".join(reason_lines(lines)) or None
    else:
        view.detail = progress(lines)
    return view


@dataclass
class PodView:
    status: str  # RunPod's pod status
    serving: bool
    http_status: int  # what the proxy answered (0: not asked or nothing answered)
    detail: str | None = None
    crashed: bool = False

    def describe(self) -> str:
        if self.status != PodStatus.RUNNING:
            return f"pod {self.status.lower()}"
        if self.serving:
            return "pod running, vLLM answers"
        if self.crashed:
            return f"pod running, vLLM crash-looping: {self.detail}"
        what = self.detail or "vLLM starting"
        return f"pod running, {what} (proxy answers {self.http_status or 'nothing'})"


async def pod_server(client: Any, pod_id: str, api_key: str) -> PodView:
    """The pod's status, and whether its vLLM answers through the proxy; if not, its logs say
    whether it is still loading (with progress) or crash-looping (with the reason)."""
    pod = await client.get_pod(pod_id)
    if pod.status != PodStatus.RUNNING:
        return PodView(status=pod.status, serving=False, http_status=0)
    check = await client.check_pod_server(pod_id, api_key)
    view = PodView(status=pod.status, serving=check.serving, http_status=check.status)
    if check.serving or check.status == 401:
        return view
    try:
        lines = await client.pod_logs(pod_id)
    except CockpitError:
        return view
    reasons = reason_lines(lines)
    if reasons:
        view.crashed, view.detail = True, "; ".join(reasons)
    else:
        view.detail = progress(lines)
    return view


__all__ = ["PodView", "WorkerView", "pod_server", "progress", "reason_lines", "serverless_workers"]
