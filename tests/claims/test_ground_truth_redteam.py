"""Red-team ground truth for alignment checks: hand-built torch networks whose mechanisms are
known exactly, each with true claims (must PASS with IIA 1.000, and move the output) and false
claims (must not pass).

Why: the tool is judged against networks whose truth is known, so these pin the verdicts it
must give there. Every network below is a plain torch module with hand-set weights, built by a
function of this file (the specs point their `torch "…:build_…"` at it); the inputs are four
ints x, y, z, w in 0..3 (`encode` stacks them, as floats) unless said otherwise:

* `rot`   : [x, z] (module `feat`) rotated by 45 degrees (module `rot`); the head undoes the
            rotation and outputs x. x lives along a rotated direction of `rot`: a slice claim
            there fails, `das(k=1)` finds it.
* `late`  : layers.0 copies [x, y, z, w]; layers.1 computes [x == y, z == w]; the head ANDs them.
            E = (x == y) exists from layers.1 on: a claim on layers.0's x alone fails.
* `shared`: one unit u = x + 4y (module `code`); the head outputs u (16 classes). Claiming x
            alone at u fails (interchanging x there moves y); claiming C = x + 4y passes.
* `prev`  : per position `[batch, T, classes]`: the output at position p is the token at p - 1.
            Aligning t[3] (position 2) and reading the output at position 3 passes; an
            off-by-one site or output position fails.
* `dup`   : x stored twice (modules `copy_a`, `copy_b`), the head reads their mean: patching one
            copy is half an intervention and fails; patching both (one variable, two sites) passes.
* `mean`  : a value output (x + y) / 2 + OFFSET: passes within a tolerance above OFFSET, fails below.
* `bypass`: computes x in `feat` but the head reads x from the input directly (a skip path):
            right on every input, yet no intervention on `feat` moves the output.
* `ignore`: the output is y; x sits in `feat` and is never read.
* `const` : the output is always class 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text

HERE = Path(__file__).resolve()
OFFSET = 0.03  # the `mean` network's constant error


def _classes(v: torch.Tensor, n: int) -> torch.Tensor:
    """Class scores `[..., n]` peaked at the class nearest to the value `v` `[...]`."""
    return -((v.unsqueeze(-1) - torch.arange(n, dtype=v.dtype, device=v.device)) ** 2)


def _pick(rows: list[list[float]], bias: bool = False) -> nn.Linear:
    """A frozen linear map with the given weight rows (bias zero)."""
    w = torch.tensor(rows, dtype=torch.float32)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        lin.weight.copy_(w)
        if bias:
            lin.bias.zero_()
    return lin


class _Frozen(nn.Module):
    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)


class RotNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        c = s = 1 / math.sqrt(2)
        self.feat = _pick([[1, 0, 0, 0], [0, 0, 1, 0]])  # [x, z]
        self.rot = _pick([[c, -s], [s, c]])  # R [x, z]
        self.back = _pick([[c, s], [-s, c]])  # Rᵀ: back to [x, z]
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return _classes(self.back(self.rot(self.feat(v)))[:, 0], 4)


class _Eq(nn.Module):
    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return (d.abs() < 0.5).to(d.dtype)


class LateNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        eye = [[float(i == j) for j in range(4)] for i in range(4)]
        self.layers = nn.ModuleList([_pick(eye), nn.Sequential(_pick([[1, -1, 0, 0], [0, 0, 1, -1]]), _Eq())])
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = self.layers[1](self.layers[0](v))
        both = h[:, 0] * h[:, 1]
        return torch.stack([1 - both, both], dim=-1)  # classes (false, true)


class SharedNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        self.code = _pick([[1, 4, 0, 0]])  # u = x + 4y
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return _classes(self.code(v)[:, 0], 16)


class _Shift(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)


class PrevNet(_Frozen):
    """ids `[batch, 4]` (position p holds t[p + 1], a token 0..2) → `[batch, 4, 3]`."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(3, 3)
        self.shift = _Shift()
        self.head = _pick([[float(i == j) for j in range(3)] for i in range(3)])
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(3))
        self.freeze()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.shift(self.embed(ids)))


class DupNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        self.copy_a = _pick([[1, 0, 0, 0]])  # x
        self.copy_b = _pick([[1, 0, 0, 0]])  # x again
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return _classes((self.copy_a(v) + self.copy_b(v))[:, 0] / 2, 4)  # reads both copies


class MeanNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        self.mean = _pick([[0.5, 0.5, 0, 0]])
        self.head = nn.Linear(1, 1)
        with torch.no_grad():
            self.head.weight.fill_(1.0)
            self.head.bias.fill_(OFFSET)
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.head(self.mean(v))  # [batch, 1]


class BypassNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        self.feat = _pick([[1, 0, 0, 0], [0, 1, 0, 0]])  # [x, y], computed but not read
        self.skip = _pick([[1, 0, 0, 0]])  # x, straight from the input
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        self.feat(v)
        return _classes(self.skip(v)[:, 0], 4)


class IgnoreNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        self.feat = _pick([[1, 0, 0, 0], [0, 1, 0, 0]])  # [x, y]
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return _classes(self.feat(v)[:, 1], 4)  # y only


class ConstNet(_Frozen):
    def __init__(self) -> None:
        super().__init__()
        self.feat = _pick([[1, 0, 0, 0], [0, 1, 0, 0]])
        self.freeze()

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = self.feat(v)
        return torch.zeros(h.shape[0], 4, dtype=h.dtype) + torch.tensor([1.0, 0.0, 0.0, 0.0])


NETS = {"rot": RotNet, "late": LateNet, "shared": SharedNet, "prev": PrevNet, "dup": DupNet, "mean": MeanNet,
        "bypass": BypassNet, "ignore": IgnoreNet, "const": ConstNet}


def build_rot() -> nn.Module:
    return RotNet()


def build_late() -> nn.Module:
    return LateNet()


def build_shared() -> nn.Module:
    return SharedNet()


def build_prev() -> nn.Module:
    return PrevNet()


def build_dup() -> nn.Module:
    return DupNet()


def build_mean() -> nn.Module:
    return MeanNet()


def build_bypass() -> nn.Module:
    return BypassNet()


def build_ignore() -> nn.Module:
    return IgnoreNet()


def build_const() -> nn.Module:
    return ConstNet()


def encode(values: dict) -> torch.Tensor:
    """`[batch, 4]` floats: x, y, z, w."""
    return torch.stack([torch.as_tensor(values[n], dtype=torch.float32).reshape(-1) for n in "xyzw"], dim=1)


def encode_tokens(values: dict) -> torch.Tensor:
    """`[batch, 4]` ids: t[1] … t[4] at positions 0 … 3."""
    return torch.stack([torch.as_tensor(values[f"t[{i}]"], dtype=torch.long).reshape(-1) for i in range(1, 5)],
                       dim=1)


# ───────────────────────── specs ─────────────────────────

INPUTS = "  domain D = int 0..3\n  input x, y, z, w : D\n"


def network(name: str, extra: str = "") -> str:
    enc = "encode_tokens" if name == "prev" else "encode"
    return (f'network {name} = torch "{HERE}:build_{name}" weights "{name}.safetensors" {{\n'
            f'  encode "{HERE}:{enc}"\n{extra}}}\n')


def check(align: str, interchange: str, extra: str = "", expect: str = "iia >= 0.99") -> str:
    return (f"check {align} {{\n  interchange {interchange}\n  pairs 128 seed 5\n{extra}"
            f"  expect {expect}\n}}\n")


def alignment(model: str, net: str, name: str, lines: str) -> str:
    return f"align {model} to {net} as {name} {{\n{lines}\n}}\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("redteam")
    for name, cls in NETS.items():
        state = {k: v.detach().contiguous().clone() for k, v in cls().state_dict().items()}
        save_file(state, str(tmp / f"{name}.safetensors"))
    return tmp


def run(text: str, folder: Path) -> dict:
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    return {r.name: r for r in run_checks(ir, CheckOptions())}


def assert_true_claim(result) -> None:
    assert result.status == "passed", result.reason
    for claim in result.claims:
        assert claim.iia.estimate == 1.0, (claim.label, claim.iia)
        if claim.kind != "element":  # an element row may be one the interchange should leave alone
            assert claim.moved > 0 and claim.changed > 0  # the pass is earned: the output moved


def assert_not_passed(result) -> None:
    assert result.status in ("failed", "error"), (result.name, result.status, result.reason)


