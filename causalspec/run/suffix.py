"""Training forwards on the incremental path: only the blocks above the patch, at the patched
positions onwards, with gradients flowing into the featurizer's parameters only.

Why: a training step of a learned featurizer (`run.train`) is a patched forward plus its
backward. In a causal language model a patch at block L and positions >= p cannot change
blocks below L nor positions before p, so — exactly as for the engine's patched runs
(`run.incremental`) — the step needs only blocks ``L..`` at positions ``p..``, attending to
the base's cached keys/values for the earlier positions and starting from the base's cached
block-L input. The training split's clean pass (which the correctness filter needs anyway)
keeps both in its `run.incremental.KVStore`. The backward then runs through that suffix
only; the network's weights are frozen (`run.train` turns their ``requires_grad`` off), so
the only gradients computed are the featurizer's and those of the suffix's activations.

The batch layout is the one `run.incremental` documents (past slots ``0..P-1`` with per-row
holes, the current chunk right-padded, explicit position ids); the LM head runs only at each
row's answer position. Unlike the engine's patched runs, a step whose patches all start at
the first token still skips the blocks below the patch: it runs without a past, from the
cached block input.

When it does not apply (`reason`), training runs full forwards and the check's notes say
why: the engine keeps no key/value cache for the training split (a bidirectional or non-LM
network, incremental forwards turned off, a cache that is not one tensor per layer), a site
is a module site or has no token positions, or every patch starts at the first token of the
first block (a full forward is then exactly as much work).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ContextManager, Sequence

import numpy as np
import torch
from torch import Tensor

from causalspec.run.incremental import (INCREMENTAL_KINDS, KVRunner, _answer_only_head, _make_cache, _n_layers,
                                        _skipped_blocks, cache_argument, first_block)
from causalspec.semantics.site_kinds import SiteAddress


@dataclass(frozen=True)
class Write:
    """One site a training step patches: its address and absolute positions [batch, n_pos]."""

    site: SiteAddress
    positions: Tensor | None


@dataclass(frozen=True)
class Suffix:
    """One training batch's suffix: per row the first position recomputed, and the first block run."""

    start: Tensor  # [batch] absolute position of the first recomputed token
    skip: int  # blocks 0..skip-1 do not run

    def shift(self, write: Write) -> tuple[SiteAddress, Tensor]:
        """A write's site and its positions inside the current chunk (``position - start``).

        ``resid.post[skip-1]`` is written at block ``skip``'s input (``resid.pre[skip]``): the block
        whose output it is does not run."""
        site = write.site
        if self.skip and site.kind == "resid.post" and site.layer == self.skip - 1:
            site = SiteAddress("resid.pre", layer=self.skip)
        assert write.positions is not None
        rel = write.positions - self.start.to(write.positions.device)[:, None]
        return site, rel


@dataclass
class SuffixStats:
    """What training on the incremental path computed, for the check's notes."""

    steps: int = 0  # forwards run on the incremental path
    tokens: int = 0  # real tokens recomputed
    full_tokens: int = 0  # real tokens full forwards would have computed
    block_tokens: int = 0  # (token, block) pairs recomputed
    n_layers: int = 0
    fallbacks: dict = field(default_factory=dict)  # reason -> training forwards run in full

    def add(self, lengths: Tensor, start: Tensor, skip: int) -> None:
        self.steps += 1
        self.tokens += int((lengths - start).sum())
        self.full_tokens += int(lengths.sum())
        self.block_tokens += int((lengths - start).sum()) * (self.n_layers - skip)

    def notes(self) -> list[str]:
        out = []
        if self.steps:
            share = self.block_tokens / max(1, self.full_tokens * self.n_layers)
            out.append(f"training: {self.steps} forward/backward pass(es) on the incremental path — recomputed "
                       f"{self.tokens} of {self.full_tokens} token positions, {share:.0%} of full forwards' block "
                       "computations, from the training split's cached keys/values and block inputs; gradients "
                       "reach the featurizer's parameters only")
        for reason, n in self.fallbacks.items():
            out.append(f"training: full forwards for {n} step(s) — {reason}")
        return out


def unusable(runner: KVRunner | None, why_none: str | None = None) -> str | None:
    """Why training cannot use the incremental path at all (None: it can, batch by batch)."""
    if runner is None:
        return why_none or "the training split's clean pass kept no key/value cache"
    if getattr(runner.module, "training", False):
        return "the model is in training mode"
    return None


