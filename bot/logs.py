"""Logging setup with a redaction filter: no secret value ever reaches a log line."""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Shapes of keys, caught even when we were never told the value (shared with storage, which
# scrubs the same shapes from everything it persists).
from storage.redaction import PROVIDER_KEY_PATTERNS, REDACTED, SECRET_PATTERNS

MIN_SECRET_CHARS = 6

_KEY_PROVIDERS = (
    ("rpa_", "RunPod"),
    ("sk-ant-", "Anthropic"),
    ("hf_", "Hugging Face"),
    ("xox", "Slack"),
    ("xapp-", "Slack"),
)


def secret_provider(text: str) -> str | None:
    """Whose secret key `text` appears to contain ("RunPod", "Slack"...), or None. Surfaces use
    it to refuse keys pasted into chat: they are never stored, echoed or forwarded."""
    for pattern in PROVIDER_KEY_PATTERNS:
        m = pattern.search(text)
        if m:
            found = m.group(0)
            return next(
                (name for prefix, name in _KEY_PROVIDERS if found.startswith(prefix)), "provider"
            )
    return None


class SecretRegistry:
    """Known secret values, redacted from every log line on top of the key shapes.

    Only values that were accepted and stored join it (settings, decrypted credentials, tokens
    saved by the OAuth flow), and an organisation's values are scoped to it: a refused or
    made-up "key" such as `deleted` cannot blank words in other tenants' log lines. A value
    still being verified is redacted only inside the task verifying it (`pending`).
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._by_org: dict[int, set[str]] = defaultdict(set)
        self._pending: ContextVar[frozenset[str]] = ContextVar(
            "cockpit_pending_secrets", default=frozenset()
        )

    def add(self, value: str | None, *, org_id: int | None = None) -> None:
        if not value or len(value) < MIN_SECRET_CHARS:
            return
        if org_id is None:
            self._values.add(value)
        else:
            self._by_org[org_id].add(value)

    @contextmanager
    def pending(self, value: str | None) -> Iterator[None]:
        """Redact `value` in log lines of this task (and tasks it starts) while it is checked."""
        extra = {value} if value and len(value) >= MIN_SECRET_CHARS else set()
        token = self._pending.set(self._pending.get() | extra)
        try:
            yield
        finally:
            self._pending.reset(token)

    def _known(self, org_id: int | None) -> set[str]:
        values = self._values | self._pending.get()
        if org_id is not None:
            return values | self._by_org.get(org_id, set())
        # A line outside any organisation's context (start-up, the scheduler) redacts them all.
        return values.union(*self._by_org.values())

    def redact(self, text: str, *, org_id: int | None = None) -> str:
        for v in self._known(org_id):
            if v in text:
                text = text.replace(v, REDACTED)
        for pat in SECRET_PATTERNS:
            text = pat.sub(REDACTED, text)
        return text


SECRETS = SecretRegistry()


def redact(text: str, *, org_id: int | None = None) -> str:
    return SECRETS.redact(text, org_id=org_id)


LOG_FIELDS = ("org_id", "request_id", "tool", "platform")
_LOG_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("cockpit_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach fields (organisation, request id, tool) to every log line inside the block,
    including lines logged by clients and libraries further down the call."""
    merged = {**(_LOG_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _LOG_CONTEXT.set(merged)
    try:
        yield
    finally:
        _LOG_CONTEXT.reset(token)


def _redact_record(record: logging.LogRecord) -> None:
    context = _LOG_CONTEXT.get() or {}
    for key, value in context.items():
        if not hasattr(record, key):
            setattr(record, key, value)
    org_id = context.get("org_id")
    org = org_id if isinstance(org_id, int) else None
    record.msg = SECRETS.redact(record.getMessage(), org_id=org)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = SECRETS.redact(record.exc_text, org_id=org)


def install_record_redaction() -> None:
    """Redact every log record when it is created, so no handler (ours, pytest's, a host's)
    ever sees a secret."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_cockpit_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_record(record)
        return record

    factory._cockpit_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    FIELDS = LOG_FIELDS

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for f in self.FIELDS:
            if hasattr(record, f):
                out[f] = getattr(record, f)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", *, json_output: bool | None = None) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        if getattr(h, "_cockpit", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._cockpit = True  # type: ignore[attr-defined]
    use_json = (not sys.stderr.isatty()) if json_output is None else json_output
    handler.setFormatter(
        JsonFormatter() if use_json else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    install_record_redaction()
    for noisy in ("httpx", "httpcore", "httpx2", "aiohttp.access", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
