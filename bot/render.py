"""Text shaping every surface shares: a cut marked with "…", long text split into pieces that
keep code fences balanced, a table as code blocks, and the sandbox mark on a footer. Pure
functions on plain text; each surface adds its own markup (mrkdwn, embeds) and limits."""

from __future__ import annotations

from tools.contract import Table, render_table

ELLIPSIS = "…"
FENCE = "```"
SANDBOX_NOTE = "sandbox: simulated RunPod cloud, no real GPUs or charges"
# Inside a code block a fence would end it early: a zero-width space keeps it inert.
INERT_FENCE = "`\u200b``"


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, marking the cut with "…"."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def one_line(text: str, limit: int, *, default: str = "") -> str:
    """`text` with its whitespace runs (line breaks too) made single spaces, within `limit`."""
    return truncate(" ".join(text.split()) or default, limit)


def cut_point(text: str, room: int) -> int:
    """Where to cut `text` to keep at most `room` characters: a line break, else a space."""
    window = text[:room]
    for sep in ("\n", " "):
        at = window.rfind(sep)
        if at > room // 2:
            return at + (0 if sep == "\n" else 1)
    return room


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into pieces of at most `limit` characters, at a line break or a space where
    possible. A code fence left open by a cut is closed and reopened in the next piece."""
    if limit <= len(FENCE) * 4:
        raise ValueError("limit too small to split text")
    pieces: list[str] = []
    rest = text
    reopen = False
    while rest:
        head = f"{FENCE}\n" if reopen else ""
        whole = head + rest
        odd = whole.count(FENCE) % 2 == 1
        if len(whole) + (len(FENCE) + 1 if odd else 0) <= limit:
            pieces.append(whole + (f"\n{FENCE}" if odd else ""))
            break
        room = limit - len(head) - len(FENCE) - 1  # keep room to close a fence
        cut = cut_point(rest, room)
        body = head + rest[:cut].rstrip()
        rest = rest[cut:].lstrip("\n")
        reopen = body.count(FENCE) % 2 == 1
        pieces.append(body + (f"\n{FENCE}" if reopen else ""))
    return pieces


def table_lines(table: Table, *, cell_limit: int | None = None) -> list[str]:
    """The table as aligned lines (header, rule, rows); cells cut to `cell_limit` first."""
    if cell_limit is not None:
        table = Table(
            columns=[truncate(c, cell_limit) for c in table.columns],
            rows=[[truncate(str(c), cell_limit) for c in row] for row in table.rows],
        )
    return render_table(table).splitlines()


def code_blocks(lines: list[str], limit: int, *, header: int = 0) -> list[str]:
    """`lines` as fenced code blocks of at most `limit` characters each, split between lines;
    the first `header` lines (a table's column names and rule) start every block. A line too
    long for a block is cut."""
    head = [line.replace(FENCE, INERT_FENCE) for line in lines[:header]]
    overhead = 2 * len(FENCE) + 2 + sum(len(line) + 1 for line in head)
    blocks: list[str] = []
    current: list[str] = []
    size = overhead
    for line in lines[header:]:
        line = truncate(line.replace(FENCE, INERT_FENCE), limit - overhead - 1)
        if current and size + len(line) + 1 > limit:
            blocks.append(_fenced([*head, *current]))
            current, size = [], overhead
        current.append(line)
        size += len(line) + 1
    if current or head:
        blocks.append(_fenced([*head, *current]))
    return blocks


def _fenced(lines: list[str]) -> str:
    return f"{FENCE}\n" + "\n".join(lines) + f"\n{FENCE}"


def sandbox_footer(
    footer: str | None, *, sandbox: bool, limit: int | None = None, note: str = SANDBOX_NOTE
) -> str:
    """The reply's footer (within `limit`), saying "sandbox" once whenever the services are the
    sandbox: `note` is added unless the footer already says so."""
    footer = footer or ""
    if sandbox and "sandbox" not in footer.lower():
        if not footer:
            return note
        if limit is not None:
            footer = truncate(footer, limit - len(note) - 3)
        return f"{footer} · {note}"
    return truncate(footer, limit) if limit is not None else footer