# ───────────────────────── 1. a rotated subspace ─────────────────────────

COPY_X = "model CopyX {\n" + INPUTS + "  var S : D = x\n  output O : D = S\n}\n"


def test_a_rotated_direction_is_found_by_das_and_missed_by_a_slice(folder):
    text = COPY_X + network("rot") + "".join([
        alignment("CopyX", "rot", "Feat", '  S -> module "feat" output : [0:1]\n  O -> output'),
        alignment("CopyX", "rot", "FeatWrong", '  S -> module "feat" output : [1:2]\n  O -> output'),
        alignment("CopyX", "rot", "Slice", '  S -> module "rot" output : [0:1]\n  O -> output'),
        alignment("CopyX", "rot", "Das", '  S -> module "rot" output : das(k=1)\n  O -> output'),
    ]) + check("Feat", "S") + check("FeatWrong", "S") + check("Slice", "S") + check(
        "Das", "S", "  pool 48\n  train 512\n  steps 200\n")
    r = run(text, folder)
    assert_true_claim(r["Feat"])
    assert_true_claim(r["Das"])
    assert r["FeatWrong"].status == "failed" and r["FeatWrong"].claims[0].moved == 0  # z is not x
    assert r["Slice"].status == "failed"
    assert r["Slice"].claims[0].iia.estimate < 0.7  # one axis of the rotated plane mixes x with z


# ───────────────────────── 2. present only from layer 2 on ─────────────────────────

BOTH_EQ = ("model BothEq {\n" + INPUTS + "  var E : bool = x == y\n  var F : bool = z == w\n"
           "  output O : bool = E and F\n  sample balanced O\n}\n")


def test_a_variable_computed_at_layer_two_is_not_at_layer_one(folder):
    text = BOTH_EQ + network("late") + "".join([
        alignment("BothEq", "late", "L2", '  E -> module "layers.1" output : [0:1]\n'
                  '  F -> module "layers.1" output : [1:2]\n  O -> output'),
        alignment("BothEq", "late", "L1", '  E -> module "layers.0" output : [0:1]\n  O -> output'),
        alignment("BothEq", "late", "L1Inputs", '  E -> module "layers.0" output : [0:2]\n  O -> output'),
        alignment("BothEq", "late", "L2Swapped", '  E -> module "layers.1" output : [1:2]\n  O -> output'),
    ]) + check("L2", "E, F, {E, F}, {E | F}") + check("L1", "E") + check("L1Inputs", "E") + check("L2Swapped", "E")
    r = run(text, folder)
    assert_true_claim(r["L2"])
    # both of E's inputs at layer 1 carry it too: interchanging x and y sets E to the source's
    assert_true_claim(r["L1Inputs"])
    assert r["L1"].status == "failed"  # x alone is not E
    assert r["L2Swapped"].status == "failed"  # F's unit is not E's


def test_a_wrong_site_scoring_no_better_than_doing_nothing_fails_on_unbalanced_pairs(folder):
    # without `sample balanced O`, O = E and F is true on 1 input in 16: interchanging E changes the
    # expected output on ~5% of pairs, so a wrong site scores IIA ~0.94 — exactly the no-intervention
    # baseline. Before the baseline guard these false claims PASSED `iia >= 0.8`.
    unbalanced = BOTH_EQ.replace("  sample balanced O\n", "")
    text = unbalanced + network("late") + "".join([
        alignment("BothEq", "late", "L2", '  E -> module "layers.1" output : [0:1]\n  O -> output'),
        alignment("BothEq", "late", "L2Swapped", '  E -> module "layers.1" output : [1:2]\n  O -> output'),
        alignment("BothEq", "late", "L1", '  E -> module "layers.0" output : [0:1]\n  O -> output'),
    ]) + "".join(check(n, "E", expect="iia >= 0.8") for n in ("L2", "L2Swapped", "L1"))
    r = run(text, folder)
    assert_true_claim(r["L2"])
    for name in ("L2Swapped", "L1"):
        (claim,) = r[name].claims
        assert claim.iia.estimate >= 0.8 and claim.moved > 0  # the threshold alone is met
        assert claim.iia.successes <= claim.baseline.successes
        assert r[name].status == "failed" and "baseline guard" in r[name].reason, r[name].reason


