"""HTML report of a check run: one self-contained page a reviewer can open anywhere.

Why one file with everything inline: a report is attached to a pull request or a paper
review and must not depend on a server, a CDN or files next to it. Plots (training curves,
sweep heatmaps) are PNGs embedded as base64 `data:` URIs; styling is an inline `<style>`;
there is no script. Every string that came from a spec, a tokenizer, a hook or an input
value is escaped (`html.escape`), so a variable named `<script>` is shown, not run.

Layout per check: verdict and headline, the claims table with 95% intervals (and a bar
showing baseline → IIA), conditions, controls beside the claim, the illusion check, the
training curve of learned featurizers, the `locate` heatmap, and IIA by bucket of
high-level values with the failing pairs — the page answers "why is this claim not
vacuous, and where does it fail".
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from causalspec.files import HTML_GENERATOR, atomic_write_text, tool_version
from causalspec.report.sae_view import sae_html
from causalspec.score.results import DETAILED_KINDS, ERROR, FAILED, PASSED, SKIPPED, CheckResult, summary_line
from causalspec.semantics.domains import format_value

MARKER = HTML_GENERATOR  # the <meta name="generator"> value: our marker (causalspec/files.py)
MAX_BUCKET_ROWS = 12

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:72rem;
color:#1f2328;padding:0 1rem;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin:0}h3{font-size:1rem;margin:1.2rem 0 .4rem}
.sub{color:#57606a;font-size:.9rem}
section.check{border:1px solid #d0d7de;border-radius:8px;padding:1rem 1.2rem;margin:1.2rem 0}
.badge{display:inline-block;font-weight:700;font-size:.8rem;padding:.1rem .5rem;border-radius:1rem;color:#fff;
margin-right:.5rem;vertical-align:middle}
.passed{background:#1a7f37}.failed{background:#cf222e}.skipped{background:#9a6700}.error{background:#8250df}
table{border-collapse:collapse;margin:.4rem 0;font-size:.88rem}
th,td{border-bottom:1px solid #d8dee4;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{color:#1a7f37;font-weight:700}.bad{color:#cf222e;font-weight:700}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.4rem .7rem;margin:.4rem 0}
.note{color:#57606a;font-size:.88rem;margin:.2rem 0}
.bar{position:relative;width:9rem;height:.75rem;background:#eaeef2;border-radius:3px;display:inline-block;
vertical-align:middle;margin-left:.4rem}
.bar .ci{position:absolute;top:0;height:100%;background:#54aeff;opacity:.55}
.bar .pt{position:absolute;top:-2px;width:2px;height:calc(100% + 4px);background:#0969da}
.bar .bl{position:absolute;top:-2px;width:2px;height:calc(100% + 4px);background:#6e7781}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.5rem .7rem;border-radius:6px;overflow-x:auto}
img{max-width:100%;border:1px solid #d8dee4;border-radius:6px}
.legend{font-size:.8rem;color:#57606a}
"""


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{b64}">'


def _bar(p, baseline=None) -> str:
    if p is None or not p.trials:
        return ""
    lo, hi, est = max(0.0, p.lower), min(1.0, p.upper), p.estimate
    out = (f'<span class="bar" title="95% interval {lo:.3f}–{hi:.3f}"><span class="ci" style="left:{100 * lo:.1f}%;'
           f'width:{max(0.5, 100 * (hi - lo)):.1f}%"></span><span class="pt" style="left:{100 * est:.1f}%"></span>')
    if baseline is not None and baseline.trials:
        out += (f'<span class="bl" title="baseline {baseline.estimate:.3f}" '
                f'style="left:{100 * baseline.estimate:.1f}%"></span>')
    return out + "</span>"


def _interval(p) -> str:
    if p is None or not p.trials:
        return "n/a"
    return f"{p.estimate:.3f} [{p.lower:.3f}, {p.upper:.3f}]"


# ───────────────────────── plots ─────────────────────────

