"""syntax/formatter.py: the canonical layout, every comment kept, the meaning unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.diagnostics import SpecError
from causalspec.syntax.formatter import FormatError, format_text
from causalspec.syntax.parser import comments, parse

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "syntax" / "ok").glob("*.cspec")) + sorted((ROOT / "specs").rglob("*.cspec"))

MESSY = """\
# header comment, kept


model M {
  input  A, B : bool ~ uniform
  output O  : bool = A and B
}
# a note above the network, kept
network n = torch "m.py:build"  weights "w.safetensors" {
  encode "m.py:encode"   # a comment inside: this item stays as written
}



# trailing comment at the end
"""


def test_items_without_comments_are_printed_canonically_and_comments_are_kept():
    text = MESSY
    out = format_text(text)
    assert out == """\
# header comment, kept

model M {
  input A, B : bool ~ uniform
  output O : bool = A and B
}

# a note above the network, kept
network n = torch "m.py:build"  weights "w.safetensors" {
  encode "m.py:encode"   # a comment inside: this item stays as written
}

# trailing comment at the end
"""
    assert format_text(out) == out  # idempotent
    assert [c.text for c in comments(out)] == [c.text for c in comments(text)]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_corpus_formats_to_the_same_spec_with_every_comment(path):
    text = path.read_text(encoding="utf-8")
    out = format_text(text, str(path))
    assert parse(out) == parse(text)
    assert [c.text.rstrip() for c in comments(out)] == [c.text.rstrip() for c in comments(text)]
    assert format_text(out, str(path)) == out


def test_a_hash_inside_a_string_is_not_a_comment():
    text = 'model M {\n  domain D = enum from "a#b.txt"\n  input  A : D ~ uniform\n  output O : D = A\n}\n'
    assert comments(text) == []
    assert format_text(text) == text.replace("input  A", "input A")


def test_text_that_does_not_parse_is_a_spec_error():
    with pytest.raises(SpecError):
        format_text("model M {\n")


def test_two_items_on_one_line_with_a_comment_is_refused_not_mangled():
    text = 'model M { input A : bool ~ uniform  output O : bool = A } model N { input B : bool ~ uniform\n' \
           '  output P : bool = B  # note\n}\n'
    with pytest.raises(FormatError, match="share a line"):
        format_text(text)
