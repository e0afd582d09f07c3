"""README.md's command table is checked against the registry: every command a person can type
is in the table, and the table names no command that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from bot.app import load_tool_modules
from bot.router import DECISION_COMMANDS
from tools.contract import REGISTRY

README = Path(__file__).resolve().parents[1] / "README.md"
COMMAND = re.compile(r"`/([a-z][a-z-]*)")


def readme_commands() -> set[str]:
    """The first word of each `/command` in the first column of the table under ## Commands."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `/")]
    assert rows, "README.md has no command table under ## Commands"
    return {name for row in rows for name in COMMAND.findall(row.split(" | ")[0])}


def registry_commands() -> set[str]:
    load_tool_modules()
    return {(t.command or t.name).split()[0] for t in REGISTRY.all()}


def test_every_registry_command_is_in_the_readme_table() -> None:
    missing = registry_commands() - readme_commands()
    assert not missing, f"add these commands to README.md's table: {sorted(missing)}"


def test_the_readme_table_names_only_commands_that_exist() -> None:
    """Aliases count (`/benchmarks`); /approve and /cancel are decisions typed by hand."""
    load_tool_modules()
    typed = {c.split()[0] for c in REGISTRY.commands()} | set(DECISION_COMMANDS)
    unknown = readme_commands() - typed
    assert not unknown, f"README.md's table names commands that do not exist: {sorted(unknown)}"
