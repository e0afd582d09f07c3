"""Alert sinks: Discord webhooks (discord.py's Webhook on an aiohttp session), Discord bot
channels (the running bot's client), Slack channels (slack-sdk's AsyncWebClient). Each raises
ProviderError with a human message on failure so the router records and retries it.

Bot channels and Slack channels carry the alert's buttons (command buttons: a click runs that
command as the clicker, through the dispatcher), reply to the incident's first message
(Slack `thread_ts`, a Discord reply) and edit it when its state changes. A Discord webhook
cannot carry interactive components, so there the message lists the commands to type."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from tools.alerts import AlertMessage, PostRef, is_discord_webhook_url
from tools.contract import Reply
from tools.errors import ProviderError

if TYPE_CHECKING:
    from tools.services import Services

log = logging.getLogger(__name__)

SEVERITY_COLOURS = {"info": 0x3498DB, "warning": 0xF1C40F, "critical": 0xE74C3C}
RESOLVED_COLOUR = 0x2ECC71
SLACK_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
SLACK_RESOLVED_EMOJI = ":white_check_mark:"
SLACK_REPEAT_EMOJI = ":repeat:"
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
WEBHOOK_COMMANDS_NOTE = "Act on it (type in the bot's chat):"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _footer(message: AlertMessage) -> str:
    parts = [message.severity, message.key]
    if message.alert_id is not None:
        parts.append(f"alert #{message.alert_id}")
    if message.count > 1:
        parts.append(f"seen {message.count}×")
    return " · ".join(parts)


class DiscordWebhookSink:
    """POST an embed to a Discord webhook URL (the URL carries its token: stored encrypted).
    Webhook messages cannot carry buttons or reply to a message: the commands are listed."""

    def __init__(self, session_factory: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._factory = session_factory or aiohttp.ClientSession

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._factory()
        return self._session

    async def send(
        self, *, target: str, message: AlertMessage, reply_to: PostRef | None = None
    ) -> PostRef | None:
        import discord

        # The router checks stored targets too; this sink refuses on its own as well, since
        # discord.py would otherwise accept a Discord-looking path under any host.
        if not is_discord_webhook_url(target):
            raise ProviderError(
                "That route is not a Discord webhook URL (https://discord.com/api/webhooks/…).",
                service="discord",
                fix="Remove the route (/alerts remove <id>) and add the webhook URL again.",
            )
        session = await self._get_session()
        colour = RESOLVED_COLOUR if message.resolved else SEVERITY_COLOURS.get(message.severity, 0)
        description = message.details or ""
        if message.commands:
            description += f"\n\n{WEBHOOK_COMMANDS_NOTE}\n" + "\n".join(message.commands)
        embed = discord.Embed(
            title=_cut(message.title, EMBED_TITLE_LIMIT),
            description=_cut(description.strip(), EMBED_DESCRIPTION_LIMIT),
            colour=colour,
        )
        embed.set_footer(text=_footer(message))
        try:
            webhook = discord.Webhook.from_url(target, session=session)
            await webhook.send(embed=embed, username="AI Dev Cockpit", wait=False)
        except (discord.HTTPException, aiohttp.ClientError, ValueError) as exc:
            raise ProviderError(
                f"Discord webhook refused the alert ({type(exc).__name__}).",
                service="discord",
                fix="Check the webhook still exists (channel settings → Integrations).",
            ) from None
        return None

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class DiscordChannelSink:
    """An embed with buttons in a channel of the running Discord bot (`/alerts add discord
    <channel id>`); repeats and the resolve reply to the first message, which is edited."""

    def __init__(self, services: Services, *, sandbox: bool) -> None:
        self._services = services
        self._sandbox = sandbox

    def _client(self) -> Any:
        client = self._services.discord_client
        if client is None:
            raise ProviderError(
                "The Discord bot is not running in this process.",
                service="discord",
                fix="Run `cockpit discord` (or set DISCORD_BOT_TOKEN for "
                "`cockpit run`), or use a webhook route.",
            )
        return client

    def _render(self, message: AlertMessage) -> dict[str, Any]:
        from bot.adapters.discord_approvals import reply_view
        from bot.adapters.discord_render import alert_embed

        embed = alert_embed(
            title=message.title,
            text=message.details or "",
            severity="resolved" if message.resolved else message.severity,
            fields={"State": message.state} if message.state else (),
            sandbox=self._sandbox,
            footer=_footer(message),
        )
        return {"embed": embed, "view": reply_view(Reply(buttons=list(message.buttons)))}

    async def send(
        self, *, target: str, message: AlertMessage, reply_to: PostRef | None = None
    ) -> PostRef | None:
        import discord

        channel = self._client().get_partial_messageable(int(target))
        kwargs = self._render(message)
        if kwargs["view"] is None:
            kwargs.pop("view")
        if reply_to is not None:
            kwargs["reference"] = discord.MessageReference(
                message_id=int(reply_to.ref), channel_id=int(target), fail_if_not_exists=False
            )
        try:
            sent = await channel.send(allowed_mentions=discord.AllowedMentions.none(), **kwargs)
        except (discord.HTTPException, ValueError) as exc:
            raise ProviderError(
                f"Discord refused the alert ({type(exc).__name__}).",
                service="discord",
                fix="Check the bot can post in that channel.",
            ) from None
        return PostRef(channel=target, ref=str(sent.id))

    async def update(self, *, target: str, post: PostRef, message: AlertMessage) -> None:
        channel = self._client().get_partial_messageable(int(post.channel or target))
        # view=None removes the buttons (a resolved alert has none).
        await channel.get_partial_message(int(post.ref)).edit(**self._render(message))


class SlackChannelSink:
    """chat.postMessage to a channel with the organisation's Slack bot token; buttons in an
    actions block, repeats and the resolve in the first message's thread, chat.update on it."""

    def __init__(
        self, token_for: Callable[[int], Awaitable[str | None]], base_url: str | None
    ) -> None:
        self._token_for = token_for  # async: the stored installation is read off the loop
        self._base_url = base_url

    async def _client(self, org_id: int) -> Any:
        from slack_sdk.web.async_client import AsyncWebClient

        token = await self._token_for(org_id)
        if not token:
            raise ProviderError(
                "No Slack bot token for this organisation.",
                service="slack",
                fix="Install the Slack app in the workspace (or set SLACK_BOT_TOKEN).",
            )
        kwargs: dict[str, Any] = {"token": token}
        if self._base_url:
            kwargs["base_url"] = self._base_url.rstrip("/") + "/"
        return AsyncWebClient(**kwargs)

    async def send(
        self, *, target: str, message: AlertMessage, reply_to: PostRef | None = None
    ) -> PostRef | None:
        client = await self._client(message.org_id)
        kwargs = slack_alert(message)
        if reply_to is not None:
            kwargs.update(channel=reply_to.channel, thread_ts=reply_to.ref)
        else:
            kwargs["channel"] = target.lstrip("#")
        resp = await self._call(client.chat_postMessage, mrkdwn=True, **kwargs)
        channel, ts = resp.get("channel"), resp.get("ts")
        return PostRef(channel=str(channel), ref=str(ts)) if channel and ts else None

    async def update(self, *, target: str, post: PostRef, message: AlertMessage) -> None:
        client = await self._client(message.org_id)
        await self._call(
            client.chat_update, channel=post.channel, ts=post.ref, **slack_alert(message)
        )

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError

        try:
            return await method(**kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error", "error") if exc.response is not None else "error"
            raise ProviderError(
                f"Slack refused the alert ({error}).",
                service="slack",
                fix="Invite the bot to the channel (/invite @AI Dev Cockpit).",
            ) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"Slack is unreachable ({type(exc).__name__}).", service="slack", retryable=True
            ) from None


