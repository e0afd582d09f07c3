"""Alerts you can act on (issue 20), through the Slack and Discord fakes: the buttons on an
alert message (Acknowledge, Silence, Status, Stop via /fix) are command buttons that run as the
person who clicks, through the dispatcher (role, approval, audit); repeats and the resolve
thread under the first message, which is edited to show the incident's state. Time is the
harness's FakeClock."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fakes import discord_payloads as p
from fakes.discord_env import DiscordEnv, custom_ids, discord_bot, embed_text
from fakes.fake_discord import EPHEMERAL_FLAG
from fakes.fake_slack import BOT_USER_ID, DEFAULT_TEAM_ID, Call, FakeSlack
from fakes.slack_env import BOT_TOKEN, SIGNING_SECRET, SlackEnv, Tools, slack_env
from sqlmodel import select

from bot.testing import BotHarness, running_bot
from storage import audit, deployments
from storage.models import AlertAck, AlertSilence
from tools.alerts import router_of
from tools.clock import FakeClock
from tools.contract import REGISTRY, Platform, RequestContext, Role

ALERTS_CHANNEL = "C0ALERTS01"
LATE_CHANNEL = "C0ALERTS02"
IDLE_POLICY_MINUTES = 60
SHIPPED_TOOLS = Tools(registry=REGISTRY)  # the real tools, no stand-ins


def slack_ctx(bot: BotHarness, user: str, role: Role) -> RequestContext:
    return bot.cockpit.context_for(
        platform=Platform.slack,
        workspace_id=DEFAULT_TEAM_ID,
        workspace_name="fake-team",
        user_id=user,
        display_name=user.lower().removeprefix("u"),
        role=role,
    )


async def deploy_pod(bot: BotHarness, owner: RequestContext) -> int:
    ask = await bot.cockpit.handle(owner, "/deploy qwen 0.5b --mode pod")
    assert ask.approval_id is not None, ask.as_plain_text()
    done = await bot.cockpit.approve(owner, ask.approval_id)
    assert done.ok, done.as_plain_text()
    return int(done.title.split()[0].lstrip("#"))  # type: ignore[union-attr]


def dep_status(bot: BotHarness, org_id: int, dep_id: int) -> str:
    with bot.services.db.session() as s:
        row = deployments.get(s, org_id=org_id, deployment_id=dep_id)
    assert row is not None
    return row.status


# --- Slack ------------------------------------------------------------------------------------


@dataclass
class AlertSlack(SlackEnv):
    """The shared Slack harness, plus the owner and the alert channel's messages and buttons."""

    owner: RequestContext = field(kw_only=True)

    @classmethod
    def of(cls, env: SlackEnv, owner: RequestContext) -> AlertSlack:
        return cls(
            bot=env.bot,
            fake=env.fake,
            adapter=env.adapter,
            http=env.http,
            tools=env.tools,
            owner=owner,
        )

    def alert_posts(self) -> list[Call]:
        return [
            c
            for c in self.fake.calls_to("chat.postMessage")
            if c.body.get("channel") == ALERTS_CHANNEL and not c.body.get("thread_ts")
        ]

    def thread(self, ts: str) -> list[Call]:
        return [c for c in self.fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == ts]

    def buttons(self, call: Call) -> dict[str, tuple[str, str]]:
        """label -> (action_id, value) of the message's buttons."""
        return {
            e["text"]["text"]: (e["action_id"], e["value"])
            for b in call.blocks()
            if b["type"] == "actions"
            for e in b["elements"]
        }

    async def click(
        self,
        message: Call,
        label: str,
        *,
        user: str,
        value: str | None = None,
        thread_ts: str | None = None,
    ) -> None:
        """A block_actions payload for a button on `message` (its value can be tampered)."""
        action_id, real_value = self.buttons(message)[label]
        ts = self.fake_ts(message)
        msg: dict[str, Any] = {
            "type": "message",
            "ts": ts,
            "text": message.body.get("text"),
            "blocks": message.blocks(),
            "user": BOT_USER_ID,
        }
        if thread_ts:
            msg["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": user.lower(),
                "name": user.lower(),
                "team_id": DEFAULT_TEAM_ID,
            },
            "api_app_id": "AFAKE",
            "token": "legacy",
            "container": {"type": "message", "message_ts": ts, "channel_id": ALERTS_CHANNEL},
            "trigger_id": self.next_id("trigger-"),
            "team": {"id": DEFAULT_TEAM_ID, "domain": "fake-team"},
            "channel": {"id": ALERTS_CHANNEL, "name": "alerts"},
            "message": msg,
            "response_url": self.fake.response_url(self.next_id("act")),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "cockpit_actions",
                    "value": real_value if value is None else value,
                    "type": "button",
                    "action_ts": "1700000000.1",
                }
            ],
        }
        resp = await self.interactive(payload)
        assert resp.status == 200
        await self.adapter.drain()

    async def still_idle(self, dep_id: int) -> bool:
        """The idle sweep's condition fires again for `dep_id`: whether anything was sent."""
        return await router_of(self.bot.services).fire(
            org_id=self.owner.org_id,
            key=f"idle:{dep_id}",
            severity="warning",
            title="still idle",
            deployment_id=dep_id,
        )

    def private_notes(self) -> str:
        return "\n".join(
            json.dumps(c.body)
            for c in self.fake.calls
            if c.method in ("response_url", "chat.postEphemeral")
        )


