"""The HTTP API: API keys, scopes, approvals, rate limits, isolation — over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.http_api import add_api_routes
from bot.testing import BotHarness, running_bot
from storage import approvals, audit


async def make_key(bot: BotHarness, args: str, *, user: str = "owner", ws: str = "T1") -> str:
    reply = await bot.send(f"/apikey {args}", user=user, workspace=ws)
    assert reply.ok, reply.text
    m = re.search(r"ck_[\w-]+", reply.text)
    assert m
    return m.group(0)


@pytest.fixture
async def env(tmp_path: Path):
    async with running_bot(tmp_path, COCKPIT_RATE_LIMIT_PER_MINUTE=5) as bot:
        await bot.send("/whoami", user="owner", workspace="T1")
        app = web.Application()
        add_api_routes(app, bot.cockpit)
        async with TestClient(TestServer(app)) as client:
            yield bot, client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_keys_statuses(env) -> None:
    bot, client = env
    key = await make_key(bot, "ci --role member")
    ok = await client.post("/api/v1/tools/whoami", headers=auth(key), json={})
    assert ok.status == 200
    body = await ok.json()
    assert "Role: member" in body["reply"]["fields"][0]["value"] or body["reply"]["fields"]
    assert (await client.post("/api/v1/tools/whoami")).status == 401
    assert (await client.post("/api/v1/tools/whoami", headers=auth("ck_wrong"))).status == 401
    listed = await client.get("/api/v1/tools", headers=auth(key))
    names = {t["name"] for t in (await listed.json())["tools"]}
    assert "deploy_model" in names and "set_role" not in names  # member role


async def test_expired_and_revoked_keys_are_401(env) -> None:
    bot, client = env
    key = await make_key(bot, "short --days 1")
    bot.clock.advance(2 * 86400)
    r = await client.post("/api/v1/tools/whoami", headers=auth(key))
    assert r.status == 401 and "expired" in (await r.json())["detail"]
    other = await make_key(bot, "other")
    listing = (await bot.send("/apikeys", user="owner", workspace="T1")).table
    key_id = next(row[0] for row in listing.rows if row[1] == "other")  # type: ignore[union-attr]
    assert (await bot.send(f"/revoke {key_id}", user="owner", workspace="T1")).ok
    r = await client.post("/api/v1/tools/whoami", headers=auth(other))
    assert r.status == 401 and "revoked" in (await r.json())["detail"]


async def test_scope_and_role_are_403(env) -> None:
    bot, client = env
    narrow = await make_key(bot, 'narrow --role viewer --scopes "whoami list_deployments"')
    r = await client.post("/api/v1/tools/get_spend", headers=auth(narrow), json={})
    assert r.status == 403 and "scopes" in (await r.json())["detail"]
    viewer = await make_key(bot, "viewer --role viewer")
    r = await client.post(
        "/api/v1/tools/deploy_model", headers=auth(viewer), json={"model": "qwen"}
    )
    assert r.status == 403
    with bot.services.db.session() as s:
        denied = audit.query(s, org_id=1, outcome="denied")
    assert {d.tool for d in denied} >= {"get_spend", "deploy_model"}


async def test_approval_needed_is_202_then_a_person_approves(env) -> None:
    bot, client = env
    key = await make_key(bot, "deployer --role member")
    r = await client.post(
        "/api/v1/tools/deploy_model",
        headers=auth(key),
        json={"model": "Qwen/Qwen2.5-0.5B-Instruct"},
    )
    assert r.status == 202
    approval_id = (await r.json())["approval_id"]
    done = await bot.send(f"/approve {approval_id}", user="owner", workspace="T1")
    assert done.ok and "is healthy" in (done.title or "")


async def test_bad_arguments_400_and_rate_limit_429(env) -> None:
    bot, client = env
    key = await make_key(bot, "busy")
    bad = await client.post("/api/v1/tools/get_spend", headers=auth(key), json={"by": "colour"})
    assert bad.status == 400 and "by" in (await bad.json())["detail"]
    statuses = [
        (await client.post("/api/v1/tools/whoami", headers=auth(key))).status for _ in range(6)
    ]
    assert statuses[-1] == 429
    limited = await client.post("/api/v1/tools/whoami", headers=auth(key))
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1


async def test_cross_organisation_is_not_found_and_audited(env) -> None:
    bot, client = env
    await bot.send("/whoami", user="eve", workspace="EVIL")
    evil = await make_key(bot, "evil", user="eve", ws="EVIL")
    ask = await bot.send("/deploy qwen 0.5b", user="owner", workspace="T1")
    await bot.approve(ask.approval_id, user="owner", workspace="T1")
    r = await client.post(
        "/api/v1/tools/deployment_status", headers=auth(evil), json={"deployment": "1"}
    )
    assert r.status == 404
    r = await client.post(
        "/api/v1/tools/stop_deployment", headers=auth(evil), json={"deployment": "1"}
    )
    assert r.status == 404
    eve_org = bot.ctx(user="eve", workspace="EVIL").org_id
    with bot.services.db.session() as s:
        rows = audit.query(s, org_id=eve_org, tool="stop_deployment")
    assert rows and rows[0].outcome == "failed"
    status = (await bot.send("/status 1", user="owner", workspace="T1")).title or ""
    assert "healthy" in status


async def test_openapi_description(env) -> None:
    _, client = env
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    deploy = spec["paths"]["/api/v1/tools/deploy_model"]["post"]
    assert "202" in deploy["responses"]
    assert deploy["requestBody"]["content"]["application/json"]["schema"]["required"] == ["model"]


async def test_a_tool_run_from_inside_another_keeps_the_keys_scopes(env) -> None:
    """Scopes are checked where a tool runs, not only at the API's door: a key allowed
    `fix_alert` and `alerts` but not `stop_deployment` or `deployment_status` cannot stop the
    deployment through an alert's fix, nor read its status through `/alerts status`."""
    bot, client = env
    owner = bot.ctx(user="owner", workspace="T1")
    ask = await bot.cockpit.handle(owner, "/deploy qwen 0.5b --mode pod")
    assert ask.approval_id is not None, ask.as_plain_text()
    deployed = await bot.cockpit.approve(owner, ask.approval_id)
    assert deployed.ok, deployed.as_plain_text()
    bot.clock.advance(61 * 60)
    await bot.cockpit.background().run_job("idle")
    listed = await bot.send("/alerts", user="owner", workspace="T1")
    assert "idle" in listed.as_plain_text().lower(), listed.as_plain_text()

    key = await make_key(bot, 'fixer --role member --scopes "fix_alert alerts"')
    status = await client.post(
        "/api/v1/tools/alerts", headers=auth(key), json={"action": "status", "kind": "1"}
    )
    assert status.status == 200
    fields = {f["label"]: f["value"] for f in (await status.json())["reply"]["fields"]}
    assert "scopes do not include deployment_status" in fields["Deployment"], fields
    assert "Model" not in fields  # none of the deployment status fields

    # Refused before anyone is asked to approve: the fix's preview runs the same check.
    fix = await client.post("/api/v1/tools/fix_alert", headers=auth(key), json={"alert": "1"})
    assert fix.status == 403, await fix.text()
    assert "scopes do not include stop_deployment" in (await fix.json())["detail"]
    with bot.services.db.session() as s:
        assert approvals.list_pending(s, org_id=owner.org_id, now=bot.clock.now()) == []
        rows = audit.query(s, org_id=owner.org_id, tool="fix_alert")
    assert any("scopes do not include" in r.detail for r in rows)  # audited where refused
    still = await bot.send("/deployments", user="owner", workspace="T1")
    assert "stopped" not in still.as_plain_text(), still.as_plain_text()
