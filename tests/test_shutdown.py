"""A deploy cut short by SIGTERM (or a crash) never leaves a GPU behind: the running process
compensates on SIGTERM, and the next start cleans up after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import deployments
from storage.db import Database

ROOT = Path(__file__).resolve().parents[1]
WAIT_SECONDS = 60


def start_console(data: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "COCKPIT_DATA_DIR": str(data),
        "COCKPIT_SANDBOX": "on",
        "COCKPIT_SANDBOX_READY_SECONDS": "600",
        "COCKPIT_SANDBOX_STATE": "true",
    }
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "console", "--yes", "--user", "alice"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    pytest.fail(f"never saw {needle!r}")


def deploy_until_waiting(data: Path) -> subprocess.Popen[str]:
    proc = start_console(data)
    assert proc.stdin is not None
    proc.stdin.write("/deploy Qwen/Qwen2.5-0.5B-Instruct\n")
    proc.stdin.flush()
    wait_for_line(proc, "waiting for workers")
    return proc


def sandbox_resources(data: Path) -> dict[str, int]:
    state = json.loads((data / "sandbox-state.json").read_text())
    return {k: len(state.get(k) or {}) for k in ("templates", "endpoints", "pods")}


def deployment_row(data: Path):
    db = Database(f"sqlite:///{data / 'cockpit.db'}")
    try:
        with db.session() as s:
            return deployments.get(s, org_id=1, deployment_id=1)
    finally:
        db.dispose()


def test_sigterm_during_a_deploy_cleans_up_before_exit(tmp_path: Path) -> None:
    proc = deploy_until_waiting(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT_SECONDS) != 0
    row = deployment_row(tmp_path)
    assert row is not None and row.status == "failed"
    assert "interrupted" in (row.failure_reason or "")
    assert sandbox_resources(tmp_path) == {"templates": 0, "endpoints": 0, "pods": 0}


def test_sigkill_during_a_deploy_is_cleaned_up_at_the_next_start(tmp_path: Path) -> None:
    proc = deploy_until_waiting(tmp_path)
    proc.kill()
    proc.wait(timeout=WAIT_SECONDS)
    assert deployment_row(tmp_path).status == "waiting"  # half-done: endpoint exists
    assert sandbox_resources(tmp_path)["endpoints"] == 1
    again = start_console(tmp_path)
    out, _ = again.communicate("/deployments --all\n/reconcile\n", timeout=WAIT_SECONDS)
    assert again.returncode == 0
    row = deployment_row(tmp_path)
    assert row.status == "failed" and "restart" in (row.failure_reason or "")
    assert sandbox_resources(tmp_path) == {"templates": 0, "endpoints": 0, "pods": 0}
    assert "No orphaned resources" in out
