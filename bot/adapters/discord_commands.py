"""Application (slash) commands generated from the tool registry, and what runs when one is used.

One command per registry tool (its command name), options typed from the tool's pydantic input
model: str / int / float / bool, choices from `Literal`, min/max from the field constraints;
required positionals are required options. `deployment` options autocomplete from the
organisation's deployments, `model` options from the model aliases.

Every invocation takes the same path: defer at once (Discord's 3-second rule), rebuild the
command line from the options (`bot.options.command_line`), `Cockpit.handle(ctx, line)`,
then a followup with the rendered Reply. `/chat` additionally opens a thread bound to the
deployment and streams the answer into it.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord
from discord import app_commands

from bot.adapters.discord_approvals import reply_view, tell_clicker
from bot.adapters.discord_base import DiscordSurface, log
from bot.adapters.discord_render import DiscordMessage, note_embed
from bot.adapters.discord_stream import (
    StreamedMessage,
    ThreadProgress,
    is_dm,
    is_thread,
    start_thread,
)
from bot.options import (
    OptionKind,
    command_line,
    command_name,
    completes,
    describe,
    model_choices,
    option_kind,
)
from bot.render import sandbox_footer, truncate
from tools.contract import Registry, Reply, RequestContext, Tool

MAX_COMMAND_DESCRIPTION = 100
MAX_OPTION_DESCRIPTION = 100
MAX_OPTIONS = 25
MAX_CHOICES = 25
MAX_CHOICE_NAME = 100
COMMAND_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
CHAT_TOOL = "chat_with_model"

gen_log = logging.getLogger(__name__)

# (interaction, tool, option values) -> None
Invoke = Callable[[discord.Interaction, Tool, dict[str, Any]], Awaitable[None]]
# (interaction, option kind "deployment" | "model", text typed so far) -> choices
Complete = Callable[[discord.Interaction, str, str], Awaitable[list[app_commands.Choice[str]]]]


# --- generation ----------------------------------------------------------------------------


def option_annotation(kind: OptionKind) -> Any:
    """The discord.py annotation for an option: choices become a Literal, bounds a Range."""
    if kind.choices:
        return Literal[kind.choices]
    if kind.low is None and kind.high is None:
        return kind.type
    cast = float if kind.type is float else int
    low = None if kind.low is None else cast(kind.low)
    high = None if kind.high is None else cast(kind.high)
    return app_commands.Range[kind.type, low, high]


def build_command(
    tool: Tool, *, invoke: Invoke, complete: Complete | None = None
) -> app_commands.Command[Any, ..., Any] | None:
    """The application command for one tool, or None when the tool cannot be one (a name
    Discord does not allow). Every option the person leaves out is left out of the command
    line, so the tool's own defaults apply."""
    name = command_name(tool)
    if not COMMAND_NAME.match(name):
        gen_log.warning("tool %s: /%s is not a valid Discord command name", tool.name, name)
        return None
    params = [
        inspect.Parameter(
            "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
        )
    ]
    descriptions: dict[str, str] = {}
    autocomplete: dict[str, Any] = {}
    fields = list(tool.input_model.model_fields.items())
    if len(fields) > MAX_OPTIONS:
        gen_log.warning("tool %s: only the first %d options are offered", tool.name, MAX_OPTIONS)
    for field_name, field in fields[:MAX_OPTIONS]:
        if not COMMAND_NAME.match(field_name) or field_name == "interaction":
            gen_log.warning("tool %s: option %r cannot be a Discord option", tool.name, field_name)
            continue
        annotation = option_annotation(option_kind(field, max_choices=MAX_CHOICES))
        required = field.is_required()
        params.append(
            inspect.Parameter(
                field_name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation if required else annotation | None,
                default=inspect.Parameter.empty if required else None,
            )
        )
        descriptions[field_name] = describe(
            field.description, field.default, MAX_OPTION_DESCRIPTION
        )
        completion = completes(field_name)
        if complete is not None and completion and annotation is str:
            autocomplete[field_name] = _completer(complete, completion)

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await invoke(interaction, tool, values)

    vars(callback).update(
        __signature__=inspect.Signature(params),
        __discord_app_commands_param_description__=descriptions,
    )
    if autocomplete:
        vars(callback)["__discord_app_commands_param_autocomplete__"] = autocomplete
    return app_commands.Command(
        name=name,
        description=truncate(tool.summary or name, MAX_COMMAND_DESCRIPTION),
        callback=callback,
    )


