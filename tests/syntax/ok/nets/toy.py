"""A toy torch network for the golden spec corpus (tests/syntax/ok/*.cspec).

Spec files name `nets/toy.py:build`, `nets/toy.py:encode` and `nets/toy.py:decode`, with the
weights `nets/toy.safetensors` (`build()` under `torch.manual_seed(0)`); the analyser only
checks that these files exist. Nothing in the test suite imports or runs them.
"""

from __future__ import annotations


def build():
    """Embedding -> two (Linear, ReLU) layers -> Linear(32, 2), with module paths `layers.<i>`."""
    import torch
    from torch import nn

    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(6, 8)
            self.layers = nn.ModuleList([nn.Sequential(nn.Linear(32, 32), nn.ReLU()),
                                         nn.Sequential(nn.Linear(32, 32), nn.ReLU())])
            self.head = nn.Linear(32, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.embed(ids).flatten(1)
            for layer in self.layers:
                h = layer(h)
            return self.head(h)

    return Toy()


def encode(batch):
    """{"W": [...], "X": [...], "Y": [...], "Z": [...]} -> LongTensor [batch, 4]."""
    import torch

    return torch.tensor([batch["W"], batch["X"], batch["Y"], batch["Z"]], dtype=torch.long).T


def decode(logits):
    """Logits [batch, 2] -> list of bools (class 1 = true)."""
    return [bool(x) for x in logits.argmax(-1).tolist()]
