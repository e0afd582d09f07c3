"""Shared services handed to every tool call (built once by `bot.app`, wired by `bot.clients`).

Each service is a named, typed field, so mypy checks every tool → client call; the factories are
Protocols (any callable of that shape will do, e.g. a test's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tools.clock import Clock

if TYPE_CHECKING:
    from storage.crypto import SecretBox
    from storage.db import Database
    from tools.alerts import AlertRouter
    from tools.bench.tools import ActiveRun
    from tools.clients.huggingface import HubClient
    from tools.contract import Registry
    from tools.runpod.client import RunPodClient
    from tools.skills import SkillSet


class RunPodFactory(Protocol):
    """The RunPod client for an organisation (its stored key, else the server's)."""

    def __call__(self, org_id: int, /) -> RunPodClient: ...


class HubFactory(Protocol):
    """The Hugging Face client for an organisation (its stored token, else the server's)."""

    def __call__(self, org_id: int, /) -> HubClient: ...


class TokenLookup(Protocol):
    """An organisation's secret for one provider, or None."""

    def __call__(self, org_id: int, /) -> str | None: ...


class CredentialVerifier(Protocol):
    """A cheap authenticated call with `key`; raises ProviderError when the provider rejects
    it, so a wrong key is refused before it is stored."""

    async def __call__(self, provider: str, key: str, /) -> None: ...


class ChannelClient(Protocol):
    """The running Discord bot's client (discord.py), seen by the alert sinks; only its
    presence is typed here (tools/ does not import discord)."""


@dataclass
class Services:
    """Everything a tool may use. Clients are per organisation where keys are per organisation:
    `runpod_for(org_id)` / `hub_for(org_id)` use that organisation's stored key when it has
    one, else the server's environment key."""

    db: Database
    clock: Clock
    secrets: SecretBox
    registry: Registry
    sandbox: bool = True
    runpod_factory: RunPodFactory | None = None
    hub_factory: HubFactory | None = None
    credential_verifier: CredentialVerifier | None = None
    # The Hugging Face token a deploy hands the worker for a gated model.
    hf_token_for: TokenLookup | None = None
    # Where charts (spend, /bench) are written; None: no charts.
    charts_dir: Path | None = None
    # The loaded skills (shipped + COCKPIT_SKILLS_DIRS); `tools.skills.skills_for` reads it.
    skills: SkillSet | None = None
    # The alert router with its sinks; `tools.alerts.router_of` reads it.
    alert_router: AlertRouter | None = None
    # The Discord bot's client while `cockpit discord` / `cockpit run` holds one.
    discord_client: ChannelClient | None = None
    # Running /bench load tests by (org_id, run_id), so /bench-cancel finds them.
    bench_runs: dict[tuple[int, int], ActiveRun] = field(default_factory=dict)
    # This process's id among the running ones (storage.instances): the owner of the work it
    # has in flight, so another process never cleans that up while this one lives.
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Only for what has no named field yet (and for a tool's own experiments); prefer a field.
    extras: dict[str, Any] = field(default_factory=dict)

    def runpod_for(self, org_id: int) -> RunPodClient:
        if self.runpod_factory is None:
            from tools.errors import ProviderError

            raise ProviderError(
                "No GPU cloud is configured.",
                service="runpod",
                fix="Set RUNPOD_API_KEY, or leave COCKPIT_SANDBOX=auto to use the local sandbox.",
            )
        return self.runpod_factory(org_id)

    def hub_for(self, org_id: int) -> HubClient:
        if self.hub_factory is None:
            from tools.errors import ProviderError

            raise ProviderError("The Hugging Face client is not configured.", service="huggingface")
        return self.hub_factory(org_id)

    @property
    def footer(self) -> str | None:
        return "sandbox: simulated RunPod cloud, no real GPUs or charges" if self.sandbox else None
