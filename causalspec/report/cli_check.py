"""`causalspec check FILE...`: run the checks of spec files and report them.

Exit codes (those of the whole CLI): 0 when every selected check passed or was skipped,
1 when any check failed or could not be run (error), 2 for an invalid spec or a usage
mistake (an unknown `--only` name, a report file that is not ours or cannot be written),
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

from causalspec.cli import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, UsageError, check_output_folders,
                            check_output_targets, load_reporting)
from causalspec.diagnostics import did_you_mean
from causalspec.score.results import ERROR, FAILED

HELP = "run the checks of spec files (interchange interventions) and report them"
EPILOG = ("exit codes: 0 every check passed or was skipped; 1 a check failed or errored (or, with --strict, "
          "was skipped); 2 invalid spec or usage; 3 internal error; 130 interrupted")


DEVICE_HELP = ("torch device for every network: cpu, cuda, cuda:N, mps or auto (cuda when available); "
               "a device this machine lacks skips the checks")
DTYPE_HELP = "dtype for every network: float32, float16, bfloat16, float64 (aliases fp32, fp16/half, bf16, fp64)"


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def register(subparsers) -> None:
    sp = subparsers.add_parser("check", help=HELP, description=HELP + ".", epilog=EPILOG)
    sp.add_argument("files", nargs="+", metavar="FILE", help="spec files (.cspec)")
    sp.add_argument("--only", action="extend", type=_names, metavar="NAME",
                    help="run only this check (repeat, or NAME,NAME)")
    sp.add_argument("--pairs", type=int, metavar="N",
                    help="pairs per interchange set, overriding every check's `pairs`")
    sp.add_argument("--seed", type=int, metavar="S", help="seed, overriding every check's `seed`")
    sp.add_argument("--batch", type=int, metavar="B", help="forward-pass batch size")
    sp.add_argument("--json", metavar="FILE", help="also write a JSON report (schema causalspec.check/1)")
    sp.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    sp.add_argument("--allow-download", action="store_true",
                    help="let Hugging Face networks download missing weights (off: such checks are skipped)")
    sp.add_argument("--strict", action="store_true",
                    help="fail every skipped check (exit 1): for CI that must test every claim; a check is "
                         "skipped only when hub weights are not cached here or a requested device is missing")
    sp.add_argument("--device", metavar="D", help=DEVICE_HELP)
    sp.add_argument("--dtype", metavar="T", help=DTYPE_HELP)
    sp.add_argument("--device-map", metavar="MAP", dest="device_map",
                    help="hf networks: place layers with accelerate, e.g. `auto` (spreads a large model over "
                         "the GPUs and CPU); needs the accelerate package")
    sp.add_argument("--backend", choices=["torch", "nnsight"], default=None,
                    help="run forwards with torch hooks or in nnsight sessions (pip install nnsight; full "
                         "forwards, same results); default: the network's `backend` statement, else torch")
    sp.add_argument("--remote", nargs="?", const="ndif", default=None, metavar="TARGET",
                    help="run the checks' nnsight sessions remotely (implies --backend nnsight): on NDIF "
                         "(no TARGET; needs NDIF_API_KEY), on a self-hosted NDIF (TARGET = its https:// URL), "
                         "or `local` (nnsight's dry run of the remote path, here); only output codes come back")
    sp.add_argument("--full-forwards", action="store_true", dest="full_forwards",
                    help="patched runs recompute every position (off: only positions from the patch on, "
                         "from cached keys/values, where the model allows)")
    sp.add_argument("--activations-on-disk", nargs="?", const="disk", default=None, metavar="DIR",
                    dest="activations_on_disk",
                    help="keep the clean pass's site activations in files instead of memory, for big runs: "
                         "in a temporary folder removed afterwards, or under DIR (kept, with a manifest)")
    sp.add_argument("--quiet", "-q", action="store_true",
                    help="print only failures, errors, skips and the summary line")
    sp.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    sp.add_argument("--retrain", action="store_true",
                    help="train learned featurizers (das, boundless) even when a matching artifact exists")
    sp.add_argument("--artifacts", metavar="DIR",
                    help="folder of trained-featurizer artifacts (default: .causalspec/artifacts next to the spec)")
    sp.set_defaults(func=cmd_check)
    from causalspec.report.cli_locate import register as register_locate

    register_locate(subparsers)


def validate_device_dtype(args: argparse.Namespace) -> None:
    """`--device` / `--dtype` to their canonical names (aliases resolved), before anything loads:
    a name that is no device or dtype is a usage error (exit 2) with a did-you-mean."""
    from causalspec.run.devices import BadDeviceOrDtype, device_name, dtype_name

    try:
        if getattr(args, "device", None) is not None:
            args.device = device_name(args.device, "--device")
        if getattr(args, "dtype", None) is not None:
            args.dtype = dtype_name(args.dtype, "--dtype")
    except BadDeviceOrDtype as exc:
        raise UsageError(str(exc)) from None


def _validate(args: argparse.Namespace) -> None:
    validate_device_dtype(args)
    for flag, value, low in (("--pairs", args.pairs, 1), ("--batch", args.batch, 1), ("--seed", args.seed, 0)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low} (got {value})")
    folder = getattr(args, "activations_on_disk", None)
    if folder not in (None, "disk") and (folder.endswith(".cspec") or Path(folder).is_file()):
        raise UsageError(f"--activations-on-disk takes a folder, not the file `{folder}`; name the spec files "
                         "first, or write --activations-on-disk=DIR")
    files = {Path(f).resolve() for f in args.files}
    for flag in ("json", "junit", "html"):
        target = getattr(args, flag, None)
        if target and Path(target).resolve() in files:
            raise UsageError(f"--{flag} {target} is one of the spec files being checked; name a report file")
    check_output_targets(json=args.json, junit=args.junit, html=getattr(args, "html", None))
    check_output_folders(artifacts=getattr(args, "artifacts", None),
                         activations_on_disk=None if folder in (None, "disk") else folder)


def _load_all(files: list[str], err) -> list | None:
    """Every spec file analysed (warnings and diagnostics printed), or None if any is invalid."""
    irs = [load_reporting(file, err) for file in files]
    return None if any(ir is None for ir in irs) else irs


def _check_only(only: list[str] | None, irs: list) -> None:
    if not only:
        return
    known = [c.name for ir in irs for c in (*ir.checks, *ir.circuits.values())]
    for name in only:
        if name not in known:
            hint = did_you_mean(name, known)
            listing = ", ".join(dict.fromkeys(known)) or "none"
            raise UsageError(f"--only {name}: no check of that name in "
                             f"{', '.join(ir.file for ir in irs)}" + (f"; {hint}" if hint else f" (checks: {listing})"))


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console

    from causalspec.claims.runner import CheckOptions, NetworkCache, run_check, selected_checks
    from causalspec.report.terminal import TerminalReport

    _validate(args)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    irs = _load_all(args.files, err)
    if irs is None:
        return EXIT_INVALID
    _check_only(args.only, irs)

    report = TerminalReport(quiet=args.quiet)
    progress = report.progress()
    options = CheckOptions(pairs=args.pairs, seed=args.seed, batch=args.batch, only=args.only,
                           allow_download=args.allow_download, device=args.device, dtype=args.dtype,
                           device_map=args.device_map, incremental=not args.full_forwards, backend=args.backend,
                           remote=args.remote,
                           progress=progress, retrain=args.retrain, artifacts=args.artifacts,
                           activations=args.activations_on_disk, strict=args.strict)
    results = []
    selected = [(ir, selected_checks(ir, args.only)) for ir in irs]
    interrupted: KeyboardInterrupt | None = None
    with progress:
        try:
            for ir, checks in selected:
                networks = NetworkCache()  # networks are named per file: one cache per spec
                if checks:
                    report.file_header(ir.file, len(checks))
                for check in checks:
                    progress.begin(check.name)
                    try:
                        result = run_check(ir, check, options, networks)
                    finally:
                        progress.end()
                    report.check(result)
                    results.append(result)
        except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM, cli.Terminated): report what finished
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
    if args.json:
        from causalspec.report.json_report import write_json

        report.line(f"wrote {write_json(args.json, results, files, interrupted=interrupted)}")
    if args.junit:
        from causalspec.report.junit import write_junit

        report.line(f"wrote {write_junit(args.junit, results, files)}")
    if args.html:
        from causalspec.report.html import write_html

        report.line(f"wrote {write_html(args.html, results, files, interrupted=interrupted)}")
