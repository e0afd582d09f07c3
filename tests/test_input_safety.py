"""Issue 14, findings 4 and 5: a reference names exactly one thing or nothing, and bad input of
any shape (unicode digits, integers past 64 bits, huge text, NUL, invalid UTF-8, deep JSON) gets
a clear message on every surface and changes nothing. One test per example from the audit."""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import func, select

from bot import router
from bot.adapters.console import Console
from bot.adapters.http_api import add_api_routes
from bot.app import load_tool_modules
from bot.testing import BotHarness, running_bot
from storage import deployments
from storage.models import AlertRoute, ApiKey, Approval, AuditEvent, Deployment
from tools.contract import (
    DB_INT_MAX,
    REGISTRY,
    Registry,
    Reply,
    Role,
    SideEffect,
    ToolContext,
    ToolInput,
    arg,
    parse_id,
    previewer,
    tool,
)
from tools.errors import CockpitError
from tools.skills import Skill

GENERIC = "Something went wrong"
STATE = (Deployment, Approval, ApiKey, AlertRoute)  # what a refused command must not change
TOO_BIG = str(2**63)  # 9223372036854775808: one past SQLite's INTEGER
TOO_BIG_64 = str(2**64)  # 18446744073709551616


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path) as harness:
        yield harness


def count(bot: BotHarness, model: type) -> int:
    with bot.services.db.session() as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def row(bot: BotHarness, dep_id: int) -> Deployment:
    org = bot.ctx(user="alice").org_id
    with bot.services.db.session() as s:
        dep = deployments.get(s, org_id=org, deployment_id=dep_id)
    assert dep is not None
    return dep


async def deploy(bot: BotHarness, args: str) -> Reply:
    ask = await bot.send(f"/deploy {args}", user="alice")
    assert ask.approval_id is not None, ask.as_plain_text()
    done = await bot.approve(ask.approval_id, user="alice")
    assert done.ok, done.as_plain_text()
    return done


def assert_clear_refusal(reply: Reply) -> None:
    text = reply.as_plain_text()
    assert not reply.ok, text
    assert GENERIC not in text, text


# --- finding 4: wrong target ----------------------------------------------------------------


@pytest.mark.parametrize("ref", ["2", "%", "_", "0.5", "#2", "prod", "chat", "qwen"])
async def test_stop_with_a_ref_that_names_nothing_stops_nothing(bot: BotHarness, ref: str) -> None:
    await deploy(bot, "Qwen/Qwen2.5-0.5B-Instruct --name prod-chat")
    assert row(bot, 1).status == "healthy"
    reply = await bot.send(f"/stop {ref}", user="alice")
    assert_clear_refusal(reply)
    assert "No deployment matches" in reply.text
    assert row(bot, 1).status == "healthy"


async def test_delete_of_a_missing_id_offers_nothing(bot: BotHarness) -> None:
    await deploy(bot, "Qwen/Qwen2.5-0.5B-Instruct --name prod-chat")
    approvals_before = count(bot, Approval)
    reply = await bot.send("/delete 2", user="alice")
    assert_clear_refusal(reply)
    assert reply.approval_id is None and count(bot, Approval) == approvals_before


async def test_exact_id_and_case_insensitive_name_still_work(bot: BotHarness) -> None:
    await deploy(bot, "Qwen/Qwen2.5-0.5B-Instruct --name prod-chat")
    for ref in ("1", "#1", "prod-chat", "PROD-Chat", " prod-chat "):
        reply = await bot.send(f"/status {ref}", user="alice")
        assert reply.ok and (reply.title or "").startswith("#1 prod-chat"), (ref, reply.text)


async def test_not_found_suggests_the_closest_names(bot: BotHarness) -> None:
    await deploy(bot, "Qwen/Qwen2.5-0.5B-Instruct --name prod-chat")
    reply = await bot.send("/stop prod-chta", user="alice")
    assert not reply.ok and "prod-chat" in reply.as_plain_text()
    assert row(bot, 1).status == "healthy"


async def test_two_deployments_with_one_name_are_ambiguous(bot: BotHarness) -> None:
    await deploy(bot, "Qwen/Qwen2.5-0.5B-Instruct --name twin")
    await deploy(bot, "Qwen/Qwen2.5-0.5B-Instruct --name TWIN")
    reply = await bot.send("/stop twin", user="alice")
    assert not reply.ok and "matches several" in reply.text
    assert row(bot, 1).status == row(bot, 2).status == "healthy"


