"""A second engine backend: the same plans run through nnsight's tracing instead of torch hooks.

Why: nnsight is how many people reach large models (and NDIF runs nnsight traces on hosted
models). This backend shows the engine is backend-neutral: the clean pass reads every
binding's site inside one `trace`, a patched pass writes the sources' values inside
another, with the very same edit functions (`run.sites.make_edit`) as the torch engine, so
results are identical (tests: `tests/run/test_nnsight_backend.py`, GPT-2 and Llama tiny
models). It is slower than the torch engine: it always runs full forwards (no incremental
path) and nnsight's interleaving has its own overhead.

Scope today:
* local execution only (`causalspec check --backend nnsight`). NDIF (`remote=True`) is not
  wired: NDIF runs traces of models it hosts, built with `nnsight.LanguageModel("<hub id>")`
  and an API key, and ships the trace body to its servers; see docs/performance.md for what
  that needs. Nothing here contacts a server.
* sites that are a module's input or output or a column slice of one: ``embed``,
  ``resid.pre|post``, ``attn.out``, ``mlp.out``, ``head.q|k|v|z``, ``logits`` and
  ``module`` sites. ``head.result`` and pre-norm ``resid.mid`` (which the torch engine
  writes through two hook points) are refused with a clear error.

nnsight requires a trace to touch modules in the order the model runs them; the order of
every (module, input|output) point is measured once per model with a plain forward.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from causalspec.run.adapters import CheckUsageError
from causalspec.run.engine import CleanCache, Engine, address_of
from causalspec.run.sites import (Intervention, ModuleAccess, SiteAddress, SliceAccess, _output_tensor,
                                  _replace_output, make_edit)


def available() -> bool:
    try:
        import nnsight  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


class NNsightEngine(Engine):
    """`Engine` whose forwards run as nnsight traces (full forwards; same predictions)."""

    backend = "nnsight"

    def __init__(self, adapter, module: nn.Module, family, batch_size: int = 64, base_dir=None):
        super().__init__(adapter, module, family, batch_size, base_dir)
        if not available():
            raise CheckUsageError("the nnsight backend needs the `nnsight` package (pip install nnsight)")
        from nnsight import NNsight

        self.incremental = False  # the incremental path is the torch engine's
        self.traced = NNsight(module)
        self._paths = {id(m): name for name, m in module.named_modules()}
        self._order: dict | None = None
        self._note("forwards run through nnsight traces (full forwards)")

    # sites -> points of the trace ---------------------------------------------------------
    def _point(self, site: SiteAddress) -> tuple[str, str, slice | None]:
        """(module path, "input" | "output", column slice or None) of a site."""
        access = self.family.locate(self.module, site)
        cols = None
        if isinstance(access, SliceAccess):
            cols = slice(access.start, access.start + access.width)
            access = access.inner
        if not isinstance(access, ModuleAccess):
            raise CheckUsageError(f"site `{site}` is not supported by the nnsight backend yet (it is written "
                                  "through two hook points); use the torch backend")
        return self._paths[id(access.module)], access.io, cols

    def _envoy(self, path: str):
        env = self.traced
        for part in path.split(".") if path else ():
            env = env[int(part)] if part.isdigit() else getattr(env, part)
        return env

    def _execution_order(self, batch) -> dict:
        """(path, io) -> rank in the order a forward reaches it (measured once with plain hooks)."""
        if self._order is None:
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
            self._order = order
        return self._order

    def _ordered(self, batch, points: Sequence[tuple]) -> list[tuple]:
        order = self._execution_order(batch)
        return sorted(dict.fromkeys(points), key=lambda p: order.get(p, len(order)))

    def _trace(self, batch, body) -> torch.Tensor:
        """Run ``body()`` inside a trace of ``batch``; returns the model's logits."""
        kwargs = dict(batch.inputs) if isinstance(batch.inputs, dict) else {"input_ids": batch.inputs}
        if getattr(self.adapter, "model_class", None) == "causal_lm":
            kwargs["use_cache"] = False
        with torch.no_grad(), self.traced.trace(**kwargs):
            body()
            out = self.traced.output.save()
        return out.logits if hasattr(out, "logits") else (out[0] if isinstance(out, (tuple, list)) else out)

    def _get(self, point) -> Any:
        env = self._envoy(point[0])
        return env.input if point[1] == "input" else env.output

    def _set(self, point, value) -> None:
        env = self._envoy(point[0])
        if point[1] == "input":
            env.input = value
        else:
            env.output = value

    # clean pass ----------------------------------------------------------------------------
    def run_clean(self, rows: dict[str, np.ndarray], bindings: Sequence, progress=None) -> CleanCache:
        n = len(next(iter(rows.values())))
        preds = np.zeros(n, dtype=np.int64)
        acts: dict = {b: [None] * n for b in bindings}
        sites = list(dict.fromkeys(address_of(b.site) for b in bindings))
        points = {s: self._point(s) for s in sites}
        ragged = getattr(self.adapter, "positions_list", None)
        for chunk in self.sizer("clean").chunks(n):
            with chunk:
                idx = chunk.idx
                batch = self.adapter.encode({k: v[idx] for k, v in rows.items()})
                captured: dict = {}
                ordered = self._ordered(batch, [p[:2] for p in points.values()])

                def body():
                    for point in ordered:
                        value = self._get(point)
                        x = _output_tensor(SiteAddress("logits"), value) if point[1] == "output" else value
                        for site, (path, io, cols) in points.items():
                            if (path, io) == point:
                                captured[site] = (x if cols is None else x[..., cols]).detach().clone()

                raw = self._trace(batch, body)
                self.forward_passes["clean"] += 1
                preds[idx] = self.adapter.predict(raw, batch)
                for b in bindings:
                    act = captured[address_of(b.site)]  # [batch, seq, width] or [batch, width]
                    if ragged is not None:
                        per_row = ragged(batch, b)
                        for j, row in enumerate(idx):
                            acts[b][row] = act[j, torch.as_tensor(per_row[j], dtype=torch.long)].clone()
                        continue
                    pos = self.adapter.positions(batch, b)
                    for j, row in enumerate(idx):
                        acts[b][row] = act[j].clone() if pos is None else act[j, pos[j]].clone()
                if progress:
                    progress(len(idx))
        return CleanCache(preds, acts)

    # patched pass --------------------------------------------------------------------------
    def _patched_batch(self, rows, cache, base_idx, source_idx, flat, override=None) -> np.ndarray:
        batch = self.adapter.encode({k: v[base_idx] for k, v in rows.items()})
        interventions: list[Intervention] = []
        for k, (g, b) in enumerate(flat):
            values = torch.stack([cache.acts[b][u] for u in source_idx[g]])
            width = values.shape[-1]
            given = None if override is None else override[k]
            if given is None:
                basis = self.basis(b.featurizer, width)
            else:
                basis = None if isinstance(given, str) else given.to(values.device)  # "full": the whole activation
            interventions.append(Intervention(address_of(b.site), self.adapter.positions(batch, b), values, basis))
        planned = [(self._point(iv.site), make_edit(iv)) for iv in interventions]
        ordered = self._ordered(batch, [p[:2] for p, _ in planned])

        def body():
            for point in ordered:
                value = self._get(point)
                x = _output_tensor(SiteAddress("logits"), value) if point[1] == "output" else value
                for (path, io, cols), edit in planned:  # in the order given, like the torch engine
                    if (path, io) != point:
                        continue
                    if cols is None:
                        x = edit(x)
                    else:
                        x = torch.cat([x[..., :cols.start], edit(x[..., cols]), x[..., cols.stop:]], dim=-1)
                self._set(point, _replace_output(value, x) if point[1] == "output" else x)

        raw = self._trace(batch, body)
        self.forward_passes["patched"] += 1
        return self.adapter.predict(raw, batch)


__all__ = ["NNsightEngine", "available"]
