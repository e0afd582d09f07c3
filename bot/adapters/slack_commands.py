"""Slash commands (`/cockpit <sub>` and the shortcuts), command buttons and the /connect modal.

Every command takes the same path: ack at once (empty body), then in the background
`Cockpit.handle(ctx, "/<command> <text>")` with the command's trigger_id as idempotency key.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import router
from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_base import (
    SlackSurface,
    ephemeral_reply,
    payload_channel,
    payload_team_id,
)
from bot.logs import SECRETS
from tools.contract import Reply, RequestContext

UMBRELLA_COMMAND = blocks.UMBRELLA_COMMAND
SHORTCUT_COMMANDS = blocks.SHORTCUT_COMMANDS
# Slack built-ins an app must not register: reached as `/cockpit status`, `/cockpit invite`.
SLACK_BUILTIN_COMMANDS = ("status", "invite")
CONNECT_COMMAND = "connect"
CONNECT_TOOL = "connect_provider"
CONNECT_UNAVAILABLE = (
    "Connecting provider keys isn't available yet in this build, so nothing was stored. "
    "Ask an admin to set the key in the bot's environment instead."
)


CHAT_COMMAND = "chat"


class CommandHandlers:
    def __init__(self, surface: SlackSurface) -> None:
        self.surface = surface

    # -- slash commands -------------------------------------------------------------------

    async def on_command(
        self, ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient
    ) -> None:
        await ack()
        self.surface.work.spawn(
            self.run_command(command, respond, client),
            what="command",
            on_error=ephemeral_reply(respond),
        )

    async def run_command(
        self, command: dict[str, Any], respond: Any, client: AsyncWebClient
    ) -> None:
        name = str(command.get("command") or "").lstrip("/").lower()
        line = f"/{name} {(command.get('text') or '').strip()}".strip()
        trigger = str(command.get("trigger_id") or "")
        surface, cockpit = self.surface, self.surface.cockpit
        surface.remember_team(command.get("team_id"), command.get("team_domain"))
        ctx = await surface.context(
            client,
            team_id=command["team_id"],
            team_name=command.get("team_domain"),
            user_id=command["user_id"],
            user_name=command.get("user_name"),
            channel=command.get("channel_id"),
            idempotency_key=f"slack:{trigger}" if trigger else None,
        )
        if trigger and not await cockpit.first_delivery(ctx, f"slack:delivery:{trigger}"):
            return  # the same command delivered again (Socket Mode redelivery)
        sub, rest = router.split_command(line)
        if sub == CONNECT_COMMAND:
            await self.open_connect(ctx, client, respond, trigger_id=trigger, provider=rest)
            return
        conversation = surface.conversation(
            client,
            channel=command["channel_id"],
            user=command["user_id"],
            thread_ts=command.get("thread_ts"),
            respond=respond,
            label=line,
            private_errors=True,
            broadcast_final=not command.get("thread_ts"),
            team_id=command.get("team_id"),
        )
        if sub == CHAT_COMMAND and rest and not conversation.via_response_url:
            # `/chat <deployment>` opens a thread bound to that deployment: replies there go on
            # talking to the model (the conversation is keyed by this thread).
            opener = blocks.SlackMessage(
                text=f":speech_balloon: Chat with `{blocks.escape(rest)}`: reply in "
                "this thread to talk to the model.",
                blocks=[],
            )
            conversation.thread_ts = await conversation.post(opener)
            ctx = ctx.model_copy(update={"thread": conversation.thread_ts})
        reply = await cockpit.handle(
            ctx, line, progress=conversation.progress, stream=conversation.stream
        )
        if command.get("thread_ts") and not reply.ok and not conversation.progress_count:
            # A refused button click: only the clicker hears why, not the whole thread.
            reply.ephemeral = True
        await conversation.send(reply)

    async def on_other_action(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        """Buttons other than Approve/Cancel: `cockpit_command` (`cockpit_command_<n>` when a
        message has several) runs its value as a command, as the person who clicked; the
        answer goes into the clicked message's thread."""
        await ack()
        if not blocks.is_command_action(str(action.get("action_id") or "")):
            return
        user = body.get("user") or {}
        message = body.get("message") or {}
        command = {
            "command": "/" + UMBRELLA_COMMAND,
            "text": str(action.get("value") or "").lstrip("/"),
            "team_id": payload_team_id(body),
            "team_domain": (body.get("team") or {}).get("domain"),
            "user_id": user["id"],
            "user_name": user.get("name") or user.get("username"),
            "channel_id": payload_channel(body),
            "trigger_id": body.get("trigger_id"),
            "thread_ts": message.get("thread_ts") or message.get("ts"),
        }
        self.surface.work.spawn(
            self.run_command(command, respond, client),
            what="button command",
            on_error=ephemeral_reply(respond),
        )

    # -- /connect: keys go through a private modal, never a channel -----------------------

    async def open_connect(
        self,
        ctx: RequestContext,
        client: AsyncWebClient,
        respond: Any,
        *,
        trigger_id: str,
        provider: str,
    ) -> None:
        if self.surface.cockpit.services.registry.get(CONNECT_TOOL) is None:
            await respond(text=CONNECT_UNAVAILABLE, response_type="ephemeral")
            return
        # Only the first word names the provider; anything after it (a key typed inline) is
        # deliberately dropped, never echoed.
        name = (provider.split() or [""])[0].lower() or None
        view = blocks.connect_modal(provider=name, metadata={"channel": ctx.channel})
        await client.views_open(trigger_id=trigger_id, view=view)

    async def on_connect_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any
    ) -> None:
        values = (view.get("state") or {}).get("values") or {}
        key_input = (values.get(blocks.CONNECT_KEY_BLOCK) or {}).get(blocks.CONNECT_KEY_ACTION)
        key = str((key_input or {}).get("value") or "").strip()
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        provider = metadata.get("provider")
        if not provider:
            chosen = (values.get(blocks.CONNECT_PROVIDER_BLOCK) or {}).get(
                blocks.CONNECT_PROVIDER_ACTION
            ) or {}
            provider = (chosen.get("selected_option") or {}).get("value")
        if not key:
            await ack(response_action="errors", errors={blocks.CONNECT_KEY_BLOCK: "Paste the key."})
            return
        await ack()
        # The task copies this context: the key is redacted in its log lines while it is
        # verified, and joins the organisation's redaction set only once stored.
        user_id = str((body.get("user") or {}).get("id") or "")
        with SECRETS.pending(key):
            self.surface.work.spawn(
                self.connect(body, client, provider=provider or "", key=key, metadata=metadata),
                what="connect",
                # a crash is never silent: the app's DM tells the person (the modal is gone)
                on_error=lambda text: client.chat_postMessage(channel=user_id, text=text),
            )

    async def connect(
        self,
        body: dict[str, Any],
        client: AsyncWebClient,
        *,
        provider: str,
        key: str,
        metadata: dict[str, Any],
    ) -> None:
        user = body.get("user") or {}
        channel = metadata.get("channel") or user["id"]
        surface, cockpit = self.surface, self.surface.cockpit
        ctx = await surface.body_context(client, body, channel=channel)
        if cockpit.services.registry.get(CONNECT_TOOL) is None:
            reply = Reply(text=CONNECT_UNAVAILABLE, ok=False)
        else:
            reply = await cockpit.run_tool(ctx, CONNECT_TOOL, {"provider": provider, "key": key})
        message = blocks.render_reply(reply, sandbox=surface.sandbox)
        try:
            await client.chat_postEphemeral(channel=channel, user=user["id"], **message.as_kwargs())
        except SlackApiError:  # not in that channel: tell them in the app's DM instead
            await client.chat_postMessage(channel=user["id"], **message.as_kwargs())
