"""Approve / Cancel buttons on approval cards.

`Cockpit.decide` decides (who may click, what happened); this module only reports: an undecided
click is told to the clicker alone (the card stays), a decision updates the card (who decided,
when) and the result and progress go into the card's thread.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_base import SlackSurface, ephemeral_reply, log, payload_team_id


class ApprovalHandlers:
    def __init__(self, surface: SlackSurface) -> None:
        self.surface = surface

    async def on_approve(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        self.surface.work.spawn(
            self.decide(body, action, respond, client, approve=True),
            what="approve",
            on_error=ephemeral_reply(respond),
        )

    async def on_cancel(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        self.surface.work.spawn(
            self.decide(body, action, respond, client, approve=False),
            what="cancel",
            on_error=ephemeral_reply(respond),
        )

    async def decide(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Any,
        client: AsyncWebClient,
        *,
        approve: bool,
    ) -> None:
        surface = self.surface
        ctx, channel, card_ts, thread_ts = await surface.action_context(client, body)
        conversation = surface.conversation(
            client,
            channel=channel,
            user=ctx.user_id,
            thread_ts=thread_ts,
            respond=respond,
            label="approval",
            broadcast_final=True,
            team_id=payload_team_id(body),
        )
        decision = await surface.cockpit.decide(
            ctx, action.get("value"), approve=approve, progress=conversation.progress
        )
        await decision.report(
            who=f"<@{decision.who}>",
            when=blocks.slack_date(decision.when, label="{time}"),
            update_card=partial(
                self.update_card, client, respond, channel, card_ts, body.get("message") or {}
            ),
            tell=partial(surface.tell, conversation),
            post_result=conversation.send,
        )

    async def update_card(
        self,
        client: AsyncWebClient,
        respond: Any,
        channel: str,
        ts: str | None,
        message: dict[str, Any],
        decision: str,
    ) -> None:
        """Replace the card's buttons by the decision (chat.update; response_url if that
        fails)."""
        new_blocks = blocks.decided_blocks(list(message.get("blocks") or []), decision)
        text = blocks.truncate(f"{message.get('text') or ''}\n{decision}", blocks.MAX_FALLBACK_TEXT)
        if ts and channel:
            try:
                await client.chat_update(channel=channel, ts=ts, text=text, blocks=new_blocks)
                return
            except SlackApiError:
                log.info("chat.update of an approval card failed; using the response_url")
        if respond is not None:
            await respond(text=text, blocks=new_blocks, replace_original=True)
