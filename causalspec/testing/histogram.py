"""A hand-built sequence network that computes tracr's `make_hist` exactly, per position.

Why: families (`var H[i in 1..N] = count(j in 1..N : t[j] == t[i])`), alignments of families
(`H[i] -> module "hist" output @ i`) and outputs read at a position (`O[3] -> output @ 3`) need
a network whose per-position mechanism is known. Layout, for N tokens over a vocabulary of V:

* input ids `[batch, N + 1]`: position 0 is BOS (id V), position i holds t[i] (tracr's layout);
* `embed` (nn.Embedding, identity): one-hot tokens `[batch, N + 1, V + 1]`;
* `hist` (`Histogram`): at position i, the one-hot of H[i] = #{j >= 1 : t[j] == t[i]} over the
  values 0..N, `[batch, N + 1, N + 1]` (BOS's row is the one-hot of 0);
* `head` (nn.Linear, identity): logits `[batch, N + 1, N + 1]`; O[i] = argmax at position i.

So H[i] lives exactly in `module "hist" output @ i : [0:N+1]`, and the output at position i is
H[i]. The encode hook reads `t[1]`… (a family) or `t1`… (the same model written unrolled).
"""

from __future__ import annotations

import torch
from safetensors.torch import save_file
from torch import nn

N = 5
VOCAB = 3  # token ids 0..2 (an enum of three values)


class Histogram(nn.Module):
    """One-hot of each position's count of equal tokens (BOS excluded)."""

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        tokens = onehot[:, :, :VOCAB]  # BOS's own column dropped: it matches no token
        counts = torch.einsum("btv,bsv->bt", tokens, tokens[:, 1:])
        return nn.functional.one_hot(counts.round().long().clamp(0, N), N + 1).to(onehot.dtype)


class HistNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB + 1, VOCAB + 1)
        self.hist = Histogram()
        self.head = nn.Linear(N + 1, N + 1)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(VOCAB + 1))
            self.head.weight.copy_(torch.eye(N + 1))
            self.head.bias.zero_()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.hist(self.embed(ids)))


def build() -> HistNet:
    return HistNet()


def encode(values: dict) -> torch.Tensor:
    """Ids `[batch, N + 1]` with BOS at 0; the tokens from `t[i]` (a family) or `ti` (unrolled)."""
    names = [f"t[{i}]" if f"t[{i}]" in values else f"t{i}" for i in range(1, N + 1)]
    cols = [torch.as_tensor(_ids(values[n]), dtype=torch.long).reshape(-1) for n in names]
    bos = torch.full_like(cols[0], VOCAB)
    return torch.stack([bos, *cols], dim=1)


def _ids(column) -> list[int]:
    return [{"a": 0, "b": 1, "c": 2}[str(v)] for v in column]


def save(path) -> None:
    save_file({k: v.contiguous().clone() for k, v in build().state_dict().items()}, str(path))
