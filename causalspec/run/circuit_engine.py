"""The circuit engine: ablation values, then one forward pass per batch and circuit variant.

What a variant run computes (shapes per batch: z is ``[batch, seq, n_heads * head_dim]``,
residual-width tensors ``[batch, seq, d_model]``):

* **node granularity** — every node of the *universe* (see `causalspec.compile.circuit_plan`)
  outside the kept members has its output replaced by its ablated value: a head's z at the
  attention out-projection input (so its residual contribution becomes ``z_abl @ W_O[h]``;
  z is linear in W_O, so mean-of-z is mean-of-result), an MLP's output at the MLP. A member
  kept only at some positions is ablated at the others. One hook per layer and kind.
* **edge granularity** (path patching) — on top of that, each input of a kept node (a head's
  q, k or v; an MLP's input; the logits) sees only the senders it has an edge from: its
  input is the actual residual stream minus ``Σ (out_u - abl_u)`` over the circuit nodes u
  upstream of it without an edge to it (minus ``embed - embed_abl`` when the circuit routes
  `embed` and this input has no edge from it). q/k/v of one head are recomputed from the
  corrected residual through the layer's own norm and projection (``proj(norm(x - corr))``)
  and spliced into the projection output; an MLP's norm input is corrected; the logits read
  a corrected final residual. Kinds outside the universe (e.g. MLPs when the circuit names
  none) are wires: they read the actual stream and pass everything on.

Ablation values (`ZeroAblation`, `MeanAblation`, `ResampleAblation`) are computed once: the
mean once over the reference prompts (per token position), the resampled activations once
per evaluated batch (one reference forward, shared by every variant of that batch).
After that, each variant costs exactly one forward pass per batch.

Hooks are installed through the site accesses of `run.sites` (as `run.hooks` does for the
alignment engine), with this module's own edits: path patching needs several per site.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from causalspec.compile.circuit_plan import (EMBED, HEAD, LOGITS, MLP, Arch, Member, Node, ResolvedCircuit,
                                             upstream)
from causalspec.run.adapters import Batch, CheckUsageError
from causalspec.run.attn_only import edge_granularity_problem
from causalspec.run.engine import EngineOptions
from causalspec.run.families import Dims, PreNormMid, TransformerFamily, base_prefix
from causalspec.run.hooks import installed
from causalspec.run.sites import ModuleAccess, SliceAccess
from causalspec.semantics.site_kinds import SiteAddress

# installs hooks, returns their handles (`run.hooks.installed`); `...`: the lambdas bind loop values as defaults
Installer = Callable[..., list[RemovableHandle]]

MetricFn = Callable[[Tensor, Batch, np.ndarray], np.ndarray]  # (logits, batch, row indices) -> [batch]


def arch_of(module, family) -> Arch:
    """The facts node resolution needs, from a HF config and a family table."""
    if not isinstance(family, TransformerFamily):
        raise CheckUsageError(f"circuit evaluation needs a transformer of a supported family (gpt2, gpt-neox, "
                              f"llama-family, bert); this network is of an {family.name}")
    d = Dims.of(module.config)
    return Arch(d.layers, d.n_heads, family.name, parallel=not family.has_resid_mid(module.config),
                d_model=d.d_model)


@dataclass(frozen=True)
class Variant:
    """One way of running the network: `clean`, `keep` (the circuit's members kept, the rest of
    the universe ablated; with edges when the circuit has them) or `ablate` (only `members`
    ablated, everything else clean)."""

    key: str
    mode: str  # "clean" | "keep" | "ablate"
    circuit: ResolvedCircuit | None = None
    members: tuple[Member, ...] = ()


# ───────────────────────── ablation values ─────────────────────────

@dataclass
class AblationValues:
    """Replacement values for one batch; each broadcasts against ``[batch, seq, width]``."""

    z: dict[int, Tensor]
    mlp: dict[int, Tensor]
    embed: Tensor
    # the ablated input is the position embedding of the forward itself (zero ablation of the
    # token embedding only: MIB's input node is `hook_embed`, positions are never ablated)
    keeps_positions: bool = False


class ZeroAblation:
    """Zeros. `token_only`: ablating the input zeros the token embedding and keeps the
    position embedding (MIB's convention `input ablation token`); otherwise both are zeroed.
    Mean and resample ablations need no such switch: position embeddings are the same for
    every prompt at a position, so a per-position mean or a same-length resample leaves them."""

    kind = "zero"

    def __init__(self, dtype, device, token_only: bool = False):
        self.zero = torch.zeros((), dtype=dtype, device=device)
        self.token_only = token_only

    def for_batch(self, engine: CircuitEngine, batch: Batch, idx: np.ndarray) -> AblationValues:
        return AblationValues({L: self.zero for L in range(engine.arch.layers)},
                              {L: self.zero for L in range(engine.arch.layers)}, self.zero,
                              keeps_positions=self.token_only)


class MeanAblation:
    """Per-position means over reference prompts: position p is averaged over the reference
    prompts that have a token at p; positions past the longest reference prompt get the mean
    over all reference tokens (`beyond` counts how often that happened)."""

    kind = "mean"

    def __init__(self, z: dict[int, Tensor], mlp: dict[int, Tensor], embed: Tensor,
                 z_all: dict[int, Tensor], mlp_all: dict[int, Tensor], embed_all: Tensor, lengths: np.ndarray):
        self.z, self.mlp, self.embed = z, mlp, embed  # [P, width]
        self.z_all, self.mlp_all, self.embed_all = z_all, mlp_all, embed_all  # [width]
        self.lengths = lengths
        self.beyond = 0

    @staticmethod
    def _fit(per_pos: Tensor, overall: Tensor, seq: int) -> Tensor:
        if seq <= per_pos.shape[0]:
            return per_pos[None, :seq]  # [1, seq, width]
        pad = overall[None, :].expand(seq - per_pos.shape[0], -1)
        return torch.cat([per_pos, pad])[None]  # [1, seq, width]

    def for_batch(self, engine: CircuitEngine, batch: Batch, idx: np.ndarray) -> AblationValues:
        seq = int(batch.inputs["input_ids"].shape[1])
        if seq > self.z[0].shape[0]:
            self.beyond += 1
        return AblationValues({L: self._fit(v, self.z_all[L], seq) for L, v in self.z.items()},
                              {L: self._fit(v, self.mlp_all[L], seq) for L, v in self.mlp.items()},
                              self._fit(self.embed, self.embed_all, seq))


class ResampleAblation:
    """Each evaluated prompt takes every ablated activation from one reference prompt with
    the same number of tokens (drawn once, seeded): one reference forward per batch."""

    kind = "resample"

    def __init__(self, ref_adapter, ref_rows: Mapping[str, np.ndarray], mapping: np.ndarray):
        self.ref_adapter = ref_adapter
        self.ref_rows = ref_rows
        self.mapping = mapping  # eval row -> reference row

    def for_batch(self, engine: CircuitEngine, batch: Batch, idx: np.ndarray) -> AblationValues:
        ref_idx = self.mapping[idx]
        ref_batch = self.ref_adapter.encode({k: v[ref_idx] for k, v in self.ref_rows.items()})
        if ref_batch.inputs["input_ids"].shape != batch.inputs["input_ids"].shape:  # pragma: no cover - by mapping
            raise CheckUsageError("resample ablation: reference batch shape differs from the evaluated batch")
        z, mlp, embed = engine.record_all(ref_batch, self.ref_adapter)
        engine.forward_passes["reference"] += 1
        return AblationValues(z, mlp, embed)


# ───────────────────────── the engine ─────────────────────────

class CircuitEngine:
    """Circuit evaluation (ablations, path patching) on a transformer family; built with the
    same frozen `EngineOptions` as the alignment engine (it reads `batch_size`)."""

    def __init__(self, adapter, module: torch.nn.Module, family, options: EngineOptions = EngineOptions()):
        self.adapter = adapter
        self.module = module
        self.family = family
        self.options = options
        self.arch = arch_of(module, family)
        self.dims = Dims.of(module.config)
        self.batch_size = max(1, int(options.batch_size))
        self.forward_passes: dict[str, int] = {}
        self._reset_counts()
        spec = family.spec
        self.spec = spec
        self.block_prefix = f"{base_prefix(module)}{spec.layers}"
        self.prenorm = isinstance(spec.resid_mid, PreNormMid)
        self.z_access: dict[int, ModuleAccess] = {}
        self.mlp_access: dict[int, ModuleAccess] = {}
        for L in range(self.arch.layers):
            z = family.locate(module, SiteAddress("head.z", L, 0))
            assert isinstance(z, SliceAccess)
            self.z_access[L] = z.inner  # the out-projection input: all heads' z, [batch, seq, H * hd]
            self.mlp_access[L] = family.locate(module, SiteAddress("mlp.out", L))
        self.embed_access = family.locate(module, SiteAddress("embed"))
        self.position_embedding = _position_embedding(module)
        self.final_access = family.locate(module, SiteAddress("resid.post", self.arch.layers - 1))
        self._w_o: dict[tuple[int, int], Tensor] = {}

    def _reset_counts(self) -> None:
        self.forward_passes = {"reference": 0, "clean": 0, "ablated": 0, "circuit": 0, "knockout": 0}

    def block(self, layer: int, rel: str) -> torch.nn.Module:
        return self.module.get_submodule(f"{self.block_prefix}.{layer}.{rel}")

    def w_o(self, layer: int, head: int) -> Tensor:
        """W_O rows of one head: [head_dim, d_model]."""
        key = (layer, head)
        if key not in self._w_o:
            access = self.family.locate(self.module, SiteAddress("head.result", layer, head))
            self._w_o[key] = access._w_head().detach()
        return self._w_o[key]

    # recording ------------------------------------------------------------------------
    def record_all(self, batch: Batch, adapter=None) -> tuple[dict[int, Tensor], dict[int, Tensor], Tensor]:
        """Every layer's z and MLP output and the embeddings of one clean forward."""
        z: dict[int, Tensor] = {}
        mlp: dict[int, Tensor] = {}
        embed: list[Tensor] = []
        installers: list[Installer] = [lambda: self.embed_access.install_read(lambda x: embed.append(x.detach()))]
        for L in range(self.arch.layers):
            installers.append(lambda L=L: self.z_access[L].install_read(lambda x: z.__setitem__(L, x.detach())))
            installers.append(lambda L=L: self.mlp_access[L].install_read(
                lambda x: mlp.__setitem__(L, x.detach())))
        with torch.no_grad(), installed(installers):
            (adapter or self.adapter).forward(batch)
        return z, mlp, embed[-1]

    def mean_ablation(self, ref_adapter, ref_rows: Mapping[str, np.ndarray],
                      progress: Callable[[int], None] | None = None) -> MeanAblation:
        """Per-position means of z, MLP outputs and embeddings over the reference prompts."""
        n = len(next(iter(ref_rows.values())))
        sums: dict = {}
        counts: Tensor | None = None
        lengths = []
        for start in range(0, n, self.batch_size):
            idx = np.arange(start, min(n, start + self.batch_size))
            batch = ref_adapter.encode({k: v[idx] for k, v in ref_rows.items()})
            mask = batch.inputs["attention_mask"].to(torch.float64)  # [batch, seq]
            lengths += [int(x) for x in mask.sum(1).tolist()]
            z, mlp, embed = self.record_all(batch, ref_adapter)
            self.forward_passes["reference"] += 1
            acts = {("z", L): v for L, v in z.items()}
            acts.update({("mlp", L): v for L, v in mlp.items()})
            acts[("embed", 0)] = embed
            seq = mask.shape[1]
            if counts is None or counts.shape[0] < seq:
                counts = _grow(counts, seq)
            counts[:seq] += mask.sum(0)
            for key, act in acts.items():
                total = (act.to(torch.float64) * mask[..., None]).sum(0)  # [seq, width]
                sums[key] = _grow(sums.get(key), seq, total.shape[1])
                sums[key][:seq] += total
            if progress:
                progress(len(idx))
        assert counts is not None
        dtype = next(self.module.parameters()).dtype
        per_pos = {k: (s / counts.clamp(min=1)[:, None]).to(dtype) for k, s in sums.items()}
        overall = {k: (s.sum(0) / counts.sum()).to(dtype) for k, s in sums.items()}
        layers = range(self.arch.layers)
        return MeanAblation({L: per_pos[("z", L)] for L in layers}, {L: per_pos[("mlp", L)] for L in layers},
                            per_pos[("embed", 0)], {L: overall[("z", L)] for L in layers},
                            {L: overall[("mlp", L)] for L in layers}, overall[("embed", 0)], np.asarray(lengths))

    # evaluation -------------------------------------------------------------------------
    def evaluate(self, rows: Mapping[str, np.ndarray], variants: Sequence[Variant], universe: frozenset[str],
                 ablation, metric: MetricFn, progress: Callable[[int], None] | None = None,
                 on_clean: Mapping[str, MetricFn] | None = None) -> dict[str, np.ndarray]:
        """Per-prompt metric values of every variant (batches outer, variants inner). `on_clean`:
        more per-prompt functions read from the logits of the `clean` variant (no extra forward
        pass), stored under their own keys (the full model's task accuracy)."""
        n = len(next(iter(rows.values())))
        out = {v.key: np.full(n, np.nan) for v in variants}
        extra = dict(on_clean or {}) if any(v.mode == "clean" for v in variants) else {}
        out.update({k: np.full(n, np.nan) for k in extra})
        for start in range(0, n, self.batch_size):
            idx = np.arange(start, min(n, start + self.batch_size))
            batch = self.adapter.encode({k: v[idx] for k, v in rows.items()})
            abl = ablation.for_batch(self, batch, idx)
            positions: dict = {}
            for v in variants:
                with torch.no_grad(), installed(self._installers(v, batch, abl, universe, positions)):
                    logits = self.adapter.forward(batch)
                counter = v.key if v.key in ("clean", "ablated", "circuit") else "knockout"
                self.forward_passes[counter] += 1
                out[v.key][idx] = metric(logits, batch, idx)
                if v.mode == "clean":
                    for k, fn in extra.items():
                        out[k][idx] = fn(logits, batch, idx)
                if progress:
                    progress(len(idx))
        return out

    # masks --------------------------------------------------------------------------------
    def _positions(self, batch: Batch, member: Member, cache: dict) -> list[list[int]] | None:
        """Per row, the token indices where the member is in the circuit; None: every position."""
        if member.everywhere:
            return None
        key = member.positions
        if key not in cache:
            binding = SimpleNamespace(site=f"{member.node} (group `{member.group}`)", positions=member.positions)
            cache[key] = self.adapter.positions_list(batch, binding)
        return cache[key]

    def _masks(self, variant: Variant, batch: Batch, universe: frozenset[str], cache: dict):
        """keep masks: heads {layer: bool [batch, seq, H]}, mlps {layer: bool [batch, seq]};
        True = the node's own (clean-run) output at that position."""
        b, seq = batch.inputs["input_ids"].shape
        H = self.arch.heads
        keep_default = variant.mode == "ablate"
        if variant.mode == "ablate":
            members = variant.members
        elif variant.circuit is not None:
            members = variant.circuit.members
        else:  # Variant's constructors give every keep/circuit variant its circuit
            raise ValueError(f"a `{variant.mode}` variant without its circuit")
        heads = {L: torch.full((b, seq, H), keep_default) for L in range(self.arch.layers)} if HEAD in universe \
            else {}
        mlps = {L: torch.full((b, seq), keep_default) for L in range(self.arch.layers)} if MLP in universe else {}
        for m in members:
            if m.node.kind not in universe:
                continue
            pos = self._positions(batch, m, cache)
            target = heads[m.node.layer][..., m.node.head] if m.node.kind == HEAD else mlps[m.node.layer]
            if pos is None:
                target[:] = not keep_default
            else:
                for j, p in enumerate(pos):
                    target[j, p] = not keep_default
        device = batch.inputs["input_ids"].device
        heads = {L: m.to(device) for L, m in heads.items() if not bool(m.all())}
        mlps = {L: m.to(device) for L, m in mlps.items() if not bool(m.all())}
        return heads, mlps

    def require_edge_granularity(self, what: str) -> None:
        """Refuse edge granularity (path patching) where it is ambiguous (shortformer attention-only
        models, `run.attn_only.edge_granularity_problem`): a check ERROR naming the network, the
        reason and what to use instead. `what` names the claim and its network for the message."""
        problem = edge_granularity_problem(self.module.config)
        if problem is not None:
            raise CheckUsageError(f"{what}: edge granularity is ambiguous on this network: {problem}; use "
                                  "`granularity node` (node patching) instead, or a model whose positions "
                                  "enter the residual stream")

    # hooks --------------------------------------------------------------------------------
    def _installers(self, variant: Variant, batch: Batch, abl: AblationValues, universe: frozenset[str],
                    cache: dict) -> list:
        if variant.mode == "clean":
            return []
        heads, mlps = self._masks(variant, batch, universe, cache)
        hd = self.dims.head_dim
        edges = variant.circuit.edges if variant.mode == "keep" and variant.circuit is not None else None
        state = _EdgeState(self, variant.circuit, abl) if edges is not None and variant.circuit is not None else None
        installers = []
        if state is not None:
            installers += state.installers()
        for L in range(self.arch.layers):
            circuit_heads = state.heads_of(L) if state else []
            if L in heads or circuit_heads:
                keep = heads.get(L)

                def edit_z(z: Tensor, L=L, keep=keep, circuit_heads=circuit_heads) -> Tensor:
                    zabl = abl.z[L]
                    if keep is not None:
                        b, s, w = z.shape
                        mask = keep[..., None].expand(b, s, self.arch.heads, hd).reshape(b, s, w)
                        z = torch.where(mask, z, zabl.to(z.dtype))  # [batch, seq, H * hd]
                    if state is not None:
                        for node in circuit_heads:
                            cols = slice(node.head * hd, (node.head + 1) * hd)
                            diff = (z - zabl)[..., cols]  # [batch, seq, hd]
                            state.add(node, diff @ self.w_o(L, node.head))  # [batch, seq, d_model]
                    return z

                installers.append(lambda L=L, e=edit_z: self.z_access[L].install_write(e))
            circuit_mlp = state.mlp_of(L) if state else None
            if L in mlps or circuit_mlp is not None:
                keep = mlps.get(L)

                def edit_mlp(y: Tensor, L=L, keep=keep, node=circuit_mlp) -> Tensor:
                    yabl = abl.mlp[L].to(y.dtype)
                    if keep is not None:
                        y = torch.where(keep[..., None], y, yabl)  # [batch, seq, d_model]
                    if state is not None and node is not None:
                        state.add(node, y - yabl)
                    return y

                installers.append(lambda L=L, e=edit_mlp: self.mlp_access[L].install_write(e))
        if state is not None:
            installers += state.late_installers()
        return installers


class _EdgeState:
    """Per-forward bookkeeping of path patching: each circuit node's ``out - abl`` (D), the
    running sum of D over the nodes computed so far, and the receivers' corrections."""

    def __init__(self, engine: CircuitEngine, circuit: ResolvedCircuit, abl: AblationValues):
        self.e = engine
        self.circuit = circuit
        self.abl = abl
        self.members = {m.node for m in circuit.members if m.node.kind in circuit.universe}
        self.edges = circuit.edges or {}
        self.D: dict[Node, Tensor] = {}
        self.cum: Tensor | None = None
        self.embed: Tensor | None = None
        self.positions: Tensor | None = None  # the position embedding of this forward (token-only input ablation)
        self.resid_pre: dict[int, Tensor] = {}
        mid = engine.spec.resid_mid
        self.mid = mid if isinstance(mid, PreNormMid) else None
        # receivers per layer
        self.head_receivers: dict[int, list[tuple[Node, str]]] = {}
        self.mlp_receivers: dict[int, Node] = {}
        for node in sorted(self.members):
            if node.kind == HEAD:
                for port in ("q", "k", "v"):
                    self.head_receivers.setdefault(node.layer, []).append((node, port))
            else:
                self.mlp_receivers[node.layer] = node
        if edge_granularity_problem(engine.module.config) is not None:
            engine.require_edge_granularity("this circuit")
        if (self.head_receivers or self.mlp_receivers) and self.mid is None:
            raise CheckUsageError(f"edge granularity needs a pre-norm decoder (GPT-2, GPT-NeoX, Llama family); "
                                  f"{engine.family.name} is not supported")
        self._check_shared_kv_heads()

    def kv_head(self, head: int) -> int:
        """The key/value head that query head `head` reads (grouped-query attention repeats each
        key/value head for `n_heads // n_kv_heads` consecutive query heads, as HF's `repeat_kv`)."""
        dims = self.e.dims
        return head // (dims.n_heads // dims.n_kv_heads)

    def _check_shared_kv_heads(self) -> None:
        """With grouped-query attention, the `.k` / `.v` input of a query head is its key/value
        head's, shared with the other query heads of its group.

        Why this is enough to route edges: a query head outside the circuit has its z replaced by
        the ablated value, so what its keys and values see does not matter; only circuit heads that
        share a key/value head must agree on which senders their `.k` (or `.v`) input sees. Where
        they do, the shared key/value head is computed from that input once; where they do not,
        no single key/value tensor can serve both, and the check says so instead of guessing."""
        dims = self.e.dims
        if dims.n_kv_heads == dims.n_heads:
            return
        for layer, receivers in self.head_receivers.items():
            for port in ("k", "v"):
                seen: dict[int, tuple[Node, frozenset]] = {}
                for node, p in receivers:
                    if p != port:
                        continue
                    # what the correction depends on: the allowed senders upstream of this input
                    # (an edge from a later layer's node never reaches it) and the embedding
                    allowed = frozenset(u for u in self.edges.get((node, port), frozenset())
                                        if not isinstance(u, Node) or self._upstream(u, (node, port)))
                    kv = self.kv_head(node.head)
                    if kv in seen and seen[kv][1] != allowed:
                        other = seen[kv][0]
                        raise CheckUsageError(
                            f"edge granularity on grouped-query attention: circuit heads {other} and {node} share "
                            f"key/value head {kv} of layer {layer}, but their `.{port}` inputs have different "
                            f"incoming edges; no single key/value tensor can give each its own. Give both heads "
                            f"the same edges into `.{port}`, or use `granularity node`")
                    seen.setdefault(kv, (node, allowed))

    def heads_of(self, layer: int) -> list[Node]:
        return [n for n in sorted(self.members) if n.kind == HEAD and n.layer == layer]

    def mlp_of(self, layer: int) -> Node | None:
        node = Node.mlp(layer)
        return node if node in self.members else None

    @property
    def pre_norm(self) -> PreNormMid:
        """The pre-norm block layout; only read where there are receivers, which __init__ refuses without it."""
        if self.mid is None:
            raise CheckUsageError("edge granularity needs a pre-norm decoder (GPT-2, GPT-NeoX, Llama family)")
        return self.mid

    def add(self, node: Node, diff: Tensor) -> None:
        self.D[node] = diff
        self.cum = diff.clone() if self.cum is None else self.cum + diff

    # corrections --------------------------------------------------------------------------
    def _upstream(self, node: Node, receiver) -> bool:
        dst, port = (receiver, None) if receiver == LOGITS else receiver
        return upstream(node, dst, port, self.e.arch)

    def correction(self, receiver, like: Tensor) -> Tensor | None:
        """``Σ D_u`` over upstream circuit nodes without an edge to `receiver` (+ the embedding
        term when `embed` is routed and not allowed here); None when nothing is cut."""
        allowed = self.edges.get(receiver, frozenset())
        computed = list(self.D)
        upstream = [u for u in computed if self._upstream(u, receiver)]
        cut = [u for u in upstream if u not in allowed]
        corr = None
        if cut:
            kept = [u for u in upstream if u in allowed]
            not_up = [u for u in computed if u not in upstream]
            if len(kept) + len(not_up) < len(cut) and self.cum is not None:  # cut is not empty: `add` set cum
                corr = self.cum.clone()
                for u in kept + not_up:
                    corr -= self.D[u]
            else:
                corr = sum((self.D[u] for u in cut[1:]), self.D[cut[0]].clone())
        if self.circuit.embed_gated and EMBED not in allowed:
            assert self.embed is not None
            if self.abl.keeps_positions:
                # the ablated input keeps this forward's position embedding: cut the token embedding only
                ablated = self.positions if self.positions is not None else self.abl.embed
                term = self.embed - ablated.to(self.embed.dtype)
            else:
                term = self.embed - self.abl.embed.to(self.embed.dtype)
            corr = term if corr is None else corr + term
        if corr is None:
            return None
        return corr.to(like.dtype)  # [batch, seq, d_model]

    # hooks ------------------------------------------------------------------------------------
    def installers(self) -> list[Installer]:
        e = self.e
        out: list[Installer] = [lambda: e.embed_access.install_read(lambda x: setattr(self, "embed", x))]
        if self.abl.keeps_positions and self.circuit.embed_gated and e.position_embedding is not None:
            pos_module = e.position_embedding
            out.append(lambda: ModuleAccess(SiteAddress("module", module_path="position embedding", module_io="output"),
                                            pos_module, "output", None).install_read(
                lambda x: setattr(self, "positions", x)))
        spec = e.spec
        for L, receivers in self.head_receivers.items():
            norm = e.block(L, self.pre_norm.attn_norm)
            out.append(lambda L=L, norm=norm: ModuleAccess(SiteAddress("resid.pre", L), norm, "input",
                                                           e.dims.d_model).install_read(
                lambda x: self.resid_pre.__setitem__(L, x)))
            by_path: dict[str, list[tuple[Node, str]]] = {}
            for node, port in receivers:
                by_path.setdefault(getattr(spec, port).path, []).append((node, port))
            for path, recs in by_path.items():
                proj = e.block(L, path)

                def edit_proj(y: Tensor, L=L, recs=recs, norm=norm, proj=proj) -> Tensor:
                    x = self.resid_pre[L]  # [batch, seq, d_model]
                    # receivers of one layer with the same allowed senders share one correction
                    by_allowed: dict[frozenset, list[tuple[Node, str]]] = {}
                    for node, port in recs:
                        by_allowed.setdefault(self.edges.get((node, port), frozenset()), []).append((node, port))
                    out_y = None
                    for group in by_allowed.values():
                        corr = self.correction(group[0], x)
                        if corr is None:
                            continue
                        fresh = proj.forward(norm.forward(x - corr))  # [batch, seq, total]
                        if out_y is None:
                            out_y = y.clone()
                        for node, port in group:
                            if port in ("k", "v"):  # GQA: the query head's key/value head (kv_head)
                                n_heads, head = e.dims.n_kv_heads, self.kv_head(node.head)
                            else:
                                n_heads, head = e.dims.n_heads, node.head
                            a, _ = getattr(spec, port).columns(head, n_heads, e.dims.head_dim)
                            out_y[..., a:a + e.dims.head_dim] = fresh[..., a:a + e.dims.head_dim]
                    return y if out_y is None else out_y

                out.append(lambda proj=proj, L=L, edit=edit_proj, path=path: ModuleAccess(
                    SiteAddress("module", module_path=f"{e.block_prefix}.{L}.{path}", module_io="output"),
                    proj, "output", None).install_write(edit))
        for L, node in self.mlp_receivers.items():
            norm = e.block(L, self.pre_norm.mlp_norm)

            def edit_mlp_in(x: Tensor, node=node) -> Tensor:
                corr = self.correction((node, None), x)
                return x if corr is None else x - corr

            out.append(lambda L=L, norm=norm, edit=edit_mlp_in: ModuleAccess(
                SiteAddress("resid.mid", L), norm, "input", e.dims.d_model).install_write(edit))
        return out

    def late_installers(self) -> list:
        """The logits' input: installed after the node hooks of the last layer."""
        def edit_final(x: Tensor) -> Tensor:
            corr = self.correction(LOGITS, x)
            return x if corr is None else x - corr

        return [lambda: self.e.final_access.install_write(edit_final)]


# ───────────────────────── helpers ─────────────────────────

def _position_embedding(module: torch.nn.Module) -> torch.nn.Module | None:
    """The learned absolute position embedding added to the token embedding (GPT-2's `wpe`), or
    None when the network has none (rotary families: GPT-NeoX, Llama): then the input is the
    token embedding alone."""
    base = base_prefix(module)
    for name in ("wpe", "embed_positions", "embeddings.position_embeddings"):
        try:
            return module.get_submodule(f"{base}{name}")
        except AttributeError:
            continue
    return None


def _grow(t: Tensor | None, rows: int, width: int | None = None) -> Tensor:
    """A float64 accumulator with at least `rows` rows (zero-padded)."""
    if t is None:
        return torch.zeros((rows,) if width is None else (rows, width), dtype=torch.float64)
    if t.shape[0] >= rows:
        return t
    pad = torch.zeros((rows - t.shape[0], *t.shape[1:]), dtype=t.dtype)
    return torch.cat([t, pad])


def resample_mapping(eval_lengths: np.ndarray, ref_lengths: np.ndarray, seed: int,
                     describe: Callable[[int], str], dataset: str) -> np.ndarray:
    """For each evaluated prompt, a reference prompt with the same token count (seeded draw)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(eval_lengths), dtype=np.int64)
    by_len: dict[int, np.ndarray] = {}
    for L in np.unique(ref_lengths):
        by_len[int(L)] = np.flatnonzero(ref_lengths == L)
    for i, L in enumerate(eval_lengths):
        pool = by_len.get(int(L))
        if pool is None:
            have = ", ".join(str(k) for k in sorted(by_len))
            raise CheckUsageError(f"resample ablation: no prompt of dataset `{dataset}` has {int(L)} tokens like "
                                  f"example ({describe(i)}); its prompts have {have} token(s) — resampling needs "
                                  "prompts that tokenize to the same length")
        out[i] = pool[rng.integers(len(pool))]
    return out


__all__ = ["AblationValues", "CircuitEngine", "MeanAblation", "ResampleAblation", "Variant", "ZeroAblation",
           "arch_of", "resample_mapping"]
