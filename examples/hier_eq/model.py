"""Networks for the hierarchical-equality example (Geiger et al. 2023, DAS).

High-level causal model, over objects ``W, X, Y, Z`` in ``Obj = int 0..19``::

    WX = (W == X)
    YZ = (Y == Z)
    O  = (WX == YZ)

Two low-level networks share one interface (input ``LongTensor [batch, 4]`` of
object ids in the order W, X, Y, Z; output logits ``[batch, 2]``, class 1 =
true) and one set of stable module paths (``embed``, ``layers.<i>``, ``head``),
so a spec can name ``layers.0`` for either of them:

* ``build()`` -- ``HierEqMLP``, trained by ``train.py``. Its mechanism is
  whatever training found (the DAS paper reports it is distributed, not
  neuron-aligned).
* ``build_hand()`` -- ``HandBuiltHierEq``, integer weights whose mechanism is
  known exactly: dims ``0:20`` of ``layers.0`` carry WX, dims ``20:40`` carry
  YZ. It is the ground truth the checker should confirm.

Importing this module has no side effects: no RNG is touched, nothing is
written. It also holds small reference helpers (``high_level``,
``sample_balanced``, ``interchange``) written directly against torch so that
tests can cross-check causalspec's own runner against something independent.
"""

from __future__ import annotations

import os
import tempfile

import torch
from torch import nn

N_OBJ = 20
"""Size of the object domain ``Obj = int 0..19``."""

INPUTS = ("W", "X", "Y", "Z")
"""Input variable names, in the column order the networks take them."""

# Trained-MLP sizes. The DAS paper uses random object vectors fed to an MLP;
# d_obj=16 random vectors and 3 ReLU layers of 128 units make the 20-object
# task converge to 100% (exhaustively checked) in a few seconds on 2 CPU
# cores, while staying small enough (~170 KB of float32) to commit.
D_OBJ = 16
HIDDEN = 128
N_LAYERS = 3

HAND_K = N_OBJ
"""Width of each variable's slice in the hand-built net's ``layers.0``.

One ReLU unit cannot compute W == X from one-hot inputs (equality over 20
values is not linearly separable), so WX needs one unit per object value:
unit v fires iff W == X == v, and WX is the sum of the slice.
"""


class HierEqMLP(nn.Module):
    """Embedding -> ``N_LAYERS`` x (Linear, ReLU) -> Linear(hidden, 2).

    The embeddings are fixed random vectors (not trained), as in the DAS
    setup, so the network has to learn equality of the vectors rather than
    memorise object identities through the embedding table.
    """

    def __init__(self, d_obj: int = D_OBJ, hidden: int = HIDDEN, n_layers: int = N_LAYERS):
        super().__init__()
        self.embed = nn.Embedding(N_OBJ, d_obj)
        self.embed.weight.requires_grad_(False)
        dims = [4 * d_obj] + [hidden] * n_layers
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(dims, dims[1:])
        )
        self.head = nn.Linear(hidden, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids).flatten(1)  # [batch, 4 * d_obj], W|X|Y|Z
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


