"""The console surface: plain words take the one message path (`Cockpit.on_message`), so a
pasted key is refused there as on Slack and Discord; a typed command runs like a slash
command, so `/connect <provider> <key>` still stores a key from the operator's terminal."""

from __future__ import annotations

import io
from pathlib import Path

from bot.adapters.console import Console
from bot.testing import running_bot

KEY = "rpa_ABCDEFGHIJKLMNOP"


async def test_a_key_in_plain_words_is_refused_and_a_typed_connect_stores_it(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as bot:
        out = io.StringIO()
        lines = f"my key is {KEY}, deploy qwen with it\n/connect runpod {KEY}\n/whoami\n"
        console = Console(bot.cockpit, user="alice", stdin=io.StringIO(lines), stdout=out)
        assert await console.run() == 0
        refused, connected = out.getvalue().split("cockpit> /connect")
        assert "RunPod secret key" in refused and "did not store it" in refused
        assert "approval" not in refused.lower()  # nothing was asked for, nothing ran
        assert "Saved the runpod key …MNOP" in connected


async def test_a_pick_list_reads_as_a_question_with_the_commands_to_type(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as bot:
        out = io.StringIO()
        console = Console(
            bot.cockpit, user="alice", stdin=io.StringIO("/deploy mistral\n"), stdout=out
        )
        assert await console.run() == 0
        text = out.getvalue()
        assert "Pick one" in text and "Error:" not in text, text
        assert "/deploy mistralai/Mistral-7B-Instruct-v0.3" in text, text
