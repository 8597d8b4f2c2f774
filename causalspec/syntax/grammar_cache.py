"""lark's LALR tables for the spec grammar, cached in the user's cache folder.

Why: building the tables from `causalspec.lark` takes ~0.25 s, paid by every process — an
editor or pre-commit hook running `causalspec parse` on each save pays it every time. Loading
them back takes ~0.03 s.

The cache is only a shortcut, never a source of truth:
- its file name and header carry a key over the grammar's text, the parser options, lark's
  version and Python's, so a changed grammar or an upgraded lark never reads a stale table;
- the payload is stored with its SHA-256 and only unpickled when the digest matches, so a
  truncated or otherwise corrupt file is rebuilt, never trusted;
- writes go to a temporary file renamed into place (a concurrent reader sees the old file
  or the new one, never half of one);
- an unwritable or missing folder, or any failure to read, falls back silently to building.

Folder: `$CAUSALSPEC_CACHE_DIR` if set, else `$XDG_CACHE_HOME/causalspec`, else
`~/.cache/causalspec` (`%LOCALAPPDATA%\\causalspec\\Cache` on Windows). Setting
`CAUSALSPEC_CACHE_DIR` to an empty string turns the cache off.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import causalspec.syntax.lark_import  # noqa: F401  (first: lark without `regex`)
import lark
from lark import Lark

MAGIC = b"causalspec-lalr-cache-1\n"
_DIGEST = 32  # bytes of a SHA-256


def cache_dir() -> Path | None:
    """The folder holding causalspec's caches, or None when caching is turned off."""
    explicit = os.environ.get("CAUSALSPEC_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "causalspec" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is invalid, ignore it
        return Path(xdg) / "causalspec"
    return Path.home() / ".cache" / "causalspec"


def cache_key(grammar: str, options: dict[str, Any]) -> str:
    """What the tables depend on: the grammar, the options, lark's and Python's versions."""
    parts = [grammar, repr(sorted(options.items())), lark.__version__, "{}.{}".format(*sys.version_info[:2]),
             MAGIC.decode()]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def cache_file(key: str) -> Path | None:
    folder = cache_dir()
    return folder / f"lalr-{key[:32]}.bin" if folder is not None else None


def load_cached(path: Path, key: str) -> Lark | None:
    """The parser stored at `path` for `key`, or None if absent, stale or corrupt."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    header = MAGIC + key.encode("ascii") + b"\n"
    if not blob.startswith(header) or len(blob) < len(header) + _DIGEST:
        return None
    digest, payload = blob[len(header):len(header) + _DIGEST], blob[len(header) + _DIGEST:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    try:
        parser = Lark.load(io.BytesIO(payload))
    except Exception:  # noqa: BLE001 - a file that passed the digest but lark cannot load: rebuild
        return None
    return parser if isinstance(parser, Lark) else None


def store(path: Path, key: str, parser: Lark) -> bool:
    """Write `parser` to `path` atomically; False (and nothing left behind) if that fails."""
    buf = io.BytesIO()
    try:
        parser.save(buf)
    except Exception:  # noqa: BLE001 - a parser lark cannot serialise is simply not cached
        return False
    payload = buf.getvalue()
    blob = MAGIC + key.encode("ascii") + b"\n" + hashlib.sha256(payload).digest() + payload
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lalr-", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def cached_lalr(grammar: str, options: dict[str, Any], build: Callable[[], Lark] | None = None) -> Lark:
    """A LALR `Lark` for `grammar` with `options`, from the cache when a valid entry exists;
    otherwise built (by `build`, default `Lark(grammar, **options)`) and stored for next time."""
    key = cache_key(grammar, options)
    path = cache_file(key)
    if path is not None:
        cached = load_cached(path, key)
        if cached is not None:
            return cached
    parser = build() if build is not None else Lark(grammar, **options)
    if path is not None:
        store(path, key, parser)
    return parser
