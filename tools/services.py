"""Shared services handed to every tool call (built once by `bot.app`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tools.clock import Clock

if TYPE_CHECKING:
    from storage.crypto import SecretBox
    from storage.db import Database
    from tools.contract import Registry


@dataclass
class Services:
    """Everything a tool may use. Clients are per organisation where keys are per organisation.

    `runpod_for(org_id)` / `hub_for(org_id)` return clients that use that organisation's stored
    key when it has one, else the server's environment key (set by `bot.app`).
    """

    db: Database
    clock: Clock
    secrets: SecretBox
    registry: Registry
    sandbox: bool = True
    runpod_factory: Any = None  # Callable[[int], RunPodClient]
    hub_factory: Any = None  # Callable[[int], HubClient]
    # async (provider, key) -> None; raises ProviderError when the provider rejects the key
    credential_verifier: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def runpod_for(self, org_id: int) -> Any:
        if self.runpod_factory is None:
            from tools.errors import ProviderError

            raise ProviderError(
                "No GPU cloud is configured.",
                service="runpod",
                fix="Set RUNPOD_API_KEY, or leave COCKPIT_SANDBOX=auto to use the local sandbox.",
            )
        return self.runpod_factory(org_id)

    def hub_for(self, org_id: int) -> Any:
        if self.hub_factory is None:
            from tools.errors import ProviderError

            raise ProviderError("The Hugging Face client is not configured.", service="huggingface")
        return self.hub_factory(org_id)

    @property
    def footer(self) -> str | None:
        return "sandbox: simulated RunPod cloud, no real GPUs or charges" if self.sandbox else None