def loss_curve_b64(training: dict) -> str | None:
    loss = training.get("loss") or []
    if not loss:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 2.4))
    xs = [i * max(1, training.get("steps") or len(loss)) / len(loss) for i in range(len(loss))]
    ax.plot(xs, loss, color="#0969da", label="loss")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("cross entropy", fontsize=8)
    ax.tick_params(labelsize=7)
    acc = training.get("train_batch_iia") or []
    if acc:
        ax2 = ax.twinx()
        ax2.plot(xs[:len(acc)], acc, color="#1a7f37", alpha=0.6, label="training-batch IIA")
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("training IIA", fontsize=8)
        ax2.tick_params(labelsize=7)
    ax.set_title("training of " + ", ".join(f"{g['kind']} at {g['site']}" for g in training.get("groups", [])),
                 fontsize=8)
    fig.tight_layout()
    return _png(fig)


def heatmap_b64(locate: dict) -> str:
    from causalspec.claims.locate import sweep_from_dict
    from causalspec.report.heatmap import heatmap_base64

    return heatmap_base64(sweep_from_dict(locate))


# ───────────────────────── sections ─────────────────────────

def _claims(r: CheckResult) -> str:
    rows = []
    for c in r.claims:
        label = c.label + (" (aaa subset)" if c.kind == "subset" else "")
        kept = f"{c.kept} ({100 * c.keep_rate:.1f}%)" if c.sampled else "0"
        train = _interval(c.train_iia) if c.train_iia is not None else "—"
        rows.append(f"<tr><td>{e(label)}</td><td class=num>{c.sampled}</td><td class=num>{e(kept)}</td>"
                    f"<td class=num>{c.changed}</td><td class=num>{c.moved}</td>"
                    f"<td class=num>{_num(c.baseline.estimate if c.baseline.trials else None)}</td>"
                    f"<td class=num>{_interval(c.iia)}{_bar(c.iia, c.baseline)}</td>"
                    f"<td class=num>{e(train)}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>interchange set</th><th>sampled</th><th>kept (keep-rate)</th><th>changed</th>"
            "<th>moved</th><th>baseline</th><th>IIA on held-out pairs [95% CI]</th><th>IIA on training pairs</th>"
            "</tr>" + "".join(rows) + "</table>"
            '<div class="legend">bar: blue = 95% interval and estimate of IIA, grey = no-intervention baseline</div>')


def _conditions(r: CheckResult) -> str:
    if not r.conditions:
        return ""
    items = []
    for c in r.conditions:
        mark = '<span class="ok">✓</span>' if c.passed else '<span class="bad">✗</span>'
        detail = f" ({e(c.detail)})" if c.detail else ""
        items.append(f"<li>{mark} <code>{e(c.text)}</code> — compared {_num(c.value)}{detail}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _controls(r: CheckResult) -> str:
    if not r.controls:
        return ""
    labels: list[str] = []
    for c in r.controls:
        labels += [lab for lab in c.labels if lab not in labels]
    declared = {c.label: c for c in r.claims if c.kind in DETAILED_KINDS}
    head = "".join(f"<th>{e(lab)}</th>" for lab in labels)
    rows = ["<tr><td><b>the claim</b> (held-out IIA)</td>" + "".join(
        f"<td class=num>{_num(declared[lab].iia.estimate) if lab in declared and declared[lab].iia.trials else 'n/a'}"
        "</td>" for lab in labels) + "<td>the check's own numbers</td></tr>"]
    for c in r.controls:
        values = dict(zip(c.labels, c.values))
        if not c.applicable:
            cells = "".join("<td class=num>n/a</td>" for _ in labels)
            rows.append(f"<tr><td>{e(c.name)}</td>{cells}<td>does not apply: {e(c.detail)}</td></tr>")
            continue
        row_cells: list[str] = []
        sums = {lab: s for i, lab in enumerate(c.labels) if (s := c.summary(i)) is not None} if c.n_draws else {}
        for lab in labels:
            v = values.get(lab)
            text = _num(v) if v is not None else "n/a"
            if c.name == "heldout" and v is not None and v >= 0:
                text = "+" + text
            if sums.get(lab) and sums[lab]["n"]:  # a distribution of draws: its mean, p90 and max
                text += f" (p90 {_num(sums[lab]['p90'])}, max {_num(sums[lab]['max'])})"
            row_cells.append(f"<td class=num>{text}</td>")
        drawn = f"; mean of {c.n_draws} draw(s) compared" if c.n_draws else ""
        rows.append(f"<tr><td>{e(c.name)}</td>{''.join(row_cells)}"
                    f"<td>{e(c.description)}; {e(c.detail)}{drawn}</td></tr>")
    return (f"<h3>Controls</h3><table><tr><th>control</th>{head}<th>what it is</th></tr>" + "".join(rows)
            + "</table>")


def _illusion(r: CheckResult) -> str:
    rows = [(c.label, c.full_patch) for c in r.claims
            if c.kind in DETAILED_KINDS and c.full_patch and c.full_patch.get("pairs")]
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{e(label)}</td><td class=num>{_pct(f['subspace_moved'])}</td>"
        f"<td class=num>{_pct(f.get('span_moved'))}</td>"
        f"<td class=num>{_pct(f.get('leak'))}</td>"
        f"<td class=num>{_pct(f['full_moved'])}</td><td class=num>{_num(f['full_iia'])}</td>"
        f"<td>{'<span class=bad>dormant pathway</span>' if f.get('dormant') else ''}"
        f"{e('not tested: ' + f['untested']) if f.get('untested') else ''}</td></tr>"
        for label, f in rows)
    return ("<h3>Illusion check</h3><table><tr><th>interchange set</th><th>subspace patch moves the output</th>"
            "<th>its part inside the clean activations' span moves it</th>"
            "<th>largest share written outside that span</th>"
            "<th>whole-component patch moves it</th><th>whole-component IIA</th><th></th></tr>" + body + "</table>")


