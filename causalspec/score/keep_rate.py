"""A hint when few pairs are kept: the network disagrees with the model before any intervention.

Why: a check scores only pairs whose base and sources the network gets right. When that is
a small share, the cause is seldom the network's mechanism and usually the plumbing — a
prompt that does not ask what the model computes, an answer template whose first token is
not the value (a missing leading space), a tokenizer that splits the values, an encode hook
that orders the inputs differently. Showing a few unpatched predictions next to the model's
outputs makes that visible at a glance, instead of a low keep-rate in a table.
"""

from __future__ import annotations

import numpy as np

from causalspec.semantics.domains import format_value

LOW_KEEP_RATE = 0.2  # below this share of kept pairs, the hint is printed
HINT_EXAMPLES = 3


def low_keep_rate_hint(run, claims) -> str:
    """The warning text for the declared set with the lowest keep-rate below LOW_KEEP_RATE ('' if none).

    `run` is the check's AlignmentRun after its clean pass; `claims` its ClaimResults.
    """
    low = [c for c in claims if c.kind == "declared" and c.sampled and c.keep_rate < LOW_KEEP_RATE]
    if not low or run.cache is None:
        return ""
    worst = min(low, key=lambda c: c.keep_rate)
    model, domain = run.model, run.domain
    labels = domain.codes(model.run(run.unique_rows)[run.output])
    preds = np.asarray(run.cache.preds)
    wrong = np.flatnonzero(preds != labels)
    shown = []
    for i in wrong[:HINT_EXAMPLES].tolist():
        inputs = ", ".join(f"{k}={format_value(model.domain(k).decode(run.unique_rows[k][i:i + 1])[0])}"
                           for k in model.inputs)
        shown.append(f"{inputs} -> network {_value(domain, int(preds[i]))}, model {_value(domain, int(labels[i]))}")
    text = (f"only {worst.kept} of {worst.sampled} pairs of {worst.label} are kept ({worst.keep_rate:.0%}): the "
            f"unpatched network disagrees with the model on {len(wrong)} of {len(labels)} inputs, so the prompt, "
            "the answer template or the tokenizer (for a torch network: the encode hook or the read-out) may be wrong")
    if shown:
        text += "; unpatched predictions: " + "; ".join(shown)
    return text


def _value(domain, code: int) -> str:
    return format_value(domain.values[code]) if 0 <= code < domain.size else "(no value of the output domain)"


__all__ = ["HINT_EXAMPLES", "LOW_KEEP_RATE", "low_keep_rate_hint"]
