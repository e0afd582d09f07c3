"""Approve / Cancel buttons on approval cards.

The dispatcher decides who may click (the requester or an admin) and runs the action once; this
module only reports: a refusal goes to the clicker alone (the card stays), a decision updates
the card (who decided, when) and the result and progress go into the card's thread.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters import slack_blocks as blocks
from bot.adapters.slack_base import SlackBase, log
from bot.adapters.slack_post import SlackConversation
from tools.contract import parse_id


def _tell_clicker(respond: Any) -> Any:
    """A crash while deciding is told to the clicker (with its reference), never silence."""

    async def tell(text: str) -> None:
        if respond is not None:
            await respond(text=text, response_type="ephemeral", replace_original=False)

    return tell


class ApprovalHandlers(SlackBase):
    async def on_approve(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        self.spawn(
            self.decide(body, action, respond, client, approve=True),
            what="approve",
            on_error=_tell_clicker(respond),
        )

    async def on_cancel(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any, client: Any
    ) -> None:
        await ack()
        self.spawn(
            self.decide(body, action, respond, client, approve=False),
            what="cancel",
            on_error=_tell_clicker(respond),
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
        user = body.get("user") or {}
        team = body.get("team") or {}
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        card_ts = container.get("message_ts") or message.get("ts")
        # A card posted inside a thread keeps its follow-ups in that thread.
        thread_ts = message.get("thread_ts") or card_ts
        ctx = await self.context(
            client,
            team_id=team.get("id") or user.get("team_id") or "",
            team_name=team.get("domain"),
            user_id=user["id"],
            user_name=user.get("name") or user.get("username"),
            channel=channel,
            thread=thread_ts,
        )
        conversation = self.conversation(
            client,
            channel=channel,
            user=user["id"],
            thread_ts=thread_ts,
            respond=respond,
            label="approval",
            broadcast_final=True,
            team_id=team.get("id") or user.get("team_id"),
        )
        # A button value is client-controlled text: ASCII digits within the id column only.
        approval_id = parse_id(action.get("value"))
        if approval_id is None:
            await self.tell(conversation, "That button does not carry an approval id.")
            return
        key = (ctx.org_id, approval_id)
        if key in self._deciding:  # a double click while the first one still runs
            await self.tell(conversation, f"Approval #{approval_id} is already being handled.")
            return
        self._deciding.add(key)
        try:
            before = await self.approval_row(ctx, approval_id)
            if approve:
                reply = await self.cockpit.approve(ctx, approval_id, progress=conversation.progress)
            else:
                reply = await self.cockpit.cancel(ctx, approval_id)
            after = await self.approval_row(ctx, approval_id)
        finally:
            self._deciding.discard(key)
        status_before = before.status if before else None
        status_after = after.status if after else None
        if status_before != "pending" or status_after in (None, "pending"):
            # Refused (neither the requester nor an admin), already decided, or unknown: the
            # card stays as it is and only the clicker hears why.
            await self.tell(conversation, reply.text or "Nothing was done.")
            return
        who = f"<@{ctx.user_id}>"
        when = blocks.slack_date(self.clock.now(), label="{time}")
        if status_after == "cancelled":
            decision = f":no_entry_sign: Cancelled by {who} at {when}; nothing was done."
        elif status_after == "expired":
            decision = ":hourglass: Expired; nothing was done. Run the command again for a new one."
        else:
            outcome = "done" if status_after == "executed" else "it failed, see the thread"
            decision = f":white_check_mark: Approved by {who} at {when}; {outcome}."
        await self.update_card(client, respond, channel, card_ts, message, decision)
        if status_after == "expired":
            await self.tell(conversation, reply.text)
        elif approve:
            await conversation.send(reply)

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

    async def tell(self, conversation: SlackConversation, text: str) -> None:
        """An ephemeral note to the clicker (chat.postEphemeral, else the response_url)."""
        message = blocks.note(text)
        try:
            await conversation.client.chat_postEphemeral(
                channel=conversation.channel, user=conversation.user, **message.as_kwargs()
            )
        except SlackApiError:
            if conversation.respond is None:
                raise
            await conversation.respond(
                response_type="ephemeral", replace_original=False, **message.as_kwargs()
            )