@pytest.mark.parametrize("pairs,seed", [(64, 0), (64, 4), (128, 1), (128, 10), (256, 2)])
def test_a_wrong_site_beating_the_baseline_by_a_few_pairs_fails(folder, pairs, seed):
    # the same unbalanced pairs: at these seeds the wrong sites score a few pairs above the baseline
    # (e.g. 122 vs 117 of 128), and the raw comparison passed them. The sign test on the pairs where
    # patched and unpatched differ finds gained ≈ lost: p >= 0.05, not earned.
    unbalanced = BOTH_EQ.replace("  sample balanced O\n", "")
    text = unbalanced + network("late") + "".join([
        alignment("BothEq", "late", "L2Swapped", '  E -> module "layers.1" output : [1:2]\n  O -> output'),
        alignment("BothEq", "late", "L1", '  E -> module "layers.0" output : [0:1]\n  O -> output'),
    ]) + "".join(f"check {n} {{\n  interchange E\n  pairs {pairs} seed {seed}\n  expect iia >= 0.8\n}}\n"
                 for n in ("L2Swapped", "L1"))
    r = run(text, folder)
    beaten = 0
    for name in ("L2Swapped", "L1"):
        (claim,) = r[name].claims
        assert claim.paired is not None and not claim.paired.significant
        assert r[name].status == "failed" and "baseline guard" in r[name].reason, r[name].reason
        beaten += claim.iia.estimate >= 0.8 and claim.iia.successes > claim.baseline.successes  # passed before
    assert beaten >= 1


@pytest.mark.parametrize("seed", [5, 7])
def test_a_true_claim_with_too_few_changed_pairs_passes_with_a_warning(folder, seed):
    # unbalanced O = E and F on 64 pairs: only 3 (seed 5) or 4 (seed 7) kept pairs change the expected
    # output. The true site gets every one right and loses none; no sign test on 4 pairs reaches 5%,
    # so the pass stands, with a warning that it rests on those few pairs
    unbalanced = BOTH_EQ.replace("  sample balanced O\n", "")
    text = unbalanced + network("late") + alignment(
        "BothEq", "late", "L2", '  E -> module "layers.1" output : [0:1]\n  O -> output') + (
        f"check L2 {{\n  interchange E\n  pairs 64 seed {seed}\n  expect iia >= 0.99\n}}\n")
    r = run(text, folder)["L2"]
    assert_true_claim(r)
    (claim,) = r.claims
    assert claim.paired is not None and claim.paired.lost == 0 and claim.paired.gained < 5
    assert any("too few changed pairs to decide" in w for w in r.warnings), r.warnings


# ───────────────────────── 3. two variables sharing one unit ─────────────────────────

SHARED = ("model Pair {\n" + INPUTS + "  var A : D = x\n  var B : D = y\n  output O : int 0..15 = A + 4 * B\n}\n"
          "model Code {\n" + INPUTS + "  var C : int 0..15 = x + 4 * y\n  output O : int 0..15 = C\n}\n")


def test_interchanging_a_shared_unit_moves_the_other_variable(folder):
    text = SHARED + network("shared") + "".join([
        alignment("Pair", "shared", "AOnly", '  A -> module "code" output : [0:1]\n  O -> output'),
        alignment("Code", "shared", "Joint", '  C -> module "code" output : [0:1]\n  O -> output'),
    ]) + check("AOnly", "A") + check("Joint", "C")
    r = run(text, folder)
    assert_true_claim(r["Joint"])
    (a_only,) = r["AOnly"].claims
    assert r["AOnly"].status == "failed"
    assert a_only.iia.estimate < 0.5  # right only where base and source agree on y


# ───────────────────────── 4. per-position output, off by one ─────────────────────────

PREV = ("model Prev {\n  domain Tok = int 0..2\n  input t[1..4] : Tok\n  var V : Tok = t[3]\n"
        "  output O : Tok = V\n}\n")


