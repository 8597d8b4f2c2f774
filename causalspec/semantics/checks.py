"""Analyse `check` blocks and their `locate` statements: interchange sets, controls, metric
conditions and settings, and the arithmetic size of site sweeps (`sweep_size`)."""


from __future__ import annotations

import itertools
import re
from fractions import Fraction
from typing import AbstractSet

from causalspec.codes import (E0201, E0203, E0208, E0313, E0314, E0316, E0623, E0702, E0703, E0705, E0707, E0708,
                              E0709, E0711, E0712, E0713)
from causalspec.diagnostics import did_you_mean
from causalspec.semantics.alignments import AlignmentAnalysis, positions_at, static_index
from causalspec.semantics.conditions import ConditionAnalysis
from causalspec.semantics.context import join_names
from causalspec.semantics.ir import (
    CHECK_METRICS,
    CONTROLS,
    DEFAULT_BATCH,
    DEFAULT_DRAWS,
    DEFAULT_PAIRS,
    DEFAULT_SEED,
    MAX_DEFAULT_SUBSET_VARS,
    MAX_DRAWS,
    MAX_LOCATE_CELLS,
    AlignmentIR,
    CheckIR,
    ConditionIR,
    InterchangeSetIR,
    LatentSearchIR,
    LocateIR,
)
from causalspec.syntax import ast as A