def test_find_treats_like_wildcards_as_text(bot: BotHarness) -> None:
    org = bot.ctx(user="alice").org_id
    now = bot.clock.now()
    with bot.services.db.session() as s:
        for name in ("a%b", "a_b", "axb"):
            deployments.create(
                s,
                org_id=org,
                workspace_id=1,
                name=name,
                model_id="m/x",
                mode="serverless",
                gpu_count=1,
                status="healthy",
                price_per_hour=1.0,
                settings_json="{}",
                idempotency_key=name,
                created_by="alice",
                created_at=now,
                updated_at=now,
            )
    with bot.services.db.session() as s:
        assert [d.name for d in deployments.find(s, org_id=org, ref="a%b")] == ["a%b"]
        assert [d.name for d in deployments.find(s, org_id=org, ref="a_b")] == ["a_b"]
        assert deployments.find(s, org_id=org, ref="%") == []
        assert deployments.find(s, org_id=org, ref=TOO_BIG) == []
        assert deployments.find(s, org_id=org, ref="x" * 60_000) == []


# --- finding 5: every example from the audit ------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "/approve ²",
        f"/approve {TOO_BIG}",
        f"/cancel {TOO_BIG}",
        "/approve ٣",  # an Arabic-Indic digit: int() reads it, SQLite ids are ASCII
        "/status ²",
        "/alerts remove ²",
        f"/alerts remove {TOO_BIG}",
        "/alerts remove " + "9" * 20_000,
        f"/revoke {TOO_BIG_64}",
        "/revoke -" + TOO_BIG_64,
        "/status " + "x" * 60_000,
        "/stop " + "x" * 60_000,
        f"/status {TOO_BIG}",
        f"/apikey ci --days {TOO_BIG_64}",
    ],
)
async def test_bad_input_gets_a_clear_message_and_changes_nothing(
    bot: BotHarness, line: str
) -> None:
    await bot.send("/whoami", user="owner")  # the first member owns the organisation
    before = {m: count(bot, m) for m in STATE}
    reply = await bot.send(line, user="owner")
    assert_clear_refusal(reply)
    assert {m: count(bot, m) for m in STATE} == before, line


@pytest.mark.parametrize(
    "line",
    [
        f"/revoke {TOO_BIG_64}",
        "/revoke -" + TOO_BIG_64,
        "/alerts remove " + "9" * 10_000,  # under the surfaces' message cap, over the field's
        "/status " + "x" * 10_000,
        "/help " + "x" * 10_000,
        f"/budget set {TOO_BIG_64}",
    ],
)
async def test_contract_bounds_reject_before_anything_runs(bot: BotHarness, line: str) -> None:
    """Out of the contract's bounds: refused at validation, so not even an audit row."""
    await bot.send("/whoami", user="owner")
    audits = count(bot, AuditEvent)
    reply = await bot.send(line, user="owner")
    assert_clear_refusal(reply)
    assert "Invalid arguments" in reply.text, reply.text
    assert count(bot, AuditEvent) == audits


def test_approval_decision_reads_only_ascii_ids_in_range() -> None:
    assert router.approval_decision("/approve 12") == ("approve", 12)
    assert router.approval_decision("/cancel #7") == ("cancel", 7)
    assert router.approval_decision(f"/approve {DB_INT_MAX}") == ("approve", DB_INT_MAX)
    for text in ("/approve ²", f"/approve {TOO_BIG}", "/approve 0", "/approve ٣", "/approve"):
        decision = router.approval_decision(text)
        assert decision is None or decision[1] is None, text


def test_parse_id_bounds() -> None:
    assert (
        parse_id("1") == 1 and parse_id(" #42 ") == 42 and parse_id(str(DB_INT_MAX)) == DB_INT_MAX
    )
    for bad in ("", "0", "-1", "²", "٣", TOO_BIG, "9" * 20_000, "1.5", "1e3", None, 2**63):
        assert parse_id(bad) is None, bad


