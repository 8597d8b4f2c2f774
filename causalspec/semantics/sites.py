"""Sites and positions as typed IR: where an activation lives, and which tokens of it.

Why here and not in the runner: a site written in a spec (`resid.post[3]`, `head[9.9].q`,
`module "layers.0" output`, the circuit node `mlp[3]`) is validated statically, with a span
and a did-you-mean, long before any network loads. Whether a given architecture has the
site (layer < n_layers, a head index in range, a module path that exists) is a check-time
question for the family adapter in `causalspec.run` — a spec is not tied to one network
size. `SiteSpec` is a `SiteAddress` (`semantics.site_kinds`, the vocabulary `run` uses too)
with a span; `SiteSpec.address` is the runtime address (circuit-node kinds `attn`, `mlp`,
`head` are expanded by the compile stage into the sites a node patches).

Positions: `PositionSpec` is the resolved form of a position expression. Named positions
are resolved to what they denote (the name is kept for reports), offsets are folded where
that is static (`3 + 1` is `4`), and defaults are filled in:

* `slot(S)` is the 1st occurrence of slot `S`, its last token (`slot(S, 1).last`): the last
  token of a name is where a left-to-right model has read all of it;
* a site without `@` means `all` (no position selection: the whole activation; a network
  without a sequence axis can only be patched this way);
* `a..b` is inclusive on both ends, like `int a..b`;
* `last` is the last real token of each example (per example, after padding).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Iterable

from causalspec.codes import E0212, E0601, E0602, E0611, E0615, E0706
from causalspec.diagnostics import NO_SPAN, DiagnosticSink, Span, did_you_mean
from causalspec.semantics.site_kinds import HEAD_PARTS, RESIDUAL_KINDS, SiteAddress
from causalspec.syntax import ast as A

# Spelling of each form, for messages and did-you-mean (`L` a layer, `H` a head).
_SITE_FORMS = {
    "embed": "embed",
    **{k: f"{k}[L]" for k in RESIDUAL_KINDS},
    "head": "head[L.H].q|k|v|z|result",
    "logits": "logits",
}
_NODE_FORMS = {"attn": "attn[L]", "mlp": "mlp[L]", "head": "head[L.H]", "embed": "embed"}


@dataclass(frozen=True)
class SiteSpec(SiteAddress):
    """A site as written in a spec: a `SiteAddress` plus its source span. `kind` is one of
    SITE_KINDS or (circuits only) NODE_KINDS.

    Not validated on construction: `site_from_ast` reports a malformed site as a located
    diagnostic instead of raising; `address` is where a runtime `SiteAddress` is checked."""

    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    def __post_init__(self) -> None:
        pass

    @property
    def address(self) -> SiteAddress:
        """The runtime address of this site (ValueError for a circuit node: the compile stage
        expands nodes into sites first)."""
        return SiteAddress(self.kind, self.layer, self.head, self.module_path, self.module_io)


def site_from_ast(site: A.NamedSite | A.ModuleSite, sink: DiagnosticSink, *,
                  circuit: bool = False) -> SiteSpec | None:
    """Validate a site written in a spec. `circuit=True` also admits circuit nodes.

    Unknown names are E0601 in alignments; in a circuit group they are E0706 (a group node
    must be a circuit node or a site). Wrong index arity is E0602 everywhere.
    """
    if isinstance(site, A.ModuleSite):
        return SiteSpec("module", module_path=site.path, module_io=site.io, span=site.span)
    return _named_site(site, sink, circuit)


def _named_site(site: A.NamedSite, sink: DiagnosticSink, circuit: bool) -> SiteSpec | None:
    name = ".".join(site.path)
    idx = site.index
    span = site.span
    written = _written(site)
    unknown = E0706 if circuit else E0601

    # `head.q[9.9]`: a known part put before the index.
    if len(site.path) == 2 and site.path[0] == "head" and site.path[1] in HEAD_PARTS:
        where = f"[{idx[0]}.{idx[1]}]" if idx and len(idx) == 2 else "[L.H]"
        sink.error(unknown, f"unknown site `{written}`", span, "the head part comes after the index",
                   help=f"write `head{where}.{site.path[1]}`")
        return None

    if name == "head":
        if idx is None or len(idx) != 2:
            got = "no index" if idx is None else f"`[{_show_index(idx)}]`"
            sink.error(E0602, f"`head` needs a layer and a head index, `head[L.H]`; got {got}", span,
                       "expected `[layer.head]`",
                       help=f"for example `head[{idx[0] if idx else 0}.0]" + ("`" if circuit else ".z`"))
            return None
        layer, head = idx
        if site.part is None:
            if circuit:
                return SiteSpec("head", layer, head, span=span)
            sink.error(E0601, f"`head[{layer}.{head}]` needs a part: which tensor of the head?", span,
                       "missing `.q|k|v|z|result`",
                       help=f"write `head[{layer}.{head}].z` (the head's output before W_O) or "
                            f"`.result` (its contribution to the residual stream); "
                            "whole heads are circuit nodes, used in `circuit` groups")
            return None
        if site.part not in HEAD_PARTS:
            sink.error(E0601, f"unknown head part `.{site.part}`: expected q|k|v|z|result", span,
                       "not a head part",
                       help=_closest_help(site.part, {p: p for p in HEAD_PARTS}) or
                       "a head site is `head[L.H].q`, `.k`, `.v`, `.z` or `.result`")
            return None
        return SiteSpec(f"head.{site.part}", layer, head, span=span)

    if site.part is not None and (name in RESIDUAL_KINDS or name in ("embed", "logits")
                                  or (circuit and name in ("attn", "mlp"))):
        sink.error(E0601, f"site `{written}` has no part `.{site.part}`", span, "only heads have parts",
                   help=f"write `{_written(A.NamedSite(site.path, site.index))}`")
        return None

    if name in RESIDUAL_KINDS or (circuit and name in ("attn", "mlp")):
        if idx is None or len(idx) != 1:
            got = "no index" if idx is None else f"`[{_show_index(idx)}]`"
            sink.error(E0602, f"`{name}` needs one layer index, `{name}[L]`; got {got}", span,
                       "expected `[layer]`",
                       help=f"for example `{name}[{idx[0] if idx else 0}]`"
                            + (" (a head index belongs to `head[L.H]`)" if idx and len(idx) == 2 else ""))
            return None
        return SiteSpec(name, idx[0], span=span)

    if name in ("embed", "logits"):
        if idx is not None:
            sink.error(E0602, f"`{name}` takes no index; got `[{_show_index(idx)}]`", span,
                       "remove the index", help=f"write `{name}`; positions go after `@`")
            return None
        return SiteSpec(name, span=span)

    # Unknown name: suggest the closest valid form.
    forms = dict(_SITE_FORMS)
    if circuit:
        forms.update(_NODE_FORMS)
    help_ = _closest_help(name, forms)
    if not circuit and name in ("attn", "mlp"):
        help_ = f"did you mean `{name}.out[L]`? (`{name}[L]` is a circuit node, used in `circuit` groups)"
    if help_ is None:
        help_ = "sites are " + ", ".join(f"`{f}`" for f in forms.values()) + ', or `module "path" input|output`'
    what = "circuit node or site" if circuit else "site"
    sink.error(unknown, f"unknown {what} `{written}`", span, f"not a {what}", help=help_)
    return None


def _closest_help(name: str, forms: dict[str, str]) -> str | None:
    """`did you mean `resid.post[L]`?` for the closest key of `forms`, or None."""
    pool = sorted(k for k in forms if k != name)
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in pool}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"did you mean `{forms[close[0]]}`?" if close else None


def _show_index(idx: tuple[int, ...]) -> str:
    return ".".join(str(i) for i in idx)


def _written(site: A.NamedSite) -> str:
    text = ".".join(site.path)
    if site.index is not None:
        text += f"[{_show_index(site.index)}]"
    if site.part is not None:
        text += f".{site.part}"
    return text


# ───────────────────────── positions ─────────────────────────

BUILTIN_POSITIONS = ("last", "all")
TOKEN_PARTS = ("first", "last", "all")
DEFAULT_OCCURRENCE = 1
DEFAULT_TOKEN_PART = "last"


@dataclass(frozen=True)
class PositionSpec:
    """A resolved position expression.

    kind:
      * "slot":   occurrence `occurrence` (1-based) of placeholder `slot` in the prompt,
                  token `part` of it ("first" | "last" | "all"); defaults 1 and "last";
      * "index":  token index `index` (0-based, counted on the unpadded prompt);
      * "range":  token indices `lo..hi`, inclusive;
      * "last":   the last real token of each example;
      * "all":    every position (no position selection);
      * "offset": `base` shifted by `offset` tokens (base is a slot or `last`; offsets of
                  indices and ranges are folded statically).
    `name` is the declared name the position came from (`END`), for reports.
    """

    kind: str
    slot: str | None = None
    occurrence: int = DEFAULT_OCCURRENCE
    part: str = DEFAULT_TOKEN_PART
    index: int | None = None
    lo: int | None = None
    hi: int | None = None
    base: PositionSpec | None = None
    offset: int = 0
    name: str | None = field(default=None, compare=False)
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def needs_template(self) -> bool:
        """Only resolvable from a prompt template (a slot, directly or through an offset)."""
        return self.kind == "slot" or (self.base is not None and self.base.needs_template)

    def slots(self) -> Iterable[PositionSpec]:
        if self.kind == "slot":
            yield self
        if self.base is not None:
            yield from self.base.slots()

    def __repr__(self) -> str:
        return f"PositionSpec({self}" + (f", name={self.name!r})" if self.name else ")")

    @property
    def label(self) -> str:
        """How reports name the position: its declared name (`END`), else the position itself
        (`3`, `2..4`, `last`) — never just its kind, which makes `@ 3` and `@ 4` look alike."""
        return self.name or str(self)

    def __str__(self) -> str:
        if self.kind == "slot":
            return f"slot({self.slot}, {self.occurrence}).{self.part}"
        if self.kind == "index":
            return str(self.index)
        if self.kind == "range":
            return f"{self.lo}..{self.hi}"
        if self.kind == "offset":
            sign = "+" if self.offset >= 0 else "-"
            return f"{self.base} {sign} {abs(self.offset)}"
        return self.kind


ALL = PositionSpec("all")
LAST = PositionSpec("last")


class PositionResolver:
    """Resolves position expressions against a network's declared positions.

    `declared` maps a position name to its AST (from `position NAME = …`); references are
    resolved lazily so a declaration may use one declared later; a definition that depends
    on itself is an error (E0611). Unknown names are E0212 with did-you-mean.
    `templates` is False when the network has no prompt templates (slots make no sense) and
    `sequence` is False for torch networks (only integers, ranges, `last` and `all`).
    """

    def __init__(self, declared: dict[str, A.PositionDecl], sink: DiagnosticSink, *,
                 templates: bool, torch_network: bool, network: str):
        self.declared = declared
        self.sink = sink
        self.templates = templates
        self.torch_network = torch_network
        self.network = network
        self.resolved: dict[str, PositionSpec | None] = {}
        self._active: list[str] = []

    def declaration(self, name: str) -> PositionSpec | None:
        if name in self.resolved:
            return self.resolved[name]
        decl = self.declared[name]
        if name in self._active:
            chain = " -> ".join(self._active[self._active.index(name):] + [name])
            self.sink.error(E0611, f"position `{name}` is defined in terms of itself ({chain})",
                            decl.name.span, "circular definition",
                            help="define it from a slot, an integer, or `last`")
            self.resolved[name] = None
            return None
        self._active.append(name)
        spec = self.resolve(decl.expr)
        self._active.pop()
        if spec is not None:
            spec = replace(spec, name=name)
        self.resolved.setdefault(name, spec)
        return self.resolved[name]

    def resolve(self, expr: A.PositionExpr) -> PositionSpec | None:
        span = expr.span
        if isinstance(expr, A.SlotPos):
            if not self.templates:
                why = ("a torch network has no prompt template; its positions are integers, ranges, "
                       "`last` or `all`") if self.torch_network else \
                    f"network `{self.network}` has no prompt template to find slots in"
                self.sink.error(E0611, f"`slot({expr.slot.text})` needs a prompt template", span,
                                "no template here", help=why)
                return None
            if expr.occurrence_var is not None:
                self.sink.error(E0615, f"`slot({expr.slot.text}, {expr.occurrence_var.text})` counts occurrences by "
                                "an index: only a position family has one", span, "no index here",
                                help=f"declare a family: `position S[{expr.occurrence_var.text} in 1..3] = "
                                f"slot({expr.slot.text}, {expr.occurrence_var.text})`")
                return None
            occ = DEFAULT_OCCURRENCE if expr.occurrence is None else expr.occurrence
            if occ < 1:
                self.sink.error(E0611, f"slot occurrences count from 1, got {occ}", span, "must be >= 1",
                                help=f"`slot({expr.slot.text}, 1)` is the first occurrence")
                return None
            return PositionSpec("slot", slot=expr.slot.text, occurrence=occ,
                                part=expr.part or DEFAULT_TOKEN_PART, span=span)
        if isinstance(expr, A.IndexPos):
            return PositionSpec("index", index=expr.index, span=span)
        if isinstance(expr, A.RangePos):
            if expr.lo > expr.hi:
                self.sink.error(E0611, f"empty position range {expr.lo}..{expr.hi}", span, "lo > hi",
                                help=f"ranges are inclusive: write `{expr.hi}..{expr.lo}`")
                return None
            return PositionSpec("range", lo=expr.lo, hi=expr.hi, span=span)
        if isinstance(expr, A.NamedPos):
            return self._named(expr.name)
        if isinstance(expr, A.OffsetPos):
            base = self._named(expr.base)
            if base is None:
                return None
            return self._offset(base, expr.offset, span)
        if isinstance(expr, A.ElemPos):
            self.sink.error(E0615, f"`{expr.base.text}[{expr.var.text}]` names an element of position family "
                            f"`{expr.base.text}` by the index of a family alignment, and there is none here", span,
                            "no family index",
                            help=f"write `H[{expr.var.text}] -> site @ {expr.base.text}[{expr.var.text}]` (every "
                            f"element of H at its own), or one element: `@ {expr.base.text}[2]`")
            return None
        raise TypeError(type(expr))  # pragma: no cover

    def _named(self, name: A.Name) -> PositionSpec | None:
        if name.text == "last":
            return PositionSpec("last", span=name.span)
        if name.text == "all":
            return PositionSpec("all", span=name.span)
        if name.text in self.declared:
            spec = self.declaration(name.text)
            return None if spec is None else replace(spec, span=name.span)
        pool = list(self.declared) + list(BUILTIN_POSITIONS)
        self.sink.error(E0212, f"unknown position `{name.text}`", name.span,
                        f"not declared in network `{self.network}`",
                        help=did_you_mean(name.text, pool) or
                        f"declare it in the network: `position {name.text} = …`; built-ins are `last` and `all`")
        return None

    def _offset(self, base: PositionSpec, offset: int, span: Span) -> PositionSpec | None:
        if base.kind == "all":
            self.sink.error(E0611, "`all` cannot be shifted", span, "offset of `all`",
                            help="`all` already selects every position")
            return None
        if base.kind == "index":
            assert base.index is not None  # an "index" spec is always built with its index (class docstring)
            if base.index + offset < 0:
                self.sink.error(E0611, f"position {base.index} {offset:+d} is before the first token", span,
                                "negative position", help="positions count from 0; use a smaller offset or `last`")
                return None
            return PositionSpec("index", index=base.index + offset, span=span)
        if base.kind == "range":
            assert base.lo is not None and base.hi is not None  # likewise: a "range" spec has both ends
            if base.lo + offset < 0:
                self.sink.error(E0611, f"range {base.lo}..{base.hi} shifted by {offset:+d} starts before "
                                "the first token", span, "negative position",
                                help="positions count from 0; shift the range by less")
                return None
            return PositionSpec("range", lo=base.lo + offset, hi=base.hi + offset, span=span)
        if base.kind == "offset":
            total = base.offset + offset
            return base.base if total == 0 else PositionSpec("offset", base=base.base, offset=total, span=span)
        if offset == 0:
            return base
        return PositionSpec("offset", base=base, offset=offset, span=span)

    def site_positions(self, exprs: tuple[A.PositionExpr, ...] | None) -> tuple[PositionSpec, ...] | None:
        """The positions after `@` (None when any of them is invalid; `(ALL,)` when absent)."""
        if exprs is None:
            return (ALL,)
        out: list[PositionSpec] = []
        ok = True
        for e in exprs:
            spec = self.resolve(e)
            if spec is None:
                ok = False
                continue
            if spec.kind == "all" and len(exprs) > 1:
                self.sink.error(E0611, "`all` cannot be combined with other positions", e.span,
                                "`all` already selects every position", help="write `@ all` alone")
                ok = False
                continue
            if spec in out:
                self.sink.error(E0611, f"position `{position_text(e)}` is listed twice", e.span, "listed again",
                                help="list each position once")
                ok = False
                continue
            out.append(spec)
        return tuple(out) if ok else None


def position_text(e: A.PositionExpr) -> str:
    """A position as the spec wrote it, for messages (never raises, unlike the printer, which
    refuses what it cannot write back: a message about a bad position must still be shown)."""
    if isinstance(e, A.NamedPos):
        return e.name.text
    if isinstance(e, A.ElemPos):
        return f"{e.base.text}[{e.var.text}]"
    if isinstance(e, A.OffsetPos):
        return f"{e.base.text}{'+' if e.offset >= 0 else '-'}{abs(e.offset)}"
    if isinstance(e, A.IndexPos):
        return str(e.index)
    if isinstance(e, A.RangePos):
        return f"{e.lo}..{e.hi}"
    if isinstance(e, A.SlotPos):
        index = e.occurrence_var.text if e.occurrence_var is not None else e.occurrence
        return f"slot({e.slot.text}{'' if index is None else f', {index}'}){'' if e.part is None else '.' + e.part}"
    return type(e).__name__
