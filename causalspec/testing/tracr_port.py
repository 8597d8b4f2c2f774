"""A plain-torch port of tracr's assembled transformer, so the zoo's compiled weights run without jax.

tracr (DeepMind's RASP compiler) assembles a compiled program into a haiku model
(`tracr/transformer/model.py`, weights from `tracr/compiler/assemble.py`): one-hot token and position
embeddings added into a residual stream, then per layer a multi-head attention sublayer and an MLP
sublayer, each added to the stream, no layer norm, ReLU MLPs, attention logits scaled by
1/sqrt(key_size), padding tokens masked out as keys, and a read-out that projects the final stream
onto the program's output space. This module does the same computation in torch, with the parameters
`examples/zoo/compile_zoo.py` exports (haiku's `w [in, out]` transposed to torch's `[out, in]`).

The residual stream is addressable by module sites: `resid.0` is the embeddings, `resid.{2l+1}` the
stream after layer l's attention and `resid.{2l+2}` after its MLP — tracr's `input_embeddings` and
`residuals[2l]`, `residuals[2l+1]`. Each is an `nn.Identity` called once per forward pass, so a
causalspec alignment `module "resid.2" output @ 3 : [0:5]` patches dimensions 0..4 of token 3 of the
stream after layer 0's MLP, and what it writes is what later layers read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file
from torch import nn


@dataclass(frozen=True)
class PortConfig:
    """The shapes of one compiled model (the `config` entry of a zoo layout JSON)."""

    d_model: int
    num_layers: int
    num_heads: int
    key_size: int
    mlp_hidden_size: int
    vocab_size: int
    n_positions: int
    output_dims: int
    pad_id: int | None = None

    @classmethod
    def from_layout(cls, layout: dict[str, Any]) -> PortConfig:
        c = layout["config"]
        pad = layout.get("pad")
        return cls(
            d_model=c["d_model"],
            num_layers=c["num_layers"],
            num_heads=c["num_heads"],
            key_size=c["key_size"],
            mlp_hidden_size=c["mlp_hidden_size"],
            vocab_size=c["vocab_size"],
            n_positions=c["n_positions"],
            output_dims=c["output_dims"],
            pad_id=None if pad is None else layout["token_ids"][pad],
        )


class TracrAttention(nn.Module):
    """haiku's MultiHeadAttention as tracr uses it: value size = key size, masked keys get -1e30."""

    def __init__(self, cfg: PortConfig) -> None:
        super().__init__()
        width = cfg.num_heads * cfg.key_size
        self.num_heads, self.key_size = cfg.num_heads, cfg.key_size
        self.query = nn.Linear(cfg.d_model, width)
        self.key = nn.Linear(cfg.d_model, width)
        self.value = nn.Linear(cfg.d_model, width)
        self.linear = nn.Linear(width, cfg.d_model)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.query(x).view(b, t, self.num_heads, self.key_size)
        k = self.key(x).view(b, t, self.num_heads, self.key_size)
        v = self.value(x).view(b, t, self.num_heads, self.key_size)
        logits = torch.einsum("bthd,bThd->bhtT", q, k) / math.sqrt(self.key_size)
        logits = logits.masked_fill(~key_mask[:, None, None, :], -1e30)
        weights = torch.softmax(logits, dim=-1)
        attn = torch.einsum("bhtT,bThd->bthd", weights, v).reshape(b, t, self.num_heads * self.key_size)
        out: torch.Tensor = self.linear(attn)
        return out