def test_a_previous_token_variable_is_found_only_at_the_right_position(folder):
    text = PREV + network("prev") + "".join([
        alignment("Prev", "prev", "Right", '  V -> module "embed" output @ 2\n  O -> output @ 3'),
        alignment("Prev", "prev", "Shifted", '  V -> module "shift" output @ 3\n  O -> output @ 3'),
        alignment("Prev", "prev", "SiteOffByOne", '  V -> module "embed" output @ 3\n  O -> output @ 3'),
        alignment("Prev", "prev", "ShiftOffByOne", '  V -> module "shift" output @ 2\n  O -> output @ 3'),
        alignment("Prev", "prev", "OutputOffByOne", '  V -> module "embed" output @ 2\n  O -> output @ 2'),
    ]) + "".join(check(n, "V") for n in ("Right", "Shifted", "SiteOffByOne", "ShiftOffByOne", "OutputOffByOne"))
    r = run(text, folder)
    assert_true_claim(r["Right"])
    assert_true_claim(r["Shifted"])
    for name in ("SiteOffByOne", "ShiftOffByOne"):
        assert r[name].status == "failed", name
        assert r[name].claims[0].moved == 0  # t[4] and t[2] never reach the output at position 3
    # read at position 2 the network outputs t[2], not t[3]: wrong on most bases
    assert_not_passed(r["OutputOffByOne"])
    assert r["OutputOffByOne"].claims[0].kept < r["OutputOffByOne"].claims[0].sampled


PREV_FAMILY = ("model PrevFam {\n  domain Tok = int 0..2\n  input t[1..4] : Tok\n"
               "  var V[i in 2..4] : Tok = t[i-1]\n  output O[i in 2..4] : Tok = V[i]\n}\n")


def test_a_family_aligned_per_position_fails_off_by_one(folder):
    # O[i] = t[i-1] is the output at position i-1; t[i-1] sits at embed position i-2
    text = PREV_FAMILY + network("prev") + "".join([
        alignment("PrevFam", "prev", "Right", '  V[i] -> module "embed" output @ i-2\n  O[i] -> output @ i-1'),
        alignment("PrevFam", "prev", "Shifted", '  V[i] -> module "shift" output @ i-1\n  O[i] -> output @ i-1'),
        alignment("PrevFam", "prev", "SiteOff", '  V[i] -> module "embed" output @ i-1\n  O[i] -> output @ i-1'),
        alignment("PrevFam", "prev", "OutOff", '  V[i] -> module "embed" output @ i-2\n  O[i] -> output @ i-2'),
    ]) + "".join(check(n, "V, V[3]") for n in ("Right", "Shifted", "SiteOff")) + check("OutOff", "V")
    r = run(text, folder)
    assert_true_claim(r["Right"])
    assert_true_claim(r["Shifted"])
    assert r["SiteOff"].status == "failed"
    # read one position early the network is right on ~1 pair in 10; on those the whole-family
    # interchange agrees (IIA 1.000), which passed before the keep-rate guard
    (off,) = [c for c in r["OutOff"].claims if c.kind == "declared"]
    assert off.iia.estimate == 1.0 and off.kept < 0.2 * off.sampled
    assert r["OutOff"].status == "failed" and "keep-rate guard" in r["OutOff"].reason


# ───────────────────────── 4b. a redundant copy ─────────────────────────

def test_a_variable_stored_twice_must_be_patched_in_both_places(folder):
    text = COPY_X + network("dup") + "".join([
        alignment("CopyX", "dup", "One", '  S -> module "copy_a" output\n  O -> output'),
        alignment("CopyX", "dup", "Both", '  S -> module "copy_a" output, module "copy_b" output\n  O -> output'),
    ]) + check("One", "S") + check("Both", "S")
    r = run(text, folder)
    assert_true_claim(r["Both"])
    assert r["One"].status == "failed"
    assert r["One"].claims[0].iia.estimate < 0.8  # the output lands halfway between base and source


# ───────────────────────── 5. a real output and its tolerance ─────────────────────────

MEAN = ("model Mean {\n" + INPUTS + "  var M : real = (x + y) / 2\n  output O : real = M\n}\n")


@pytest.mark.parametrize(("tol", "passes"), [("0.05", True), ("0.04", True), ("0.02", False), ("0", False)])
def test_a_value_output_passes_only_within_a_tolerance_above_its_error(folder, tol, passes):
    text = MEAN + network("mean", "  output : value\n") + alignment(
        "Mean", "mean", "A", '  M -> module "mean" output : [0:1]\n  O -> output') + check(
        "A", "M", expect=f"iia >= 0.99 within {tol}")
    r = run(text, folder)["A"]
    if passes:
        assert_true_claim(r)
    else:
        assert r.status == "failed", r.reason
        assert r.claims[0].kept == 0  # off by OFFSET on every input