def with_people(env: SlackEnv) -> AlertSlack:
    """Alice (owner), Bob (member) and Vic (viewer) in the Slack workspace."""
    owner = slack_ctx(env.bot, "UALICE", Role.owner)
    slack_ctx(env.bot, "UBOB", Role.member)
    slack_ctx(env.bot, "UVIC", Role.viewer)
    return AlertSlack.of(env, owner)


@pytest.fixture
async def slack(tmp_path: Path) -> AsyncIterator[AlertSlack]:
    async with FakeSlack() as fake:
        async for env in slack_env(tmp_path, fake, SHIPPED_TOOLS):
            alerts = with_people(env)
            added = await env.bot.cockpit.handle(
                alerts.owner, f"/alerts add slack {ALERTS_CHANNEL} --severity info"
            )
            assert added.ok, added.text
            yield alerts


async def idle_alert(env: AlertSlack) -> tuple[int, Call]:
    """A pod idle past the policy: the idle sweep posts one alert with its buttons."""
    dep_id = await deploy_pod(env.bot, env.owner)
    env.bot.clock.advance((IDLE_POLICY_MINUTES + 1) * 60)
    await env.bot.cockpit.background().run_job("idle")
    (alert,) = env.alert_posts()
    return dep_id, alert


async def test_slack_idle_alert_stop_by_member_approval_resolves_in_thread(
    slack: AlertSlack,
) -> None:
    dep_id, alert = await idle_alert(slack)
    assert "is idle and still billing" in alert.body["text"]
    labels = list(slack.buttons(alert))
    assert labels == ["Acknowledge", "Silence 1 h", "Silence 24 h", "Status", f"Stop #{dep_id}"]
    assert slack.buttons(alert)[f"Stop #{dep_id}"][1] == "/fix 1"
    alert_ts = slack.fake_ts(alert)

    # Bob (member) presses Stop: an approval card, in the alert's thread; nothing stopped yet.
    await slack.click(alert, f"Stop #{dep_id}", user="UBOB")
    (card,) = slack.thread(alert_ts)
    assert "Approve" in slack.buttons(card) and "Stop #" in card.body["text"]
    assert dep_status(slack.bot, slack.owner.org_id, dep_id) == "healthy"

    # Bob approves his own request: the pod stops, and the alert resolves in the same thread.
    await slack.click(card, "Approve", user="UBOB", thread_ts=alert_ts)
    assert dep_status(slack.bot, slack.owner.org_id, dep_id) == "stopped"
    texts = [c.body["text"] for c in slack.thread(alert_ts)]
    assert any(t.startswith(":white_check_mark: Resolved: #") for t in texts), texts
    assert len(slack.alert_posts()) == 1  # one line per incident in the channel

    # The original message now says "resolved" and has no buttons left.
    edits = [c for c in slack.fake.calls_to("chat.update") if c.body.get("ts") == alert_ts]
    assert edits and "Resolved after" in edits[-1].body["text"]
    assert not any(b["type"] == "actions" for b in edits[-1].blocks())

    with slack.bot.services.db.session() as s:
        rows = audit.query(s, org_id=slack.owner.org_id, tool="fix_alert")
    assert {r.outcome for r in rows} >= {"approval_requested", "approved", "succeeded"}


