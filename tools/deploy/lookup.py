"""Finding deployments: by the reference a person typed (number, name or model id), and the
RunPod resources with our name that no deployment knows (orphans). Used by the deploy, chat
and bench tools and by the scheduler's reconcile sweep."""

from __future__ import annotations

from typing import Any

from storage import deployments
from storage.models import Deployment
from tools.contract import ToolContext
from tools.deploy.plan import RESOURCE_PREFIX
from tools.errors import InvalidInput, NotFound
from tools.services import Services

MAX_REF_SHOWN = 60


async def load_deployment(
    tc: ToolContext, ref: str, *, include_deleted: bool = False
) -> Deployment:
    """The deployment a person named (number, name or model id) in the caller's organisation,
    or a NotFound with the close ones; one read off the event loop (one round trip for an
    id)."""
    found, close = await tc.services.db.read(_find_or_suggest, tc.org_id, ref, include_deleted)
    return _one_deployment(ref, found, close)


def _find_or_suggest(
    s: Any, org_id: int, ref: str, include_deleted: bool
) -> tuple[list[Deployment], list[Deployment]]:
    found = deployments.find(s, org_id=org_id, ref=ref, include_deleted=include_deleted)
    if found:
        return found, []
    return [], deployments.suggest(s, org_id=org_id, ref=ref, include_deleted=include_deleted)


def _one_deployment(ref: str, found: list[Deployment], close: list[Deployment]) -> Deployment:
    if not found:
        shown = ref if len(ref) <= MAX_REF_SHOWN else ref[: MAX_REF_SHOWN - 1] + "…"
        hint = ", ".join(f"#{d.id} {d.name}" for d in close)
        raise NotFound(
            f"No deployment matches {shown!r} (use its number or its exact name).",
            fix=f"Did you mean {hint}? See /deployments." if hint else "See /deployments.",
        )
    if len(found) > 1:
        names = ", ".join(f"#{d.id} {d.name} ({d.status})" for d in found[:5])
        raise InvalidInput(
            f"{ref!r} matches several deployments: {names}.", fix="Use the number, e.g. /status 3."
        )
    return found[0]


async def find_orphans(services: Services, org_id: int) -> list[tuple[str, str, str]]:
    """Provider resources with our prefix (for this organisation's name tag) unknown to the
    database."""
    client = await services.db.call(services.runpod_for, org_id)
    prefix = f"{RESOURCE_PREFIX}o{org_id}-"
    known = await services.db.read(deployments.known_provider_ids)
    found: list[tuple[str, str, str]] = []
    for kind, items in (
        ("endpoint", await client.list_endpoints(name_prefix=prefix)),
        ("template", await client.list_templates(name_prefix=prefix)),
        ("pod", await client.list_pods(name_prefix=prefix)),
    ):
        found.extend((kind, item.id, item.name) for item in items if item.id not in known)
    return found
