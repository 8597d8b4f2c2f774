"""Circuit numbers of `causalspec check` (its JSON report) against a reference written here.

The reference uses plain torch forward hooks on the Hugging Face GPT-2 (no causalspec engine,
hook, adapter or scoring code): an ablated head's z (the input of `attn.c_proj`) and an
ablated MLP's output are overwritten with their ablated value, per head and per position;
at edge granularity each member's q, k, v input, MLP input and the logits' input is
recomputed from the residual stream minus the cut senders' ``out − ablated``. Only the
prompts (the model's seeded draw) and, for resample ablation, which reference prompt each
prompt takes (the seeded draw, checked to keep token counts) come from causalspec; the
tokens, the metric, the ablation values (per-position means, the resampled prompt's clean
activations) and every score (docs/language.md §8.3) are computed here.

What this adds to the other circuit tests: resample ablation, completeness, necessity and
minimality as numbers (not only pass/fail) at node and edge granularity, groups restricted
to a position, prompts of different token counts, the routed input, the MIB convention
(MLPs outside the circuit ablated) with mean ablation, the normalisation's fixed points
(whole model 1, nothing kept 0) and the sign conventions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from causalspec.cli import main
from causalspec.compile.circuit_plan import compile_circuit
from causalspec.semantics.analyse import load
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer
from causalspec.testing.toy_circuits import FILLER, NAMES, TEMPLATE, build_induction_model, spec_header

LAYERS, HEADS, PAIRS = 2, 4, 12
EMBED = ("e",)  # the input node of edge circuits
TOL = 1e-5
Node = tuple  # ("h", layer, head) | ("m", layer)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A random-init 2-layer GPT-2 with large weights, so every head and MLP moves the metric; on
    these prompts ablating everything raises logit_diff(B, C): a negative effect (sign convention)."""
    d = tmp_path_factory.mktemp("gt")
    tok = build_word_tokenizer([FILLER, *NAMES])
    build_tiny_model("gpt2", None, d / "tiny", seed=2, tokenizer=tok, n_layer=LAYERS, n_head=HEADS,
                     initializer_range=1.0)
    return d / "tiny"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gt_toy") / "model"
    build_induction_model(path)
    return path


def write_spec(tmp: Path, model_dir: Path, body: str, ablation: str, ref_pairs: int = 8,
               metric: str = "logit_diff(B, C) @ END", expect: str = "faithfulness >= 0.0") -> Path:
    spec = tmp / "gt.cspec"
    spec.write_text(spec_header(model_dir, ref_pairs=ref_pairs) + f"""
circuit C on toy for Induction.answer {{
  {body}
  ablate complement with {ablation}
  metric {metric}
  pairs {PAIRS}
  expect {expect}
}}
""")
    return spec


def check_json(spec: Path) -> dict:
    out = spec.with_suffix(".json")
    main(["check", str(spec), "--json", str(out)])
    [result] = [r for r in json.loads(out.read_text())["checks"] if r["name"] == "C"]
    return result


# ───────────────────────── the independent reference ─────────────────────────

