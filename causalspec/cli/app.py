"""The `causalspec` command line: the argument parser built from the command table, and the
one place that maps what a command raises to an exit code.

Exit codes (stable; CI jobs rely on them): 0 ok, 1 a check failed, 2 invalid spec or usage
(an output target that is not ours or not writable included), 3 internal error, 130 interrupted
(Ctrl-C). A user mistake never shows a Python traceback: it becomes diagnostics
(exit 2); anything else is our bug and says so (exit 3).

A new command is a module with a `COMMAND` (`base.Command`) named in `COMMAND_MODULES`.

Why the table names modules instead of importing them: `causalspec parse` runs on every save
in editors and pre-commit hooks, and must not pay for importing `check`, `circuit` or `locate`
(their reports, writers and loaders). `main` imports only the command it runs; `--help`, an
unknown command and `build_parser()` import them all (a broken command module still fails
loudly, with its ImportError, never by silently missing from the table).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from causalspec.cli.base import (EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, Command,
                                 Terminated, sigterm_as_interrupt, stderr, version)
from causalspec.diagnostics import render
from causalspec.errors import CheckError, CheckSkipped, SpecError, UsageError

# The commands (name, module holding its `COMMAND`), in the order `causalspec --help` lists them.
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("parse", "causalspec.cli.parse"), ("graph", "causalspec.cli.graph"), ("sample", "causalspec.cli.sample"),
    ("check", "causalspec.cli.check"), ("locate", "causalspec.cli.locate"), ("circuit", "causalspec.cli.circuit"),
    ("fmt", "causalspec.cli.fmt"))


def load_command(name: str) -> Command:
    """The `COMMAND` of the command called `name` (its module is imported now)."""
    command = importlib.import_module(dict(COMMAND_MODULES)[name]).COMMAND
    assert isinstance(command, Command) and command.name == name, f"{name}: not a command module"
    return command


def __getattr__(name: str) -> Any:
    # `COMMANDS`, every command loaded, for callers that want the whole table
    if name == "COMMANDS":
        return tuple(load_command(n) for n, _ in COMMAND_MODULES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _PrintVersion(argparse.Action):
    """argparse's `version` action, except that the version is looked up when asked for
    (reading the distribution's metadata is not free, and every command builds the parser)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"causalspec {version()}\n")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. With `only`, just that command's module is loaded and given its
    arguments; the other commands stay names in the table (what `main` builds to run one)."""
    p = argparse.ArgumentParser(prog="causalspec", description="Check causal hypotheses about neural networks.")
    p.add_argument("--version", action=_PrintVersion, help="print the installed causalspec version and exit")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, _ in COMMAND_MODULES:
        if only is not None and name != only:
            sub.add_parser(name)  # never shown: `--help` and usage errors get the full parser
            continue
        command = load_command(name)
        sp = sub.add_parser(command.name, help=command.help, description=command.description,
                            epilog=command.epilog)
        command.add_arguments(sp)
        if command.run is not None:
            sp.set_defaults(func=command.run)
    return p


def _requested_command(argv: Sequence[str]) -> str | None:
    """The command `argv` runs when it is plain to see (the first word, after `--traceback`);
    None when the full parser is needed (`--help`, `--version`, no or an unknown command)."""
    for arg in argv:
        if arg == "--traceback":
            continue
        return arg if arg in dict(COMMAND_MODULES) else None
    return None


# Commands that never do linear algebra (numpy holds the spec's values, nothing more).
ONE_BLAS_THREAD = frozenset({"parse", "graph", "fmt"})


def one_blas_thread(command: str | None) -> bool:
    """Before numpy is imported for a command of `ONE_BLAS_THREAD`, ask OpenBLAS for one thread
    (`OPENBLAS_NUM_THREADS=1` unless the user set it). Why: OpenBLAS starts a thread per core
    when numpy is imported, and they spin: ~45 ms of CPU on 2 cores (more with more cores),
    a sixth of `causalspec parse`, for commands that never multiply a matrix. Only for a
    process started as the `causalspec` command (never for `main([...])` inside another
    program, whose environment is not ours to change); True when it asked."""
    if command not in ONE_BLAS_THREAD or "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    return True


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the process is the command: its environment is ours
        one_blas_thread(_requested_command(sys.argv[1:]))
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_requested_command(argv))
    args = parser.parse_args(argv)
    show_tb = args.traceback or bool(os.environ.get("CAUSALSPEC_TRACEBACK"))
    try:
        with sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - classified by the one ladder below
        return exit_status(exc, show_tb)


def exit_status(exc: BaseException, show_tb: bool = False) -> int:
    """The one except-ladder of the command line: the exit code of a command that raised `exc`,
    after telling the user why on stderr. The error tree (causalspec.errors) decides: a
    `SpecError` prints its diagnostics and a `UsageError` its message (exit 2); a `CheckSkipped`
    or `CheckError` that no check caught (a check-time problem of a command that runs no
    `CheckResult`) is a failure (exit 1); Ctrl-C / SIGTERM exit 130 / 143; anything else is a
    bug of ours (exit 3)."""
    if isinstance(exc, SpecError):
        stderr().print(render(exc.diagnostics), markup=False)
        return EXIT_INVALID
    if isinstance(exc, UsageError):  # output targets (files.OutputError) included
        stderr().print(f"error: {exc}", markup=False)
        return EXIT_INVALID
    if isinstance(exc, (CheckSkipped, CheckError)):
        stderr().print(f"{'skipped' if isinstance(exc, CheckSkipped) else 'error'}: {exc}", markup=False)
        return EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C (130) or SIGTERM (143): not a bug, no traceback
        stderr().print("terminated" if isinstance(exc, Terminated) else "interrupted", markup=False)
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    if isinstance(exc, BrokenPipeError):
        return EXIT_OK
    if not isinstance(exc, Exception):  # SystemExit and the like are not ours to map
        raise exc
    err = stderr()
    err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
    if show_tb:
        import traceback  # only an internal error pays for the import

        err.print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), markup=False)
    else:
        err.print("this is a bug in causalspec, not in your spec; rerun with --traceback and report it",
                  markup=False)
    return EXIT_INTERNAL
