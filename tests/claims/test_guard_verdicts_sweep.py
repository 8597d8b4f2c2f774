"""A sweep of verdicts under the two statistical guards (keep-rate chance test, baseline sign
test; causalspec/score/guards.py): true claims on hand-built networks must PASS, false ones
must FAIL, over a grid of causal models, network defects, pair counts, seeds and sources.

Why a sweep: each guard was written against one hole (a network computing `y` passing
"O = x"; a wrong site leading the baseline by a pair), and a stricter guard is a regression
wherever it refuses a correct claim. The grid crosses what moves the guards' statistics —
chance agreement (balanced, unbalanced and multi-valued outputs), the pool size (`pairs` 16 to
1024; the pool is min(pairs, 512)), pairs dropped by the keep filter (a network wrong on a few
inputs), few changed pairs (unbalanced outputs) — with the claims' truth.

Every network is a plain torch module: `inp` copies the inputs (as floats), `l1` computes the
first layer of variables (columns), `l2` the second from the inputs and `l1`, and the head the
output from them, as class scores. A network's `noise` corrupts it on a fixed ~5% or ~10% of the
inputs (a hash of the input values): `head` changes the output there (the kept pairs never touch
those inputs: a true claim keeps IIA 1), `mid` changes the first `l1` column there (a source whose
column is wrong but whose output is still right is kept, so IIA falls a little below 1).

What the sweep found (docs/language.md, Guards): every true claim passes on an exact network at
every pair count (nothing is dropped, so the chance test does not apply), and on a network wrong
on 5-10% of the inputs at every pair count from 16, also where the output's value is rare (9%, 1%):
the chance test runs on the pool topped up with rows drawn for it (at least 512, about 1000 where
the output is true on 1%; claims.chance), so a small pool no longer refuses it. Before rows were
drawn, 65 of the 756 runs of true claims on such networks were refused by the chance test, on
pools of 16-128 and on the 1% output at every pool size. What
is still refused: on 16-32 pairs a claim whose few changed pairs cannot decide the sign test (the
baseline guard, with advice), and a network whose agreement really is within κ 0.2 of chance
(BELOW_MARGIN), at every size. Every false claim fails from 64 pairs; on 16-32 pairs one can pass
on its threshold with the thin-evidence warning. Two known passes of false claims no guard is
meant to catch are pinned as strict xfails at the end.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text

HERE = Path(__file__).resolve()

F = Callable[..., torch.Tensor]


class Case:
    """A causal model with the mechanism of the network that computes it (a plain class, not a
    dataclass: causalspec imports this file by path, outside sys.modules, for its builders).

    model: the cspec model block (named M); inputs: input names with their number of values
    (0..n-1; bool: 2); l1: first-layer columns (name, f(inp), cardinality); l2: second-layer
    columns (name, f(inp, h1), cardinality); out: f(inp, h1, h2) -> class index; wrong: a
    different function of (inp, h1, h2), the network that does not compute M."""

    def __init__(self, model: str, inputs: tuple, l1: tuple, out: F, classes: int, l2: tuple = (),
                 wrong: F | None = None, balanced: str = "") -> None:
        self.model, self.inputs, self.l1, self.out, self.classes = model, inputs, l1, out, classes
        self.l2, self.wrong, self.balanced = l2, wrong, balanced


def _b(x: torch.Tensor) -> torch.Tensor:
    return (x > 0.5).to(torch.float32)


def _pad(n: int = 8) -> tuple[str, int]:
    return ("z", n)  # an input nothing reads: enough inputs that a source differs from its base freely


CASES: dict[str, Case] = {}

def _on_ab(fn: Callable) -> F:
    return lambda i: fn(i["a"], i["b"])


def _out_ab(fn: Callable) -> F:
    return lambda i, h1, h2: fn(i["a"], i["b"])


def _mod(k: int) -> tuple[F, F, F]:
    """sum{k}'s (x + y) % k, its (S + c) % k, and the wrong (x - y + c) % k."""
    return (lambda i: (i["x"] + i["y"]) % k, lambda i, h1, h2: (h1["S"] + i["c"]) % k,
            lambda i, h1, h2: (i["x"] - i["y"] + i["c"]) % k)


