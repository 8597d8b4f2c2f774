"""`causalspec fmt PATH...`: rewrite spec files in the canonical layout (syntax/formatter.py).

    causalspec fmt specs/            # rewrite every .cspec file under specs/ in place
    causalspec fmt --check specs/    # CI: list the files that would change (exit 1), change nothing
    causalspec fmt --diff a.cspec    # show the changes as a unified diff, change nothing

A file is rewritten only if it parses (its diagnostics are shown otherwise, exit 2) and only
if formatting keeps its meaning and every comment: the formatter keeps comments between
items and keeps an item with comments inside exactly as written. The rewrite is atomic (a
temporary file renamed over the original, its permissions kept) and is skipped if the file
changed while it was being formatted. Exit codes (as black's): 0 nothing to do, all rewritten,
or `--diff` alone; 1 with `--check` when a file would change; 2 a file that does not parse or cannot be
read or written, or a folder with no .cspec file.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

from causalspec.cli.base import EXIT_FAILED, EXIT_INVALID, EXIT_OK, Command, UsageError, stderr
from causalspec.diagnostics import SpecError, render
from causalspec.syntax.formatter import FormatError, format_text

HELP = "rewrite spec files in the canonical layout (comments kept); --check for CI"
SUFFIX = ".cspec"


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("paths", nargs="+", metavar="PATH", help="spec files, or folders searched for .cspec files")
    sp.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 listing the files that would be reformatted (for CI)")
    sp.add_argument("--diff", action="store_true", help="change nothing; print what would change as a unified diff")


def spec_files(paths: list[str]) -> list[Path]:
    """The files named, and the .cspec files under the folders named (sorted), each once. A
    path that does not exist, or a folder without spec files, is a usage error: a typo in a
    CI job must not pass because nothing was looked at."""
    found: dict[Path, None] = {}
    for text in paths:
        path = Path(text)
        if path.is_dir():
            inside = sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
            if not inside:
                raise UsageError(f"{text}: no {SUFFIX} file in this folder")
            found.update(dict.fromkeys(inside))
        elif path.is_file():
            found[path] = None
        else:
            raise UsageError(f"{text}: no such file or folder")
    return list(found)


def replace_text(path: Path, old: bytes, text: str) -> None:
    """Write `text` over `path` atomically, keeping its permissions; `OSError` (nothing
    written) if the file no longer holds `old`. A link is followed: the file it points to is
    rewritten and the link stays."""
    target = path.resolve()
    mode = target.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    replaced = False  # once it has replaced the target, there is no temporary file left to delete
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if target.read_bytes() != old:
            raise OSError(f"{path} changed while it was being formatted; run fmt again")
        os.replace(tmp, target)
        replaced = True
    finally:
        if not replaced:
            os.unlink(tmp)


def run(args: argparse.Namespace) -> int:
    err = stderr()
    write = not (args.check or args.diff)
    status = EXIT_OK
    changed = unchanged = 0
    for path in spec_files(args.paths):
        try:
            old = path.read_bytes()
            text = old.decode("utf-8")
            new = format_text(text, str(path))
        except SpecError as exc:
            err.print(render(exc.diagnostics), markup=False)
            err.print(f"{path}: {len(exc.diagnostics)} error(s); left unchanged", markup=False)
            status = EXIT_INVALID
            continue
        except (OSError, UnicodeDecodeError, FormatError) as exc:
            err.print(f"error: cannot format {path}: {exc}", markup=False)
            status = EXIT_INVALID
            continue
        if new == text:
            unchanged += 1
            continue
        changed += 1
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(keepends=True), new.splitlines(keepends=True),
                                                       f"{path}", f"{path} (formatted)"))
        if not write:
            err.print(f"would reformat {path}", markup=False)
            if args.check:
                status = max(status, EXIT_FAILED)
            continue
        try:
            replace_text(path, old, new)
        except OSError as exc:
            err.print(f"error: cannot write {path}: {exc.strerror or exc}", markup=False)
            status = EXIT_INVALID
            changed -= 1
            continue
        err.print(f"reformatted {path}", markup=False)
    verb = ("would be reformatted", "would be left unchanged") if not write else ("reformatted", "left unchanged")
    err.print(f"{changed} file(s) {verb[0]}, {unchanged} file(s) {verb[1]}", markup=False)
    return status


COMMAND = Command("fmt", HELP, add_arguments, run, description=HELP + ".")
