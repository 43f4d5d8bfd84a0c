"""Agent daemon: private files in the state directory, written whole, mode 0600, durably.

The agent's key, its enrolment state and the cached test list are all written here: created
0600 from their first byte (a chmod afterwards would leave a window in which others could
read them), never through a symbolic link planted in their place, renamed into place so a
crash leaves the old file or the new one and never half of one, and with the directory
synced, so a power cut cannot undo a rename the agent already acted on.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["fsync_dir", "write_private"]


def write_private(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Writes ``data`` to ``path``. With ``replace=False`` an existing file is never
    clobbered, even one created concurrently: :class:`FileExistsError`. Raises OSError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # exactly 0600, whatever the umask took away
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            # link() fails if the name exists, where rename() would replace it.
            os.link(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def fsync_dir(directory: Path) -> None:
    """Makes the entries just created or renamed in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
