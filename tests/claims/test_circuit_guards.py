"""claims.circuit_guards: guards that must not fail a correct circuit claim."""

from __future__ import annotations

from types import SimpleNamespace

from causalspec.claims.circuit_guards import task_guard, task_summary
from causalspec.score.circuit_scores import CircuitSummary


def _plan(k: int):
    return SimpleNamespace(output="answer", model=SimpleNamespace(domain=lambda _: SimpleNamespace(size=k)))


def _summary(task: dict) -> CircuitSummary:
    return CircuitSummary(output="M.answer", metric="logit(\"x\")", ablation="zero", granularity="node",
                          universe="heads", prompts=64, task=task)


def test_an_output_of_one_value_is_not_judged_by_the_task_guard():
    """With one value, chance is 1 and no accuracy can be above it: the guard failed every claim
    whose model output is a placeholder (a fixed-token metric), 64 right of 64 included."""
    task = task_summary([1.0] * 64, _plan(1), "logit")
    assert task["judged"] is False
    assert task_guard(_summary(task), "M.answer") == ""


def test_a_binary_output_is_still_judged():
    right = task_summary([1.0] * 64, _plan(2), "logit_diff")
    wrong = task_summary([0.0] * 64, _plan(2), "logit_diff")
    assert right["judged"] and task_guard(_summary(right), "M.answer") == ""
    assert "task guard" in task_guard(_summary(wrong), "M.answer")
