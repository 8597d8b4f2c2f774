"""Incremental patched forwards for decoder-only language models.

Why: in a causal model a patch at token position p cannot change anything at positions < p.
Every base input already had its clean forward (the correctness filter needs it), so a
patched run only has to compute positions >= p, attending to the base's cached keys and
values for the earlier positions through the model's own key/value cache (a transformers
``DynamicCache``, passed as ``cache`` in transformers 5.x and ``past_key_values`` in 4.x).
For the usual `@ last` patch that is one token per pair instead of the whole prompt
(DESIGN.md §7).

How a batch of pairs is laid out (rows differ in length and in where their patch starts):

* row i has ``len_i`` real tokens and starts recomputing at ``s_i`` = the smallest position
  any of its interventions writes (never after its answer position);
* the past is ``P = max s_i`` slots wide: row i's cached keys/values for positions
  ``0..s_i-1`` sit at slots ``0..s_i-1``; slots ``s_i..P-1`` are masked out;
* the current chunk is ``T = max(len_i - s_i)`` wide: row i's tokens ``s_i..len_i-1``,
  right-padded and masked;
* ``position_ids`` are explicit (``s_i + j``), so learned and rotary position encodings see
  each token's true position although its slot in the cache is ``P + j``;
* an intervention's absolute positions become ``position - s_i`` in the chunk.

The attention mask covers past + current (``[batch, P + T]``); transformers builds the
causal + padding mask from it. Masked slots hold finite values (the row's own later keys),
so nothing leaks and nothing is NaN. Tests assert the logits of this path equal those of a
full forward (max abs diff < 1e-4) for GPT-2, GPT-NeoX and Llama, at first, middle and last
positions, with right-padded batches of different lengths.

When it does not apply (and the engine runs full forwards, saying why in the check's notes):
a bidirectional or unknown architecture, a network that is not a Hugging Face causal LM
behind the prompt adapter, a model whose cache is not one plain key/value tensor per layer
(sliding-window or hybrid caches), `module` sites (their tensors need not be per-token),
sites without a sequence axis, and batches whose patches all start at position 0 in block 0
(`embed`, or a site of the first block: a full forward is then exactly as much work). A patch
at position 0 above block 0 uses no cached keys/values but still skips the blocks below it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from causalspec.run.families import base_prefix
from causalspec.run.hooks import patch, record
from causalspec.run.sites import Intervention, SiteShapeError
from causalspec.semantics.site_kinds import SiteAddress

# site kinds whose tensors are per-token [batch, seq, width] inside the blocks or at the head
INCREMENTAL_KINDS = frozenset({"embed", "resid.pre", "resid.mid", "resid.post", "attn.out", "mlp.out",
                               "head.q", "head.k", "head.v", "head.z", "head.result", "logits"})


def unsupported_reason(adapter, module, family) -> str | None:
    """Why incremental patched forwards cannot be used for this network, or None if they can."""
    spec = getattr(family, "spec", None)
    if spec is None:
        return f"the architecture ({family.name}) has no site table, so causality cannot be assumed"
    if not spec.causal:
        return f"{family.name} is bidirectional: a patch changes every position"
    if getattr(adapter, "model_class", None) != "causal_lm" or not hasattr(adapter, "net"):
        return "the network is not a causal language model behind a prompt template"
    if getattr(module, "training", False):
        return "the model is in training mode"
    return None


def site_reason(interventions: Sequence[Intervention]) -> str | None:
    for iv in interventions:
        if iv.positions is None:
            return f"site `{iv.site}` is patched whole (no token positions)"
        if iv.site.kind not in INCREMENTAL_KINDS:
            return f"site `{iv.site}` is a module site (its tensor need not be per-token)"
    return None


@dataclass
class KVStore:
    """Keys and values of every layer for each unique input used as a base, at every real token.

    ``keys[l]`` / ``values[l]``: ``[K, kv_heads, max_len, head_dim]`` over the K kept inputs
    (rows right-padded; slots past a row's length hold finite padding values that are always
    masked). Only the inputs in ``keep`` (unique indices; None: all ``n``) are kept: an input
    that is only ever a source is never the base of an incremental run, so its keys and
    values would never be read. ``slot[u]`` is unique input u's row in the store (-1: not kept).

    Filled batch by batch during the clean pass (`add`) straight into preallocated tensors
    (grown only when a later batch is longer), so peak memory stays about the store's size
    and `finish` has nothing to stack. ``device`` is where the store lives (``"cpu"`` offloads
    a GPU model's cache).
    """

    n: int
    device: torch.device | str | None = None
    keep: np.ndarray | None = None
    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)
    lengths: np.ndarray = field(init=False)  # [K] real tokens per kept input
    resid: dict[int, Tensor] = field(default_factory=dict)  # block l -> its clean input [K, max_len, d_model]
    slot: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.slot = np.full(self.n, -1, dtype=np.int64)
        kept = np.arange(self.n) if self.keep is None else np.unique(np.asarray(self.keep, dtype=np.int64))
        self.slot[kept] = np.arange(len(kept))
        self.lengths = np.zeros(len(kept), dtype=np.int64)

    @property
    def kept(self) -> int:
        return int(self.lengths.shape[0])

    def _selected(self, idx: np.ndarray) -> tuple[Tensor, Tensor] | None:
        """(rows of the batch, their store slots) for the kept inputs among ``idx``; None if none."""
        slots = self.slot[np.asarray(idx)]
        rows = np.flatnonzero(slots >= 0)
        if not len(rows):
            return None
        return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(slots[rows], dtype=torch.long)

    def _write(self, full: Tensor | None, part: Tensor, seq_dim: int, rows: Tensor, slots: Tensor) -> Tensor:
        """Write ``part``'s ``rows`` at ``slots`` of ``full`` (allocated, or widened along
        ``seq_dim``, on demand); returns the (possibly new) full tensor."""
        part = part.detach().index_select(0, rows.to(part.device))
        if self.device is not None:
            part = part.to(self.device)
        width = part.shape[seq_dim]
        if full is None or full.shape[seq_dim] < width:
            shape = list(part.shape)
            shape[0] = self.kept
            if full is not None:
                shape[seq_dim] = width
                grown = full.new_zeros(shape)
                grown.narrow(seq_dim, 0, full.shape[seq_dim]).copy_(full)
                full = grown
            else:
                full = part.new_zeros(shape)
        full.narrow(seq_dim, 0, width)[slots.to(full.device)] = part
        return full

    def add_resid(self, idx: np.ndarray, layer: int, x: Tensor) -> None:
        """Keep one clean batch's input of block ``layer`` ([batch, seq, d_model]) for layer skipping."""
        sel = self._selected(idx)
        if sel is not None:
            self.resid[layer] = self._write(self.resid.get(layer), x, 1, *sel)

    def add(self, idx: np.ndarray, cache, lengths: Tensor) -> str | None:
        """Keep one clean batch's cache; returns a reason when the cache is not usable."""
        layers = _layers(cache)
        if layers is None:
            return "the model returned no key/value cache"
        seq = int(lengths.max())
        checked: list[tuple[Tensor, Tensor]] = []
        for k, v in layers:
            if k is None or v is None or k.dim() != 4 or k.shape[-2] < seq or v.shape[-2] < seq:
                return ("the model's cache is not one key/value tensor per layer covering every position "
                        "(a sliding-window or hybrid cache)")
            checked.append((k, v))
        sel = self._selected(idx)
        if sel is None:
            return None
        rows, slots = sel
        first = not self.keys  # the first kept batch allocates each layer's store
        for layer, (k, v) in enumerate(checked):
            if first:
                self.keys.append(self._write(None, k, 2, rows, slots))
                self.values.append(self._write(None, v, 2, rows, slots))
            else:
                self.keys[layer] = self._write(self.keys[layer], k, 2, rows, slots)
                self.values[layer] = self._write(self.values[layer], v, 2, rows, slots)
        self.lengths[slots.numpy()] = lengths.cpu()[rows].numpy()
        return None

    def clear(self) -> None:
        self.keys, self.values, self.resid = [], [], {}

    def finish(self) -> None:
        """Nothing left to stack (batches were written in place); kept for the callers' protocol."""

    def rows_of(self, unique: np.ndarray) -> Tensor | None:
        """The store rows of unique inputs ``unique``; None if one of them was not kept."""
        slots = self.slot[np.asarray(unique, dtype=np.int64)]
        return None if (slots < 0).any() else torch.as_tensor(slots, dtype=torch.long)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values, *self.resid.values()))

    def past(self, rows: Tensor, width: int, skip: int = 0) -> list[tuple[Tensor | None, Tensor | None]]:
        """Per layer (keys, values) ``[batch, H, width, D]`` of the given unique rows.

        Layers below ``skip`` will not run: they get no copy (``None``), except layer 0, whose
        length transformers reads as the past length (a zero tensor expanded to the shape)."""
        out: list = []
        for layer, (k, v) in enumerate(zip(self.keys, self.values)):
            if layer < skip:
                if layer == 0:
                    shape = (len(rows), k.shape[1], width, k.shape[3])
                    z = k.new_zeros((1, 1, 1, 1)).expand(shape)
                    out.append((z, z))
                else:
                    out.append((None, None))
                continue
            out.append((k[:, :, :width].index_select(0, rows.to(k.device)),
                        v[:, :, :width].index_select(0, rows.to(v.device))))
        return out

    def resid_at(self, layer: int, rows: Tensor, positions: Tensor) -> Tensor:
        """The clean input of block ``layer`` of the given unique rows at ``positions`` [batch, T] -> [batch, T, d]."""
        r = self.resid[layer]
        x = r.index_select(0, rows.to(r.device))  # [batch, L, d]
        index = positions.to(r.device)[:, :, None].expand(-1, -1, r.shape[-1])
        return x.gather(1, index)  # [batch, T, d]


