"""Backend-neutral sites: where an activation lives, and how to read or patch it.

Why this layer exists: a spec names sites abstractly (``resid.post[3]``, ``head[2.1].z``,
``module "layers.0" output``); the runner must not care whether the network is GPT-2,
Pythia, Llama or BERT. This module holds the hook machinery per resolved site;
``causalspec.run.families`` holds one small *data table* per model family saying which
submodule boundary carries each site. The two meet in a `SiteAccess`: a resolved site
that knows how to install a read hook or a write hook on the model.

Shape conventions (asserted in every hook, never flattened silently):

* residual-type sites (``embed``, ``resid.*``, ``attn.out``, ``mlp.out``,
  ``head.result``): ``[batch, seq, d_model]``;
* ``head.q|k|v|z``: ``[batch, seq, head_dim]`` for one head; q/k/v are the per-head
  slices of the projection outputs (for rotary models: *before* the rotation is
  applied), z is the per-head slice of the input of the attention out-projection;
* ``logits``: ``[batch, seq, vocab]``;
* ``module`` sites: whatever the module carries, usually ``[batch, seq, width]``; a
  network without a sequence axis (an MLP) gives ``[batch, width]``.

The `record` and `patch` context managers that install these hooks for a forward pass are
in `run.hooks` (above `run.families`, which builds its tables from the accesses here). The
address itself (`SiteAddress`) and the table of site kinds are torch-free, in
`semantics.site_kinds`, shared with the analysis.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from causalspec.errors import CheckError
from causalspec.run.patching import main_tensor, mix, patch_positions, replace_main
from causalspec.semantics.site_kinds import SiteAddress

ModuleIO = Literal["input", "output"]


class UnservableSite(CheckError):
    """The model family cannot provide this site (for this config).

    The message always lists what *can* be served, because the usual fix is to pick a
    neighbouring site (e.g. ``resid.pre[L+1]`` instead of ``resid.mid[L]`` on a
    parallel-residual model) and the user should not have to read the adapter to find it.
    """

    def __init__(self, site: SiteAddress, family: str, reason: str, available: Sequence[str]):
        self.site = site
        self.family = family
        self.reason = reason
        self.available = list(available)
        listing = "\n".join(f"  {line}" for line in self.available)
        super().__init__(f"{family} cannot serve site `{site}`: {reason}.\nSites it can serve:\n{listing}")


class SiteShapeError(CheckError, RuntimeError):
    """An activation or intervention tensor does not have the shape the site promises."""


class SiteCallError(CheckError):
    """A site's module ran more than once in one forward pass (every call would be read or
    patched: which one the alignment means is ambiguous), or, for a read, never ran (the
    network's forward does not call it). A check-time error naming the module and the count."""


# ───────────────────────── interventions ─────────────────────────


@dataclass(frozen=True, eq=False)
class Intervention:
    """Overwrite (part of) a site's activation during a forward pass.

    ``positions`` is a LongTensor ``[batch, n_pos]`` of sequence indices per batch row
    (rows may differ, e.g. the last real token of right-padded prompts); ``values`` is
    ``[batch, n_pos, width]``. ``positions=None`` means the whole activation is
    replaced and ``values`` must have exactly its shape (the only option for
    activations without a sequence axis).

    ``basis`` (``[width, k]``, orthonormal columns) restricts the patch to a subspace:
    ``patched = x - (x @ B) @ B.T + (src @ B) @ B.T``; ``None`` replaces everything; a pair
    ``(B, W)`` (``W`` ``[k, width]``) writes ``((src - x) @ B) @ W`` instead (`mix`).
    A featurizer's basis (a slice ``[a:b]`` is ``I[:, a:b]``) is ``Featurizer.basis`` of
    ``causalspec.semantics.featurizers``.
    """

    site: SiteAddress
    positions: Tensor | None
    values: Tensor
    basis: Tensor | tuple[Tensor, Tensor] | None = None

    def __post_init__(self) -> None:
        if self.positions is not None:
            pos = self.positions
            if pos.dtype != torch.long or pos.dim() != 2:
                raise SiteShapeError(
                    f"{self.site}: positions must be a LongTensor [batch, n_pos], got {pos.dtype} {tuple(pos.shape)}"
                )
            if self.values.dim() != 3 or tuple(self.values.shape[:2]) != tuple(pos.shape):
                raise SiteShapeError(
                    f"{self.site}: values must be [batch, n_pos, width] = [{pos.shape[0]}, {pos.shape[1]}, width], "
                    f"got {tuple(self.values.shape)}"
                )
            if pos.numel() and pos.min() < 0:
                raise SiteShapeError(f"{self.site}: positions must be >= 0 "
                                     "(negative indices are ambiguous with padding)")
            if pos.shape[1] > 1:
                ordered = pos.sort(dim=1).values
                if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
                    raise SiteShapeError(f"{self.site}: a batch row lists the same position twice")
        if callable(self.basis):  # a non-linear featurizer's patch (run.sae.SAEPatch): it checks its own width
            if getattr(self.basis, "width", self.values.shape[-1]) != self.values.shape[-1]:
                raise SiteShapeError(f"{self.site}: the SAE reads width {self.basis.width}, "
                                     f"the values have width {self.values.shape[-1]}")
            return
        b: Tensor | None
        if isinstance(self.basis, (tuple, list)):  # (read [width, k], write [k, width]): see `mix`
            read, write = self.basis
            if write.dim() != 2 or tuple(write.shape) != (read.shape[-1], read.shape[0]):
                raise SiteShapeError(f"{self.site}: a write map must be [k, width] = "
                                     f"{[read.shape[-1], read.shape[0]]}, got {tuple(write.shape)}")
            b = read
        else:
            b = self.basis
        if b is not None:
            if b.dim() != 2 or b.shape[0] != self.values.shape[-1]:
                raise SiteShapeError(f"{self.site}: basis must be [width={self.values.shape[-1]}, k], "
                                     f"got {tuple(b.shape)}")
            gram = b.T.double() @ b.double()  # [k, k]
            eye = torch.eye(b.shape[1], dtype=gram.dtype, device=gram.device)
            if not torch.allclose(gram, eye, atol=1e-4):
                raise ValueError(f"{self.site}: basis columns must be orthonormal (B.T @ B == I)")


class Patch(Protocol):
    """What `make_edit` reads of a patch: an `Intervention`, or a training patch (`run.train`)
    whose basis need not be orthonormal and may be the pair its own ``combine`` takes."""

    @property
    def site(self) -> SiteAddress: ...
    @property
    def positions(self) -> Tensor | None: ...
    @property
    def values(self) -> Tensor: ...
    @property
    def basis(self) -> Any: ...


def make_edit(iv: Patch, combine: Callable = mix) -> Callable[[Tensor], Tensor]:
    """Turn an intervention into ``activation -> patched activation`` (out of place).

    ``combine(current, source, basis)`` is the patch formula (`run.patching.mix`); training
    a learned featurizer passes its own (`run.train`) and keeps the shape checks and the
    position handling here."""

    def edit(x: Tensor) -> Tensor:
        values = iv.values.to(dtype=x.dtype, device=x.device)
        if iv.positions is None:
            if tuple(x.shape) != tuple(values.shape):
                raise SiteShapeError(f"{iv.site}: activation is {tuple(x.shape)}, values are {tuple(values.shape)}")
            return combine(x, values, iv.basis)
        if x.dim() != 3:
            raise SiteShapeError(
                f"{iv.site}: positional patch needs a [batch, seq, width] activation, got {tuple(x.shape)}"
            )
        batch, seq, width = x.shape
        if tuple(values.shape) != (batch, iv.positions.shape[1], width):
            raise SiteShapeError(
                f"{iv.site}: activation is [batch={batch}, seq={seq}, width={width}] but values are "
                f"{tuple(values.shape)} (expected [{batch}, {iv.positions.shape[1]}, {width}])"
            )
        positions = iv.positions.to(x.device)
        if positions.numel() and int(positions.max()) >= seq:
            raise SiteShapeError(f"{iv.site}: position {int(positions.max())} out of range for seq length {seq}")
        return patch_positions(x, positions, values, iv.basis, combine)  # [batch, seq, width]

    return edit


# ───────────────────────── tensors at module boundaries ─────────────────────────


def _split_input(
    site: SiteAddress, args: tuple, kwargs: dict
) -> tuple[Tensor, Callable[[Tensor], tuple[tuple, dict]]]:
    """The tensor a module was called with, and how to rebuild the call with a new one.

    HF calls some submodules positionally and some with ``hidden_states=``; both count.
    """
    if args:
        if not isinstance(args[0], Tensor):
            raise SiteShapeError(f"{site}: the module's first input is {type(args[0]).__name__}, not a tensor")
        return args[0], lambda new: ((new, *args[1:]), kwargs)
    if isinstance(kwargs.get("hidden_states"), Tensor):
        keys = ["hidden_states"]
    else:
        keys = [key for key, value in kwargs.items() if isinstance(value, Tensor)]
    if len(keys) != 1:
        raise SiteShapeError(f"{site}: cannot tell which keyword input is the activation (tensor keywords: {keys})")
    key = keys[0]
    return kwargs[key], lambda new: (args, {**kwargs, key: new})


def _output_tensor(site: SiteAddress, out: Any) -> Tensor:
    """The main tensor of a module's output (`run.patching.main_tensor`), or a SiteShapeError."""
    x = main_tensor(out)
    if x is None:
        raise SiteShapeError(f"{site}: module output of type {type(out).__name__} has no primary tensor")
    return x


def _check_activation(site: SiteAddress, x: Tensor, width: int | None) -> None:
    """Every hook's shape guard: ``[batch, seq, width]`` when the width is known."""
    if width is None:
        return
    if x.dim() != 3 or x.shape[-1] != width:
        raise SiteShapeError(f"{site}: expected activation [batch, seq, {width}], got {tuple(x.shape)}")


# ───────────────────────── resolved sites ─────────────────────────

Sink = Callable[[Tensor], None]
Edit = Callable[[Tensor], Tensor]


class SiteAccess(ABC):
    """A site resolved against one model: installs read or write hooks for it.

    ``width`` is the last dimension the site promises (``None`` for module sites, whose
    width is only known at run time). Installers return the handles they created so the
    caller removes exactly those, never anyone else's hooks.
    """

    site: SiteAddress
    width: int | None

    @abstractmethod
    def install_read(self, sink: Sink) -> list[RemovableHandle]:
        """Call ``sink(activation)`` on every forward pass."""

    @abstractmethod
    def install_write(self, edit: Edit) -> list[RemovableHandle]:
        """Replace the activation by ``edit(activation)`` on every forward pass."""


@dataclass
class ModuleAccess(SiteAccess):
    """The input or output tensor of one submodule, as is."""

    site: SiteAddress
    module: nn.Module
    io: ModuleIO
    width: int | None

    def install_read(self, sink: Sink) -> list[RemovableHandle]:
        if self.io == "input":

            def read_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
                x, _ = _split_input(self.site, args, kwargs)  # [batch, seq, width]
                _check_activation(self.site, x, self.width)
                sink(x)

            return [self.module.register_forward_pre_hook(read_input, with_kwargs=True)]

        def read_output(module: nn.Module, args: tuple, out: Any) -> None:
            x = _output_tensor(self.site, out)  # [batch, seq, width]
            _check_activation(self.site, x, self.width)
            sink(x)

        return [self.module.register_forward_hook(read_output)]

    def install_write(self, edit: Edit) -> list[RemovableHandle]:
        if self.io == "input":

            def write_input(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
                x, rebuild = _split_input(self.site, args, kwargs)  # [batch, seq, width]
                _check_activation(self.site, x, self.width)
                return rebuild(edit(x))

            return [self.module.register_forward_pre_hook(write_input, with_kwargs=True)]

        def write_output(module: nn.Module, args: tuple, out: Any) -> Any:
            x = _output_tensor(self.site, out)  # [batch, seq, width]
            _check_activation(self.site, x, self.width)
            return replace_main(out, edit(x))

        return [self.module.register_forward_hook(write_output)]


@dataclass
class SliceAccess(SiteAccess):
    """Columns ``[start, start + width)`` of a module boundary tensor: one head's q, k, v
    or z inside a (possibly fused) projection. Writes splice only that slice back."""

    site: SiteAddress
    inner: ModuleAccess  # the full tensor, [batch, seq, total]
    start: int
    width: int

    def _cut(self, x: Tensor) -> Tensor:
        return x[..., self.start : self.start + self.width]  # [batch, seq, head_dim]

    def install_read(self, sink: Sink) -> list[RemovableHandle]:
        return self.inner.install_read(lambda x: sink(self._cut(x)))

    def install_write(self, edit: Edit) -> list[RemovableHandle]:
        end = self.start + self.width

        def splice(x: Tensor) -> Tensor:
            new = edit(self._cut(x))  # [batch, seq, head_dim]
            _check_activation(self.site, new, self.width)
            return torch.cat([x[..., : self.start], new, x[..., end:]], dim=-1)  # [batch, seq, total]

        return self.inner.install_write(splice)


@dataclass
class HeadResultAccess(SiteAccess):
    """One head's write into the residual stream: ``z_h @ W_O[h]`` (no bias).

    Read and written at the attention out-projection. A write adds the difference:
    ``o_proj(z) += new_result - old_result`` at the patched positions, which changes
    exactly this head's contribution and leaves the other heads and the bias alone.
    Consequence: z itself is untouched, so a `record` of this same site inside the
    patch still shows ``z_h @ W_O[h]`` of the unpatched z (downstream sites do move).
    """

    site: SiteAddress
    o_proj: nn.Module
    weight_layout: Literal["linear", "conv1d"]  # nn.Linear weight [out, in]; GPT-2 Conv1D weight [in, out]
    start: int  # first input column of this head's z
    head_dim: int
    width: int  # d_model

    def _w_head(self) -> Tensor:
        weight = cast(Tensor, self.o_proj.weight)  # nn.Module.__getattr__ is typed `Tensor | Module`
        end = self.start + self.head_dim
        w = weight[:, self.start : end].T if self.weight_layout == "linear" else weight[self.start : end, :]
        if tuple(w.shape) != (self.head_dim, self.width):
            raise SiteShapeError(f"{self.site}: W_O slice is {tuple(w.shape)}, not ({self.head_dim}, {self.width})")
        return w  # [head_dim, d_model]

    def _result(self, args: tuple, kwargs: dict) -> Tensor:
        z, _ = _split_input(self.site, args, kwargs)  # [batch, seq, n_heads * head_dim]
        if z.dim() != 3:
            raise SiteShapeError(f"{self.site}: expected z [batch, seq, n_heads * head_dim], got {tuple(z.shape)}")
        z_h = z[..., self.start : self.start + self.head_dim]  # [batch, seq, head_dim]
        return z_h @ self._w_head()  # [batch, seq, d_model]

    def install_read(self, sink: Sink) -> list[RemovableHandle]:
        def read_result(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            sink(self._result(args, kwargs))  # [batch, seq, d_model]

        return [self.o_proj.register_forward_hook(read_result, with_kwargs=True)]

    def install_write(self, edit: Edit) -> list[RemovableHandle]:
        def write_result(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
            old = self._result(args, kwargs)  # [batch, seq, d_model]
            new = edit(old)  # [batch, seq, d_model]
            y = _output_tensor(self.site, out)  # [batch, seq, d_model]
            _check_activation(self.site, y, self.width)
            return replace_main(out, y + (new - old))

        return [self.o_proj.register_forward_hook(write_result, with_kwargs=True)]


@dataclass
class PreNormMidAccess(SiteAccess):
    """``resid.mid`` of a pre-norm block: ``x_mid = x_pre + attn(norm1(x_pre))``.

    ``x_mid`` is the input of the MLP norm, so it is *read* there. It cannot be
    *written* there: the block keeps its own reference to ``x_mid`` for the skip
    connection, so a pre-hook on the norm would patch only the MLP's view of it.
    Instead the write adjusts the attention output: with ``x_pre`` taken from the
    attention norm's input, ``attn_out += edit(x_pre + attn_out) - (x_pre + attn_out)``.
    """

    site: SiteAddress
    attn_norm: nn.Module
    attn: nn.Module
    mlp_norm: nn.Module
    width: int

    def install_read(self, sink: Sink) -> list[RemovableHandle]:
        return ModuleAccess(self.site, self.mlp_norm, "input", self.width).install_read(sink)

    def install_write(self, edit: Edit) -> list[RemovableHandle]:
        stash: list[Tensor] = []

        def keep_resid_pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
            x, _ = _split_input(self.site, args, kwargs)  # [batch, seq, d_model]
            _check_activation(self.site, x, self.width)
            stash[:] = [x]

        def write_mid(module: nn.Module, args: tuple, out: Any) -> Any:
            if not stash:
                raise SiteShapeError(f"{self.site}: attention ran without its input norm; no resid.pre to add")
            a = _output_tensor(self.site, out)  # [batch, seq, d_model]
            _check_activation(self.site, a, self.width)
            mid = stash.pop() + a  # [batch, seq, d_model]
            return replace_main(out, a + (edit(mid) - mid))

        return [
            self.attn_norm.register_forward_pre_hook(keep_resid_pre, with_kwargs=True),
            self.attn.register_forward_hook(write_mid),
        ]


__all__ = [
    "HeadResultAccess",
    "Intervention",
    "ModuleAccess",
    "Patch",
    "PreNormMidAccess",
    "SiteAccess",
    "SiteCallError",
    "SiteShapeError",
    "SliceAccess",
    "UnservableSite",
    "make_edit",
]
