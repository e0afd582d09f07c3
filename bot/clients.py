"""Per-organisation clients: an organisation's stored key wins over the server's environment key,
and one organisation's key is never used for another. Shared pieces (HTTP pool, Hub cache and
circuit breaker) are built once per process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.logs import SECRETS
from storage import credentials
from tools.catalog.db_cache import DatabaseHubCache
from tools.clients.huggingface import CircuitBreaker, HubClient
from tools.errors import ProviderError
from tools.runpod.client import RunPodClient, make_http_pool
from tools.services import CredentialVerifier, Services, TokenLookup

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)


def org_secret(services: Services, org_id: int, provider: str) -> str | None:
    """Synchronous, for a storage thread: async code reaches it through the client factories
    under `db.call` (`await db.call(services.runpod_for, org_id)`), never on the event loop."""
    with services.db.read_session() as s:
        value = credentials.get_secret(s, org_id=org_id, provider=provider, box=services.secrets)
    SECRETS.add(value, org_id=org_id)  # stored, so accepted: redacted in this org's log lines
    return value


def wire_hub(settings: Settings, services: Services) -> None:
    cache = DatabaseHubCache(services.db, services.clock)
    breaker = CircuitBreaker(services.clock)
    offline = settings.use_hub_snapshot_only

    def hub_for(org_id: int) -> HubClient:
        token = org_secret(services, org_id, "huggingface") or settings.hf_token
        return HubClient(
            endpoint=settings.hf_endpoint,
            token=token,
            clock=services.clock,
            cache=cache,
            breaker=breaker,
            offline=offline,
            download_dir=str(settings.data_dir / "hf-cache"),
        )

    services.hub_factory = hub_for


SANDBOX_API_KEY = "sandbox-key"
RUNPOD_KEY_FIX = "Set RUNPOD_API_KEY, or `/connect runpod` for this organisation."


class RunPodWiring:
    """One shared HTTP pool; a light client per call with the organisation's key. In the
    sandbox the emulator is started in-process and every organisation uses it."""

    def __init__(self, settings: Settings, services: Services) -> None:
        self.settings = settings
        self.services = services
        self.http = make_http_pool()
        self.api_url = settings.runpod_api_url
        self.serverless_url = settings.runpod_serverless_url
        self.pod_proxy_url = settings.runpod_pod_proxy_url
        self.emulator: Any = None

    async def start(self) -> None:
        if not self.services.sandbox:
            return
        from tools.runpod.sandbox import RunPodEmulator

        settings = self.settings
        state = settings.data_dir / "sandbox-state.json" if settings.sandbox_state else None
        self.emulator = RunPodEmulator(
            clock=self.services.clock,
            worker_ready_seconds=self.settings.sandbox_worker_ready_seconds,
            state_file=state,
        )
        await self.emulator.start()
        self.api_url, self.serverless_url = self.emulator.api_url, self.emulator.serverless_url
        self.pod_proxy_url = self.emulator.pod_proxy_url
        log.info("sandbox cloud (RunPod emulator) at %s", self.emulator.base_url)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.emulator is not None:
            await self.emulator.stop()

    def key_for(self, org_id: int) -> str:
        if self.services.sandbox:
            return SANDBOX_API_KEY
        key = org_secret(self.services, org_id, "runpod") or self.settings.runpod_api_key
        if not key:
            raise ProviderError("No RunPod API key is set.", service="runpod", fix=RUNPOD_KEY_FIX)
        return key

    def client_for(self, org_id: int) -> RunPodClient:
        return RunPodClient(
            api_key=self.key_for(org_id),
            api_url=self.api_url,
            serverless_url=self.serverless_url,
            pod_proxy_url=self.pod_proxy_url,
            http=self.http,
            clock=self.services.clock,
        )


def slack_token_for(settings: Settings, services: Services) -> TokenLookup:
    """The Slack bot token that speaks for an organisation: its workspace's installation (HTTP
    mode, multi-workspace) or the single-workspace SLACK_BOT_TOKEN. Synchronous, for a storage
    thread (`slack_token_off_loop` is the async one)."""
    from storage import orgs, slack_store

    def token_for(org_id: int) -> str | None:
        if settings.slack_client_id:
            with services.db.read_session() as s:
                teams = [
                    ws.external_id
                    for ws in orgs.workspaces_of(s, org_id=org_id)
                    if ws.platform == "slack"
                ]
                for team in teams:
                    bot = slack_store.find_bot(
                        s,
                        client_id=settings.slack_client_id,
                        enterprise_id=None,
                        team_id=team,
                        box=services.secrets,
                    )
                    if bot and bot.bot_token:
                        return bot.bot_token
        return settings.slack_bot_token

    return token_for


def slack_token_off_loop(
    settings: Settings, services: Services
) -> Callable[[int], Awaitable[str | None]]:
    """`slack_token_for` on a storage thread; without an OAuth app nothing is stored, so the
    single-workspace token is answered at once."""
    token_for = slack_token_for(settings, services)

    async def lookup(org_id: int) -> str | None:
        if not settings.slack_client_id:
            return settings.slack_bot_token
        return await services.db.call(token_for, org_id)

    return lookup


def wire_alerts(settings: Settings, services: Services) -> Any:
    """The alert router with its sinks; returns a closer for the Discord HTTP session."""
    from datetime import timedelta

    from bot.background.sinks import DiscordChannelSink, DiscordWebhookSink, SlackChannelSink
    from tools.alerts import AlertRouter

    if settings.discord_api_url:
        # discord.py builds every URL (webhooks included) from Route.BASE: tests point it at a fake
        import discord.http

        discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
    discord_sink = DiscordWebhookSink()
    sinks: dict[str, Any] = {
        "discord_webhook": discord_sink,
        "discord_channel": DiscordChannelSink(services, sandbox=services.sandbox),
        "slack_channel": SlackChannelSink(
            slack_token_off_loop(settings, services), settings.slack_api_url
        ),
    }
    router = AlertRouter(
        services, sinks, cooldown=timedelta(minutes=settings.alert_cooldown_minutes)
    )
    services.alert_router = router
    return discord_sink.aclose


def credential_verifier(settings: Settings, runpod: RunPodWiring) -> CredentialVerifier:
    """A cheap authenticated call per provider, so a wrong key is refused before it is stored."""

    async def verify(provider: str, key: str) -> None:
        # Not yet accepted: redacted only while this task checks it (a refused "key" must not
        # join the process-wide set, see bot.logs.SecretRegistry).
        with SECRETS.pending(key):
            await _verify(provider, key)

    async def _verify(provider: str, key: str) -> None:
        if provider == "runpod":
            client = RunPodClient(
                api_key=key,
                api_url=runpod.api_url,
                serverless_url=runpod.serverless_url,
                http=runpod.http,
                clock=runpod.services.clock,
                max_retries=1,
            )
            await client.list_endpoints()
        elif provider == "huggingface":
            await _verify_hf(settings, key)
        elif provider == "anthropic":
            await _verify_anthropic(settings, key)

    return verify


async def _verify_hf(settings: Settings, key: str) -> None:
    import asyncio

    if settings.use_hub_snapshot_only:
        return  # offline sandbox: nothing to ask; the key is used once the Hub is reachable
    from huggingface_hub import HfApi

    try:
        await asyncio.to_thread(HfApi(endpoint=settings.hf_endpoint, token=key).whoami)
    except Exception as exc:
        raise ProviderError(
            f"Hugging Face did not accept that token ({type(exc).__name__}).",
            service="huggingface",
            fix="Create a read token at huggingface.co/settings/tokens.",
        ) from None


async def _verify_anthropic(settings: Settings, key: str) -> None:
    import anthropic

    client = anthropic.AsyncAnthropic(
        api_key=key, base_url=settings.anthropic_base_url, max_retries=1
    )
    try:
        await client.models.list(limit=1)
    except anthropic.AuthenticationError:
        raise ProviderError(
            "Claude rejected that API key (401).",
            service="anthropic",
            fix="Create a key at console.anthropic.com.",
        ) from None
    except anthropic.APIError as exc:
        raise ProviderError(
            f"Could not check the key with Claude ({type(exc).__name__}).",
            service="anthropic",
            retryable=True,
            fix="Try again in a minute.",
        ) from None
    finally:
        await client.close()


def wire_clients(settings: Settings, services: Services) -> RunPodWiring:
    """Install the client factories on `services`; the caller starts and closes the wiring."""
    wire_hub(settings, services)
    runpod = RunPodWiring(settings, services)
    services.runpod_factory = runpod.client_for
    services.credential_verifier = credential_verifier(settings, runpod)
    services.charts_dir = settings.data_dir / "charts"

    def hf_token_for(org_id: int) -> str | None:
        return org_secret(services, org_id, "huggingface") or settings.hf_token

    services.hf_token_for = hf_token_for
    # tools/deploy/tools.py still reads it by name (issue 15 owns that file for now).
    services.extras["hf_token_for"] = hf_token_for
    return runpod
