"""Activation stores (run.activation_store): the clean pass's site activations in memory or on disk.

The disk store must give the same check results as memory (tiny GPT-2 and the hand-built
hierarchical-equality network), round-trip ragged rows and every dtype, hold only its row index
in process memory however many rows it has, and leave no files behind unless a folder was
named. The clean pass records only the sites the plan's claims need.
"""

from __future__ import annotations

import gc
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from causalspec.claims.procedure import make_alignment_run
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.cli import main
from causalspec.compile.plan import compile_check
from causalspec.run import engine as engine_module
from causalspec.run.activation_store import DiskActivations, MemoryActivations, open_store
from causalspec.run.engine import CleanCache, Engine, EngineOptions
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import load_hf_network
from causalspec.score.results import ERROR
from causalspec.semantics.analyse import load
from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_MODEL
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

WORDS = "When and went to the store gave a drink".split() + ["Mary", "John", "Tom", "Anna", "##bel"]

SPEC = """
model P {{
  domain Name = enum {{{names}}}
  input  A, B : Name ~ uniform where A != B
  var    mover : Name = A
  var    other : Name = B
  output answer : Name = mover
}}
network net = hf "{path}" {{
  prompt "When {{A}} and {{B}} went to the store, {{B}} gave a drink to"
  answer " {{answer}}"
  position B2all = slot(B, 2).all
  position END = last
}}
align P to net as Pos {{
  mover -> {site} @ {at}
  other -> resid.post[0] @ END
  answer -> output
}}
check Pos {{
  interchange mover
  pairs 96 seed 0
  expect iia >= 0.0
}}
"""

HAND = HAND_GOOD_CHECK


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt2_acts")
    build_tiny_model("gpt2", None, d, seed=7, tokenizer=build_word_tokenizer(WORDS), n_layer=3,
                     initializer_range=0.5)
    return d


def spec(tmp: Path, model_dir: Path, *, names=("Mary", "John", "Tom"), at="END", site="resid.post[2]",
         file="p.cspec"):
    (tmp / file).write_text(SPEC.format(names=", ".join(names), path=model_dir, at=at, site=site))
    return load(tmp / file)


