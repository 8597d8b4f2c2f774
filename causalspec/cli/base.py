"""What every command shares: exit codes, usage errors, the command record, consoles, loading
a spec with its diagnostics printed, and the up-front checks of output targets.

Commands import this module, never `main.py` (which imports every command): that keeps the
CLI free of import cycles.

Exit codes (stable; CI jobs rely on them): 0 ok, 1 a check failed, 2 invalid spec or usage
(an output target that is not ours or not writable included), 3 internal error, 130 interrupted
(Ctrl-C; 143 for SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import causalspec
from causalspec import errors
from causalspec.cli.console import Console
from causalspec.cli.console import stderr as stderr, stdout as stdout  # what the commands print with
from causalspec.diagnostics import SpecError, did_you_mean, render
from causalspec.files import OutputError, check_folder, check_target

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class UsageError(errors.UsageError):
    """A command-line mistake (not a spec mistake): exit 2 with the message."""


@dataclass(frozen=True)
class Command:
    """One entry of the command table (`main.COMMANDS`): `add_arguments` fills the command's
    parser and `run` executes it (None when the command has actions of its own, like
    `circuit export`, whose parsers set `func` themselves)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int] | None
    description: str | None = None
    epilog: str | None = None


# ───────────────────────── interrupts ─────────────────────────

class Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. a cancelled CI job), handled like Ctrl-C: temporary files are removed and
    `check` reports what finished; the exit code is the shell's 128 + SIGTERM (143)."""

    exit_code = 128 + int(getattr(signal, "SIGTERM", 15))


def raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While a command runs, SIGTERM raises `Terminated` — only where nobody else handles
    SIGTERM (a program embedding `main` keeps its own handler) and in the main thread."""
    try:
        installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if installed:
            signal.signal(signal.SIGTERM, raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        installed = False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ───────────────────────── output targets ─────────────────────────

def check_output_targets(**targets) -> None:
    """Check output files (flag name -> path, None: not given) before anything is loaded or
    run, with the test the writer applies (`causalspec.files.check_target`): a mistake in an
    output flag costs nothing, and never a full run thrown away. Flag names use `_` for `-`."""
    given = {flag: Path(p) for flag, p in targets.items() if p}
    seen: dict = {}
    for flag, path in given.items():
        name = "--" + flag.replace("_", "-") if len(flag) > 1 else "-" + flag
        key = path.resolve()
        if key in seen:
            raise UsageError(f"{seen[key]} and {name} name the same file {path}; give each its own")
        seen[key] = name
        try:
            check_target(path)
        except OutputError as exc:
            raise UsageError(f"{name}: {exc}") from None


def check_output_folders(**folders) -> None:
    """`check_output_targets` for output folders (flag name -> path)."""
    for flag, path in folders.items():
        if path:
            try:
                check_folder(path)
            except OutputError as exc:
                raise UsageError(f"--{flag.replace('_', '-')}: {exc}") from None


# ───────────────────────── consoles and loading ─────────────────────────

def load_reporting(file: str, err: Console):
    """Analyse one spec file, printing its warnings to `err`; None (its diagnostics printed)
    when it does not validate. Every command that reads spec files reports them this way."""
    from causalspec.semantics.analyse import load  # lazy: `--help` and `--version` stay fast

    try:
        ir = load(file)
    except SpecError as exc:
        err.print(render(exc.diagnostics), markup=False)
        err.print(f"{file}: {len(exc.diagnostics)} error(s)", markup=False)
        return None
    for w in ir.warnings:
        err.print(render([w]), markup=False)
    return ir


def load_all(files: list[str], err: Console) -> list | None:
    """Every spec file analysed (warnings and diagnostics printed), or None if any is invalid."""
    irs = [load_reporting(file, err) for file in files]
    return None if any(ir is None for ir in irs) else irs


def pick_model(ir, name: str | None):
    """The model `--model NAME` names, or the file's only model."""
    if name is None:
        if len(ir.models) == 1:
            return next(iter(ir.models.values()))
        raise UsageError(f"{ir.file} declares {len(ir.models)} models ({', '.join(ir.models) or 'none'}); "
                         "choose one with --model NAME")
    if name not in ir.models:
        hint = did_you_mean(name, ir.models)
        raise UsageError(f"no model `{name}` in {ir.file}" + (f"; {hint}" if hint else
                                                              f"; models: {', '.join(ir.models)}"))
    return ir.models[name]


def no_such_check(name: str, irs: list, candidates: list[str], listed: list[str], what: str = "checks") -> UsageError:
    """The error of an `--only NAME` that names no check of the files: a did-you-mean over
    `candidates`, else the `listed` names as `what` (check and locate both refuse a misspelt
    name: dropped without a word, that check would never run while the rest went green)."""
    hint = did_you_mean(name, candidates)
    listing = ", ".join(dict.fromkeys(listed)) or "none"
    return UsageError(f"--only {name}: no check of that name in {', '.join(str(ir.file) for ir in irs)}"
                      + (f"; {hint}" if hint else f" ({what}: {listing})"))


def version() -> str:
    """The installed distribution's version; `causalspec.__version__` when running from a
    source tree that is not installed (no distribution metadata). importlib.metadata is
    imported here: it costs ~25 ms, which commands that never print a version do not pay."""
    from importlib import metadata

    try:
        return metadata.version("causalspec")
    except metadata.PackageNotFoundError:
        return causalspec.__version__