class CheckAnalysis(AlignmentAnalysis, ConditionAnalysis):
    def _check(self, chk: A.Check, names: dict[str, A.Check]) -> CheckIR | None:
        name_node = chk.name or chk.target
        name = name_node.text
        if name in names:
            self.sink.error(E0705, f"two checks are named `{name}`", name_node.span, "name taken",
                            notes=[f"the first is at {names[name].span}"],
                            help=f"name this one: `check {chk.target.text} as {chk.target.text}_2 {{ … }}`")
        else:
            names[name] = chk
        target = chk.target.text
        alignment = self.ir.alignments.get(target)
        if target not in self.alignment_decls:
            self.sink.error(E0208, f"unknown alignment `{target}`", chk.target.span, "no alignment of this name",
                            help=did_you_mean(target, self.alignment_decls, "alignments"))
        ok = True
        settings: dict[str, A.Setting] = {}
        sets: list[InterchangeSetIR] = []
        set_keys: dict[frozenset, A.InterchangeSet] = {}
        controls: list[str] = []
        draws: dict[str, int] = {}
        conditions: list[ConditionIR] = []
        interchanges = [s for s in chk.body if isinstance(s, A.Interchange)]
        expects = [s for s in chk.body if isinstance(s, A.Expect)]
        locates: list[LocateIR] = []
        search: LatentSearchIR | None = None
        for stmt in chk.body:
            if isinstance(stmt, A.LocateLatents):
                if locates or search is not None:
                    self.sink.error(E0711, "a check locates one variable: this is a second `locate`", stmt.span,
                                    "second locate", help="write one check per located variable")
                    ok = False
                    continue
                got_search = self._locate_latents(stmt, alignment) if alignment is not None else None
                if got_search is None:
                    ok = False
                else:
                    search = got_search
                continue
            if isinstance(stmt, A.Locate):
                if search is not None:
                    self.sink.error(E0711, "a check locates one variable: this is a second `locate`", stmt.span,
                                    "second locate", help="write one check per located variable")
                    ok = False
                    continue
                if locates:
                    self.sink.error(E0711, "a check sweeps one variable: this is a second `locate`", stmt.span,
                                    "second locate", help="write one check per located variable")
                    ok = False
                    continue
                got = self._locate(stmt, alignment) if alignment is not None else None
                if got is None:
                    ok = False
                else:
                    locates.append(got)
        located = {s.var.text for s in chk.body if isinstance(s, (A.Locate, A.LocateLatents))}  # even if bad
        located |= {n for loc in locates for n in loc.located}  # `locate H[i]`: the elements it binds
        for stmt in chk.body:
            if isinstance(stmt, A.Setting):
                ok &= self._setting(stmt, settings)
            elif isinstance(stmt, A.Interchange):
                for iset in stmt.sets:
                    groups = self._interchange_set(iset, target, located)
                    if groups is None:
                        ok = False
                        continue
                    key = frozenset(frozenset(g) for g in groups)
                    if key in set_keys:
                        self.sink.error(E0201, "this interchange set is listed twice", iset.span, "listed again",
                                        notes=[f"first listed at {set_keys[key].span}"],
                                        help="delete the second copy of the set")
                        ok = False
                        continue
                    set_keys[key] = iset
                    sets.append(groups)
            elif isinstance(stmt, A.Controls):
                for i, c in enumerate(stmt.names):
                    args = stmt.args_of(i)
                    if c.text in CONTROLS and args is not None:
                        n = self._control_draws(c, args)
                        if n is None:
                            ok = False
                        else:
                            draws[c.text] = n
                    if c.text not in CONTROLS:
                        self.sink.error(E0707, f"unknown control `{c.text}`", c.span, "not a control",
                                        help=did_you_mean(c.text, CONTROLS) or
                                        f"controls are {', '.join(CONTROLS)}")
                        ok = False
                    elif c.text in controls:
                        self.sink.error(E0707, f"control `{c.text}` is listed twice", c.span, "listed again",
                                        help=f"list `{c.text}` once")
                        ok = False
                    else:
                        controls.append(c.text)
            elif isinstance(stmt, A.Expect):
                for cond in stmt.conditions:
                    cond_ir = self._check_condition(cond)
                    if cond_ir is None:
                        ok = False
                    else:
                        conditions.append(cond_ir)
        for cond_ir in conditions:
            if cond_ir.metric == "control" and cond_ir.arg is not None and cond_ir.arg not in controls:
                controls.append(cond_ir.arg)
        claims_aaa = any(c.metric == "aaa" for c in conditions)
        default = False
        if not expects:
            self.sink.error(E0708, f"check `{name}` has no `expect`: it can never fail", name_node.span,
                            "nothing is claimed", help="add e.g. `expect iia >= 0.9`")
            ok = False
        if not interchanges:
            if claims_aaa and all(c.metric != "iia" for c in conditions):
                if alignment is not None:
                    subsets = self._all_subsets(alignment, name_node)
                    if subsets is None:
                        ok = False
                    else:
                        sets, default = list(subsets), True
            elif expects:
                self.sink.error(E0708, f"check `{name}` has no `interchange`: nothing is intervened on",
                                name_node.span, "no interchange",
                                help="add e.g. `interchange X` (or claim `aaa`, which covers every subset)")
                ok = False
        tolerance, tolerance_ok = self._tolerance(name, expects, alignment)
        ok &= tolerance_ok
        if not ok or alignment is None:
            return None
        value = {k: s.value for k, s in settings.items()}
        return CheckIR(name, target, tuple(sets), tuple(conditions), value.get("pairs", DEFAULT_PAIRS),
                       value.get("seed", DEFAULT_SEED), value.get("pool"), value.get("batch", DEFAULT_BATCH),
                       tuple(controls), default, chk.span, value.get("train"), value.get("steps"), tuple(locates),
                       seed_given="seed" in value, draws=draws, latent_search=search, tolerance=tolerance)

    def _tolerance(self, name: str, expects: list[A.Expect], alignment) -> tuple[Fraction | None, bool]:
        """The check's one tolerance (`within T` of its conditions): required when the aligned
        output is real (E0313), refused when it is discrete (E0314), one value per check (E0316)."""
        written = [c.tolerance for e in expects for c in e.conditions if c.tolerance is not None]
        values: list[Fraction] = []
        ok = True
        for t in written:
            value = Fraction(t.text)
            if value < 0:
                self.sink.error(E0316, f"tolerance {t.text} is negative", t.span, "a distance is >= 0",
                                help="write the largest distance from the model's value that still counts as right, "
                                     "e.g. `within 0.01` (or `within 0` for exact agreement)")
                ok = False
            elif values and value != values[0]:
                self.sink.error(E0316, f"check `{name}` states two tolerances ({written[0].text} and {t.text})",
                                t.span, "another tolerance",
                                help="a check scores its pairs once, with one tolerance: give every `within` "
                                     "the same value, or write it once")
                ok = False
            values.append(value)
        if alignment is None or alignment.model not in self.ir.models or not expects:
            return (values[0] if values and ok else None), ok
        model = self.ir.models[alignment.model]
        domain = model.domain(alignment.output)
        if domain.is_real and not written:
            self.sink.error(E0313, f"check `{name}` scores the real output `{alignment.output}` without a tolerance",
                            expects[0].span, "no `within`",
                            help="a network computes a real only approximately: state how close counts as right, "
                                 "e.g. `expect iia >= 0.95 within 0.01`")
            return None, False
        if not domain.is_real and written:
            self.sink.error(E0314, f"`within` applies to real outputs; `{alignment.output}` is {domain.describe()}",
                            written[0].span, "a discrete output",
                            help="a discrete output is right when it equals the model's value: remove `within`")
            return None, False
        return (values[0] if values and ok else None), ok

    def _control_draws(self, name: A.Name, args: tuple) -> int | None:
        """`random_subspace(n=20)` -> 20; a bad argument is E0712 (None)."""
        control = name.text
        if control not in DEFAULT_DRAWS:
            self.sink.error(E0712, f"control `{control}` takes no arguments: it draws nothing at random",
                            name.span, "no arguments", help=f"write `{control}`")
            return None
        if len(args) != 1 or args[0].key not in (None, "n"):
            where = args[0].span if args else name.span
            self.sink.error(E0712, f"control `{control}` takes one argument, `n` (the number of random draws)",
                            where, "not `n=…`", help=f"write `{control}(n={DEFAULT_DRAWS[control]})`")
            return None
        arg = args[0]
        if arg.kind != "number" or not isinstance(arg.value, int) or not 1 <= arg.value <= MAX_DRAWS:
            self.sink.error(E0712, f"`n` of control `{control}` must be a whole number from 1 to {MAX_DRAWS}, "
                            f"got {arg.value}", arg.span, "not a number of draws",
                            help=f"e.g. `{control}(n={DEFAULT_DRAWS[control]})` (the default)")
            return None
        return int(arg.value)

    def _locatable(self, name: A.Name, alignment: AlignmentIR) -> bool:
        """Whether `locate NAME` names a variable of the alignment's model other than its output
        (which is scored, not located); reports why not (E0203, E0703)."""
        var = name.text
        model = self.ir.models.get(alignment.model)
        if model is not None and var not in model.variables:
            self.sink.error(E0203, f"unknown variable `{var}` in `locate`", name.span,
                            f"not a variable of model `{model.name}`",
                            help=did_you_mean(var, model.variables, "variables"))
            return False
        if var == alignment.output or var in dict(alignment.output_elements):
            self.sink.error(E0703, f"`{var}` is the output of `{alignment.name}`: it is scored, not located",
                            name.span, "the output",
                            help="locate an intermediate variable; the output is read from the network's output")
            return False
        return True

    def _locate_latents(self, stmt: A.LocateLatents, alignment: AlignmentIR) -> LatentSearchIR | None:
        """`locate VAR over latents of SITE : sae("DIR")`: one site, an SAE featurizer without latents."""
        var = stmt.var.text
        if not self._locatable(stmt.var, alignment):
            return None
        feat = stmt.featurizer
        if not isinstance(feat, A.CallFeaturizer) or feat.name.text != "sae":
            self.sink.error(E0623, "`locate … over latents of` searches the latents of an SAE: its featurizer "
                                   "must be `sae(\"dir\")`", feat.span, "not an sae featurizer",
                            help='write `: sae("sae_dir")`, the folder of an SAELens SAE')
            return None
        ref = A.SiteRef(stmt.site, stmt.positions, stmt.braced, feat, span=stmt.span)
        got = self._site_binding(ref, self.resolvers.get(alignment.network), context="latent search")
        return None if got is None else LatentSearchIR(var, got, stmt.span)

    def _locate(self, stmt: A.Locate, alignment: AlignmentIR) -> LocateIR | None:
        """Expand a sweep into cells (sites x positions), each validated like an alignment site."""
        model = self.ir.models.get(alignment.model)
        if stmt.index is not None or stmt.joint or (model is not None and stmt.var.text in model.families.families):
            return self._locate_several(stmt, alignment)  # a family named whole is E0713 there
        var = stmt.var.text
        if not self._locatable(stmt.var, alignment):
            return None
        positions = [None] if stmt.positions is None else [(p,) for p in stmt.positions]
        size = sweep_size(stmt.site)  # counted before anything is built
        sites = _expand_sweep(stmt.site) if isinstance(size, int) and size * len(positions) <= MAX_LOCATE_CELLS \
            else size
        if isinstance(sites, str):
            self.sink.error(E0711, sites, stmt.site.span, "cannot expand this sweep",
                            help='write ranges as `resid.post[0..11]` and module patterns as "layers.{0..2}"')
            return None
        if isinstance(sites, int):
            self.sink.error(E0711, f"the sweep has {sites * len(positions):,} cells (at most {MAX_LOCATE_CELLS})",
                            stmt.span, "too many cells",
                            help="sweep fewer layers, heads or positions, e.g. `resid.post[0..11]`; "
                                 "run one `locate` per region of the network")
            return None
        resolver = self.resolvers.get(alignment.network)
        rows = []
        ok = True
        for site in sites:
            row = []
            for pos in positions:
                ref = A.SiteRef(site, pos, False, stmt.featurizer, span=stmt.span)
                got = self._site_binding(ref, resolver)
                if got is None:
                    ok = False
                    break
                row.append(got)
            if not ok:
                break
            rows.append(tuple(row))
        if not ok:
            return None
        feat = rows[0][0].featurizer
        site_labels = tuple(str(r[0].site) for r in rows)
        pos_labels = tuple("all" if p is None else ", ".join(b.label for b in cell.positions)
                           for p, cell in zip(positions, rows[0]))
        return LocateIR(var, tuple(rows), site_labels, pos_labels, feat, stmt.span)

    def _family_elements(self, target: str, family: str) -> tuple[str, ...]:
        alignment = self.ir.alignments.get(target)
        model = self.ir.models.get(alignment.model) if alignment is not None else None
        fam = model.families.families.get(family) if model is not None else None
        return tuple(fam.elements) if fam is not None else ()

    def _locate_several(self, stmt: A.Locate, alignment: AlignmentIR) -> LocateIR | None:
        """`locate H[i] over SITES @ i` (each element of H its own column, bound alone at its
        position and scored by `interchange H[k]`), `locate {A, B} over …` and `locate {H[i]} …
        @ i` (jointly: every cell binds every target, scored by the check's own sets)."""
        model = self.ir.models.get(alignment.model)
        if model is None:
            return None
        items: list[tuple[str, int | None, str]] = []  # (variable, element index, index name)
        for name, index in stmt.joint or ((stmt.var, stmt.index),):
            elements = self._locate_elements(name, index, model)
            if elements is None:
                return None
            items += elements
        names = [n for n, _, _ in items]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            self.sink.error(E0713, f"`locate` names {join_names(twice)} twice", stmt.span, "listed again",
                            help="list each variable once")
            return None
        if not all(self._locatable(A.Name(n, span=stmt.var.span), alignment) for n in names):
            return None
        joint = bool(stmt.joint)
        columns: list[list[tuple[str, tuple[A.PositionExpr, ...] | None]]]
        if not joint:  # one family, each element its own column
            if stmt.positions is not None and len(stmt.positions) > 1:
                self.sink.error(E0713, "each element of a located family is its own column, at one position",
                                stmt.span, "several positions",
                                help=f"write `locate {stmt.var.text}[i] over … @ i` (element i at position i)")
                return None
            columns = [[(n, positions_at(stmt.positions, v, k) if k is not None else stmt.positions)]
                       for n, k, v in items]
        else:
            picks = [None] if stmt.positions is None else [(p,) for p in stmt.positions]
            columns = [[(n, positions_at(pick, v, k) if (pick is not None and k is not None) else pick)
                        for n, k, v in items] for pick in picks]
        size = sweep_size(stmt.site)  # counted before anything is built
        if isinstance(size, int) and size * len(columns) > MAX_LOCATE_CELLS:
            self.sink.error(E0711, f"the sweep has {size * len(columns):,} cells (at most {MAX_LOCATE_CELLS})",
                            stmt.span, "too many cells",
                            help="sweep fewer layers, elements or positions; run one `locate` per region")
            return None
        sites = _expand_sweep(stmt.site) if isinstance(size, int) else size
        if isinstance(sites, str):
            self.sink.error(E0711, sites, stmt.site.span, "cannot expand this sweep",
                            help='write ranges as `resid.post[0..11]` and module patterns as "layers.{0..2}"')
            return None
        resolver = self.resolvers.get(alignment.network)
        bound = []
        for site in sites:
            row = []
            for column in columns:
                cell = []
                for n, pos in column:
                    binding = self._site_binding(A.SiteRef(site, pos, False, stmt.featurizer, span=stmt.span),
                                                 resolver)
                    if binding is None:
                        return None
                    cell.append((n, binding))
                row.append(tuple(cell))
            bound.append(tuple(row))
        first = bound[0]
        cells = tuple(tuple(cell[0][1] for cell in row) for row in bound)
        site_labels = tuple(str(row[0][0][1].site) for row in bound)

        def where(b) -> str:
            return ", ".join(p.label for p in b.positions)

        if joint:  # a column per position as written (`i`: each element at its own)
            indexed = any(k is not None for _, k, _ in items)
            pos_labels = (("all",) if stmt.positions is None else
                          tuple(_written(p) if indexed else where(cell[0][1])
                                for p, cell in zip(stmt.positions, first)))
            label = "{" + ", ".join(_target_text(n, r) for n, r in stmt.joint) + "}"
            return LocateIR(label, cells, site_labels, pos_labels, cells[0][0].featurizer, stmt.span, "joint",
                            tuple(bound), (), tuple(names))
        pos_labels = tuple(f"{cell[0][0]}" + ("" if stmt.positions is None else f" @ {where(cell[0][1])}")
                           for cell in first)
        return LocateIR(_target_text(stmt.var, stmt.index), cells, site_labels, pos_labels, cells[0][0].featurizer,
                        stmt.span, "element", tuple(bound), tuple((n,) for n in names), tuple(names))

    def _locate_elements(self, name: A.Name, index: A.FamilyRange | None, model
                         ) -> list[tuple[str, int | None, str]] | None:
        """The variables one target of `locate` stands for: itself, or a family's elements."""
        fams = model.families
        if index is None:
            if name.text in fams.families:
                self.sink.error(E0713, f"`{name.text}` is a family: locate its elements", name.span, "a whole family",
                                help=f"`locate {name.text}[i] over … @ i` (each element its own column) or "
                                     f"`locate {{{name.text}[i]}} over … @ i` (all elements at once)")
                return None
            return [(name.text, None, "")]
        fam = fams.families.get(name.text)
        if fam is None:
            self.sink.error(E0713, f"`{name.text}` is not a family of model `{model.name}`", name.span, "not a family",
                            help=did_you_mean(name.text, fams.families, "families")
                            or f"locate it without an index: `locate {name.text} over …`")
            return None
        indices = fam.indices
        if index.lo is not None and index.hi is not None:
            lo, hi = (static_index(e, fams.consts) for e in (index.lo, index.hi))
            if lo is None or hi is None or lo > hi or not set(range(lo, hi + 1)) <= set(fam.indices):
                self.sink.error(E0713, f"the range of `{name.text}[…]` must be numbers or constants inside the "
                                f"family's {fam.indices[0]}..{fam.indices[-1]}", index.span,
                                "not a range of the family",
                                help=f"e.g. `{name.text}[i in {fam.indices[0]}..{fam.indices[-1]}]`")
                return None
            indices = tuple(range(lo, hi + 1))
        var = index.var.text if index.var is not None else ""
        return [(f"{name.text}[{k}]", k, var) for k in indices]

    def _interchange_set(self, iset: A.InterchangeSet, target: str,
                         located: AbstractSet[str] = frozenset()) -> InterchangeSetIR | None:
        mentioned, outs, reliable = self.alignment_vars.get(target, (None, frozenset(), False))
        if mentioned is not None and located:
            mentioned = set(mentioned) | set(located)
        seen: set[str] = set()
        groups = []
        ok = True
        families = dict(self.alignment_families.get(target, {}))
        if located:  # `interchange H` also stands for the elements a `locate` binds
            families = {f: tuple(dict.fromkeys(els + tuple(e for e in self._family_elements(target, f)
                                                           if e in located)))
                        for f, els in families.items()}
        for group in iset.groups:
            names = []
            for n in _expand_group(group, families):
                if n.text in seen:
                    self.sink.error(E0201, f"`{n.text}` appears twice in one interchange set", n.span,
                                    "listed again", help="each variable takes its value from one source")
                    ok = False
                    continue
                seen.add(n.text)
                names.append(n.text)
                if not reliable or mentioned is None:
                    continue  # unknown alignment or unresolved variable lines: reported already
                if n.text in outs:
                    self.sink.error(E0703, f"`{n.text}` is the output of `{target}`: it is scored, not "
                                    "intervened on", n.span, "the output",
                                    help="interchange the variables the output depends on")
                    ok = False
                elif n.text not in mentioned:
                    pool = sorted(v for v in mentioned if v not in outs)
                    self.sink.error(E0703, f"`{n.text}` is not aligned in `{target}`", n.span, "not aligned",
                                    help=did_you_mean(n.text, pool) or
                                    (f"aligned variables are {join_names(pool)}" if pool else
                                     f"align it first: `{n.text} -> site` in `align … as {target}`"))
                    ok = False
            groups.append(tuple(names))
        return tuple(groups) if ok else None

    def _all_subsets(self, alignment: AlignmentIR, where: A.Name) -> tuple[InterchangeSetIR, ...] | None:
        names = [v for v in alignment.variables]
        if len(names) > MAX_DEFAULT_SUBSET_VARS:
            self.sink.error(E0708, f"`aaa` without `interchange` would cover {2 ** len(names) - 1} subsets of "
                            f"{len(names)} variables", where.span, "too many subsets",
                            help="list the sets to average over with `interchange`")
            return None
        if not names:
            self.sink.error(E0708, f"alignment `{alignment.name}` aligns no variable to intervene on",
                            where.span, "nothing to interchange",
                            help=f"align a variable to a site in `{alignment.name}`, e.g. `X -> resid.post[0]`")
            return None
        return tuple((tuple(c),) for r in range(1, len(names) + 1) for c in itertools.combinations(names, r))

    def _check_condition(self, cond: A.Condition) -> ConditionIR | None:
        metric, arg = cond.metric.name.text, cond.metric.arg
        ok = True
        if metric not in CHECK_METRICS:
            self.sink.error(E0702, f"unknown metric `{metric}`", cond.metric.name.span, "not a check metric",
                            help=did_you_mean(metric, CHECK_METRICS) or
                            "check metrics are `iia`, `aaa` and `control(NAME)`")
            return None
        if metric == "control":
            if arg is None:
                self.sink.error(E0702, "`control` needs the control's name: `control(random_init)`",
                                cond.metric.span, "which control?", help=f"controls are {', '.join(CONTROLS)}")
                return None
            if arg.text not in CONTROLS:
                self.sink.error(E0707, f"unknown control `{arg.text}`", arg.span, "not a control",
                                help=did_you_mean(arg.text, CONTROLS) or f"controls are {', '.join(CONTROLS)}")
                return None
            if cond.op not in ("<=", "<"):
                self.sink.error(E0702, f"`control({arg.text}) {cond.op} …` bounds a control from below",
                                cond.span, "use <= or <",
                                help="a control must score low: the alignment should fail on a random network "
                                     "or subspace; write `control(…) <= 0.2`")
                ok = False
        else:
            if arg is not None:
                self.sink.error(E0702, f"`{metric}` takes no argument", arg.span, "unexpected argument",
                                help="the check's interchange sets say what is scored")
                ok = False
            if cond.op not in (">=", ">"):
                self.sink.error(E0702, f"`{metric} {cond.op} …` bounds {metric} from above", cond.span,
                                "use >= or >", help=f"a claim says the network agrees with the model often "
                                f"enough: `{metric} >= 0.9`; bound controls from above instead")
                ok = False
        ok &= self._threshold(cond)
        statistic, aggregation, modes_ok = self._modes(cond)
        ok &= modes_ok
        if modes_ok and metric == "aaa" and aggregation is not None:
            self.sink.error(E0709, f"`{aggregation}` does not apply to `aaa`", cond.span, "aaa is one number",
                            help="aaa is already the mean IIA over interchange sets")
            ok = False
        if modes_ok and metric == "control" and statistic == "lower95":
            self.sink.error(E0709, "`lower95` on an upper bound would make the control easier to pass",
                            cond.span, "anti-conservative", help="use the point estimate for controls")
            ok = False
        if not ok:
            return None
        if aggregation is None:
            aggregation = "mean" if metric == "aaa" else "each"
        return ConditionIR(metric, arg.text if arg is not None else None, cond.op, float(cond.threshold),
                           statistic or "point", aggregation, cond.span,
                           Fraction(cond.tolerance.text) if cond.tolerance is not None else None)


