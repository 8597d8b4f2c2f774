"""Where a claim fails: IIA by high-level values, the worst buckets, and a suggestion.

Why buckets of high-level values: a single IIA of 0.8 does not say *which* interventions the
network does not follow. Grouping the kept pairs by the values the hypothesis talks about —
for each intervened variable its value in the base and in the source, and the base's value
of every other intermediate variable — shows, e.g., that the patch works when the source
has `WX = true` and fails when it has `WX = false` (the site carries one value of WX only).
Only variables with small domains become bucket keys (at most `MAX_KEY_VALUES` values);
wide ones (names, integers 0..99) would give a bucket per pair.

The whole-component patch is summarised here next to the subspace patch (DESIGN: report
the full-component effect beside the subspace's). It is *not* the illusion test: when the
site carries several aligned variables, the whole patch swaps them all and may move the
output less for reasons unrelated to an illusion. The illusion check itself is
`score.illusion` (does the effect survive when the patch writes only inside the span of
the clean activations?).

Everything here is computed from arrays already produced by the engine: nothing reruns.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from causalspec.semantics.domains import format_value

MAX_KEY_VALUES = 8
MAX_BUCKETS = 64  # reported per interchange set (worst first)
WORST = 3
EXAMPLES_PER_BUCKET = 2
MIN_FAILURES = 5  # a suggestion needs at least this many failures
CONCENTRATION = 0.75  # share of failures in one slice
GAP = 0.2  # IIA in the slice at least this far below IIA outside it


def bucket_key_vars(model, groups: list[list[str]]) -> tuple[list[tuple[int, str]], list[str]]:
    """(group, var) pairs whose base→source values key a bucket, and base-only variables."""
    intervened = [(g, v) for g, names in enumerate(groups) for v in names
                  if model.domain(v).size <= MAX_KEY_VALUES]
    names = {v for _, v in intervened} | {v for names in groups for v in names}
    context = [v for v in model.intermediates if v not in names and model.domain(v).size <= MAX_KEY_VALUES]
    return intervened, context


def buckets(model, groups: list[list[str]], base_env: dict, source_envs: list[dict], kept: np.ndarray,
            correct: np.ndarray, describe: Callable[[int], dict] | None = None) -> tuple[list[dict], str]:
    """IIA per bucket of high-level values (worst first) and a suggestion ('' if none).

    `base_env`/`source_envs[g]`: every variable's value per pair (model.run of the inputs);
    `kept`: pairs scored; `correct`: patched prediction == expected, per pair.
    """
    intervened, context = bucket_key_vars(model, groups)
    if not intervened and not context:
        return [], ""
    idx = np.flatnonzero(kept)
    if not len(idx):
        return [], ""
    cols: list[tuple[str, np.ndarray]] = []  # (label, per-pair display value)
    for g, v in intervened:
        dom = model.domain(v)
        b = [format_value(x) for x in dom.decode(np.asarray(base_env[v]))]
        s = [format_value(x) for x in dom.decode(np.asarray(source_envs[g][v]))]
        cols.append((v, np.array([f"{x}→{y}" for x, y in zip(b, s)], dtype=object)))
    for v in context:
        dom = model.domain(v)
        cols.append((f"{v} (base)", np.array([format_value(x) for x in dom.decode(np.asarray(base_env[v]))],
                                            dtype=object)))
    keys = [tuple(c[1][i] for c in cols) for i in range(len(kept))]
    groups_of: dict[tuple, list[int]] = {}
    for i in idx:
        groups_of.setdefault(keys[i], []).append(int(i))
    total = float(correct[idx].mean())
    out: list[dict[str, Any]] = []
    for key, members in groups_of.items():
        members_arr = np.asarray(members)
        ok = int(correct[members_arr].sum())
        n = len(members)
        failing = [i for i in members if not correct[i]]
        out.append({"key": {label: value for (label, _), value in zip(cols, key)}, "pairs": n, "correct": ok,
                    "iia": ok / n, "failing": n - ok,
                    "examples": [describe(i) for i in failing[:EXAMPLES_PER_BUCKET]] if describe else []})
    out.sort(key=lambda b: (b["iia"], -b["pairs"]))
    for rank, bucket in enumerate(out):
        if rank >= WORST or bucket["iia"] >= total:
            bucket["examples"] = []
    suggestion = _suggest(cols, idx, correct, total)
    return out[:MAX_BUCKETS], suggestion


def _suggest(cols, idx: np.ndarray, correct: np.ndarray, total: float) -> str:
    fails = idx[~correct[idx]]
    if len(fails) < MIN_FAILURES:
        return ""
    best = None
    for label, values in cols:
        for value in sorted(set(values[idx].tolist())):
            inside = idx[values[idx] == value]
            outside = idx[values[idx] != value]
            if not len(outside):
                continue
            share = float((values[fails] == value).mean())
            iia_in = float(correct[inside].mean())
            iia_out = float(correct[outside].mean())
            if share >= CONCENTRATION and iia_in <= iia_out - GAP:
                cand = (share, -iia_in, label, value, iia_in, iia_out, len(inside))
                if best is None or cand[:2] > best[:2]:
                    best = cand
    if best is None:
        return ""
    share, _, label, value, iia_in, iia_out, n_in = best
    var = label.split(" ")[0]
    where = f"{label} = {value}" if "→" not in str(value) else f"{var} goes {value} (base→source)"
    return (f"{share:.0%} of the failures are pairs where {where} (IIA {iia_in:.2f} on those {n_in} pairs vs "
            f"{iia_out:.2f} on the rest): the site seems to carry only some values of `{var}`, or `{var}` is "
            f"computed elsewhere for them — try a larger subspace, another site (`locate {var} over …`), or a "
            f"finer high-level variable for that case")


def full_patch_summary(kept: np.ndarray, expected: np.ndarray, net_base: np.ndarray, sub_patched: np.ndarray,
                       full_patched: np.ndarray) -> dict[str, Any]:
    """Effects of the subspace patch and the whole-component patch on the same kept pairs
    (reported beside the claim; no verdict is drawn from their difference)."""
    k = kept
    n = int(k.sum())
    if not n:
        return {"pairs": 0, "subspace_moved": None, "full_moved": None, "full_iia": None}
    sub_moved = float((sub_patched[k] != net_base[k]).mean())
    full_moved = float((full_patched[k] != net_base[k]).mean())
    full_iia = float((full_patched[k] == expected[k]).mean())
    return {"pairs": n, "subspace_moved": sub_moved, "full_moved": full_moved, "full_iia": full_iia}