def plan(runner: KVRunner, batch, writes: Sequence[Write]) -> Suffix | str:
    """The suffix one training batch needs, or why this batch runs in full."""
    for w in writes:
        if w.positions is None:
            return f"site `{w.site}` is patched whole (no token positions)"
        if w.site.kind not in INCREMENTAL_KINDS:
            return f"site `{w.site}` is a module site (its tensor need not be per-token)"
    start = torch.tensor([e.answer_pos for e in batch.meta["rows"]], dtype=torch.long)
    for w in writes:
        if w.positions is None:  # refused by the loop above
            continue
        pos = w.positions.cpu()
        if pos.shape[1]:
            start = torch.minimum(start, pos.min(dim=1).values)
    at_sites: list[Any] = [SimpleNamespace(site=w.site) for w in writes]  # first_block reads `.site` only
    skip = first_block(at_sites, runner.n_layers)
    if skip not in runner.store.resid:
        skip = 0
    if skip == 0 and int(start.max()) == 0:
        return "every patch starts at the first token of the first block"
    return Suffix(start, skip)


def kept_bases(runner: KVRunner, base_rows: np.ndarray) -> bool:
    """Whether the clean pass kept the keys/values of every base in ``base_rows`` (a pass that
    was told its bases keeps only theirs, `run.incremental.KVStore`)."""
    return runner.store.rows_of(np.asarray(base_rows)) is not None


def answer_logits(runner: KVRunner, batch, base_rows: np.ndarray, suffix: Suffix, sites: Sequence[SiteAddress],
                  hooks: ContextManager, stats: SuffixStats | None = None) -> Tensor:
    """Logits ``[batch, vocab]`` at each row's answer position of the patched base rows, computed
    through the suffix only; ``hooks`` installs the step's writes (at `Suffix.shift` positions)
    when entered. Differentiable in whatever the writes mix in."""
    module, family, store = runner.module, runner.family, runner.store
    ids = batch.inputs["input_ids"]
    device = ids.device
    rows = store.rows_of(np.asarray(base_rows))  # the bases' slots in the store (it may keep bases only)
    if rows is None:
        raise ValueError("answer_logits: a base input's keys/values were not kept (check `kept_bases` first)")
    lengths = batch.inputs["attention_mask"].sum(dim=1).cpu()  # [batch]
    answer = torch.tensor([e.answer_pos for e in batch.meta["rows"]], dtype=torch.long)
    start, skip = suffix.start.cpu(), suffix.skip
    width = int(start.max())  # P: past slots
    chunk = int((lengths - start).max())  # T: current tokens
    j = torch.arange(chunk)
    real = j[None, :] < (lengths - start)[:, None]  # [batch, T]
    position_ids = torch.minimum(start[:, None] + j[None, :], (lengths - 1)[:, None])  # pads repeat the last
    current_ids = ids.gather(1, position_ids.to(device))  # [batch, T]
    mask = torch.cat([torch.arange(width)[None, :] < start[:, None], real], dim=1).long()  # [batch, P + T]
    module_class: Any = type(module)
    kwargs: dict = {}
    if width:
        kwargs = {"use_cache": True, cache_argument(module_class): _make_cache(store.past(rows, width, skip))}
    else:  # every row starts at 0: no past (the blocks below the patch are still skipped)
        kwargs = {"use_cache": False}
    head = _answer_only_head(module, family, [SimpleNamespace(site=s) for s in sites], answer - start)
    skipping = (_skipped_blocks(module, family, skip, lambda p: store.resid_at(skip, rows, p), position_ids)
                if skip else contextlib.nullcontext())
    with hooks, head as offset_fn, skipping:
        out = module(input_ids=current_ids, attention_mask=mask.to(device), position_ids=position_ids.to(device),
                     **kwargs)
    logits = out.logits if hasattr(out, "logits") else out[0]  # [batch, 1 or T, vocab]
    at = (answer - offset_fn(start)).to(logits.device)
    if stats is not None:
        stats.add(lengths, start, skip)
    return logits[torch.arange(logits.shape[0], device=logits.device), at]  # [batch, vocab]


def n_layers(runner: KVRunner) -> int:
    return _n_layers(runner.module)


__all__ = ["Suffix", "SuffixStats", "Write", "answer_logits", "n_layers", "plan", "unusable"]