def _training(r: CheckResult) -> str:
    if not r.training:
        return ""
    parts = ["<h3>Learned featurizers</h3>"]
    for t in r.training:
        dims = "; ".join(f"{g['kind']} at {g['site']}: " + ", ".join(f"{v} {k} dim(s)" for v, k in g["dims"].items())
                         for g in t.get("groups", []))
        who = "" if t.get("variant") in (None, "network") else f" [{t['variant']}]"
        how = (f"reused artifact (trained {t.get('steps')} steps)" if t.get("reused") else
               f"{t.get('steps')} step(s) in {_num(t.get('seconds'), 1)} s, {t.get('stopped')}")
        from causalspec.report.stress_view import split_text

        parts.append(f"<p class=note><b>{e(dims)}</b>{e(who)} — {e(how)}; {e(split_text(t))}; "
                     f"artifact <code>{e(t.get('artifact'))}</code></p>")
        gaps = [g for g in t.get("heldout_gap") or [] if g.get("gap") is not None]
        if gaps:
            parts.append("<p class=note>held-out gap (train IIA vs held-out IIA): " + e("; ".join(
                f"{g['label']} {_num(g['train'])} vs {_num(g['heldout'])} ({g['gap']:+.3f})" for g in gaps)) + "</p>")
        b64 = loss_curve_b64(t)
        if b64:
            parts.append(_img(b64, "training curve"))
    return "".join(parts)


def _locate(r: CheckResult) -> str:
    loc = r.locate
    if not loc:
        return ""
    best = loc.get("best") or {}
    where = e(best.get("site", "")) + (f" @ {e(best.get('position'))}"
                                       if best.get("position") not in (None, "all") else "")
    out = [f"<h3>Localization sweep: <code>locate {e(loc['var'])} : {e(loc['featurizer'])}</code></h3>",
           f"<p class=note>{sum(len(x) for x in loc['cells'])} cell(s) scored on {loc['pairs']} pairs (seed "
           f"{loc['seed']}); best: <b>{where}</b> ({_num(best.get('score'))}). The claim above is that cell, "
           f"re-scored on fresh pairs (seed {e(loc.get('confirmation_seed', 'n/a'))}). No-intervention baseline: "
           f"{_num((loc.get('baseline') or {}).get('score'))} (a cell that changes nothing scores it).</p>"]
    try:
        out.append(_img(heatmap_b64(loc), "sweep heatmap"))
    except Exception as exc:  # noqa: BLE001 - a plot is never worth losing the report for
        out.append(f"<p class=note>heatmap unavailable: {e(exc)}</p>")
    return "".join(out)


