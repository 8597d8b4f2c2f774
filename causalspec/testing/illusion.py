"""Hand-built networks for the illusion check (`score.illusion`), with their specs.

* `TOY_NET` / `TOY_SPEC`: Makelov et al.'s illusion, distilled — a site with a disconnected
  direction (carries the input x, read by nothing), a dormant one (never varies, read) and
  the real pathway. `TOY_SPEC` aligns V to `basis(file="v.safetensors", key="KEY")`:
  replace KEY by `v` (the illusory disconnected + dormant direction) or `true` (the real
  pathway); `write_toy(folder)` writes the hooks, an empty weights file and both bases.
* `XOR_NET` / `XOR_SPEC`: an exact alignment of two variables in separate dims, where
  patching the whole site moves the output less than patching one variable's dim (the
  situation the old whole-component comparison called an illusion); `write_xor(folder)`.

Used by tests/learned/test_diagnostics.py and tests/scenarios/test_scores.py.
"""

from __future__ import annotations

from pathlib import Path

TOY_NET = """
import torch
from torch import nn


class Toy(nn.Module):
    \"\"\"Makelov et al.'s illusion, distilled: the site h = [x + c/10, 0, x] has a
    *disconnected* direction e0 (carries x, and a little of another input c; read by
    nothing), a *dormant* direction e1 (always 0 on the network's inputs, read with weight
    2) and the real pathway e2 (carries x, read). The output is y = 2 h1 + h2 > 0.5.
    Patching along v = (e0 + e1)/sqrt(2) makes y the source's x — through e1, which never
    varies on real inputs.\"\"\"

    def __init__(self):
        super().__init__()
        self.h = nn.Identity()

    def forward(self, inputs):
        x, c = inputs[:, 0:1].float(), inputs[:, 1:2].float()
        h = self.h(torch.cat([x + c / 10, torch.zeros_like(x), x], dim=1))
        y = 2 * h[:, 1] + h[:, 2] - 0.5
        return torch.stack([-y, y], dim=1)


def build():
    return Toy()


def encode(values):
    return torch.tensor([[int(x), int(c)] for x, c in zip(values["x"], values["c"])])
"""

TOY_SPEC = """
model T {
  input x, c : bool
  var V : bool = x
  output o : bool = V
}
network net = torch "toy.py:build" weights "empty.safetensors" {
  encode "toy.py:encode"
}
align T to net as Al {
  V -> module "h" output : basis(file="v.safetensors", key="KEY")
  o -> output : argmax
}
check Al {
  interchange V
  pairs 128 seed 0
  expect iia >= 0.9
}
"""

XOR_NET = """
import torch
from torch import nn


class Xor(nn.Module):
    \"\"\"An exact alignment of two variables in separate dims: h = [A, B] with A = a and
    B = a xor d; the output is h0 xor h1 (= d).\"\"\"

    def __init__(self):
        super().__init__()
        self.h = nn.Identity()

    def forward(self, x):
        a, d = x[:, 0].float(), x[:, 1].float()
        b = a + d - 2 * a * d
        h = self.h(torch.stack([a, b], dim=1))
        y = h[:, 0] + h[:, 1] - 2 * h[:, 0] * h[:, 1] - 0.5
        return torch.stack([-y, y], dim=1)


def build():
    return Xor()


def encode(values):
    return torch.tensor([[int(a), int(d)] for a, d in zip(values["a"], values["d"])])
"""

XOR_SPEC = """
model X {
  input a : bool
  input d : bool ~ weighted { true: 1, false: 9 }
  var A : bool = a
  var B : bool = a != d
  output o : bool = A != B
}
network net = torch "xor.py:build" weights "empty.safetensors" {
  encode "xor.py:encode"
}
align X to net as Al {
  A -> module "h" output : [0:1]
  B -> module "h" output : [1:2]
  o -> output : argmax
}
check Al {
  interchange A
  pairs 256 seed 0
  expect iia >= 0.99
}
"""


def write_toy(folder: Path) -> None:
    """toy.py, empty.safetensors and v.safetensors (keys `v` and `true`) in `folder`."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / "toy.py").write_text(TOY_NET)
    save_file({}, str(folder / "empty.safetensors"))
    v = torch.tensor([[1.0], [1.0], [0.0]]) / 2 ** 0.5
    save_file({"v": v, "true": torch.tensor([[0.0], [0.0], [1.0]])}, str(folder / "v.safetensors"))


def write_xor(folder: Path) -> None:
    """xor.py and empty.safetensors in `folder` (the spec is `XOR_SPEC`)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / "xor.py").write_text(XOR_NET)
    save_file({}, str(folder / "empty.safetensors"))


__all__ = ["TOY_NET", "TOY_SPEC", "XOR_NET", "XOR_SPEC", "write_toy", "write_xor"]
