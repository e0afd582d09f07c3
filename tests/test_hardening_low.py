"""Issue 14, Low findings 9, 10, 11 and 13: each test reproduced its finding on the code before
the fix (alert targets, bind address / metrics token / file modes, one bad route stopping the
others, invites bound to a display name)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet
from sqlmodel import select
from test_monitor import WEBHOOK_ID, WEBHOOK_TOKEN, FakeDiscordWebhooks

from bot.testing import BotHarness, running_bot
from storage.db import Database
from storage.models import AlertDelivery, AlertRoute
from tools.contract import Platform, Reply, RequestContext

GOOD_TAIL = f"/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"


@pytest.fixture
async def hooks():
    fake = FakeDiscordWebhooks()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bot(tmp_path: Path, hooks: FakeDiscordWebhooks):
    async with running_bot(tmp_path, DISCORD_API_URL=f"{hooks.url}/api/v10") as harness:
        await harness.send("/whoami", user="owner")
        yield harness


def _routes(bot: BotHarness) -> list[AlertRoute]:
    with bot.services.db.session() as s:
        return list(s.exec(select(AlertRoute)))


def _deliveries(bot: BotHarness) -> list[AlertDelivery]:
    with bot.services.db.session() as s:
        return list(s.exec(select(AlertDelivery).order_by(AlertDelivery.id)))  # type: ignore[arg-type]


def _store_route(bot: BotHarness, *, kind: str, target_encrypted: str, label: str) -> None:
    with bot.services.db.session() as s:
        s.add(
            AlertRoute(
                org_id=1,
                kind=kind,
                target_encrypted=target_encrypted,
                target_label=label,
                min_severity="info",
                created_by="owner",
                created_at=bot.clock.now(),
            )
        )


# --- 9. alert targets: only Discord's own webhook URLs, only Slack channel names / ids ---------


@pytest.mark.parametrize(
    "url",
    [
        f"https://127.0.0.1{GOOD_TAIL}",
        f"https://169.254.169.254{GOOD_TAIL}",
        f"https://localhost{GOOD_TAIL}",
        f"https://evil.example/discord.com{GOOD_TAIL}",  # a discord path under another host
        f"https://discord.com.evil.example{GOOD_TAIL}",
        f"https://evildiscord.com{GOOD_TAIL}",
        f"https://discord.com@127.0.0.1{GOOD_TAIL}",
        f"https://discord.com:8443{GOOD_TAIL}",
        f"http://discord.com{GOOD_TAIL}",
        f"https://discord.com{GOOD_TAIL}?wait=true#x",
        f"https://discord.com/api/webhooks/{WEBHOOK_ID}/short",
        f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}/../../users/@me",
    ],
)
async def test_alert_webhook_outside_discord_is_refused(bot: BotHarness, url: str) -> None:
    added = await bot.send(f"/alerts add discord {url}", user="owner")
    assert not added.ok, added.text
    assert "Discord webhook URL" in added.text
    assert _routes(bot) == []


@pytest.mark.parametrize(
    "host", ["discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"]
)
async def test_discord_webhook_hosts_are_accepted(bot: BotHarness, hooks, host: str) -> None:
    added = await bot.send(f"/alerts add discord https://{host}{GOOD_TAIL}", user="owner")
    assert added.ok, added.text
    assert await bot.cockpit.background().router.fire(
        org_id=1, key="k", severity="critical", title="Down"
    )
    assert hooks.titles() == ["Down"]


@pytest.mark.parametrize(
    "target",
    [
        "https://hooks.slack.com/services/T0000/B0000/XXXXXXXX",  # not a route kind here
        "#ops;drop",
        "#a b",
        "#" + "x" * 81,
        "<@U123>",
    ],
)
async def test_slack_alert_target_must_be_a_channel(bot: BotHarness, target: str) -> None:
    added = await bot.send(f"/alerts add slack '{target}'", user="owner")
    assert not added.ok, added.text
    assert "Slack channel" in added.text
    assert _routes(bot) == []


async def test_slack_channel_names_and_ids_are_accepted(bot: BotHarness) -> None:
    for target, label in (
        ("#ops", "#ops"),
        ("alerts-gpu_1", "#alerts-gpu_1"),
        ("C0123ABCD", "#C0123ABCD"),
        ("<#C0456EFGH|ops>", "#C0456EFGH"),
    ):
        added = await bot.send(f"/alerts add slack '{target}'", user="owner")
        assert added.ok and label in added.text, added.text


async def test_discord_channel_id_must_be_a_snowflake(bot: BotHarness) -> None:
    for target in ("²", "12", "1" * 40):
        added = await bot.send(f"/alerts add discord {target}", user="owner")
        assert not added.ok, added.text
    assert _routes(bot) == []


async def test_alerts_remove_needs_a_plain_route_id(bot: BotHarness) -> None:
    for ref in ("²", "9" * 200):
        removed = await bot.send(f"/alerts remove {ref}", user="owner")
        assert not removed.ok and "Which route" in removed.text, removed.text


async def test_old_route_with_a_bad_url_is_refused_at_delivery(bot: BotHarness, hooks) -> None:
    # discord.py sends to its Route.BASE whatever host the URL names: without our check the fake
    # (standing in for discord.com) would receive this one.
    bad = f"https://169.254.169.254/discord.com{GOOD_TAIL}"
    _store_route(
        bot, kind="discord_webhook", target_encrypted=bot.services.secrets.encrypt(bad), label="old"
    )
    await bot.cockpit.background().router.fire(org_id=1, key="k", severity="critical", title="X")
    assert hooks.messages == []
    (row,) = _deliveries(bot)
    assert row.status == "failed" and "Discord webhook URL" in (row.error or "")
    assert row.attempts == 1  # a bad target is not retried


# --- 11. one route that cannot be decrypted does not stop the others --------------------------


async def test_undecryptable_route_does_not_stop_later_routes(bot: BotHarness, hooks) -> None:
    _store_route(bot, kind="discord_webhook", target_encrypted="gAAAA-not-a-token", label="broken")
    assert (await bot.send(f"/alerts add discord https://discord.com{GOOD_TAIL}", user="owner")).ok
    sent = await bot.cockpit.background().router.fire(
        org_id=1, key="k", severity="critical", title="Down"
    )
    assert sent
    assert hooks.titles() == ["Down"]
    first, second = _deliveries(bot)
    assert first.status == "failed" and "decrypt" in (first.error or "")
    assert second.status == "sent"


# --- 10. bind address, metrics token, file modes -----------------------------------------------


def test_web_binds_loopback_unless_told(tmp_path: Path) -> None:
    from bot.testing import test_settings
    from bot.web import resolve_host

    assert test_settings(tmp_path).host == "127.0.0.1"
    assert resolve_host(None, test_settings(tmp_path)) == "127.0.0.1"
    assert resolve_host(None, test_settings(tmp_path, COCKPIT_HOST="0.0.0.0")) == "0.0.0.0"
    assert resolve_host("::1", test_settings(tmp_path, COCKPIT_HOST="0.0.0.0")) == "::1"
    procfile = (Path(__file__).parents[1] / "Procfile").read_text()
    assert "cockpit web --host 0.0.0.0 --port $PORT" in procfile


def test_web_command_has_a_host_option() -> None:
    from click.testing import CliRunner

    from bot.cli import main

    out = CliRunner().invoke(main, ["web", "--help"])
    assert out.exit_code == 0 and "--host" in out.output


async def test_metrics_token_is_required_when_set(tmp_path: Path) -> None:
    from bot.web import build_web_app

    async with (
        running_bot(tmp_path, COCKPIT_METRICS_TOKEN="s3cret-metrics") as bot,
        TestClient(TestServer(build_web_app(bot.cockpit))) as http,
    ):
        assert (await http.get("/metrics")).status == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        basic = await http.get("/metrics", headers={"Authorization": "Basic s3cret-metrics"})
        assert basic.status == 401
        ok = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert ok.status == 200 and "cockpit_" in await ok.text()
        assert (await http.get("/healthz")).status == 200  # health checks stay open


async def test_metrics_stay_open_without_a_token(tmp_path: Path) -> None:
    from bot.web import build_web_app

    async with (
        running_bot(tmp_path) as bot,
        TestClient(TestServer(build_web_app(bot.cockpit))) as http,
    ):
        assert (await http.get("/metrics")).status == 200


async def test_worker_metrics_server_checks_the_token() -> None:
    from bot.web import metrics_app

    async with TestClient(TestServer(metrics_app(token="w-token"))) as http:
        assert (await http.get("/metrics")).status == 401
        ok = await http.get("/metrics", headers={"Authorization": "Bearer w-token"})
        assert ok.status == 200
    async with TestClient(TestServer(metrics_app(token=None))) as http:
        assert (await http.get("/metrics")).status == 200


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_file_and_its_folder_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        db = Database(f"sqlite:///{tmp_path / 'data' / 'cockpit.db'}")
        db.upgrade()
    finally:
        os.umask(old)
    try:
        assert _mode(tmp_path / "data") == 0o700
        for name in ("cockpit.db", "cockpit.db-wal", "cockpit.db-shm"):
            path = tmp_path / "data" / name
            if path.exists() or name == "cockpit.db":
                assert _mode(path) == 0o600, name
    finally:
        db.dispose()


def test_existing_loose_sqlite_files_are_tightened(tmp_path: Path) -> None:
    first = Database(f"sqlite:///{tmp_path / 'cockpit.db'}")
    first.upgrade()
    first.dispose()
    for name in ("cockpit.db", "cockpit.db-wal", "cockpit.db-shm"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o644)
    again = Database(f"sqlite:///{tmp_path / 'cockpit.db'}")
    try:
        for name in ("cockpit.db", "cockpit.db-wal", "cockpit.db-shm"):
            if (tmp_path / name).exists():
                assert _mode(tmp_path / name) == 0o600, name
    finally:
        again.dispose()


def test_data_folder_with_the_generated_key_is_private(tmp_path: Path) -> None:
    from storage.crypto import load_secret_box

    fresh = tmp_path / "fresh"
    old = os.umask(0o022)
    try:
        load_secret_box(None, fresh)
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o755)
        load_secret_box(None, loose)
        keyed = tmp_path / "keyed"  # the key comes from the environment; the folder holds the db
        keyed.mkdir(mode=0o755)
        load_secret_box(Fernet.generate_key().decode(), keyed)
    finally:
        os.umask(old)
    assert _mode(fresh) == 0o700 and _mode(fresh / "secret.key") == 0o600
    assert _mode(loose) == 0o700 and _mode(keyed) == 0o700


# --- 13. /join is bound to the invited platform user id, not a display name -------------------


def _slack(bot: BotHarness, *, user_id: str, name: str, workspace: str = "T1") -> RequestContext:
    return bot.cockpit.context_for(
        platform=Platform.slack,
        workspace_id=workspace,
        workspace_name=workspace,
        user_id=user_id,
        display_name=name,
        channel="C1",
    )


async def _say(bot: BotHarness, ctx: RequestContext, text: str) -> Reply:
    return await bot.cockpit.handle(ctx, text)


def _code(reply: Reply) -> str:
    import re

    m = re.search(r"CK-[0-9A-F]{8}-[0-9A-F]{8}", reply.text)
    assert m, reply.text
    return m.group(0)


async def test_invite_by_mention_ignores_a_copied_display_name(cockpit: BotHarness) -> None:
    owner = _slack(cockpit, user_id="U0OWNER01", name="olivia")
    invite = await _say(cockpit, owner, "/invite <@U0BOB0001> --role admin")
    assert invite.ok, invite.text
    assert "U0BOB0001" in (invite.title or "") + invite.text  # says who it is for
    code = _code(invite)
    # mallory names herself after bob's id (and after bob): display names are hers to choose
    for name in ("U0BOB0001", "bob"):
        mallory = _slack(cockpit, user_id="U0MAL0001", name=name, workspace="T9")
        refused = await _say(cockpit, mallory, f"/join {code}")
        assert not refused.ok and "for someone else" in refused.text
    bob = _slack(cockpit, user_id="U0BOB0001", name="Bobby", workspace="T8")
    welcome = await _say(cockpit, bob, f"/join {code}")
    assert welcome.ok, welcome.text


async def test_invite_by_name_binds_the_member_id(cockpit: BotHarness) -> None:
    owner = _slack(cockpit, user_id="U0OWNER01", name="olivia")
    _slack(cockpit, user_id="U0BOB0001", name="bob")  # bob is known here
    invite = await _say(cockpit, owner, "/invite @bob --role admin")
    assert invite.ok and "U0BOB0001" in (invite.title or "") + invite.text, invite.text
    code = _code(invite)
    mallory = _slack(cockpit, user_id="U0MAL0001", name="bob", workspace="T9")
    refused = await _say(cockpit, mallory, f"/join {code}")
    assert not refused.ok and "for someone else" in refused.text
    bob = _slack(cockpit, user_id="U0BOB0001", name="bob")
    assert (await _say(cockpit, bob, f"/join {code}")).ok
    assert _slack(cockpit, user_id="U0BOB0001", name="bob").role.value == "admin"


async def test_invite_for_an_unknown_name_says_how_to_name_the_person(
    cockpit: BotHarness,
) -> None:
    owner = _slack(cockpit, user_id="U0OWNER01", name="olivia")
    unknown = await _say(cockpit, owner, "/invite carol")
    assert not unknown.ok
    assert "carol" in unknown.text and "user id" in unknown.text
    other = await _say(cockpit, owner, "/invite discord:123456789012345678")
    assert other.ok and "discord" in (other.title or "") + other.text, other.text
    code = _code(other)
    same_id_on_slack = _slack(cockpit, user_id="123456789012345678", name="x", workspace="T9")
    assert not (await _say(cockpit, same_id_on_slack, f"/join {code}")).ok