for op, fn, wrong in [("and", lambda a, b: a * b, lambda a, b: a),
                      ("or", lambda a, b: _b(a + b), lambda a, b: a),
                      ("xor", lambda a, b: (a + b) % 2, lambda a, b: 1 - (a + b) % 2)]:
    CASES[op] = Case(
        model=(f"model M {{\n  input a, b : bool\n  input z : int 0..7\n  var S : bool = a {op} b\n"
               if op != "xor" else "model M {\n  input a, b : bool\n  input z : int 0..7\n  var S : bool = xor(a, b)\n")
        + "  output O : bool = S\n}\n",
        inputs=(("a", 2), ("b", 2), _pad()),
        l1=(("S", _on_ab(fn), 2), ("A", lambda i: i["a"], 2)),
        out=lambda i, h1, h2: h1["S"], classes=2, wrong=_out_ab(wrong))

# a chain A -> B -> O: claims on both intermediates, sites in two layers
CASES["chain"] = Case(
    model=("model M {\n  input a, b, c : bool\n  input d : int 0..3\n  var A : bool = xor(a, b)\n"
           "  var B : bool = A and c\n  output O : bool = B or d == 0\n}\n"),
    inputs=(("a", 2), ("b", 2), ("c", 2), ("d", 4)),
    l1=(("A", lambda i: (i["a"] + i["b"]) % 2, 2), ("C", lambda i: i["c"], 2)),
    l2=(("B", lambda i, h1: h1["A"] * h1["C"], 2),),
    out=lambda i, h1, h2: _b(h2["B"] + (i["d"] == 0).float()), classes=2,
    wrong=lambda i, h1, h2: _b(h1["C"] + (i["d"] == 0).float()))

# hierarchical equality
CASES["hier"] = Case(
    model=("model M {\n  domain D = int 0..3\n  input w, x, y, z : D\n  var WX : bool = w == x\n"
           "  var YZ : bool = y == z\n  output O : bool = WX == YZ\n  sample balanced O\n}\n"),
    inputs=(("w", 4), ("x", 4), ("y", 4), ("z", 4)),
    l1=(("WX", lambda i: (i["w"] == i["x"]).float(), 2), ("YZ", lambda i: (i["y"] == i["z"]).float(), 2)),
    out=lambda i, h1, h2: (h1["WX"] == h1["YZ"]).float(), classes=2,
    wrong=lambda i, h1, h2: h1["WX"], balanced="O")

# sum mod k, then plus c: S = (x + y) % k, O = (S + c) % k
for k in (3, 5, 7, 10):
    CASES[f"sum{k}"] = Case(
        model=(f"model M {{\n  domain D = int 0..{k - 1}\n  input x, y, c : D\n  var S : D = (x + y) % {k}\n"
               f"  output O : D = (S + c) % {k}\n}}\n"),
        inputs=(("x", k), ("y", k), ("c", k)),
        l1=(("S", _mod(k)[0], k), ("X", lambda i: i["x"], k)),
        out=_mod(k)[1], classes=k, wrong=_mod(k)[2])

# an unbalanced output: R = x == 0 (10%), O = R and y != 3 (9%); the decoy column holds x == 1
CASES["rare"] = Case(
    model=("model M {\n  domain D = int 0..9\n  input x, y : D\n  var R : bool = x == 0\n"
           "  output O : bool = R and y != 3\n}\n"),
    inputs=(("x", 10), ("y", 10)),
    l1=(("R", lambda i: (i["x"] == 0).float(), 2), ("X1", lambda i: (i["x"] == 1).float(), 2)),
    out=lambda i, h1, h2: h1["R"] * (i["y"] != 3).float(), classes=2,
    wrong=lambda i, h1, h2: h1["X1"] * (i["y"] != 3).float())

# unbalanced inputs: P(a) = P(b) = 0.3, O = a and b (9%), S = a and b
CASES["rare_w"] = Case(
    model=("model M {\n  input a, b : bool ~ weighted { true: 3, false: 7 }\n  input z : int 0..7\n"
           "  var S : bool = a and b\n  output O : bool = S\n}\n"),
    inputs=(("a", 2), ("b", 2), _pad()),
    l1=(("S", lambda i: i["a"] * i["b"], 2), ("A", lambda i: i["a"], 2)),
    out=lambda i, h1, h2: h1["S"], classes=2,
    wrong=lambda i, h1, h2: i["a"] * (1 - i["b"]))