def _completer(complete: Complete, kind: str) -> Any:
    async def autocomplete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await complete(interaction, kind, current)

    return autocomplete


def build_commands(
    registry: Registry, *, invoke: Invoke, complete: Complete | None = None
) -> list[app_commands.Command[Any, ..., Any]]:
    """One application command per registry tool (aliases are not repeated)."""
    out: list[app_commands.Command[Any, ..., Any]] = []
    seen: set[str] = set()
    for tool in registry.all():
        cmd = build_command(tool, invoke=invoke, complete=complete)
        if cmd is not None and cmd.name not in seen:
            seen.add(cmd.name)
            out.append(cmd)
    return out


# --- handlers ------------------------------------------------------------------------------


class CommandHandlers:
    def __init__(self, surface: DiscordSurface) -> None:
        self.surface = surface

    async def on_command(
        self, interaction: discord.Interaction, tool: Tool, values: dict[str, Any]
    ) -> None:
        """A slash command: defer within Discord's 3 s, run it, follow up with the answer."""
        self.surface.work.track()
        # A tool that takes a secret answers privately, so the invocation stays private too.
        private = bool(tool.secret_fields)
        await interaction.response.defer(thinking=True, ephemeral=private)
        await self.surface.work.guard(
            self.run_command(interaction, tool, values, private=private),
            what=f"/{command_name(tool)}",
            on_error=tell_clicker(interaction),
        )

    async def run_command(
        self,
        interaction: discord.Interaction,
        tool: Tool,
        values: dict[str, Any],
        *,
        private: bool,
    ) -> None:
        line = command_line(tool, values)
        ctx = await self.surface.interaction_context(
            interaction, idempotency_key=f"discord:{interaction.id}"
        )
        if tool.name == CHAT_TOOL and not private:
            await self.run_chat(interaction, ctx, line, values)
            return
        progress = self.progress_for(interaction, name=line)
        reply = await self.surface.cockpit.handle(ctx, line, progress=progress.post)
        shared = progress.thread_id is not None
        await self.answer(interaction, reply, private=private, shared=shared)

    def progress_for(self, interaction: discord.Interaction, *, name: str) -> ThreadProgress:
        """Progress of a slash command: a thread under the command's response message."""

        async def anchor() -> int | None:
            message = await interaction.original_response()
            return message.id

        return self.surface.interaction_progress(interaction, anchor=anchor, name=name)

    async def answer(
        self,
        interaction: discord.Interaction,
        reply: Reply,
        *,
        private: bool = False,
        shared: bool = False,
    ) -> None:
        """Follow up with the reply. An error (or an ephemeral reply) that nobody else has seen
        yet goes to the requester alone: the public "thinking…" message is removed first."""
        message = self.surface.render(reply)
        view = reply_view(reply)
        if (reply.ephemeral or not reply.ok) and not private and not shared:
            try:
                await interaction.delete_original_response()
                private = True
            except discord.HTTPException:
                log.info("could not remove the deferred response; answering in place")
        await self.followup(interaction, message, view=view, ephemeral=private)

    async def followup(
        self,
        interaction: discord.Interaction,
        message: DiscordMessage,
        *,
        view: discord.ui.View | None = None,
        ephemeral: bool = False,
    ) -> discord.WebhookMessage:
        kwargs = message.send_kwargs(view=view)
        return await interaction.followup.send(wait=True, ephemeral=ephemeral, **kwargs)

    # -- /chat: a thread bound to a deployment, the answer streamed -----------------------

    async def run_chat(
        self,
        interaction: discord.Interaction,
        ctx: RequestContext,
        line: str,
        values: dict[str, Any],
    ) -> None:
        surface = self.surface
        channel = interaction.channel
        ref = str(values.get("deployment") or "").replace("`", "'")
        opener: discord.WebhookMessage | None = None
        created = False
        thread_id: int | None = None
        if is_thread(channel):
            thread_id = interaction.channel_id
            opener = await self.followup(
                interaction,
                DiscordMessage(embeds=[note_embed(f"💬 Chatting with `{ref}` in this thread.")]),
            )
        elif not is_dm(channel) and interaction.guild_id is not None:
            opener = await self.followup(
                interaction,
                DiscordMessage(
                    embeds=[note_embed(f"💬 Chat with `{ref}`: continue in the thread below.")]
                ),
            )
            try:
                thread_id = await start_thread(
                    surface.client, interaction.channel_id or 0, opener.id, name=f"chat · {ref}"
                )
                created = True
            except discord.HTTPException:
                log.warning("could not open a chat thread; answering in place", exc_info=True)
        if thread_id is not None:
            ctx = ctx.model_copy(update={"channel": str(thread_id), "thread": str(thread_id)})
        target = surface.client.get_partial_messageable(
            thread_id or interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            type=discord.ChannelType.public_thread if thread_id else None,
        )
        if opener is None and thread_id is None:
            # A DM (no threads there): the followup says where the answer comes.
            opener = await self.followup(
                interaction, DiscordMessage(embeds=[note_embed(f"💬 Chat with `{ref}`.")])
            )
        stream = StreamedMessage(target, clock=surface.clock)
        reply = await surface.cockpit.handle(ctx, line, stream=stream.feed)
        if not reply.ok and not stream.started:
            if created and thread_id is not None:
                try:
                    await surface.client.http.delete_channel(thread_id)
                except discord.HTTPException:
                    log.info("could not delete the unused chat thread %s", thread_id)
            if opener is not None:
                await opener.edit(**_edit_kwargs(surface.render(reply)))
            return
        await deliver(surface, target, reply, stream)

    # -- autocomplete ---------------------------------------------------------------------

    async def on_autocomplete(
        self, interaction: discord.Interaction, kind: str, current: str
    ) -> list[app_commands.Choice[str]]:
        if kind == "model":
            found = model_choices(current)
        else:
            try:
                ctx = await self.surface.interaction_context(interaction)
            except Exception:
                log.warning("autocomplete: no context", exc_info=True)
                return []
            deployments = await self.surface.cockpit.deployments_like(ctx, current)
            found = [
                (f"#{d.id} {d.name} · {d.model_id} ({d.status})", str(d.id)) for d in deployments
            ]
        return [
            app_commands.Choice(name=truncate(label, MAX_CHOICE_NAME), value=value)
            for label, value in found[:MAX_CHOICES]
        ]