class Reference:
    """The prompts of circuit `C`, tokenized here, and forward passes with hooked ablations."""

    def __init__(self, model_dir: Path, spec: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        tok = AutoTokenizer.from_pretrained(model_dir)
        ir = load(spec)
        plan = compile_circuit(ir, ir.circuits["C"], PAIRS, 0)
        self.ids, self.b, self.c = self.encode(tok, plan.rows)
        # the reference dataset's prompts (zero ablation has none)
        self.ref_ids = self.encode(tok, plan.reference.rows)[0] if plan.reference is not None else None
        self.hd = self.model.config.n_embd // HEADS

    @staticmethod
    def encode(tok, rows):
        names = [NAMES[int(i)] for i in rows["A"]], [NAMES[int(i)] for i in rows["B"]], \
            [NAMES[int(i)] for i in rows["C"]]
        texts = [TEMPLATE.format(A=a, B=b, C=c) for a, b, c in zip(*names)]
        ids = torch.tensor([tok(t)["input_ids"] for t in texts])  # [n, seq]: one template, one length
        b = torch.tensor(tok.convert_tokens_to_ids(names[1]))
        c = torch.tensor(tok.convert_tokens_to_ids(names[2]))
        return ids, b, c

    def record(self, ids: torch.Tensor) -> dict[Node, torch.Tensor]:
        """Clean activations: every head's z [n, seq, hd], every MLP's output [n, seq, d] and
        the embeddings (token + position) [n, seq, d]."""
        tr = self.model.transformer
        with torch.no_grad():
            acts: dict[Node, torch.Tensor] = {EMBED: tr.wte(ids) + tr.wpe(torch.arange(ids.shape[1]))[None]}
        hooks = []
        for L, block in enumerate(self.model.transformer.h):
            def pre(_m, args, L=L):
                for h in range(HEADS):
                    acts[("h", L, h)] = args[0][..., h * self.hd:(h + 1) * self.hd].clone()
            def post(_m, _args, out, L=L):
                acts[("m", L)] = out.clone()
            hooks += [block.attn.c_proj.register_forward_pre_hook(pre), block.mlp.register_forward_hook(post)]
        try:
            with torch.no_grad():
                self.model(ids)
        finally:
            for hk in hooks:
                hk.remove()
        return acts

    def metric(self, ablate: dict[Node, list[int] | None], values: dict[Node, torch.Tensor]) -> float:
        """Mean logit_diff(B, C) at the last token with `ablate` (node -> positions, None = all)."""
        hooks = []
        for L, block in enumerate(self.model.transformer.h):
            def pre(_m, args, L=L):
                z = args[0].clone()
                for h in range(HEADS):
                    pos = ablate.get(("h", L, h), "keep")
                    if pos == "keep":
                        continue
                    sl = slice(h * self.hd, (h + 1) * self.hd)
                    v = values[("h", L, h)][:, :z.shape[1]].expand(z.shape[0], -1, -1)
                    where = slice(None) if pos is None else slice(0, -1) if pos == "not END" else pos
                    z[:, where, sl] = v[:, where]
                return (z,)
            def post(_m, _args, out, L=L):
                pos = ablate.get(("m", L), "keep")
                if pos == "keep":
                    return out
                out = out.clone()
                where = slice(None) if pos is None else slice(0, -1) if pos == "not END" else pos
                out[:, where] = values[("m", L)][:, :out.shape[1]].expand(out.shape[0], -1, -1)[:, where]
                return out
            hooks += [block.attn.c_proj.register_forward_pre_hook(pre), block.mlp.register_forward_hook(post)]
        try:
            with torch.no_grad():
                logits = self.model(self.ids).logits[:, -1]
        finally:
            for hk in hooks:
                hk.remove()
        r = torch.arange(len(logits))
        return float((logits[r, self.b] - logits[r, self.c]).mean())


def feeds(src: Node, receiver: tuple) -> bool:
    """Whether node `src` is upstream of `receiver` (("h", L, H, port), ("m", L) or ("logits",))."""
    if receiver[0] == "logits" or src == EMBED:
        return True
    if receiver[0] == "h":
        return src[1] < receiver[1]
    return src[1] < receiver[1] or (src[1] == receiver[1] and src[0] == "h")


def edge_metric(ref: Reference, ablate: dict, values: dict, members: dict[Node, str],
                edges: set[tuple[Node, tuple]], embed: torch.Tensor | None = None) -> float:
    """Path patching (docs §8.3 "Granularity"), with hooks: each input of a member (a head's
    q, k, v; an MLP's input) and the logits read the residual stream minus ``out(u) − abl(u)``
    of every member u upstream without an edge to it (`members`: node -> its group; nodes of
    a group do not feed each other). `embed`: the routed input's ``actual − ablated`` embeddings,
    when some edge starts at `embed`."""
    model, hd = ref.model, ref.hd
    d = model.config.n_embd
    diff: dict[Node, torch.Tensor] = {} if embed is None else {EMBED: embed}
    members = {**members, EMBED: "embed"}
    resid: dict[int, torch.Tensor] = {}

    def corrected(x: torch.Tensor, receiver: tuple, group: str | None) -> torch.Tensor:
        for u, du in diff.items():
            if feeds(u, receiver) and ((u, receiver) not in edges or members[u] == group):
                x = x - du
        return x

    hooks = []
    for L, block in enumerate(model.transformer.h):
        def grab(_m, args, L=L):
            resid[L] = args[0]
        def qkv(_m, _args, out, L=L, block=block):
            out = out.clone()
            w, b = block.attn.c_attn.weight, block.attn.c_attn.bias
            x0 = resid[L]  # read once: calling ln_1 below fires `grab` again
            for h in range(HEADS):
                if ("h", L, h) not in members:
                    continue
                for i, port in enumerate("qkv"):
                    cols = slice(i * d + h * hd, i * d + (h + 1) * hd)
                    x = corrected(x0, ("h", L, h, port), members[("h", L, h)])
                    out[..., cols] = block.ln_1(x) @ w[:, cols] + b[cols]
            return out
        def pre_proj(_m, args, L=L, block=block):
            z = args[0].clone()
            for h in range(HEADS):
                node, sl = ("h", L, h), slice(h * hd, (h + 1) * hd)
                pos = ablate.get(node, "keep")
                v = values[node].expand(z.shape[0], -1, -1)
                if pos != "keep":
                    where = slice(None) if pos is None else pos
                    z[:, where, sl] = v[:, where]
                if node in members:
                    diff[node] = (z[..., sl] - v) @ block.attn.c_proj.weight[sl]
            return (z,)
        def pre_mlp(_m, args, L=L):
            if ("m", L) in members:
                return (corrected(args[0], ("m", L), members[("m", L)]),)
            return None
        def post_mlp(_m, _args, out, L=L):
            node = ("m", L)
            v = values[node].expand(out.shape[0], -1, -1)
            pos = ablate.get(node, "keep")
            if pos != "keep":
                out = out.clone()
                where = slice(None) if pos is None else pos
                out[:, where] = v[:, where]
            if node in members:
                diff[node] = out - v
            return out
        hooks += [block.ln_1.register_forward_pre_hook(grab), block.attn.c_attn.register_forward_hook(qkv),
                  block.attn.c_proj.register_forward_pre_hook(pre_proj), block.ln_2.register_forward_pre_hook(pre_mlp),
                  block.mlp.register_forward_hook(post_mlp)]
    hooks.append(model.transformer.ln_f.register_forward_pre_hook(
        lambda _m, args: (corrected(args[0], ("logits",), None),)))
    try:
        with torch.no_grad():
            logits = model(ref.ids).logits[:, -1]
    finally:
        for hk in hooks:
            hk.remove()
    r = torch.arange(len(logits))
    return float((logits[r, ref.b] - logits[r, ref.c]).mean())


def all_nodes(heads: bool, mlps: bool) -> list[Node]:
    return [*((("h", L, h) for L in range(LAYERS) for h in range(HEADS)) if heads else ()),
            *((("m", L) for L in range(LAYERS)) if mlps else ())]


def reference_scores(ref: Reference, values: dict[Node, torch.Tensor], groups: dict[str, dict[Node, list | None]],
                     universe: list[Node]) -> dict[str, float]:
    """Every score of docs/language.md §8.3 from raw metric means (node granularity).

    `groups`: group -> {node: positions where it belongs to the circuit (None = all, "END" =
    the last token)}."""
    seq = ref.ids.shape[1]
    members = {n: p for g in groups.values() for n, p in g.items()}

    def circuit_without(removed: set) -> dict:
        abl: dict[Node, list[int] | None] = {}
        for n in universe:
            if n not in members or n in removed:
                abl[n] = None
            elif members[n] is not None:
                # ablated outside its positions ("END": the last token of each prompt)
                abl[n] = "not END" if members[n] == "END" else [p for p in range(seq) if p not in members[n]]
        return abl

    m_n = ref.metric({}, values)
    m_c = ref.metric(circuit_without(set()), values)
    m_e = ref.metric({n: None for n in universe}, values)
    eff = m_n - m_e
    out = {"m(N)": m_n, "m(C)": m_c, "m(E)": m_e, "faithfulness": (m_c - m_e) / eff}
    gaps = []
    for g, nodes in groups.items():
        m_cg = ref.metric(circuit_without(set(nodes)), values)
        out[f"necessity({g})"] = (m_c - m_cg) / eff
        out[f"minimality({g})"] = min((m_c - ref.metric(circuit_without({v}), values)) / eff for v in nodes)
        gaps.append(abs(m_cg - ref.metric({v: None for v in nodes}, values)) / abs(eff))
    gaps.append(abs(m_e - ref.metric({v: None for v in members}, values)) / abs(eff))
    out["completeness"] = 1 - max(gaps)
    return out


def edge_scores(ref, values, groups: dict, circuit_without, m_n: float, m_c: float, m_e: float) -> dict[str, float]:
    """Every score at edge granularity from m(N), m(C), m(∅) and `circuit_without(nodes)` (the
    circuit's edge-level metric with `nodes` knocked out); N∖K is node-level (§8.3)."""
    eff = m_n - m_e
    want = {"m(N)": m_n, "m(C)": m_c, "m(E)": m_e, "faithfulness": (m_c - m_e) / eff}
    gaps = [abs(m_e - ref.metric({v: None for g in groups.values() for v in g}, values)) / abs(eff)]
    for g, nodes in groups.items():
        m_cg = circuit_without(set(nodes))
        want[f"necessity({g})"] = (m_c - m_cg) / eff
        want[f"minimality({g})"] = min((m_c - circuit_without({v})) / eff for v in nodes)
        gaps.append(abs(m_cg - ref.metric({v: None for v in nodes}, values)) / abs(eff))
    want["completeness"] = 1 - max(gaps)
    return want


def reported(result: dict) -> dict[str, float]:
    c = result["circuit"]
    got = {s["name"]: s["estimate"] for s in c["scores"]}
    got.update({"m(N)": c["means"]["full model"]["estimate"], "m(C)": c["means"]["circuit"]["estimate"],
                "m(E)": c["means"]["everything ablated"]["estimate"]})
    return got


def compare(got: dict[str, float], want: dict[str, float], claimed: tuple[str, ...] = ()) -> None:
    """Every number the report gives equals the reference; the claimed scores must be there."""
    assert {"m(N)", "m(C)", "m(E)", "faithfulness", *claimed} <= set(got), set(claimed) - set(got)
    for key, value in got.items():
        assert key in want, key
        # float32 forward passes: 1e-5 absolute, or relative where a small effect m(N) − m(∅)
        # magnifies the scores (zero ablation here: faithfulness ≈ −30 from an effect of −0.04)
        assert value == pytest.approx(want[key], abs=TOL, rel=TOL), key


def mean_values(ref: Reference) -> dict[Node, torch.Tensor]:
    assert ref.ref_ids is not None
    return {n: v.mean(0, keepdim=True) for n, v in ref.record(ref.ref_ids).items()}  # per-position means


MIXED = "group a = head[0.1], head[1.2]\n  group b = head[1.0] @ END\n  group m = mlp[0]"
MIXED_GROUPS = {"a": {("h", 0, 1): None, ("h", 1, 2): None}, "b": {("h", 1, 0): "END"}, "m": {("m", 0): None}}
EXPECT_ALL = ("faithfulness >= 0.0 and minimality(a) >= 0.0 and minimality(b) >= 0.0 and minimality(m) >= 0.0 "
              "and completeness >= 0.0")


def at_end(groups: dict, seq: int) -> dict:
    return {g: {n: ([seq - 1] if p == "END" else p) for n, p in nodes.items()} for g, nodes in groups.items()}


@pytest.mark.parametrize("ablation", ["mean over Ref", "zero"])
def test_heads_and_an_mlp_every_score_equals_the_reference(tmp_path, tiny, ablation):
    """Default convention, a circuit naming heads and an MLP: both kinds are the universe.
    Zero ablation at node granularity zeros heads' z and MLP outputs, never the input."""
    spec = write_spec(tmp_path, tiny, MIXED, ablation, expect=EXPECT_ALL)
    ref = Reference(tiny, spec)
    if ablation == "zero":
        values = {n: torch.zeros_like(v) for n, v in ref.record(ref.ids[:1]).items()}
    else:
        values = mean_values(ref)
    want = reference_scores(ref, values, at_end(MIXED_GROUPS, ref.ids.shape[1]), all_nodes(True, True))
    # a real (negative) effect: the ratios are not over noise
    assert want["m(N)"] - want["m(E)"] < (-1 if ablation != "zero" else -0.03)
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "minimality(b)", "minimality(m)", "completeness"))


