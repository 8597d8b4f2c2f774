"""Static analysis of networks, encodings, alignments, checks, circuits and datasets.

A full valid spec analyses to the expected IR; each small invalid spec reports its first
diagnostic with the expected (code, line, column) — and nothing else, so one mistake never
cascades into a wall of follow-on errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load, load_text
from causalspec.semantics.ir import AlignmentIR, CheckIR, CircuitIR, DatasetIR, NetworkIR
from causalspec.semantics.templates import Placeholder, scan_template
from causalspec.semantics.featurizers import (Boundless, FixedBasis, Identity, LearnedDAS, Slice)
from causalspec.semantics.sites import ALL, LAST, PositionSpec, SiteSpec

SPECS = Path(__file__).parent / "specs"


# ───────────────────────── the full valid spec ─────────────────────────

@pytest.fixture(scope="module")
def full():
    return load(SPECS / "full.cspec")


def test_full_network(full):
    net = full.networks["gpt2"]
    assert isinstance(net, NetworkIR)
    assert (net.framework, net.source, net.model_class, net.dtype, net.device) == \
        ("hf", "models/gpt2", "causal_lm", "float32", "cuda:0")
    assert net.encode is None and net.trust_remote_code is False
    enc = net.encoding
    assert enc.prompt.by == "order"
    assert [c.key for c in enc.prompt.cases] == ["ABB", "BAB"]
    abb = enc.prompt.select({"order": "ABB"})
    assert abb.placeholders == ("IO", "S", "S")
    assert enc.answer.template.placeholders == ("answer",) and enc.answer.tokens == "first"
    pos = enc.positions
    assert pos["S1"] == PositionSpec("slot", slot="S", occurrence=1, part="last")  # the defaults
    assert pos["S2"] == PositionSpec("slot", slot="S", occurrence=2, part="first")
    assert pos["S2n"] == PositionSpec("offset", base=pos["S2"], offset=1)
    assert pos["END"] == LAST and pos["BOS"] == PositionSpec("index", index=0)
    assert pos["MID"] == PositionSpec("range", lo=2, hi=4)
    assert pos["S2n"].name == "S2n" and pos["S2n"].needs_template


def test_full_alignment(full):
    al = full.alignments["IOIPos"]
    assert isinstance(al, AlignmentIR)
    assert (al.model, al.network, al.output, al.decoder) == ("IOI", "gpt2", "answer", "answer")
    assert list(al.variables) == ["dup", "S", "IO"]
    dup = al.variables["dup"]
    assert dup[0].site == SiteSpec("resid.post", 9)
    assert dup[0].positions == (LAST,)
    assert dup[0].featurizer == LearnedDAS(2)
    assert dup[1].site == SiteSpec("head.z", 9, 9)
    assert [p.name for p in dup[1].positions] == ["S2", "S2n"]
    assert dup[1].featurizer == Slice(0, 32)
    s = al.variables["S"]
    assert s[1].site == SiteSpec("module", module_path="transformer.h.3.mlp", module_io="output")
    assert s[1].featurizer == Identity()
    assert al.variables["IO"][0].site == SiteSpec("head.q", 7, 3)
    assert al.learned


def test_full_checks(full):
    first, aaa = full.checks
    assert isinstance(first, CheckIR)
    assert first.name == "IOIPos" and first.alignment == "IOIPos"
    assert first.interchange == ((("dup",),), (("dup", "S"),), (("dup",), ("IO",)))
    assert (first.pairs, first.seed, first.pool, first.batch) == (512, 7, None, 16)
    iia, ctl = first.conditions
    assert (iia.metric, iia.op, iia.threshold, iia.statistic, iia.aggregation) == ("iia", ">=", 0.8, "lower95", "each")
    assert (ctl.metric, ctl.arg, ctl.op, ctl.statistic) == ("control", "random_init", "<=", "point")
    # a control named in `expect` runs even if `controls` does not list it
    assert first.controls == ("random_subspace", "heldout", "random_init")
    assert aaa.name == "IOIPosAAA" and aaa.interchange_default
    assert (aaa.pairs, aaa.pool, aaa.batch) == (1024, 64, 64)
    assert len(aaa.interchange) == 7 and (("dup", "S", "IO"),) in aaa.interchange
    assert aaa.conditions[0].aggregation == "mean"


def test_full_circuit_and_dataset(full):
    ds = full.datasets["ABCRef"]
    assert isinstance(ds, DatasetIR)
    assert (ds.model, ds.pairs, ds.seed) == ("ABC", 200, 3)
    assert ds.prompt.template.placeholders == ("A", "B", "C")
    c = full.circuits["IOICircuit"]
    assert isinstance(c, CircuitIR)
    assert (c.network, c.model, c.output, c.granularity) == ("gpt2", "IOI", "answer", "edge")
    assert list(c.groups) == ["mover", "inhib", "early"]
    assert c.groups["mover"].nodes == (SiteSpec("head", 9, 9), SiteSpec("head", 9, 6), SiteSpec("head", 10, 0))
    assert c.groups["mover"].positions == (LAST,)
    assert c.groups["early"].nodes == (SiteSpec("mlp", 0), SiteSpec("attn", 1), SiteSpec("embed"))
    assert c.groups["early"].positions == (ALL,)
    assert [(e.src, e.dst, e.port) for e in c.edges] == [
        ("early", "inhib", None), ("inhib", "mover", "q"), ("mover", "logits", None), ("embed", "early", None)]
    assert (c.ablation.kind, c.ablation.dataset) == ("mean", "ABCRef")
    assert c.metric.name == "logit_diff" and [a.value for a in c.metric.args] == ["IO", "S"]
    assert [(k.metric, k.arg, k.aggregation) for k in c.conditions] == [
        ("faithfulness", None, "each"), ("necessity", "mover", "mean"), ("minimality", "inhib", "each")]


# ───────────────────────── templates and featurizer maps ─────────────────────────

def test_template_scanner_escapes_and_render():
    parts, errors = scan_template("{{x}} {A} and {B}}}")
    assert errors == []
    assert parts == ("{x} ", Placeholder("A", 6, 9), " and ", Placeholder("B", 14, 17), "}")
    _, errors = scan_template("a {A")
    assert errors and errors[0][2].startswith("unclosed")
    _, errors = scan_template("a } b")
    assert errors and errors[0][2].startswith("unmatched")


def test_template_render_offsets(full):
    t = full.networks["gpt2"].encoding.prompt.select({"order": "BAB"})
    r = t.render({"IO": "Mary", "S": "John", "order": "BAB"})
    assert r.text == "When John and Mary went to the store, John gave a drink to"
    s2 = r.slot("S", 2)
    assert r.text[s2.start:s2.end] == "John" and s2.start == 38


def test_basis_file_and_hooks_resolve(tmp_path):
    (tmp_path / "m.py").write_text("def build(): ...\ndef encode(x): ...\n")
    (tmp_path / "b.safetensors").write_bytes(b"")
    (tmp_path / "w.safetensors").write_bytes(b"")  # analysis checks that it exists, not what it holds
    text = MODEL + """network t = torch "m.py:build" weights "w.safetensors" {
  encode "m.py:encode"
}
align M to t as T {
  O -> output
  C -> module "layers.0" output : basis("b.safetensors", key="W")
  A -> module "layers.0" input : boundless(temperature_end=0.5)
}
check T { interchange C expect iia >= 0.9 }
"""
    ir = load_text(text, "t.cspec", base_dir=tmp_path)
    net = ir.networks["t"]
    assert net.builder.function == "build" and net.builder.path == tmp_path / "m.py"
    assert net.weights == "w.safetensors" and net.weights_path == tmp_path / "w.safetensors"
    assert net.encode.function == "encode"
    al = ir.alignments["T"]
    assert al.decoder == "argmax"
    feat = al.variables["C"][0].featurizer
    assert isinstance(feat, FixedBasis) and feat.key == "W" and feat.resolved == tmp_path / "b.safetensors"
    assert al.variables["A"][0].featurizer == Boundless(50.0, 0.5)
    assert al.variables["C"][0].positions == (ALL,)


# ───────────────────────── invalid specs ─────────────────────────

MODEL = """model M {
  input A, B : int 0..3 ~ uniform
  input order : enum {AB, BA} ~ uniform
  var C : bool = A == B
  output O : bool = C
}
"""

# A valid spec; every case below changes one thing in it (line numbers stay put).
BASE = MODEL + """network n = hf "m" {
  prompt "x {A} y {B} z {A}"
  answer " {O}"
  position P = slot(A, 2)
  position END = last
}
align M to n as Al {
  O -> output
  C -> resid.post[3] @ END
  A -> head[1.2].z @ P : [0:4]
}
check Al {
  interchange C, {C, A}
  expect iia >= 0.9
}
dataset D from M {
  prompt "x {A} y {B} z {A}"
  pairs 10
}
circuit Ci on n for M.O {
  group g = head[1.2], head[1.3] @ END
  group h = mlp[0]
  edges { h -> g.q; g -> logits }
  ablate complement with mean over D
  metric accuracy @ END
  expect faithfulness >= 0.8
}
"""

TORCH = """network t = torch "m.py:build" weights "w.safetensors" {
  encode "m.py:encode"
}
align M to t as T {
  O -> output
  C -> module "layers.0" output : [0:8]
}
"""


def test_base_is_valid(tmp_path):
    ir = load_text(BASE, "t.cspec", base_dir=tmp_path)
    assert set(ir.alignments) == {"Al"} and len(ir.checks) == 1 and set(ir.circuits) == {"Ci"}


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


PROMPT_BY = """prompt by order {
    AB: "x {A} y {B} z {A}"
    BA: "x {B} y {A} z {A}"
  }"""

CASES = [
    # ── sites ──
    ("site-unknown-name", edit("resid.post[3]", "resid.posst[3]"), "E0601", 15, 8),
    ("site-missing-layer", edit("resid.post[3]", "resid.post"), "E0602", 15, 8),
    ("site-float-layer", edit("resid.post[3]", "resid.post[3.1]"), "E0602", 15, 8),
    ("site-head-without-head-index", edit("head[1.2].z", "head[9].z"), "E0602", 16, 8),
    ("site-embed-index", edit("resid.post[3]", "embed[2]"), "E0602", 15, 8),
    ("site-head-unknown-part", edit("head[1.2].z", "head[9.9].x"), "E0601", 16, 8),
    ("site-head-without-part", edit("head[1.2].z", "head[1.2]"), "E0601", 16, 8),
    ("site-head-part-first", edit("head[1.2].z", "head.z[1.2]"), "E0601", 16, 8),
    ("site-node-in-alignment", edit("resid.post[3]", "mlp[3]"), "E0601", 15, 8),
    # ── featurizers ──
    ("slice-reversed", edit("[0:4]", "[4:4]"), "E0605", 16, 24),
    ("featurizer-unknown", edit("[0:4]", "dass(k=1)"), "E0603", 16, 26),
    ("das-k-zero", edit("[0:4]", "das(k=0)"), "E0604", 16, 30),
    ("das-unknown-arg", edit("[0:4]", "das(j=1)"), "E0604", 16, 30),
    ("basis-missing-file", edit("[0:4]", 'basis("nope.safetensors")'), "E0801", 16, 32),
    ("das-on-logits", edit("resid.post[3] @ END", "logits @ END : das"), "E0612", 15, 21),
    # ── networks and encodings ──
    ("network-duplicate", BASE + 'network n = hf "other"\n', "E0201", 34, 9),
    ("dtype-unknown", edit('answer " {O}"', 'answer " {O}" dtype fp16'), "E0610", 9, 17),
    ("device-unknown", edit('answer " {O}"', 'answer " {O}" device gpu'), "E0610", 9, 17),
    ("dtype-twice", edit('answer " {O}"', 'answer " {O}" dtype float32 dtype float16'), "E0610", 9, 31),
    ("prompt-unknown-slot", edit('prompt "x {A} y {B} z {A}"\n  answer', 'prompt "x {A} y {Bb} z {A}"\n  answer'),
     "E0606", 8, 19),
    ("prompt-unclosed-brace", edit('prompt "x {A} y {B} z {A}"\n  answer', 'prompt "x {A} y {B z {A}"\n  answer'),
     "E0606", 8, 19),
    ("answer-not-the-output", edit('answer " {O}"', 'answer " {C}"'), "E0606", 9, 12),
    ("prompt-by-case-outside-domain", edit('prompt "x {A} y {B} z {A}"\n  answer',
                                           PROMPT_BY.replace("  }", '    BB: "{A}{A}"\n  }') + "\n  answer"),
     "E0303", 11, 5),
    ("prompt-by-case-missing", edit('prompt "x {A} y {B} z {A}"\n  answer',
                                    PROMPT_BY.replace('    BA: "x {B} y {A} z {A}"\n', "") + "\n  answer"),
     "E0607", 8, 13),
    ("slot-too-few-occurrences", edit("slot(A, 2)", "slot(B, 2)"), "E0611", 10, 16),
    ("slot-not-a-placeholder", edit("slot(A, 2)", "slot(Q)"), "E0611", 10, 16),
    ("offset-unknown-base", edit("position END = last", "position END = LAST + 1"), "E0212", 11, 18),
    ("site-unknown-position", edit("resid.post[3] @ END", "resid.post[3] @ ENDD"), "E0212", 15, 24),
    ("position-cycle", edit("position END = last", "position END = END + 1"), "E0611", 11, 12),
    ("position-duplicate", edit("position END = last", "position END = last position P = 0"), "E0201", 11, 32),
    ("template-escapes-fall-back-to-statement",
     edit('prompt "x {A} y {B} z {A}"\n  answer', 'prompt "x \\"{A}\\" {Bb} {B} {A}"\n  answer'), "E0606", 8, 3),
    ("prompt-case-unknown-slot", edit('prompt "x {A} y {B} z {A}"\n  answer',
                                      PROMPT_BY.replace("BA: \"x {B}", "BA: \"x {Q}") + "\n  answer"),
     "E0606", 10, 5),
    ("hf-prompt-and-encode", edit('answer " {O}"', 'answer " {O}" encode "m.py:encode"'), "E0610", 9, 17),
    ("hf-without-prompt-or-encode",
     edit('  prompt "x {A} y {B} z {A}"\n  answer', '  answer').replace("slot(A, 2)", "0"),
     "E0610", 7, 9),
    ("hook-not-python", edit('answer " {O}"', 'answer " {O}" decode "m.txt:dec"'), "E0610", 9, 24),
    ("torch-builder-no-function", TORCH.replace("m.py:build", "m.py"), "E0610", 1, 13),
    ("torch-builder-missing-file", TORCH.replace("m.py:build", "x.py:build"), "E0801", 1, 13),
    ("torch-needs-encode", TORCH.replace('  encode "m.py:encode"\n', ""), "E0610", 1, 9),
    ("torch-class", TORCH.replace("  encode", "  class causal_lm\n  encode"), "E0610", 2, 3),
    ("torch-slot-position", TORCH.replace("  encode", "  position P = slot(A)\n  encode"), "E0611", 2, 16),
    # ── alignments ──
    ("align-unknown-model", edit("align M to n", "align MM to n"), "E0206", 13, 7),
    ("align-unknown-network", edit("align M to n", "align M to nn"), "E0207", 13, 12),
    ("align-unknown-variable", edit("  C -> resid", "  Cc -> resid"), "E0203", 15, 3),
    ("align-twice", edit("  A -> head", "  C -> head"), "E0608", 16, 3),
    ("align-overlap", edit("  A -> head[1.2].z @ P : [0:4]", "  A -> resid.post[3] @ END : [0:4]"),
     "E0608", 16, 8),
    ("output-not-an-output", edit("O -> output", "B -> output"), "E0609", 14, 3),
    ("output-to-a-site", edit("  O -> output", "  O -> resid.post[4]"), "E0609", 14, 3),
    ("output-missing", edit("  O -> output\n", "  B -> embed\n"), "E0609", 13, 17),
    ("decoder-unknown", edit("O -> output", "O -> output : argmx"), "E0609", 14, 17),
    # ── checks ──
    ("check-unknown-alignment", BASE + "check Alx { interchange C expect iia >= 0.9 }\n", "E0208", 34, 7),
    ("check-duplicate-name", BASE + "check Al { interchange C expect iia >= 0.5 }\n", "E0705", 34, 7),
    ("interchange-unaligned", edit("interchange C, {C, A}", "interchange C, {C, B}"), "E0703", 19, 22),
    ("interchange-output", edit("interchange C, {C, A}", "interchange O"), "E0703", 19, 15),
    ("interchange-twice-in-set", edit("interchange C, {C, A}", "interchange {C | C}"), "E0201", 19, 20),
    ("pairs-zero", edit("expect iia >= 0.9", "pairs 0 expect iia >= 0.9"), "E0704", 20, 3),
    ("seed-twice", edit("expect iia >= 0.9", "seed 1 seed 2 expect iia >= 0.9"), "E0704", 20, 10),
    ("metric-unknown", edit("expect iia >= 0.9", "expect iaa >= 0.9"), "E0702", 20, 10),
    ("threshold-out-of-range", edit("expect iia >= 0.9", "expect iia >= 1.5"), "E0701", 20, 10),
    ("iia-upper-bound", edit("expect iia >= 0.9", "expect iia <= 0.9"), "E0702", 20, 10),
    ("control-lower-bound", edit("expect iia >= 0.9", "expect control(random_init) >= 0.1"), "E0702", 20, 10),
    ("modes-conflict", edit("expect iia >= 0.9", "expect iia >= 0.9 point lower95"), "E0709", 20, 10),
    ("control-unknown", edit("expect iia >= 0.9", "controls random_int expect iia >= 0.9"), "E0707", 20, 12),
    ("iia-with-argument", edit("expect iia >= 0.9", "expect iia(C) >= 0.9"), "E0702", 20, 14),
    ("aaa-with-aggregation", edit("expect iia >= 0.9", "expect aaa >= 0.9 each"), "E0709", 20, 10),
    ("control-lower95", edit("expect iia >= 0.9", "expect iia >= 0.9 and control(heldout) <= 0.2 lower95"),
     "E0709", 20, 25),
    ("interchange-set-twice", edit("interchange C, {C, A}", "interchange {A, C}, {C, A}"), "E0201", 19, 23),
    ("check-no-expect", edit("  expect iia >= 0.9\n", ""), "E0708", 18, 7),
    ("check-no-interchange", edit("  interchange C, {C, A}\n", ""), "E0708", 18, 7),
    # ── circuits ──
    ("circuit-unknown-dataset", edit("mean over D", "mean over DD"), "E0211", 30, 36),
    ("circuit-two-ablations", edit("  metric accuracy", "  ablate complement with zero\n  metric accuracy"),
     "E0710", 31, 3),
    ("circuit-no-ablation", edit("  ablate complement with mean over D\n", ""), "E0710", 26, 9),
    ("circuit-metric-arity", edit("metric accuracy", "metric logit_diff(O)"), "E0702", 31, 3),
    # logit_diff(A, B, …) takes up to 16: the correct answer against the best of 15 others
    ("circuit-metric-arity-many", edit("metric accuracy", "metric logit_diff(" + ", ".join(["O"] * 17) + ")"),
     "E0702", 31, 3),
    ("circuit-unknown-group", edit("faithfulness >= 0.8", "necessity(gg) >= 0.8"), "E0213", 32, 20),
    ("circuit-port-on-non-head-group", edit("h -> g.q", "g -> h.q"), "E0706", 29, 18),
    ("circuit-logits-node", edit("group h = mlp[0]", "group h = logits"), "E0706", 28, 13),
    ("circuit-unknown-node", edit("group h = mlp[0]", "group h = mlpp[0]"), "E0706", 28, 13),
    ("circuit-edge-granularity-without-edges",
     edit("  edges { h -> g.q; g -> logits }\n", "  granularity edge\n"), "E0706", 29, 3),
    ("circuit-edge-from-logits", edit("g -> logits", "logits -> g"), "E0706", 29, 21),
    ("circuit-edge-unknown-group", edit("g -> logits", "gg -> logits"), "E0213", 29, 21),
    ("circuit-port-on-source", edit("h -> g.q", "g.q -> h"), "E0706", 29, 13),
    ("circuit-group-twice", edit("group h = mlp[0]", "group g = mlp[0]").replace("h -> g.q", "g -> logits")
     .replace("; g -> logits }", " }"), "E0201", 28, 9),
    ("circuit-node-twice", edit("group h = mlp[0]", "group h = mlp[0], head[1.3]"), "E0706", 28, 21),
    ("circuit-metric-unknown-var", edit("metric accuracy", "metric logit_diff(O, Q)"), "E0203", 31, 24),
    ("circuit-for-non-output", edit("for M.O", "for M.C"), "E0609", 26, 23),
    ("circuit-threshold", edit("faithfulness >= 0.8", "faithfulness >= 80"), "E0701", 32, 10),
    ("circuit-unknown-claim", edit("faithfulness >= 0.8", "faithfullness >= 0.8"), "E0702", 32, 10),
    # ── datasets ──
    ("dataset-unknown-model", edit("dataset D from M", "dataset D from MM"), "E0206", 22, 16),
    ("dataset-unknown-slot", edit('prompt "x {A} y {B} z {A}"\n  pairs', 'prompt "x {A} y {Z} z {A}"\n  pairs'),
     "E0606", 23, 19),
    ("dataset-check-setting", edit("  pairs 10\n", "  pairs 10 batch 4\n"), "E0704", 24, 12),
    ("dataset-duplicate", BASE + "dataset D from M { pairs 3 }\n", "E0201", 34, 9),
]


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "m.py").write_text("def build(): ...\ndef encode(x): ...\n")
    (tmp_path / "w.safetensors").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("text,code,line,column", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid(text, code, line, column, spec_dir):
    if text.startswith("network t"):
        text = MODEL + text
        line += MODEL.count("\n")
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec", base_dir=spec_dir)
    diags = info.value.diagnostics
    first = diags[0]
    shown = [(d.code, d.span.line, d.span.column, d.message) for d in diags]
    assert (first.code, first.span.line, first.span.column) == (code, line, column), shown
    assert len(diags) == 1, shown  # one mistake, one diagnostic: no cascades


def test_many_errors_in_one_pass(spec_dir):
    text = edit("resid.post[3]", "resid.posst[3]", edit("expect iia >= 0.9", "expect iia >= 1.5"))
    text = edit("mean over D", "mean over DD", text)
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec", base_dir=spec_dir)
    assert [d.code for d in info.value.diagnostics] == ["E0601", "E0701", "E0211"]


def test_did_you_mean(spec_dir):
    cases = [
        (edit("resid.post[3]", "resid.posst[3]"), "resid.post[L]"),
        (edit("head[1.2].z", "head[9.9].x"), "q|k|v|z|result"),
        (edit("head[1.2].z", "head.z[1.2]"), "head[1.2].z"),
        (edit("[0:4]", "dass(k=1)"), "`das`"),
        (edit('answer " {O}"', 'answer " {O}" dtype fp16'), "`float16`"),
        (edit("resid.post[3] @ END", "resid.post[3] @ ENDD"), "`END`"),
        (edit("interchange C, {C, A}", "interchange Cc"), "`C`"),
        (edit("expect iia >= 0.9", "controls random_int expect iia >= 0.9"), "`random_init`"),
        (edit("align M to n", "align M to nn"), "`n`"),
        (edit("check Al {", "check Alx {"), "`Al`"),
        (edit("check Al {", "check Al as Al2 {") + "check Al { interchange C expect iia >= 0.9 }\n"
         "check Al { interchange A expect iia >= 0.9 }\n", "check Al as Al_2"),
    ]
    for text, hint in cases:
        with pytest.raises(SpecError) as info:
            load_text(text, "t.cspec", base_dir=spec_dir)
        d = info.value.diagnostics[0]
        assert hint in (d.help or "") + d.message, (d.code, d.message, d.help)


def test_prompt_by_missing_lists_values(spec_dir):
    text = edit('prompt "x {A} y {B} z {A}"\n  answer',
                PROMPT_BY.replace('    BA: "x {B} y {A} z {A}"\n', "") + "\n  answer")
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec", base_dir=spec_dir)
    assert "BA" in info.value.diagnostics[0].message


def test_slot_count_message(spec_dir):
    with pytest.raises(SpecError) as info:
        load_text(edit("slot(A, 2)", "slot(B, 2)"), "t.cspec", base_dir=spec_dir)
    assert "has 1" in info.value.diagnostics[0].message


# ───────────────────────── robustness ─────────────────────────

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORDS = ["A", "B", "C", "O", "Q", "order", "n", "M", "D", "g", "h", "END", "P", "last", "all", "Al", "0", "2",
         "resid.post[3]", "head[1.2]", "head[1.2].q", "mlp[0]", "logits", "embed", "output", "das", "0.9", "1.5",
         "iia", "aaa", "control(heldout)", "lower95", "each", "zero", "{", "}", "->", "@", ":", "[2:1]"]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from(WORDS)), min_size=1, max_size=3))
def test_mutated_specs_fail_only_with_diagnostics(spec_dir, edits):
    """Whatever a one-word edit breaks, analysis ends in IR or a SpecError with located diagnostics."""
    tokens = BASE.split(" ")
    for i, word in edits:
        tokens[i % len(tokens)] = word
    text = " ".join(tokens)
    try:
        load_text(text, "t.cspec", base_dir=spec_dir)
    except SpecError as exc:
        assert exc.diagnostics and all(d.span.known for d in exc.diagnostics)


@given(st.text(alphabet="ab {}_X1", max_size=30))
def test_template_scanner_total(text):
    """Any text scans; placeholders point at `{name}`; an error-free scan round-trips."""
    parts, errors = scan_template(text)
    for p in parts:
        if isinstance(p, Placeholder):
            assert text[p.start:p.end] == "{" + p.name + "}"
    if not errors:
        rebuilt = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{" + p.name + "}"
                          for p in parts)
        again, errors = scan_template(rebuilt)
        assert not errors
        assert [p if isinstance(p, str) else p.name for p in again] == \
            [p if isinstance(p, str) else p.name for p in parts]