def test_tool_input_bounds_ints_and_texts_in_the_base_class() -> None:
    class Sample(ToolInput):
        n: int = arg(1, description="n")
        maybe: int | None = arg(None, description="maybe")
        text: str = arg("", description="text")
        words: list[str] = arg(default_factory=list, description="words")

    Sample.model_validate({"n": DB_INT_MAX, "maybe": -(2**63), "text": "x" * 100})
    for bad in (
        {"n": 2**63},
        {"maybe": -(2**63) - 1},
        {"text": "x" * 100_000},
        {"words": ["x" * 100_000]},
        {"text": "a\x00b"},
    ):
        with pytest.raises(ValueError):
            Sample.model_validate(bad)


def test_read_skill_file_with_a_nul_is_invalid_input(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    (folder / "references").mkdir(parents=True)
    (folder / "references" / "x.md").write_text("hello")
    skill = Skill(name="demo", description="d", folder=folder)
    assert skill.read_file("references/x.md") == "hello"
    for rel in ("references/x.md\x00", "\x00", "references/\x00/../x.md"):
        with pytest.raises(CockpitError):
            skill.read_file(rel)


# --- surfaces: an unexpected exception is a clear error with a reference --------------------


def _exploding_registry() -> Registry:
    """The shipped tools plus `boom` (needs approval; its preview raises, as a bug would)."""
    load_tool_modules()
    reg = Registry()
    for t in REGISTRY.all():
        reg.add(t)

    @tool(
        name="boom",
        description="A tool whose preview has a bug.",
        role=Role.viewer,
        side_effect=SideEffect.spend,
        needs_approval=True,
        registry=reg,
    )
    async def boom(tc: ToolContext, args: Any) -> Reply:
        return Reply(text="ran")

    @previewer(boom)
    async def preview_boom(tc: ToolContext, args: Any) -> Reply:
        raise RuntimeError("a bug in a preview")

    @tool(
        name="gate",
        description="Needs approval, does nothing.",
        side_effect=SideEffect.spend,
        needs_approval=True,
        registry=reg,
    )
    async def gate(tc: ToolContext, args: Any) -> Reply:
        return Reply(text="opened")

    return reg


async def test_a_preview_bug_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    async with running_bot(tmp_path, registry=_exploding_registry()) as harness:
        reply = await harness.send("/boom", user="alice")
        assert not reply.ok and re.search(r"reference \w+", reply.text), reply.text
        assert count(harness, Approval) == 0


async def test_console_survives_an_unexpected_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(tmp_path, registry=_exploding_registry()) as harness:
        out = io.StringIO()
        console = Console(
            harness.cockpit,
            user="alice",
            stdin=io.StringIO("/boom\n/approve ²\n/whoami\n"),
            stdout=out,
        )
        assert await console.run() == 0
        text = out.getvalue()
        assert "reference" in text and "alice" in text.split("/whoami")[-1], text


# --- the HTTP API ---------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[BotHarness, TestClient, str]]:
    async with running_bot(tmp_path) as harness:
        await harness.send("/whoami", user="owner", workspace="T1")
        made = await harness.send("/apikey ci --role admin", user="owner", workspace="T1")
        m = re.search(r"ck_[\w-]+", made.text)
        assert m, made.text
        app = web.Application()
        add_api_routes(app, harness.cockpit)
        async with TestClient(TestServer(app)) as client:
            yield harness, client, m.group(0)


def _headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **extra}


