"""Terminal views of what stress-tests a claim: training, controls, illusion check, buckets, sweeps.

Why a module of its own: `report/terminal.py` lays out a check's block; this adds the parts
that say how far to trust it (causalspec/stress.py computes them), each only when present,
so a check without learned featurizers or controls looks exactly as before.
"""

from __future__ import annotations

from rich import box
from rich.console import JustifyMethod, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from causalspec.score.results import CONTROL_QUANTILE, CONTROL_STATISTIC, DETAILED_KINDS, FAILED, CheckResult

SPARK = "▁▂▃▄▅▆▇█"
MAX_BUCKETS_SHOWN = 3


def sparkline(values, width: int = 24, ascii_only: bool = False) -> str:
    vals = [float(v) for v in values if v == v]
    if not vals:
        return ""
    if len(vals) > width:
        step = len(vals) / width
        vals = [sum(vals[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]) /
                len(vals[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]
    lo, hi = min(vals), max(vals)
    chars = ".:-=+*#%" if ascii_only else SPARK
    if hi - lo < 1e-12:
        return chars[0] * len(vals)
    return "".join(chars[min(len(chars) - 1, int((v - lo) / (hi - lo) * (len(chars) - 1) + 0.5))] for v in vals)


def _num(v, digits: int = 3) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _indent(r) -> Padding:
    return Padding(r, (0, 0, 0, 2), expand=False)


def _table() -> Table:
    return Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)


def training_lines(r: CheckResult, ascii_only: bool = False) -> list:
    out = []
    for t in r.training:
        groups = "; ".join(f"{g['kind']} on {g['site']} (" + ", ".join(f"{v} {k} dim(s)" for v, k in g["dims"].items())
                           + ")" for g in t.get("groups", []))
        who = "" if t.get("variant") in (None, "network") else f" [{t['variant']}]"
        loss = t.get("loss") or []
        curve = sparkline(loss, ascii_only=ascii_only)
        if t.get("reused"):
            how = f"reused artifact {t.get('artifact')} (trained {t.get('steps')} steps; --retrain to train again)"
        else:
            how = (f"{t.get('steps')} step(s) in {_num(t.get('seconds'), 1)} s, {t.get('stopped')}; "
                   f"saved {t.get('artifact')}")
        over = t.get("elements")  # trained once over every output element (`O[i] -> output @ i`)
        line = Text(f"  training{who}: {groups}" + (f", the losses summed over {', '.join(over)}" if over else "")
                    + f": {how}")
        out.append(line)
        if loss:
            out.append(Text(f"    loss {_num(loss[0])} {curve} {_num(loss[-1])} · {split_text(t)}", style="dim"))
        gaps = [g for g in t.get("heldout_gap") or [] if g.get("gap") is not None]
        if gaps:
            out.append(Text("    held-out gap (train IIA vs held-out IIA): " + "; ".join(
                f"{g['label']} {_num(g['train'])} vs {_num(g['heldout'])} ({'+' if g['gap'] >= 0 else ''}"
                f"{_num(g['gap'])})" for g in gaps)))
    return out


def split_text(t: dict) -> str:
    """`4096 training pairs (610 distinct) over 212 distinct inputs, disjoint from the held-out pairs`."""
    where = ("disjoint from the held-out pairs" if not t.get("overlap") else
             f"{t['overlap']} of them also held out: the input space is too small to keep them apart")
    if t.get("train_inputs") is None:  # a report written before distinct counts were recorded
        return f"{t.get('train_pairs')} training pairs ({where})"
    distinct = sum((t.get("train_distinct_pairs") or {}).values())
    return (f"{t.get('train_pairs_used', t.get('train_pairs'))} training pairs ({distinct} distinct) over "
            f"{t['train_inputs']} distinct inputs, {where}")


def controls_table(r: CheckResult) -> Table | None:
    if not r.controls:
        return None
    table = _table()
    table.add_column("control")
    labels = []
    for c in r.controls:
        for lab in c.labels:
            if lab not in labels:
                labels.append(lab)
    for lab in labels:
        table.add_column(Text(lab), justify="right")
    table.add_column("what it is")
    claims = {c.label: c for c in r.claims if c.kind in DETAILED_KINDS}
    row = ["claim (held-out IIA)"] + [_num(claims[lab].iia.estimate) if lab in claims and claims[lab].iia.trials
                                      else "n/a" for lab in labels] + ["the check's own numbers"]
    table.add_row(*row)
    for c in r.controls:
        if not c.applicable:
            table.add_row(c.name, *["n/a"] * len(labels), Text(f"does not apply: {c.detail}"))
            continue
        values = dict(zip(c.labels, c.values))
        if c.n_draws:  # a distribution: the compared statistic first, then the quantile and the max
            sums = {lab: s for i, lab in enumerate(c.labels) if (s := c.summary(i)) is not None}
            cells = [f"{_num(sums[lab][CONTROL_STATISTIC])} "
                     f"(p{CONTROL_QUANTILE} {_num(sums[lab][f'p{CONTROL_QUANTILE}'])}"
                     f", max {_num(sums[lab]['max'])})" if lab in sums and sums[lab]["n"] else "n/a" for lab in labels]
            table.add_row(c.name, *cells, Text(f"{c.description}; {c.detail}; {CONTROL_STATISTIC} of {c.n_draws} "
                                               f"draw(s) compared"))
            continue
        if c.name == "heldout":
            cells = [("+" if (values.get(lab) or 0) >= 0 else "") + _num(values.get(lab)) if lab in values else "n/a"
                     for lab in labels]
        else:
            cells = [_num(values.get(lab)) if lab in values else "n/a" for lab in labels]
        table.add_row(c.name, *cells, Text(f"{c.description}; {c.detail}"))
    return table


def illusion_table(r: CheckResult) -> Table | None:
    """Subspace patch vs its part inside the span of the clean activations (the illusion test,
    `score.illusion`), with the whole-component patch beside them (reported, not judged)."""
    rows = [(c.label, c.full_patch) for c in r.claims
            if c.kind in DETAILED_KINDS and c.full_patch and c.full_patch.get("pairs")]
    if not rows:
        return None
    table = _table()
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("illusion check", "left"), ("subspace patch moves", "right"), ("in-span part moves", "right"),
        ("written outside the span", "right"), ("whole-component patch moves", "right"),
        ("whole-component IIA", "right"), ("", "left"))
    for col, just in columns:
        table.add_column(col, justify=just)
    for label, f in rows:
        table.add_row(Text(label), _pct(f["subspace_moved"]), _pct(f.get("span_moved")), _pct(f.get("leak")),
                      _pct(f["full_moved"]), _num(f["full_iia"]),
                      "dormant pathway" if f.get("dormant") else ("not tested" if f.get("untested") else ""))
    return table


