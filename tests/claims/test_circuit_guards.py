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


def _every_head(layers: int, heads: int, universe):
    from causalspec.compile.circuit_plan import Member, Node, ResolvedCircuit

    members = tuple(Member(Node.attention(L, h), group="all") for L in range(layers) for h in range(heads))
    return ResolvedCircuit({"all": members}, frozenset(universe))


def test_every_head_of_an_attention_only_network_is_vacuous_under_mib():
    """`convention mib` puts MLPs in the universe; an attention-only network has none (its `mlp`
    outputs 0), so a circuit of every head ablates nothing. Before, the MLPs it lacks were
    counted and the circuit was judged partial: faithfulness 1 by construction passed."""
    from causalspec.claims.circuit_guards import whole_universe
    from causalspec.compile.circuit_plan import HEAD, MLP, Arch

    circuit = _every_head(2, 4, {HEAD, MLP})
    assert "by construction" in whole_universe(circuit, Arch(2, 4, "attn-only"))
    assert whole_universe(circuit, Arch(2, 4, "gpt2")) == ""  # GPT-2's MLPs are ablated: not vacuous
    assert "by construction" in whole_universe(_every_head(2, 4, {HEAD}), Arch(2, 4, "gpt2"))


def test_nodes_outside_the_universe_do_not_count_towards_the_whole():
    """Only nodes of the universe's kinds make up the whole: MLPs kept as wires next to six of
    eight heads leave two heads ablated, which is no vacuous circuit."""
    from causalspec.claims.circuit_guards import whole_universe
    from causalspec.compile.circuit_plan import HEAD, Arch, Member, Node, ResolvedCircuit

    members = tuple(Member(Node.attention(L, h), group="g") for L in range(2) for h in range(3))
    members += (Member(Node.mlp(0), group="g"), Member(Node.mlp(1), group="g"))
    assert whole_universe(ResolvedCircuit({"g": members}, frozenset({HEAD})), Arch(2, 4, "gpt2")) == ""


def test_a_full_model_right_on_every_prompt_passes_the_task_guard_however_few():
    """3 of 3 on a binary output has a Wilson lower bound of 0.44, under chance 0.5: the guard
    failed a correct network on a small prompt set. Right everywhere is the behaviour itself."""
    right = task_summary([1.0] * 3, _plan(2), "logit_diff")
    assert task_guard(_summary(right), "M.answer") == ""
    almost = task_summary([1.0, 1.0, 0.0], _plan(2), "logit_diff")
    assert "task guard" in task_guard(_summary(almost), "M.answer")