def test_resample_ablation_from_one_reference_prompt_equals_the_reference(tmp_path, tiny):
    """`resample from Ref` with one reference prompt: every ablated activation is that prompt's."""
    spec = write_spec(tmp_path, tiny, MIXED, "resample from Ref", ref_pairs=1, expect=EXPECT_ALL)
    ref = Reference(tiny, spec)
    assert ref.ref_ids.shape[0] == 1
    values = ref.record(ref.ref_ids)  # [1, seq, ...]: broadcast to every evaluated prompt
    want = reference_scores(ref, values, at_end(MIXED_GROUPS, ref.ids.shape[1]), all_nodes(True, True))
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "minimality(b)", "minimality(m)", "completeness"))


def test_resample_ablation_pairs_each_prompt_with_its_drawn_reference_prompt(tmp_path, tiny):
    """Eight reference prompts: the seeded draw (which reference prompt each evaluated prompt
    takes) is causalspec's, read from its ablation; the activations and scores are computed here."""
    from causalspec.claims.circuit import prepare
    from causalspec.claims.runner import CheckOptions, NetworkCache

    spec = write_spec(tmp_path, tiny, MIXED, "resample from Ref", ref_pairs=8, expect=EXPECT_ALL)
    ir = load(spec)
    _, _, ablation, _, _ = prepare(ir, ir.circuits["C"], CheckOptions(pairs=PAIRS), NetworkCache())
    mapping = torch.as_tensor(ablation.mapping)
    assert len(set(mapping.tolist())) > 1  # several reference prompts are used
    ref = Reference(tiny, spec)
    assert ref.ref_ids is not None
    values = ref.record(ref.ref_ids[mapping])  # [n, seq, ...]: row i takes reference prompt mapping[i]
    want = reference_scores(ref, values, at_end(MIXED_GROUPS, ref.ids.shape[1]), all_nodes(True, True))
    means = reference_scores(ref, mean_values(ref), at_end(MIXED_GROUPS, ref.ids.shape[1]), all_nodes(True, True))
    assert want["m(E)"] != pytest.approx(means["m(E)"], abs=1e-3)  # resampling is not the mean here
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "completeness"))