async def test_slack_viewer_may_acknowledge_but_not_stop(slack: AlertSlack) -> None:
    dep_id, alert = await idle_alert(slack)
    alert_ts = slack.fake_ts(alert)

    await slack.click(alert, f"Stop #{dep_id}", user="UVIC")
    assert "needs the member role" in slack.private_notes()
    assert slack.thread(alert_ts) == []  # the refusal went to the viewer alone
    assert dep_status(slack.bot, slack.owner.org_id, dep_id) == "healthy"

    await slack.click(alert, "Acknowledge", user="UVIC")
    with slack.bot.services.db.session() as s:
        (ack,) = s.exec(select(AlertAck)).all()
    assert ack.user_id == "UVIC"
    edit = [c for c in slack.fake.calls_to("chat.update") if c.body.get("ts") == alert_ts][-1]
    assert "Acknowledged by vic" in edit.body["text"]
    assert "Acknowledge" not in slack.buttons(edit)  # the remaining buttons stay

    # Repeats while acknowledged post nothing, anywhere, even past the cooldown.
    before = len(slack.fake.calls_to("chat.postMessage"))
    for _ in range(3):
        slack.bot.clock.advance(20 * 60)
        assert not await slack.still_idle(dep_id)
    assert len(slack.fake.calls_to("chat.postMessage")) == before

    # Status: the deployment's status, privately.
    await slack.click(alert, "Status", user="UVIC")
    notes = slack.private_notes()
    assert f"#{dep_id}" in notes and "healthy" in notes


async def test_slack_unacknowledged_repeat_threads_under_the_first_message(
    slack: AlertSlack,
) -> None:
    dep_id, alert = await idle_alert(slack)
    slack.bot.clock.advance(20 * 60)  # past the cooldown
    assert await slack.still_idle(dep_id)
    assert len(slack.alert_posts()) == 1
    (repeat,) = slack.thread(slack.fake_ts(alert))
    blocks = json.dumps(repeat.blocks(), ensure_ascii=False)
    assert "still idle" in repeat.body["text"] and "seen 2×" in blocks
    assert '"actions"' not in blocks  # the buttons stay on the first message
    edit = slack.fake.calls_to("chat.update")[-1]
    assert edit.body["ts"] == slack.fake_ts(alert) and "seen 2×" in json.dumps(
        edit.blocks(), ensure_ascii=False
    )


async def test_a_route_without_the_first_message_gets_a_full_one_on_a_repeat(
    slack: AlertSlack,
) -> None:
    """A route added (or whose first delivery failed) after the incident began has nothing to
    reply to: its first message of the incident carries the buttons, not a bare repeat."""
    dep_id, alert = await idle_alert(slack)
    added = await slack.bot.cockpit.handle(slack.owner, f"/alerts add slack {LATE_CHANNEL}")
    assert added.ok, added.text
    slack.bot.clock.advance(20 * 60)  # past the cooldown
    assert await slack.still_idle(dep_id)
    (late,) = [
        c for c in slack.fake.calls_to("chat.postMessage") if c.body.get("channel") == LATE_CHANNEL
    ]
    assert not late.body.get("thread_ts")
    assert "Acknowledge" in slack.buttons(late) and f"Stop #{dep_id}" in slack.buttons(late)
    assert not late.body["text"].startswith(":repeat:")
    (repeat,) = slack.thread(slack.fake_ts(alert))  # the first route still gets a reply
    assert '"actions"' not in json.dumps(repeat.blocks())


async def test_a_test_alert_is_sent_and_does_not_stay_open(slack: AlertSlack) -> None:
    sent = await slack.bot.cockpit.handle(slack.owner, "/alerts test")
    assert sent.ok and "sent to every route" in sent.text, sent.text
    (post,) = slack.alert_posts()
    assert "Test alert" in post.body["text"]
    listing = (await slack.bot.cockpit.handle(slack.owner, "/alerts")).text
    assert "Open alerts" not in listing, listing
    edit = slack.fake.calls_to("chat.update")[-1]  # the test message says it is over
    assert edit.body["ts"] == slack.fake_ts(post) and "Resolved after" in edit.body["text"]
    assert slack.buttons(edit) == {}