def slack_alert(message: AlertMessage) -> dict[str, Any]:
    """The alert as chat.postMessage/chat.update arguments: fallback text and blocks (title
    and details, the state line, the buttons, the footer). Alert text is escaped: a title or
    detail can never mention @channel or smuggle a link."""
    from bot.adapters import slack_blocks as blocks

    if message.resolved:
        icon = SLACK_RESOLVED_EMOJI
    elif message.repeat:
        icon = SLACK_REPEAT_EMOJI
    else:
        icon = SLACK_EMOJI.get(message.severity, "")
    head = f"{icon} *{blocks.escape(message.title)}*".strip()
    body = f"{head}\n{blocks.mrkdwn(message.details)}" if message.details else head
    content: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": blocks.truncate(body, blocks.MAX_SECTION_TEXT)},
        }
    ]
    notes = [blocks.escape(message.state)] if message.state else []
    notes.append(blocks.escape(_footer(message)))
    if message.buttons:
        content.append(blocks.actions_block(list(message.buttons)))
    content.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": blocks.truncate(n, blocks.MAX_CONTEXT_TEXT)}
                for n in notes
            ],
        }
    )
    text = f"{icon} {message.title}\n{message.details}".strip()
    if message.state:
        text += f"\n{message.state}"
    fallback = blocks.truncate(blocks.escape(text), blocks.MAX_FALLBACK_TEXT)
    return {"text": fallback, "blocks": content}