# two variables into a multi-valued output: P = x % 3, Q = y % 4, O = P + 3 Q (12 values)
CASES["multi"] = Case(
    model=("model M {\n  domain D = int 0..11\n  input x, y : D\n  var P : int 0..2 = x % 3\n"
           "  var Q : int 0..3 = y % 4\n  output O : D = P + 3 * Q\n}\n"),
    inputs=(("x", 12), ("y", 12)),
    l1=(("P", lambda i: i["x"] % 3, 3), ("Q", lambda i: i["y"] % 4, 4)),
    out=lambda i, h1, h2: h1["P"] + 3 * h1["Q"], classes=12,
    wrong=lambda i, h1, h2: (h1["P"] + 3 * h1["Q"] + 1) % 12)


# S = a and b computed in a second layer from columns holding a and b: the columns carry
# variables correlated with S (S implies each), and the output reads them (through S)
for _name, _dist in [("and2", ""), ("rare_and2", " ~ weighted { true: 1, false: 9 }")]:
    CASES[_name] = Case(
        model=(f"model M {{\n  input a, b : bool{_dist}\n  input z : int 0..7\n  var S : bool = a and b\n"
               "  output O : bool = S\n}\n"),
        inputs=(("a", 2), ("b", 2), _pad()),
        l1=(("A", lambda i: i["a"], 2), ("B", lambda i: i["b"], 2)),
        l2=(("S", lambda i, h1: h1["A"] * h1["B"], 2),),
        out=lambda i, h1, h2: h2["S"], classes=2,
        wrong=lambda i, h1, h2: _b(h1["A"] + h1["B"]))

def _index(case: Case, inp: dict[str, torch.Tensor]) -> torch.Tensor:
    """The input's number in mixed radix (exact in float64)."""
    idx = torch.zeros_like(inp[case.inputs[0][0]], dtype=torch.float64)
    for name, n in case.inputs:
        idx = idx * n + inp[name].to(torch.float64)
    return idx


def _bad(case: Case, inp: dict[str, torch.Tensor], pct: int) -> torch.Tensor:
    """A fixed `pct`% of the input space, spread by a multiplicative hash."""
    return ((_index(case, inp) * 7919 + 13) % 100) < pct


class Fn(nn.Module):
    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.f = f

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.f(v)