async def test_tampered_button_and_other_organisations_alert_are_refused(
    slack: AlertSlack,
) -> None:
    dep_id, alert = await idle_alert(slack)
    # An alert of another organisation (the console's): its id is not this workspace's.
    console = slack.bot.ctx(user="owner")
    other_id = None
    router = router_of(slack.bot.services)
    await router.fire(org_id=console.org_id, key="other:1", severity="critical", title="Theirs")
    with slack.bot.services.db.session() as s:
        from storage.models import Alert

        other = s.exec(select(Alert).where(Alert.org_id == console.org_id)).one()
        other_id = other.id
    for value in (
        "/alerts ack 99999999999999999999999",  # past the id column
        "/alerts ack ١",  # Arabic-Indic digit one
        "/alerts ack 1; drop table alert",
        f"/alerts ack {other_id}",
        f"/fix {other_id}",
        "/alerts silence 1 --hours 100000",
    ):
        await slack.click(alert, "Acknowledge", user="UBOB", value=value)
    notes = slack.private_notes()
    assert f"No alert #{other_id} here" in notes and "Which alert" in notes
    with slack.bot.services.db.session() as s:
        assert s.exec(select(AlertAck)).all() == []
        assert s.exec(select(AlertSilence)).all() == []
    assert dep_status(slack.bot, slack.owner.org_id, dep_id) == "healthy"
    assert slack.thread(slack.fake_ts(alert)) == []  # refusals are private


async def test_silence_holds_across_a_restart_and_ends_on_time(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "COCKPIT_SECRET_KEY": Fernet.generate_key().decode(),  # the same key after the restart
    }
    async with FakeSlack() as fake:
        async for shared in slack_env(tmp_path, fake, SHIPPED_TOOLS, clock=clock, **settings):
            env = with_people(shared)
            owner = env.owner
            assert (await env.bot.cockpit.handle(owner, f"/alerts add slack {ALERTS_CHANNEL}")).ok
            dep_id, alert = await idle_alert(env)
            await env.click(alert, "Silence 1 h", user="UVIC")  # a viewer may not
            assert "needs the member role" in env.private_notes()
            await env.click(alert, "Silence 1 h", user="UBOB")
            listing = (await env.bot.cockpit.handle(owner, "/alerts")).text
            assert "silence #1" in listing and "by bob" in listing and "ends" in listing
        silenced_at = clock.now()
        posts_before = len(fake.calls_to("chat.postMessage"))

        # A new process on the same database: the silence still holds.
        async with running_bot(
            tmp_path, clock=clock, SLACK_API_URL=fake.api_url, **settings
        ) as bot:
            router = router_of(bot.services)
            org_id = owner.org_id

            async def fire(key: str = f"idle:{dep_id}", severity: str = "warning") -> bool:
                return await router.fire(
                    org_id=org_id,
                    key=key,
                    severity=severity,
                    title=f"{key} firing",
                    deployment_id=dep_id,
                )

            clock.advance(20 * 60)
            assert not await fire()
            clock.advance(39 * 60)  # 59 min after the silence was set
            assert not await fire()
            # A silence never hides another key, critical or not.
            assert await fire(key=f"health:{dep_id}", severity="critical")
            assert len(fake.calls_to("chat.postMessage")) == posts_before + 1
            clock.advance(2 * 60)  # 61 min: the silence is over
            assert clock.now() - silenced_at > timedelta(hours=1)
            assert await fire()
            repeat = fake.calls_to("chat.postMessage")[-1]
            assert repeat.body.get("thread_ts") == env.fake_ts(alert)  # in the alert's thread
            listing = (await bot.cockpit.handle(owner, "/alerts")).text
            assert "silence #" not in listing

            # /alerts unsilence ends one early; another organisation cannot.
            again = await bot.cockpit.handle(owner, "/alerts silence 1 --hours 24")
            assert again.ok and "unsilence 2" in again.text
            console = bot.ctx(user="owner")
            assert not (await bot.cockpit.handle(console, "/alerts unsilence 2")).ok
            assert (await bot.cockpit.handle(owner, "/alerts unsilence 2")).ok
            clock.advance(20 * 60)
            assert await fire()


async def test_digest_lists_open_acknowledged_and_silenced_alerts(slack: AlertSlack) -> None:
    _, alert = await idle_alert(slack)
    await slack.click(alert, "Acknowledge", user="UBOB")
    router = router_of(slack.bot.services)
    await router.fire(
        org_id=slack.owner.org_id, key="orphan:x", severity="warning", title="Orphaned RunPod pod x"
    )
    assert (await slack.bot.cockpit.handle(slack.owner, "/alerts silence 2 --hours 48")).ok
    slack.bot.clock.advance(24 * 3600)
    await slack.bot.cockpit.background().run_job("digest")
    digest = [c for c in slack.alert_posts() if "Daily digest" in c.body["text"]]
    assert len(digest) == 1
    text = digest[0].body["text"]
    assert "Open alerts (2)" in text and "acknowledged by bob" in text
    assert "Silenced (1)" in text and "Orphaned RunPod pod x" in text
    assert slack.buttons(digest[0]) == {}  # an info message has nothing to act on


