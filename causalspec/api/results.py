"""`Results` (what `Spec.check` returns) and `Sweeps` (what `Spec.locate` returns).

Why thin wrappers: the numbers are the claims' own typed records (`score.results.CheckResult`
with its `ClaimResult`s, `Proportion` intervals, `ConditionResult`s and counterexamples), the
same objects every report writer reads; the wrappers only add what a notebook asks for —
the HTML report inline, the `--json` document, a DataFrame — each from the writer the CLI
uses, so a notebook and a CI log cannot disagree.
"""

from __future__ import annotations

import html
from typing import Any, Iterator, Sequence, overload

from causalspec.files import tool_header
from causalspec.claims.locate import Sweep
from causalspec.report.heatmap import heatmap_base64
from causalspec.report.html import render_fragment
from causalspec.report.json_report import dumps, summary_counts, to_json
from causalspec.report.terminal import check_text
from causalspec.score.results import ERROR, FAILED, CheckResult, summary_line

# what to_dataframe says when pandas is missing
PANDAS_MISSING = ("Results.to_dataframe() needs pandas, which is not installed: "
                  "pip install 'causalspec[notebook]' (or pip install pandas)")

DATAFRAME_COLUMNS = ("check", "status", "claim", "kind", "metric", "tolerance", "sampled", "kept", "changed", "moved",
                     "baseline", "iia", "iia_lower95", "iia_upper95", "train_iia", "seed", "network", "model",
                     "reason")

# What a claim row's IIA counts as right (the `metric` column): the decoded class equals the model's
# (a discrete output), or the network's value lies within `tolerance` of the model's exact value (a
# real output, `output : value`; the check's `within T`)
CLASS_METRIC = "iia"
VALUE_METRIC = "iia_within"


class Results(Sequence[CheckResult]):
    """The results of one `Spec.check` run: a sequence of `CheckResult`, in the spec's order.

    `results["Name"]` is the check of that name; `passed` / `exit_code` are what
    `causalspec check` would conclude from the same results."""

    def __init__(self, results: Sequence[CheckResult], files: Sequence[str] = ()):
        self._results = list(results)
        self.files = list(files)

    @overload
    def __getitem__(self, key: int) -> CheckResult: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[CheckResult]: ...

    @overload
    def __getitem__(self, key: str) -> CheckResult: ...

    def __getitem__(self, key: int | slice | str) -> CheckResult | Sequence[CheckResult]:
        if isinstance(key, str):
            for r in self._results:
                if r.name == key:
                    return r
            raise KeyError(f"no check named {key!r} (checks: {', '.join(r.name for r in self._results)})")
        return self._results[key]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self._results)

    @property
    def exit_code(self) -> int:
        """`causalspec check`'s exit code for these results: 1 when a check failed or errored, else 0."""
        return 1 if any(r.status in (FAILED, ERROR) for r in self._results) else 0

    @property
    def passed(self) -> bool:
        """True when no check failed or errored (skipped checks, like the CLI's exit 0, do not fail
        a run: `strict=True` turns them into errors)."""
        return self.exit_code == 0

    @property
    def summary(self) -> dict[str, int]:
        """Counts as in the JSON report: passed, failed, skipped, errors."""
        return summary_counts(self._results)

    def to_json(self) -> dict[str, Any]:
        """The `--json` report (schema `causalspec.check/1`) as a dict."""
        return to_json(self._results, self.files)

    def to_json_text(self) -> str:
        """The `--json` report's text, as `causalspec check --json` writes it."""
        return dumps(self.to_json())

    def to_html(self) -> str:
        """The HTML report's content as one self-contained `<div>` (plots inline, style scoped)."""
        return render_fragment(self._results, self.files)

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_dataframe(self) -> Any:
        """One row per claim (per interchange set) of every check, columns `DATAFRAME_COLUMNS`;
        a check without claims (skipped, error) is one row with its reason. Needs pandas.

        `metric` says what a row's IIA counts as right: "iia" (the decoded class equals the
        model's) or "iia_within" (a real output: the value lies within `tolerance`, the check's
        `within T`, of the model's exact value); `train_iia` is a learned featurizer's IIA on its
        training pairs (None when nothing is trained)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(PANDAS_MISSING) from None
        rows = []
        for r in self._results:
            base = {"check": r.name, "status": r.status, "seed": r.seed, "network": r.network, "model": r.model,
                    "reason": r.reason, "tolerance": r.tolerance}
            if not r.claims:
                rows.append(base)
            for c in r.claims:
                train = c.train_iia
                rows.append({**base, "claim": c.label, "kind": c.kind, "sampled": c.sampled, "kept": c.kept,
                             "metric": VALUE_METRIC if r.tolerance is not None else CLASS_METRIC,
                             "train_iia": train.estimate if train is not None and train.trials else None,
                             "changed": c.changed, "moved": c.moved,
                             "baseline": c.baseline.estimate if c.baseline.trials else None,
                             "iia": c.iia.estimate if c.iia.trials else None,
                             "iia_lower95": c.iia.lower if c.iia.trials else None,
                             "iia_upper95": c.iia.upper if c.iia.trials else None})
        return pd.DataFrame(rows, columns=list(DATAFRAME_COLUMNS))

    def __str__(self) -> str:
        blocks = [check_text(r) for r in self._results]
        return "\n".join([*blocks, summary_line(self._results)])

    def __repr__(self) -> str:
        return f"<causalspec.Results {summary_line(self._results)}>"


class Sweeps(Sequence[Sweep]):
    """The `locate` sweeps of one `Spec.locate` run, one per check (`claims.locate.Sweep`)."""

    def __init__(self, sweeps: Sequence[Sweep]):
        self._sweeps = list(sweeps)

    @overload
    def __getitem__(self, key: int) -> Sweep: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[Sweep]: ...

    def __getitem__(self, key: int | slice) -> Sweep | Sequence[Sweep]:
        return self._sweeps[key]

    def __len__(self) -> int:
        return len(self._sweeps)

    def __iter__(self) -> Iterator[Sweep]:
        return iter(self._sweeps)

    def to_json(self) -> dict[str, Any]:
        """The `causalspec locate --json` document (schema `causalspec.locate/1`)."""
        from causalspec.report.json_report import jsonable

        return {"schema": "causalspec.locate/1", "tool": tool_header(),
                "sweeps": [jsonable(s.to_dict()) for s in self._sweeps]}

    def _repr_html_(self) -> str:
        parts = []
        for s in self._sweeps:
            best = s.best
            where = "none" if best is None else f"{best.site} @ {best.position} (mean held-out IIA {best.score:.3f})"
            parts.append(f"<h3>{html.escape(s.check)}: locate {html.escape(s.var)}</h3>"
                         f"<p>best: {html.escape(where)}; {s.pairs} pairs per interchange set (seed {s.seed})</p>"
                         f'<img alt="{html.escape(s.check)} heatmap" src="data:image/png;base64,{heatmap_base64(s)}">')
        return '<div class="causalspec-locate">' + "".join(parts) + "</div>"