class CaseNet(nn.Module):
    """`case`'s mechanism; `wrong` computes case.wrong instead; `noise` = (where, pct)."""

    def __init__(self, case: Case, wrong: bool = False, noise: tuple[str, int] = ("", 0)) -> None:
        super().__init__()
        self.case, self.wrong, self.noise = case, wrong, noise
        n = len(case.inputs)
        self.inp = nn.Linear(n, n, bias=False)
        with torch.no_grad():
            self.inp.weight.copy_(torch.eye(n))
        self.inp.weight.requires_grad_(False)
        self.l1 = Fn(self._layer1)
        self.l2 = Fn(self._layer2)

    def _split(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: v[:, j] for j, (name, _) in enumerate(self.case.inputs)}

    def _layer1(self, v: torch.Tensor) -> torch.Tensor:
        inp = self._split(v)
        cols = [f(inp).float() for _, f, _ in self.case.l1]
        where, pct = self.noise
        if where == "mid":
            card = self.case.l1[0][2]
            cols[0] = torch.where(_bad(self.case, inp, pct), (cols[0] + 1) % card, cols[0])
        return torch.stack(cols, dim=1)

    def _h1(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: h[:, j] for j, (name, _, _) in enumerate(self.case.l1)}

    def _layer2(self, vh: torch.Tensor) -> torch.Tensor:
        n = len(self.case.inputs)
        inp, h1 = self._split(vh[:, :n]), self._h1(vh[:, n:])
        if not self.case.l2:
            return vh[:, :0] + 0
        return torch.stack([f(inp, h1).float() for _, f, _ in self.case.l2], dim=1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        v = self.inp(v)
        h1 = self.l1(v)
        h2 = self.l2(torch.cat([v, h1], dim=1))
        inp, d1 = self._split(v), self._h1(h1)
        d2 = {name: h2[:, j] for j, (name, _, _) in enumerate(self.case.l2)}
        f = self.case.wrong if self.wrong else self.case.out
        assert f is not None
        y = f(inp, d1, d2).float()
        where, pct = self.noise
        if where == "head":
            y = torch.where(_bad(self.case, inp, pct), (y + 1) % self.case.classes, y)
        return -((y.unsqueeze(-1) - torch.arange(self.case.classes, dtype=y.dtype)) ** 2)


def _net_name(case: str, wrong: bool, noise: tuple[str, int]) -> str:
    return f"{case}_{'wrong' if wrong else 'right'}_{noise[0] or 'exact'}{noise[1] or ''}"


NOISES = [("", 0), ("head", 5), ("head", 10), ("mid", 5)]

for _case, _wrong, _noise in itertools.product(CASES, (False, True), NOISES):
    globals()[f"build_{_net_name(_case, _wrong, _noise)}"] = (
        lambda c=_case, w=_wrong, n=_noise: CaseNet(CASES[c], w, n))


def _encoder(case: str) -> Callable[[dict], torch.Tensor]:
    names = [n for n, _ in CASES[case].inputs]

    def encode(values: dict) -> torch.Tensor:
        return torch.stack([torch.as_tensor(values[n], dtype=torch.float32).reshape(-1) for n in names], dim=1)
    return encode


for _case in CASES:
    globals()[f"encode_{_case}"] = _encoder(_case)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("guard_sweep")
    for case in CASES:
        state = {k: v.detach().contiguous().clone() for k, v in CaseNet(CASES[case]).state_dict().items()}
        save_file(state, str(tmp / f"{case}.safetensors"))
    return tmp


def _site(case: Case, var: str) -> str:
    """`var`'s column in its layer, as a site."""
    for layer, cols in (("l1", case.l1), ("l2", case.l2)):
        names = [c[0] for c in cols]
        if var in names:
            j = names.index(var)
            return f'module "{layer}" output : [{j}:{j + 1}]'
    raise KeyError(var)


def spec(case_name: str, net: str, align: dict[str, str], interchange: str, pairs: int, seed: int,
         expect: str = "iia >= 0.9", pool: int | None = None) -> str:
    case = CASES[case_name]
    lines = "".join(f"  {v} -> {_site(case, site)}\n" for v, site in align.items())
    return (case.model + f'network n = torch "{HERE}:build_{net}" weights "{case_name}.safetensors" {{\n'
            f'  encode "{HERE}:encode_{case_name}"\n}}\n'
            f"align M to n as A {{\n{lines}  O -> output\n}}\n"
            f"check A {{\n" + (f"  interchange {interchange}\n" if interchange else "")
            + f"  pairs {pairs} seed {seed}" + (f" pool {pool}" if pool else "") + f"\n  expect {expect}\n}}\n")


def run(text: str, folder: Path):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    (result,) = run_checks(ir, CheckOptions())
    return result


# ───────────────────────── per-position outputs ─────────────────────────

POS_MODEL = ("model P {\n  domain Tok = int 0..2\n  input t[1..4] : Tok\n"
             "  var V[i in 2..4] : Tok = (t[i] + t[i-1]) % 3\n  output O[i in 2..4] : Tok = (V[i] + t[i]) % 3\n}\n")


class PosNet(nn.Module):
    """ids `[batch, 4]` (position p holds t[p + 1]) -> `[batch, 4, 3]`: `mix` holds, at position
    p >= 1, (t[p+1] + t[p]) % 3 (the model's V[p+1]; `wrong`: the difference), and the head
    outputs (mix + t) % 3 there. `noise` corrupts every position's output on a fixed pct% of inputs."""

    def __init__(self, wrong: bool = False, noise: int = 0) -> None:
        super().__init__()
        self.wrong, self.noise = wrong, noise
        self.embed = nn.Embedding(3, 1)
        with torch.no_grad():
            self.embed.weight.copy_(torch.arange(3, dtype=torch.float32).unsqueeze(1))
        self.embed.weight.requires_grad_(False)
        self.mix = Fn(self._mix)

    def _mix(self, e: torch.Tensor) -> torch.Tensor:
        prev = torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], dim=1)
        return ((e - prev) if self.wrong else (e + prev)) % 3

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embed(ids)  # [batch, 4, 1]
        y = ((self.mix(e) + e) % 3)[..., 0]  # [batch, 4]
        if self.noise:
            idx = (ids.to(torch.float64) * torch.tensor([27.0, 9.0, 3.0, 1.0], dtype=torch.float64)).sum(1)
            bad = ((idx * 7919 + 13) % 100) < self.noise
            y = torch.where(bad.unsqueeze(1), (y + 1) % 3, y)
        return -((y.unsqueeze(-1) - torch.arange(3, dtype=y.dtype)) ** 2)