class TracrMLP(nn.Module):
    """tracr's dense block: Linear, ReLU, Linear."""

    def __init__(self, cfg: PortConfig) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(cfg.d_model, cfg.mlp_hidden_size)
        self.linear_2 = nn.Linear(cfg.mlp_hidden_size, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear_2(torch.relu(self.linear_1(x)))
        return out


class TracrLayer(nn.Module):
    """One tracr layer's parameters: an attention sublayer and an MLP sublayer."""

    def __init__(self, cfg: PortConfig) -> None:
        super().__init__()
        self.attn = TracrAttention(cfg)
        self.mlp = TracrMLP(cfg)


class TracrTransformer(nn.Module):
    """The assembled model: `forward(tokens [B, T]) -> [B, T, output_dims + 1]`.

    The first `output_dims` columns are the final residual stream projected onto the output space,
    before tracr's argmax (categorical outputs) or squeeze (numerical ones); the last column is the
    stream's `tokens:PAD` direction, 1 at padding positions, whose outputs tracr's `apply` never shows
    (it runs unpadded sequences). A zoo decode hook reads the output per real position.
    """

    def __init__(self, cfg: PortConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.n_positions, cfg.d_model)
        self.layers = nn.ModuleList([TracrLayer(cfg) for _ in range(cfg.num_layers)])
        self.resid = nn.ModuleList([nn.Identity() for _ in range(2 * cfg.num_layers + 1)])
        # tracr's read-out onto the output space, and a last row reading the `tokens:PAD` direction
        self.unembed = nn.Linear(cfg.d_model, cfg.output_dims + 1, bias=False)

    def streams(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream at every tap (embeddings, then after each sublayer)."""
        if self.cfg.pad_id is None:
            key_mask = torch.ones_like(tokens, dtype=torch.bool)
        else:
            key_mask = tokens != self.cfg.pad_id
        positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        x = self.resid[0](self.token_embed(tokens) + self.pos_embed(positions))
        out = [x]
        for i, module in enumerate(self.layers):
            layer = cast(TracrLayer, module)
            x = self.resid[2 * i + 1](x + layer.attn(x, key_mask))
            out.append(x)
            x = self.resid[2 * i + 2](x + layer.mlp(x))
            out.append(x)
        return out

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.unembed(self.streams(tokens)[-1])
        return out


def load_layout(path: str | Path) -> dict[str, Any]:
    """A zoo layout JSON (written by examples/zoo/compile_zoo.py)."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def build_port(layout: dict[str, Any]) -> TracrTransformer:
    """An unweighted port shaped for `layout`; causalspec (or `load_port`) loads the weights into it."""
    return TracrTransformer(PortConfig.from_layout(layout))


def load_port(layout_path: str | Path, weights_path: str | Path) -> TracrTransformer:
    """The port with its compiled weights, loaded strictly (every tensor present, none extra)."""
    model = build_port(load_layout(layout_path))
    model.load_state_dict(load_file(str(weights_path)), strict=True)
    return model.eval()


def encode_tokens(layout: dict[str, Any], sequences: list[list[str]]) -> torch.Tensor:
    """Token ids `[B, 1 + max_seq_len]`: BOS, then each sequence, padded with PAD to the model's length."""
    ids = layout["token_ids"]
    width = layout["max_seq_len"]
    rows = []
    for seq in sequences:
        if len(seq) > width:
            raise ValueError(f"a sequence of {len(seq)} tokens is longer than the model's {width}")
        rows.append([ids[layout["bos"]]] + [ids[t] for t in seq] + [ids[layout["pad"]]] * (width - len(seq)))
    return torch.tensor(rows, dtype=torch.long)


def decode_categorical(layout: dict[str, Any], outputs: torch.Tensor) -> list[list[Any]]:
    """Per example, the output value at every real position after BOS (argmax over the output space, as
    tracr's read-out), padding positions left out: what tracr's `apply` decodes on the unpadded input."""
    values = layout["output"]["values"]
    ids = outputs[..., :-1].argmax(dim=-1).tolist()
    pads = (outputs[..., -1] > 0.5).tolist()
    return [[values[i] for i, pad in zip(row[1:], flags[1:]) if not pad] for row, flags in zip(ids, pads)]


def decode_numerical(outputs: torch.Tensor) -> list[list[float]]:
    """Per example, the numerical output at every real position after BOS, padding left out (tracr's
    read-out of a numerical program: the output space's one dimension, squeezed)."""
    values = outputs[..., 0].tolist()
    pads = (outputs[..., -1] > 0.5).tolist()
    return [[v for v, pad in zip(row[1:], flags[1:]) if not pad] for row, flags in zip(values, pads)]