def _layers(cache) -> list[tuple[Tensor | None, Tensor | None]] | None:
    """(keys, values) per layer of a transformers cache (5.x `layers`, 4.x `key_cache`) or legacy tuples."""
    if cache is None:
        return None
    if hasattr(cache, "layers"):
        return [(getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    if isinstance(cache, (tuple, list)):
        return [(layer[0], layer[1]) for layer in cache]
    return None


def _make_cache(past: list[tuple[Tensor | None, Tensor | None]]):
    """A transformers `DynamicCache` holding ``past`` (layers given as None stay empty).

    Never the legacy tuple-of-tuples form, which transformers deprecates. Two layouts, told
    apart by feature detection: 4.56+/5.x caches have ``layers`` that initialise lazily (the
    tensors are handed over without a copy); older ones (4.40 on) are built with
    ``DynamicCache.from_legacy_cache``, a layer that will not run holding an empty tensor."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache([(None, None)] * len(past))
    except TypeError:  # transformers < 4.47: DynamicCache() takes no arguments
        cache = None
    layers = getattr(cache, "layers", None)
    if layers is not None and len(layers) == len(past) and all(hasattr(x, "lazy_initialization") for x in layers):
        for layer, (k, v) in zip(layers, past):
            if k is not None:  # no copy: update() concatenates the new tokens into a new tensor anyway
                layer.lazy_initialization(k, v)
                layer.keys, layer.values = k, v
        return cache
    return legacy_layout_cache(DynamicCache, past)


def legacy_layout_cache(cache_class, past: list[tuple[Tensor | None, Tensor | None]]):
    """A `DynamicCache` of transformers 4.40-4.55 (per-layer ``key_cache`` lists) holding ``past``."""
    k0 = next(k for k, _ in past if k is not None)
    empty = k0.new_zeros((k0.shape[0], k0.shape[1], 0, k0.shape[3]))
    legacy = tuple((k if k is not None else empty, v if v is not None else empty) for k, v in past)
    if hasattr(cache_class, "from_legacy_cache"):
        return cache_class.from_legacy_cache(legacy)
    return cache_class(legacy)  # 5.x (no from_legacy_cache): its constructor takes the (keys, values) pairs


@functools.cache
def cache_argument(module_class: type[torch.nn.Module]) -> str:
    """The name under which a model's ``forward`` takes the key/value cache: ``cache`` in
    transformers 5.x (where ``past_key_values`` is deprecated, removed in 5.40), else
    ``past_key_values`` (4.x). Read from the signature, so no call ever uses a deprecated name."""
    try:
        params = inspect.signature(module_class.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out):
    """The key/value cache of a model output: its ``cache`` field (5.x) or ``past_key_values``
    (4.x), read without touching the deprecated alias."""
    names = getattr(out, "__dataclass_fields__", None) or {}
    if "cache" in names:
        return getattr(out, "cache", None)
    if "past_key_values" in names:
        return getattr(out, "past_key_values", None)
    if isinstance(out, (tuple, list)) and len(out) > 1:  # return_dict=False: (logits, cache, ...)
        return out[1]
    return None


def clean_forward(adapter, batch) -> tuple[Tensor, object]:
    """The clean forward of an HF causal LM with its key/value cache: (logits, cache)."""
    out = adapter.net.module(**batch.inputs, use_cache=True)
    logits = out.logits if hasattr(out, "logits") else out[0]  # [batch, seq, vocab]
    return logits, output_cache(out)


@dataclass
class IncrementalStats:
    """What the incremental path saved, for the check's notes and benchmarks."""

    batches: int = 0
    rows: int = 0
    tokens: int = 0  # real tokens recomputed
    full_tokens: int = 0  # real tokens a full forward would have computed
    block_tokens: int = 0  # (token, block) pairs recomputed (layer skipping lowers it)
    n_layers: int = 0
    fallbacks: dict = field(default_factory=dict)  # reason -> batches run in full

    def note(self) -> str:
        parts = []
        if self.rows:
            text = (f"patched forwards: incremental for {self.rows} pair(s) — recomputed {self.tokens} of "
                    f"{self.full_tokens} token positions ({self.tokens / max(1, self.full_tokens):.0%}), "
                    "earlier positions from the base's cached keys/values")
            if self.n_layers and self.block_tokens < self.tokens * self.n_layers:
                full = max(1, self.full_tokens * self.n_layers)  # (token, block) pairs of full forwards
                skipped = (self.tokens * self.n_layers - self.block_tokens) / full
                text += (f"; blocks below the patch skipped ({skipped:.0%} of a full forward's block "
                         f"computations; {self.block_tokens / full:.0%} computed in all)")
            parts.append(text)
        for reason, n in self.fallbacks.items():
            parts.append(f"patched forwards: full for {n} batch(es) — {reason}")
        return "; ".join(parts)


def _positions(iv: Intervention) -> Tensor:
    """A patch's positions [batch, n_pos]. The incremental path patches positions only (callers send a
    whole-activation patch, ``positions=None``, down the full forward); a None here is a caller's bug."""
    if iv.positions is None:
        raise ValueError(f"{iv.site}: an incremental forward needs the patch's positions (none given)")
    return iv.positions


def starts_for(batch, interventions: Sequence[Intervention]) -> Tensor:
    """Per row, the first position to recompute: the earliest patched position, at most the answer position."""
    answer = torch.tensor([e.answer_pos for e in batch.meta["rows"]], dtype=torch.long)
    start = answer.clone()
    for iv in interventions:
        pos = _positions(iv).cpu()  # [batch, n_pos]
        if pos.shape[1]:
            start = torch.minimum(start, pos.min(dim=1).values)
    return start


def incremental_forward(module, family, ids: Tensor, lengths: Tensor, past: list[tuple[Tensor | None, Tensor | None]],
                        start: Tensor, interventions: Sequence[Intervention] = (),
                        answer: Tensor | None = None, skip: int = 0,
                        resid_in: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Run positions ``start[i]..lengths[i]-1`` of each right-padded row of ``ids`` [batch, seq].

    ``past``: per layer (keys, values) ``[batch, H, P, D]`` with ``P >= max(start)``; row i's slots
    ``0..start[i]-1`` must hold its keys/values for those positions (later slots are masked).
    ``interventions`` carry absolute positions, all ``>= start`` of their row. With ``answer``
    (absolute positions [batch]) the LM head runs only there.
    With ``skip`` > 0, blocks ``0..skip-1`` do not run: ``resid_in(position_ids)`` gives block
    ``skip``'s clean input at the chunk's positions ([batch, T, d_model]); no intervention may
    need a skipped block (see `first_block`; ``resid.post[skip-1]`` is written at block ``skip``'s input).
    Returns ``(logits, offset)``: logits ``[batch, T, vocab]`` (``[batch, 1, vocab]`` with
    ``answer``) whose position t of row i is absolute position ``offset[i] + t``.
    """
    device = ids.device
    lengths = lengths.cpu()
    start = start.cpu()
    first = past[0][0] if past else None  # layer 0 always holds a tensor (`KVStore.past`)
    width = int(first.shape[-2]) if first is not None else 0  # P: past slots
    if int(start.max()) > width:
        raise ValueError(f"the past has {width} slots but a row starts at {int(start.max())}")
    chunk = int((lengths - start).max())  # T: current tokens
    j = torch.arange(chunk)
    absolute = start[:, None] + j[None, :]  # [batch, T]
    real = j[None, :] < (lengths - start)[:, None]  # [batch, T]
    position_ids = torch.minimum(absolute, (lengths - 1)[:, None])  # pads repeat the last real position
    current_ids = ids.gather(1, position_ids.to(device))  # [batch, T]
    past_mask = torch.arange(width)[None, :] < start[:, None]  # [batch, P]
    mask = torch.cat([past_mask, real], dim=1).long()  # [batch, P + T]
    shifted = []
    for iv in interventions:
        positions = _positions(iv)
        rel = positions.cpu() - start[:, None]  # [batch, n_pos]
        if rel.numel() and int(rel.min()) < 0:
            raise ValueError(f"{iv.site}: a patched position lies before its row's start")
        site = iv.site
        if skip and site.kind == "resid.post" and site.layer == skip - 1:  # block skip-1 does not run
            site = SiteAddress("resid.pre", layer=skip)  # the same tensor: block skip's input
        elif skip and first_block([iv], _n_layers(module)) < skip:
            raise ValueError(f"{iv.site}: the patch needs block {first_block([iv], _n_layers(module))}, "
                             f"which is skipped (skip={skip})")
        shifted.append(Intervention(site, rel.to(positions.device), iv.values, iv.basis))
    head = _answer_only_head(module, family, interventions, None if answer is None else answer.cpu() - start)
    skipping = _skipped_blocks(module, family, skip, resid_in, position_ids) if skip else contextlib.nullcontext()
    with torch.no_grad(), patch(module, family, shifted), head as offset_fn, skipping:
        # a class is hashable: mypy checks its instances' __hash__ instead (python/mypy#11470)
        argument = cache_argument(type(module))  # type: ignore[arg-type]
        out = module(input_ids=current_ids, attention_mask=mask.to(device), position_ids=position_ids.to(device),
                     use_cache=True, **{argument: _make_cache(past)})
    logits = out.logits if hasattr(out, "logits") else out[0]  # [batch, T or 1, vocab]
    return logits, offset_fn(start)


def _n_layers(module) -> int:
    cfg = module.config
    return int(getattr(cfg, "num_hidden_layers", None) or cfg.n_layer)


class _Sited(Protocol):
    """What `first_block` reads of a patch: its site."""

    @property
    def site(self) -> SiteAddress: ...


def first_block(interventions: Sequence[_Sited], n_layers: int) -> int:
    """The first block a patch can change; blocks before it only replay the clean run.

    ``resid.post[L]`` is block L's output, i.e. block L+1's input (the last block's output is
    patched at that block); ``embed`` is block 0's input; every other site lies in its block.
    """
    first = n_layers - 1
    for iv in interventions:
        kind, layer = iv.site.kind, iv.site.layer
        if kind == "embed":
            block = 0
        elif kind == "logits":
            block = n_layers - 1
        elif layer is None:  # module sites: unknown place
            block = 0
        elif kind == "resid.post":
            block = min(layer + 1, n_layers - 1)
        else:
            block = layer
        first = min(first, block)
    return max(first, 0)


@contextlib.contextmanager
def _skipped_blocks(module, family, skip: int, resid_in, position_ids: Tensor):
    """Run only blocks ``skip..``: the block list is swapped for its tail (hooks, resolved before,
    stay on their block objects) and block ``skip`` gets the clean input ``resid_in`` instead of
    the embeddings. The input hook is prepended, so a patch of block ``skip``'s input still applies."""
    path = f"{base_prefix(module)}{family.spec.layers}"
    parent_path, _, name = path.rpartition(".")
    parent = module.get_submodule(parent_path) if parent_path else module
    blocks = getattr(parent, name)
    if not isinstance(blocks, torch.nn.ModuleList) or not 0 < skip < len(blocks):
        raise ValueError(f"cannot skip {skip} block(s) of `{path}`")
    x = resid_in(position_ids)  # [batch, T, d_model]

    def replace(mod, args, kwargs):
        if args:
            if args[0].shape != x.shape:
                raise SiteShapeError(f"block {skip} input is {tuple(args[0].shape)}, cached {tuple(x.shape)}")
            return (x.to(args[0].device, args[0].dtype), *args[1:]), kwargs
        hidden = kwargs["hidden_states"]
        return args, {**kwargs, "hidden_states": x.to(hidden.device, hidden.dtype)}

    handle = blocks[skip].register_forward_pre_hook(replace, with_kwargs=True, prepend=True)
    setattr(parent, name, torch.nn.ModuleList(list(blocks)[skip:]))
    try:
        yield
    finally:
        setattr(parent, name, blocks)
        handle.remove()


def patched_forward(adapter, module, family, batch, base_rows: Tensor, interventions: Sequence[Intervention],
                    store: KVStore, start: Tensor, stats: IncrementalStats | None = None,
                    skip: int = 0) -> np.ndarray:
    """Predictions of the patched base rows, recomputing only positions >= ``start`` per row.

    ``base_rows`` [batch] index the store; ``interventions`` carry absolute positions (as for a
    full forward); ``start`` [batch] comes from `starts_for`.
    """
    lengths = batch.inputs["attention_mask"].sum(dim=1).cpu()  # [batch]
    answer = torch.tensor([e.answer_pos for e in batch.meta["rows"]], dtype=torch.long)
    past = store.past(base_rows, int(start.max()), skip)
    resid_in = (lambda positions: store.resid_at(skip, base_rows, positions)) if skip else None
    logits, offset = incremental_forward(module, family, batch.inputs["input_ids"], lengths, past, start,
                                         interventions, answer, skip, resid_in)
    if stats is not None:
        stats.block_tokens += int((lengths - start).sum()) * (_n_layers(module) - skip)
        stats.batches += 1
        stats.rows += len(lengths)
        stats.tokens += int((lengths - start).sum())
        stats.full_tokens += int(lengths.sum())
    return adapter.predict(logits, batch, offset=offset.to(logits.device))


class _answer_only_head:
    """Run the LM head only at each row's answer position (a pre-hook that selects it).

    The head is per-token, so this is exact; it saves ``T - 1`` head projections per row,
    which matters for large vocabularies. Not used when a `logits` site is patched.
    """

    def __init__(self, module, family, interventions, answer_in_chunk: Tensor | None):
        self.handle: torch.utils.hooks.RemovableHandle | None = None
        self.answer = answer_in_chunk
        self.head = None
        if answer_in_chunk is None or any(iv.site.kind == "logits" for iv in interventions):
            return
        for path in family.spec.logits:
            try:
                self.head = module.get_submodule(path)
                break
            except AttributeError:
                continue

    def __enter__(self):
        answer = self.answer
        if self.head is None or answer is None or not isinstance(self.head, torch.nn.Linear):
            return lambda start: start

        def select(mod, args):
            x = args[0]  # [batch, T, width]
            if x.dim() != 3 or x.shape[0] != answer.shape[0]:
                raise SiteShapeError(f"LM head input is {tuple(x.shape)}; expected [{answer.shape[0]}, T, width]")
            rows = torch.arange(x.shape[0], device=x.device)
            return (x[rows, answer.to(x.device)][:, None, :], *args[1:])  # [batch, 1, width]

        self.handle = self.head.register_forward_pre_hook(select)
        return lambda start: start + answer  # the single logit row is at the answer position

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.remove()
        return False




class KVRunner:
    """The engine's handle on incremental forwards: keeps the clean pass's keys/values and
    runs patched batches from them (or says `None`: run this batch in full).

    Created by `Engine.run_clean` when `unsupported_reason` finds nothing against it.
    """

    def __init__(self, adapter, module, family, n: int, device=None, sites: Sequence[SiteAddress] = (),
                 bases: np.ndarray | None = None):
        self.adapter = adapter
        self.module = module
        self.family = family
        self.store = KVStore(n, device, keep=bases)
        self.n_layers = _n_layers(module)
        self.stats = IncrementalStats(n_layers=self.n_layers)
        self.disabled: str | None = None
        # blocks whose clean input is kept so patched runs can start there (layer skipping)
        blocks = {first_block([_AtSite(s)], self.n_layers) for s in sites if s.kind in INCREMENTAL_KINDS}
        self.resid_layers = sorted(b for b in blocks if b > 0)

    def clean(self, batch, idx: np.ndarray) -> Tensor:
        """One clean batch: the forward (with its cache kept) -> logits [batch, seq, vocab]."""
        if self.disabled is not None:
            return self.adapter.forward(batch)
        reads = [SiteAddress("resid.pre", layer=b) for b in self.resid_layers]
        with record(self.module, self.family, reads) as captured:
            logits, cache = clean_forward(self.adapter, batch)
        lengths = batch.inputs["attention_mask"].sum(dim=1)
        reason = self.store.add(idx, cache, lengths)
        if reason is not None:
            self.disabled = reason
            self.store.clear()
            return logits
        for layer, site in zip(self.resid_layers, reads):
            self.store.add_resid(idx, layer, captured[site])
        return logits

    def finish(self) -> KVRunner | None:
        if self.disabled is not None or not self.store.keys:
            return None
        self.store.finish()
        return self

    def patched(self, batch, base_rows, interventions: Sequence[Intervention]) -> np.ndarray | None:
        reason = site_reason(interventions)
        if reason is None:
            start = starts_for(batch, interventions)
            skip = first_block(interventions, self.n_layers)
            if skip not in self.store.resid:
                skip = 0
            rows = self.store.rows_of(base_rows)
            if rows is None:
                reason = "a base input's keys/values were not kept (it was declared a source only)"
            elif int(start.max()) > 0 or skip > 0:
                # a patch at position 0 above block 0 still skips the blocks below it: the past
                # is then empty (width 0) and block `skip` starts from its cached clean input
                return patched_forward(self.adapter, self.module, self.family, batch, rows, interventions,
                                       self.store, start, self.stats, skip)
            else:  # nothing cached to start from: no earlier position and no block below the patch
                reason = "every patch starts at the first token, in the first block"
        self.stats.fallbacks[reason] = self.stats.fallbacks.get(reason, 0) + 1
        return None


@dataclass(frozen=True)
class _AtSite:
    site: SiteAddress


def runner_for(adapter, module, family, n: int, device=None, sites: Sequence[SiteAddress] = (),
               bases: np.ndarray | None = None) -> tuple[KVRunner | None, str | None]:
    """A `KVRunner` for a clean pass over ``n`` unique inputs, or (None, why not).

    ``sites``: the sites patched runs may patch; the clean input of the first block each can
    change is kept, so those runs skip the blocks below it (none given: no layer skipping).
    ``bases``: the unique inputs patched runs use as bases; only theirs are kept (None: all)."""
    reason = unsupported_reason(adapter, module, family)
    if reason is not None:
        return None, reason
    return KVRunner(adapter, module, family, n, device, sites, bases), None


__all__ = ["INCREMENTAL_KINDS", "IncrementalStats", "KVRunner", "KVStore", "clean_forward", "first_block",
           "incremental_forward", "patched_forward", "runner_for", "site_reason", "starts_for",
           "unsupported_reason"]
