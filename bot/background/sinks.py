"""Alert sinks: Discord webhooks (discord.py's Webhook on an aiohttp session), Slack channels
(slack-sdk's AsyncWebClient). Each raises ProviderError with a human message on failure so the
router records and retries it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from tools.alerts import AlertMessage, is_discord_webhook_url
from tools.errors import ProviderError

log = logging.getLogger(__name__)

SEVERITY_COLOURS = {"info": 0x3498DB, "warning": 0xF1C40F, "critical": 0xE74C3C}
RESOLVED_COLOUR = 0x2ECC71
SLACK_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DiscordWebhookSink:
    """POST an embed to a Discord webhook URL (the URL carries its token: stored encrypted)."""

    def __init__(self, session_factory: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._factory = session_factory or aiohttp.ClientSession

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._factory()
        return self._session

    async def send(self, *, target: str, message: AlertMessage) -> None:
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
        embed = discord.Embed(
            title=_cut(message.title, EMBED_TITLE_LIMIT),
            description=_cut(message.details or "", EMBED_DESCRIPTION_LIMIT),
            colour=colour,
        )
        embed.set_footer(
            text=f"{message.severity} · {message.key}"
            + (f" · seen {message.count}×" if message.count > 1 else "")
        )
        try:
            webhook = discord.Webhook.from_url(target, session=session)
            await webhook.send(embed=embed, username="AI Dev Cockpit", wait=False)
        except (discord.HTTPException, aiohttp.ClientError, ValueError) as exc:
            raise ProviderError(
                f"Discord webhook refused the alert ({type(exc).__name__}).",
                service="discord",
                fix="Check the webhook still exists (channel settings → Integrations).",
            ) from None

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


DISCORD_CLIENT_KEY = "discord_client"


class DiscordChannelSink:
    """An embed in a channel of the running Discord bot (`/alerts add discord <channel id>`)."""

    def __init__(self, extras: dict[str, Any], *, sandbox: bool) -> None:
        self._extras = extras
        self._sandbox = sandbox

    async def send(self, *, target: str, message: AlertMessage) -> None:
        import discord

        from bot.adapters.discord_render import send_alert_embed

        client = self._extras.get(DISCORD_CLIENT_KEY)
        if client is None:
            raise ProviderError(
                "The Discord bot is not running in this process.",
                service="discord",
                fix="Run `cockpit discord` (or set DISCORD_BOT_TOKEN for "
                "`cockpit run`), or use a webhook route.",
            )
        try:
            await send_alert_embed(
                title=message.title,
                text=message.details or "",
                severity="info" if message.resolved else message.severity,
                client=client,
                channel_id=int(target),
                sandbox=self._sandbox,
            )
        except (discord.HTTPException, ValueError) as exc:
            raise ProviderError(
                f"Discord refused the alert ({type(exc).__name__}).",
                service="discord",
                fix="Check the bot can post in that channel.",
            ) from None


class SlackChannelSink:
    """chat.postMessage to a channel with the organisation's Slack bot token."""

    def __init__(self, token_for: Callable[[int], str | None], base_url: str | None) -> None:
        self._token_for = token_for
        self._base_url = base_url

    async def send(self, *, target: str, message: AlertMessage) -> None:
        from slack_sdk.errors import SlackApiError
        from slack_sdk.web.async_client import AsyncWebClient

        token = self._token_for(message.org_id)
        if not token:
            raise ProviderError(
                "No Slack bot token for this organisation.",
                service="slack",
                fix="Install the Slack app in the workspace (or set SLACK_BOT_TOKEN).",
            )
        kwargs: dict[str, Any] = {"token": token}
        if self._base_url:
            kwargs["base_url"] = self._base_url.rstrip("/") + "/"
        client = AsyncWebClient(**kwargs)
        icon = ":white_check_mark:" if message.resolved else SLACK_EMOJI.get(message.severity, "")
        text = f"{icon} *{message.title}*\n{message.details}".strip()
        try:
            await client.chat_postMessage(channel=target.lstrip("#"), text=text, mrkdwn=True)
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
