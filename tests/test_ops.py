"""Operations: /metrics moves after a deploy, /healthz and /readyz answer."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.testing import running_bot
from bot.web import build_web_app


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = re.search(r"\{(.*)\}", line)
            got_labels = ",".join(sorted((got.group(1) if got else "").split(",")))
            if got_labels == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_change_after_a_deploy(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        app = build_web_app(bot.cockpit)
        async with TestClient(TestServer(app)) as http:
            before = await (await http.get("/metrics")).text()
            ask = await bot.send("/deploy qwen 0.5b", user="alice")
            assert (await bot.approve(ask.approval_id, user="alice")).ok
            after = await (await http.get("/metrics")).text()
            assert (await http.get("/healthz")).status == 200
            ready = await http.get("/readyz")
            assert ready.status == 200 and (await ready.json())["status"] == "ready"
    assert (
        metric(after, "cockpit_deploys_total", outcome="healthy")
        == metric(before, "cockpit_deploys_total", outcome="healthy") + 1
    )
    assert metric(
        after, "cockpit_tool_calls_total", tool="deploy_model", outcome="succeeded"
    ) > metric(before, "cockpit_tool_calls_total", tool="deploy_model", outcome="succeeded")
    assert metric(after, "cockpit_deploy_phase_seconds_count", phase="wait_healthy") >= 1
    assert metric(
        after, "cockpit_outside_api_seconds_count", service="runpod", outcome="ok"
    ) > metric(before, "cockpit_outside_api_seconds_count", service="runpod", outcome="ok")


def test_grafana_dashboard_uses_only_metrics_we_export() -> None:
    import json

    from prometheus_client import REGISTRY

    import tools.metrics  # noqa: F401  (registers the metrics)

    dashboard = json.loads(
        (Path(__file__).parents[1] / "ops" / "grafana-dashboard.json").read_text()
    )
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = set(re.findall(r"cockpit_[a-z_]+", exprs))
    exported = {
        s.name for m in REGISTRY.collect() for s in m.samples if s.name.startswith("cockpit_")
    }
    families = [m for m in REGISTRY.collect() if m.name.startswith("cockpit_")]
    exported |= {m.name for m in families}
    exported |= {f"{m.name}_total" for m in families if m.type == "counter"}
    exported |= {
        f"{m.name}_{x}"
        for m in families
        if m.type == "histogram"
        for x in ("bucket", "count", "sum")
    }
    assert used and used <= exported, used - exported
