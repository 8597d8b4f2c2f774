"""Red-team: multi-source interchanges (`{A | B}`) on a hand-built torch network, each number
checked against an independent computation (plain torch forward hooks on the same pairs).

The network `sum`: inputs x, y, z in 0..3; module `feat` = [x, y]; the head outputs the class
x + y (0..6), except that it outputs x + y + 1 (mod 7) whenever z == 3 (a defect, so the keep filter —
base *and every source* right — decides which pairs count). The model: A = x, B = y, O = A + B.

* `{A | B}` with A at feat[0], B at feat[1]: each variable from its own source, IIA 1.000;
* the same with the slices swapped: the tool's IIA must equal the one computed here;
* `{A, B}` one source with the bindings on different modules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.plan import compile_check
from causalspec.semantics.analyse import load_text

HERE = Path(__file__).resolve()


class SumNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Linear(3, 2, bias=False)
        self.copy_x = nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.feat.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
            self.copy_x.weight.copy_(torch.tensor([[1.0, 0, 0]]))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        f = self.feat(inp)
        v = f[:, 0] + f[:, 1]
        scores = -((v.unsqueeze(-1) - torch.arange(7, dtype=v.dtype)) ** 2)
        broken = torch.roll(scores, 1, dims=-1)  # class x + y + 1 (mod 7): wrong on every input
        return torch.where((inp[:, 2] == 3).unsqueeze(-1), broken, scores)


def build_sum() -> nn.Module:
    return SumNet()


def encode(values: dict) -> torch.Tensor:
    return torch.stack([torch.as_tensor(values[n], dtype=torch.float32).reshape(-1) for n in "xyz"], dim=1)


MODEL = ("model Sum {\n  domain D = int 0..3\n  input x, y, z : D\n  var A : D = x\n  var B : D = y\n"
         "  output O : int 0..6 = A + B\n}\n")


def spec() -> str:
    net = (f'network sum = torch "{HERE}:build_sum" weights "sum.safetensors" {{\n'
           f'  encode "{HERE}:encode"\n}}\n')
    aligns = {
        "Right": '  A -> module "feat" output : [0:1]\n  B -> module "feat" output : [1:2]\n  O -> output',
        "Swapped": '  A -> module "feat" output : [1:2]\n  B -> module "feat" output : [0:1]\n  O -> output',
    }
    text = MODEL + net
    for name, lines in aligns.items():
        text += f"align Sum to sum as {name} {{\n{lines}\n}}\n"
    for name in aligns:
        text += (f"check {name} as {name}Multi {{\n  interchange {{A | B}}\n  pairs 200 seed 3\n"
                 f"  expect iia >= 0.99\n}}\n")
        text += (f"check {name} as {name}One {{\n  interchange {{A, B}}\n  pairs 200 seed 4\n"
                 f"  expect iia >= 0.99\n}}\n")
    return text


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    save_file({k: v.contiguous().clone() for k, v in SumNet().state_dict().items()}, str(tmp / "sum.safetensors"))
    ir = load_text(spec(), str(tmp / "spec.cspec"), base_dir=tmp)
    results = {r.name: r for r in run_checks(ir, CheckOptions())}
    return ir, results


SLICES = {"Right": {"A": 0, "B": 1}, "Swapped": {"A": 1, "B": 0}}


def independent(ir, check_name: str, align: str) -> tuple[int, int, int]:
    """(sampled, kept, right) on the tool's own pairs, computed with plain torch hooks."""
    (check,) = [c for c in ir.checks if c.name == check_name]
    plan = compile_check(ir, check)
    (claim,) = [c for c in plan.claims if c.kind == "declared"]
    pairs = claim.pairs
    net = SumNet()

    def row(values: dict, i: int) -> dict:
        return {n: int(values[n][i]) for n in "xyz"}

    def label(v: dict) -> int:
        return v["x"] + v["y"]

    def predict(v: dict, patch: dict[int, float] | None = None) -> int:
        handle = None
        if patch:
            def hook(_m, _i, out):
                out = out.clone()
                for dim, val in patch.items():
                    out[:, dim] = val
                return out
            handle = net.feat.register_forward_hook(hook)
        try:
            return int(net(encode({k: [val] for k, val in v.items()})).argmax(-1))
        finally:
            if handle is not None:
                handle.remove()

    kept = right = 0
    for i in range(pairs.n):
        base = row(pairs.base, i)
        sources = [row(s, i) for s in pairs.sources]
        if predict(base) != label(base) or any(predict(s) != label(s) for s in sources):
            continue
        kept += 1
        # each variable from the source of its own group
        src_of = {var: sources[g] for g, group in enumerate(claim.groups) for var in group}
        expected = src_of["A"]["x"] + src_of["B"]["y"]
        # the site's activation on each variable's own source, at that variable's slice
        patch = {SLICES[align][var]: float(net.feat(encode({k: [v] for k, v in src_of[var].items()}))[0, dim])
                 for var in "AB" for dim in [SLICES[align][var]]}
        right += predict(base, patch) == expected
    return pairs.n, kept, right


@pytest.mark.parametrize("name", ["RightMulti", "SwappedMulti", "RightOne", "SwappedOne"])
def test_multi_source_iia_matches_an_independent_computation(setup, name):
    ir, results = setup
    r = results[name]
    align = name.replace("Multi", "").replace("One", "")
    sampled, kept, right = independent(ir, name, align)
    (claim,) = [c for c in r.claims if c.kind == "declared"]
    assert (claim.sampled, claim.kept) == (sampled, kept), r.reason
    assert claim.iia.successes == right, (claim.iia, right, kept)
    if align == "Right":
        assert r.status == "passed", r.reason
        assert right == kept
    elif name == "SwappedMulti":
        assert r.status == "failed", r.reason
