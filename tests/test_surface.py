"""Command hints spelled per surface (issue 18, part 2) and the contract every built-in tool
input follows."""

from __future__ import annotations

from bot.app import load_tool_modules
from bot.surface import spell_commands
from tools.contract import REGISTRY, ToolInput

COMMANDS = {"status", "deploy", "scale", "help", "deployments", "cockpit"}
NATIVE = {"cockpit", "deploy"}


def spell(text: str) -> str:
    return spell_commands(text, commands=COMMANDS, native=NATIVE, umbrella="cockpit")


def test_hints_of_commands_slack_lacks_use_the_umbrella() -> None:
    assert spell("See /deployments.") == "See /cockpit deployments."
    assert spell("Try `/scale 3 --max 1` or /status 3") == (
        "Try `/cockpit scale 3 --max 1` or /cockpit status 3"
    )
    assert spell("(/help)") == "(/cockpit help)"


def test_native_commands_paths_and_urls_are_left_alone() -> None:
    for text in (
        "/deploy qwen",
        "/cockpit status 1",
        "GET /v1/models through the proxy",
        "files in tools/status and /status/x",
        "https://example.com/status",
        "/unknown stays",
        "a/status",
    ):
        assert spell(text) == text, text


def test_every_builtin_tool_input_gets_the_contract_bounds() -> None:
    """Bounds on integers and text live in ToolInput; a plain BaseModel would skip them."""
    load_tool_modules()
    plain = [t.name for t in REGISTRY.all() if not issubclass(t.input_model, ToolInput)]
    assert plain == []