def illusion_notes(r: CheckResult) -> list:
    """Why the in-span test did not run for a set (remote activations, a pool too small)."""
    return [Text(f"  illusion check ({c.label}) not tested: {c.full_patch['untested']}", style="dim")
            for c in r.claims if c.kind in DETAILED_KINDS and c.full_patch and c.full_patch.get("untested")]


def bucket_lines(r: CheckResult) -> list:
    """Worst buckets of each declared set that is below its claim (failed checks) + suggestions."""
    out: list[RenderableType] = []
    failed = r.status == FAILED
    for c in r.claims:
        if c.kind not in DETAILED_KINDS:
            continue
        if c.suggestion:
            out.append(Text(f"  suggestion ({c.label}): {c.suggestion}", style="yellow"))
        if not failed or not c.buckets or not c.iia.trials or c.iia.estimate >= 0.999:
            continue
        worst = [b for b in c.buckets if b["iia"] < c.iia.estimate][:MAX_BUCKETS_SHOWN]
        if not worst:
            continue
        table = _table()
        table.add_column(f"worst buckets of {c.label}")
        table.add_column("pairs", justify="right")
        table.add_column("IIA", justify="right")
        table.add_column("a failing pair (base | source → expected, got)")
        for b in worst:
            key = ", ".join(f"{k} {v}" for k, v in b["key"].items())
            ex = b["examples"][0] if b.get("examples") else None
            shown = ""
            if ex:
                base = ", ".join(f"{k}={v}" for k, v in ex.get("base", {}).items())
                src = " | ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in ex.get("sources", []))
                shown = f"{base} | {src} → {ex.get('expected')}, got {ex.get('predicted')}"
            table.add_row(Text(key), str(b["pairs"]), _num(b["iia"]), Text(shown))
        out.append(_indent(table))
    return out


