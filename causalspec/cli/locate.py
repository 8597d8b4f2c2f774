"""`causalspec locate FILE...`: run the localization sweeps of checks with `locate` and show them.

For every selected check that has a `locate` statement: every cell (site x position) is
scored with the check's own procedure on the check's held-out pairs (learned featurizers
are trained per cell on the training split); the command prints the table, the best cell
with its 95% interval, and writes a heatmap PNG (`<spec stem>.<check>.locate.png` in
`--out`, default the current folder). It does not judge the check's `expect` — that is
`causalspec check`, which scores the best cell again on fresh pairs.

Exit codes: 0 the sweeps ran; 1 a sweep could not run (e.g. hub weights not cached — a skip
here always fails the command, as `check --strict` does — or an unservable site); 2 invalid
spec or usage (no check with `locate`); 3 internal error.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Callable

from rich.text import Text

from causalspec.cli.base import (EXIT_FAILED, EXIT_INVALID, EXIT_OK, Command, UsageError, check_output_folders,
                                 check_output_targets, load_all, no_such_check, stderr)
from causalspec.cli.options import DEVICE, DTYPE, add_cli_options, check_options, validate_device_dtype
from causalspec.compile.plan import compile_check
from causalspec.errors import CheckError, CheckSkipped
from causalspec.files import atomic_write_text, tool_header
from causalspec.report.stress_view import sweep_table
from causalspec.report.terminal import make_console
from causalspec.score.results import SKIPPED

HELP = "run the `locate` sweeps of spec files: IIA per site and position, heatmap, best site"


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("files", nargs="+", metavar="FILE", help="spec files (.cspec)")
    sp.add_argument("--only", action="append", metavar="NAME", help="sweep only this check (repeatable)")
    sp.add_argument("--pairs", type=int, metavar="N", help="pairs per interchange set, overriding `pairs`")
    sp.add_argument("--seed", type=int, metavar="S", help="seed, overriding `seed`")
    sp.add_argument("--batch", type=int, metavar="B", help="forward-pass batch size")
    sp.add_argument("--out", metavar="DIR", default=".", help="folder for the heatmap PNGs (default: .)")
    sp.add_argument("--json", metavar="FILE", help="also write the sweeps as JSON")
    sp.add_argument("--retrain", action="store_true", help="train learned featurizers even when artifacts exist")
    sp.add_argument("--artifacts", metavar="DIR", help="folder of trained-featurizer artifacts")
    add_cli_options(sp, (DEVICE, DTYPE))


def run(args: argparse.Namespace) -> int:
    # lazy: these import torch, which `causalspec parse` never needs
    from causalspec.claims.runner import NetworkCache
    from causalspec.claims.common import check_failure
    from causalspec.claims.locate import sweep
    from causalspec.report.heatmap import heatmap_png

    validate_device_dtype(args)
    for flag, value in (("--pairs", args.pairs), ("--batch", args.batch)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1 (got {value})")
    check_output_targets(json=args.json)
    check_output_folders(out=args.out, artifacts=args.artifacts)
    irs = load_all(args.files, stderr())
    if irs is None:
        return EXIT_INVALID
    _check_only(args.only or [], irs)
    todo = [(ir, c) for ir in irs for c in ir.checks if c.locate and (not args.only or c.name in args.only)]
    if not todo:
        raise UsageError("no check with a `locate` statement" + (f" among {', '.join(args.only)}" if args.only else "")
                         + " in " + ", ".join(ir.file for ir in irs))
    pngs = {(ir.file, c.name): _png_path(args.out, ir, c) for ir, c in todo}
    for png in pngs.values():  # every heatmap's target too, before any sweep runs
        check_output_targets(out=png)
    out = make_console()
    say = _sayer(out)
    # only the options locate offers: what it lacks keeps CheckOptions' defaults
    options = check_options({name: getattr(args, name) for name in
                             ("pairs", "seed", "batch", "device", "dtype", "retrain", "artifacts")})
    status = EXIT_OK
    sweeps = []
    caches: dict = {}
    for ir, check in todo:
        networks = caches.setdefault(ir.file, NetworkCache())
        try:
            plan = compile_check(ir, check, options.pairs, options.seed)
            net = networks.get(ir, plan.network.name, options)
            found = sweep(ir, check, plan, net, options)
        except (CheckSkipped, CheckError) as exc:
            # check-time problems are reported per check, classified as every claim kind does
            # (claims.common.check_failure); a sweep that cannot run fails the command: no --strict needed
            kind, reason = check_failure(exc)
            say(Text(f"- {check.name}: skipped: {reason}", style="yellow") if kind == SKIPPED
                      else Text(f"! {check.name}: error: {reason}", style="red"))
            status = EXIT_FAILED
            continue
        sweeps.append(found)
        say(Text(f"{check.name}: locate {found.var} over {sum(len(r) for r in found.cells)} cell(s), "
                       f"{found.pairs} pairs per interchange set (seed {found.seed}), held-out IIA", style="bold"))
        out.print(sweep_table(found.to_dict()))
        best = found.best
        if best is not None and found.mode == "element":  # `locate H[i]`: each element's own best cell
            for j, cb in enumerate(found.column_best()):
                if cb is None:
                    continue
                parts = [f"{label} {p.estimate:.3f} [{p.lower:.3f}, {p.upper:.3f}]" for label, p in cb.iia.items()
                         if p.trials]
                base = found.column_baseline(j)
                say(Text(f"best for {cb.position}: {cb.site} — " + "; ".join(parts)
                               + ("" if base is None else f" (no-intervention baseline {base:.3f})")))
            say(Text("  chosen on these pairs, so their IIA is optimistic; `causalspec check` scores them again "
                           "on fresh pairs", style="dim"))
        elif best is not None:
            parts = [f"{label} {p.estimate:.3f} [{p.lower:.3f}, {p.upper:.3f}]" for label, p in best.iia.items()
                     if p.trials]
            where = best.site + (f" @ {best.position}" if best.position != "all" else "")
            say(Text(f"best: {where} — " + "; ".join(parts)))
            if found.baseline_score is not None:
                say(Text(f"  no-intervention baseline {found.baseline_score:.3f}: the unpatched network already "
                               "gives the counterfactual output on that share of the pairs, so a cell scores above "
                               "it only by what the patch changes", style="dim"))
            say(Text("  chosen on these pairs, so its IIA is optimistic; `causalspec check` scores it again "
                           "on fresh pairs", style="dim"))
        png = pngs[ir.file, check.name]
        heatmap_png(found, png)
        say(Text(f"wrote {png}"))
        fp = ", ".join(f"{k} {v}" for k, v in found.forward_passes.items())
        say(Text(f"{found.unique_inputs} unique inputs · forward passes: {fp} · {found.seconds:.1f} s",
                       style="dim"))
    if args.json:
        doc = {"schema": "causalspec.locate/1", "tool": tool_header(), "sweeps": [s.to_dict() for s in sweeps]}
        path = atomic_write_text(Path(args.json), json.dumps(doc, indent=2, default=_json_default) + "\n")
        say(Text(f"wrote {path}"))
    return status


def _sayer(console) -> Callable[[Text], None]:
    """Print a sentence on one line whatever the console's width, as `check` does
    (report.terminal: `soft_wrap` for text, tables fit the width): a log keeps a message whole,
    the terminal folds it at its own edge, never mid-sentence at rich's column."""
    def say(text: Text) -> None:
        console.print(text, soft_wrap=True)
    return say


def _check_only(only: list[str], irs: list) -> None:
    """Each `--only` name must be a check with a `locate` statement: a misspelt one beside a
    right one would otherwise be dropped without a word (that sweep never runs)."""
    checks = {c.name: c for ir in irs for c in ir.checks}
    sweeps = [name for name, c in checks.items() if c.locate]
    for name in only:
        if name not in checks:
            raise no_such_check(name, irs, sweeps or list(checks), sweeps, "checks with a `locate` statement")
        if not checks[name].locate:
            raise UsageError(f"--only {name}: check `{name}` has no `locate` statement, so there is nothing to "
                             f"sweep (checks with one: {', '.join(sweeps) or 'none'})")


def _png_path(folder: str, ir, check) -> Path:
    return Path(folder) / f"{Path(ir.file).stem}.{check.name}.locate.png"


def _json_default(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


COMMAND = Command("locate", HELP, add_arguments, run, description=HELP + ".")
