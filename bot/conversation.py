"""The conversation layer every surface shares: what one message leads to, what one Approve or
Cancel click decided, and the background work a surface runs for them.

A surface (Slack, Discord, ...) turns its payload into a `RequestContext` and some text, calls
`Cockpit.on_message` or `Cockpit.decide`, and renders the typed outcome it gets back: it never
reads storage and never repeats the policy written here.

    outcome = await cockpit.on_message(ctx, text, addressed=True, progress=..., stream=...)
    match outcome:
        case SecretRefused(provider=p): ...   # warn; the text is never stored or forwarded
        case Answered(reply=r):         ...   # render r (r.expires_at on an approval card)
        case Ignored():                 ...   # nothing to say

    decision = await cockpit.decide(ctx, button_value, approve=True, progress=...)
    await decision.report(who=mention, when=time, update_card=..., tell=..., post_result=...)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from storage.db import DATABASE_DOWN_TEXT, DatabaseUnavailable
from tools.contract import Reply, RequestContext

if TYPE_CHECKING:
    from bot.app import Cockpit

DRAIN_TIMEOUT_SECONDS = 10.0
INTERNAL_ERROR_TEXT = (
    "{icon} Something went wrong while handling that (reference {ref}). Nothing else was "
    "changed; the details are in the bot's logs."
)
SECRET_IN_CHANNEL = (
    "🚨 That message looks like it contains a {provider} secret key, pasted in a channel. Treat "
    "it as leaked: rotate (revoke) it at {provider} now, then connect the new key privately with "
    "`/connect <provider>`. I did not store, repeat or use it; delete your message too."
)
SECRET_IN_PRIVATE = (
    "🔒 That looks like a {provider} secret key. I did not store, repeat or use it: "
    "`/connect <provider>` stores a key privately (encrypted, shown only as …last4)."
)

# --- what a message led to -------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRefused:
    """The message carries a secret key: it was not stored, answered or given to anyone."""

    provider: str
    kind: Literal["secret"] = "secret"

    def warning(self, *, shared: bool) -> str:
        """What the sender is told; pasted where others can read it (`shared`), the key counts
        as leaked."""
        return (SECRET_IN_CHANNEL if shared else SECRET_IN_PRIVATE).format(provider=self.provider)


@dataclass(frozen=True)
class Ignored:
    """Not meant for the bot (a channel message that is neither addressed nor model chat)."""

    kind: Literal["ignored"] = "ignored"


@dataclass(frozen=True)
class Answered:
    """The reply to render. `route` says what answered: a deployed model (the thread is bound
    to it), a slash command, or the agent (Claude or the limited-mode matcher)."""

    reply: Reply
    route: Literal["model", "command", "agent"]
    kind: Literal["answered"] = "answered"


MessageOutcome = SecretRefused | Ignored | Answered

# --- what a click decided --------------------------------------------------------------------


class DecisionOutcome(StrEnum):
    invalid = "invalid"  # the button carries no approval id
    busy = "busy"  # a double click while the first one still runs
    refused = "refused"  # not the requester or an admin, already decided, or unknown
    approved = "approved"  # ran, and succeeded
    failed = "failed"  # approved, but the run failed (the thread says why)
    cancelled = "cancelled"
    expired = "expired"


DECIDED = frozenset(
    {
        DecisionOutcome.approved,
        DecisionOutcome.failed,
        DecisionOutcome.cancelled,
        DecisionOutcome.expired,
    }
)
# Unicode emoji: Slack shows them like its :shortcodes:, Discord as they are.
DECISION_ICONS = {
    DecisionOutcome.approved: "✅",
    DecisionOutcome.failed: "✅",
    DecisionOutcome.cancelled: "🚫",
    DecisionOutcome.expired: "⌛",
}


@dataclass(frozen=True)
class Decision:
    """One Approve/Cancel click. A decided click (`decided`) changes the card for everyone
    (`summary`); any other is told to the clicker alone (`note`). `reply` is the result to post
    in the card's thread after an approval."""

    outcome: DecisionOutcome
    approval_id: int | None
    reply: Reply
    approve: bool
    who: str  # the clicker's platform user id
    when: datetime
    status_before: str | None = None
    status: str | None = None

    @property
    def decided(self) -> bool:
        return self.outcome in DECIDED

    @property
    def posts_result(self) -> bool:
        """Whether the run's reply goes into the card's thread (an approval that ran)."""
        return self.approve and self.outcome in (DecisionOutcome.approved, DecisionOutcome.failed)

    @property
    def note(self) -> str:
        """What the clicker alone hears (an undecided click, or why an approval expired)."""
        if self.outcome is DecisionOutcome.invalid:
            return "That button does not carry an approval id."
        if self.outcome is DecisionOutcome.busy:
            return f"Approval #{self.approval_id} is already being handled."
        return self.reply.text or "Nothing was done."

    def summary(
        self, *, who: str, when: str, icons: Mapping[DecisionOutcome, str] = DECISION_ICONS
    ) -> str:
        """The line a decided card shows, with the surface's mention and time format."""
        icon = icons.get(self.outcome, "")
        if self.outcome is DecisionOutcome.cancelled:
            text = f"Cancelled by {who} at {when}; nothing was done."
        elif self.outcome is DecisionOutcome.expired:
            text = "Expired; nothing was done. Run the command again for a new one."
        else:
            done = "done"
            if self.outcome is DecisionOutcome.failed:
                done = "it failed, see the thread"
            text = f"Approved by {who} at {when}; {done}."
        return f"{icon} {text}".strip()

    async def report(
        self,
        *,
        who: str,
        when: str,
        update_card: Callable[[str], Awaitable[Any]],
        tell: Callable[[str], Awaitable[Any]],
        post_result: Callable[[Reply], Awaitable[Any]],
    ) -> None:
        """What every surface shows after a click: an undecided click is told to the clicker
        alone (the card stays); a decision updates the card for everyone (`summary`, with the
        surface's mention `who` and time `when`), then an expired approval tells the clicker
        why, and an approval that ran posts its result (in the card's thread)."""
        if not self.decided:
            await tell(self.note)
            return
        await update_card(self.summary(who=who, when=when))
        if self.outcome is DecisionOutcome.expired:
            await tell(self.note)
        elif self.posts_result:
            await post_result(self.reply)


