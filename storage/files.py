"""Owner-only file modes for what holds secrets: the SQLite database (and its -wal/-shm), the
generated Fernet key and the data folder around them. Loosened modes left by older versions or a
permissive umask are tightened at start-up; a file we cannot change is logged, not fatal."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_GROUP_AND_OTHER = 0o077


def private_dir(path: Path) -> None:
    """Create `path` (and parents) if missing; make it owner-only (0700)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty if missing (never world-readable for a moment); make it 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    _tighten(path, PRIVATE_FILE_MODE)


def tighten_if_exists(path: Path) -> None:
    """Make an existing file 0600 (a missing one is fine)."""
    if path.exists():
        _tighten(path, PRIVATE_FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & _GROUP_AND_OTHER:
            os.chmod(path, mode)
    except OSError as exc:  # not our file (shared volume) or a filesystem without modes
        log.warning("could not make %s private (%s); check its permissions", path, exc)
