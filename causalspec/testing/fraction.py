"""A hand-built sequence network that computes a mean: the fraction of the tokens so far equal to x.

Why: `real` variables (`var frac[i in 1..N] : real = mean(j in 1..i : t[j] == x)`), checks with
a tolerance (`within 0.01`) and networks read as a value (`output : value`) need a network whose
real-valued mechanism is known. Layout, for N tokens over a vocabulary of V:

* input ids `[batch, N + 1]`: position 0 holds x, position i holds t[i];
* `embed` (nn.Embedding, identity): one-hot tokens `[batch, N + 1, V]`;
* `prefix` (`PrefixMean`): at position i >= 1, frac[i] = #{j <= i : t[j] == x} / i, and at
  position i the match t[i] == x: `[batch, N + 1, 2]` (position 0: zeros);
* `mix` (nn.Linear(2, 4), no bias): a signed permutation into 4 dimensions — frac in dimension 2
  (with sign −1), the match in dimension 0; exact in floats, so exact values stay exact;
* `head` (nn.Linear(4, 1)): reads frac back, `[batch, N + 1, 1]`; the output O = frac[N] is read
  at position N (`O -> output @ 4`).

Every frac[4] is a multiple of 1/4, which a float holds exactly: the network's output at
position N equals the model's value exactly (a check `within 0` passes). Two variants:

* `build_leaky`: the head also recomputes frac[N] from the embeddings (not through `prefix`) and
  outputs `frac_site + LEAK * (recomputed − frac_site)`: right on every clean input (the two
  agree), but under an interchange at `prefix` it lands between the source's and the base's
  value — off by LEAK·|base − source|, more than a small tolerance;
* `build_shifted`: the output is frac[N] + SHIFT: off on every input;
* `build_wide` (two numbers per position: not a value) and `build_nan` (NaN where frac[i] is
  1/2) for the shape and non-finite rules; `build_last` and `build_flat` return only the last
  position's value, `[batch, 1]` and `[batch]` (read with `O -> output`, no position).
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file
from torch import nn

N = 4
VOCAB = 2  # token ids 0..1 (an enum of two values)
LEAK = 0.5
SHIFT = 0.1


def prefix_mean(onehot: torch.Tensor) -> torch.Tensor:
    """[frac[i], match[i]] at each position i >= 1 (zeros at position 0, which holds x)."""
    x = onehot[:, 0]  # [batch, V]
    match = (onehot[:, 1:] * x[:, None, :]).sum(-1)  # [batch, N]
    counts = torch.arange(1, match.shape[1] + 1, dtype=onehot.dtype, device=onehot.device)
    frac = match.cumsum(1) / counts
    feats = torch.stack([frac, match], dim=-1)  # [batch, N, 2]
    return torch.cat([torch.zeros_like(feats[:, :1]), feats], dim=1)


class PrefixMean(nn.Module):
    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return prefix_mean(onehot)


class FractionNet(nn.Module):
    def __init__(self, leak: float = 0.0, shift: float = 0.0, wide: bool = False, nan: bool = False,
                 last: str = "") -> None:
        super().__init__()
        self.last = last  # "" (every position), "column" ([batch, 1]) or "flat" ([batch])
        self.wide = wide
        self.nan = nan
        self.embed = nn.Embedding(VOCAB, VOCAB)
        self.prefix = PrefixMean()
        self.mix = nn.Linear(2, 4, bias=False)
        self.head = nn.Linear(4, 1)
        self.leak = leak
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(VOCAB))
            self.mix.weight.zero_()
            self.mix.weight[2, 0] = -1.0  # frac -> dimension 2, negated
            self.mix.weight[0, 1] = 1.0  # match -> dimension 0
            self.head.weight.zero_()
            self.head.weight[0, 2] = -1.0
            self.head.bias.fill_(shift)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        onehot = self.embed(ids)
        out = self.head(self.mix(self.prefix(onehot)))  # [batch, N + 1, 1]
        if self.leak:  # frac recomputed by a plain function: no hook on `prefix` reaches it
            out = (1 - self.leak) * out + self.leak * prefix_mean(onehot)[..., :1]
        if self.nan:
            out = torch.where(out == 0.5, torch.full_like(out, float("nan")), out)
        if self.wide:
            out = torch.cat([out, -out], dim=-1)  # [batch, N + 1, 2]
        if self.last:
            out = out[:, -1] if self.last == "column" else out[:, -1, 0]
        return out


def build() -> FractionNet:
    return FractionNet()


def build_leaky() -> FractionNet:
    return FractionNet(leak=LEAK)


def build_shifted() -> FractionNet:
    return FractionNet(shift=SHIFT)


def build_wide() -> FractionNet:
    return FractionNet(wide=True)


def build_nan() -> FractionNet:
    return FractionNet(nan=True)


def build_last() -> FractionNet:
    return FractionNet(last="column")


def build_flat() -> FractionNet:
    return FractionNet(last="flat")


def encode(values: dict) -> torch.Tensor:
    """Ids `[batch, N + 1]`: x at position 0, then `t[1]` … `t[N]`."""
    cols = [torch.as_tensor(_ids(values[n]), dtype=torch.long).reshape(-1)
            for n in ["x", *(f"t[{i}]" for i in range(1, N + 1))]]
    return torch.stack(cols, dim=1)


def _ids(column) -> list[int]:
    return [{"a": 0, "b": 1}[str(v)] for v in column]


def save(path, net: FractionNet | None = None) -> None:
    net = net if net is not None else build()
    save_file({k: v.contiguous().clone() for k, v in net.state_dict().items()}, str(path))
