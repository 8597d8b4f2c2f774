"""Diagnostics: every user mistake becomes a `Diagnostic` with a stable code and a span.

Why a module of its own: every stage (parse, analyse, compile, run) reports problems the
same way, so a user sees one format (rustc/stanc style) and tests can assert on codes,
lines and columns instead of message text. A `SpecError` carries *all* the diagnostics
found in one pass; the CLI renders them and exits with code 2 — never a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from causalspec import codes
from causalspec.errors import SpecError


@dataclass(frozen=True)
class Span:
    """A region of a source file. Lines and columns are 1-based; `end_column` is exclusive."""

    file: str = "<unknown>"
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0

    @property
    def known(self) -> bool:
        return self.line > 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span()


# Stable codes. The first two digits are the category; tests and docs rely on them, so a
# code is never reused for a different meaning. docs/language.md lists them all.
CATEGORIES = {
    "01": "syntax",
    "02": "names",
    "03": "types and domains",
    "04": "graph",
    "05": "examples",
    "06": "alignment",
    "07": "checks and circuits",
    "08": "files",
}

# Derived from the declared constants in causalspec/codes.py (one place to add a code).
CODES: dict[str, str] = {str(c): c.description for c in codes.ERRORS}
WARNING_CODES: dict[str, str] = {str(c): c.description for c in codes.WARNINGS}


def category_of(code: str) -> str:
    return CATEGORIES.get(code[1:3], "other")


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec. `label` is the short text under the caret."""

    code: str
    message: str
    span: Span = NO_SPAN
    label: str = ""
    help: str | None = None
    notes: tuple[str, ...] = ()
    severity: str = "error"

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", str(self.code))  # a codes.Code is stored as its plain text
        if self.code not in CODES and not self.code.startswith("W"):
            raise ValueError(f"unregistered diagnostic code {self.code}")

    @property
    def category(self) -> str:
        return category_of(self.code)


class DiagnosticSink:
    """Collects diagnostics during analysis so that one pass reports every error."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._warned: set[tuple[str, object]] = set()

    def error(self, code: str, message: str, span: Span = NO_SPAN, label: str = "",
              help: str | None = None, notes: Iterable[str] = ()) -> None:
        self.items.append(Diagnostic(code, message, span, label, help, tuple(notes)))

    def warn(self, code: str, message: str, span: Span = NO_SPAN, label: str = "",
             help: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, label, help, severity="warning"))

    def warn_once(self, key: object, code: str, message: str, span: Span = NO_SPAN, label: str = "",
                  help: str | None = None) -> bool:
        """`warn`, unless a warning with this code and `key` was already given (one warning per
        file read, not one per statement that reads it). Whether it warned."""
        if (code, key) in self._warned:
            return False
        self._warned.add((code, key))
        self.warn(code, message, span, label, help)
        return True

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise SpecError(sorted(self.errors, key=_position_key))


def _position_key(d: Diagnostic) -> tuple:
    return (d.span.file, d.span.line, d.span.column, d.code)


def did_you_mean(name: str, candidates: Iterable[str], known: str | None = None) -> str | None:
    """A 'did you mean' help line for a close candidate. Without one: None, or, when `known`
    names what the candidates are ("variables"), a line listing them (a help never stays empty)."""
    pool = sorted({c for c in candidates if c and c != name})
    hint = _did_you_mean(name, pool)
    if hint is not None or known is None:
        return hint
    if not pool:
        return f"no {known} are declared here"
    shown = ", ".join(f"`{c}`" for c in pool[:8]) + (f" and {len(pool) - 8} more" if len(pool) > 8 else "")
    return f"known {known}: {shown}"


def _did_you_mean(name: str, pool: list[str]) -> str | None:
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"did you mean `{close[0]}`?" if close else None


# ───────────────────────── rendering ─────────────────────────

def render(diagnostics: Sequence[Diagnostic], sources: dict[str, str] | None = None,
           cap: int = 20) -> str:
    """Render diagnostics rustc-style. `sources` maps file name -> text (read lazily otherwise).

    Past `cap` diagnostics the rest are summarised as "... and N more" (the user fixes the
    first ones first; a wall of 300 errors helps nobody).
    """
    sources = dict(sources or {})
    blocks = [render_one(d, sources) for d in diagnostics[:cap]]
    if len(diagnostics) > cap:
        blocks.append(f"... and {len(diagnostics) - cap} more error(s)")
    return "\n\n".join(blocks)


def render_one(d: Diagnostic, sources: dict[str, str]) -> str:
    head = f"{d.severity}[{d.code}]: {d.message}"
    span = d.span
    if not span.known:
        lines = [head]
    else:
        text = _source_text(span.file, sources)
        # Only "\n" ends a line, as in the lexer (splitlines() would also split on form feeds).
        src_lines = text.split("\n") if text is not None else []
        gutter = len(str(span.line))
        pad = " " * gutter
        lines = [head, f"{pad}--> {span}"]
        if 0 < span.line <= len(src_lines):
            src = src_lines[span.line - 1].expandtabs(1)
            start = max(span.column - 1, 0)
            if span.end_line == span.line and span.end_column > span.column:
                width = span.end_column - span.column
            else:
                width = max(len(src.rstrip()) - start, 1)
            caret = " " * start + "^" * max(width, 1)
            lines += [f"{pad} |", f"{span.line} | {src}", f"{pad} | {caret}" + (f" {d.label}" if d.label else "")]
        elif d.label:
            lines.append(f"{pad} = {d.label}")
    pad = " " * (len(str(span.line)) if span.known else 0)
    for note in d.notes:
        lines.append(f"{pad} = note: {note}")
    if d.help:
        lines.append(f"{pad} = help: {d.help}")
    return "\n".join(lines)


def _source_text(file: str, sources: dict[str, str]) -> str | None:
    if file in sources:
        return sources[file]
    try:
        # utf-8-sig: the parser drops a leading byte order mark, so columns on line 1 match
        sources[file] = Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    return sources[file]