HEADS_ONLY = "group a = head[0.1], head[1.2]\n  group b = head[1.0], head[0.3]"
HEADS_GROUPS = {"a": {("h", 0, 1): None, ("h", 1, 2): None}, "b": {("h", 1, 0): None, ("h", 0, 3): None}}


@pytest.mark.parametrize("convention", ["", "convention mib"])
def test_heads_only_circuit_mlps_kept_by_default_and_ablated_under_mib(tmp_path, tiny, convention):
    """A circuit of heads: the default keeps every MLP as a wire (Wang et al.), `convention mib`
    ablates the MLPs outside the circuit too (MIB's graph), with mean ablation."""
    spec = write_spec(tmp_path, tiny, HEADS_ONLY + ("\n  " + convention if convention else ""), "mean over Ref",
                      expect="faithfulness >= 0.0 and minimality(a) >= 0.0 and completeness >= 0.0")
    ref = Reference(tiny, spec)
    values = mean_values(ref)
    want = reference_scores(ref, values, HEADS_GROUPS, all_nodes(True, bool(convention)))
    other = reference_scores(ref, values, HEADS_GROUPS, all_nodes(True, not convention))
    assert want["m(C)"] != pytest.approx(other["m(C)"], abs=1e-3)  # the convention matters here
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "completeness"))


