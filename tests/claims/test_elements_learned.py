"""Learned featurizers per output element (issue 13): `O[i] -> output @ i` with `das`/`boundless`.

One featurizer per aligned element is trained once, on the pooled objective (every training
pair's counterfactual targets at every output element, the losses summed), then scored element
by element like any per-element check (`claims.elements`). The network is a [batch, positions,
classes] torch net whose count H[i] lives along one rotated direction of `mix` at position i
(`causalspec.testing.planted.PlantedCounts`): DAS finds it there and cannot at `embed`, where
only the tokens are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import causalspec.testing.planted as planted
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text

SPEC = f"""
model Hist {{
  const N = 5
  domain Tok = enum {{a, b, c}}
  input t[1..N] : Tok
  var H[i in 1..N] : int 0..N = count(j in 1..N : t[j] == t[i])
  output O[i in 1..N] : int 0..N = H[i]
}}
network net = torch "{planted.__file__}:build_planted_counts" weights "counts.safetensors" {{
  encode "{planted.__file__}:encode_tokens"
}}
align Hist to net as Mix {{
  H[i] -> module "mix" output @ i : das(k=1)
  O[i] -> output @ i
}}
check Mix {{
  interchange H, H[3]
  pairs 128 seed 2
  pool 48
  train 512
  steps 120
  controls heldout
  expect iia >= 0.95 each
}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("counts")
    planted.save_planted_counts(tmp / "counts.safetensors")
    return tmp


def _run(text: str, folder: Path, **options):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    return {r.name: r for r in run_checks(ir, CheckOptions(**options))}


def test_the_planted_network_computes_the_counts_per_position():
    net = planted.build_planted_counts()
    ids = planted.encode_tokens({f"t[{i}]": v for i, v in enumerate("abaca", start=1)})
    assert net(ids).argmax(-1).tolist() == [[0, 3, 1, 3, 1, 3]]


def test_das_per_element_finds_the_planted_direction_and_passes(folder):
    r = _run(SPEC, folder)["Mix"]
    assert r.status == "passed", r.reason
    declared = [c for c in r.claims if c.kind == "declared"]
    elements = [c for c in r.claims if c.kind == "element"]
    assert [c.label for c in declared] == ["{H[1], H[2], H[3], H[4], H[5]}", "{H[3]}"]
    assert len(elements) == 2 * 5
    for c in declared:
        assert c.iia.estimate >= 0.99 and c.moved > 0
    # one training, over every element: reported once, with the elements it was trained over
    (training,) = r.training
    assert training["elements"] == [f"O[{k}]" for k in range(1, 6)]
    assert training["loss"][-1] < training["loss"][0] / 5
    # each element row has its training-pair IIA; the heldout control lists one value per (set, element)
    heldout = next(c for c in r.controls if c.name == "heldout")
    assert len(heldout.values) == 2 * 5 and all(v is not None for v in heldout.values)
    assert r.forward_passes.get("training steps", 0) > 0


def test_the_trained_subspace_is_the_planted_direction(folder):
    from safetensors.torch import load_file

    r = _run(SPEC.replace("interchange H, H[3]", "interchange H[3]"), folder)["Mix"]
    assert r.status == "passed", r.reason
    tensors = load_file(r.training[0]["artifact"])
    (basis,) = [t for k, t in tensors.items() if k.endswith("H[3].basis")]
    angle = planted.principal_angles(basis, planted.planted_count_direction())
    assert float(angle.max()) < 0.2  # radians (about 6 degrees after 120 steps; a random direction: ~80)


def test_das_per_element_fails_where_the_count_is_not_yet_computed(folder):
    text = SPEC.replace('H[i] -> module "mix" output @ i : das(k=1)', 'H[i] -> module "embed" output @ i : das(k=1)')
    r = _run(text, folder)["Mix"]
    assert r.status == "failed"
    assert min(c.iia.estimate for c in r.claims if c.kind == "declared") < 0.9


def test_boundless_per_element_passes_on_the_true_site(folder):
    text = SPEC.replace("das(k=1)", "boundless").replace("interchange H, H[3]", "interchange H[3]")
    r = _run(text, folder)["Mix"]
    assert r.status == "passed", r.reason
    assert r.training and r.training[0]["elements"][2] == "O[3]"


def test_the_pooled_rows_carry_the_pooled_training_pair_iia(folder):
    r = _run(SPEC, folder)["Mix"]
    for pooled in (c for c in r.claims if c.kind == "declared"):
        rows = [c for c in r.claims if c.kind == "element" and c.label.startswith(pooled.label + " → ")]
        assert pooled.train_iia.trials == sum(c.train_iia.trials for c in rows) > 0
    gap = r.training[0]["heldout_gap"]
    assert [g["label"] for g in gap] == ["{H[1], H[2], H[3], H[4], H[5]}", "{H[3]}"]
    assert all(g["train"] is not None and g["heldout"] is not None for g in gap)


def test_the_elements_share_one_training_and_one_artifact(folder):
    """The artifact's key names every element (not the one a run reads): a rerun reuses it."""
    first = _run(SPEC, folder)["Mix"]
    again = _run(SPEC, folder)["Mix"]
    assert again.training[0]["reused"] and again.training[0]["artifact"] == first.training[0]["artifact"]
    assert "training steps" not in again.forward_passes
    assert [c.iia.successes for c in again.claims] == [c.iia.successes for c in first.claims]



LOCATE = SPEC.split("align Hist to net as Mix")[0] + """
align Hist to net as Out {
  O[i] -> output @ i
}
check Out as Where {
  locate {H[i]} over module "{embed,mix}" output @ i : das(k=1)
  interchange H
  pairs 64 seed 1
  pool 48
  train 256
  steps 60
  expect iia >= 0.9
}
"""


def test_a_learned_sweep_per_element_trains_each_cell_and_chooses_the_true_site(folder):
    """`locate` with `das` on a per-element output: each cell trains its own featurizers over every
    element (the cells do not share a training), and the sweep picks `mix`."""
    r = _run(LOCATE, folder)["Where"]
    assert r.status == "passed", r.reason
    cells = {c["site"]: c for row in r.locate["cells"] for c in row}
    assert cells['module "mix" output']["score"] > 0.9 > cells['module "embed" output']["score"]
    assert r.locate["best"]["site"] == 'module "mix" output'


def test_spec_locate_sweeps_every_element_like_the_check(folder):
    """`Spec.locate` / `causalspec locate` on a per-element alignment pools the element sweeps, so the
    sweep it shows is the one the check chooses from (not the first element's alone)."""
    import causalspec

    shown = causalspec.loads(LOCATE, base_dir=folder).locate(progress=False)[0]
    checked = _run(LOCATE, folder)["Where"].locate
    assert any("scored at 5 output elements" in n for n in shown.notes)
    assert [[c.score for c in row] for row in shown.cells] == [[c["score"] for c in row] for row in checked["cells"]]


def test_the_terminal_report_says_the_training_is_over_every_element(folder):
    from causalspec.report.terminal import check_text

    text = check_text(_run(SPEC, folder)["Mix"])
    assert "the losses summed over O[1], O[2], O[3], O[4], O[5]" in text


def test_a_learned_element_sweep_trains_each_column_on_its_own_pairs(folder):
    """`locate H[i] over … : das(k=1)` scores each column on its own element's interchange: each
    column's cells train on that column's pairs (a column once reused the first column's training
    split, naming an element its cells do not bind)."""
    text = LOCATE.replace("locate {H[i]} over", "locate H[i in 2..3] over").replace(
        "interchange H\n", "interchange {H[2], H[3]}\n")
    r = _run(text, folder)["Where"]
    assert r.status == "passed", r.reason
    assert [c["site"] for c in r.locate["column_best"]] == ['module "mix" output'] * 2


SEARCH = SPEC.split("align Hist to net as Mix")[0] + """
align Hist to net as Out {
  O[i] -> output @ i
}
check Out as FindH3 {
  locate H[3] over latents of module "mix" output @ 3 : sae("sae")
  interchange H[3]
  pairs 64 seed 1
  pool 48
  train 256
  steps 60
  expect iia >= 0.95
}
"""


def _write_counts_sae(folder: Path) -> None:
    """An SAE at `mix` whose latent j reads the rotated coordinate j (latent 0: the count H[i])."""
    from causalspec.testing.sae import write_sae

    g = torch.Generator().manual_seed(planted.SEQ_SEED)  # PlantedCounts' rotation Q (the same draw)
    rot, _ = torch.linalg.qr(torch.randn(planted.SEQ_WIDTH, planted.SEQ_WIDTH, generator=g, dtype=torch.float64))
    rot = rot.float()
    assert torch.allclose(rot[:, :1], planted.planted_count_direction())
    zeros = torch.zeros(planted.SEQ_WIDTH)
    write_sae(folder / "sae", rot, zeros, rot.T.contiguous(), zeros, hook_name=None)


def test_a_latent_search_per_element_scores_every_latent_at_every_element(folder):
    """`locate H[3] over latents of …` with `O[i] -> output @ i`: every latent is scored at every output
    element on the same pairs and pooled, one set is chosen, and the claim is scored with it per element."""
    _write_counts_sae(folder)
    r = _run(SEARCH, folder)["FindH3"]
    assert r.status == "passed", r.reason
    search = r.sae["latent_search"]
    assert search["chosen"] == [0] and search["elements"] == [f"O[{k}]" for k in range(1, 6)]
    assert search["ranking"][0] == {"latent": 0, "iia": 1.0, "patched": True}
    assert search["das"]["iia"] is not None and search["das"]["iia"] > 0.9  # trained over every element
    assert {c.label for c in r.claims if c.kind == "element"} == {f"{{H[3]}} → O[{k}]" for k in range(1, 6)}


RANDOM_INIT = (SPEC.replace("controls heldout", "controls random_init(n=1)")
               .replace("interchange H, H[3]", "interchange H[3]").replace("pairs 128 seed 2", "pairs 32 seed 2")
               .replace("steps 120", "steps 20").replace("train 512", "train 256"))


def test_random_init_trains_once_per_check_not_once_per_element(folder, monkeypatch):
    """With `--retrain`, the `random_init` control's copy is trained once over every element (like the
    network's featurizer), and its numbers are those of training it again for each element run."""
    import causalspec.claims.procedure as procedure

    calls: list[int] = []
    real_train = procedure.train

    def counted(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(procedure, "train", counted)
    once = _run(RANDOM_INIT, folder, retrain=True)["Mix"]
    assert len(calls) == 2  # the network's featurizer and the random copy's, each over every element
    control = next(c for c in once.controls if c.name == "random_init")
    assert len(control.values) == 5 and all(v is not None for v in control.values)
    assert sum(1 for t in once.training if t["variant"] == "random_init") == 1

    real_fit = procedure.AlignmentRun.fit

    def unshared(self, *args, **kwargs):  # how it ran before: each element run trained its own copy
        if str(kwargs.get("variant", "")).startswith("random_init"):
            kwargs["shared"] = None
        return real_fit(self, *args, **kwargs)

    calls.clear()
    monkeypatch.setattr(procedure.AlignmentRun, "fit", unshared)
    each = _run(RANDOM_INIT, folder, retrain=True)["Mix"]
    assert len(calls) == 1 + 5
    again = next(c for c in each.controls if c.name == "random_init")
    assert again.values == control.values and again.labels == control.labels
    assert [c.iia.successes for c in each.claims] == [c.iia.successes for c in once.claims]


def test_the_sae_report_of_a_per_element_check_covers_every_element(folder):
    """The SAE honesty report (fidelity, the error-term comparison) of a per-element check is pooled
    over the elements and lists each element, like the claim rows (it once showed the first's only)."""
    from causalspec.report.terminal import check_text

    _write_counts_sae(folder)
    r = _run(SEARCH, folder)["FindH3"]
    outputs = [f"O[{k}]" for k in range(1, 6)]
    fidelity = r.sae["fidelity"]
    assert [f.get("output") for f in fidelity] == [None] + outputs
    pooled, rows = fidelity[0], fidelity[1:]
    assert pooled["elements"] == outputs and pooled["inputs"] == sum(f["inputs"] for f in rows)
    assert pooled["spliced"]["successes"] == sum(f["spliced"]["successes"] for f in rows)
    assert pooled["clean_accuracy"] == pytest.approx(sum(f["clean_accuracy"] for f in rows) / 5)
    comparison = r.sae["error_term_comparison"]
    assert [c["label"] for c in comparison] == ["{H[3]}"] + [f"{{H[3]}} → {o}" for o in outputs]
    pooled_claim = next(c for c in r.claims if c.kind == "declared")
    assert comparison[0]["error_base"]["successes"] == pooled_claim.iia.successes  # the claim's own pooled IIA
    assert comparison[0]["error_source"]["trials"] == sum(c["error_source"]["trials"] for c in comparison[1:])
    assert r.sae["latent_search"]["chosen"] == [0]
    assert "→ O[5]" in check_text(r)
