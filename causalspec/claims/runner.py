"""Run the claims of a spec: each check or circuit claim → its module → a CheckResult.

Why a module of its own: the CLI, the pytest plugin and tests all run checks the same way;
this is the one place that dispatches a claim to the module of its kind (`claims.alignment`
for `check` blocks, `claims.circuit` for `circuit` blocks), so their verdicts cannot differ.
Hub weights not in the local cache make a check *skipped* with the reason (a failure under
`strict`, for CI that must test every claim); problems that only show at check
time (a site the architecture cannot serve, token counts that differ between base and
source, a user hook that raises) make it an *error* with a message naming the cause
(`claims.common.check_failure`).
"""

from __future__ import annotations

from dataclasses import replace

from causalspec.claims.alignment import run_alignment_check
from causalspec.claims.circuit import run_circuit
from causalspec.claims.common import CheckOptions, apply_strict
from causalspec.claims.networks import NetworkCache, engine_choice
from causalspec.score.results import CheckResult
from causalspec.semantics.analyse import SpecIR
from causalspec.semantics.file_access import outside_notes

__all__ = ["CheckOptions", "NetworkCache", "apply_strict", "engine_choice", "run_check", "run_checks",
           "selected_checks"]


def selected_checks(ir: SpecIR, only: list[str] | None) -> list:
    """The checks, then the circuit claims, of a spec (those named in `only`, when given)."""
    claims = list(ir.checks) + list(ir.circuits.values())
    if not only:
        return claims
    return [c for c in claims if c.name in only]


def run_checks(ir: SpecIR, options: CheckOptions | None = None,
               networks: NetworkCache | None = None) -> list[CheckResult]:
    options = options or CheckOptions()
    networks = networks or NetworkCache()
    return [run_check(ir, check, options, networks) for check in selected_checks(ir, options.only)]


def run_check(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache) -> CheckResult:
    """The verdict of one check or circuit claim; its notes list the files the spec reads from
    outside its folder (semantics.file_access), whatever the verdict."""
    if not hasattr(check, "alignment"):  # a circuit claim (CircuitIR)
        result = run_circuit(ir, check, options, networks)
    else:
        result = run_alignment_check(ir, check, options, networks)
    outside = [n for n in outside_notes(ir.warnings) if n not in result.notes]
    return apply_strict(replace(result, notes=[*outside, *result.notes]), options)
