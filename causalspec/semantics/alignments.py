"""Analyse `alignment` blocks: variable -> site bindings (with sweeps and featurizers), the
output decoder, and that no two variables share coordinates of one site."""


from __future__ import annotations

from dataclasses import replace

from causalspec.codes import E0203, E0315, E0608, E0609, E0612, E0614, E0616, W0610
from causalspec.diagnostics import did_you_mean
from causalspec.semantics.context import article
from causalspec.semantics.featurizers import SAE, Identity, Slice, featurizer_from_ast, hook_mismatch
from causalspec.semantics.ir import DECODERS, AlignmentIR, NetworkIR, SiteBinding
from causalspec.semantics.networks import NetworkAnalysis
from causalspec.semantics.shared_directions import warn_shared_directions
from causalspec.semantics.sites import ALL, PositionResolver, PositionSpec, position_text, site_from_ast
from causalspec.syntax import ast as A


class AlignmentAnalysis(NetworkAnalysis):
    def _alignment(self, al: A.Alignment) -> AlignmentIR | None:
        model = self._model(al.model)
        net = self._network_ref(al.network)
        resolver = self.resolvers.get(al.network.text)
        variables: dict[str, tuple[SiteBinding, ...]] = {}
        first: dict[str, A.Name] = {}
        output: A.OutputAlignment | None = None
        output_position: int | PositionSpec | None | bool = None
        decoder: str | None = None
        ok = True
        vars_ok = True
        output_tried = any(isinstance(st, A.OutputAlignment) for st in al.body)  # one that failed to expand too
        body, expanded, elements = self._expand_families(al, model)
        if not expanded:
            ok = vars_ok = False
        element_positions: list[tuple[str, int | PositionSpec]] = []  # `O[i] -> output @ i`: each element's
        for stmt in body:
            name = stmt.var
            if isinstance(stmt, A.OutputAlignment) or (model is not None and name.text in model.variables
                                                       and model.variables[name.text].kind == "output"):
                output_tried = True
            if name.text in first:
                self.sink.error(E0608, f"`{name.text}` is aligned twice in `{al.name.text}`", name.span,
                                "aligned again", notes=[f"first aligned at {first[name.text].span}"],
                                help="list several sites in one line: `V -> site1, site2`")
                ok = vars_ok = False
                continue
            first[name.text] = name
            var = model.variables.get(name.text) if model is not None else None
            if model is not None and var is None:
                self.sink.error(E0203, f"unknown variable `{name.text}` in alignment `{al.name.text}`", name.span,
                                f"not in model `{model.name}`",
                                help=did_you_mean(name.text, model.variables, "variables"))
                ok = vars_ok = False
                continue
            if isinstance(stmt, A.OutputAlignment):
                if var is not None and var.kind != "output":
                    self.sink.error(E0609, f"`{name.text}` is {article(var.kind)}: only output variables are read "
                                    "from the network's output", name.span, "not an output",
                                    help=f"align `{name.text}` to a site instead: `{name.text} -> resid.post[L]`")
                    ok = False
                    continue
                if name.text in elements and (output is None or output.var.text in elements):
                    # one line `O[i] -> output @ i`: each element read at its own position
                    position = self._output_position(stmt, resolver, net)
                    if isinstance(position, bool) or position is None:
                        ok = False
                        continue
                    element_positions.append((name.text, position))
                    if output is None:
                        output, output_position = stmt, position
                        decoder = self._decoder(stmt, net)
                        ok &= decoder is not None
                    continue
                if output is not None:
                    self.sink.error(E0609, f"alignment `{al.name.text}` reads two outputs (`{output.var.text}` "
                                    f"and `{name.text}`)", name.span, "second output",
                                    help="one alignment scores one output; write a second alignment for the other")
                    ok = False
                    continue
                output = stmt
                output_position = self._output_position(stmt, resolver, net)
                ok &= output_position is not False
                decoder = self._decoder(stmt, net)
                ok &= decoder is not None
                if decoder is not None and var is not None:
                    ok &= self._value_output(stmt, var, net, decoder)
                continue
            if var is not None and var.kind == "output":
                self.sink.error(E0609, f"`{name.text}` is the model's output: it is read from the network's "
                                "output, not from a site", name.span, "output aligned to a site",
                                help=f"write `{name.text} -> output`")
                ok = False
                continue
            bindings = []
            for ref in stmt.sites:
                b = self._site_binding(ref, resolver)
                if b is None:
                    ok = False
                else:
                    bindings.append(b)
            if len(bindings) == len(stmt.sites):
                variables[name.text] = tuple(bindings)
        ok &= self._disjoint(variables)
        warn_shared_directions(variables, self.sink)  # E0613: fixed bases that are not orthogonal
        outs = frozenset(s.var.text for s in body if isinstance(s, A.OutputAlignment))
        mentioned = {s.var.text for s in body}
        if model is not None:  # `interchange H` names the family's aligned elements
            mentioned |= {f for f, fam in model.families.families.items() if set(fam.elements) & mentioned}
        self.alignment_vars[al.name.text] = (mentioned, outs, vars_ok and model is not None)
        if model is not None and model.families.families:
            self.alignment_families[al.name.text] = {
                f: tuple(e for e in fam.elements if e in mentioned) for f, fam in model.families.families.items()}
        if model is not None and not output_tried:
            model_outs = model.outputs
            self.sink.error(E0609, f"alignment `{al.name.text}` does not say how to read the output",
                            al.name.span, "no `-> output` line",
                            help=f"add `{model_outs[0] if model_outs else 'O'} -> output`: checks score the "
                            "network's output")
            ok = False
        if model is not None and net is not None:
            self._check_network_for(net, model, f"alignment `{al.name.text}`", al.span)
            if output is not None and decoder == "answer":
                self._check_answer(net, model, output.var.text, output.span)
        if not ok or model is None or net is None or output is None or decoder is None:
            return None
        return AlignmentIR(al.name.text, model.name, net.name, variables, output.var.text, decoder, al.span,
                           None if isinstance(output_position, bool) else output_position,
                           tuple(element_positions) if len(element_positions) > 1 else ())

    def _output_position(self, stmt: A.OutputAlignment, resolver: PositionResolver | None,
                         net: NetworkIR | None) -> int | PositionSpec | None | bool:
        """`O -> output @ 3` / `@ END` / `@ S[i]`: the one sequence position the network's output is
        read at — a token index, or a position resolved per example (a slot, `last`, an offset
        of them: `PositionSpec`); None: the output has no sequence axis; False after an error."""
        if stmt.positions is None:
            return None
        if net is not None and net.framework == "hf" and (net.model_class or "causal_lm") != "token_classification":
            self.sink.error(E0616, f"network `{net.name}` (class {net.model_class or 'causal_lm'}) is not read at a "
                            "position: its class decides where its output is", stmt.positions[0].span,
                            "not a token-level head",
                            help=f"drop the position (`{stmt.var.text} -> output`): a language model is read at its "
                            "answer template's position, a sequence classifier once per example; only a token-level "
                            "head (`class token_classification`) or a torch network's [batch, positions, classes] "
                            "output is read at a position")
            return False
        shown = f"`{stmt.var.text} -> output @ 3` (position 3) or `@ END` (a declared position)"
        if len(stmt.positions) != 1:
            self.sink.error(E0614, f"the output is read at one position, not {len(stmt.positions)}",
                            stmt.positions[1].span, "a second position",
                            help=f"write {shown}: each output is read at one token")
            return False
        expr = stmt.positions[0]
        if isinstance(expr, A.IndexPos):
            return expr.index
        if resolver is None:  # the network is unknown (reported where it is named)
            return False
        spec = resolver.resolve(expr)
        if spec is None:  # reported by the resolver (an unknown name, a slot without a template, …)
            return False
        if spec.kind == "index" and spec.index is not None:
            return spec.index
        if spec.kind in ("range", "all") or any(s.part == "all" for s in spec.slots()):
            what = {"range": f"a range of tokens ({spec})", "all": "every token"}.get(
                spec.kind, f"every token of a slot ({spec})")
            self.sink.error(E0614, f"the output is read at one token; `{position_text(expr)}` is {what}",
                            expr.span, "not one token",
                            help=f"write {shown}; a slot's token is `.first` or `.last` (the default)")
            return False
        return spec

    def _expand_families(self, al: A.Alignment, model
                         ) -> tuple[tuple[A.AlignStmt, ...], bool, frozenset[str]]:
        """`H[i] -> site @ i` becomes one line per element, `i` replaced by the element's index in
        the positions (`@ i`, `@ i+1`); `H[i in 2..4]` takes only those elements. The lines that
        expanded, whether all did, and the output elements of one `O[i] -> output @ i` line over
        several elements (read per position)."""
        out: list[A.AlignStmt] = []
        elements: set[str] = set()
        ok = True
        fams = model.families if model is not None else None
        for stmt in al.body:
            if stmt.index is None:
                if fams is not None and stmt.var.text in fams.families:
                    fam = fams.families[stmt.var.text]
                    self.sink.error(E0614, f"`{stmt.var.text}` is a family of {len(fam.indices)} variables; align "
                                    "each element at its own place", stmt.var.span, "a whole family",
                                    help=f"write `{stmt.var.text}[i] -> … @ i` (every element, at position i) or "
                                    f"`{stmt.var.text}[{fam.indices[0]}] -> …`")
                    ok = False
                    continue
                out.append(stmt)
                continue
            if fams is None:
                ok = False
                continue
            fam = fams.families.get(stmt.var.text)
            if fam is None:
                self.sink.error(E0614, f"`{stmt.var.text}` is not a family of model `{model.name}`", stmt.var.span,
                                "not a family", help=did_you_mean(stmt.var.text, fams.families, "families")
                                or f"align it without an index: `{stmt.var.text} -> …`")
                ok = False
                continue
            indices = fam.indices
            if stmt.index.lo is not None and stmt.index.hi is not None:
                lo, hi = (static_index(e, fams.consts) for e in (stmt.index.lo, stmt.index.hi))
                if lo is None or hi is None or not set(range(lo, hi + 1)) <= set(fam.indices) or lo > hi:
                    self.sink.error(E0614, f"the range of `{stmt.var.text}[…]` must be numbers or constants inside "
                                    f"the family's {fam.indices[0]}..{fam.indices[-1]}", stmt.index.span,
                                    "not a range of the family", help=f"e.g. `{stmt.var.text}[i in "
                                    f"{fam.indices[0]}..{fam.indices[-1]}]`")
                    ok = False
                    continue
                indices = tuple(range(lo, hi + 1))
            if isinstance(stmt, A.OutputAlignment) and len(indices) > 1 and stmt.positions is None:
                self.sink.error(E0614, f"`{stmt.var.text}[…]` reads {len(indices)} output elements: each is read at "
                                "its own position", stmt.span, "no position",
                                help=f"write `{stmt.var.text}[i] -> output @ i` (a [batch, positions, classes] "
                                "output, element i read at position i)")
                ok = False
                continue
            var = stmt.index.var.text if stmt.index.var is not None else ""
            for k in indices:
                name = A.Name(f"{stmt.var.text}[{k}]", span=stmt.var.span)
                if isinstance(stmt, A.OutputAlignment) and len(indices) > 1:
                    elements.add(name.text)
                if isinstance(stmt, A.VarAlignment):
                    sites = tuple(replace(r, positions=positions_at(r.positions, var, k)) for r in stmt.sites)
                    out.append(replace(stmt, var=name, sites=sites, index=None))
                else:
                    out.append(replace(stmt, var=name, positions=positions_at(stmt.positions, var, k), index=None))
        return tuple(out), ok, frozenset(elements)

    def _value_output(self, stmt: A.OutputAlignment, var, net: NetworkIR | None, decoder: str) -> bool:
        """E0315 unless a real output is read as a value (`output : value`) and only a real one is."""
        real = var.domain.is_real
        if real and decoder != "value":
            where = f"network `{net.name}`" if net is not None else "the network"
            self.sink.error(E0315, f"`{stmt.var.text}` is real, but {where} is read as classes ({decoder})",
                            stmt.span, "a real output",
                            help=f"add `output : value` to {where} (its output [batch] or [batch, 1] is the value)")
            return False
        if not real and decoder == "value" and net is not None:
            self.sink.error(E0315, f"network `{net.name}` is read as a value (`output : value`), but "
                            f"`{stmt.var.text}` is {var.domain.describe()}", stmt.span, "a discrete output",
                            notes=[f"`output : value` is at {net.output_value_span}"] if net.output_value_span else (),
                            help=f"declare `{stmt.var.text}` `real` (checked within a tolerance), or remove "
                                 "`output : value` to read the output as classes")
            return False
        return True

    def _decoder(self, stmt: A.OutputAlignment, net: NetworkIR | None) -> str | None:
        if stmt.decoder is None and net is not None and net.output_value:
            return "value"
        if stmt.decoder is None:
            if net is None:
                return "argmax"
            if net.encoding.answer is not None:
                return "answer"
            return "decode" if net.decode is not None else "argmax"
        name = stmt.decoder.text
        if name not in DECODERS:
            self.sink.error(E0609, f"unknown output decoder `{name}`", stmt.decoder.span, "not a decoder",
                            help=did_you_mean(name, DECODERS) or
                            "decoders are `argmax` (class index), `answer` (the answer template's tokens) and "
                            "`decode` (the network's decode hook)")
            return None
        if net is not None and name == "answer" and net.encoding.answer is None:
            self.sink.error(E0609, f"decoder `answer` needs an answer template in network `{net.name}`",
                            stmt.decoder.span, "no answer template",
                            help=f"add `answer \" {{{stmt.var.text}}}\"` to the network, or use `argmax`")
            return None
        if net is not None and name == "decode" and net.decode is None:
            self.sink.error(E0609, f"decoder `decode` needs a decode hook in network `{net.name}`",
                            stmt.decoder.span, "no decode hook",
                            help="add `decode \"file.py:decode\"` to the network, or use `argmax`")
            return None
        return name

    def _site_binding(self, ref: A.SiteRef, resolver: PositionResolver | None,
                      context: str = "alignment") -> SiteBinding | None:
        site = site_from_ast(ref.site, self.sink)
        positions: tuple[PositionSpec, ...] | None = (ALL,)
        if resolver is not None:
            positions = resolver.site_positions(ref.positions)
        feat = featurizer_from_ast(ref.featurizer, self.sink, self.base_dir, context=context)
        feat_span = ref.featurizer.span if ref.featurizer is not None else ref.span  # none written: the site's
        if site is not None and feat is not None and site.kind == "logits" and feat.learned:
            self.sink.error(E0612, f"`{feat.kind}` cannot be learned on `logits`", feat_span,
                            "learned featurizer on the output",
                            help="the logits are what is scored; patch them whole or by a slice `[a:b]`")
            return None
        if site is None or feat is None or positions is None:
            return None
        if isinstance(feat, SAE) and feat.config is not None:
            self._sae_hook(feat, site, feat_span)
        return SiteBinding(site, positions, feat, ref.span)

    def _sae_hook(self, feat: SAE, site, span) -> None:
        """W0610 when the SAE's cfg.json says it was trained at another site."""
        why = hook_mismatch(feat.config.hook_name if feat.config else None, site)
        if why:
            self.sink.warn(W0610, f"SAE `{feat.path}` may not belong at `{site}`: {why}", span,
                           "hook name differs from the site",
                           help="align the SAE at the site it was trained on; an SAE read elsewhere "
                                "reconstructs poorly (the check reports its fidelity)")

    def _disjoint(self, variables: dict[str, tuple[SiteBinding, ...]]) -> bool:
        """Two variables may not share coordinates of one site (the map must be a partition)."""
        ok = True
        seen: list[tuple[str, SiteBinding]] = []
        for name, bindings in variables.items():
            for b in bindings:
                for other, ob in seen:
                    if other != name and _overlap(b, ob):
                        self.sink.error(E0608, f"`{name}` and `{other}` are aligned to overlapping coordinates "
                                        f"of `{b.site}`", b.span, "overlaps another variable",
                                        notes=[f"`{other}` is aligned at {ob.span}"],
                                        help="an intervention on one would move the other; use disjoint slices")
                        ok = False
                seen.append((name, b))
        return ok


