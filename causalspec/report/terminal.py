"""Terminal report of a check run (rich): progress, one result block per check, the summary line.

Why this shape: a check's verdict is only as good as the numbers behind it, so every block
states what DESIGN §4 asks for — pairs sampled, kept (keep-rate), changed, moved, the
no-intervention baseline and IIA with its 95% interval, per interchange set — and the
seed. A pass is worded as what it is ("holds on 1024 sampled pairs (seed 0)"), never as a
proof. A failure shows a few counterexample pairs and the command that reproduces it.

The same block rendered without colour (`check_text`) is what the pytest plugin and the
JUnit report show for a failed check, so every report says the same thing.

CI logs: the progress bar is drawn only on a terminal, and only once a check has run for
about two seconds (it is transient: it disappears when the check ends). Without a
terminal rich writes no colour codes. The last line is `summary_line(results)`, written as
plain text whatever the console, so a CI job can read it.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any, Callable, Iterable, Sequence

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from causalspec.report.sae_view import sae_renderables
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED, CheckResult, ClaimResult, summary_line
from causalspec.score.stats import Proportion
from causalspec.report.circuit_report import circuit_renderables
from causalspec.report.stress_view import stress_renderables
from causalspec.semantics.domains import format_value

MAX_COUNTEREXAMPLES = 3
LOG_WIDTH = 120

_MARK = {PASSED: ("pass", "PASS", "green"), FAILED: ("fail", "FAIL", "red"),
         SKIPPED: ("skip", "SKIP", "yellow"), ERROR: ("error", "ERROR", "red")}
_UNICODE = {"pass": "✓", "fail": "✗", "skip": "-", "error": "!", "to": "→", "dash": "—", "dot": "·"}
_ASCII = {"pass": "+", "fail": "x", "skip": "-", "error": "!", "to": "->", "dash": "-", "dot": "|"}


def _glyphs(console: Console | None) -> dict[str, str]:
    """Unicode marks, or ASCII ones where the output encoding cannot hold them."""
    encoding = (getattr(console, "encoding", None) or "utf-8").lower().replace("_", "-")
    return _UNICODE if encoding.startswith("utf") else _ASCII


def make_console(file=None, width: int | None = None, color: bool | None = None) -> Console:
    """A console for reports. `color=None`: colour only on a terminal (rich's own detection)."""
    kwargs: dict[str, Any] = {}
    if color is False:
        kwargs.update(no_color=True, force_terminal=False)
    console = Console(file=file, width=width, highlight=False, emoji=False, **kwargs)
    if width is None and not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = LOG_WIDTH  # CI logs do not wrap; rich's 80-column default cramps the tables
    return console


# ───────────────────────── progress ─────────────────────────

class CheckProgress:
    """A `CheckOptions.progress` callback that draws a transient rich progress bar.

    Usage: `begin(label)` before a check, `end()` after it (or use it as a context manager
    around the whole run). The bar starts lazily: only after `delay` seconds of a check, so
    quick checks never flicker one. It is disabled when the console is not a terminal
    (pipes, CI logs, files), where it would only add noise.
    """

    def __init__(self, console: Console, delay: float = 2.0, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.delay = delay
        self.enabled = console.is_terminal if enabled is None else enabled
        self.clock = clock
        self.label = ""
        self._progress: Progress | None = None
        self._started = False
        self._t0: float | None = None

    @property
    def visible(self) -> bool:
        return self._started

    def begin(self, label: str = "") -> None:
        self.end()
        self.label = label
        self._t0 = self.clock()

    def end(self) -> None:
        if self._progress is not None and self._started:
            self._progress.stop()
        self._progress, self._started, self._t0 = None, False, None

    def __enter__(self) -> CheckProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.end()

    def __call__(self, kind: str, total: int) -> Callable[[int], None]:
        if not self.enabled:
            return _ignore
        if self._t0 is None:
            self._t0 = self.clock()
        if self._progress is None:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=self.console, transient=True)
        progress = self._progress
        label = f"{self.label}: {kind}" if self.label else kind
        task = progress.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            if (not self._started and progress is self._progress and self._t0 is not None
                    and self.clock() - self._t0 >= self.delay):
                progress.start()
                self._started = True

        return advance


def _ignore(n: int = 1) -> None:
    return None


# ───────────────────────── formatting ─────────────────────────

def fmt_num(value: float | None, digits: int = 3) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_interval(p: Proportion) -> str:
    if not p.trials:
        return "n/a (no kept pairs)"
    return f"{fmt_num(p.estimate)} [{fmt_num(p.lower)}, {fmt_num(p.upper)}]"


def fmt_kept(c: ClaimResult) -> str:
    if not c.sampled:
        return "0"
    return f"{c.kept} ({100 * c.keep_rate:.1f}%)"


def fmt_inputs(row: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in row.items())


def _fmt_value(v) -> str:
    return "n/a" if v is None else format_value(v)


def headline(r: CheckResult) -> str:
    """One honest sentence about the verdict."""
    declared = [c for c in r.claims if c.kind == "declared"]
    scope = f"{r.pairs} sampled {'prompts' if r.kind == 'circuit' else 'pairs'} (seed {r.seed})"
    if len(declared) > 1:
        scope += f" for each of {len(declared)} interchange sets"
    if getattr(r, "tolerance", None) is not None:  # a real output
        scope += f", a value counting as right within {r.tolerance:g} of the model's"
    if r.status == PASSED:
        return f"holds on {scope}"
    if r.status == FAILED:
        return f"does not hold on {scope}: {r.reason}"
    if r.status == SKIPPED:
        return f"skipped: {r.reason}"
    return f"error: {r.reason}"


def seed_text(r: CheckResult) -> str:
    """`seed 3 from --seed`, `seed 1 from the spec`, `seed 0 (the default)`: the effective seed,
    from which every random choice of the check derives (docs/language.md, "Seeds")."""
    source = getattr(r, "seed_source", "spec")
    if source == "default":
        return f"seed {r.seed} (the default)"
    return f"seed {r.seed} from " + ("the spec" if source == "spec" else source)


def counterexamples(r: CheckResult, limit: int = MAX_COUNTEREXAMPLES) -> list[tuple[str, dict]]:
    """Up to `limit` counterexamples, taken in turn from each interchange set that has some."""
    pools = [(c.label + (" (aaa subset)" if c.kind == "subset" else ""), list(c.counterexamples))
             for c in sorted(r.claims, key=lambda c: c.kind != "declared") if c.counterexamples]
    picked: list[tuple[str, dict]] = []
    depth = 0
    while len(picked) < limit and any(depth < len(p) for _, p in pools):
        for label, pool in pools:
            if depth < len(pool) and len(picked) < limit:
                picked.append((label, pool[depth]))
        depth += 1
    return picked


# ───────────────────────── renderables ─────────────────────────

def claims_table(r: CheckResult) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("interchange set")
    for col in ("sampled", "kept (keep-rate)", "changed", "moved", "baseline"):
        table.add_column(col, justify="right")
    table.add_column("IIA [95% CI]", justify="right")
    declared = [c for c in r.claims if c.kind == "declared"]
    elements = [c for c in r.claims if c.kind == "element"]  # `O[i] -> output @ i`: one row per element
    subsets = [c for c in r.claims if c.kind == "subset"]

    def row(c: ClaimResult, label: str) -> None:
        table.add_row(label, str(c.sampled), fmt_kept(c), str(c.changed), str(c.moved),
                      fmt_num(c.baseline.estimate), fmt_interval(c.iia))

    for c in declared:
        row(c, c.label)
    if elements:
        table.add_section()
        for c in elements:
            row(c, c.label)
    if subsets:
        table.add_section()
        for c in subsets:
            row(c, f"{c.label} (aaa subset)")
    return table


def counterexample_table(picked: Sequence[tuple[str, dict]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for col in ("interchange set", "base inputs", "source inputs", "expected", "predicted"):
        table.add_column(col)
    for label, ex in picked:
        sources = " | ".join(fmt_inputs(s) for s in ex.get("sources", []))
        table.add_row(label, fmt_inputs(ex.get("base", {})), sources, _fmt_value(ex.get("expected")),
                      _fmt_value(ex.get("predicted")))
    return table


def check_renderables(r: CheckResult, quiet: bool = False, glyphs: dict[str, str] = _UNICODE) -> list:
    """The block of one check, as rich renderables (header first)."""
    g = glyphs
    if quiet and r.status == PASSED:
        return []
    sym, word, colour = _MARK.get(r.status, ("error", r.status.upper(), "red"))
    sym = g[sym]
    where = f"{r.file}:{r.line}" if r.file else ""
    head = Text()
    head.append(f"{sym} {word} ", style=f"bold {colour}")
    head.append(r.name, style="bold")
    head.append(f"  {r.model} {g['to']} {r.network}")
    if where:
        head.append(f"  {where}", style="dim")
    if r.seconds:
        head.append(f"  ({r.seconds:.1f} s)", style="dim")
    out: list = [head, Text(f"  {headline(r)}", style=colour if r.status != PASSED else "")]
    if r.status in (SKIPPED, ERROR):
        if r.status == ERROR and r.reproduce:
            out.append(_reproduce(r))
        return out
    if quiet:
        if r.reproduce:
            out.append(_reproduce(r))
        return out
    if r.circuit is not None:
        out.extend(circuit_renderables(r.circuit))
    if r.claims:
        out.append(_indent(claims_table(r)))
    dropped = [(c.label, c.dropped) for c in r.claims if c.kind == "declared" and c.dropped]
    if dropped:
        parts = [f"{label}: " + ", ".join(f"{n} {why}" for why, n in d.items()) for label, d in dropped]
        out.append(Text("  pairs not kept: " + "; ".join(parts), style="dim"))
    for cond in r.conditions:
        mark = Text(f"  {g['pass'] if cond.passed else g['fail']} ", style="green" if cond.passed else "red")
        line = Text.assemble(mark, cond.text, f"  {g['dash']} compared {fmt_num(cond.value)}")
        if cond.detail:
            line.append(f" ({cond.detail})")
        out.append(line)
    if r.aaa is not None:
        subsets = [c for c in r.claims if c.kind == "subset"]
        out.append(Text(f"  approximate abstraction accuracy {fmt_num(r.aaa)} "
                        f"(mean IIA over {len(subsets)} subset(s) of the aligned variables)"))
    info = [seed_text(r)]
    if r.pool:
        info.append(f"pool {r.pool} input(s), {r.unique_inputs} unique")
    if r.forward_passes:
        info.append("forward passes: " + ", ".join(f"{k} {v}" for k, v in r.forward_passes.items()))
    if info:
        out.append(Text("  " + f" {g['dot']} ".join(info), style="dim"))
    for note in r.notes:
        out.append(Text(f"  note: {note}"))
    out.extend(stress_renderables(r, g))
    out.extend(sae_renderables(r))  # SAE fidelity, the error-term comparison, the latent search
    if r.status == FAILED:
        picked = counterexamples(r)
        if picked:
            out.append(Text(f"  counterexamples ({len(picked)} shown):"))
            out.append(_indent(counterexample_table(picked)))
        if r.reproduce:
            out.append(_reproduce(r))
    return out


def _indent(renderable) -> Padding:
    return Padding(renderable, (0, 0, 0, 2), expand=False)


def _reproduce(r: CheckResult) -> Text:
    # never wrapped: the line is meant to be copied into a shell
    return Text(f"  reproduce: {r.reproduce}", no_wrap=True, overflow="ignore")


def check_text(r: CheckResult, width: int = LOG_WIDTH, header: bool = True) -> str:
    """The terminal block of one check as plain text (pytest failures, JUnit).

    `header=False` leaves out the first line (status, name, location), which a pytest item
    already shows; the text then starts with the verdict sentence.
    """
    buf = io.StringIO()
    console = make_console(file=buf, width=width, color=False)
    items = check_renderables(r, glyphs=_glyphs(console))
    if not header:
        items = [Text(headline(r)), *items[2:]]
    for item in items:
        console.print(item, soft_wrap=isinstance(item, Text))  # sentences on one line; tables fit the width
    return buf.getvalue().rstrip() + "\n"


# ───────────────────────── whole report ─────────────────────────

class TerminalReport:
    """Prints check blocks as they finish, then the summary line (always last, plain)."""

    def __init__(self, console: Console | None = None, quiet: bool = False):
        self.console = console or make_console()
        self.quiet = quiet

    def progress(self, delay: float = 2.0) -> CheckProgress:
        return CheckProgress(self.console, delay=delay, enabled=False if self.quiet else None)

    def file_header(self, file: str, n_checks: int) -> None:
        if not self.quiet:
            self.console.print(Text(f"{file}: {n_checks} check(s)", style="bold"))

    def check(self, r: CheckResult) -> None:
        items = check_renderables(r, quiet=self.quiet, glyphs=_glyphs(self.console))
        if items:
            for item in items:  # lines of text unwrapped (the reproduce command stays copyable); tables fit
                self.console.print(item, soft_wrap=isinstance(item, Text))
            if not self.quiet:
                self.console.print()

    def line(self, text: str) -> None:
        self.console.print(Text(text))

    def summary(self, results: Iterable[CheckResult]) -> None:
        """The closing line, exactly `summary_line(results)`: no markup, no colour codes."""
        file = self.console.file
        file.write(summary_line(list(results)) + "\n")
        file.flush()


def render_results(results: Sequence[CheckResult], console: Console | None = None, quiet: bool = False) -> None:
    """Print every check's block and the summary line (for callers that ran the checks already)."""
    report = TerminalReport(console, quiet)
    for r in results:
        report.check(r)
    report.summary(results)