def test_the_whole_model_scores_one_and_nothing_kept_scores_zero(tmp_path, tiny):
    """Normalisation's fixed points: a circuit of every node has faithfulness 1; with one group,
    knocking it out leaves nothing (C∖g = ∅), so necessity(g) = n(C) − n(∅) = faithfulness."""
    every = ", ".join([f"head[{L}.{h}]" for L in range(LAYERS) for h in range(HEADS)] +
                      [f"mlp[{L}]" for L in range(LAYERS)])
    spec = write_spec(tmp_path, tiny, f"group all = {every}", "mean over Ref",
                      expect="faithfulness >= 0.999 and necessity(all) >= 0.999 and completeness >= 0.999")
    got = reported(check_json(spec))
    assert got["faithfulness"] == pytest.approx(1.0, abs=TOL)
    assert got["necessity(all)"] == pytest.approx(1.0, abs=TOL)  # n(N) − n(∅) = 1 − 0
    assert got["m(C)"] == pytest.approx(got["m(N)"], abs=TOL)
    one = write_spec(tmp_path, tiny, "group a = head[0.1], head[1.2]", "mean over Ref",
                     expect="faithfulness >= 0.0 and necessity(a) >= 0.0")
    got = reported(check_json(one))
    assert got["necessity(a)"] == pytest.approx(got["faithfulness"], abs=TOL)  # n(C∖a) = n(∅) = 0


def test_signs_minimality_and_necessity_are_unchanged_when_the_metric_is_flipped(tmp_path, tiny):
    """logit_diff(C, B) = −logit_diff(B, C): the effect changes sign, the scores must not, and
    minimality picks the least necessary node in normalised units (docs/language.md §8.3)."""
    body = "group a = head[0.1], head[1.2], head[0.3]\n  group m = mlp[0]"
    expect = "faithfulness >= 0.0 and minimality(a) >= 0.0 and necessity(a) >= 0.0 and completeness >= 0.0"
    up = reported(check_json(write_spec(tmp_path, tiny, body, "mean over Ref", expect=expect)))
    spec = write_spec(tmp_path, tiny, body, "mean over Ref", expect=expect, metric="logit_diff(C, B) @ END")
    down = reported(check_json(spec))
    ref = Reference(tiny, spec)
    values = mean_values(ref)
    groups = {"a": {("h", 0, 1): None, ("h", 1, 2): None, ("h", 0, 3): None}, "m": {("m", 0): None}}
    want = reference_scores(ref, values, groups, all_nodes(True, True))  # logit_diff(B, C)
    assert (down["m(N)"] - down["m(E)"]) * (want["m(N)"] - want["m(E)"]) < 0
    for key in ("faithfulness", "necessity(a)", "necessity(m)", "minimality(a)", "completeness"):
        assert up[key] == pytest.approx(want[key], abs=TOL), key
        assert down[key] == pytest.approx(want[key], abs=TOL), key


def test_a_circuit_missing_the_load_bearing_head_fails_faithfulness(tmp_path, toy):
    """On the hand-built induction toy, without the induction head 1.0 the circuit keeps none
    of the effect: faithfulness (as computed here) is far below the threshold, and the check fails."""
    spec = write_spec(tmp_path, toy, "group prev = head[0.0]\n  group d = head[1.1]", "mean over Ref",
                      expect="faithfulness >= 0.8")
    ref = Reference(toy, spec)
    groups = {"prev": {("h", 0, 0): None}, "d": {("h", 1, 1): None}}
    want = reference_scores(ref, mean_values(ref), groups, all_nodes(True, False))
    assert want["m(N)"] - want["m(E)"] > 5 and want["faithfulness"] < 0.2
    result = check_json(spec)
    assert result["status"] == "failed"
    compare(reported(result), want)
    good = write_spec(tmp_path, toy, "group prev = head[0.0]\n  group ind = head[1.0]", "mean over Ref",
                      expect="faithfulness >= 0.8")
    assert check_json(good)["status"] == "passed"


EDGE_BODY = ("group a = head[0.1]\n  group m = mlp[0]\n  group b = head[1.0], head[1.3] @ END\n  granularity edge\n"
             "  edges { a -> m; a -> b.v; m -> b.k; b -> logits; m -> logits }")


def edge_set(groups: dict[str, dict[Node, object]], spec_edges: list[tuple[str, str]]) -> set:
    """Group edges `g -> h[.port]` expanded to (node, receiver) pairs."""
    out = set()
    for src, dst in spec_edges:
        name, _, port = dst.partition(".")
        for u in groups[src]:
            if name == "logits":
                out.add((u, ("logits",)))
                continue
            for v in groups[name]:
                receivers = [("m", v[1])] if v[0] == "m" else [("h", *v[1:], p) for p in (port or "qkv")]
                out.update((u, r) for r in receivers)
    return out


