"""Remote nnsight execution (NDIF): the plan travels as data to one fixed runner, only output
codes come back, sites are validated before anything is sent.

No test here reaches a server (there is no network). nnsight's own dry run of the remote
path (`remote="local"`: the session is serialised exactly as for NDIF, deserialised with
local modules — causalspec included — hidden, then run here) proves the runner is shipped
whole and gives the torch engine's predictions; for `remote=True` / a host URL, nnsight's
remote backend is swapped for that dry run to show the target reaches it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import torch

nnsight = pytest.importorskip("nnsight")

from nnsight.intervention.backends.local import LocalSimulationBackend  # noqa: E402
from nnsight.modeling.transformers import TransformersModel  # noqa: E402

from causalspec.claims.runner import CheckOptions, run_checks  # noqa: E402
from causalspec.cli import main  # noqa: E402
from causalspec.compile.plan import compile_check  # noqa: E402
from causalspec.run import nnsight_runner, patching  # noqa: E402
from causalspec.run.adapters import CheckUsageError  # noqa: E402
from causalspec.run.engine import Engine, EngineOptions  # noqa: E402
from causalspec.run.families import resolve_family  # noqa: E402
from causalspec.run.hf_adapter import HFAdapter  # noqa: E402
from causalspec.run.loading import load_hf_network  # noqa: E402
from causalspec.run.nnsight_backend import NNsightEngine, tree_order  # noqa: E402
from causalspec.score.results import ERROR, FAILED, PASSED  # noqa: E402
from causalspec.semantics.analyse import load  # noqa: E402
from causalspec.testing.claims import claim_run  # noqa: E402
from causalspec.testing.specs import mover_spec  # noqa: E402
from causalspec.testing.tiny import build_tiny_model  # noqa: E402



@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request, word_lm):
    return word_lm(request.param)


@pytest.fixture
def spy(monkeypatch):
    """Every runner result and every dry-run serialisation of one test."""
    seen = {"results": [], "dry_runs": 0}
    run = nnsight_runner.run

    def spying_run(model, plan, remote=False):
        result = run(model, plan, remote)
        seen["results"].append((remote, result))
        return result

    call = LocalSimulationBackend.__call__

    def counting_call(self, tracer):
        seen["dry_runs"] += 1
        return call(self, tracer)

    monkeypatch.setattr(nnsight_runner, "run", spying_run)
    monkeypatch.setattr(LocalSimulationBackend, "__call__", counting_call)
    return seen


INDUCTION_CHECK = """
model Induction {{
  domain Name = enum {{Mary, John, Tom, Anna, Paul, Lisa}}
  input  A, B, C : Name ~ uniform where A != B and B != C and A != C
  var    copied : Name = B
  output answer : Name = copied
}}
network toy = hf "{path}" {{
  prompt "then {{A}} {{B}} {{C}} {{A}}"
  answer " {{answer}}"
  position END = last
}}
align Induction to toy as Copy {{
  copied -> {site} @ END
  answer -> output
}}
check Copy {{
  interchange copied
  pairs 48 seed 0 batch 16
  expect iia >= 0.9 lower95
}}
"""


@pytest.fixture(scope="module")
def induction_dir(tmp_path_factory):
    """The hand-built induction GPT-2 (causalspec.testing.toy_circuits): head 1.0 copies B."""
    from causalspec.testing.toy_circuits import build_induction_model

    d = tmp_path_factory.mktemp("induction")
    build_induction_model(d)
    return d


def induction_spec(tmp_path, induction_dir, site="head[1.0].z") -> Path:
    path = tmp_path / "induction.cspec"
    path.write_text(INDUCTION_CHECK.format(path=induction_dir, site=site))
    return path


def spec_file(tmp_path, model_dir, site="resid.post[0]", at="A1", feat="", extra="") -> Path:
    text = mover_spec(model_dir, site=site, at=at + feat, positions=True, pairs=24)
    if extra:
        text = text.replace("  position END = last\n", f"  position END = last\n  {extra}\n")
    path = tmp_path / "p.cspec"
    path.write_text(text)
    return path


def predictions(ir, make_engine, weights=True):
    """(engine, clean cache, patched predictions) of the first claim (full forwards)."""
    net = None
    if not weights:
        plan = compile_check(ir, ir.checks[0])
        net = load_hf_network("net", str(plan.network.source), Path(ir.file).parent, None, "cpu", None, weights=False)
    run = claim_run(ir, net=net, incremental=False, engine_cls=make_engine)
    cache, patched = run.run()
    return run.engine, cache, patched


def only_codes_came_back(result) -> None:
    """A remote result: integer codes per batch and an int width per read site, nothing else."""
    assert set(result) == {"clean", "patched", "widths"}
    for out in result["clean"] + result["patched"]:
        assert out.dtype == torch.long and out.dim() == 1
    assert all(isinstance(w, int) for w in result["widths"].values())


@pytest.mark.parametrize("site,at,feat", [("resid.post[0]", "A1", ""), ("head[1.1].v", "A1", " : [0:4]"),
                                          ("mlp.out[0]", "END", " : [0:16]")])
def test_remote_dry_run_equals_the_torch_engine(model_dir, tmp_path, spy, site, at, feat):
    ir = load(spec_file(tmp_path, model_dir, site, at, feat))
    _, ref_cache, ref = predictions(ir, Engine)
    engine, cache, patched = predictions(ir, functools.partial(NNsightEngine, remote="local"))
    assert cache.preds.tolist() == ref_cache.preds.tolist()
    assert patched.tolist() == ref.tolist()
    assert len(set(ref.tolist())) > 1  # the patched answers vary: equality is not trivial
    assert spy["dry_runs"] == engine.requests == 2  # one session for the clean pass, one for the patches
    for remote, result in spy["results"]:
        assert remote == "local"
        only_codes_came_back(result)
    for acts in cache.acts.values():  # shapes for the scoring code; the values never left the session
        assert all(a.is_meta for a in acts)


@pytest.mark.parametrize("site,verdict", [("head[1.0].z", PASSED), ("head[1.1].z", FAILED)])
def test_a_remote_check_gives_the_torch_checks_verdict(induction_dir, tmp_path, spy, site, verdict):
    """Ground truth: the induction head's output carries the copied name; a distractor's does not."""
    ir = load(induction_spec(tmp_path, induction_dir, site))
    [torch_result] = run_checks(ir)
    [remote_result] = run_checks(ir, CheckOptions(remote="local"))
    assert torch_result.status == verdict, torch_result.reason
    assert remote_result.status == verdict, remote_result.reason
    mine, theirs = remote_result.claims[0], torch_result.claims[0]
    assert (mine.kept, mine.changed, mine.moved, mine.iia.successes) == \
        (theirs.kept, theirs.changed, theirs.moved, theirs.iia.successes)
    assert any("dry run of the remote path" in n for n in remote_result.notes)
    assert spy["dry_runs"] >= 2


def test_the_spec_can_ask_for_the_remote_dry_run_and_the_command_line_overrides_it(model_dir, tmp_path, spy):
    ir = load(spec_file(tmp_path, model_dir, extra="backend nnsight"))
    [result] = run_checks(ir)
    assert result.status != ERROR, result.reason
    assert any("nnsight sessions here" in n for n in result.notes)
    [result] = run_checks(ir, CheckOptions(backend="torch"))
    assert not any("nnsight" in n for n in result.notes)
    [result] = run_checks(ir, CheckOptions(remote="local"))
    assert any("dry run" in n for n in result.notes) and spy["dry_runs"] >= 2


@pytest.mark.parametrize("target", [True, "https://ndif.example.org"])
def test_an_ndif_target_reaches_nnsights_remote_backend(model_dir, tmp_path, monkeypatch, spy, target):
    """The real RemoteBackend needs a server; it is swapped for the dry run, recording its target."""
    asked = []

    def remote_backend(self, remote, blocking, job_id, verbose):
        asked.append(remote)
        return LocalSimulationBackend(self)

    monkeypatch.setattr(TransformersModel, "_remote_backend", remote_backend)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "test-key")
    ir = load(spec_file(tmp_path, model_dir, "resid.post[0]", "A1"))
    _, ref_cache, ref = predictions(ir, Engine)
    engine, cache, patched = predictions(ir, functools.partial(NNsightEngine, remote=target))
    assert asked == [target, target]
    assert patched.tolist() == ref.tolist() and cache.preds.tolist() == ref_cache.preds.tolist()
    for _, result in spy["results"]:
        only_codes_came_back(result)


def test_ndif_without_an_api_key_is_refused_before_anything_runs(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    ir = load(spec_file(tmp_path, model_dir))
    with pytest.raises(CheckUsageError, match="NDIF_API_KEY"):
        predictions(ir, functools.partial(NNsightEngine, remote=True))


def test_the_model_key_names_the_hub_id_and_the_task(model_dir, tmp_path, monkeypatch):
    """What NDIF is asked to run: the hub id the spec names, as a text-generation model."""
    from nnsight.modeling import huggingface

    monkeypatch.setitem(huggingface._ID_CACHE, "openai-community/gpt2", "openai-community/gpt2")
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "test-key")
    ir = load(spec_file(tmp_path, model_dir))
    plan = compile_check(ir, ir.checks[0])
    net = load_hf_network("net", str(model_dir), tmp_path, None, "cpu", None, weights=False)
    net.module.config._name_or_path = "openai-community/gpt2"
    engine = NNsightEngine(HFAdapter(net, plan.network, plan.model, plan.output), net.module,
                           resolve_family(net.module), EngineOptions(batch_size=8), remote=True)
    key = engine.traced.to_model_key()
    assert key.startswith("nnsight.modeling.transformers.TransformersModel:")
    assert '"repo_id": "openai-community/gpt2"' in key and '"task": "text-generation"' in key


def test_a_remote_model_is_built_without_weights_and_its_sites_are_checked_up_front(model_dir, tmp_path,
                                                                                       monkeypatch, spy):
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "test-key")
    net = load_hf_network("net", str(model_dir), tmp_path, None, "cpu", None, weights=False)
    assert all(p.is_meta for p in net.module.parameters())
    assert net.tokenizer is not None
    ir = load(spec_file(tmp_path, model_dir, "head[0.1].result", "END"))
    with pytest.raises(CheckUsageError, match="not supported by the nnsight backend"):
        predictions(ir, functools.partial(NNsightEngine, remote=True), weights=False)
    assert spy["results"] == []  # refused before any session was built


def test_a_local_folder_cannot_run_on_ndif(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALSPEC_REMOTE_HOSTS", "https://ndif.example.org")  # the user allows the spec's host
    ir = load(spec_file(tmp_path, model_dir))
    [result] = run_checks(ir, CheckOptions(remote=True))
    assert result.status == ERROR and "hub id" in result.reason
    [result] = run_checks(ir, CheckOptions(remote="local", backend="torch"))
    assert result.status == ERROR and "--backend nnsight" in result.reason
    for statement in ('backend nnsight remote', 'backend nnsight remote "https://ndif.example.org"'):
        [result] = run_checks(load(spec_file(tmp_path, model_dir, extra=statement)))
        assert result.status == ERROR and "hub id" in result.reason, result.reason


def test_learned_featurizers_are_refused_remotely(model_dir, tmp_path):
    ir = load(spec_file(tmp_path, model_dir, feat=" : das(2)"))
    [result] = run_checks(ir, CheckOptions(remote="local"))
    assert result.status == ERROR and "train" in result.reason and "basis" in result.reason


def test_the_cli_runs_a_remote_dry_run(induction_dir, tmp_path, capsys, spy):
    path = induction_spec(tmp_path, induction_dir)
    assert main(["check", str(path), "--remote", "local"]) == 0
    out = capsys.readouterr().out
    assert "dry run of the remote path" in out and "1 passed" in out
    assert spy["dry_runs"] == 2
    code = main(["check", str(path), "--remote", "ftp://nowhere"])
    out = capsys.readouterr().out
    assert code != 0 and "self-hosted NDIF" in out, out


def test_remote_targets_are_validated():
    from causalspec.run.nnsight_backend import remote_target

    assert remote_target(None) is None and remote_target("ndif") is True
    assert remote_target("https://ndif.example.org") == "https://ndif.example.org"
    with pytest.raises(CheckUsageError, match="self-hosted"):
        remote_target("ftp://nowhere")


def _imports(module) -> tuple[set, set]:
    """(modules imported at the top of `module`'s file, modules imported anywhere inside it)."""
    tree = ast.parse(Path(module.__file__).read_text())
    top = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    inner = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return top - {"__future__"}, inner - {"__future__"}


def test_the_runner_needs_nothing_but_torch():
    """NDIF has no causalspec: the shipped modules — the runner and the arithmetic it shares with
    the torch engine (`run.patching`) — import only torch (the runner also `run.patching`, shipped
    with it, and nnsight inside `run`)."""
    top, inner = _imports(patching)
    assert top <= {"torch"} and not inner, (top, inner)
    top, inner = _imports(nnsight_runner)
    assert top <= {"torch", "causalspec.run.patching"}, top
    assert inner <= {"nnsight", "causalspec.run.patching"}, inner


@pytest.mark.parametrize("kind", ["gpt2", "neox", "llama"])
def test_the_module_tree_order_is_the_forward_order_of_every_site(kind, tmp_path):
    """A remote model has no weights to measure the order with; the tree's order must match."""
    from causalspec.semantics.site_kinds import SiteAddress

    model = build_tiny_model(kind, 60, tmp_path, seed=0)
    engine = NNsightEngine.__new__(NNsightEngine)
    engine.module, engine.family = model, resolve_family(model)
    engine._paths = {id(m): name for name, m in model.named_modules()}
    measured: dict = {}
    hooks = []
    for name, mod in model.named_modules():
        def enter(m, a, name=name) -> None:
            measured.setdefault((name, "input"), len(measured))

        def leave(m, a, o, name=name) -> None:
            measured.setdefault((name, "output"), len(measured))

        hooks += [mod.register_forward_pre_hook(enter), mod.register_forward_hook(leave)]
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    for h in hooks:
        h.remove()
    static = tree_order(model)
    layers = model.config.num_hidden_layers
    sites = [SiteAddress("embed"), SiteAddress("logits")]
    for layer in range(layers):
        sites += [SiteAddress(k, layer=layer) for k in ("resid.pre", "resid.post", "attn.out", "mlp.out")]
        sites += [SiteAddress(f"head.{p}", layer=layer, head=0) for p in ("q", "k", "v", "z")]
    points = sorted({engine._point(s)[:2] for s in sites}, key=measured.__getitem__)
    assert len(points) > 4 * layers
    assert sorted(points, key=static.__getitem__) == points


def test_results_come_back_per_example_and_scalar_only(model_dir, tmp_path, spy):
    ir = load(spec_file(tmp_path, model_dir))
    engine, cache, patched = predictions(ir, functools.partial(NNsightEngine, remote="local"))
    [(_, clean), (_, patches)] = spy["results"]
    assert sum(len(c) for c in clean["clean"]) == len(cache.preds)
    assert sum(len(p) for p in patches["patched"]) == len(patched)
    assert engine.forward_passes["patched"] == len(patches["patched"])


def test_circuit_claims_are_refused_remotely(induction_dir, tmp_path):
    from causalspec.testing.toy_circuits import spec_header

    path = tmp_path / "circuit.cspec"
    path.write_text(spec_header(induction_dir) + """
circuit Heads on toy for Induction.answer {
  group prev      = head[0.0]
  group induction = head[1.0] @ END
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  pairs 16
  expect faithfulness >= 0.9
}
""")
    [result] = run_checks(load(path), CheckOptions(remote="local"))
    assert result.status == ERROR and "torch engine only" in result.reason


def test_controls_on_a_remote_check(induction_dir, tmp_path, spy):
    """random_subspace runs remotely (its subspaces travel as data); random_init cannot (the
    weights are on the server) and says so; the remote verdicts equal the torch engine's."""
    path = induction_spec(tmp_path, induction_dir)
    path.write_text(path.read_text().replace("  expect iia >= 0.9 lower95\n",
                                             "  controls random_init, random_subspace\n"
                                             "  expect iia >= 0.9 lower95\n"))
    ir = load(path)
    [here] = run_checks(ir)
    [remote] = run_checks(ir, CheckOptions(remote="local"))
    assert here.status == remote.status == PASSED, remote.reason
    by_name = {c.name: c for c in remote.controls}
    assert not by_name["random_init"].applicable and "remote" in by_name["random_init"].detail
    assert by_name["random_subspace"].values == {c.name: c for c in here.controls}["random_subspace"].values