_BRACE = re.compile(r"\{([^{}]*)\}")


def sweep_size(site: A.SweepSite) -> int | str:
    """How many sites a sweep expands to, counted arithmetically (nothing is built), or a
    message saying why it cannot be expanded.

    Why count first: `head[0..100000.0..100000]` is 10^10 sites; building them before the
    MAX_LOCATE_CELLS check once took gigabytes at parse time.
    """
    if site.module is not None:
        return _pattern_size(site.module)
    if site.ranges is None:
        return 1
    total = 1
    for lo, hi in site.ranges:
        if lo > hi:
            return f"range `{lo}..{hi}` is empty (the start is after the end)"
        total *= hi - lo + 1
    return total


def _pattern_choices(body: str, pattern: str) -> list[str] | int | str:
    """The choices of one `{…}` group: a list for `{a,b}`, a count for a range `{lo..hi}`
    (expanded only once the total is known to be small), or a message."""
    if ".." in body:
        lo, _, hi = body.partition("..")
        if not (lo.strip().isdigit() and hi.strip().isdigit()) or int(lo) > int(hi):
            return f"`{{{body}}}` in module pattern `{pattern}` is not a range `{{a..b}}` with a <= b"
        return int(hi) - int(lo) + 1
    choices = [c.strip() for c in body.split(",")]
    if not all(choices):
        return f"`{{{body}}}` in module pattern `{pattern}` has an empty choice"
    return choices


