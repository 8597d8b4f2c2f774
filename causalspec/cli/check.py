"""`causalspec check FILE...`: run the checks of spec files and report them.

Exit codes (those of the whole CLI): 0 when every selected check passed or was skipped,
1 when any check failed or could not be run (error), 2 for an invalid spec or a usage
mistake (files that declare no check or circuit claim at all: a run that tests nothing is
never green; an unknown `--only` name, a report file that is not ours or cannot be written),
3 internal error, 130 interrupted (Ctrl-C: the checks that finished are summarised and
written to the reports, which say the run was interrupted; SIGTERM does the same, exit 143).
A skipped check (hub weights not in the local cache, a requested device missing) never
counts as a pass — the summary line lists it — but it is not a failure either: the claim was
not tested. `--strict` makes every skip an error (exit 1), for CI that must test every claim.

Every spec is loaded and validated before any network runs, and the report targets are
checked up front, so a mistake costs seconds, not a full run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from causalspec.cli.base import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, Command, UsageError,
                                 check_output_targets, load_all, no_such_check, stderr)
from causalspec.cli.options import (ACTIVATIONS_ON_DISK, ALLOW_DOWNLOAD, ARTIFACTS, BACKEND, BATCH, DEVICE,
                                    DEVICE_MAP, DTYPE, FULL_FORWARDS, PAIRS, REMOTE, RETRAIN, SEED, STRICT,
                                    add_cli_options, check_options, check_run_folders, validate_run_options)
from causalspec.report.writers import WRITER, WRITERS
from causalspec.report.terminal import TerminalReport
from causalspec.score.results import ERROR, FAILED

HELP = "run the checks of spec files (interchange interventions) and report them"
EPILOG = ("exit codes: 0 every check passed or was skipped; 1 a check failed or errored (or, with --strict, "
          "was skipped); 2 invalid spec or usage; 3 internal error; 130 interrupted")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """The run options come from the table in options.py (the pytest plugin offers the same);
    the report options between them are the command's own."""
    sp.add_argument("files", nargs="+", metavar="FILE", help="spec files (.cspec)")
    sp.add_argument("--only", action="extend", type=_names, metavar="NAME",
                    help="run only this check (repeat, or NAME,NAME)")
    add_cli_options(sp, (PAIRS, SEED, BATCH))
    for flag in ("json", "junit"):  # help order kept: --html is listed after --quiet
        sp.add_argument(f"--{flag}", metavar="FILE", help=WRITER[flag].help)
    add_cli_options(sp, (ALLOW_DOWNLOAD, STRICT, DEVICE, DTYPE, DEVICE_MAP, BACKEND, REMOTE, FULL_FORWARDS,
                         ACTIVATIONS_ON_DISK))
    sp.add_argument("--quiet", "-q", action="store_true",
                    help="print only failures, errors, skips and the summary line")
    sp.add_argument("--html", metavar="FILE", help=WRITER["html"].help)
    add_cli_options(sp, (RETRAIN, ARTIFACTS))


def _validate(args: argparse.Namespace) -> None:
    validate_run_options(args)
    files = {Path(f).resolve() for f in args.files}
    for flag in (w.flag for w in WRITERS):
        target = getattr(args, flag, None)
        if target and Path(target).resolve() in files:
            raise UsageError(f"--{flag} {target} is one of the spec files being checked; name a report file")
    check_output_targets(**{w.flag: getattr(args, w.flag, None) for w in WRITERS})
    check_run_folders(args)


def _check_only(only: list[str] | None, irs: list) -> None:
    if not only:
        return
    known = [c.name for ir in irs for c in (*ir.checks, *ir.circuits.values())]
    for name in only:
        if name not in known:
            raise no_such_check(name, irs, known, known)


def _nothing_to_check(irs: list) -> str:
    """Why a run that would test nothing is refused: it would exit 0 with "0 passed", and CI would
    read a spec whose claims were all deleted (or never written) as green."""
    names = ", ".join(str(ir.file) for ir in irs)
    return (f"nothing to check: {names} declares no `check` and no `circuit` claim. Add a check "
            "(docs/language.md §7), or run `causalspec parse` to only validate the file")


def run(args: argparse.Namespace) -> int:
    from causalspec.claims import runner as checking  # lazy: it imports torch, which `causalspec parse` never needs

    _validate(args)
    irs = load_all(args.files, stderr())
    if irs is None:
        return EXIT_INVALID
    _check_only(args.only, irs)

    report = TerminalReport(quiet=args.quiet)
    progress = report.progress()
    options = check_options(args, only=args.only, progress=progress)
    results = []
    selected = [(ir, checking.selected_checks(ir, args.only)) for ir in irs]
    if not any(checks for _, checks in selected):
        raise UsageError(_nothing_to_check(irs))
    interrupted: KeyboardInterrupt | None = None
    with progress:
        try:
            for ir, checks in selected:
                networks = checking.NetworkCache()  # networks are named per file: one cache per spec
                if checks:
                    report.file_header(ir.file, len(checks))
                for check in checks:
                    progress.begin(check.name)
                    try:
                        result = checking.run_check(ir, check, options, networks)
                    finally:
                        progress.end()
                    report.check(result)
                    results.append(result)
        except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM, base.Terminated): report what finished
            interrupted = exc
    if interrupted:
        total = sum(len(checks) for _, checks in selected)
        report.line(f"interrupted: {len(results)} of {total} check(s) finished; the others did not run")
    _write_reports(args, report, results, [ir.file for ir in irs], interrupted is not None)
    report.summary(results)
    if interrupted is not None:
        return getattr(interrupted, "exit_code", EXIT_INTERRUPTED)
    return EXIT_FAILED if any(r.status in (FAILED, ERROR) for r in results) else EXIT_OK


def _write_reports(args: argparse.Namespace, report, results: list, files: list[str], interrupted: bool) -> None:
    """The report files (targets checked before the run; the writers check them again).
    After a Ctrl-C they hold the finished checks and say that the run was interrupted."""
    for writer in WRITERS:
        target = getattr(args, writer.flag, None)
        if target:
            report.line(f"wrote {writer.write(target, results, files, interrupted)}")


COMMAND = Command("check", HELP, add_arguments, run, description=HELP + ".", epilog=EPILOG)
