"""One error tree: every exception causalspec raises for a user's mistake or a check that
cannot run derives from `CausalspecError`, under one of four kinds that decide what the user
sees and which exit code the command returns:

* `SpecError`    — the spec is wrong: every located diagnostic found in one pass (exit 2).
* `UsageError`   — the command line or an output target is wrong (exit 2, the message).
* `CheckSkipped` — a check cannot run *here* (weights not cached, no GPU): skipped with the
                   reason, a failure under `--strict`.
* `CheckError`   — a check cannot be evaluated as written (a hook that raises, a site the
                   model cannot serve, shapes that do not fit): that check ERRORs naming the
                   cause (exit 1), and the other checks still run.

Why one tree: handlers can catch a kind (`except CheckError`) instead of a growing list of
classes from many modules, and a new exception states its kind where it is defined. The
concrete classes stay in the modules that raise them (run.loading.NetworkUnavailable,
run.sites.UnservableSite, causalspec.files.OverwriteRefused, ...) and subclass a kind here.
Classes that were `ValueError`/`RuntimeError` keep that base too, so existing handlers
still catch them.

This module imports nothing from causalspec, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation; diagnostics imports this module
    from causalspec.diagnostics import Diagnostic


class CausalspecError(Exception):
    """The root of every error causalspec raises on purpose (not a bug in causalspec)."""


class SpecError(CausalspecError):
    """Raised with every diagnostic found in one pass; the CLI exits 2 on it."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(
            f"{len(self.diagnostics)} error(s); first: {first.code} {first.message} at {first.span}"
            if first
            else "invalid spec"
        )


class UsageError(CausalspecError):
    """A command-line mistake (not a spec mistake): exit 2 with the message."""


class CheckSkipped(CausalspecError):
    """A check that cannot run on this machine: skipped with this reason (a failure under `--strict`)."""


class CheckError(CausalspecError):
    """A check that cannot be evaluated as written: it ERRORs with this reason; other checks still run."""
