"""Safe output files: atomic writes that never clobber a file the user made.

Why: reports, graphs and artifacts are often written next to user files in a repo. A write
goes to a temporary file in the same folder and is renamed into place (no half-written
file on a crash), and an existing target is replaced only when it is recognisably ours
(it carries our marker near its start); otherwise we refuse and say so.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MARKER = "causalspec"


class OverwriteRefused(Exception):
    """The target exists and was not written by causalspec."""


def _check_target(path: Path, marker: bytes | None) -> None:
    if not path.exists():
        return
    if path.is_dir():
        raise OverwriteRefused(f"{path} is a directory; give a file name")
    if marker is None:
        raise OverwriteRefused(f"{path} already exists; choose another name or delete it first")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if marker not in head:
        raise OverwriteRefused(f"{path} already exists and was not written by causalspec; "
                               "refusing to overwrite it (choose another name or delete it first)")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, marker: bytes | None = MARKER.encode()) -> Path:
    """Write `data` to `path` atomically. `marker`: bytes that identify a previous file of ours."""
    path = Path(path)
    _check_target(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, marker: str | None = MARKER) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), marker.encode() if marker else None)
