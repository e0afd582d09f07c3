"""Application commands generated from the registry: typed options, sync (API and CLI),
autocomplete, command lines; Discord roles mapped to bot roles."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import discord
import pytest
from fakes import discord_payloads as p
from fakes.discord_env import (
    ROOT,
    TOKEN,
    DiscordEnv,
    deploy_directly,
    discord_bot,
    embed_text,
)
from fakes.fake_discord import APPLICATION_ID, FakeDiscord

from bot.adapters.discord import sync_commands
from bot.adapters.discord_base import DiscordConfigError, parse_role_map
from bot.app import load_tool_modules
from bot.options import command_line
from bot.testing import test_settings as make_settings
from tools.contract import (
    REGISTRY,
    Role,
)

# --- generated commands, sync, autocomplete ------------------------------------------------


def _option(command: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in command["options"] if o["name"] == name)


async def test_sync_registers_typed_commands_from_the_registry(env: DiscordEnv) -> None:
    names = await env.adapter.sync(guild_id=p.GUILD_ID)
    put = env.fake.calls_matching(
        "PUT", rf"/applications/{APPLICATION_ID}/guilds/{p.GUILD_ID}/commands"
    )
    assert len(put) == 1
    sent = {c["name"]: c for c in put[0].json}
    registry_commands = {(t.command or t.name) for t in env.bot.services.registry.all()}
    assert set(names) == set(sent) == registry_commands

    deploy = sent["deploy"]
    model = _option(deploy, "model")
    assert model["type"] == 3 and model["required"] is True and model["autocomplete"] is True
    context = _option(deploy, "context")
    assert context["type"] == 4 and context.get("required") is False and context["min_value"] == 256
    mode = _option(deploy, "mode")
    assert mode["type"] == 3 and [c["value"] for c in mode["choices"]] == ["serverless", "pod"]
    assert _option(deploy, "protected")["type"] == 5
    assert _option(deploy, "workers_max")["max_value"] == 10
    assert _option(sent["status"], "deployment")["autocomplete"] is True
    assert _option(sent["budget"], "amount")["type"] == 10
    for command in sent.values():
        assert len(command["description"]) <= 100
        assert all(len(o["description"]) <= 100 for o in command.get("options", []))


async def test_sync_cli_path_global_and_per_guild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        settings = make_settings(tmp_path, DISCORD_BOT_TOKEN=TOKEN, DISCORD_API_URL=fake.url)
        names = await sync_commands(settings)
        assert "deploy" in names and fake.calls_matching(
            "PUT", rf"/applications/{APPLICATION_ID}/commands"
        )
        assert fake.api_base == discord.http.Route.BASE  # "/api/v10" added to a bare URL

        # The command line, as an operator runs it (a process of its own, on the same fake).
        env = {
            **os.environ,
            "DISCORD_BOT_TOKEN": TOKEN,
            "DISCORD_API_URL": fake.api_base,
            "COCKPIT_DATA_DIR": str(tmp_path),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "discord",
            "sync",
            "--guild",
            str(p.GUILD_ID),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, out.decode()
        assert "to server" in out.decode() and "/deploy" in out.decode()
        assert fake.calls_matching("PUT", rf"/applications/\d+/guilds/{p.GUILD_ID}/commands")

        bad = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "discord",
            "sync",
            cwd=ROOT,
            env={**env, "COCKPIT_DISCORD_ROLE_MAP": "Ops=boss"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(bad.communicate(), timeout=60)
        assert bad.returncode == 2 and "COCKPIT_DISCORD_ROLE_MAP" in out.decode()


async def test_autocomplete_deployments_and_models(env: DiscordEnv) -> None:
    await deploy_directly(env)
    ask = p.autocomplete("status", {"deployment": "qw"}, focused="deployment")
    await env.interact(ask)
    choices = env.fake.callbacks(int(ask["id"]))[0].payload
    assert choices["type"] == 8
    assert [c["value"] for c in choices["data"]["choices"]] == ["1"]
    assert "#1" in choices["data"]["choices"][0]["name"]

    ask = p.autocomplete("deploy", {"model": "qwen 0.5"}, focused="model")
    await env.interact(ask)
    values = [c["value"] for c in env.fake.callbacks(int(ask["id"]))[0].payload["data"]["choices"]]
    assert values == ["Qwen/Qwen2.5-0.5B-Instruct"]


def test_command_line_quotes_values() -> None:
    load_tool_modules()
    deploy = REGISTRY.by_command("deploy")
    chat = REGISTRY.by_command("chat")
    budget = REGISTRY.by_command("budget")
    assert deploy is not None and chat is not None and budget is not None
    line = command_line(
        deploy,
        {"model": "llama 8b", "context": 16384, "mode": "pod", "name": "it's", "protected": True},
    )
    assert line == "/deploy 'llama 8b' --context=16384 --mode=pod --name='it'\"'\"'s' --protected"
    parsed = deploy.parse_command(line.split(" ", 1)[1])
    assert parsed.model_dump(include={"model", "context", "mode", "name", "protected"}) == {
        "model": "llama 8b",
        "context": 16384,
        "mode": "pod",
        "name": "it's",
        "protected": True,
    }
    chat_line = command_line(chat, {"deployment": "3", "message": "don't --stop now"})
    assert chat.parse_command(chat_line.split(" ", 1)[1]).model_dump()["message"] == [
        "don't --stop now"
    ]
    # A skipped positional before a given one takes its default.
    assert command_line(budget, {"amount": 50.0}) == "/budget show 50"


# --- roles ----------------------------------------------------------------------------------


async def test_discord_roles_map_to_bot_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with discord_bot(
        tmp_path, monkeypatch, COCKPIT_DISCORD_ROLE_MAP="Admins=admin, Ops=member"
    ) as e:
        e.fake.roles[p.GUILD_ID] = [
            {"id": str(p.GUILD_ID), "name": "@everyone", "position": 0},
            {"id": str(p.ADMINS_ROLE_ID), "name": "Admins", "position": 2},
            {"id": str(p.OPS_ROLE_ID), "name": "Ops", "position": 1},
        ]
        # Alice is the first person here (owner by default), but Ops maps to member.
        followups = await e.interact(p.slash_command("whoami", roles=(p.OPS_ROLE_ID,)))
        assert "member" in embed_text(followups[-1].embeds)
        followups = await e.interact(
            p.slash_command("whoami", user_id=p.BOB_ID, roles=(p.OPS_ROLE_ID, p.ADMINS_ROLE_ID))
        )
        assert "admin" in embed_text(followups[-1].embeds)
        assert len(e.fake.calls_matching("GET", rf"/guilds/{p.GUILD_ID}/roles")) == 1  # cached

        # The mapped admin may decide someone else's approval.
        await e.interact(p.slash_command("deploy", {"model": "qwen 0.5b"}, roles=(p.OPS_ROLE_ID,)))
        card = e.fake.messages[max(e.fake.messages)]
        click = p.component_click(
            "cockpit:cancel:1", card, user_id=p.BOB_ID, roles=(p.ADMINS_ROLE_ID,)
        )
        await e.interact(click)
        edit = e.fake.calls_matching("PATCH", rf"/webhooks/\d+/{click['token']}/messages/@original")
        assert f"Cancelled by <@{p.BOB_ID}>" in embed_text(edit[0].embeds)


def test_role_map_parsing() -> None:
    assert parse_role_map("Admins=admin, Ops = member ,123=viewer") == {
        "admins": Role.admin,
        "ops": Role.member,
        "123": Role.viewer,
    }
    assert parse_role_map("") == {}
    with pytest.raises(DiscordConfigError, match="COCKPIT_DISCORD_ROLE_MAP"):
        parse_role_map("Admins=superuser")


def test_payload_examples_are_json() -> None:
    assert json.loads(json.dumps(p.SLASH_COMMAND_EXAMPLE))["data"]["name"] == "deploy"
    assert json.loads(json.dumps(p.COMPONENT_CLICK_EXAMPLE))["data"]["custom_id"].startswith(
        "cockpit:"
    )
    assert re.fullmatch(r"\d{19}", p.SLASH_COMMAND_EXAMPLE["id"])
