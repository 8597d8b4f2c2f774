"""What every claim kind shares: the run's options, condition arithmetic, the reproduce
command, and the one ladder that turns a check-time exception into a verdict.

Why one module: an alignment check, a circuit claim and a `locate` sweep must classify the
same exception the same way (hub weights not cached → skipped; a site the architecture
cannot serve, a user hook that raised → error; a bug of ours → exit 3). Two copies of that
ladder drifted once; this is the only one. Nothing here imports another claim module.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from causalspec.errors import CheckError, CheckSkipped
from causalspec.run.adapters import exception_origin
from causalspec.run.loading import describe_exception
from causalspec.score.results import ERROR, SKIPPED, CheckResult, ConditionResult


@dataclass
class CheckOptions:
    pairs: int | None = None  # override every check's `pairs`
    seed: int | None = None  # override every check's `seed`
    seed_flag: str = "--seed"  # how the override was given, for reports (the pytest plugin: --causalspec-seed)
    batch: int | None = None
    only: list[str] | None = None  # run only these check names
    allow_download: bool = False
    device: str | None = None
    dtype: str | None = None
    progress: Callable | None = None  # progress(kind, total) -> callable(advance)
    device_map: str | None = None  # hf networks: from_pretrained(device_map=...), e.g. "auto" (accelerate)
    incremental: bool = True  # patched forwards recompute only positions >= the patch where the model allows
    # "torch" (hooks) | "nnsight" (run.nnsight_backend: nnsight sessions, full forwards); None: what the
    # network's `backend` statement says, else torch
    backend: str | None = None
    # nnsight sessions on NDIF: True (the configured host), an http(s) URL (a self-hosted NDIF), "local"
    # (nnsight's dry run of the remote path, here); None: what the network's `backend` statement says
    remote: Any = None
    retrain: bool = False  # train learned featurizers even when an artifact for the same inputs exists
    artifacts: str | None = None  # folder of trained-featurizer artifacts (default: .causalspec/artifacts)
    # where clean passes keep the site activations: None/"memory"; "disk" (a temporary folder,
    # removed when the check ends); or a folder, under which they are kept (run.activation_store)
    activations: str | None = None
    # a skipped check (hub weights not cached, a device missing) becomes an error: for CI that must
    # test every claim. `strict_flag` is the option's name as the user gave it, quoted in the reason.
    strict: bool = False
    strict_flag: str = "--strict"


# ───────────────────────── failures ─────────────────────────

def known_failure(exc: BaseException) -> tuple[str, str] | None:
    """(status, reason) for an exception of the error tree's check kinds (causalspec.errors):
    `CheckSkipped` (hub weights not cached, a device missing here) is a skip, `CheckError` (a
    load error, a site the architecture cannot serve, a usage error found at check time, ...)
    an error, both with the exception's message; None for anything else (user code that
    raised, or a bug of ours)."""
    if isinstance(exc, CheckSkipped):
        return SKIPPED, str(exc)
    if isinstance(exc, CheckError):
        return ERROR, str(exc)
    return None


def check_failure(exc: BaseException) -> tuple[str, str]:
    """(status, reason) of a check that raised `exc`: the one except-ladder of every claim kind.

    Beyond `known_failure`: `sys.exit` in user code and an exception raised in user code are
    errors naming it; an exception raised in causalspec's own code or in a library alone is
    re-raised — a bug of ours, which the CLI reports with exit 3. Call it from an
    `except (SystemExit, Exception)` block (never for KeyboardInterrupt: Ctrl-C ends the run).
    """
    known = known_failure(exc)
    if known is not None:
        return known
    if isinstance(exc, SystemExit):  # causalspec never exits mid-check: user code did (a hook, a model's own code)
        return ERROR, user_exit_reason(exc)
    if isinstance(exc, Exception):
        return ERROR, user_raise_reason(exc)
    raise exc


def user_raise_reason(exc: Exception) -> str:
    """The error of a check during which user code raised somewhere the hooks are not wrapped
    one by one (e.g. a `trust_remote_code` model's forward); re-raises `exc` when it was
    raised in causalspec's own code or in a library alone: that is a bug of ours (exit 3)."""
    kind, file, line = exception_origin(exc)
    if kind != "user":
        raise exc
    return f"user code {describe_exception(exc)} (at {file}:{line})"


def user_exit_reason(exc: SystemExit) -> str:
    """The error of a check during which user code called `sys.exit` outside the hooks that are
    wrapped one by one (`run.loading.call_user`), e.g. in a `trust_remote_code` model's forward:
    without this, the run would end with exit 0 and no summary, and CI would read it as green."""
    return f"user code {describe_exception(exc)} while the check ran"


def apply_strict(result: CheckResult, options: CheckOptions) -> CheckResult:
    """Under `strict`, a skipped check is an error whose reason says why it counts as failed."""
    if options.strict and result.status == SKIPPED:
        return replace(result, status=ERROR, reason=f"skipped, and {options.strict_flag} fails every skip: "
                                                    f"{result.reason}", strict_skip=options.strict_flag)
    return result


# ───────────────────────── reports ─────────────────────────

def reproduce_command(file: str, name: str, pairs: int, seed: int) -> str:
    """The command line that reruns one check with the numbers it ran with."""
    return (f"causalspec check {shlex.quote(str(file))} --only {shlex.quote(name)} "
            f"--pairs {pairs} --seed {seed}")


# ───────────────────────── conditions ─────────────────────────

@dataclass(frozen=True)
class Verdict:
    """The judged `expect` conditions of a check, and the status and reason they give."""

    status: str
    reason: str = ""
    conditions: list[ConditionResult] = field(default_factory=list)


def condition_text(c) -> str:
    """An `expect` condition as written, e.g. `iia >= 0.95 each lower95`."""
    metric = f"{c.metric}({c.arg})" if c.arg else c.metric
    modes = [m for m in (c.aggregation if c.metric == "iia" else "", c.statistic if c.statistic != "point" else "")
             if m]
    within = ["within", f"{float(c.tolerance):g}"] if getattr(c, "tolerance", None) is not None else []
    return " ".join([metric, c.op, f"{c.threshold:g}", *modes, *within])


def compare(value: float, op: str, threshold: float) -> bool:
    """`value op threshold` for the comparison operators of `expect` (a KeyError for any other)."""
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold,
            "<": value < threshold}[op]


def fmt(v) -> str:
    """A number of a verdict's reason: three decimals, or n/a."""
    return "n/a" if v is None else f"{v:.3f}"
