"""What checks and circuits share: numeric settings (`pairs`, `seed`, `batch`, ...), the
modes of a condition (`point|lower95`, `each|mean`) and threshold bounds."""


from __future__ import annotations

from causalspec.codes import E0701, E0704, E0709
from causalspec.semantics.context import Context
from causalspec.semantics.ir import MAX_SETTING, SETTING_EXAMPLES, SETTING_UNITS, STATISTICS
from causalspec.syntax import ast as A


class ConditionAnalysis(Context):
    def _setting(self, stmt: A.Setting, settings: dict[str, A.Setting]) -> bool:
        if stmt.key in settings:
            self.sink.error(E0704, f"`{stmt.key}` is given twice", stmt.span, "given again",
                            notes=[f"first given at {settings[stmt.key].span}"],
                            help=f"keep one `{stmt.key}` line")
            return False
        settings[stmt.key] = stmt
        if stmt.key in ("pairs", "pool", "batch", "train", "steps") and stmt.value < 1:
            self.sink.error(E0704, f"`{stmt.key}` must be at least 1, got {stmt.value}", stmt.span, "must be >= 1",
                            help=f"`{stmt.key}` counts {SETTING_UNITS[stmt.key]}; write a positive number, "
                                 f"e.g. `{stmt.key} {SETTING_EXAMPLES[stmt.key]}`")
            return False
        if stmt.key in MAX_SETTING and stmt.value > MAX_SETTING[stmt.key]:
            self.sink.error(E0704, f"`{stmt.key} {stmt.value:,}` is more than the at most {MAX_SETTING[stmt.key]:,} "
                            f"{SETTING_UNITS[stmt.key]} a check can hold in memory", stmt.span, "too large",
                            help=f"use fewer, e.g. `{stmt.key} {SETTING_EXAMPLES[stmt.key]}`; a confidence "
                                 "interval narrows with the square root of the pairs")
            return False
        return True

    def _modes(self, cond: A.Condition) -> tuple[str | None, str | None, bool]:
        statistic: str | None = None
        aggregation: str | None = None
        ok = True
        for mode in cond.modes:
            current: str | None
            kind, current = ("statistic", statistic) if mode in STATISTICS else ("aggregation", aggregation)
            if current is not None:
                same = current == mode
                self.sink.error(E0709, f"`{mode}` " + ("is given twice" if same else f"conflicts with `{current}`"),
                                cond.span, "conflicting modes",
                                help="one of point|lower95 and one of each|mean per condition")
                ok = False
                continue
            if kind == "statistic":
                statistic = mode
            else:
                aggregation = mode
        return statistic, aggregation, ok

    def _threshold(self, cond: A.Condition) -> bool:
        if not 0.0 <= cond.threshold <= 1.0:
            percent = f"; for {cond.threshold:g}% write {cond.threshold / 100:g}" if 1 < cond.threshold <= 100 else ""
            self.sink.error(E0701, f"threshold {cond.threshold:g} is outside [0, 1]", cond.span, "not a fraction",
                            help=f"`{cond.metric.name.text}` is a fraction between 0 and 1{percent}")
            return False
        return True
