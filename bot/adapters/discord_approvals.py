"""Approve / Cancel buttons on approval cards (and command buttons).

The buttons are `discord.ui.DynamicItem`s whose custom_id carries the approval id
(`cockpit:approve:<id>`, `cockpit:cancel:<id>`): registered once on the client, they work on
any card, also after a restart. `Cockpit.decide` decides (who may click, what happened); this
module only reports: an undecided click is an ephemeral followup to the clicker (the card
stays), a decision edits the card, and progress and the result go into a thread started from
the card.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

import discord

from bot.adapters.discord_base import DiscordSurface, log
from bot.adapters.discord_render import (
    COLOUR_NEUTRAL,
    COLOUR_OK,
    MAX_EMBEDS,
    MAX_TOTAL,
    note_embed,
)
from bot.conversation import DecisionOutcome, OnError
from tools.contract import Reply, parse_id

CUSTOM_ID_PREFIX = "cockpit"
APPROVE_PREFIX = f"{CUSTOM_ID_PREFIX}:approve:"
CANCEL_PREFIX = f"{CUSTOM_ID_PREFIX}:cancel:"
COMMAND_PREFIX = f"{CUSTOM_ID_PREFIX}:cmd:"
MAX_CUSTOM_ID = 100
MAX_BUTTONS = 25
MAX_BUTTON_LABEL = 80
_STYLES = {
    "primary": discord.ButtonStyle.success,
    "danger": discord.ButtonStyle.danger,
    "default": discord.ButtonStyle.secondary,
}


class ButtonHandler(Protocol):
    async def on_decision(
        self, interaction: discord.Interaction, approval_id: int, *, approve: bool
    ) -> None: ...

    async def on_command_button(self, interaction: discord.Interaction, command: str) -> None: ...


def _handler(interaction: discord.Interaction) -> ButtonHandler | None:
    return cast(ButtonHandler | None, getattr(interaction.client, "cockpit_adapter", None))


def _button(custom_id: str, label: str, style: discord.ButtonStyle) -> discord.ui.Button[Any]:
    return discord.ui.Button(
        label=label[:MAX_BUTTON_LABEL] or "…", style=style, custom_id=custom_id
    )


class ApproveButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"cockpit:approve:(?P<id>[0-9]+)"
):
    """Approve on an approval card; `CancelButton` is the same button with the other verb."""

    approve = True
    prefix = APPROVE_PREFIX
    default_label = "Approve"
    style = discord.ButtonStyle.success

    def __init__(self, approval_id: int, *, label: str | None = None) -> None:
        super().__init__(
            _button(f"{self.prefix}{approval_id}", label or self.default_label, self.style)
        )
        self.approval_id = approval_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ApproveButton:
        return cls(int(match["id"]), label=getattr(item, "label", None))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.on_decision(interaction, self.approval_id, approve=self.approve)


class CancelButton(ApproveButton, template=r"cockpit:cancel:(?P<id>[0-9]+)"):
    approve = False
    prefix = CANCEL_PREFIX
    default_label = "Cancel"
    style = discord.ButtonStyle.danger


class CommandButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"cockpit:cmd:(?P<command>.+)"
):
    """A button that runs a command as the person who clicks it (`Button(action=...)` other
    than approve/cancel; its value is the command line)."""

    def __init__(self, command: str, *, label: str = "Run", style: str = "default") -> None:
        super().__init__(
            _button(f"{COMMAND_PREFIX}{command}", label, _STYLES.get(style, _STYLES["default"]))
        )
        self.command = command

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CommandButton:
        return cls(match["command"], label=getattr(item, "label", None) or "Run")

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.on_command_button(interaction, self.command)


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    ApproveButton,
    CancelButton,
    CommandButton,
)


def reply_view(reply: Reply, *, skip_approval: int | None = None) -> discord.ui.View | None:
    """The reply's buttons as a persistent view (no timeout), or None when it has none."""
    items: list[discord.ui.Item[Any]] = []
    for b in reply.buttons[:MAX_BUTTONS]:
        if b.action in ("approve", "cancel"):
            approval_id = parse_id(b.value)
            if approval_id is None or approval_id == skip_approval:
                continue
            cls = ApproveButton if b.action == "approve" else CancelButton
            items.append(cls(approval_id, label=b.label))
        else:
            command = b.value.lstrip("/")
            if not command or len(COMMAND_PREFIX) + len(command) > MAX_CUSTOM_ID:
                log.info("button %r does not fit a Discord custom_id; left out", b.label)
                continue
            items.append(CommandButton(command, label=b.label, style=b.style))
    return _view(items)