for _wrong, _noise in itertools.product((False, True), (0, 5, 10)):
    globals()[f"build_pos_{'wrong' if _wrong else 'right'}_{_noise}"] = (
        lambda w=_wrong, n=_noise: PosNet(w, n))


def encode_pos(values: dict) -> torch.Tensor:
    return torch.stack([torch.as_tensor(values[f"t[{i}]"], dtype=torch.long).reshape(-1) for i in range(1, 5)],
                       dim=1)


def pos_spec(net: str, site_offset: int, interchange: str, pairs: int, seed: int,
             expect: str = "iia >= 0.9") -> str:
    """V[i] at `mix` position i - 1 + site_offset (0: the true site), O[i] read at position i - 1."""
    return (POS_MODEL + f'network n = torch "{HERE}:build_pos_{net}" weights "pos.safetensors" {{\n'
            f'  encode "{HERE}:encode_pos"\n}}\n'
            f"align P to n as A {{\n  V[i] -> module \"mix\" output @ i-{1 - site_offset}\n"
            f"  O[i] -> output @ i-1\n}}\n"
            f"check A {{\n  interchange {interchange}\n  pairs {pairs} seed {seed}\n  expect {expect}\n}}\n")


@pytest.fixture(scope="module")
def pos_folder(folder) -> Path:
    save_file({k: v.contiguous().clone() for k, v in PosNet().state_dict().items()}, str(folder / "pos.safetensors"))
    return folder


# ───────────────────────── the claims ─────────────────────────

# (case, alignment, interchange sets): every variable at the column that holds it; `{X | Y}` sets are
# two-source interchanges
TRUE_CLAIMS = [
    ("and", {"S": "S"}, "S"), ("or", {"S": "S"}, "S"), ("xor", {"S": "S"}, "S"),
    ("and2", {"S": "S"}, "S"), ("rare_and2", {"S": "S"}, "S"),
    ("chain", {"A": "A", "B": "B"}, "A, B, {A, B}, {A | B}"),
    ("hier", {"WX": "WX", "YZ": "YZ"}, "WX, YZ, {WX, YZ}, {WX | YZ}"),
    ("sum3", {"S": "S"}, "S"), ("sum5", {"S": "S"}, "S"), ("sum7", {"S": "S"}, "S"), ("sum10", {"S": "S"}, "S"),
    ("rare", {"R": "R"}, "R"), ("rare_w", {"S": "S"}, "S"),
    ("multi", {"P": "P", "Q": "Q"}, "P, Q, {P | Q}"),
]

# wrong sites: a decoy column the output never reads (the effect-size guard), a column holding a
# variable correlated with the claimed one that the output does read (and2: a, of S = a and b;
# chain: A, of B = A and c, and c, of B), a variable at the other's column
FALSE_CLAIMS = [
    ("and", {"S": "A"}, "S"), ("or", {"S": "A"}, "S"), ("xor", {"S": "A"}, "S"), ("and2", {"S": "A"}, "S"),
    ("chain", {"A": "C", "B": "A"}, "A"), ("chain", {"A": "C", "B": "A"}, "B"), ("chain", {"A": "A", "B": "C"}, "B"),
    ("hier", {"WX": "YZ", "YZ": "WX"}, "WX"), ("sum3", {"S": "X"}, "S"), ("sum10", {"S": "X"}, "S"),
    ("rare", {"R": "X1"}, "R"), ("rare_w", {"S": "A"}, "S"), ("multi", {"P": "Q", "Q": "P"}, "P"),
    ("multi", {"P": "Q", "Q": "P"}, "Q"),
]

