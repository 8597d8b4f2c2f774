"""An adapter that reads a sequence output at several positions at once (per-element training).

Why: a check of `O[i] -> output @ i` is scored once per output element, each run reading
`O[k]` at its own position (`claims.elements`). A learned featurizer (`das`, `boundless`) of
such an alignment is trained once, on the pooled objective — every training pair's
counterfactual targets at every element position, the loss summed over the elements — so
the training forwards must read all positions of one patched run. `ElementsAdapter` wraps
the check's adapter (torch or hf) and one copy of it per element, each reading its own
position: `predict` gives codes `[batch, elements]`, `read_value` values `[batch, elements]`,
and `readers` lets `run.train.class_scores` stack the class scores `[batch, elements,
classes]`. Everything else (encoding, forwards, site positions) is the wrapped adapter's.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch


class ElementsAdapter:
    """The adapter `inner`, read at each of `positions` (one reader per output element)."""

    def __init__(self, inner: Any, positions: Sequence[Any]):
        self.inner = inner
        self.readers = []
        for p in positions:
            reader = copy.copy(inner)
            reader.position = p
            self.readers.append(reader)
        self.elements = len(self.readers)

    def __getattr__(self, name: str) -> Any:  # encode, forward, positions, values, net, … (the wrapped adapter's)
        return getattr(self.inner, name)

    def predict(self, raw: torch.Tensor, batch) -> np.ndarray:
        """Output codes `[batch, elements]`: each reader's prediction at its position."""
        return np.stack([r.predict(raw, batch) for r in self.readers], axis=1)

    def read_value(self, raw: torch.Tensor, batch) -> torch.Tensor:
        """A real output's values `[batch, elements]` (differentiable)."""
        return torch.stack([r.read_value(raw, batch) for r in self.readers], dim=1)


__all__ = ["ElementsAdapter"]
