"""`cockpit web` around the Slack surface: /healthz and /readyz, the port and configuration,
the process itself (started, serving, stopped by SIGTERM) and the app manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from fakes.fake_slack import FakeSlack
from fakes.loopback import free_port
from fakes.slack_env import (
    ROOT,
    SlackEnv,
)

from bot.adapters.slack import SlackAdapter, SlackConfigError
from bot.app import Cockpit
from bot.cli import EXIT_TERMINATED
from bot.testing import running_bot
from bot.testing import test_settings as make_settings
from bot.web import build_web_app, resolve_port

# --- cockpit web: health, readiness, configuration -----------------------------------------


async def test_healthz_and_readyz(slack: SlackEnv) -> None:
    health = await slack.http.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok"}
    ready = await slack.http.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_readyz_is_503_when_migrations_are_missing(tmp_path: Path) -> None:
    cockpit = Cockpit(make_settings(tmp_path))  # never started: the schema was not applied
    try:
        async with TestClient(TestServer(build_web_app(cockpit), host="127.0.0.1")) as http:
            resp = await http.get("/readyz")
            body = await resp.json()
            assert resp.status == 503
            assert "migrations are not current" in body["reason"]
            assert "cockpit db upgrade" in body["reason"]
            assert (await http.get("/healthz")).status == 200
            missing = await http.post("/slack/events", data=b"{}")
            assert missing.status == 404 and "SLACK_SIGNING_SECRET" in (await missing.text())
    finally:
        cockpit.db.dispose()


def test_port_resolution_and_configuration_errors(tmp_path: Path) -> None:
    assert resolve_port(8080, 5000, 3000) == 8080
    assert resolve_port(None, 5000, 3000) == 5000
    assert resolve_port(None, None, 3000) == 3000
    cockpit = Cockpit(make_settings(tmp_path, SLACK_SIGNING_SECRET="s"))
    try:
        with pytest.raises(SlackConfigError, match="SLACK_BOT_TOKEN"):
            SlackAdapter(cockpit, mode="http")
        with pytest.raises(SlackConfigError, match="SLACK_APP_TOKEN"):
            SlackAdapter(cockpit, mode="socket")
    finally:
        cockpit.db.dispose()


def test_cockpit_web_serves_health_on_port_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "COCKPIT_DATA_DIR": str(tmp_path),
            "COCKPIT_SANDBOX": "on",
            "COCKPIT_SECRET_KEY": Fernet.generate_key().decode(),
            "PORT": str(port),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "web"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert health == {"status": "ok"}, proc.stderr.read() if proc.stderr else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert json.loads(r.read())["status"] == "ready"
        proc.send_signal(signal.SIGTERM)
        # The CLI cancels the server on SIGTERM, cleans up, and exits 143 (terminated).
        assert proc.wait(timeout=30) == EXIT_TERMINATED
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_manifest_matches_the_code() -> None:
    import yaml

    from bot.adapters.slack_commands import SHORTCUT_COMMANDS, SLACK_BUILTIN_COMMANDS
    from bot.slack_oauth import BOT_SCOPES

    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    commands = [c["command"].lstrip("/") for c in manifest["features"]["slash_commands"]]
    assert commands == ["cockpit", *SHORTCUT_COMMANDS]
    assert not set(commands) & set(SLACK_BUILTIN_COMMANDS)
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.im",
        "message.channels",
        "message.groups",
        "app_home_opened",
        "assistant_thread_started",
        "assistant_thread_context_changed",
    }
    assert "assistant:write" in BOT_SCOPES
    assert manifest["features"]["assistant_view"]["assistant_description"]
    assert settings["interactivity"]["is_enabled"] and settings["socket_mode_enabled"]


async def test_cockpit_run_with_a_rejected_token_says_what_to_fix(
    tmp_path: Path, fake: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.adapters.slack_run import run_slack

    fake.fail_once("auth.test", "invalid_auth")
    settings = {
        "SLACK_BOT_TOKEN": "xoxb-revoked",
        "SLACK_APP_TOKEN": "xapp-1-test-token",
        "SLACK_API_URL": fake.api_url,
    }
    async with running_bot(tmp_path, **settings) as bot:
        assert await run_slack(bot.cockpit, console=False) == 2
    err = capsys.readouterr().err
    assert "Slack refused to connect (invalid_auth)" in err and "SLACK_BOT_TOKEN" in err
    assert "Traceback" not in err


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cockpit = Cockpit(make_settings(tmp_path, DATABASE_URL=f"postgresql://x@127.0.0.1:{port}/db"))
    try:
        async with TestClient(TestServer(build_web_app(cockpit), host="127.0.0.1")) as http:
            resp = await http.get("/readyz")
            assert resp.status == 503
            assert "database is unreachable" in (await resp.json())["reason"]
    finally:
        cockpit.db.dispose()
