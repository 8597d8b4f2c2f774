"""Files a spec reads from outside its own folder: shown, so a reader sees what a spec reads.

Why: a spec's paths are relative to its folder, but an absolute path or `../` can point
anywhere (`enum from "/etc/hostname"` puts that file's lines into samples and reports).
Such reads are allowed — shared data next to a spec collection is common — but never
silent: analysis warns (E0807, printed by `parse`, `sample`, `check`, …) and every check of
the spec lists them in its notes (`outside_notes`). "Outside" is decided on real paths,
after `..` and symbolic links are resolved, against the spec's (resolved) folder.
"""

from __future__ import annotations

from pathlib import Path

from causalspec.codes import E0807
from causalspec.diagnostics import DiagnosticSink, Span

CODE = E0807


def resolved(path: Path) -> Path:
    """`path` with `..` and symbolic links resolved (it need not exist)."""
    try:
        return Path(path).resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop: keep the absolute spelling
        return Path(path).absolute()


def is_outside(path: Path, base_dir: Path) -> bool:
    """Whether `path` (resolved) lies outside the spec's folder `base_dir` (resolved)."""
    real, root = resolved(path), resolved(base_dir)
    return real != root and root not in real.parents


def note_outside(sink: DiagnosticSink, what: str, written: str, path: Path, base_dir: Path, span: Span) -> None:
    """Warn (E0807) when `path` — the `what` file written `written` in the spec — lies outside
    the spec's folder; once per file (a builder and an encode hook in one `.py` file are one read)."""
    if not is_outside(path, base_dir):
        return
    real = resolved(path)
    shown = f"`{written}`" if Path(written) == real else f"`{written}` ({real})"
    sink.warn_once(real, CODE, f"{what} {shown} is outside the spec's folder", span,
                   "read from outside the spec's folder",
                   help="fine if you meant it; this spec reads that file when it is analysed or checked "
                        "(see docs/security.md)")


def outside_notes(warnings) -> list[str]:
    """One check note per outside read recorded by analysis (its E0807 warnings)."""
    return [f"{w.message} ({w.span})" for w in warnings if w.code == CODE]


__all__ = ["CODE", "is_outside", "note_outside", "outside_notes", "resolved"]