@pytest.mark.parametrize(
    ("tool_name", "body"),
    [
        ("deployment_status", b'{"deployment": "\xff\xfe"}'),  # invalid UTF-8
        ("deployment_status", b"[" * 100_000 + b"]" * 100_000),  # deep nesting
        ("deployment_status", b'{"deployment": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
        ("deployment_status", b'{"deployment": "\\udfff"}'),  # a lone surrogate
        ("deployment_status", b'{"deployment": "a\\u0000b"}'),
        ("revoke_api_key", json.dumps({"key_id": 2**64}).encode()),
        ("revoke_api_key", b'{"key_id": ' + b"9" * 5_000 + b"}"),  # int() digit limit
        ("revoke_api_key", b'{"key_id": 1e400}'),
        ("deployment_status", json.dumps({"deployment": "x" * 60_000}).encode()),
        ("deployment_status", b'{"deployment": NaN}'),
    ],
)
async def test_api_bad_bodies_are_400_with_a_clear_detail(
    api: tuple[BotHarness, TestClient, str], tool_name: str, body: bytes
) -> None:
    harness, client, key = api
    before = count(harness, AuditEvent)
    r = await client.post(f"/api/v1/tools/{tool_name}", headers=_headers(key), data=body)
    assert r.status == 400, await r.text()
    detail = (await r.json())["detail"]
    assert detail and GENERIC not in detail
    assert count(harness, AuditEvent) == before  # bad input changes nothing


async def test_api_unexpected_exception_is_a_problem_with_a_reference(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, registry=_exploding_registry()) as harness:
        await harness.send("/whoami", user="owner", workspace="T1")
        made = await harness.send("/apikey ci", user="owner", workspace="T1")
        key = re.search(r"ck_[\w-]+", made.text).group(0)  # type: ignore[union-attr]
        app = web.Application()
        add_api_routes(app, harness.cockpit)
        async with TestClient(TestServer(app)) as client:
            r = await client.post("/api/v1/tools/boom", headers=_headers(key), json={})
            assert r.status == 500
            body = await r.json()
            assert body["request_id"] and body["request_id"] in body["detail"]


# --- finding 12: Idempotency-Key on the HTTP API --------------------------------------------


async def test_api_idempotency_key_replays_instead_of_repeating(
    api: tuple[BotHarness, TestClient, str],
) -> None:
    harness, client, key = api
    headers = _headers(key, **{"Idempotency-Key": "deploy-once-1"})
    body = {"model": "Qwen/Qwen2.5-0.5B-Instruct"}
    first = await client.post("/api/v1/tools/deploy_model", headers=headers, json=body)
    assert first.status == 202
    approval_id = (await first.json())["approval_id"]
    for _ in range(20):
        again = await client.post("/api/v1/tools/deploy_model", headers=headers, json=body)
        assert again.status == 202 and (await again.json())["approval_id"] == approval_id
    assert count(harness, Approval) == 1
    other = await client.post(
        "/api/v1/tools/deploy_model",
        headers=_headers(key, **{"Idempotency-Key": "deploy-once-2"}),
        json=body,
    )
    assert (await other.json())["approval_id"] != approval_id
    assert count(harness, Approval) == 2
    without = await client.post("/api/v1/tools/deploy_model", headers=_headers(key), json=body)
    assert without.status == 202 and count(harness, Approval) == 3
    too_long = await client.post(
        "/api/v1/tools/whoami", headers=_headers(key, **{"Idempotency-Key": "k" * 1000}), json={}
    )
    assert too_long.status == 400


async def test_api_idempotency_keys_are_scoped_per_api_key(
    api: tuple[BotHarness, TestClient, str],
) -> None:
    harness, client, key = api
    made = await harness.send("/apikey other --role admin", user="owner", workspace="T1")
    other = re.search(r"ck_[\w-]+", made.text).group(0)  # type: ignore[union-attr]
    body = {"model": "Qwen/Qwen2.5-0.5B-Instruct"}
    h1 = _headers(key, **{"Idempotency-Key": "same"})
    h2 = _headers(other, **{"Idempotency-Key": "same"})
    a = await (await client.post("/api/v1/tools/deploy_model", headers=h1, json=body)).json()
    b = await (await client.post("/api/v1/tools/deploy_model", headers=h2, json=body)).json()
    assert a["approval_id"] != b["approval_id"]  # another key's answer is never replayed


async def test_api_idempotency_key_reused_with_other_arguments_is_422(
    api: tuple[BotHarness, TestClient, str],
) -> None:
    """A key names one request: reusing it with other arguments is refused (422, as the IETF
    Idempotency-Key draft and Stripe answer), not answered with the first request's result as
    if the second had run."""
    harness, client, key = api
    headers = _headers(key, **{"Idempotency-Key": "deploy-x"})
    first = await client.post(
        "/api/v1/tools/deploy_model", headers=headers, json={"model": "Qwen/Qwen2.5-0.5B-Instruct"}
    )
    assert first.status == 202
    other = await client.post(
        "/api/v1/tools/deploy_model", headers=headers, json={"model": "meta-llama/Llama-3.1-8B"}
    )
    assert other.status == 422, await other.text()
    assert "different arguments" in (await other.json())["detail"]
    assert count(harness, Approval) == 1  # nothing new was asked for
    # The same arguments, in another order and spacing, are the same request.
    same = await client.post(
        "/api/v1/tools/deploy_model",
        headers=headers,
        data='{ "model" : "Qwen/Qwen2.5-0.5B-Instruct" }',
    )
    assert same.status == 202
    assert (await same.json())["approval_id"] == (await first.json())["approval_id"]
    # A body refused as invalid binds no key: the corrected request may use it.
    retry = _headers(key, **{"Idempotency-Key": "deploy-y"})
    bad = await client.post("/api/v1/tools/deploy_model", headers=retry, json={"modle": "x"})
    assert bad.status == 400
    fixed = await client.post(
        "/api/v1/tools/deploy_model", headers=retry, json={"model": "Qwen/Qwen2.5-0.5B-Instruct"}
    )
    assert fixed.status == 202, await fixed.text()


async def test_openapi_documents_the_idempotency_key(
    api: tuple[BotHarness, TestClient, str],
) -> None:
    _, client, _ = api
    spec = await (await client.get("/api/v1/openapi.json")).json()
    post = spec["paths"]["/api/v1/tools/deploy_model"]["post"]
    params = [
        spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
        for p in post.get("parameters", [])
    ]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= params[0].items()


# --- Slack and Discord buttons carry client-controlled ids ----------------------------------


async def test_slack_button_value_past_64_bits_is_a_clear_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes.fake_slack import DEFAULT_TEAM_ID, FakeSlack
    from fakes.slack_env import CHANNEL
    from fakes.slack_env import slack_env as _env
    from fakes.slack_env import slack_tools as _tools
    from fakes.slack_env import texts as _texts

    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "SLACK_API_URL",
        "SLACK_SCOPES",
    ):
        monkeypatch.delenv(name, raising=False)
    users = {"UALICE": {"id": "UALICE", "name": "alice", "profile": {"display_name": "alice"}}}
    async with FakeSlack(users=users) as fake:
        async for slack in _env(tmp_path, fake, _tools()):
            for value in (TOO_BIG, "²", "9" * 5_000):
                payload = {
                    "type": "block_actions",
                    "user": {
                        "id": "UALICE",
                        "username": "alice",
                        "name": "alice",
                        "team_id": DEFAULT_TEAM_ID,
                    },
                    "api_app_id": "AFAKE",
                    "token": "legacy",
                    "container": {
                        "type": "message",
                        "message_ts": "1700000000.000001",
                        "channel_id": CHANNEL,
                    },
                    "trigger_id": slack.next_id("trigger-"),
                    "team": {"id": DEFAULT_TEAM_ID, "domain": "fake-team"},
                    "channel": {"id": CHANNEL, "name": "general"},
                    "message": {
                        "type": "message",
                        "ts": "1700000000.000001",
                        "text": "card",
                        "blocks": [],
                    },
                    "response_url": fake.response_url(slack.next_id("act")),
                    "actions": [
                        {
                            "action_id": "cockpit_approve",
                            "block_id": "approval",
                            "value": value,
                            "type": "button",
                            "action_ts": "1700000000.1",
                        }
                    ],
                }
                before = len(fake.calls)
                assert (await slack.interactive(payload)).status == 200
                await slack.adapter.drain()
                said = " ".join(_texts(c) for c in fake.calls[before:])
                assert "does not carry an approval id" in said, (value[:20], said)
                assert GENERIC not in said


async def test_discord_button_id_past_64_bits_is_a_clear_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes import discord_payloads as p
    from fakes.discord_env import discord_bot, embed_text

    async with discord_bot(tmp_path, monkeypatch, registry=_exploding_registry()) as env:
        await env.interact(p.slash_command("gate", {}))
        card = copy.deepcopy(env.fake.messages[max(env.fake.messages)])
        for row in card["components"]:  # a forged card: its buttons name approval 2**63
            for c in row["components"]:
                c["custom_id"] = c["custom_id"].replace(":1", f":{TOO_BIG}")
        env.fake.messages[int(card["id"])] = card
        for verb in ("approve", "cancel"):
            click = p.component_click(f"cockpit:{verb}:{TOO_BIG}", card)
            followups = await env.interact(click)
            text = " ".join(embed_text(f.embeds) for f in followups)
            assert "does not carry an approval id" in text and GENERIC not in text, text