EXACT = ("", 0)
DEFECTS = [("head", 5), ("head", 10), ("mid", 5)]


def _label(claim) -> str:
    case, align, sets = claim
    return f"{case}:{'+'.join(f'{v}@{s}' for v, s in align.items())}:{sets}"


def _ids(claims) -> list[str]:
    return [_label(c) for c in claims]


def _slow(pairs: int, seed: int, fast: set[tuple[int, int]]):
    return pytest.param(pairs, seed, marks=() if (pairs, seed) in fast else pytest.mark.slow)


PAIRS_SEEDS = [_slow(p, s, {(16, 0), (64, 1), (256, 0)}) for p in (16, 32, 64, 256, 1024) for s in range(3)]


def _why(r) -> str:
    return f"{r.status}: {r.reason}"


def _nothing_changed(r) -> bool:
    """Failed only because no kept pair changes the expected output: `rare_w`'s O is true on 9% of
    the inputs, and 16 pairs can miss every change (honest, and said: "cannot test it")."""
    return r.status == "failed" and all("changes the expected output on none" in part
                                        for part in r.reason.split("; ") if part.startswith("{"))


# ───────────────────────── true claims ─────────────────────────

@pytest.mark.parametrize("pairs,seed", PAIRS_SEEDS)
@pytest.mark.parametrize("claim", TRUE_CLAIMS, ids=_ids(TRUE_CLAIMS))
def test_a_true_claim_on_an_exact_network_passes_at_every_pair_count(folder, claim, pairs, seed):
    # nothing is dropped (the network is right everywhere): the chance test does not apply, and
    # the sign test has only gained pairs (IIA 1)
    case, align, sets = claim
    r = run(spec(case, _net_name(case, False, EXACT), align, sets, pairs, seed), folder)
    if pairs < 256 and _nothing_changed(r):  # rare_and2: O true on 1% of the inputs
        return
    assert r.status == "passed", _why(r)
    for c in r.claims:
        assert c.kept == c.sampled and c.iia.estimate == 1.0 and c.paired is not None and c.paired.lost == 0


# rare_and2's O is true on 1% of the inputs: a network wrong on ~10% of them (head10: it outputs
# true on 12%) agrees with the model on 88.5% of the inputs where a network independent of it would
# on 87.2% — Cohen's κ 0.10 over the whole input distribution, below the chance test's 0.2. Its
# kept pairs cannot be told from coincidence at any test size, and the check rightly fails.
BELOW_MARGIN = {("rare_and2", ("head", 10))}
TRUE_ABOVE = [c for c in TRUE_CLAIMS if (c[0], ("head", 10)) not in BELOW_MARGIN]


def _thin_sign_test(r, pairs: int) -> bool:
    """Refused only by the baseline guard on a sample too small to decide it, with the advice on the
    pairs that would (`rare` mid5 at 32 pairs, seed 1: gained 4, lost 2 — p = 0.34)."""
    return (pairs <= 32 and r.status == "failed" and "(baseline guard)" in r.reason and "would decide" in r.reason
            and "keep-rate guard" not in r.reason)


@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(16, 0), (64, 1), (256, 0), (1024, 2)})
                                        for p in (16, 32, 64, 128, 256, 1024) for s in range(3)])
@pytest.mark.parametrize("defect", DEFECTS, ids=[f"{w}{p}" for w, p in DEFECTS])
@pytest.mark.parametrize("claim", TRUE_CLAIMS, ids=_ids(TRUE_CLAIMS))
def test_a_true_claim_on_a_network_wrong_on_a_few_inputs_passes_at_every_pair_count(folder, claim, defect, pairs,
                                                                                    seed):
    # the keep filter drops the pairs that touch the wrong inputs, so the chance test applies: on the
    # pool topped up to 512+ rows drawn for the test, a network right on 89-96% of the inputs is far
    # above chance, also where chance is high (`rare`, `rare_w`: O true on 9%, chance ~0.8; `rare_and2`:
    # O true on 1%, chance ~0.97, about 1000 rows). Before rows were drawn, 14 of 16 right on a binary
    # output (p = 0.0501), or 503 of 512 on the 1% output, refused a true claim.
    case, align, sets = claim
    if (case, defect) in BELOW_MARGIN:
        return  # test_a_network_within_the_margin_of_chance_is_refused_at_every_size
    r = run(spec(case, _net_name(case, False, defect), align, sets, pairs, seed), folder)
    if (pairs < 256 and _nothing_changed(r)) or _thin_sign_test(r, pairs):
        return
    assert r.status == "passed", _why(r)
    # where no pair touches a wrong input nothing is dropped and the test does not apply (small pools; the
    # rare outputs, whose pairs can miss the wrong inputs)
    assert pairs < 256 or case == "rare_and2" or any(c.kept < c.sampled for c in r.claims)
    for c in r.claims:
        a = c.agreement
        assert a is not None
        if any(d.kept < d.sampled for d in r.claims):  # the chance test applied, on the pool and drawn rows
            assert a.significant and a.trials >= 512 and a.drawn == a.trials - min(pairs, 512), a