def _value(v) -> str:
    return "n/a" if v is None else format_value(v)


def _fmt_inputs(row: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in row.items())


def _buckets(r: CheckResult) -> str:
    parts = []
    for c in r.claims:
        if c.kind not in DETAILED_KINDS or not c.buckets:
            continue
        rows = []
        for b in c.buckets[:MAX_BUCKET_ROWS]:
            key = ", ".join(f"{k} {v}" for k, v in b["key"].items())
            ex = b["examples"][0] if b.get("examples") else None
            shown = ""
            if ex:
                src = " | ".join(_fmt_inputs(s) for s in ex.get("sources", []))
                shown = (f"{_fmt_inputs(ex.get('base', {}))} ⟵ {src}: expected {_value(ex.get('expected'))}, "
                         f"got {_value(ex.get('predicted'))}")
            cls = ' class="bad"' if b["iia"] < (c.iia.estimate if c.iia.trials else 1) - 0.1 else ""
            rows.append(f"<tr><td>{e(key)}</td><td class=num>{b['pairs']}</td><td class=num><span{cls}>"
                        f"{_num(b['iia'])}</span></td><td><code>{e(shown)}</code></td></tr>")
        more = len(c.buckets) - MAX_BUCKET_ROWS
        parts.append(f"<h3>IIA by high-level values: {e(c.label)}</h3>"
                     + (f'<div class="warn">suggestion: {e(c.suggestion)}</div>' if c.suggestion else "")
                     + "<table><tr><th>bucket (base→source; base value)</th><th>pairs</th><th>IIA</th>"
                     "<th>a failing pair (base ⟵ source)</th></tr>" + "".join(rows) + "</table>"
                     + (f"<p class=note>… and {more} more bucket(s) in the JSON report</p>" if more > 0 else ""))
    return "".join(parts)


def _counterexamples(r: CheckResult) -> str:
    from causalspec.report.terminal import counterexamples

    if r.status != FAILED:
        return ""
    picked = counterexamples(r)
    if not picked:
        return ""
    rows = "".join(f"<tr><td>{e(label)}</td><td>{e(_fmt_inputs(ex.get('base', {})))}</td>"
                   f"<td>{e(' | '.join(_fmt_inputs(s) for s in ex.get('sources', [])))}</td>"
                   f"<td>{e(_value(ex.get('expected')))}</td><td>{e(_value(ex.get('predicted')))}</td></tr>"
                   for label, ex in picked)
    return ("<h3>Counterexamples</h3><table><tr><th>interchange set</th><th>base</th><th>sources</th><th>expected</th>"
            "<th>predicted</th></tr>" + rows + "</table>")


def check_section(r: CheckResult) -> str:
    from causalspec.report.terminal import headline

    where = f"{r.file}:{r.line}" if r.file else ""
    parts = [f'<section class="check" id="{e(r.name)}">',
             f'<h2><span class="badge {e(r.status)}">{e(r.status.upper())}</span>{e(r.name)} '
             f'<span class="sub">{e(r.model)} → {e(r.network)} · {e(where)} · {r.seconds:.1f} s</span></h2>',
             f"<p>{e(headline(r))}</p>"]
    for w in r.warnings:
        parts.append(f'<div class="warn">warning: {e(w)}</div>')
    if r.status in (PASSED, FAILED):
        parts += [_claims(r), _conditions(r)]
        if r.aaa is not None:
            parts.append(f"<p class=note>approximate abstraction accuracy {_num(r.aaa)}</p>")
        parts += [_controls(r), _illusion(r), sae_html(r), _training(r), _locate(r), _buckets(r),
                  _counterexamples(r)]
        if getattr(r, "kind", "check") == "circuit" and getattr(r, "circuit", None) is not None:
            parts.append("<h3>Circuit</h3><pre>" + e(json.dumps(r.circuit.to_dict(), indent=2, default=str))
                         + "</pre>")
    for n in r.notes:
        parts.append(f"<p class=note>note: {e(n)}</p>")
    if r.forward_passes:
        parts.append("<p class=note>forward passes: " + e(", ".join(f"{k} {v}" for k, v in r.forward_passes.items()))
                     + (f" · pool {r.pool} input(s), {r.unique_inputs} unique" if r.pool else "") + "</p>")
    if r.reproduce and r.status != PASSED:
        parts.append(f"<p class=note>reproduce: <code>{e(r.reproduce)}</code></p>")
    parts.append("</section>")
    return "".join(p for p in parts if p)