# ───────────────────────── 6–8. outputs that ignore the variable ─────────────────────────

IGNORED = ("model CopyY {\n" + INPUTS + "  var A : D = x\n  output O : D = y\n}\n")


def test_a_site_the_output_never_reads_does_not_pass(folder):
    # right on every input through a skip path: interchanging `feat` never moves the output
    text = COPY_X + network("bypass") + alignment(
        "CopyX", "bypass", "A", '  S -> module "feat" output : [0:1]\n  O -> output') + check("A", "S")
    r = run(text, folder)["A"]
    assert r.status == "failed"
    (claim,) = r.claims
    assert claim.kept == claim.sampled and claim.moved == 0


def test_das_at_a_site_without_a_gradient_path_is_a_check_error_not_a_crash(folder):
    # before: torch's "element 0 of tensors does not require grad" escaped training (exit 3, "a bug
    # in causalspec"). `bypass` never reads `feat`; `late`'s layers.1 thresholds (x − y), so its
    # output has no gradient from layers.0 either. Both are the user's network: a check error.
    text = COPY_X + network("bypass") + alignment(
        "CopyX", "bypass", "Unread", '  S -> module "feat" output : das(k=1)\n  O -> output') + check(
        "Unread", "S", "  pool 48\n  train 512\n  steps 50\n") + BOTH_EQ + network("late") + alignment(
        "BothEq", "late", "Thresholded", '  E -> module "layers.0" output : das(k=1)\n  O -> output') + check(
        "Thresholded", "E", "  pool 48\n  train 512\n  steps 50\n")
    r = run(text, folder)
    for name in ("Unread", "Thresholded"):
        assert r[name].status == "error", (name, r[name].status, r[name].reason)
        assert "no gradient with respect to the learned subspace" in r[name].reason
        assert "slice" in r[name].reason  # the fix


def test_a_network_computing_something_else_does_not_pass(folder):
    # the model says O = x, the network outputs y
    text = COPY_X + network("ignore") + alignment(
        "CopyX", "ignore", "A", '  S -> module "feat" output : [0:1]\n  O -> output') + check("A", "S")
    assert_not_passed(run(text, folder)["A"])


def test_a_network_computing_something_else_does_not_pass_on_the_few_inputs_it_gets_right(folder):
    # the network outputs y, the model says O = x; patching all of `feat` (x and y) from the source
    # sets the output to the source's y, which equals its x on every kept pair (kept: x == y on base
    # and source, about 1 pair in 16). Before the keep-rate guard this PASSED with IIA 1.000 on 6 of
    # 128 pairs, with only a warning.
    text = COPY_X + network("ignore") + alignment(
        "CopyX", "ignore", "A", '  S -> module "feat" output\n  O -> output') + check("A", "S")
    r = run(text, folder)["A"]
    (claim,) = r.claims
    assert claim.iia.estimate == 1.0 and claim.moved > 0  # what the kept pairs alone would say
    assert r.status == "failed"
    assert "keep-rate guard" in r.reason and f"only {claim.kept} of 128 pairs kept" in r.reason


def test_a_claim_about_a_variable_neither_model_nor_network_reads_does_not_pass(folder):
    # the network is right (O = y) but no interchange of A can change the output: vacuous, not a pass
    text = IGNORED + network("ignore") + alignment(
        "CopyY", "ignore", "A", '  A -> module "feat" output : [0:1]\n  O -> output') + check("A", "A")
    r = run(text, folder)["A"]
    assert_not_passed(r)
    assert r.claims[0].changed == 0 and r.claims[0].moved == 0


def test_a_constant_network_never_passes(folder):
    text = COPY_X + network("const") + "".join([
        alignment("CopyX", "const", "Feat", '  S -> module "feat" output : [0:1]\n  O -> output'),
        alignment("CopyX", "const", "Whole", '  S -> module "feat" output\n  O -> output'),
    ]) + check("Feat", "S") + check("Whole", "S", expect="iia >= 0.1")
    r = run(text, folder)
    for name in ("Feat", "Whole"):
        assert_not_passed(r[name])
        assert r[name].claims[0].moved == 0
