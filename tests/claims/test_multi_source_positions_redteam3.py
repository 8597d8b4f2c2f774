"""Red-team: multi-source interchanges whose variables live at different token positions of one
module, checked against an independent computation (plain torch hooks on the tool's own pairs).

The network `pos`: ids t[1..4] (0..2) at positions 0..3; module `emb` `[batch, 4, 1]` holds each
token's value; the head outputs the class t[2] + 3·t[3] (0..8), read from positions 1 and 2 only.
The model: A = t[2], B = t[3], O = A + 3B. `{A | B}` with A at `emb @ 1` and B at `emb @ 2`
patches position 1 from source 1 and position 2 from source 2 (IIA 1.000); with the positions
swapped each source's token lands at the other position, and the tool's IIA must be the one
computed here. The input space is small (81 inputs), so a source often coincides with the other
source, and 200 pairs include such pairs.
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


class PosNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(3, 1)
        with torch.no_grad():
            self.emb.weight.copy_(torch.tensor([[0.0], [1.0], [2.0]]))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)[..., 0]  # [batch, 4]
        v = h[:, 1] + 3 * h[:, 2]
        return -((v.unsqueeze(-1) - torch.arange(9, dtype=v.dtype)) ** 2)


def build_pos() -> nn.Module:
    return PosNet()


def encode(values: dict) -> torch.Tensor:
    return torch.stack([torch.as_tensor(values[f"t[{i}]"], dtype=torch.long).reshape(-1) for i in range(1, 5)],
                       dim=1)


MODEL = ("model Pos {\n  domain Tok = int 0..2\n  input t[1..4] : Tok\n  var A : Tok = t[2]\n  var B : Tok = t[3]\n"
         "  output O : int 0..8 = A + 3 * B\n}\n")
POSITIONS = {"Right": {"A": 1, "B": 2}, "Swapped": {"A": 2, "B": 1}}


def spec() -> str:
    text = MODEL + (f'network pos = torch "{HERE}:build_pos" weights "pos.safetensors" {{\n'
                    f'  encode "{HERE}:encode"\n}}\n')
    for name, at in POSITIONS.items():
        text += (f'align Pos to pos as {name} {{\n  A -> module "emb" output @ {at["A"]}\n'
                 f'  B -> module "emb" output @ {at["B"]}\n  O -> output\n}}\n')
        text += f"check {name} {{\n  interchange {{A | B}}\n  pairs 200 seed 7\n  expect iia >= 0.99\n}}\n"
    return text


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pos")
    save_file({k: v.contiguous().clone() for k, v in PosNet().state_dict().items()}, str(tmp / "pos.safetensors"))
    ir = load_text(spec(), str(tmp / "spec.cspec"), base_dir=tmp)
    return ir, {r.name: r for r in run_checks(ir, CheckOptions())}


def independent(ir, name: str) -> tuple[int, int, int]:
    """(kept, right, pairs whose two sources are the same input)."""
    (check,) = [c for c in ir.checks if c.name == name]
    (claim,) = [c for c in compile_check(ir, check).claims if c.kind == "declared"]
    pairs, net = claim.pairs, PosNet()
    keys = [f"t[{i}]" for i in range(1, 5)]

    def row(values: dict, i: int) -> list[int]:
        return [int(values[k][i]) for k in keys]

    def run(ids: list[int], patch: dict[int, float] | None = None) -> int:
        handle = None
        if patch:
            def hook(_m, _i, out):
                out = out.clone()
                for p, val in patch.items():
                    out[:, p, 0] = val
                return out
            handle = net.emb.register_forward_hook(hook)
        try:
            return int(net(torch.tensor([ids])).argmax(-1))
        finally:
            if handle is not None:
                handle.remove()

    kept = right = same = 0
    for i in range(pairs.n):
        base, sources = row(pairs.base, i), [row(s, i) for s in pairs.sources]
        same += sources[0] == sources[1]
        if any(run(v) != v[1] + 3 * v[2] for v in [base, *sources]):
            continue  # the network is right everywhere: nothing is dropped
        kept += 1
        src_of = {var: sources[g] for g, group in enumerate(claim.groups) for var in group}
        expected = src_of["A"][1] + 3 * src_of["B"][2]
        at = POSITIONS[name]
        patch = {at[var]: float(src_of[var][at[var]]) for var in "AB"}  # the source's own token there
        right += run(base, patch) == expected
    return kept, right, same


@pytest.mark.parametrize("name", list(POSITIONS))
def test_per_source_positions_match_an_independent_computation(setup, name):
    ir, results = setup
    r = results[name]
    kept, right, same = independent(ir, name)
    (claim,) = [c for c in r.claims if c.kind == "declared"]
    assert (claim.kept, claim.iia.successes) == (kept, right), (claim.iia, kept, right)
    assert same > 0  # the pairs include coinciding sources
    if name == "Right":
        assert r.status == "passed" and claim.iia.estimate == 1.0, r.reason
    else:
        assert r.status == "failed", r.reason


def test_multi_source_family_elements_each_from_their_own_source(tmp_path):
    """`{V[2] | V[3]}` on the per-position `prev` network (tests/claims/test_ground_truth_redteam.py):
    V[2] from source 1, V[3] from source 2, read at every output element. The right positions
    hold at 1.000 on every element (O[4], untouched, included); one position late, O[2] never
    moves and O[3] reads V[2]'s source where V[3]'s is expected: the check fails."""
    from tests.claims import test_ground_truth_redteam as g

    state = {k: v.detach().contiguous().clone() for k, v in g.PrevNet().state_dict().items()}
    save_file(state, str(tmp_path / "prev.safetensors"))
    text = g.PREV_FAMILY + g.network("prev") + "".join([
        g.alignment("PrevFam", "prev", "Right", '  V[i] -> module "embed" output @ i-2\n  O[i] -> output @ i-1'),
        g.alignment("PrevFam", "prev", "SiteOff", '  V[i] -> module "embed" output @ i-1\n  O[i] -> output @ i-1'),
    ]) + g.check("Right", "{V[2] | V[3]}, {V[2], V[4] | V[3]}") + g.check("SiteOff", "{V[2] | V[3]}")
    r = g.run(text, tmp_path)
    assert r["Right"].status == "passed", r["Right"].reason
    assert all(c.iia.estimate == 1.0 for c in r["Right"].claims)
    assert r["SiteOff"].status == "failed"
    elements = {c.label.split("→ ")[-1]: c for c in r["SiteOff"].claims if c.kind == "element"}
    assert elements["O[2]"].moved == 0 and elements["O[3]"].iia.estimate < 0.5