def test_edge_granularity_necessity_minimality_and_completeness_equal_the_reference(tmp_path, tiny):
    """Path patching with mean ablation: every score of an edge circuit (heads, an MLP, a group
    at one position, a q/k/v-specific edge, a sender without a direct edge to the logits)."""
    spec = write_spec(tmp_path, tiny, EDGE_BODY, "mean over Ref",
                      expect="faithfulness >= 0.0 and minimality(b) >= 0.0 and completeness >= 0.0")
    ref = Reference(tiny, spec)
    values = mean_values(ref)
    seq = ref.ids.shape[1]
    groups: dict[str, dict[Node, list[int] | None]] = {
        "a": {("h", 0, 1): None}, "m": {("m", 0): None}, "b": {("h", 1, 0): [seq - 1], ("h", 1, 3): [seq - 1]}}
    edges = edge_set(groups, [("a", "m"), ("a", "b.v"), ("m", "b.k"), ("b", "logits"), ("m", "logits")])
    universe = all_nodes(True, True)

    def circuit_without(removed: set) -> float:
        members = {n: g for g, nodes in groups.items() for n in nodes if n not in removed}
        abl: dict[Node, list[int] | None] = {}
        for n in universe:
            pos = next((nodes[n] for nodes in groups.values() if n in nodes), "outside")
            if n not in members:
                abl[n] = None
            elif pos is not None and pos != "outside":
                abl[n] = [p for p in range(seq) if p not in pos]
        return edge_metric(ref, abl, values, members, edges)

    m_n, m_e = ref.metric({}, values), ref.metric({n: None for n in universe}, values)
    m_c = circuit_without(set())
    node_level = ref.metric({n: None for n in universe if not any(n in g for g in groups.values())}
                            | {("h", 1, 0): list(range(seq - 1)), ("h", 1, 3): list(range(seq - 1))}, values)
    assert abs(m_c - node_level) > 1e-2  # the cut edges matter: edge and node granularity differ here
    want = edge_scores(ref, values, groups, circuit_without, m_n, m_c, m_e)
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(b)", "completeness", "necessity(a)", "necessity(m)"))


@pytest.mark.parametrize("ablation", ["resample from Ref", "zero"])
def test_edge_granularity_with_the_input_routed_equals_the_reference(tmp_path, tiny, ablation):
    """Resample or zero ablation, path patching, `embed` edges (an input without an edge from
    `embed` sees the resampled prompt's embeddings, or none: the default convention's zero
    ablation removes token and position embeddings) and MLPs kept as wires (heads only)."""
    from causalspec.claims.circuit import prepare
    from causalspec.claims.runner import CheckOptions, NetworkCache

    body = ("group a = head[0.1], head[0.2]\n  group b = head[1.0] @ END\n  mlps kept\n  granularity edge\n"
            "  edges { embed -> a; embed -> b.q; a -> b.k; a -> logits; b -> logits }")
    spec = write_spec(tmp_path, tiny, body, ablation,
                      expect="faithfulness >= 0.0 and minimality(a) >= 0.0 and completeness >= 0.0")
    ir = load(spec)
    ref = Reference(tiny, spec)
    if ablation == "zero":
        values = {n: torch.zeros_like(v) for n, v in ref.record(ref.ids[:1]).items()}
    else:
        _, _, resample, _, _ = prepare(ir, ir.circuits["C"], CheckOptions(pairs=PAIRS), NetworkCache())
        assert ref.ref_ids is not None
        values = ref.record(ref.ref_ids[torch.as_tensor(resample.mapping)])
    embed = ref.record(ref.ids)[EMBED] - values[EMBED]  # actual − resampled input
    seq = ref.ids.shape[1]
    groups: dict[str, dict[Node, list[int] | None]] = {"a": {("h", 0, 1): None, ("h", 0, 2): None},
                                                         "b": {("h", 1, 0): [seq - 1]}}
    edges = edge_set({**groups, "embed": {EMBED: None}},
                     [("embed", "a"), ("embed", "b.q"), ("a", "b.k"), ("a", "logits"), ("b", "logits")])
    universe = all_nodes(True, False)

    def circuit_without(removed: set) -> float:
        members = {n: g for g, nodes in groups.items() for n in nodes if n not in removed}
        abl: dict[Node, list[int] | None] = {n: None for n in universe if n not in members}
        abl[("h", 1, 0)] = None if ("h", 1, 0) not in members else list(range(seq - 1))
        return edge_metric(ref, abl, values, members, edges, embed)

    m_n, m_e = ref.metric({}, values), ref.metric({n: None for n in universe}, values)
    # ∅ at edge granularity also cuts the routed input: every receiver sees the resampled embeddings
    m_e = edge_metric(ref, {n: None for n in universe}, values, {}, set(), embed)
    m_c = circuit_without(set())
    unrouted = {n: g for g, nodes in groups.items() for n in nodes}
    abl_c = {n: None for n in universe if n not in unrouted} | {("h", 1, 0): list(range(seq - 1))}
    assert abs(m_c - edge_metric(ref, abl_c, values, unrouted, edges)) > 1e-2  # routing the input matters here
    want = edge_scores(ref, values, groups, circuit_without, m_n, m_c, m_e)
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "completeness", "necessity(b)"))


