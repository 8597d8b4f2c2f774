"""How a circuit claim's numbers appear in the reports (terminal block, JUnit properties).

A circuit claim is a `CheckResult` with `kind == "circuit"`; the generic parts of its block
(header, verdict sentence, condition lines, forward passes, notes, reproduce command) are
those of a check (report/terminal.py). This module adds what is specific: the metric and
granularity, the exact ablation, what was ablated and kept, the groups (MIB node names) and
edges, the metric's means for the full model, the circuit and everything ablated, and each
claimed score with its bootstrap 95% interval and definition.
"""

from __future__ import annotations

from rich import box
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from causalspec.score.circuit_scores import CircuitSummary, Estimate


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{v:.{digits}f}"


def fmt_estimate(e: Estimate | None) -> str:
    if e is None:
        return "n/a"
    return f"{_fmt(e.estimate)} [{_fmt(e.lower)}, {_fmt(e.upper)}]"


def circuit_renderables(summary: CircuitSummary) -> list:
    s = summary
    out: list = [
        Text(f"  circuit for {s.output}: metric {s.metric}, granularity {s.granularity}, {s.prompts} prompts"),
        Text(f"  ablation: {s.ablation}", style="dim"),
        Text(f"  {s.universe}", style="dim"),
    ]
    if s.convention:
        out.append(Text(f"  {s.convention.get('text', '')}", style="dim"))
    for g in s.groups:
        out.append(Text(f"  group {g['name']} = {', '.join(g['nodes'])} @ {g['positions']}", style="dim"))
    if s.edges:
        out.append(Text(f"  edges: {'; '.join(s.edges)}", style="dim"))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("quantity")
    table.add_column("estimate [95% CI]", justify="right")
    table.add_column("definition")
    labels = {"full model": "m(N), full model", "circuit": "m(C), circuit (rest ablated)",
              "everything ablated": "m(∅), everything ablated"}
    for key, label in labels.items():
        if key in s.means:
            table.add_row(label, fmt_estimate(s.means[key]), f"mean {s.metric.split(' @ ')[0]}")
    table.add_row("m(N) − m(∅)", fmt_estimate(s.effect), "effect of the ablation")
    if s.scores:
        table.add_section()
        for sc in s.scores:
            table.add_row(sc.name, fmt_estimate(sc.value), sc.definition)
    out.append(Padding(table, (0, 0, 0, 2), expand=False))
    return out


def circuit_properties(summary: CircuitSummary) -> list[tuple[str, str]]:
    """JUnit `<property>` pairs: the ablation and every number with its interval."""
    def num(v) -> str:
        return "nan" if v is None or v != v else repr(float(v))

    props = [("circuit metric", summary.metric), ("circuit ablation", summary.ablation),
             ("circuit granularity", summary.granularity), ("circuit prompts", str(summary.prompts))]
    if summary.convention:
        props.append(("circuit convention", str(summary.convention.get("label", ""))))
    items = list(summary.means.items()) + [("effect", summary.effect)] + [(sc.name, sc.value) for sc in summary.scores]
    for name, e in items:
        if e is None:
            continue
        props += [(name, num(e.estimate)), (f"{name} lower95", num(e.lower)), (f"{name} upper95", num(e.upper))]
    return props


__all__ = ["circuit_properties", "circuit_renderables", "fmt_estimate"]
