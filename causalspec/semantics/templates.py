"""Prompt and answer templates: `{placeholder}` scanning, rendering and spans."""


from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from causalspec.diagnostics import NO_SPAN, Span

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Placeholder:
    name: str
    start: int  # offset of `{` in the template's text
    end: int  # offset after `}`


@dataclass(frozen=True)
class RenderedSlot:
    name: str
    occurrence: int  # 1-based, in order of appearance
    start: int  # character offsets in the rendered text
    end: int


@dataclass(frozen=True)
class Rendered:
    text: str
    slots: tuple[RenderedSlot, ...]

    def slot(self, name: str, occurrence: int = 1) -> RenderedSlot:
        for s in self.slots:
            if s.name == name and s.occurrence == occurrence:
                return s
        raise KeyError(f"slot {name!r} occurrence {occurrence} not in the rendered template")


@dataclass(frozen=True)
class Template:
    """A template string split into literal text and `{Slot}` placeholders.

    `{{` and `}}` stand for literal braces. `span` is the string literal's span when it could
    be located exactly (`exact`), else the span of the statement holding it.
    """

    text: str
    parts: tuple[str | Placeholder, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    exact: bool = field(default=False, compare=False, repr=False)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if isinstance(p, Placeholder))

    def count(self, name: str) -> int:
        return self.placeholders.count(name)

    def span_of(self, ph: Placeholder) -> Span:
        return self.sub_span(ph.start, ph.end)

    def sub_span(self, start: int, end: int) -> Span:
        if not self.exact:
            return self.span
        col = self.span.column + 1  # after the opening quote
        return Span(self.span.file, self.span.line, col + start, self.span.line, col + end)

    def render(self, values: Mapping[str, Any]) -> Rendered:
        """Fill the placeholders (bool as true/false, others with str()); slots keep offsets."""
        out: list[str] = []
        slots: list[RenderedSlot] = []
        seen: dict[str, int] = {}
        pos = 0
        for part in self.parts:
            if isinstance(part, str):
                text = part
            else:
                text = format_template_value(values[part.name])
                seen[part.name] = seen.get(part.name, 0) + 1
                slots.append(RenderedSlot(part.name, seen[part.name], pos, pos + len(text)))
            out.append(text)
            pos += len(text)
        return Rendered("".join(out), tuple(slots))


def format_template_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scan_template(text: str) -> tuple[tuple[str | Placeholder, ...], list[tuple[int, int, str, str]]]:
    """Split a template; errors are (start, end, message, help) by character offset."""
    parts: list[str | Placeholder] = []
    errors: list[tuple[int, int, str, str]] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            buf.append(c)
            i += 2
        elif c == "{":
            j = text.find("}", i + 1)
            if j < 0:
                errors.append((i, n, "unclosed `{` in template", "write `{{` for a literal brace"))
                buf.append(text[i:])
                break
            name = text[i + 1:j]
            if not IDENT.match(name):
                errors.append((i, j + 1, f"`{{{name}}}` is not a slot: slots are `{{Name}}`",
                               "write `{{` and `}}` for literal braces"))
            else:
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(Placeholder(name, i, j + 1))
            i = j + 1
        elif c == "}":
            errors.append((i, i + 1, "unmatched `}` in template", "write `}}` for a literal brace"))
            buf.append(c)
            i += 1
        else:
            buf.append(c)
            i += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts), errors