class HandBuiltHierEq(nn.Module):
    """Exact hand-built network; see the module docstring and README.

    * ``embed``: identity 20x20, i.e. one-hot objects; input is 80 dims,
      ``[W one-hot | X one-hot | Y one-hot | Z one-hot]``.
    * ``layers.0`` (80 -> 40, ReLU): unit ``v`` = relu(W_v + X_v - 1), which
      is 1 iff W == X == v; unit ``20 + v`` = relu(Y_v + Z_v - 1). So the
      sum of dims 0:20 is WX and the sum of dims 20:40 is YZ.
    * ``layers.1`` (40 -> 2, ReLU): ``both`` = relu(WX + YZ - 1),
      ``neither`` = relu(1 - WX - YZ); it reads layers.0 only through those
      two sums, so swapping dims 0:20 swaps exactly WX.
    * ``head`` (2 -> 2): logit0 = 0, logit1 = 2 * (both + neither) - 1,
      i.e. +1 when O is true and -1 when false (margin 1, never a tie).

    All weights are small integers, so every activation is an exact integer
    in float32.
    """

    def __init__(self):
        super().__init__()
        k = HAND_K
        self.embed = nn.Embedding(N_OBJ, N_OBJ)
        self.layers = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(4 * N_OBJ, 2 * k), nn.ReLU()),
                nn.Sequential(nn.Linear(2 * k, 2), nn.ReLU()),
            ]
        )
        self.head = nn.Linear(2, 2)
        for p in self.parameters():
            p.requires_grad_(False)

        self.embed.weight.copy_(torch.eye(N_OBJ))

        l0 = self.layers[0][0]
        l0.weight.zero_()
        eye = torch.eye(N_OBJ)
        w_, x_, y_, z_ = (slice(i * N_OBJ, (i + 1) * N_OBJ) for i in range(4))
        l0.weight[0:k, w_] = eye
        l0.weight[0:k, x_] = eye
        l0.weight[k : 2 * k, y_] = eye
        l0.weight[k : 2 * k, z_] = eye
        l0.bias.fill_(-1.0)

        l1 = self.layers[1][0]
        l1.weight[0].fill_(1.0)   # both    = relu(WX + YZ - 1)
        l1.weight[1].fill_(-1.0)  # neither = relu(1 - WX - YZ)
        l1.bias.copy_(torch.tensor([-1.0, 1.0]))

        self.head.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
        self.head.bias.copy_(torch.tensor([0.0, -1.0]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids).flatten(1)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


def build(seed: int = 0) -> HierEqMLP:
    """Freshly initialised ``HierEqMLP``, identical for the same ``seed``.

    Initialisation runs under ``torch.random.fork_rng`` so the caller's global
    RNG state is left untouched (building a model is side-effect free).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HierEqMLP()
    return model


def build_hand() -> HandBuiltHierEq:
    """The exact hand-built network (deterministic; no RNG involved)."""
    with torch.no_grad():
        return HandBuiltHierEq()


def encode(values: dict) -> torch.Tensor:
    """Encode hook: ``{"W": [...], "X": [...], "Y": [...], "Z": [...]}`` -> ``[batch, 4]`` ids."""
    missing = [v for v in INPUTS if v not in values]
    if missing:
        raise KeyError(f"missing input variables: {missing}")
    cols = [torch.as_tensor(values[v], dtype=torch.long).reshape(-1) for v in INPUTS]
    if len({c.numel() for c in cols}) != 1:
        raise ValueError("input variables have different batch sizes")
    ids = torch.stack(cols, dim=1)
    if ids.numel() and (ids.min() < 0 or ids.max() >= N_OBJ):
        raise ValueError(f"object ids must be in 0..{N_OBJ - 1}")
    return ids


def decode(logits: torch.Tensor) -> list:
    """Decode hook: argmax over the 2 classes -> ``bool`` (class 1 = true)."""
    return [bool(c) for c in logits.argmax(dim=-1).tolist()]


def save(model: nn.Module, path) -> None:
    """Write ``model.state_dict()`` as safetensors, atomically.

    Writes to a temp file in the destination directory and ``os.replace``s it,
    so a crash never leaves a truncated weights file behind.
    """
    path = os.fspath(path)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; weights are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load safetensors weights into ``model`` (strict: names and shapes must match)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(os.fspath(path)), strict=True)
    return model


# ---------------------------------------------------------------------------
# Reference helpers (independent of causalspec) for tests and scripts.


def high_level(w: int, x: int, y: int, z: int, *, WX=None, YZ=None) -> bool:
    """The high-level model; ``WX``/``YZ`` override the intermediate if given."""
    wx = (w == x) if WX is None else WX
    yz = (y == z) if YZ is None else YZ
    return wx == yz


def sample_balanced(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` inputs ``[n, 4]`` with WX and YZ each true half the time.

    Uniform sampling makes W == X only 5% of the time, so O would be true
    ~90% of the time and WX/YZ would rarely vary. Drawing WX and YZ as fair
    coins makes O balanced too (it is their XNOR) and makes interchange
    interventions on WX/YZ actually change the output half the time.
    """
    g = generator

    def pair(eq: torch.Tensor):
        a = torch.randint(N_OBJ, (n,), generator=g)
        # b != a uniformly: shift by 1..N_OBJ-1.
        b = (a + torch.randint(1, N_OBJ, (n,), generator=g)) % N_OBJ
        return a, torch.where(eq, a, b)

    wx = torch.rand(n, generator=g) < 0.5
    yz = torch.rand(n, generator=g) < 0.5
    w, x = pair(wx)
    y, z = pair(yz)
    return torch.stack([w, x, y, z], dim=1)


def interchange(
    model: nn.Module, base: torch.Tensor, source: torch.Tensor, module: str, dims: slice
) -> torch.Tensor:
    """Logits of ``model(base)`` with ``module``'s output dims replaced by their value on ``source``."""
    target = model.get_submodule(module)
    with torch.no_grad():
        cache = {}
        h = target.register_forward_hook(lambda m, i, o: cache.__setitem__("src", o.detach()))
        try:
            model(source)
        finally:
            h.remove()

        def patch(m, i, o):
            o = o.clone()
            o[:, dims] = cache["src"][:, dims]
            return o

        h = target.register_forward_hook(patch)
        try:
            return model(base)
        finally:
            h.remove()
