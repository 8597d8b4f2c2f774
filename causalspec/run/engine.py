"""The engine: clean forwards once per unique input, then batched patched forwards per pair.

Why this shape: a pair's source activations are a pure function of the source input, so
they are recorded once in the clean pass (which the correctness filter needs anyway) and
reused for every pair and every interchange set that names that input. Patched runs
feed the base input and overwrite the aligned sites, at the base's positions, with the
cached source values — several variables from several sources in one run.
The engine installs no hook itself: it asks `run.hooks` (`record`, `patch`) to read and write
sites through the accesses of `run.sites`. Other modules install hooks of their own where
plain record/patch do not fit: `run.incremental` (cached keys/values), `run.train` (trainable
featurizers), `run.circuit_engine` (path patching), `run.nnsight_backend` (the module order)
and the adapters (token-id checks at the embeddings).
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from causalspec.run.activation_store import as_store, fmt_bytes, open_store
from causalspec.run.adapters import Adapter, CheckUsageError
from causalspec.run.batching import BatchSizer
from causalspec.run.hooks import patch, record
from causalspec.run.incremental import runner_for
from causalspec.run.sae import SAEPatch, merge_sae_patches
from causalspec.run.sites import Intervention
from causalspec.semantics import featurizers as F

ProgressFn = Callable[[int], None]
FULL = "full"  # a `bases` entry of `run_patched`: patch the whole activation (the illusion check)


def binding_text(var: str, binding) -> str:
    pos = ", ".join(p.label for p in binding.positions)
    feat = binding.featurizer.kind
    return f"{var} -> {binding.site}" + (f" @ {pos}" if pos else "") + (f" : {feat}" if feat != "identity" else "")


@dataclass
class CleanCache:
    """What the clean pass keeps per unique input: its prediction and the bound activations."""

    preds: np.ndarray  # [U] output codes (UNDECODABLE = -1)
    # binding -> column over U of Tensor [n_pos, width] or [width]: a run.activation_store store
    # (in memory or on disk; a plain dict of lists is wrapped as an in-memory one)
    acts: Any = field(default_factory=dict)  # a MemoryActivations | DiskActivations after __post_init__
    kv: object = None  # run.incremental.KVRunner: cached keys/values for incremental patched forwards

    def __post_init__(self) -> None:
        self.acts = as_store(self.acts)


@dataclass(frozen=True)
class EngineOptions:
    """How an engine runs its passes, fixed when it is built (an engine is never reconfigured
    afterwards: a different setting is a different engine)."""

    batch_size: int = 64  # the first batch size of each pass kind (halved on out-of-memory)
    base_dir: Path | None = None  # where relative basis files are read from (None: the working folder)
    incremental: bool = True  # patched forwards recompute only positions >= the patch (run.incremental)
    kv_device: str | None = None  # where cached keys/values live (None: the model's device; "cpu" offloads)
    skip_layers: bool = True  # incremental forwards start at the first block a patch can change
    # where clean passes keep the bindings' activations: None/"memory", "disk" (a temporary
    # folder, removed on `close()`), or a folder (kept there); see run.activation_store
    activations: str | None = None


class Engine:
    """The torch backend: clean and patched passes through hooks (`run.hooks`) on the loaded model."""

    backend = "torch"

    def __init__(self, adapter: Adapter, module: torch.nn.Module, family, options: EngineOptions = EngineOptions()):
        self.adapter = adapter
        self.module = module
        self.family = family
        self.options = options
        self.batch_size = max(1, int(options.batch_size))
        self.base_dir = options.base_dir or Path.cwd()
        self.forward_passes = {"clean": 0, "patched": 0}
        self._bases: dict = {}
        self.notes: list[str] = []  # how the run was done, for CheckResult.notes (see `run_notes`)
        self._kv_runners: list = []
        self._sizers: dict = {}
        self._stores: list = []  # weak references to this engine's disk stores, closed by `close()`
        self._kept: list = []  # per clean pass: (store kind, where, bindings, inputs, bytes)
        self.work = {"clean_inputs": 0, "patched_pairs": 0}  # for the work-bound note (`work_note`)

    # featurizers -----------------------------------------------------------------------
    def basis(self, featurizer, width: int) -> torch.Tensor | None:
        """The subspace patched for `featurizer` at a site of `width` (`[width, k]`, orthonormal
        columns; None: the whole activation) — the IR's `featurizer.basis`, as a tensor.

        What a featurizer means lives in `semantics.featurizers`; the engine only reads basis
        files with torch (bfloat16 too) and caches per (featurizer, width), so a file is read
        once per run. Learned featurizers raise here: their trained bases come as `bases`.
        """
        key = (featurizer, width)
        if key not in self._bases and isinstance(featurizer, F.SAE):  # not a subspace: its own patch (run.sae)
            try:
                weights = featurizer.weights(width, read=read_safetensors)  # checks this featurizer's latents
            except F.FeaturizerError as e:
                raise CheckUsageError(str(e)) from None
            # one set of tensors per SAE folder: the patches of its variables share them, so telling
            # that two patches use one SAE (run.sae.merge_sae_patches, every batch) is an identity test
            folder = ("sae", featurizer.resolved, width)
            if folder not in self._bases:
                self._bases[folder] = SAEPatch.from_weights(weights, ())
            self._bases[key] = self._bases[folder].with_(latents=featurizer.latents)
        if key not in self._bases:
            try:
                basis = featurizer.basis(width, read=read_safetensors)
            except F.FeaturizerError as e:
                raise CheckUsageError(str(e)) from None
            self._bases[key] = None if basis is None else torch.from_numpy(basis)
        return self._bases[key]

    # clean pass --------------------------------------------------------------------------
    def run_clean(self, rows: dict[str, np.ndarray], bindings: Sequence,
                  progress: ProgressFn | None = None, bases: np.ndarray | None = None) -> CleanCache:
        """One forward per unique input (`rows`): predictions, the bindings' activations and, for
        incremental patched forwards, keys/values. `bases`: the unique inputs later patched runs
        use as bases (None: any); only those keep keys/values — a source-only input never needs them."""
        n = len(next(iter(rows.values())))
        self.work["clean_inputs"] += n
        preds = self._preds(n)
        acts = self._new_store(n, bindings)
        addresses = list(dict.fromkeys(b.site.address for b in bindings))
        # Adapters of sequence models whose rows may select different numbers of tokens
        # (`@ all`, a multi-token slot's `.all`) give ragged per-row positions here; the
        # rectangular `positions()` is then only asked for patched batches, whose rows the
        # engine has grouped by token counts (see `run_patched`).
        ragged = getattr(self.adapter, "positions_list", None)
        kv = self._kv_runner(n, bindings, bases)

        def clean_batch(idx: np.ndarray) -> None:  # retried, smaller, on out-of-memory (run.batching)
            batch = self.adapter.encode({k: v[idx] for k, v in rows.items()})
            with torch.no_grad(), record(self.module, self.family, addresses) as captured:
                raw = self.adapter.forward(batch) if kv is None else kv.clean(batch, idx)
            self.forward_passes["clean"] += 1
            preds[idx] = self.adapter.predict(raw, batch)
            for b in bindings:
                act = captured[b.site.address]  # [batch, seq, width] or [batch, width]
                if ragged is not None:
                    if act.dim() != 3:
                        raise CheckUsageError(f"site `{b.site}` has no sequence axis (activation "
                                              f"{tuple(act.shape)}); token positions cannot select from it")
                    per_row = ragged(batch, b)  # list over rows of token indices
                    acts.put(b, idx, [act[j, torch.as_tensor(per_row[j], dtype=torch.long, device=act.device)]
                                      for j in range(len(idx))])  # [n_pos_j, width]
                    continue
                pos = self.adapter.positions(batch, b)  # [batch, n_pos] or None
                acts.put(b, idx, [act[j] if pos is None else act[j, pos[j]]  # [width] | [n_pos, width]
                                  for j in range(len(idx))])
            if progress:
                progress(len(idx))

        for chunk in self.sizer("clean").chunks(n):
            with chunk:
                clean_batch(chunk.idx)
        acts.finish()
        if bindings:  # a pass for predictions alone (the chance test's drawn rows) keeps no activations
            self._kept.append((acts.kind, acts.where(), len(acts), n, acts.nbytes()))
        return CleanCache(preds, acts, kv=kv.finish() if kv is not None else None)

    def _preds(self, n: int) -> np.ndarray:
        """The prediction array of n rows: `[n]` codes, or `[n, elements]` for an adapter that reads
        several output elements at once (`run.elements.ElementsAdapter`, per-element training)."""
        elements = getattr(self.adapter, "elements", None)
        return np.zeros((n, int(elements)) if isinstance(elements, int) else n, dtype=np.int64)

    def _new_store(self, n: int, bindings: Sequence):
        """The activation store of a clean pass over n inputs (`options.activations` says where)."""
        # a pass for predictions alone (no binding: the chance test's drawn rows) keeps nothing, so nothing on disk
        store = open_store(self.options.activations if bindings else None, n, list(dict.fromkeys(bindings)))
        if hasattr(store, "close") and store.kind != "memory":
            self._stores.append(weakref.ref(store))
        return store

    def close(self) -> None:
        """Close the disk stores of this engine's clean passes (temporary folders are removed);
        their caches cannot be read afterwards. In-memory caches are unaffected."""
        for ref in self._stores:
            store = ref()
            if store is not None:
                store.close()
        self._stores.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # patched pass --------------------------------------------------------------------------
    def run_patched(self, rows: dict[str, np.ndarray], cache: CleanCache, base: np.ndarray,
                    sources: Sequence[np.ndarray], group_bindings: Sequence[Sequence],
                    progress: ProgressFn | None = None, bases: Sequence[Sequence] | None = None) -> np.ndarray:
        """Predictions for each pair: base row `base[i]`, group g's sites from row `sources[g][i]`.

        `rows` are the unique inputs the cache was built on; indices point into them.
        Pairs are batched by the token counts of their patched positions so every batch has
        rectangular position tensors; base and source must agree on those counts.
        `bases[g][j]`, when given, is the subspace (`[width, k]`, orthonormal columns) patched
        for binding j of group g instead of its featurizer's: a trained `das`/`boundless`
        subspace, a random control subspace, `FULL` for the whole activation, or a
        (read, write) pair (`run.sites.Intervention`; the illusion check).
        """
        n = len(base)
        self.work["patched_pairs"] += n
        preds = self._preds(n)
        flat = [(g, b) for g, bs in enumerate(group_bindings) for b in bs]
        override = None if bases is None else [x for g, bs in enumerate(group_bindings) for x in bases[g]]
        for members in self.pair_buckets(rows, cache, base, sources, flat):
            for chunk in self.sizer("patched").chunks(members):  # smaller on out-of-memory (run.batching)
                with chunk:
                    idx = chunk.idx
                    preds[idx] = self._patched_batch(rows, cache, base[idx], [s[idx] for s in sources], flat,
                                                     override)
                    if progress:
                        progress(len(idx))
        return preds

    def pair_buckets(self, rows, cache: CleanCache, base: np.ndarray, sources: Sequence[np.ndarray],
                     flat: Sequence) -> list[np.ndarray]:
        """Pair indices grouped by the token counts of their patched positions (so every batch has
        rectangular position tensors); a pair whose base and source counts differ is an error."""
        n = len(base)
        signature = np.zeros((n, len(flat)), dtype=np.int64)
        for k, (g, b) in enumerate(flat):
            counts = cache.acts.counts(b)  # token positions per unique input, read from the store's index
            nbs, nss = counts[base], counts[sources[g]]
            bad = np.flatnonzero(nbs != nss)
            if len(bad):
                i = bad[0]
                raise CheckUsageError(
                    f"site binding `{b.site}` covers {nbs[i]} token(s) in base input "
                    f"({self._describe(rows, base[i])}) but {nss[i]} in source input "
                    f"({self._describe(rows, sources[g][i])}); the patch needs equal counts — "
                    "choose a token part (first/last) in the position, or inputs that tokenize alike")
            signature[:, k] = nbs
        buckets: dict[tuple, list[int]] = defaultdict(list)
        for i in range(n):
            buckets[tuple(signature[i])].append(i)
        return [np.asarray(members) for members in buckets.values()]

    def _patched_batch(self, rows, cache, base_idx, source_idx, flat, override=None) -> np.ndarray:
        batch = self.adapter.encode({k: v[base_idx] for k, v in rows.items()})
        interventions = []
        for n, (g, b) in enumerate(flat):
            values = cache.acts.stack(b, source_idx[g])  # [batch, n_pos, w] | [batch, w]
            width = values.shape[-1]
            pos = self.adapter.positions(batch, b)
            given = None if override is None else override[n]
            if given is None:
                basis = self.basis(b.featurizer, width)
            else:
                basis = None if given is FULL else _on(given, values.device)
            interventions.append(Intervention(b.site.address, pos, values, basis))
        # SAE bindings sharing a site and an SAE are one joint latent patch (run.sae.JointSAEPatch)
        interventions = merge_sae_patches(interventions, [g for g, _ in flat])
        if cache.kv is not None:  # recompute only positions >= the patch; None: this batch runs in full
            with torch.no_grad():
                done = cache.kv.patched(batch, base_idx, interventions)
            if done is not None:
                self.forward_passes["patched"] += 1
                return done
        with torch.no_grad(), patch(self.module, self.family, interventions):
            raw = self.adapter.forward(batch)
        self.forward_passes["patched"] += 1
        return self.adapter.predict(raw, batch)

    def _kv_runner(self, n: int, bindings: Sequence = (), bases: np.ndarray | None = None):
        """A run.incremental.KVRunner for a clean pass of n inputs, or None (the reason goes to the notes)."""
        if not self.options.incremental or not getattr(self.adapter, "sequence", False):
            return None  # nothing to skip without a sequence axis
        if bases is not None and len(bases) == 0:
            return None  # no input will be a patched base (e.g. the chance test's drawn rows): nothing to keep
        runner, reason = runner_for(self.adapter, self.module, self.family, n, self.options.kv_device,
                                    [b.site.address for b in bindings] if self.options.skip_layers else (),
                                    bases)
        if runner is None:
            self._note(f"patched forwards: full — {reason}")
        else:
            self._kv_runners.append(runner)
        return runner

    def sizer(self, kind: str):
        """The run.batching.BatchSizer of one pass kind ("clean", "patched"): starts at `batch_size`,
        halves on out-of-memory (noted), and keeps the smaller size for the rest of the run."""
        if kind not in self._sizers:
            def noted(tried: int, new: int, exc: BaseException, kind=kind) -> None:
                self._note(f"{kind} forwards ran out of memory on a batch of {tried}; continued with batches "
                           f"of {new}")

            self._sizers[kind] = BatchSizer(self.batch_size, on_backoff=noted)
        return self._sizers[kind]

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def run_notes(self) -> list[str]:
        """What the run did that a reader of the report should know (incremental forwards, fallbacks)."""
        out = list(self.notes)
        if self.work["patched_pairs"]:
            out.append(work_note(self.work["clean_inputs"], self.work["patched_pairs"]))
        if self._kept:
            out.append(self._activations_note())
        for runner in self._kv_runners:
            if runner.disabled is not None:
                out.append(f"patched forwards: full — {runner.disabled}")
            elif runner.stats.note():
                out.append(runner.stats.note())
        return list(dict.fromkeys(out))

    def _activations_note(self) -> str:
        kinds = {k for k, *_ in self._kept}
        total = sum(size for *_, size in self._kept)
        if len(self._kept) == 1:
            _, where, nb, n, size = self._kept[0]
            return f"clean activations: {nb} site binding(s) × {n} input(s), {fmt_bytes(size)}, kept {where}"
        places = "; ".join(dict.fromkeys(where for _, where, *_ in self._kept)) if kinds != {"memory"} else "in memory"
        return f"clean activations: {len(self._kept)} clean passes, {fmt_bytes(total)} in all, kept {places}"

    def _describe(self, rows, i: int) -> str:
        batch = self.adapter.encode({k: v[[i]] for k, v in rows.items()})
        return self.adapter.describe_row(batch, 0)


def work_note(clean: int, pairs: int) -> str:
    """The work bound of a run: one clean forward per distinct input (the correctness filter
    needs them) plus one patched run per pair, against the two full forwards per pair of a tool
    that runs base and source afresh. What the pool saves is the sharing of clean forwards:
    with fewer distinct inputs than pairs they are shared; with fresh inputs they are not."""
    text = (f"work: {clean} clean forward(s), one per distinct input, and {pairs} patched run(s); "
            f"two forwards per pair would be {2 * pairs}")
    if clean < pairs:
        return text + (f" — the pool shares clean forwards ({pairs / max(1, clean):.1f} patched runs per distinct "
                       "input)")
    return text + (" — the pool saves nothing here (at least as many distinct inputs as patched runs); "
                   "a pool smaller than the pairs lets them share clean forwards (docs/performance.md)")


def _on(given, device):
    """A given subspace (Tensor, or a (read, write) pair: `run.sites.Intervention`) on `device`."""
    if isinstance(given, (tuple, list)):
        return tuple(t.to(device) for t in given)
    if isinstance(given, SAEPatch):
        return given  # moved to the activation's device when it patches
    return given.to(device)


def read_safetensors(path: Path) -> dict:
    """A safetensors file's tensors as float32 numpy arrays (the featurizer IR is torch-free)."""
    from safetensors.torch import load_file

    return {name: t.float().numpy() for name, t in load_file(str(path)).items()}
