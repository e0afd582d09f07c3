"""Console surface: a REPL over the same pipeline as Slack and Discord: a typed command is a
slash command (`Cockpit.handle`), plain words a message (`Cockpit.on_message`).

Interactive: readline history, prompts. Piped: reads lines from stdin, prints plain text; an
approval prompts `Approve? [y/N]` and reads the next line; `--yes` approves everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from bot import router
from bot.app import Cockpit
from bot.conversation import Answered, SecretRefused, SurfaceWork
from bot.logs import secret_provider
from tools.contract import Platform, Reply, RequestContext, Role

HISTORY_FILE_MODE = 0o600

CONSOLE_WORKSPACE_ID = "local"
CONSOLE_WORKSPACE_NAME = "local"
PROMPT = "cockpit> "
EXIT_WORDS = {"exit", "quit", "/exit", "/quit"}
KEY_NOTE = (
    "That looks like a {provider} secret key: I did not store it or pass it on. To store a key, "
    "type `/connect <provider> <key>` (it is kept out of the history)."
)

log = logging.getLogger(__name__)


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "operator"


class Console:
    def __init__(
        self,
        cockpit: Cockpit,
        *,
        user: str,
        role: Role = Role.owner,
        yes: bool = False,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.cockpit = cockpit
        self.user = user
        self.role = role
        self.yes = yes
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty() and self.stdout.isatty()
        self.work = SurfaceWork("console", icon="Error:", log=log)
        self._streamed = False

    async def context(self) -> RequestContext:
        return await self.cockpit.context(
            platform=Platform.console,
            workspace_id=CONSOLE_WORKSPACE_ID,
            workspace_name=CONSOLE_WORKSPACE_NAME,
            user_id=self.user,
            display_name=self.user,
            role=self.role,
            channel="console",
        )

    def say(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    async def tell(self, text: str) -> None:
        self.say(text)

    async def progress(self, text: str) -> None:
        self.say(f"  … {text}")

    async def stream(self, delta: str) -> None:
        self._streamed = True
        self.stdout.write(delta)
        self.stdout.flush()

    async def read_line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                line = await asyncio.to_thread(input, prompt)
            except EOFError:
                return None
            _forget_if_secret(line)
            return line
        if prompt.startswith("Approve"):
            self.stdout.write(prompt)
            self.stdout.flush()
        line = await asyncio.to_thread(self.stdin.readline)
        if line == "":
            return None
        if prompt.startswith("Approve"):
            self.say(line.strip())
        return line.rstrip("\n")

    async def run(self) -> int:
        if self.interactive:
            _enable_history(self.cockpit.settings.data_dir / "console_history")
            mode = "sandbox (local RunPod emulator)" if self.cockpit.services.sandbox else "RunPod"
            self.say(
                f"AI Dev Cockpit console — you are {self.user} ({self.role.value}); cloud: {mode}."
            )
            self.say("Type /help, or ask in plain words. Ctrl-D or `exit` quits.")
        while True:
            line = await self.read_line(PROMPT)
            if line is None or line.strip().lower() in EXIT_WORDS:
                return 0
            if not line.strip():
                continue
            if not self.interactive:
                self.say(f"{PROMPT}{line.strip()}")
            # A bug below must not end the session: said with a reference, logged in full.
            await self.work.guard(self.handle_line(line), what="line", on_error=self.tell)

    async def handle_line(self, line: str) -> None:
        """A command runs like a slash command (so `/connect <provider> <key>` works here, on
        the operator's own terminal); plain words are a message, like a DM on Slack or
        Discord (`Cockpit.on_message`: a pasted key is refused, never given to the agent)."""
        self._streamed = False
        ctx = await self.context()
        if router.is_command(line):
            reply = await self.cockpit.handle(ctx, line, progress=self.progress, stream=self.stream)
        else:
            outcome = await self.cockpit.on_message(
                ctx, line.strip(), progress=self.progress, stream=self.stream
            )
            if isinstance(outcome, SecretRefused):
                self.say(KEY_NOTE.format(provider=outcome.provider))
                return
            # A console line is always addressed to the bot: never Ignored.
            reply = outcome.reply if isinstance(outcome, Answered) else Reply()
        if self._streamed and reply.ok:
            # The text already appeared token by token; finish the line and show the rest.
            self.say("")
            reply = reply.model_copy(update={"text": ""})
        self.render(reply)
        if reply.approval_id is not None:
            await self.ask_approval(reply.approval_id)

    async def ask_approval(self, approval_id: int) -> None:
        if self.yes:
            self.say("Approve? [y/N] y (--yes)")
            answer = "y"
        else:
            answer = (await self.read_line("Approve? [y/N] ") or "").strip().lower()
        ctx = await self.context()
        # The one approval path every surface takes (`Cockpit.decide`): a terminal has no card
        # to update, so it prints what ran, or why nothing did.
        decision = await self.cockpit.decide(
            ctx, approval_id, approve=answer in ("y", "yes"), progress=self.progress
        )
        if decision.reply.text or decision.reply.title:
            self.render(decision.reply)
        else:
            self.say(decision.note)

    def render(self, reply: Reply) -> None:
        if reply.needs_choice:
            # A question, not an error; a terminal has no buttons: the commands to type.
            commands = [f"  {b.value}" for b in reply.buttons if b.action == "command"]
            plain = reply.model_copy(update={"buttons": []}).as_plain_text()
            self.say("\n".join([plain, "Type one of:", *commands] if commands else [plain]))
            return
        text = reply.as_plain_text()
        self.say(("Error: " + text) if reply.is_error and not text.startswith("Error") else text)


def _forget_if_secret(line: str) -> None:
    """A typed `/connect <provider> <key>` or a pasted key never reaches the history file."""
    if not (secret_provider(line) or line.strip().lower().startswith("/connect")):
        return
    try:
        import readline
    except ImportError:
        return
    last = readline.get_current_history_length()
    if last:
        readline.remove_history_item(last - 1)


def _enable_history(path: Path) -> None:
    try:
        import readline
    except ImportError:  # Windows without pyreadline
        return
    import atexit

    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only, like the database: it holds what was typed (created 0600, never readable
    # by others for a moment; an older, looser file is tightened).
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, HISTORY_FILE_MODE))
        os.chmod(path, HISTORY_FILE_MODE)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    atexit.register(readline.write_history_file, str(path))
