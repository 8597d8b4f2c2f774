"""Model families: one data table per architecture saying where each site lives.

Why tables, not code: the differences between GPT-2, Pythia, Llama and BERT are
*where* a tensor sits (which submodule, input or output, which columns of a fused
projection), not *what* a site means. Keeping them as data (in the spirit of pyvene's
per-model mappings) means a new family is a new table, and the resolution logic in
`TransformerFamily.locate` is shared and tested once. The family is detected from
``model.config.model_type``; anything else is a `GenericFamily`, which serves only
``module "path" input|output`` sites and ``logits`` (the model's output).

Definitions shared by all families (paths below are relative to a block):

* ``embed`` = the residual stream entering block 0 (the input of block 0): GPT-2's
  ``wte + wpe`` after dropout, Gemma's scaled embedding, BERT's embedding LayerNorm
  output. One definition everywhere, so ``embed`` is always the thing block 0 reads.
* ``resid.pre[L]`` / ``resid.post[L]`` = input / output of block L.
* ``resid.mid[L]`` = after attention, before the MLP (pre-norm: the MLP norm's input;
  BERT: the attention sublayer's post-LN output). Parallel-residual blocks have none.
* ``attn.out[L]`` / ``mlp.out[L]`` = the sublayer outputs added to the stream
  (attention output includes the out-projection bias; BERT: before dropout+LayerNorm).
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from causalspec.run.sites import (
    HeadResultAccess,
    ModuleAccess,
    ModuleIO,
    PreNormMidAccess,
    SiteAccess,
    SliceAccess,
    UnservableSite,
)
from causalspec.semantics.site_kinds import SiteAddress

# ───────────────────────── table vocabulary ─────────────────────────


@dataclass(frozen=True)
class HeadSlice:
    """Where one part (q, k or v) of a head sits in a projection tensor.

    ``parts`` > 1 means a fused projection. Concatenated layout (GPT-2 ``c_attn``):
    ``[q_0..q_H | k_0..k_H | v_0..v_H]``; interleaved layout (NeoX ``query_key_value``):
    ``[q_0 k_0 v_0 | q_1 k_1 v_1 | ...]``.
    """

    path: str
    io: ModuleIO = "output"
    part: int = 0
    parts: int = 1
    interleaved: bool = False

    def columns(self, head: int, n_heads: int, head_dim: int) -> tuple[int, int]:
        """(first column of this head's slice, total width of the tensor)."""
        if self.interleaved:
            start = (head * self.parts + self.part) * head_dim
        else:
            start = (self.part * n_heads + head) * head_dim
        return start, self.parts * n_heads * head_dim


@dataclass(frozen=True)
class PreNormMid:
    """``resid.mid`` of a pre-norm block, reached through its two norms and attention
    (see `PreNormMidAccess`). ``absent_if`` names a config flag under which the block
    has no such point (NeoX ``use_parallel_residual``: attention and MLP both read
    ``resid.pre``, so nothing lies between them)."""

    attn_norm: str
    attn: str
    mlp_norm: str
    absent_if: str | None = None


@dataclass(frozen=True)
class FamilySpec:
    """The per-family table. Paths are relative to one block unless noted."""

    name: str
    model_types: tuple[str, ...]
    layers: str  # the ModuleList of blocks, relative to the base model
    attn_out: str  # module whose output is attn.out
    mlp_out: str  # module whose output is mlp.out
    resid_mid: PreNormMid | str  # a PreNormMid, or a module whose output *is* resid.mid
    q: HeadSlice
    k: HeadSlice
    v: HeadSlice
    o_proj: str  # attention out-projection: input = all heads' z
    o_proj_layout: Literal["linear", "conv1d"]  # weight [out, in] vs GPT-2 Conv1D [in, out]
    logits: tuple[str, ...]  # candidate LM-head paths relative to the model root
    causal: bool


GPT2 = FamilySpec(
    name="gpt2",
    model_types=("gpt2",),
    layers="h",
    attn_out="attn",
    mlp_out="mlp",
    resid_mid=PreNormMid(attn_norm="ln_1", attn="attn", mlp_norm="ln_2"),
    q=HeadSlice("attn.c_attn", part=0, parts=3),
    k=HeadSlice("attn.c_attn", part=1, parts=3),
    v=HeadSlice("attn.c_attn", part=2, parts=3),
    o_proj="attn.c_proj",
    o_proj_layout="conv1d",
    logits=("lm_head",),
    causal=True,
)

GPT_NEOX = FamilySpec(
    name="gpt-neox",
    model_types=("gpt_neox",),
    layers="layers",
    attn_out="attention",
    mlp_out="mlp",
    resid_mid=PreNormMid(
        attn_norm="input_layernorm",
        attn="attention",
        mlp_norm="post_attention_layernorm",
        absent_if="use_parallel_residual",
    ),
    q=HeadSlice("attention.query_key_value", part=0, parts=3, interleaved=True),
    k=HeadSlice("attention.query_key_value", part=1, parts=3, interleaved=True),
    v=HeadSlice("attention.query_key_value", part=2, parts=3, interleaved=True),
    o_proj="attention.dense",
    o_proj_layout="linear",
    logits=("lm_head", "embed_out"),  # embed_out in transformers < 4.50
    causal=True,
)

LLAMA = FamilySpec(
    name="llama-family",
    model_types=("llama", "mistral", "qwen2", "gemma"),
    layers="layers",
    attn_out="self_attn",
    mlp_out="mlp",
    resid_mid=PreNormMid(attn_norm="input_layernorm", attn="self_attn", mlp_norm="post_attention_layernorm"),
    q=HeadSlice("self_attn.q_proj"),
    k=HeadSlice("self_attn.k_proj"),
    v=HeadSlice("self_attn.v_proj"),
    o_proj="self_attn.o_proj",
    o_proj_layout="linear",
    logits=("lm_head",),
    causal=True,
)

BERT = FamilySpec(
    name="bert",
    model_types=("bert",),
    layers="encoder.layer",
    attn_out="attention.output.dense",
    mlp_out="output.dense",
    resid_mid="attention",  # post-LN: the attention sublayer's output is the stream
    q=HeadSlice("attention.self.query"),
    k=HeadSlice("attention.self.key"),
    v=HeadSlice("attention.self.value"),
    o_proj="attention.output.dense",
    o_proj_layout="linear",
    logits=("cls",),
    causal=False,
)

# TransformerLens's attention-only models as causalspec.run.attn_only implements them: no
# MLPs (`mlp` outputs 0), shortformer positions reach queries and keys only
ATTN_ONLY = FamilySpec(
    name="attn-only",
    model_types=("tl_attn_only",),
    layers="h",
    attn_out="attn",
    mlp_out="mlp",
    resid_mid=PreNormMid(attn_norm="ln_1", attn="attn", mlp_norm="ln_2"),
    q=HeadSlice("attn.q_proj"),
    k=HeadSlice("attn.k_proj"),
    v=HeadSlice("attn.v_proj"),
    o_proj="attn.o_proj",
    o_proj_layout="linear",
    logits=("lm_head",),
    causal=True,
)

FAMILY_SPECS: tuple[FamilySpec, ...] = (GPT2, GPT_NEOX, LLAMA, BERT, ATTN_ONLY)


@dataclass(frozen=True)
class Dims:
    """Sizes read from a HF config. GQA models have fewer k/v heads than q heads, and
    head_dim is taken from the config when it says so (Gemma: not hidden / heads)."""

    layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> Dims:
        n_heads = config.num_attention_heads
        return cls(
            layers=config.num_hidden_layers,
            d_model=config.hidden_size,
            n_heads=n_heads,
            n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // n_heads,
            vocab=config.vocab_size,
        )


# ───────────────────────── families ─────────────────────────

MODULE_SITES_LINE = 'module "<path>" input|output  (any submodule; "" is the model itself)'


class Family(ABC):
    """Knows which sites a model family has and resolves them to hook points."""

    name: str

    @abstractmethod
    def available_sites(self, config: Any = None) -> list[str]:
        """Human-readable list of the sites served for ``config``, e.g. ``resid.post[0..11]``."""

    @abstractmethod
    def locate(self, model: nn.Module, site: SiteAddress) -> SiteAccess:
        """Resolve ``site`` on ``model``; raise `UnservableSite` if it has no such site."""

    def unservable(self, site: SiteAddress, reason: str, config: Any = None) -> UnservableSite:
        return UnservableSite(site, self.name, reason, self.available_sites(config))

    def locate_module(self, model: nn.Module, site: SiteAddress, config: Any = None) -> ModuleAccess:
        """``module "path" input|output``: any submodule, by its ``named_modules`` path."""
        assert site.module_path is not None and site.module_io in ("input", "output")
        try:
            module = model.get_submodule(site.module_path)
        except AttributeError:
            raise self.unservable(site, submodule_hint(model, site.module_path), config) from None
        return ModuleAccess(site, module, site.module_io, width=None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GenericFamily(Family):
    """An ``nn.Module`` of unknown architecture: only module sites and ``logits``
    (the model's own output: a tensor, ``out[0]``, or ``out.logits``)."""

    model_type: str | None = None  # the HF model_type with no table, if any

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"unknown family (model_type {self.model_type!r})" if self.model_type else "unknown family"

    def available_sites(self, config: Any = None) -> list[str]:
        return ["logits  (the model's output)", MODULE_SITES_LINE]

    def locate(self, model: nn.Module, site: SiteAddress) -> SiteAccess:
        if site.kind == "module":
            return self.locate_module(model, site)
        if site.kind == "logits":
            return ModuleAccess(site, model, "output", width=None)
        raise self.unservable(site, "the architecture is unknown, so only module sites and logits exist")


def _span(n: int) -> str:
    return f"0..{n - 1}"


@dataclass(frozen=True)
class TransformerFamily(Family):
    """A HF transformer family described by a `FamilySpec` table."""

    spec: FamilySpec

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.spec.name

    def has_resid_mid(self, config: Any) -> bool:
        mid = self.spec.resid_mid
        return not (isinstance(mid, PreNormMid) and mid.absent_if and getattr(config, mid.absent_if, False))

    def available_sites(self, config: Any = None) -> list[str]:
        d = Dims.of(config)
        layers = _span(d.layers)
        residual = ["resid.pre", "resid.mid", "resid.post", "attn.out", "mlp.out"]
        if not self.has_resid_mid(config):
            residual.remove("resid.mid")
        lines = ["embed", *(f"{kind}[{layers}]" for kind in residual)]
        if d.n_kv_heads == d.n_heads:
            lines.append(f"head[L.H].q|k|v|z|result  (L in {layers}, H in {_span(d.n_heads)})")
        else:
            lines.append(f"head[L.H].q|z|result  (L in {layers}, H in {_span(d.n_heads)})")
            kv_heads = _span(d.n_kv_heads)
            lines.append(f"head[L.H].k|v  (L in {layers}, H in {kv_heads}; grouped-query attention)")
        lines += ["logits", MODULE_SITES_LINE]
        return lines

    def locate(self, model: nn.Module, site: SiteAddress) -> SiteAccess:
        config = model.config
        if site.kind == "module":
            return self.locate_module(model, site, config)
        d = Dims.of(config)
        if site.kind == "logits":
            for path in self.spec.logits:
                if _has_submodule(model, path):
                    return ModuleAccess(site, model.get_submodule(path), "output", d.vocab)
            looked = ", ".join(self.spec.logits)
            raise self.unservable(site, f"the model has no LM head (looked for {looked})", config)
        layer = 0 if site.kind == "embed" else site.layer
        assert layer is not None
        if layer >= d.layers:
            raise self.unservable(site, f"layer {layer} out of range (layers are {_span(d.layers)})", config)
        block_path = f"{base_prefix(model)}{self.spec.layers}.{layer}"

        def sub(rel: str) -> nn.Module:
            path = f"{block_path}.{rel}" if rel else block_path
            if not _has_submodule(model, path):  # a variant whose layout differs from the table
                raise self.unservable(site, f"the {self.name} table expects submodule {path!r}, not in this model",
                                      config)
            return model.get_submodule(path)

        kind = site.kind
        if kind in ("embed", "resid.pre", "resid.post"):
            return ModuleAccess(site, sub(""), "output" if kind == "resid.post" else "input", d.d_model)
        if kind in ("attn.out", "mlp.out"):
            sublayer = self.spec.attn_out if kind == "attn.out" else self.spec.mlp_out
            return ModuleAccess(site, sub(sublayer), "output", d.d_model)
        if kind == "resid.mid":
            mid = self.spec.resid_mid
            if not isinstance(mid, PreNormMid):
                return ModuleAccess(site, sub(mid), "output", d.d_model)
            if not self.has_resid_mid(config):
                raise self.unservable(
                    site,
                    f"{mid.absent_if}=True: attention and MLP both read resid.pre, nothing lies between them",
                    config,
                )
            return PreNormMidAccess(site, sub(mid.attn_norm), sub(mid.attn), sub(mid.mlp_norm), d.d_model)
        return self._locate_head(site, d, sub, config)

    def _locate_head(self, site: SiteAddress, d: Dims, sub: Any, config: Any) -> SiteAccess:
        part = site.kind.split(".", 1)[1]
        n_heads = d.n_kv_heads if part in ("k", "v") else d.n_heads
        assert site.head is not None
        if site.head >= n_heads:
            what = "key/value heads (grouped-query attention)" if n_heads != d.n_heads else "heads"
            raise self.unservable(site, f"head {site.head} out of range (layer has {n_heads} {what})", config)
        if part in ("q", "k", "v"):
            slot: HeadSlice = getattr(self.spec, part)
            start, total = slot.columns(site.head, n_heads, d.head_dim)
            return SliceAccess(site, ModuleAccess(site, sub(slot.path), slot.io, total), start, d.head_dim)
        start = site.head * d.head_dim  # z columns are head-major at the out-projection input
        if part == "z":
            inner = ModuleAccess(site, sub(self.spec.o_proj), "input", d.n_heads * d.head_dim)
            return SliceAccess(site, inner, start, d.head_dim)
        o_proj = sub(self.spec.o_proj)
        return HeadResultAccess(site, o_proj, self.spec.o_proj_layout, start, d.head_dim, d.d_model)


MAX_LISTED = 12  # submodules listed by name in an unknown-path message; more are counted


def submodule_hint(model: nn.Module, path: str) -> str:
    """Why `path` is no submodule of `model`, with what is there: a did-you-mean (a close
    name, or the same path under a prefix the user left out, e.g. ``model.layers.1`` for
    ``layers.1``) and the submodules of the deepest part of the path that exists.

    Why: a module path is typed from memory of another model's layout (``layers.9`` on a
    2-layer model, ``h.0`` on Llama); the fix is one of the names printed here, not a
    search through ``named_modules()``."""
    names = [name for name, _ in model.named_modules() if name]
    known = set(names)
    parts = path.split(".")
    depth = len(parts)
    # the same path below a prefix (`layers.1` -> `model.layers.1`), then close names, compared
    # on as many trailing components as the path has (`layers.9` ~ `model.layers.1`)
    close = [n for n in names if n.endswith("." + path)]
    tails: dict[str, str] = {}
    for n in names:
        tails.setdefault(".".join(n.split(".")[-depth:]), n)
    close += [tails[t] for t in difflib.get_close_matches(path, list(tails), n=3, cutoff=0.6)]
    close += difflib.get_close_matches(path, names, n=3, cutoff=0.6)
    close = [c for c in dict.fromkeys(close) if not path.startswith(c + ".")][:3]  # not a part of `path` itself
    prefix = next((".".join(parts[:i]) for i in range(depth - 1, 0, -1) if ".".join(parts[:i]) in known), "")
    parent = model.get_submodule(prefix) if prefix else model
    children = [f"{prefix}.{c}" if prefix else c for c, _ in parent.named_children()]
    where = f"`{prefix}` has" if prefix else "the model's top level has"
    listing = ", ".join(children[:MAX_LISTED]) + (f", … ({len(children)} in all)" if len(children) > MAX_LISTED
                                                   else "")
    hint = f"no submodule named {path!r}"
    if close:
        hint += f" (did you mean {' or '.join(map(repr, close))}?)"
    hint += f"; {where} {len(children)} submodule(s): {listing}" if children else f"; {where} no submodules"
    if any(p.isdigit() for p in parts):  # an indexed path: name the model's numbered stacks
        stacks = [f"{n}.0..{len(m) - 1}" for n, m in model.named_modules()
                  if n and isinstance(m, nn.ModuleList) and len(m) and n != prefix]
        if stacks:
            hint += f"; numbered submodules: {', '.join(stacks[:4])}"
    return hint


def _has_submodule(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True


def base_prefix(model: nn.Module) -> str:
    """``"transformer."`` for GPT2LMHeadModel, ``""`` for a bare GPT2Model."""
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and isinstance(getattr(model, prefix, None), nn.Module) else ""


_BY_MODEL_TYPE = {model_type: spec for spec in FAMILY_SPECS for model_type in spec.model_types}


def resolve_family(model: nn.Module) -> Family:
    """The family of ``model``, from ``model.config.model_type``; unknown -> `GenericFamily`."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    spec = _BY_MODEL_TYPE.get(model_type) if isinstance(model_type, str) else None
    if spec is None:
        return GenericFamily(model_type if isinstance(model_type, str) else None)
    return TransformerFamily(spec)


__all__ = [
    "ATTN_ONLY",
    "BERT",
    "FAMILY_SPECS",
    "GPT2",
    "GPT_NEOX",
    "LLAMA",
    "Dims",
    "Family",
    "FamilySpec",
    "GenericFamily",
    "HeadSlice",
    "PreNormMid",
    "TransformerFamily",
    "resolve_family",
]