# --- Discord ----------------------------------------------------------------------------------


@dataclass
class AlertDiscord(DiscordEnv):
    """The shared Discord harness, plus the owner and a click on an alert's button."""

    owner: RequestContext = field(kw_only=True)

    async def click(self, custom_id: str, message: dict[str, Any], user_id: int) -> list[Any]:
        return await self.interact(p.component_click(custom_id, message, user_id=user_id))


def discord_ctx(bot: BotHarness, user_id: int, role: Role) -> RequestContext:
    return bot.cockpit.context_for(
        platform=Platform.discord,
        workspace_id=str(p.GUILD_ID),
        workspace_name="guild",
        user_id=str(user_id),
        display_name=p.USER_NAMES[user_id],
        role=role,
    )


@pytest.fixture
async def dc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AlertDiscord]:
    async with discord_bot(tmp_path, monkeypatch) as env:
        bot = env.bot
        bot.services.discord_client = env.adapter.client
        owner = discord_ctx(bot, p.ALICE_ID, Role.owner)
        discord_ctx(bot, p.BOB_ID, Role.member)
        discord_ctx(bot, p.CAROL_ID, Role.viewer)
        added = await bot.cockpit.handle(owner, f"/alerts add discord {p.CHANNEL_ID}")
        assert added.ok, added.text
        try:
            yield AlertDiscord(bot=bot, fake=env.fake, adapter=env.adapter, owner=owner)
        finally:
            bot.services.discord_client = None


async def test_discord_idle_alert_stop_approval_resolves_as_a_reply(dc: AlertDiscord) -> None:
    dep_id = await deploy_pod(dc.bot, dc.owner)
    dc.bot.clock.advance((IDLE_POLICY_MINUTES + 1) * 60)
    await dc.bot.cockpit.background().run_job("idle")
    (post,) = dc.fake.calls_matching("POST", rf"/channels/{p.CHANNEL_ID}/messages$")
    alert_id = int(post.embeds[0]["footer"]["text"].split("alert #")[1].split()[0])
    original = max(dc.fake.messages)
    message = copy.deepcopy(dc.fake.messages[original])
    assert custom_ids(message) == [
        f"cockpit:cmd:alerts ack {alert_id}",
        f"cockpit:cmd:alerts silence {alert_id} --hours 1",
        f"cockpit:cmd:alerts silence {alert_id} --hours 24",
        f"cockpit:cmd:alerts status {alert_id}",
        f"cockpit:cmd:fix {alert_id}",
    ]
    assert "Firing since" in embed_text(message["embeds"])

    # Carol (viewer): Stop is refused, privately; Acknowledge is allowed and shows on the alert.
    (refusal,) = await dc.click(f"cockpit:cmd:fix {alert_id}", message, p.CAROL_ID)
    assert refusal.flags & EPHEMERAL_FLAG and "needs the member role" in embed_text(refusal.embeds)
    (noted,) = await dc.click(f"cockpit:cmd:alerts ack {alert_id}", message, p.CAROL_ID)
    assert noted.flags & EPHEMERAL_FLAG and "Acknowledged alert" in embed_text(noted.embeds)
    shown = dc.fake.messages[original]
    assert "Acknowledged by carol" in embed_text(shown["embeds"])
    assert f"cockpit:cmd:alerts ack {alert_id}" not in custom_ids(shown)

    # Bob (member) presses Stop: an approval card; he approves; the pod stops.
    (card_call,) = await dc.click(f"cockpit:cmd:fix {alert_id}", message, p.BOB_ID)
    assert not card_call.flags & EPHEMERAL_FLAG
    card = copy.deepcopy(
        next(m for m in dc.fake.messages.values() if "cockpit:approve" in json.dumps(m))
    )
    approve = next(c for c in custom_ids(card) if c.startswith("cockpit:approve:"))
    await dc.click(approve, card, p.BOB_ID)
    assert dep_status(dc.bot, dc.owner.org_id, dep_id) == "stopped"

    # The resolve is a reply to the alert; the alert itself now says resolved, no buttons.
    replies = [
        c
        for c in dc.fake.calls_matching("POST", rf"/channels/{p.CHANNEL_ID}/messages$")
        if str((c.payload.get("message_reference") or {}).get("message_id")) == str(original)
    ]
    assert len(replies) == 1 and "Resolved:" in embed_text(replies[0].embeds)
    final = dc.fake.messages[original]
    assert "Resolved after" in embed_text(final["embeds"]) and custom_ids(final) == []
