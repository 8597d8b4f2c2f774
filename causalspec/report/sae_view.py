"""The SAE section of a check's report (terminal and HTML): fidelity, the error-term comparison,
and the latent search.

Why one module for both renderers: the same numbers (`CheckResult.sae`, built by
`claims.sae_honesty` and `claims.latent_search`) must read the same in both; `sae_rows` gives the
rows once, and each renderer only lays them out.
"""

from __future__ import annotations

import html
from typing import Any

from rich import box
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from causalspec.score.results import CheckResult

MAX_RANKED = 8  # latents listed in the ranking


def _num(v, digits: int = 3) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def _iia(p: dict | None) -> str:
    if not p or not p.get("trials"):
        return "n/a"
    return f"{_num(p['estimate'])} [{_num(p['lower95'])}, {_num(p['upper95'])}]"


def policy_line(sae: dict[str, Any]) -> str:
    return (f"SAE error term: the claim keeps the base's (decode(f') + err_base); scored again with the source's, "
            f"warned when the IIAs differ by more than {sae['margin']}")


def fidelity_rows(sae: dict[str, Any]) -> list[list[str]]:
    """binding, SAE, variance explained, clean accuracy, accuracy with the SAE spliced in (no error term).
    A per-element check lists each binding pooled, then at each output element (`binding → O[k]`)."""
    return [[f["binding"] + (f" → {f['output']}" if f.get("output") else ""),
             f"{f['sae']} ({f['architecture']}, {f['d_sae']} latents)",
             _num(f["variance_explained"]), _num(f["clean_accuracy"]), _iia(f.get("spliced"))]
            for f in sae.get("fidelity", [])]


FIDELITY_HEAD = ["binding", "SAE", "variance explained", "clean accuracy", "accuracy, SAE spliced in (no error)"]
COMPARISON_HEAD = ["interchange set", "IIA, error term kept", "IIA, error term from source", "difference", ""]


def comparison_rows(sae: dict[str, Any]) -> list[list[str]]:
    return [[c["label"], _iia(c["error_base"]), _iia(c["error_source"]), _num(c["difference"]),
             "rides on the error term" if c["warned"] else ""] for c in sae.get("error_term_comparison", [])]


def search_lines(sae: dict[str, Any]) -> list[str]:
    s = sae.get("latent_search")
    if not s:
        return []
    ranked = ", ".join(f"{x['latent']} ({_num(x['iia'])})" for x in s["ranking"][:MAX_RANKED])
    chosen = ", ".join(map(str, s["chosen"]))
    das = s["das"]
    das_text = (f"a das(k={das['k']}) subspace at the same site: IIA {_num(das['iia'])}" if das.get("iia") is not None
                else f"das(k={das['k']}) comparison not run: {das.get('why', '')}")
    per = "; ".join(f"{k} {_iia(v)}" for k, v in s.get("chosen_per_set", {}).items())
    return [f"latent search at {s['site']} over {s['d_sae']} latents of {s['sae']} ({s['pairs']} pairs, seed "
            f"{s['seed']}; {s['skipped_latents']} latent(s) equal in base and source on every pair, not patched)",
            f"ranked by IIA alone: {ranked}" + (" …" if len(s["ranking"]) > MAX_RANKED else ""),
            f"smallest greedy set {'reaching' if s['reached'] else 'tried (none reaches)'} {s['threshold']:g}: "
            f"[{chosen}], IIA {_num(s['chosen_iia'])} ({per})",
            f"compared with {das_text}"]


def _rich_table(head: list[str], rows: list[list[str]]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for h in head:
        t.add_column(h)
    for row in rows:
        t.add_row(*row)
    return t


def sae_renderables(r: CheckResult) -> list:
    """The terminal block (nothing when the check has no SAE featurizer)."""
    sae = getattr(r, "sae", None)
    if not sae:
        return []
    out: list = []
    for line in search_lines(sae):
        out.append(Text(f"  {line}"))
    if "error_term" in sae:
        out.append(Text(f"  {policy_line(sae)}"))
        out.append(Padding(_rich_table(FIDELITY_HEAD, fidelity_rows(sae)), (0, 0, 0, 2), expand=False))
        out.append(Padding(_rich_table(COMPARISON_HEAD, comparison_rows(sae)), (0, 0, 0, 2), expand=False))
    return out


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    return ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows) + "</table>")


def sae_html(r: CheckResult) -> str:
    """The HTML section ('' when the check has no SAE featurizer)."""
    sae = getattr(r, "sae", None)
    if not sae:
        return ""
    e = html.escape
    parts = ["<h3>Sparse autoencoder</h3>"]
    parts += [f"<p class=note>{e(line)}</p>" for line in search_lines(sae)]
    if "error_term" in sae:
        parts.append(f"<p>{e(policy_line(sae))}</p>")
        parts.append(_html_table(FIDELITY_HEAD, fidelity_rows(sae)))
        parts.append(_html_table(COMPARISON_HEAD, comparison_rows(sae)))
    return "".join(parts)
