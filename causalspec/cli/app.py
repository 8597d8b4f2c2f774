"""The `causalspec` command line: the argument parser built from the command table, and the
one place that maps what a command raises to an exit code.

Exit codes (stable; CI jobs rely on them): 0 ok, 1 a check failed, 2 invalid spec or usage
(an output target that is not ours or not writable included), 3 internal error, 130 interrupted
(Ctrl-C). A user mistake never shows a Python traceback: it becomes diagnostics
(exit 2); anything else is our bug and says so (exit 3).

A new command is a module with a `COMMAND` (`base.Command`) added to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import traceback
from typing import Sequence

from causalspec.cli import check, circuit, fmt, graph, locate, parse, sample
from causalspec.cli.base import (EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, Command,
                                 Terminated, sigterm_as_interrupt, stderr, version)
from causalspec.diagnostics import render
from causalspec.errors import CheckError, CheckSkipped, SpecError, UsageError

# The commands, in the order `causalspec --help` lists them.
COMMANDS: tuple[Command, ...] = (parse.COMMAND, graph.COMMAND, sample.COMMAND, check.COMMAND, locate.COMMAND,
                                 circuit.COMMAND, fmt.COMMAND)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causalspec", description="Check causal hypotheses about neural networks.")
    p.add_argument("--version", action="version", version=f"causalspec {version()}",
                   help="print the installed causalspec version and exit")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        sp = sub.add_parser(command.name, help=command.help, description=command.description,
                            epilog=command.epilog)
        command.add_arguments(sp)
        if command.run is not None:
            sp.set_defaults(func=command.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
        err.print("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), markup=False)
    else:
        err.print("this is a bug in causalspec, not in your spec; rerun with --traceback and report it",
                  markup=False)
    return EXIT_INTERNAL
