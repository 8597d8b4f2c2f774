"""The one except-ladder of every claim kind (claims.common), table-driven, and the values
the stages hand back instead of mutating a result (claims.locate.Located)."""

from __future__ import annotations

import dataclasses

import pytest

from causalspec import errors
from causalspec.claims.common import check_failure, known_failure
from causalspec.claims.locate import Located
from causalspec.compile.circuit_plan import CircuitPlanError
from causalspec.run.adapters import CheckUsageError
from causalspec.run.loading import NetworkLoadError, NetworkUnavailable, UserCodeError
from causalspec.run.sites import SiteCallError, SiteShapeError, UnservableSite
from causalspec.semantics.sampling import SamplingError


def _raised(exc: BaseException) -> BaseException:
    """`exc` with a traceback through this file (user code, as far as exception_origin can tell)."""
    def user_code():
        raise exc

    try:
        user_code()
    except BaseException as caught:  # noqa: BLE001
        return caught
    raise AssertionError("unreachable")


@pytest.mark.parametrize("exc,status", [
    (NetworkUnavailable("weights of gpt2 are not cached"), "skipped"),
    (NetworkLoadError("config.json is not valid JSON"), "error"),
    (CheckUsageError("token counts differ"), "error"),
    (UnservableSite("resid.mid[0]", "gpt_neox", "parallel residual", ["resid.pre[1]"]), "error"),
    (SiteShapeError("shape"), "error"),
    (SiteCallError("called twice"), "error"),
    (CircuitPlanError("head 12 is out of range"), "error"),
    (SamplingError("no input satisfies the constraints"), "error"),
    (UserCodeError("encode returned a list", "encode"), "error"),
    (errors.CheckSkipped("no GPU here"), "skipped"),
    (errors.CheckError("any check error"), "error"),
])
def test_known_check_time_problems_become_a_skip_or_an_error_with_their_message(exc, status):
    assert known_failure(exc) == (status, str(exc))
    assert check_failure(_raised(exc)) == (status, str(exc))


def test_the_ladder_goes_by_the_error_trees_kinds_only():
    # a usage or spec error is not a check-time problem: not a verdict, the CLI maps it (exit 2)
    assert known_failure(errors.UsageError("--pairs must be at least 1")) is None
    assert known_failure(ValueError("x")) is None


def test_user_code_that_raises_or_exits_is_an_error_naming_it():
    status, reason = check_failure(_raised(ValueError("broken on purpose")))
    assert status == "error" and reason.startswith("user code raised ValueError: broken on purpose (at ")
    assert "test_common.py:" in reason
    status, reason = check_failure(_raised(SystemExit(4)))
    assert status == "error" and "while the check ran" in reason


def test_an_exception_with_no_user_frame_is_reraised_as_ours():
    exc = KeyError("x")  # never raised: no frame at all, so nobody's code but ours can own it
    with pytest.raises(KeyError):
        check_failure(exc)


def test_located_without_a_scored_cell_is_a_check_error_naming_the_check():
    class Check:
        name = "Where"

    located = Located({"cells": []})
    with pytest.raises(CheckUsageError, match="`locate` in check `Where`: no cell has a kept pair"):
        located.confirmation(Check())
    with pytest.raises(dataclasses.FrozenInstanceError):  # a value: stages cannot change what they returned
        located.note = "changed"  # type: ignore[misc]