def positions_at(positions: tuple[A.PositionExpr, ...] | None, var: str, k: int) -> tuple[A.PositionExpr, ...] | None:
    """Positions with the family's index variable replaced by the element's index."""
    if positions is None:
        return None
    out: list[A.PositionExpr] = []
    for p in positions:
        if isinstance(p, A.NamedPos) and p.name.text == var:
            out.append(A.IndexPos(k, span=p.span))
        elif isinstance(p, A.OffsetPos) and p.base.text == var:
            out.append(A.IndexPos(k + p.offset, span=p.span))
        elif isinstance(p, A.ElemPos) and p.var.text == var:  # `@ S[i]`: element k of position family S
            out.append(A.NamedPos(A.Name(f"{p.base.text}[{k}]", span=p.span), span=p.span))
        else:
            out.append(p)
    return tuple(out)


def static_index(e: A.Expr, consts: dict[str, int]) -> int | None:
    if isinstance(e, A.IntLit):
        return e.value
    if isinstance(e, A.NameRef):
        return consts.get(e.name)
    return None


def _overlap(a: SiteBinding, b: SiteBinding) -> bool:
    if a.site != b.site:
        return False
    if not (a.positions == b.positions or ALL in a.positions or ALL in b.positions
            or set(a.positions) & set(b.positions)):
        return False
    fa, fb = a.featurizer, b.featurizer
    if isinstance(fa, Identity) or isinstance(fb, Identity):
        return True
    if isinstance(fa, Slice) and isinstance(fb, Slice):
        return fa.lo < fb.hi and fb.lo < fa.hi
    if isinstance(fa, SAE) and isinstance(fb, SAE) and fa.resolved == fb.resolved:
        return bool(set(fa.latents) & set(fb.latents))  # one SAE: disjoint latents are disjoint patches
    return False  # bases and learned subspaces: only known at check time
