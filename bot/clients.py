"""Per-organisation clients: an organisation's stored key wins over the server's environment key,
and one organisation's key is never used for another. Shared pieces (HTTP pool, Hub cache and
circuit breaker) are built once per process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.logs import SECRETS
from storage import credentials
from tools.catalog.db_cache import DatabaseHubCache
from tools.clients.huggingface import CircuitBreaker, HubClient
from tools.services import Services

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)


def org_secret(services: Services, org_id: int, provider: str) -> str | None:
    with services.db.session() as s:
        value = credentials.get_secret(s, org_id=org_id, provider=provider, box=services.secrets)
    SECRETS.add(value)
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


def wire_clients(settings: Settings, services: Services) -> list[Any]:
    """Install the client factories on `services`; returns async closers."""
    wire_hub(settings, services)
    return []