@pytest.fixture
def tmp_root(tmp_path, monkeypatch):
    """The system temporary folder, redirected: what a run leaves behind shows up here."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def summary(result) -> list:
    return [(c.label, c.sampled, c.kept, c.changed, c.moved, c.iia.successes, c.iia.trials, c.baseline.successes,
             [(x.get("predicted"), x.get("expected")) for x in c.counterexamples]) for c in result.claims]


# ─────────────────────────────── the store itself ───────────────────────────────


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_ragged_rows_and_dtypes_round_trip(tmp_root, dtype):
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(k, 6, generator=gen).to(dtype) for k in (2, 1, 3, 1, 2, 0)]
    whole = [torch.randn(6, generator=gen).to(dtype) for _ in rows]
    with DiskActivations(len(rows), ["ragged", "whole"]) as store:
        order = [3, 0, 5, 1]  # rows arrive in any order, batch by batch
        store.put("ragged", order, [rows[i] for i in order])
        store.put("ragged", [2, 4], [rows[2], rows[4]])
        store.put("whole", range(len(rows)), whole)
        assert "ragged" in store and list(store) == ["ragged", "whole"] and len(store["ragged"]) == 6
        for i, t in enumerate(rows):
            got = store["ragged"][i]
            assert got.dtype == dtype and got.shape == t.shape and torch.equal(got, t)
        assert [tuple(t.shape) for t in store["ragged"]] == [tuple(t.shape) for t in rows]
        assert store.counts("ragged").tolist() == [2, 1, 3, 1, 2, 0]
        assert store.counts("whole").tolist() == [0] * 6 and store.width("whole") == 6
        assert torch.equal(store.stack("ragged", [1, 3, 1]), torch.stack([rows[1], rows[3], rows[1]]))
        assert torch.equal(store.stack("whole", [5, 0]), torch.stack([whole[5], whole[0]]))
        with pytest.raises(RuntimeError, match="equal size"):
            store.stack("ragged", [0, 1])
        store.put("ragged", [1], [rows[0][:1] * 0])  # a row written again (a retried batch): the new one counts
        assert torch.equal(store["ragged"][1], rows[0][:1] * 0)
        elem = torch.empty((), dtype=dtype).element_size()
        assert store.nbytes() == elem * 6 * (sum(t.shape[0] for t in rows) + 1 + len(whole))


def test_memory_store_is_the_plain_dict_of_lists():
    t = [torch.arange(6.0).reshape(2, 3), torch.ones(1, 3)]
    store = open_store(None, 2, ["b"])
    assert isinstance(store, MemoryActivations) and isinstance(store, dict)
    store.put("b", [0, 1], t)
    assert store["b"][0] is not t[0] and torch.equal(store["b"][0], t[0])  # recorded copies
    assert store.counts("b").tolist() == [2, 1] and store.nbytes() == 9 * 4
    cache = CleanCache(np.zeros(2), {"b": t})  # a plain dict (e.g. another backend's) is wrapped
    assert isinstance(cache.acts, MemoryActivations) and cache.acts["b"] is t


def test_temporary_folder_is_removed_on_close_and_on_collection(tmp_root):
    store = DiskActivations(3, ["b"])
    store.put("b", [0, 1, 2], [torch.ones(2, 4)] * 3)
    store.finish()  # flushes
    folder = store.folder
    assert folder.parent == tmp_root and (folder / "000.bin").stat().st_size == 3 * 2 * 4 * 4
    store.close()
    assert not folder.exists() and store.closed
    with pytest.raises(ValueError, match="closed"):
        store["b"][0]
    again = DiskActivations(1, ["b"])
    again.put("b", [0], [torch.ones(3)])
    folder = again.folder
    del again
    gc.collect()
    assert not folder.exists()
    assert list(tmp_root.iterdir()) == []


def test_a_named_folder_keeps_the_files_with_a_manifest(tmp_path):
    rows = [torch.randn(2, 5), torch.randn(1, 5)]
    store = DiskActivations(2, ["b"], folder=tmp_path / "acts")
    store.put("b", [0, 1], rows)
    store.finish()
    store.close()
    [kept] = (tmp_path / "acts").iterdir()
    manifest = json.loads((kept / "manifest.json").read_text())
    entry = manifest["bindings"][0]
    assert manifest["inputs"] == 2 and entry["dtype"] == "float32" and entry["width"] == 5
    index = np.load(kept / entry["index"])
    raw = np.fromfile(kept / entry["file"], dtype=np.float32)
    for i, t in enumerate(rows):  # the files alone give the rows back
        at, npos = index[i]
        assert np.array_equal(raw[at // 4: at // 4 + npos * 5].reshape(npos, 5), t.numpy())


def held_bytes(obj, seen: set | None = None) -> int:
    """Bytes of tensor and array data reachable from `obj` (a memmap's pages belong to the file)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, np.memmap):
        return 0
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(held_bytes(k, seen) + held_bytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return sum(held_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return held_bytes(vars(obj), seen)
    return 0


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_disk_store_memory_does_not_grow_with_the_rows(tmp_root, kind):
    width, per_row = 64, 3 * 64 * 4  # rows [3, 64] float32

    def peak(n: int) -> int:
        store = open_store(kind, n, ["a", "b"])
        top = 0
        for start in range(0, n, 50):  # batches of 50, as a clean pass writes them
            idx = list(range(start, min(n, start + 50)))
            for b in ("a", "b"):
                store.put(b, idx, [torch.full((3, width), float(i)) for i in idx])
            top = max(top, held_bytes(store))
        assert torch.equal(store.stack("a", [n - 1, 0])[:, 0, 0], torch.tensor([n - 1.0, 0.0]))
        top = max(top, held_bytes(store))
        if kind == "disk":
            assert store.resident_bytes() == held_bytes(store)  # what it reports is what it holds
        store.close()
        return top

    small, big = peak(100), peak(2000)
    if kind == "memory":
        assert big - small >= 2 * 1900 * per_row
    else:  # only the index grows: 12 bytes per row and binding, not 768
        assert big - small <= 2 * 1900 * 12
        assert big < 0.02 * 2 * 2000 * per_row


# ─────────────────────────────── in the engine and in checks ───────────────────────────────


def engine_for(ir, net, activations, incremental=True):
    check = ir.checks[0]
    plan = compile_check(ir, check, None, None)
    adapter = HFAdapter(net, plan.network, plan.model, plan.output)
    options = EngineOptions(batch_size=8, activations=activations, incremental=incremental)
    return Engine(adapter, net.module, resolve_family(net.module), options), plan


@pytest.mark.parametrize("incremental", [True, False])
def test_ragged_positions_give_the_same_patches_from_disk(model_dir, tmp_path, tmp_root, incremental):
    # Annabel is two tokens: `slot(B, 2).all` covers 2 tokens for her, 1 for the others
    ir = spec(tmp_path, model_dir, names=("Mary", "John", "Tom", "Annabel"), at="B2all", site="resid.post[0]")
    net = load_hf_network("net", str(model_dir), model_dir, None, "cpu", None)
    model = ir.models["P"]
    ab = [(a, b) for a in ("Mary", "John", "Tom", "Annabel") for b in ("Mary", "John", "Tom", "Annabel") if a != b]
    names = [b for _, b in ab]
    rows = {"A": model.domain("A").encode([a for a, _ in ab]), "B": model.domain("B").encode(names)}
    # every pair whose B covers as many tokens in base and source
    base, source = (np.array(x) for x in zip(*[(i, j) for i in range(len(ab)) for j in range(len(ab))
                                                  if (names[i] == "Annabel") == (names[j] == "Annabel")]))
    out = {}
    for where in ("memory", "disk"):
        engine, plan = engine_for(ir, net, where, incremental)
        mover = ir.alignments["Pos"].variables["mover"][0]
        cache = engine.run_clean(rows, [mover])
        assert [tuple(a.shape) for a in cache.acts[mover]] == [(2, 32) if n == "Annabel" else (1, 32) for n in names]
        preds = engine.run_patched(rows, cache, base, [source], [[mover]])
        assert (preds != cache.preds[base]).any()  # the patches move outputs
        out[where] = (preds, cache.preds, [t.clone() for t in cache.acts[mover]])
        assert any(f"kept {'in memory' if where == 'memory' else 'on disk'}" in n for n in engine.run_notes())
        engine.close()
    assert out["disk"][0].tolist() == out["memory"][0].tolist()
    assert out["disk"][1].tolist() == out["memory"][1].tolist()
    assert all(torch.equal(x, y) for x, y in zip(out["disk"][2], out["memory"][2]))
    assert list(tmp_root.iterdir()) == []


def test_a_check_gives_identical_results_with_activations_on_disk(model_dir, tmp_path, tmp_root):
    ir = spec(tmp_path, model_dir)
    (tmp_path / "hand.cspec").write_text(HIER_EQ_MODEL + HAND)
    hand = load(tmp_path / "hand.cspec")  # module sites: rows [width], no positions
    runs = {where: run_checks(ir, CheckOptions(activations=where)) + run_checks(hand, CheckOptions(activations=where))
            for where in (None, "disk", str(tmp_path / "kept"))}
    for results in runs.values():
        assert all(r.status != ERROR for r in results), [r.reason for r in results]
    assert summary(runs[None][0]) == summary(runs["disk"][0]) == summary(runs[str(tmp_path / "kept")][0])
    assert summary(runs[None][1]) == summary(runs["disk"][1])
    assert runs[None][0].claims[0].moved > 0 and runs[None][1].claims[0].moved > 0  # not vacuous
    note = next(n for n in runs["disk"][0].notes if n.startswith("clean activations"))
    assert "on disk in" in note and "removed when the run ends" in note, note
    assert any(n.startswith("clean activations") and "in memory" in n for n in runs[None][0].notes)
    assert list(tmp_root.iterdir()) == []  # the temporary folders are gone
    kept = list((tmp_path / "kept").iterdir())
    assert len(kept) == 2 and all((k / "manifest.json").is_file() for k in kept)


def test_only_the_sites_the_claims_need_are_recorded(model_dir, tmp_path, monkeypatch):
    # `other` is aligned (resid.post[0]) but no claim interchanges it: nothing of it is kept
    ir = spec(tmp_path, model_dir)
    recorded = []
    real = engine_module.record

    def spy(module, family, addresses):
        recorded.append(list(addresses))
        return real(module, family, addresses)

    monkeypatch.setattr(engine_module, "record", spy)
    net = load_hf_network("net", str(model_dir), model_dir, None, "cpu", None)
    plan = compile_check(ir, ir.checks[0], None, None)
    run = make_alignment_run(ir, ir.checks[0], plan, net, CheckOptions())
    cache = run.clean()
    mover = ir.alignments["Pos"].variables["mover"][0]
    assert list(cache.acts) == [mover]
    assert recorded and all([(a.kind, a.layer) for a in r] == [("resid.post", 2)] for r in recorded)
    # ... and only at the bound position (`last`): one token per input
    assert {tuple(t.shape) for t in cache.acts[mover]} == {(1, 32)}


def test_cli_flag(model_dir, tmp_path, tmp_root, capsys):
    ir = spec(tmp_path, model_dir)
    # exit 1, not 0: the tiny GPT-2's random weights agree with the model on 41 of 96 inputs against a
    # chance level of 31% (κ 0.17), so the chance-agreement guard refuses its pass; what counts here
    # is that the flag runs the check to a verdict (not 2 or 3) and where its files go
    assert main(["check", ir.file, "--activations-on-disk", "--quiet"]) == 1
    assert list(tmp_root.iterdir()) == []
    assert main(["check", ir.file, f"--activations-on-disk={tmp_path / 'acts'}", "--quiet"]) == 1
    assert (next((tmp_path / "acts").iterdir()) / "manifest.json").is_file()
    capsys.readouterr()
    assert main(["check", "--activations-on-disk", ir.file, ir.file]) == 2  # a spec taken for the folder
    assert "takes a folder" in capsys.readouterr().err