def render_html(results: Sequence[CheckResult], files: Iterable[str] = (), interrupted: bool = False) -> str:
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{MARKER} causalspec '
            f'{e(tool_version())}"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>causalspec report</title><style>{CSS}</style></head><body>"
            + report_body(results, files, interrupted) + "</body></html>\n")


FRAGMENT_CLASS = "causalspec-report"


def render_fragment(results: Sequence[CheckResult], files: Iterable[str] = (), interrupted: bool = False) -> str:
    """The report's content as one `<div>` to place inside another page (a notebook cell's
    output): the same sections as `render_html`, with the style rules scoped to the div so
    that they restyle nothing around it. Self-contained like the page: plots are inline PNGs."""
    return (f'<div class="{FRAGMENT_CLASS}"><style>{scoped_css(CSS, "." + FRAGMENT_CLASS)}</style>'
            + report_body(results, files, interrupted) + "</div>")


def scoped_css(css: str, scope: str) -> str:
    """`css` with every selector placed under `scope` (`body` becomes the scope itself)."""
    rules = []
    for rule in css.split("}"):
        if "{" not in rule:
            continue
        selectors, declarations = rule.split("{", 1)
        scoped = [scope if sel.strip() == "body" else f"{scope} {sel.strip()}"
                  for sel in selectors.split(",") if sel.strip()]
        rules.append(",".join(scoped) + "{" + declarations.strip() + "}")
    return "\n".join(rules)


def report_body(results: Sequence[CheckResult], files: Iterable[str] = (), interrupted: bool = False) -> str:
    """The report's content: heading, summary, index table and one section per check."""
    results = list(results)
    files = list(files)
    counts = {s: sum(r.status == s for r in results) for s in (PASSED, FAILED, SKIPPED, ERROR)}
    index = "".join(f'<tr><td><span class="badge {e(r.status)}">{e(r.status.upper())}</span></td>'
                    f'<td><a href="#{e(r.name)}">{e(r.name)}</a></td><td>{e(r.model)} → {e(r.network)}</td>'
                    f"<td>{e(_claim_summary(r))}</td></tr>" for r in results)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return ("<h1>causalspec check report</h1>"
            f'<p class="sub">{e(", ".join(files))} · {stamp} · {e(summary_line(results))}'
            f" ({counts[ERROR]} error(s) counted as failed)</p>"
            + ("<p class=note><strong>interrupted</strong>: the run was stopped (Ctrl-C); only the checks that "
               "finished are shown.</p>" if interrupted else "")
            + "<p class=note>IIA: interchange intervention accuracy "
              "(the fraction of kept pairs where the patched network "
            "gives the high-level model's counterfactual output), with 95% Wilson intervals. Learned featurizers are "
            "trained on inputs disjoint from the scored pairs. Wording is deliberate: a pass holds on the sampled "
            "pairs, it is not a proof.</p>"
            "<table><tr><th>status</th><th>check</th><th>model → network</th><th>claims</th></tr>" + index + "</table>"
            + "".join(check_section(r) for r in results))


def _claim_summary(r: CheckResult) -> str:
    declared = [c for c in r.claims if c.kind == "declared" and c.iia.trials]
    if not declared:
        return r.reason or ""
    return "; ".join(f"{c.label} {c.iia.estimate:.3f}" for c in declared)


def write_html(path, results: Sequence[CheckResult], files: Iterable[str] = (), interrupted: bool = False) -> Path:
    """Write the report atomically; refuse to replace a file that is not an output of ours
    (the generator `<meta>` in `<head>` is our marker, see causalspec/files.py)."""
    return atomic_write_text(Path(path), render_html(results, list(files), interrupted))