def _pattern_size(pattern: str) -> int | str:
    """The number of paths a module pattern expands to (groups multiply), or a message."""
    total = 1
    for m in _BRACE.finditer(pattern):
        got = _pattern_choices(m.group(1), pattern)
        if isinstance(got, str):
            return got
        total *= got if isinstance(got, int) else len(got)
    return total


def _expand_sweep(site: A.SweepSite) -> list | str:
    """A sweep's sites as `A.NamedSite`/`A.ModuleSite` nodes, or a message saying why not.
    Callers check `sweep_size` against MAX_LOCATE_CELLS first."""
    if site.module is not None:
        # the parser builds a module sweep with its `input`/`output` and a named one with its path
        # (syntax.build module_sweep / named_sweep): neither can be missing here
        assert site.io is not None, "a module sweep without input/output"
        io = site.io
        paths = [site.module]
        while any(_BRACE.search(p) for p in paths):
            out = []
            for p in paths:
                m = _BRACE.search(p)
                if m is None:
                    out.append(p)
                    continue
                body = m.group(1)
                got = _pattern_choices(body, site.module)
                if isinstance(got, str):
                    return got
                if isinstance(got, int):
                    if len(out) + got > MAX_LOCATE_CELLS:  # braces nested in braces: checked as they appear
                        return f"module pattern `{site.module}` expands to more than {MAX_LOCATE_CELLS} paths"
                    lo = int(body.partition("..")[0])
                    got = [str(i) for i in range(lo, lo + got)]
                out.extend(p[:m.start()] + c + p[m.end():] for c in got)
            paths = out
            if len(paths) > MAX_LOCATE_CELLS:
                return f"module pattern `{site.module}` expands to more than {MAX_LOCATE_CELLS} paths"
        return [A.ModuleSite(p, io, span=site.span) for p in paths]
    assert site.path is not None, "a named sweep without its path"  # see above: the parser's invariant
    path = site.path
    ranges = site.ranges
    if ranges is None:
        return [A.NamedSite(path, None, site.part, span=site.span)]
    for lo, hi in ranges:
        if lo > hi:
            return f"range `{lo}..{hi}` is empty (the start is after the end)"
    return [A.NamedSite(path, tuple(idx), site.part, span=site.span)
            for idx in itertools.product(*[range(lo, hi + 1) for lo, hi in ranges])]


