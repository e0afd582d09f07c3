"""How a surface spells commands. Tools write hints as `/status 3`; Slack registers only a few
commands of its own (and `/status`, `/invite` are Slack built-ins), so there every other
command is typed `/cockpit status 3`. Adapters call `spell_reply` when they render a reply."""

from __future__ import annotations

import re
from collections.abc import Collection

from tools.contract import Reply

# `/name` at the start of a word: not a path (`tools/x`, `/v1/models` after a word), not a URL.
_COMMAND_HINT = re.compile(r"(?<![\w/.<@#:-])/([a-z][a-z0-9-]*)(?![\w/-]|\.\w)")


def spell_commands(
    text: str, *, commands: Collection[str], native: Collection[str], umbrella: str
) -> str:
    """`text` with each hint of a registry command the surface does not register itself
    rewritten to `/<umbrella> <command>`."""

    def spell(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in native or name not in commands:
            return m.group(0)
        return f"/{umbrella} {name}"

    return _COMMAND_HINT.sub(spell, text)


def spell_reply(
    reply: Reply, *, commands: Collection[str], native: Collection[str], umbrella: str
) -> Reply:
    """A copy of `reply` whose title, text, fields and footer name commands as this surface
    spells them."""

    def fix(value: str | None) -> str | None:
        if not value:
            return value
        return spell_commands(value, commands=commands, native=native, umbrella=umbrella)

    fields = [f.model_copy(update={"value": fix(f.value)}) for f in reply.fields]
    return reply.model_copy(
        update={
            "title": fix(reply.title),
            "text": fix(reply.text) or "",
            "footer": fix(reply.footer),
            "fields": fields,
        }
    )