class ByLength:
    """Prompts of several token counts: one `Reference` per count (no padding anywhere), and
    the metric's mean over all prompts weighted by how many each count has. `values` is one
    dict for every count, or `per_part` gives each count its own (resampled activations)."""

    def __init__(self, parts: list[Reference], per_part: list[dict] | None = None):
        self.parts, self.per_part = parts, per_part
        self.ids = parts[0].ids  # reference_scores reads only the positions of "END" groups from it

    def metric(self, ablate, values) -> float:
        n = sum(len(p.ids) for p in self.parts)
        vals = self.per_part or [values] * len(self.parts)
        return sum(p.metric(ablate, v) * len(p.ids) for p, v in zip(self.parts, vals)) / n


VAR_NAMES = ("Mary", "John", "Anna Lee", "Paul", "Lisa Lee", "Tom")
VAR_GROUPS = {"a": {("h", 0, 1): None, ("h", 1, 2): None}, "b": {("h", 1, 0): "END"}, "m": {("m", 0): None}}


def var_length(tmp_path: Path, ablation: str):
    """Two-word names make prompts of 5 to 8 tokens. Returns the spec, a `Reference` (model
    and hooks), the evaluated prompts as (ids, B's first token, C's) and the reference prompts."""
    from transformers import AutoTokenizer

    tok = build_word_tokenizer([FILLER, *(w for n in VAR_NAMES for w in n.split())])
    model_dir = tmp_path / "var"
    build_tiny_model("gpt2", None, model_dir, seed=2, tokenizer=tok, n_layer=LAYERS, n_head=HEADS,
                     initializer_range=1.0)
    header = spec_header(model_dir, ref_pairs=16).replace(", ".join(NAMES), ", ".join(
        f'"{n}"' if " " in n else n for n in VAR_NAMES))
    spec = tmp_path / "var.cspec"
    spec.write_text(header + f"""
circuit C on toy for Induction.answer {{
  {MIXED}
  ablate complement with {ablation}
  metric logit_diff(B, C) @ END
  pairs {PAIRS}
  expect {EXPECT_ALL}
}}
""")
    tok = AutoTokenizer.from_pretrained(model_dir)
    ir = load(spec)
    plan = compile_circuit(ir, ir.circuits["C"], PAIRS, 0)
    assert plan.reference is not None

    def prompts(rows):
        return [(tok(TEMPLATE.format(A=VAR_NAMES[int(a)], B=VAR_NAMES[int(b)], C=VAR_NAMES[int(c)]))["input_ids"],
                 tok(VAR_NAMES[int(b)])["input_ids"][0], tok(VAR_NAMES[int(c)])["input_ids"][0])
                for a, b, c in zip(rows["A"], rows["B"], rows["C"])]

    evaluated, reference = prompts(plan.rows), prompts(plan.reference.rows)
    assert len({len(ids) for ids, _, _ in evaluated}) > 1 and len({len(ids) for ids, _, _ in reference}) > 1
    return spec, Reference(model_dir, spec), evaluated, reference


def parts_by_length(base: Reference, evaluated: list) -> tuple[list[Reference], list[list[int]]]:
    """One `Reference` per token count of the evaluated prompts, and each one's row indices."""
    parts, rows_of = [], []
    for length in sorted({len(ids) for ids, _, _ in evaluated}):
        rows = [i for i, (ids, _, _) in enumerate(evaluated) if len(ids) == length]
        part = Reference.__new__(Reference)
        part.model, part.hd = base.model, base.hd
        part.ids = torch.tensor([evaluated[i][0] for i in rows])
        part.b, part.c = torch.tensor([evaluated[i][1] for i in rows]), torch.tensor([evaluated[i][2] for i in rows])
        parts.append(part)
        rows_of.append(rows)
    return parts, rows_of


def test_mean_ablation_over_prompts_of_different_lengths_equals_the_reference(tmp_path):
    """causalspec pads the batch (right) and averages position p over the reference prompts
    that have a token there (docs §8.3); here every prompt runs alone, unpadded, and the
    means are taken prompt by prompt."""
    spec, base, evaluated, reference = var_length(tmp_path, "mean over Ref")
    parts, _ = parts_by_length(base, evaluated)
    longest = max(len(ids) for ids, _, _ in evaluated)
    acts = [base.record(torch.tensor([ids])) for ids, _, _ in reference]  # each prompt alone
    values = {}
    for node in acts[0]:
        per_pos = []
        for p in range(longest):
            have = [a[node][0, p] for a in acts if a[node].shape[1] > p]
            per_pos.append(torch.stack(have).mean(0) if have else torch.cat([a[node][0] for a in acts]).mean(0))
        values[node] = torch.stack(per_pos)[None]  # [1, longest, width]
    want = reference_scores(ByLength(parts), values, VAR_GROUPS, all_nodes(True, True))
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "minimality(b)", "minimality(m)", "completeness"))