def _target_text(name: A.Name, index: A.FamilyRange | None) -> str:
    """A `locate` target as written: `A`, `H[i]`, `H[i in 2..4]`."""
    if index is None or index.var is None:
        return name.text
    if index.lo is None or index.hi is None:
        return f"{name.text}[{index.var.text}]"
    return f"{name.text}[{index.var.text} in {_written(index.lo)}..{_written(index.hi)}]"


def _written(node) -> str:
    """A small expression or position as written (`N`, `3`, `i`, `i+1`, `END`)."""
    if isinstance(node, A.IntLit):
        return str(node.value)
    if isinstance(node, A.NameRef):
        return node.name
    if isinstance(node, A.NamedPos):
        return node.name.text
    if isinstance(node, A.IndexPos):
        return str(node.index)
    if isinstance(node, A.OffsetPos):
        return f"{node.base.text}{'+' if node.offset >= 0 else '-'}{abs(node.offset)}"
    return "…"


def _expand_group(group: tuple[A.Name, ...], families: dict[str, tuple[str, ...]]) -> list[A.Name]:
    """`interchange H`: a family stands for its aligned elements, all from one source."""
    out: list[A.Name] = []
    for n in group:
        elements = families.get(n.text)
        out.extend([A.Name(e, span=n.span) for e in elements] if elements else [n])
    return out
