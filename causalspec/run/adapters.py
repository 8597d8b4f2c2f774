"""Adapters: how high-level inputs become network inputs, and network outputs become values.

Why an adapter per backend: the engine only needs four things from a network — encode a
batch of high-level inputs, run it, decode the output into the model's output domain, and
say which token positions a site binding means for each row. A torch network gets them
from the user's `encode`/`decode` hooks; a Hugging Face LM from prompt templates, a
tokenizer and answer tokens (`causalspec.run.hf_adapter`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch

from causalspec.run.loading import LoadedNetwork, NetworkLoadError
from causalspec.semantics.domains import Domain
from causalspec.semantics.model import CausalModel

UNDECODABLE = -1  # a prediction outside the output domain (never equals a label)


class CheckUsageError(Exception):
    """A problem with the spec that only shows at check time (e.g. token counts differ)."""


@dataclass
class Batch:
    """A batch of encoded inputs. `rows` are the high-level values (array representation)."""

    inputs: Any  # tensor or dict of tensors handed to the module
    rows: dict[str, np.ndarray]
    size: int
    meta: dict = field(default_factory=dict)


class Adapter(Protocol):
    sequence: bool  # whether activations have a sequence axis

    def encode(self, rows: Mapping[str, np.ndarray]) -> Batch: ...

    def forward(self, batch: Batch) -> torch.Tensor: ...

    def predict(self, raw: torch.Tensor, batch: Batch) -> np.ndarray: ...

    def positions(self, batch: Batch, binding) -> torch.Tensor | None: ...

    def describe_row(self, batch: Batch, i: int) -> str: ...


class TorchAdapter:
    """A user `nn.Module` with an `encode` hook (required) and an optional `decode` hook.

    Without a decode hook the output is decoded by argmax over the last axis: class i is
    the i-th value of the output domain (`false, true` for bool; `lo..hi` for ints).
    """

    sequence = False

    def __init__(self, net: LoadedNetwork, model: CausalModel, output: str):
        if net.encode_hook is None:
            raise NetworkLoadError(f"network `{net.name}` needs an `encode \"file.py:function\"` hook: "
                                   "causalspec cannot guess how high-level inputs become tensors")
        self.net = net
        self.model = model
        self.output = output
        self.domain: Domain = model.domain(output)

    def encode(self, rows: Mapping[str, np.ndarray]) -> Batch:
        values = {k: self.model.domain(k).decode(v) for k, v in rows.items()}
        n = len(next(iter(rows.values())))
        try:
            inputs = self.net.encode_hook(values)
        except Exception as exc:
            raise NetworkLoadError(f"network `{self.net.name}`: encode hook raised {type(exc).__name__}: {exc}") \
                from exc
        return Batch(_to_device(inputs, self.net.device), dict(rows), n)

    def forward(self, batch: Batch) -> torch.Tensor:
        module = self.net.module
        out = module(**batch.inputs) if isinstance(batch.inputs, dict) else module(batch.inputs)
        if hasattr(out, "logits"):
            out = out.logits
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def predict(self, raw: torch.Tensor, batch: Batch) -> np.ndarray:
        if self.net.decode_hook is not None:
            try:
                values = list(self.net.decode_hook(raw))
            except Exception as exc:
                raise NetworkLoadError(f"network `{self.net.name}`: decode hook raised "
                                       f"{type(exc).__name__}: {exc}") from exc
            out = np.full(batch.size, UNDECODABLE, dtype=np.int64)
            for i, v in enumerate(values):
                member = self.domain.lookup(v)
                if member is not None:
                    out[i] = self.domain.codes(self.domain.encode([member]))[0]
            return out
        if raw.dim() != 2 or raw.shape[0] != batch.size:
            raise NetworkLoadError(f"network `{self.net.name}`: output of shape {tuple(raw.shape)} cannot be "
                                   "decoded by argmax; expected [batch, classes] or give a decode hook")
        if raw.shape[1] != self.domain.size:
            raise NetworkLoadError(f"network `{self.net.name}`: {raw.shape[1]} output classes but the output "
                                   f"`{self.output}` has {self.domain.size} values ({self.domain.describe()})")
        return raw.argmax(dim=-1).cpu().numpy().astype(np.int64)

    def positions(self, batch: Batch, binding) -> torch.Tensor | None:
        specs = binding.positions
        if not specs or all(p.kind == "all" for p in specs):
            return None
        idx = []
        for p in specs:
            if p.kind == "index":
                idx.append(p.index)
            elif p.kind == "range":
                idx.extend(range(p.lo, p.hi + 1))
            else:
                raise CheckUsageError(f"position `{p.name or p.kind}` needs a prompt template; network "
                                      f"`{self.net.name}` takes tensors from an encode hook")
        return torch.tensor([idx] * batch.size, dtype=torch.long)

    def describe_row(self, batch: Batch, i: int) -> str:
        return ", ".join(f"{k}={self.model.domain(k).format(self.model.domain(k).decode(v[i:i + 1])[0])}"
                         for k, v in batch.rows.items())


def _to_device(x: Any, device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def labels_to_codes(domain: Domain, values: np.ndarray) -> np.ndarray:
    """Model array representation -> 0-based codes (what predictions are compared with)."""
    return domain.codes(values)


def rows_subset(rows: Mapping[str, np.ndarray], index: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    index = np.asarray(index, dtype=np.int64)
    return {k: v[index] for k, v in rows.items()}