def test_resample_over_prompts_of_different_lengths_takes_a_prompt_of_the_same_length(tmp_path):
    """Each evaluated prompt takes its activations from a reference prompt with the same token
    count (the draw is causalspec's, read from its ablation; checked to keep lengths); the
    activations come from that prompt run alone here."""
    from causalspec.claims.circuit import prepare
    from causalspec.claims.runner import CheckOptions, NetworkCache

    spec, base, evaluated, reference = var_length(tmp_path, "resample from Ref")
    ir = load(spec)
    _, _, ablation, _, _ = prepare(ir, ir.circuits["C"], CheckOptions(pairs=PAIRS), NetworkCache())
    mapping = [int(j) for j in ablation.mapping]
    assert all(len(reference[j][0]) == len(evaluated[i][0]) for i, j in enumerate(mapping))
    parts, rows_of = parts_by_length(base, evaluated)
    per_part = [base.record(torch.tensor([reference[mapping[i]][0] for i in rows])) for rows in rows_of]
    want = reference_scores(ByLength(parts, per_part), {}, VAR_GROUPS, all_nodes(True, True))
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    compare(reported(result), want, ("minimality(a)", "minimality(b)", "minimality(m)", "completeness"))


def test_mib_convention_at_edge_granularity_with_mean_ablation_equals_the_reference(tmp_path, tiny):
    """`convention mib`, path patching, mean ablation (EAP-IG `mean-positional`): inputs without an
    edge from `embed` (b's k and v, the logits) see the mean token embedding; a0.h1 has no direct
    edge to the logits; every node receives an edge, so nothing is pruned."""
    body = ("group a = head[0.1]\n  group m = mlp[0]\n  group b = head[1.0] @ END\n  convention mib\n"
            "  granularity edge\n  edges { embed -> a; embed -> m; a -> m; a -> b.v; m -> b.k; embed -> b.q; "
            "b -> logits; m -> logits }")
    spec = write_spec(tmp_path, tiny, body, "mean over Ref",
                      expect="faithfulness >= 0.0 and minimality(a) >= 0.0 and completeness >= 0.0")
    ref = Reference(tiny, spec)
    values = mean_values(ref)
    embed = ref.record(ref.ids)[EMBED] - values[EMBED]  # = token embedding − its per-position mean
    seq = ref.ids.shape[1]
    groups: dict[str, dict[Node, list[int] | None]] = {"a": {("h", 0, 1): None}, "m": {("m", 0): None},
                                                         "b": {("h", 1, 0): [seq - 1]}}
    edges = edge_set({**groups, "embed": {EMBED: None}},
                     [("embed", "a"), ("embed", "m"), ("a", "m"), ("a", "b.v"), ("m", "b.k"), ("embed", "b.q"),
                      ("b", "logits"), ("m", "logits")])
    universe = all_nodes(True, True)

    def circuit_without(removed: set) -> float:
        members = {n: g for g, nodes in groups.items() for n in nodes if n not in removed}
        abl: dict[Node, list[int] | None] = {n: None for n in universe if n not in members}
        if ("h", 1, 0) in members:
            abl[("h", 1, 0)] = list(range(seq - 1))
        return edge_metric(ref, abl, values, members, edges, embed)

    m_n = ref.metric({}, values)
    m_e = edge_metric(ref, {n: None for n in universe}, values, {}, set(), embed)
    m_c = circuit_without(set())
    want = edge_scores(ref, values, groups, circuit_without, m_n, m_c, m_e)
    result = check_json(spec)
    assert result["status"] in ("passed", "failed"), result.get("reason")
    assert result["circuit"]["convention"]["name"] == "mib"
    compare(reported(result), want, ("minimality(a)", "completeness", "necessity(m)", "necessity(b)"))


def test_the_resample_draw_derives_from_the_run_seed_alone(tmp_path, tiny):
    """Which reference prompt each evaluated prompt takes is a draw of the run (its effective
    seed), not of `dataset seed + run seed`: under the sum, `Ref seed 2` at --seed 0 drew what
    `Ref seed 1` at --seed 1 did. The toy's prompts all have one length, so the mapping is the
    draw itself."""
    from causalspec.claims.circuit import prepare
    from causalspec.claims.runner import CheckOptions, NetworkCache

    def mapping(ref_seed: int, seed: int) -> list[int]:
        spec = write_spec(tmp_path, tiny, MIXED, "resample from Ref", ref_pairs=8, expect=EXPECT_ALL)
        spec.write_text(spec.read_text().replace("  seed 1\n", f"  seed {ref_seed}\n"))
        ir = load(spec)
        _, _, ablation, _, _ = prepare(ir, ir.circuits["C"], CheckOptions(pairs=PAIRS, seed=seed), NetworkCache())
        return [int(j) for j in ablation.mapping]

    assert mapping(2, 0) == mapping(1, 0)  # the dataset's seed draws its prompts, not the mapping
    assert mapping(2, 0) != mapping(1, 1)  # a new run seed, a new draw
