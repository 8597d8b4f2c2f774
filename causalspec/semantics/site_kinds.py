"""The site vocabulary: one table of site kinds and the torch-free `SiteAddress`.

Why one module, imported by both `semantics` and `run`: a site is named the same way when a
spec is analysed (`semantics.sites.SiteSpec`, with a source span) and when hooks are
installed on a network (`run.sites`, `run.families`). Both used to keep their own kind lists,
fields and `__str__`; now the kinds live in `KINDS` below, the fields and the spelling in
`SiteAddress`, and `SiteSpec` is a `SiteAddress` that also carries its span. Adding a site
kind is a row here, plus where each family keeps it (`run.families`) and how the parser
spells it (`semantics.sites`).

Nothing here imports torch or any other causalspec module: it is the bottom of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteKind:
    """One row of the table: what a site of this kind is indexed by.

    `layered`: written `kind[L]`; `headed`: also a head index, `head[L.H]...`; `node`: a circuit
    node (a whole component, `attn[L]`, `mlp[L]`, `head[L.H]`), not one activation tensor —
    circuits only, expanded by the compile stage into the sites a node patches."""

    name: str
    layered: bool = False
    headed: bool = False
    node: bool = False


KINDS: tuple[SiteKind, ...] = (
    SiteKind("embed"),
    *(SiteKind(k, layered=True) for k in ("resid.pre", "resid.mid", "resid.post", "attn.out", "mlp.out")),
    *(SiteKind(f"head.{p}", layered=True, headed=True) for p in ("q", "k", "v", "z", "result")),
    SiteKind("logits"),
    SiteKind("module"),  # `module "path" input|output`: any submodule's boundary tensor
    SiteKind("attn", layered=True, node=True),
    SiteKind("mlp", layered=True, node=True),
    SiteKind("head", layered=True, headed=True, node=True),
)
KIND = {k.name: k for k in KINDS}

RESIDUAL_KINDS = tuple(k.name for k in KINDS if k.layered and not k.headed and not k.node)
HEAD_KINDS = tuple(k.name for k in KINDS if k.headed and not k.node)
HEAD_PARTS = tuple(k.split(".", 1)[1] for k in HEAD_KINDS)
NODE_KINDS = tuple(k.name for k in KINDS if k.node)  # circuit nodes: a whole component, not one tensor
SITE_KINDS = tuple(k.name for k in KINDS if not k.node)  # one activation tensor each


@dataclass(frozen=True)
class SiteAddress:
    """A backend-neutral name for one activation tensor of a network.

    ``str(site)`` renders the spec-language spelling (``resid.post[3]``,
    ``head[2.1].z``, ``module "layers.0" output``) so errors quote what the user wrote.
    Structural mistakes (a layered kind without a layer) raise ``ValueError`` here;
    whether a *model* has the site is the family's question (`run.sites.UnservableSite`).
    """

    kind: str
    layer: int | None = None
    head: int | None = None
    module_path: str | None = None  # for kind == "module"; "" is the model itself
    module_io: str | None = None  # "input" | "output", for kind == "module"

    def __post_init__(self) -> None:
        if self.kind not in SITE_KINDS:
            raise ValueError(f"unknown site kind {self.kind!r}; expected one of {', '.join(SITE_KINDS)}")
        kind = KIND[self.kind]
        if kind.layered != (self.layer is not None):
            raise ValueError(f"site kind {self.kind!r} {'needs' if kind.layered else 'takes no'} layer index")
        if kind.headed != (self.head is not None):
            raise ValueError(f"site kind {self.kind!r} {'needs' if kind.headed else 'takes no'} head index")
        for name, value in (("layer", self.layer), ("head", self.head)):
            if value is not None and value < 0:
                raise ValueError(f"{name} index must be >= 0, got {value}")
        is_module = self.kind == "module"
        if is_module and (self.module_path is None or self.module_io not in ("input", "output")):
            raise ValueError('a module site needs module_path and module_io "input" or "output"')
        if not is_module and (self.module_path is not None or self.module_io is not None):
            raise ValueError(f"site kind {self.kind!r} takes no module_path/module_io")

    @property
    def address(self) -> SiteAddress:
        """The runtime address (a plain `SiteAddress`; subclasses drop what the runtime ignores)."""
        return self

    @property
    def is_node(self) -> bool:
        """A circuit node (`attn[L]`, `mlp[L]`, `head[L.H]`) rather than one activation."""
        return self.kind in NODE_KINDS

    @property
    def is_head(self) -> bool:
        return self.kind == "head" or self.kind in HEAD_KINDS

    def __str__(self) -> str:
        if self.kind == "module":
            return f'module "{self.module_path}" {self.module_io}'
        if self.kind in HEAD_KINDS:
            return f"head[{self.layer}.{self.head}].{self.kind.split('.', 1)[1]}"
        if self.kind == "head":
            return f"head[{self.layer}.{self.head}]"
        if self.layer is not None:
            return f"{self.kind}[{self.layer}]"
        return self.kind


__all__ = ["HEAD_KINDS", "HEAD_PARTS", "KIND", "KINDS", "NODE_KINDS", "RESIDUAL_KINDS", "SITE_KINDS",
           "SiteAddress", "SiteKind"]