@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(16, 2), (1024, 0)})
                                        for p in (16, 64, 256, 1024) for s in range(3)])
@pytest.mark.parametrize("case,defect", sorted(BELOW_MARGIN))
def test_a_network_within_the_margin_of_chance_is_refused_at_every_size(folder, case, defect, pairs, seed):
    # its agreement is not above the test's null even at its true rate: more rows cannot help, and the
    # reason says so (a pool of 8192 rows, the pool alone, refuses it too)
    align, sets = next((a, s) for c, a, s in TRUE_CLAIMS if c == case)
    net = _net_name(case, False, defect)
    r = run(spec(case, net, align, sets, pairs, seed), folder)
    if pairs < 256 and _nothing_changed(r):
        return
    assert r.status == "failed" and "keep-rate guard: chance agreement" in r.reason, _why(r)
    assert "not significantly above chance" in r.reason
    (c,) = r.claims
    assert c.agreement is not None and c.agreement.trials > 512 and c.agreement.drawn > 0  # the 1% output: ~1000
    big = run(spec(case, net, align, sets, pairs, seed, pool=8192), folder)
    assert big.status == "failed" and "keep-rate guard: chance agreement" in big.reason, _why(big)
    (b,) = big.claims
    assert b.agreement is not None and b.agreement.trials == 8192 and b.agreement.drawn == 0  # the pool alone


# ───────────────────────── false claims ─────────────────────────

@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(64, 0), (1024, 1)}) for p in (64, 256, 1024)
                                        for s in range(3)])
@pytest.mark.parametrize("defect", [EXACT, *DEFECTS], ids=["exact"] + [f"{w}{p}" for w, p in DEFECTS])
@pytest.mark.parametrize("claim", FALSE_CLAIMS, ids=_ids(FALSE_CLAIMS))
def test_a_false_claim_fails_from_64_pairs(folder, claim, defect, pairs, seed):
    case, align, sets = claim
    r = run(spec(case, _net_name(case, False, defect), align, sets, pairs, seed), folder)
    assert r.status == "failed", _why(r)


@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(16, 1), (32, 2)}) for p in (16, 32) for s in range(3)])
@pytest.mark.parametrize("defect", [EXACT, *DEFECTS], ids=["exact"] + [f"{w}{p}" for w, p in DEFECTS])
@pytest.mark.parametrize("claim", FALSE_CLAIMS, ids=_ids(FALSE_CLAIMS))
def test_a_false_claim_that_passes_16_or_32_pairs_is_warned_thin(folder, claim, defect, pairs, seed):
    # Known and documented: with under 5 pairs where the patched and unpatched outputs differ in
    # matching the counterfactual, the sign test cannot decide, and a claim that lost none of them
    # passes on its threshold alone — `iia >= 0.9` allows one miss in 16 kept pairs (and2's S at a's
    # column: 15 of 16, seed 1). The pass must carry the "too few changed pairs" warning.
    case, align, sets = claim
    r = run(spec(case, _net_name(case, False, defect), align, sets, pairs, seed), folder)
    if r.status == "passed":
        assert any("too few changed pairs to decide" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(16, 0), (1024, 0)}) for p in (16, 64, 1024) for s in range(3)])
