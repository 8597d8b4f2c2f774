"""A hierarchical-equality network with a *planted, rotated* subspace per variable.

Why: to test that DAS finds what is there, the truth must be known exactly and must not be
axis-aligned (a slice search would find an axis-aligned one). This net is the hand-built
hier_eq net (`examples/hier_eq`: unit v of the first layer fires iff W == X == v, unit
20 + v iff Y == Z == v; the next layer reads only the two sums) followed by a fixed random
rotation Q of the first layer's 40 units, which the next layer undoes. So the output of
`layers.0` carries WX exactly along the one direction `Q @ (1_{0:20} / sqrt(20))` and YZ
along `Q @ (1_{20:40} / sqrt(20))` (`planted_subspaces`): interchanging that direction from
a source sets WX to the source's, and no other direction of layers.0 affects the output.

Spec usage (the builder takes no arguments, weights are written with `save_planted`):

    network planted = torch "…/causalspec/testing/planted.py:build_planted" weights "planted.safetensors" {
      encode "…/causalspec/testing/planted.py:encode"
    }
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

N_OBJ = 20
WIDTH = 2 * N_OBJ
SEED = 1234


def rotation(seed: int = SEED) -> torch.Tensor:
    """The planted rotation Q `[40, 40]` (orthogonal, seeded, independent of global RNG)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(WIDTH, WIDTH, generator=g, dtype=torch.float64))
    return q.float()


def planted_subspaces(seed: int = SEED) -> dict[str, torch.Tensor]:
    """Variable -> the unit direction `[40, 1]` of layers.0's output that carries it."""
    q = rotation(seed).double()
    ones = torch.zeros(WIDTH, 2, dtype=torch.float64)
    ones[:N_OBJ, 0] = 1 / math.sqrt(N_OBJ)
    ones[N_OBJ:, 1] = 1 / math.sqrt(N_OBJ)
    dirs = q @ ones
    return {"WX": dirs[:, :1].float(), "YZ": dirs[:, 1:].float()}


class PlantedHierEq(nn.Module):
    def __init__(self, seed: int = SEED):
        super().__init__()
        k = N_OBJ
        q = rotation(seed)
        self.embed = nn.Embedding(N_OBJ, N_OBJ)
        rot = nn.Linear(WIDTH, WIDTH, bias=False)
        l0, l1 = nn.Linear(4 * N_OBJ, WIDTH), nn.Linear(WIDTH, 2)
        self.layers = nn.ModuleList([
            nn.Sequential(l0, nn.ReLU(), rot),
            nn.Sequential(l1, nn.ReLU()),
        ])
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(N_OBJ))
            l0.weight.zero_()
            eye = torch.eye(N_OBJ)
            w_, x_, y_, z_ = (slice(i * N_OBJ, (i + 1) * N_OBJ) for i in range(4))
            l0.weight[0:k, w_] = eye
            l0.weight[0:k, x_] = eye
            l0.weight[k:2 * k, y_] = eye
            l0.weight[k:2 * k, z_] = eye
            l0.bias.fill_(-1.0)
            rot.weight.copy_(q)  # x_rot = Q h
            w1 = torch.zeros(2, WIDTH)
            w1[0].fill_(1.0)
            w1[1].fill_(-1.0)
            l1.weight.copy_(w1 @ q.T)  # reads h = Q^T x_rot
            l1.bias.copy_(torch.tensor([-1.0, 1.0]))
            self.head.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
            self.head.bias.copy_(torch.tensor([0.0, -1.0]))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids).flatten(1)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


def build_planted() -> PlantedHierEq:
    return PlantedHierEq()


def encode(values: dict) -> torch.Tensor:
    cols = [torch.as_tensor(values[v], dtype=torch.long).reshape(-1) for v in ("W", "X", "Y", "Z")]
    return torch.stack(cols, dim=1)


def decode(logits: torch.Tensor) -> list:
    """Decode hook: argmax -> bool (for tests of networks read through a hook)."""
    return [bool(c) for c in logits.argmax(dim=-1).tolist()]