def locate_table(r: CheckResult) -> Table | None:
    """The locate sweep of a check's result (`sweep_table`), None when it has none."""
    return sweep_table(r.locate) if r.locate else None


def sweep_table(loc: dict) -> Table | None:
    """Held-out IIA per cell of a locate sweep (`LocateResult.to_dict()`), the best cell
    marked, and a last row with the no-intervention baseline (what a cell that changes
    nothing scores); cells at or below it say so."""
    if not loc:
        return None
    table = _table()
    table.add_column(Text(f"locate {loc['var']} : {loc['featurizer']}"))  # `H[i]` is no markup
    for p in loc["positions"]:
        table.add_column(Text(p if p != "all" else "IIA (held-out)"), justify="right")
    base = (loc.get("baseline") or {}).get("score")
    # an element sweep (`locate H[i]`): each column has its own baseline and its own best cell
    bases = list(loc.get("column_baselines") or ()) or [base] * len(loc["positions"])
    bests = ([b or {} for b in loc.get("column_best") or ()] if loc.get("mode") == "element"
             else [loc.get("best") or {}] * len(loc["positions"]))
    for row in loc["cells"]:
        cells = []
        for j, c in enumerate(row):
            col_base, best = bases[j] if j < len(bases) else base, bests[j] if j < len(bests) else {}
            at_base = col_base is not None and c["score"] is not None and c["score"] <= col_base + 1e-9
            text = _num(c["score"]) + (" ≤ baseline" if at_base else "")
            if c["site"] == best.get("site") and c["position"] == best.get("position"):
                cells.append(Text(f"{text} ◀ best", style="bold"))
            else:
                cells.append(Text(text, style="dim" if at_base else ""))
        table.add_row(Text(row[0]["site"]), *cells)
    if any(b is not None for b in bases):
        table.add_section()
        table.add_row(Text("no intervention (baseline)", style="dim"),
                      *[Text(_num(b), style="dim") for b in bases])
    return table


def stress_renderables(r: CheckResult, glyphs: dict | None = None) -> list:
    ascii_only = glyphs is not None and glyphs.get("pass") == "+"
    out: list = []
    for w in r.warnings:
        out.append(Text(f"  warning: {w}", style="yellow"))
    loc = locate_table(r)
    if loc is not None and r.locate:  # a table exists only for a locate sweep
        out.append(Text(f"  sweep: {sum(len(x) for x in r.locate['cells'])} cell(s) on {r.locate['pairs']} pairs "
                        f"(seed {r.locate['seed']}), {r.locate['unique_inputs']} unique inputs, clean forward passes "
                        f"shared by every cell"))
        out.append(_indent(loc))
    out.extend(training_lines(r, ascii_only))
    ctl = controls_table(r)
    if ctl is not None:
        out.append(_indent(ctl))
    ill = illusion_table(r)
    if ill is not None:
        out.append(_indent(ill))
        out.extend(illusion_notes(r))
    out.extend(bucket_lines(r))
    return out
