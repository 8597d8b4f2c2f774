"""Spec text in the canonical layout, comments kept: what `causalspec fmt` writes.

Why not just `print_spec(parse(text))`: comments are not part of the AST, so the printer
cannot print them, and a formatter must never lose user text. The rule here:

* comments between top-level items (a file header, a note above a `check`) are kept where
  they are; runs of blank lines shrink to one, and items are one blank line apart;
* an item with no comment inside it (or after it on its last line) is printed canonically
  (printer.py);
* an item with a comment inside is kept exactly as written (trailing spaces removed): its
  comments have no place in the AST, so reprinting it would lose them.

Before anything is returned, the result is parsed again: it must give the same AST and carry
the same comments, else `FormatError` and the text is left as it was.
"""

from __future__ import annotations

from causalspec.syntax import ast as A
from causalspec.syntax.parser import Comment, comments, parse
from causalspec.syntax.printer import print_item


class FormatError(Exception):
    """The text cannot be formatted without changing it (the message says why)."""


def _gap(lines: list[str]) -> list[str]:
    """The lines between two items (blank or comments): trailing spaces removed, blank runs
    shrunk to one, no blank line at the start (the caller separates items)."""
    out: list[str] = []
    for line in (ln.rstrip() for ln in lines):
        if line or (out and out[-1]):
            out.append(line)
    return out


def _comments_inside(found: list[Comment], first: int, last: int) -> bool:
    return any(first <= c.line <= last for c in found)


def format_text(text: str, file: str = "<string>") -> str:
    """`text` in the canonical layout, comments kept (rules in the module docstring). Raises
    `SpecError` when the text does not parse, `FormatError` when it cannot be formatted."""
    spec = parse(text, file)
    found = comments(text)
    lines = text.splitlines()
    out: list[str] = []
    prev_end = 0  # last line of the previous item (1-based; 0 before the first)
    for item in spec.items:
        first, last = item.span.line, item.span.end_line
        if first <= prev_end:
            raise FormatError(f"{file}:{first}: two items share a line; put each on its own lines first")
        gap = _gap(lines[prev_end:first - 1])
        if out:
            out.append("")
            if gap and not gap[0]:
                gap = gap[1:]
        out.extend(gap)
        if _comments_inside(found, first, last):
            out.extend(ln.rstrip() for ln in lines[first - 1:last])
        else:
            out.extend(print_item(item).split("\n"))
        prev_end = last
    tail = _gap(lines[prev_end:])
    while tail and not tail[-1]:
        tail.pop()
    if tail:
        if out:
            out.append("")
            if not tail[0]:
                tail = tail[1:]
        out.extend(tail)
    result = "\n".join(out) + "\n" if out else ""
    _verify(spec, found, result, file)
    return result


def _verify(spec: A.Spec, found: list[Comment], result: str, file: str) -> None:
    """The formatted text must mean what the original meant and keep every comment."""
    if parse(result, file) != spec:
        raise FormatError(f"{file}: the formatted text would parse to a different spec (a bug in causalspec)")
    if [c.text.rstrip() for c in comments(result)] != [c.text.rstrip() for c in found]:
        raise FormatError(f"{file}: formatting would lose or change a comment (a bug in causalspec)")