def save_planted(path) -> None:
    """Write the planted net's weights as safetensors (atomically)."""
    import tempfile

    from safetensors.torch import save_file

    path = os.fspath(path)
    tensors = {k: v.detach().contiguous().clone() for k, v in build_planted().state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians) between the column spaces of `a` and `b`."""
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    s = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.arccos(s)


# ───────────── a sequence network with a planted direction per position ─────────────

SEQ_N = 5  # token positions 1..SEQ_N (position 0 is BOS)
SEQ_VOCAB = 3  # token ids 0..2: the enum {a, b, c}
SEQ_WIDTH = 8  # width of `mix`'s output at each position
SEQ_SEED = 4321


class _Counts(nn.Module):
    """At each position, the number of tokens (BOS excluded) equal to its own: `[batch, T, 1]`."""

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        tokens = onehot[:, :, :SEQ_VOCAB]
        return torch.einsum("btv,bsv->bt", tokens, tokens[:, 1:]).unsqueeze(-1)


class _ReadCount(nn.Module):
    """Class scores `-2 (c - k)^2` for k = 0..SEQ_N, where c = the activation along `direction`."""

    direction: torch.Tensor  # buffers, declared so that they type as tensors
    classes: torch.Tensor

    def __init__(self, direction: torch.Tensor):
        super().__init__()
        self.register_buffer("direction", direction.clone())
        self.register_buffer("classes", torch.arange(SEQ_N + 1, dtype=torch.float32))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        c = h @ self.direction  # [batch, T]
        return -2.0 * (c.unsqueeze(-1) - self.classes) ** 2


class PlantedCounts(nn.Module):
    """tracr's `make_hist` per position, with each position's count planted along one rotated
    direction of `mix`'s output (so a slice search cannot find it, and DAS must).

    ids `[batch, SEQ_N + 1]` (BOS = id SEQ_VOCAB at 0) → `embed` (one-hot, `[batch, T, 4]`) →
    `counts` (`[batch, T, 1]`: H[i], the number of tokens equal to t[i]) → `mix` (`[batch, T, 8]`:
    `Q @ [count, one-hot token, 0, 0, 0]`, Q a fixed random rotation) → `head` (reads the count
    back along `Q[:, 0]`, `[batch, T, SEQ_N + 1]` class scores). So H[i] lives exactly along
    `Q[:, 0]` of `module "mix" output @ i` (`planted_count_direction`); `embed` holds only the
    tokens, before any count is computed.
    """

    def __init__(self, seed: int = SEQ_SEED):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(SEQ_WIDTH, SEQ_WIDTH, generator=g, dtype=torch.float64))
        q = q.float()
        self.embed = nn.Embedding(SEQ_VOCAB + 1, SEQ_VOCAB + 1)
        self.counts = _Counts()
        self.mix = nn.Linear(1 + SEQ_VOCAB + 1, SEQ_WIDTH, bias=False)
        self.head = _ReadCount(q[:, 0])
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(SEQ_VOCAB + 1))
            self.mix.weight.copy_(q[:, :1 + SEQ_VOCAB + 1])  # [count, one-hot] → Q's first columns
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        onehot = self.embed(ids)
        return self.head(self.mix(torch.cat([self.counts(onehot), onehot], dim=-1)))


def build_planted_counts() -> PlantedCounts:
    return PlantedCounts()


def planted_count_direction(seed: int = SEQ_SEED) -> torch.Tensor:
    """The unit direction `[SEQ_WIDTH, 1]` of `mix`'s output (at every position) that carries H[i]."""
    return PlantedCounts(seed).head.direction.reshape(-1, 1).clone()


def encode_tokens(values: dict) -> torch.Tensor:
    """Ids `[batch, SEQ_N + 1]`, BOS first, from the family `t[1]`… of tokens a, b, c."""
    cols = [torch.as_tensor([{"a": 0, "b": 1, "c": 2}[str(v)] for v in values[f"t[{i}]"]], dtype=torch.long)
            for i in range(1, SEQ_N + 1)]
    return torch.stack([torch.full_like(cols[0], SEQ_VOCAB), *cols], dim=1)


def save_planted_counts(path) -> None:
    """Write the planted sequence net's weights (and buffers) as safetensors."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in build_planted_counts().state_dict().items()},
              os.fspath(path))