@pytest.mark.parametrize("case", [c for c in CASES], ids=list(CASES))
def test_a_network_computing_another_function_fails(folder, case, pairs, seed):
    align, sets = next((a, s) for c, a, s in TRUE_CLAIMS if c == case)
    r = run(spec(case, _net_name(case, True, EXACT), align, sets, pairs, seed), folder)
    assert r.status == "failed", _why(r)


# ───────────────────────── per-position outputs, subsets ─────────────────────────

@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(16, 0), (256, 1)}) for p in (16, 64, 256, 1024)
                                        for s in range(3)])
@pytest.mark.parametrize("noise", [0, 5, 10])
def test_per_position_outputs(pos_folder, noise, pairs, seed):
    # V[i] at mix position i-1, O[i] read at position i-1: the guards judge the rows pooled over O[2..4]
    true = run(pos_spec(f"right_{noise}", 0, "V, V[3], {V[2] | V[4]}", pairs, seed), pos_folder)
    assert true.status == "passed", _why(true)
    for net, off in (("right_0", -1), (f"right_{noise}", -1), ("wrong_0", 0)):
        assert run(pos_spec(net, off, "V[3]", pairs, seed), pos_folder).status == "failed", (net, off)


@pytest.mark.parametrize("pairs,seed", [_slow(p, s, {(64, 0), (1024, 2)}) for p in (64, 256, 1024) for s in range(3)])
@pytest.mark.parametrize("defect", [EXACT, *DEFECTS], ids=["exact"] + [f"{w}{p}" for w, p in DEFECTS])
def test_aaa_over_every_subset(folder, defect, pairs, seed):
    for case, align, truth in [("hier", {"WX": "WX", "YZ": "YZ"}, True), ("hier", {"WX": "YZ", "YZ": "WX"}, False),
                               ("multi", {"P": "P", "Q": "Q"}, True), ("chain", {"A": "A", "B": "B"}, True),
                               ("chain", {"A": "C", "B": "A"}, False)]:
        r = run(spec(case, _net_name(case, False, defect), align, "", pairs, seed, "aaa >= 0.9"), folder)
        assert (r.status == "passed") == truth, (case, align, _why(r))


# ───────────────────────── known: a threshold under the baseline ─────────────────────────

@pytest.mark.xfail(strict=True, reason="IIA 0.98 >= 0.9 with the baseline at 0.96: the threshold, not a guard, "
                   "decides; the sign test is right that the patch helps (gained 23, lost 5)")
def test_known_a_correlated_site_passes_a_threshold_below_the_no_intervention_baseline(folder):
    # rare_and2: a, b true on 10% each, S = a and b true on 1%; S claimed at a's column. Patching a
    # gives a_s and b_b: right on the 1% where S changes with b_b true, wrong where a_s and not b_s
    # and b_b. Both are rare, so the IIA (0.98) sits above `iia >= 0.9` — and so does doing
    # nothing (0.96). Only a threshold above the baseline (or `lower95`, or a claim on the
    # changed pairs) can refuse it.
    r = run(spec("rare_and2", _net_name("rare_and2", False, EXACT), {"S": "A"}, "S", 1024, 1), folder)
    (c,) = r.claims
    assert c.baseline.estimate > 0.9 and c.paired is not None and c.paired.significant
    assert r.status == "failed", _why(r)


@pytest.mark.xfail(strict=True, reason="no guard judges how much of the input space the kept pairs cover above "
                   "the 20% floor and κ 0.2: a network right on 79% of the inputs (κ 0.6) is judged on those")
def test_known_a_network_computing_another_function_passes_on_the_inputs_it_gets_right(folder):
    # chain's wrong network outputs c or d == 0 (the model: (xor(a, b) and c) or d == 0), so its
    # column C is its own B. It agrees with the model on 79% of the inputs (chance 0.48, κ 0.6),
    # keeps 63% of the pairs, and on them "B at C" has IIA 0.935 (baseline 0.70, gained 182, lost
    # 29): every guard passes, and so does `iia >= 0.9`, though the network does not compute B.
    r = run(spec("chain", _net_name("chain", True, EXACT), {"A": "A", "B": "C"}, "B", 1024, 0), folder)
    (c,) = r.claims
    assert 0.5 < c.keep_rate < 0.7 and c.agreement is not None and c.agreement.significant
    assert r.status == "failed", _why(r)
