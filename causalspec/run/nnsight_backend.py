"""A second engine backend: the same plans, run by nnsight — on this machine or on NDIF.

Why: nnsight is how many people reach large models, and NDIF (or a self-hosted NDIF) runs
nnsight sessions on models it hosts. This backend turns each pass of the engine into a
*plan* — plain data: token ids, module paths, positions, source rows, subspaces, how to read
the answer — and hands it to one fixed function, `run.nnsight_runner.run`, which executes it
inside one nnsight session. Where the session runs is the only difference between

* local (`--backend nnsight`): a session on the loaded model; activations read in the clean
  pass come back and are reused, like the torch engine's cache;
* remote (`--backend nnsight --remote`, or `backend nnsight remote` in the spec): the session
  is shipped to NDIF (`--remote https://host` or `backend nnsight remote "https://host"`: a
  self-hosted NDIF). Only integer output codes (and one width per read site) come back;
  each patched pass re-reads its source activations inside its own session, on the server;
* `--remote local`: nnsight's dry run of the remote path — the session is serialised as it
  would be for NDIF, deserialised with local modules hidden, and run here. The tests use it.

Sites are validated up front, before any forward pass or request: every binding must be a
module's input or output or a column slice of one (``embed``, ``resid.pre|post``,
``attn.out``, ``mlp.out``, ``head.q|k|v|z``, ``logits``, ``module`` sites). ``head.result``
and pre-norm ``resid.mid`` (written through two hook points by the torch engine) are refused
with a clear error. Remotely, learned featurizers cannot be trained (their training needs
gradients through local activations): train with the torch backend and check the saved
basis (`: basis(file="file.safetensors")`).

nnsight requires a session to touch modules in the order the model runs them. With real
weights the order is measured once with a plain forward; for a remote model (built on the
meta device, no weights here) it is the module tree's order — children in registration
order — which matches every family in `run.families` for the sites above.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Sequence, cast

import numpy as np
import torch
from torch import nn

from causalspec.run import nnsight_runner as runner
from causalspec.run import patching
from causalspec.run.activation_store import MemoryActivations
from causalspec.run.adapters import CheckUsageError
from causalspec.run.engine import FULL, CleanCache, Engine, EngineOptions
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.sites import ModuleAccess, SliceAccess

# model class of an hf network -> the transformers pipeline task nnsight keys a remote model by
TASKS = {"causal_lm": "text-generation", "masked_lm": "fill-mask",
         "sequence_classification": "text-classification", "token_classification": "token-classification"}


def available() -> bool:
    try:
        import nnsight  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


def remote_target(value: Any) -> Any:
    """Normalise a remote setting: None (local), True (the configured NDIF host), "local"
    (nnsight's dry run), or an http(s) URL of a self-hosted NDIF."""
    if value in (None, False, "", "no", "off"):
        return None
    if value in (True, "ndif", "yes", "on"):
        return True
    if value == "local" or (isinstance(value, str) and value.startswith(("http://", "https://"))):
        return value
    raise CheckUsageError(f"remote target `{value}` is not understood: use `ndif` (the configured NDIF host), "
                          "an http(s):// URL of a self-hosted NDIF, or `local` (a dry run here)")


class NNsightEngine(Engine):
    """`Engine` whose passes are plans run by `run.nnsight_runner` in an nnsight session."""

    backend = "nnsight"

    def __init__(self, adapter, module: nn.Module, family, options: EngineOptions = EngineOptions(),
                 remote: Any = None):
        # full forwards always: the incremental path is the torch engine's
        super().__init__(adapter, module, family, replace(options, incremental=False))
        if not available():
            raise CheckUsageError("the nnsight backend needs the `nnsight` package (pip install nnsight)")
        self.remote = remote_target(remote)
        self.traced = self._wrap(module)
        self._paths = {id(m): name for name, m in module.named_modules()}
        self._order: dict | None = None
        self.requests = 0  # sessions run (each one NDIF job when remote)
        where = {None: "here", True: "on NDIF", "local": "as a local dry run of the remote path"}
        self._note(f"forwards run through nnsight sessions {where.get(self.remote, f'on {self.remote}')} "
                   "(full forwards)")

    def _wrap(self, module: nn.Module):
        if self.remote is None:
            from nnsight import NNsight

            return NNsight(module)
        if getattr(self.adapter, "decode_spec", None) is None:
            raise CheckUsageError("remote checks need an `hf` network with a prompt and an answer template "
                                  "(NDIF runs hub models; torch networks with hooks run only here)")
        if self.remote is True:
            _require_api_key()
        from nnsight.modeling.transformers import TransformersModel

        hf = cast(HFAdapter, self.adapter)  # has a decode_spec (checked above): an `hf` network's adapter
        task = TASKS.get(getattr(self.adapter, "model_class", "causal_lm"), "text-generation")
        if self.remote == "local":  # the dry run executes here, on the loaded weights
            return TransformersModel(module, task=task, tokenizer=hf.tokenizer)
        # NDIF knows the model by its hub id (and task); nnsight builds the architecture on the meta
        # device from the config we already hold — nothing is downloaded, no weights are loaded
        config: Any = module.config  # a transformers config (nn.Module's __getattr__ says `Tensor | Module`)
        return TransformersModel(config._name_or_path, task=task, tokenizer=hf.tokenizer,
                                 config=copy.deepcopy(config))

    # sites -> steps of a plan ----------------------------------------------------------------
    def validate(self, bindings: Sequence) -> None:
        """Refuse, before any forward or request, a site this backend cannot serve."""
        for b in bindings:
            self._point(b.site.address)

    def _point(self, site) -> tuple[str, str, list | None]:
        """(module path, "input" | "output", column range or None) of a site."""
        access = self.family.locate(self.module, site)
        cols = None
        if isinstance(access, SliceAccess):
            cols = [access.start, access.start + access.width]
            access = access.inner
        if not isinstance(access, ModuleAccess):
            raise CheckUsageError(f"site `{site}` is not supported by the nnsight backend yet (it is written "
                                  "through two hook points); use the torch backend")
        return self._paths[id(access.module)], access.io, cols

    def _execution_order(self, batch) -> dict:
        """(path, io) -> rank in the order a forward reaches it."""
        if self._order is None:
            on_meta = any(p.is_meta for p in self.module.parameters())
            self._order = tree_order(self.module) if on_meta else self._measured_order(batch)
        return self._order

    def _measured_order(self, batch) -> dict:
        order: dict = {}
        handles = []
        for name, mod in self.module.named_modules():
            def pre(m, a, name=name):
                order.setdefault((name, "input"), len(order))

            def post(m, a, o, name=name):
                order.setdefault((name, "output"), len(order))

            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
        try:
            with torch.no_grad():
                self.adapter.forward(batch)
        finally:
            for h in handles:
                h.remove()
        return order

    def _steps(self, batch, reads: dict, writes: list) -> list[dict]:
        """Steps in execution order; ``reads``: point -> [read], ``writes``: [(point, write)]."""
        steps: dict = {}
        for point, items in reads.items():
            steps.setdefault(point, {"reads": [], "writes": []})["reads"] += items
        for point, write in writes:
            steps.setdefault(point, {"reads": [], "writes": []})["writes"].append(write)
        order = self._execution_order(batch)
        ranked = sorted(steps, key=lambda p: order.get(p, len(order)))
        return [{"path": p[0], "io": p[1], **steps[p]} for p in ranked]

    def _batch(self, rows, idx: np.ndarray, reads_of, writes_of=None) -> dict:
        batch = self.adapter.encode({k: v[idx] for k, v in rows.items()})
        kwargs = {"use_cache": False} if getattr(self.adapter, "model_class", None) == "causal_lm" else {}
        inputs = dict(batch.inputs) if isinstance(batch.inputs, dict) else {"input_ids": batch.inputs}
        spec = getattr(self.adapter, "decode_spec", None)
        return {"inputs": inputs, "kwargs": kwargs, "rows": [int(i) for i in idx],
                "steps": self._steps(batch, reads_of(batch), writes_of(batch) if writes_of else []),
                "decode": spec(batch) if spec else None, "_batch": batch}

    def _reads(self, bindings: Sequence, keys: dict):
        """reads_of(batch): every binding's site read at the batch's own positions."""
        ragged = getattr(self.adapter, "positions_list", None)

        def reads_of(batch) -> dict:
            out: dict = {}
            for b in bindings:
                path, io, cols = self._point(b.site.address)
                if ragged is not None:
                    positions = ragged(batch, b)
                else:
                    pos = self.adapter.positions(batch, b)
                    positions = None if pos is None else pos.tolist()
                out.setdefault((path, io), []).append({"key": keys[b], "cols": cols, "positions": positions})
            return out

        return reads_of

    def _run(self, plan: dict) -> dict:
        shipped = {**plan, "clean": [_strip(b) for b in plan["clean"]],
                   "patched": [_strip(b) for b in plan["patched"]]}
        if self.remote is not None:
            import nnsight

            # ship the runner and the arithmetic it shares with the torch engine by value: NDIF
            # has no causalspec (both modules import only torch, and the runner `run.patching`)
            nnsight.register(patching)
            nnsight.register(runner)
        try:
            result = runner.run(self.traced, shipped, remote=self.remote or False)
        except CheckUsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed session or job: say where it ran
            where = "here" if self.remote is None else f"remotely ({self.remote})"
            raise CheckUsageError(f"the nnsight session run {where} failed: {type(exc).__name__}: {exc}") from exc
        self.requests += 1
        self.forward_passes["clean"] += len(plan["clean"])
        self.forward_passes["patched"] += len(plan["patched"])
        return result

    def _codes(self, batch: dict, out) -> np.ndarray:
        if batch["decode"] is None:  # a torch network's decode hook runs here, on the raw output
            return self.adapter.predict(out, batch["_batch"])
        return out.numpy().astype(np.int64)

    # clean pass ----------------------------------------------------------------------------
    def run_clean(self, rows: dict[str, np.ndarray], bindings: Sequence, progress=None,
                  bases: np.ndarray | None = None) -> CleanCache:
        """As `Engine.run_clean`; `bases` is accepted and unused (this backend keeps no keys/values)."""
        self.validate(bindings)
        n = len(next(iter(rows.values())))
        keys = {b: k for k, b in enumerate(bindings)}
        reads_of = self._reads(bindings, keys)
        chunks = [np.arange(i, min(n, i + self.batch_size)) for i in range(0, n, self.batch_size)]
        local = self.remote is None
        # remotely, one batch's reads are enough to learn the sites' widths; nothing else is kept
        batches = [self._batch(rows, idx, reads_of if (local or j == 0) else (lambda batch: {}))
                   for j, idx in enumerate(chunks)]
        result = self._run({"format": runner.FORMAT, "clean": batches, "patched": [], "return_reads": local})
        preds = np.zeros(n, dtype=np.int64)
        for batch, out in zip(batches, result["clean"]):
            preds[batch["rows"]] = self._codes(batch, out)
        if local:  # the engine's store: in memory, or on disk with --activations-on-disk
            acts = self._new_store(n, bindings)
            for b, k in keys.items():
                acts.put(b, list(range(n)), [result["reads"][(k, row)] for row in range(n)])
        else:  # shapes only (meta tensors): what the scoring code asks of the cache; values stay remote
            acts = MemoryActivations.empty(n, bindings)
            for batch in batches:
                for step in self._reads(bindings, keys)(batch["_batch"]).values():
                    for read in step:
                        width = int(result["widths"][read["key"]])
                        rows_, positions = batch["rows"], read["positions"]
                        acts.put(bindings[read["key"]], rows_, [
                            torch.empty((width,) if positions is None else (len(positions[j]), width), device="meta")
                            for j in range(len(rows_))])
        acts.finish()
        if local:
            self._kept.append((acts.kind, acts.where(), len(acts), n, acts.nbytes()))
        else:
            self._note("site activations never leave the remote session: each patched pass reads its sources "
                       "again there; only output codes come back")
        if progress:
            progress(n)
        return CleanCache(preds, acts)

    # patched pass --------------------------------------------------------------------------
    def run_patched(self, rows, cache: CleanCache, base, sources, group_bindings, progress=None, bases=None):
        n = len(base)
        flat = [(g, b) for g, bs in enumerate(group_bindings) for b in bs]
        self.validate([b for _, b in flat])
        override = None if bases is None else [x for g, bs in enumerate(group_bindings) for x in bases[g]]
        local = self.remote is None
        keys = {b: k for k, b in enumerate(dict.fromkeys(b for _, b in flat))}
        plan: dict[str, Any] = {"format": runner.FORMAT, "clean": [], "patched": [], "return_reads": False}
        if not local:  # the sources' site values are read again, on the server, in this same session
            needed = np.unique(np.concatenate([np.asarray(s) for s in sources])) if n else np.zeros(0, int)
            reads_of = self._reads(list(keys), keys)
            plan["clean"] = [self._batch(rows, needed[i:i + self.batch_size], reads_of)
                             for i in range(0, len(needed), self.batch_size)]
        members_of = []
        for members in self.pair_buckets(rows, cache, base, sources, flat):
            for i in range(0, len(members), self.batch_size):
                idx = members[i:i + self.batch_size]
                members_of.append(idx)
                plan["patched"].append(self._batch(
                    rows, base[idx], lambda batch: {},
                    self._writes(cache, [s[idx] for s in sources], flat, override, keys, local)))
        result = self._run(plan)
        preds = np.zeros(n, dtype=np.int64)
        for idx, batch, out in zip(members_of, plan["patched"], result["patched"]):
            preds[idx] = self._codes(batch, out)
        if progress:
            progress(n)
        return preds

    def _writes(self, cache, source_idx, flat, override, keys, local):
        def writes_of(batch) -> list:
            out = []
            for k, (g, b) in enumerate(flat):
                path, io, cols = self._point(b.site.address)
                values = cache.acts.stack(b, source_idx[g]) if local else None
                width = cache.acts.width(b)
                given = None if override is None else override[k]
                basis: torch.Tensor | tuple[torch.Tensor, ...] | None
                if given is None:
                    basis = self.basis(b.featurizer, width)
                else:
                    basis = None if given is FULL else (tuple(t.detach().cpu() for t in given)
                                                        if isinstance(given, (tuple, list)) else given.detach().cpu())
                pos = self.adapter.positions(batch, b)
                out.append(((path, io), {"cols": cols, "positions": pos, "key": keys[b],
                                         "sources": [int(u) for u in source_idx[g]], "values": values,
                                         "basis": basis}))
            return out

        return writes_of


def _strip(batch: dict) -> dict:
    """A plan batch without the local-only `Batch` object (which must not be shipped)."""
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def tree_order(module: nn.Module) -> dict:
    """(path, io) -> rank: a module's input when it is entered, its output after all its
    children's, children in registration order (the order of a model built without weights)."""
    order: dict = {}

    def visit(name: str, mod: nn.Module) -> None:
        order[(name, "input")] = len(order)
        for child, sub in mod.named_children():
            visit(f"{name}.{child}" if name else child, sub)
        order[(name, "output")] = len(order)

    visit("", module)
    return order


def _require_api_key() -> None:
    from nnsight import CONFIG

    if not getattr(CONFIG.API, "APIKEY", None):
        raise CheckUsageError("running on NDIF needs an API key: set NDIF_API_KEY (get one at https://login.ndif.us) "
                              "or call nnsight.CONFIG.set_default_api_key(...) once; a self-hosted NDIF without "
                              "keys: pass its URL (`--remote https://host`)")


__all__ = ["NNsightEngine", "available", "remote_target", "tree_order"]