def decision_outcome(before: str | None, after: str | None) -> DecisionOutcome:
    """From the approval's status before and after the click."""
    if before != "pending" or after in (None, "pending"):
        return DecisionOutcome.refused
    if after == "cancelled":
        return DecisionOutcome.cancelled
    if after == "expired":
        return DecisionOutcome.expired
    return DecisionOutcome.approved if after == "executed" else DecisionOutcome.failed


# --- a person's overview (Slack's App Home) --------------------------------------------------

# (heading, tool, arguments) of the parts shown besides "who you are", when this build has them.
OVERVIEW_PARTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Deployments", "list_deployments", {}),
    ("Spend this week", "get_spend", {"period": "this_week"}),
)


async def overview(cockpit: Cockpit, ctx: RequestContext) -> list[tuple[str, Reply]]:
    """Who the person is, then their deployments and this week's spend: each part through the
    dispatcher (roles and audit apply); a tool missing from this build, or a part that fails,
    is left out."""
    parts = [("Who you are", await cockpit.run_tool(ctx, "whoami", {}))]
    for heading, tool_name, args in OVERVIEW_PARTS:
        if cockpit.services.registry.get(tool_name) is None:
            continue
        reply = await cockpit.run_tool(ctx, tool_name, dict(args))
        if reply.ok:
            parts.append((heading, reply))
    return parts


# --- background work -------------------------------------------------------------------------

OnError = Callable[[str], Awaitable[Any]]


class SurfaceWork:
    """The work one surface runs for people: tracked so shutdown and tests can wait for it
    (`drain`) or stop it (`cancel`), and guarded so a crash is logged with a reference and the
    person is told (`on_error(text)`, without details), never left in silence."""

    def __init__(self, name: str, *, icon: str, log: logging.Logger | None = None) -> None:
        self.name = name
        self.icon = icon
        self.log = log or logging.getLogger(f"bot.adapters.{name}")
        self._tasks: set[asyncio.Task[Any]] = set()

    def reference(self) -> str:
        return f"{self.name}-{uuid.uuid4().hex[:8]}"

    def spawn(
        self, coro: Coroutine[Any, Any, None], *, what: str, on_error: OnError | None = None
    ) -> asyncio.Task[None]:
        """Run `coro` in a new tracked task (work after an acknowledgement)."""
        task = asyncio.get_running_loop().create_task(
            self.guard(coro, what=what, on_error=on_error), name=f"{self.name}-{what}"
        )
        self._add(task)
        return task

    def track(self) -> None:
        """Count the current task (one the platform library started) as running work."""
        task = asyncio.current_task()
        if task is not None and task not in self._tasks:
            self._add(task)

    async def guard(
        self, work: Awaitable[None], *, what: str, on_error: OnError | None = None
    ) -> None:
        """Await `work`; a crash is logged with a reference and told through `on_error`."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except DatabaseUnavailable:
            self.log.warning("%s %s: the database is not answering", self.name, what)
            await self._tell(on_error, f"{self.icon} {DATABASE_DOWN_TEXT}", "the database is down")
        except Exception:
            ref = self.reference()
            self.log.exception("%s %s failed (reference %s)", self.name, what, ref)
            await self._tell(on_error, INTERNAL_ERROR_TEXT.format(icon=self.icon, ref=ref), ref)

    async def _tell(self, on_error: OnError | None, text: str, about: str) -> None:
        if on_error is None:
            return
        try:
            await on_error(text)
        except Exception:
            self.log.warning("could not tell the user about %s", about, exc_info=True)

    def _add(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Wait until the work started so far (and any it started) is done, at most
        `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        current = asyncio.current_task()
        while True:
            pending = [t for t in self._tasks if t is not current and not t.done()]
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return
            await asyncio.wait(pending, timeout=remaining)

    async def cancel(self) -> None:
        """Cancel what is still running (after `drain`, at shutdown)."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Let running work finish (bounded by `timeout`), then cancel what is left."""
        await self.drain(timeout)
        await self.cancel()