def _view(items: list[discord.ui.Item[Any]]) -> discord.ui.View | None:
    """A persistent view (no timeout) of `items`, or None when there are none."""
    if not items:
        return None
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def remaining_view(message: discord.Message | None, approval_id: int) -> discord.ui.View | None:
    """The card's buttons minus those of the approval just decided (a card from the agent can
    carry several approvals)."""
    if message is None:
        return None
    items: list[discord.ui.Item[Any]] = []
    for row in message.components:
        for comp in getattr(row, "children", []):
            custom_id = getattr(comp, "custom_id", None) or ""
            label = getattr(comp, "label", None) or ""
            for prefix, cls in ((APPROVE_PREFIX, ApproveButton), (CANCEL_PREFIX, CancelButton)):
                if custom_id.startswith(prefix):
                    other = parse_id(custom_id[len(prefix) :])
                    if other is not None and other != approval_id:
                        items.append(cls(other, label=label))
            if custom_id.startswith(COMMAND_PREFIX):
                items.append(CommandButton(custom_id[len(COMMAND_PREFIX) :], label=label))
    return _view(items)


def decided_embeds(message: discord.Message | None, decision: str, *, colour: int) -> list[Any]:
    """The card's embeds with the decision added (as a last small embed)."""
    embeds = list(message.embeds) if message is not None else []
    if embeds:
        embeds[0].colour = discord.Colour(colour)
    note = note_embed(decision, colour=colour)
    embeds = embeds[: MAX_EMBEDS - 1]
    while embeds and sum(len(e) for e in embeds) + len(note) > MAX_TOTAL:
        embeds.pop()
    return [*embeds, note]


DECISION_COLOURS = {
    DecisionOutcome.approved: COLOUR_OK,
    DecisionOutcome.failed: COLOUR_OK,
    DecisionOutcome.cancelled: COLOUR_NEUTRAL,
    DecisionOutcome.expired: COLOUR_NEUTRAL,
}


def tell_clicker(interaction: discord.Interaction) -> OnError:
    """`on_error` for a click: an ephemeral followup to the clicker alone."""

    async def tell(text: str) -> None:
        await interaction.followup.send(embed=note_embed(text), ephemeral=True)

    return tell


class ApprovalHandlers:
    def __init__(self, surface: DiscordSurface) -> None:
        self.surface = surface

    async def on_decision(
        self, interaction: discord.Interaction, approval_id: int, *, approve: bool
    ) -> None:
        """Approve/Cancel clicked: acknowledge at once, then let `Cockpit.decide` decide."""
        self.surface.work.track()
        await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE: the card stays as is
        await self.surface.work.guard(
            self.decide(interaction, approval_id, approve=approve),
            what="approval click",
            on_error=tell_clicker(interaction),
        )

    async def decide(
        self, interaction: discord.Interaction, approval_id: int, *, approve: bool
    ) -> None:
        surface = self.surface
        card = interaction.message
        ctx = await surface.interaction_context(interaction)

        async def anchor() -> int | None:
            return card.id if card is not None else None

        progress = surface.interaction_progress(
            interaction, anchor=anchor, name=_card_title(card) or f"approval #{approval_id}"
        )
        # A custom_id is client-controlled: 2**63 matches the template's digits; decide
        # checks the id again.
        decision = await surface.cockpit.decide(
            ctx, str(approval_id), approve=approve, progress=progress.post
        )

        async def update_card(summary: str) -> None:
            try:
                await interaction.edit_original_response(
                    embeds=decided_embeds(card, summary, colour=DECISION_COLOURS[decision.outcome]),
                    view=remaining_view(card, approval_id),
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except discord.HTTPException:
                log.warning("could not update the approval card", exc_info=True)

        async def post_result(reply: Reply) -> None:
            # With its buttons, as Slack posts it (e.g. the next step an approved run offers).
            await progress.send(surface.render(reply), view=reply_view(reply))

        await decision.report(
            who=f"<@{interaction.user.id}>",
            when=discord.utils.format_dt(decision.when, style="t"),
            update_card=update_card,
            tell=tell_clicker(interaction),
            post_result=post_result,
        )

    async def on_command_button(self, interaction: discord.Interaction, command: str) -> None:
        """A command button: runs `/command` as the person who clicked, answered in a new
        message (like typing the command); a private reply (`Reply.ephemeral`) or a refusal
        goes to the clicker alone."""
        self.surface.work.track()
        # DEFERRED_UPDATE_MESSAGE: nothing is shown yet, so the answer can still be private.
        await interaction.response.defer()
        await self.surface.work.guard(
            self.run_command_button(interaction, command),
            what="command button",
            on_error=tell_clicker(interaction),
        )

    async def run_command_button(self, interaction: discord.Interaction, command: str) -> None:
        surface = self.surface
        ctx = await surface.interaction_context(
            interaction, idempotency_key=f"discord:{interaction.id}"
        )
        reply = await surface.cockpit.handle(ctx, "/" + command)
        kwargs = surface.render(reply).send_kwargs(view=reply_view(reply))
        private = reply.ephemeral or not reply.ok
        await interaction.followup.send(wait=True, ephemeral=private, **kwargs)


def _card_title(card: discord.Message | None) -> str | None:
    if card is None or not card.embeds:
        return None
    return card.embeds[0].title
