"""Key-shaped text is never persisted: every audit row, replay record and approval summary
passes through `scrub` on its way into the database, whoever typed it and wherever.

The patterns are the shapes of the keys this product handles (provider keys, Slack tokens, our
own API keys and invite codes), so a key pasted into an ordinary field (`/status rpa_…`) is
caught even though nobody told us its value. `bot.logs` uses the same patterns for log lines.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# Other services' keys: a message holding one is refused by the surfaces (bot.logs).
PROVIDER_KEY_PATTERNS = [
    re.compile(r"rpa_[A-Za-z0-9]{8,}"),
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"hf_[A-Za-z0-9]{8,}"),
    re.compile(r"xox[abposr]-[A-Za-z0-9\-]{8,}"),
    re.compile(r"xapp-[A-Za-z0-9\-]{8,}"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._\-]{8,}"),
]
# This product's own HTTP API keys (storage.apikeys.KEY_PREFIX) and invite codes.
SECRET_PATTERNS = [
    *PROVIDER_KEY_PATTERNS,
    re.compile(r"ck_[A-Za-z0-9_\-]{16,}"),
    re.compile(r"CK-[0-9A-F]{8}-[0-9A-F]{8}"),
]


def scrub(text: str) -> str:
    """`text` with every key-shaped substring replaced by [redacted]. Linear time: each pattern
    is a literal prefix followed by one character class."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text
