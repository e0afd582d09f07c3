"""Secrets at rest: Fernet with key rotation (MultiFernet). Keys come from COCKPIT_SECRET_KEY
(comma-separated, newest first); without it one is generated into the data dir (0600, the dir
0700)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from storage.files import PRIVATE_FILE_MODE, private_dir, tighten_if_exists

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


class SecretError(Exception):
    pass


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretError("At least one Fernet key is needed.")
        self._primary = keys[0].strip().encode()
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise SecretError(
                "COCKPIT_SECRET_KEY is not a valid Fernet key. Generate one with `python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError(
                "A stored secret cannot be decrypted with the configured keys. Keep the old key in "
                "COCKPIT_SECRET_KEY (comma-separated, newest first) while rotating."
            ) from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()

    def derive(self, label: str) -> str:
        """A stable secret for `label` (HMAC-SHA256 under the newest key), e.g. the API key a
        pod's vLLM server requires: recomputed when needed, so never stored anywhere."""
        return hmac.new(self._primary, label.encode(), hashlib.sha256).hexdigest()


def last4(secret: str) -> str:
    """The only form of a secret ever shown: `…abcd`."""
    return "…" + secret[-4:] if len(secret) >= 8 else "…"


def load_secret_box(env_value: str | None, data_dir: Path) -> tuple[SecretBox, bool]:
    """Return the box and whether the key was generated (so the caller can warn)."""
    if env_value:
        if data_dir.exists():  # it still holds the database, sandbox state, console history
            private_dir(data_dir)
        return SecretBox([k for k in env_value.split(",") if k.strip()]), False
    path = data_dir / KEY_FILE_NAME
    generated = False
    # The folder that holds the key is owner-only (0700), the key file 0600, also when an
    # older version or a loose umask left them readable.
    private_dir(data_dir)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode())
        generated = True
    tighten_if_exists(path)
    return SecretBox([path.read_text().strip()]), generated