def _edit_kwargs(message: DiscordMessage) -> dict[str, Any]:
    kwargs = message.send_kwargs()
    files = kwargs.pop("files", None)
    if files:
        kwargs["attachments"] = files
    kwargs["view"] = None
    return kwargs


async def deliver(
    surface: DiscordSurface,
    target: discord.abc.Messageable,
    reply: Reply,
    stream: StreamedMessage | None = None,
) -> None:
    """Post a reply into `target`. After a streamed answer, the final edit carries the full
    text (footer as a small line) and only the other parts (fields, table, buttons) follow as
    an embed; an error after a partial stream keeps the partial text and adds the error."""
    if stream is not None and stream.started:
        footer = sandbox_footer(reply.footer, sandbox=surface.sandbox, note="sandbox")
        await stream.finish(reply.text if reply.ok and reply.text else None, footer=footer)
        reply = reply.model_copy(update={"text": "" if reply.ok else reply.text, "footer": None})
        if not (reply.text or reply.title or reply.fields or reply.table or reply.buttons):
            return
    await target.send(**surface.render(reply).send_kwargs(view=reply_view(reply)))


__all__ = [
    "CHAT_TOOL",
    "CommandHandlers",
    "build_command",
    "build_commands",
    "deliver",
    "option_annotation",
]
