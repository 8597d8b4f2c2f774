"""Reading and patching sites during forward passes: the `record` and `patch` context managers.

Why a module of its own: a site is resolved by the model's family (`run.families`, whose
tables name the `run.sites` accesses), and then hooked here. Keeping the context managers
above both — `run.sites` (accesses, interventions) ← `run.families` (tables) ← `run.hooks` —
means neither of the lower two imports the other back.

Hooks run in registration order, so a `record` context entered *inside* a `patch`
context sees the patched values at the very sites being patched (nest it that way to
observe an intervention), while one entered outside sees the values before patching.
The hooks assume one full forward pass per call (no KV cache / incremental decoding)
and eval mode (dropout off: some writes go through a dropout module).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from causalspec.run.families import Family, resolve_family
from causalspec.run.sites import Intervention, SiteAccess, SiteCallError, SiteShapeError, Sink, make_edit
from causalspec.semantics.site_kinds import SiteAddress


def _family(model: nn.Module, family: Family | None) -> Family:
    return family if family is not None else resolve_family(model)


@contextlib.contextmanager
def installed(installers: Sequence[Callable[[], list[RemovableHandle]]]) -> Iterator[None]:
    """Install hooks; remove exactly those handles on exit, exception or not."""
    handles: list[RemovableHandle] = []
    try:
        for install in installers:
            handles.extend(install())
        yield
    finally:
        for handle in reversed(handles):
            handle.remove()


def _module_of(access: SiteAccess) -> nn.Module | None:
    """The module whose call carries a resolved site (for messages)."""
    for attr in ("module", "o_proj", "attn"):
        if isinstance(getattr(access, attr, None), nn.Module):
            return getattr(access, attr)
    inner = getattr(access, "inner", None)
    return _module_of(inner) if inner is not None else None


def _module_name(model: nn.Module, access: SiteAccess) -> str:
    target = _module_of(access)
    for name, module in model.named_modules():
        if module is target:
            return f"`{name}`" if name else "the network itself"
    return f"the module of `{access.site}`"


@dataclass
class _CallCounts:
    """Forward passes of the model, and calls of each site's hook, inside one `record`/`patch` block."""

    forwards: int = 0
    calls: dict = field(default_factory=dict)  # index of the access -> hook calls

    def counted(self, key: int, fn: Callable) -> Callable:
        self.calls.setdefault(key, 0)

        def wrapped(x):
            self.calls[key] += 1
            return fn(x)

        return wrapped

    def install(self, model: nn.Module) -> list[RemovableHandle]:
        def count(module, args):
            self.forwards += 1

        return [model.register_forward_pre_hook(count, prepend=True)]

    def check(self, model: nn.Module, accesses: Sequence[SiteAccess], *, must_run: bool) -> None:
        """SiteCallError when a site's module ran more often than the model (more than once per
        forward), or — `must_run` — not at all although the model ran."""
        if not self.forwards:
            return  # the block called submodules directly: nothing to compare with
        for key, access in enumerate(accesses):
            calls = self.calls.get(key, 0)
            per = "in one forward pass" if self.forwards == 1 else f"in {self.forwards} forward passes"
            if calls > self.forwards:
                raise SiteCallError(
                    f"site `{access.site}`: module {_module_name(model, access)} ran {calls} times {per}, so the "
                    "site is ambiguous (each call would be read and patched); align to a module the forward calls "
                    "once — e.g. give each use its own submodule")
            if must_run and calls == 0:
                raise SiteCallError(
                    f"site `{access.site}`: module {_module_name(model, access)} never ran during the forward pass "
                    "(the network's forward does not call it); align to a module the forward calls")


@contextlib.contextmanager
def record(
    model: nn.Module, family: Family | None, sites: Sequence[SiteAddress], *, detach: bool = True
) -> Iterator[dict[SiteAddress, Tensor]]:
    """Capture activations at ``sites`` during the forward passes run inside the block.

    Yields a dict filled as the model runs (the last pass wins). Values are clones, and
    detached unless ``detach=False`` (keep the graph, e.g. to train a featurizer).
    All sites are resolved before any hook is installed, so an `UnservableSite`
    leaves the model untouched. When the block ends, a site whose module ran more than once
    per forward of ``model``, or never, raises `SiteCallError`.
    """
    fam = _family(model, family)
    accesses = [fam.locate(model, site) for site in dict.fromkeys(sites)]
    captured: dict[SiteAddress, Tensor] = {}

    def sink_for(site: SiteAddress) -> Sink:
        def sink(x: Tensor) -> None:
            captured[site] = x.detach().clone() if detach else x.clone()

        return sink

    counts = _CallCounts()
    installers: list[Callable[[], list[RemovableHandle]]] = [lambda: counts.install(model)]
    installers += [functools.partial(_install_read, a, counts, k, sink_for(a.site)) for k, a in enumerate(accesses)]
    with installed(installers):
        yield captured
    counts.check(model, accesses, must_run=True)



def _install_read(access, counts: _CallCounts, key: int, sink: Sink) -> list[RemovableHandle]:
    return access.install_read(counts.counted(key, sink))


def _install_write(access, counts: _CallCounts, key: int, iv: Intervention) -> list[RemovableHandle]:
    return access.install_write(counts.counted(key, make_edit(iv)))

@contextlib.contextmanager
def patch(model: nn.Module, family: Family | None, interventions: Sequence[Intervention]) -> Iterator[None]:
    """Apply ``interventions`` to every forward pass run inside the block.

    Several interventions (at different sites, or stacked at one site) are applied in
    the order given. Widths are checked against each site up front; batch, sequence
    length and positions are checked in the hooks, where the activation is known. When the
    block ends, a site whose module ran more than once per forward of ``model`` raises
    `SiteCallError` (every call was patched: which one the alignment means is ambiguous).
    """
    fam = _family(model, family)
    accesses = [fam.locate(model, iv.site) for iv in interventions]
    for iv, access in zip(interventions, accesses):
        if access.width is not None and iv.values.shape[-1] != access.width:
            raise SiteShapeError(f"{iv.site}: values have width {iv.values.shape[-1]}, "
                                 f"the site's width is {access.width}")
    counts = _CallCounts()
    installers: list[Callable[[], list[RemovableHandle]]] = [lambda: counts.install(model)]
    installers += [functools.partial(_install_write, a, counts, k, iv)
                   for k, (iv, a) in enumerate(zip(interventions, accesses))]
    with installed(installers):
        yield
    counts.check(model, accesses, must_run=False)


__all__ = ["installed", "patch", "record"]
