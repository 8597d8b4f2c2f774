"""Text input (issue 10): byte order marks, invisible characters, `//` comments, unclosed
blocks, and the helps of `int` without a range and an input written with `=`.

The bad corpus (tests/syntax/bad/t10_*.cspec) pins code, span and help of each case; the
tests here cover what a corpus file cannot state: a BOM read from disk, the exact code
point names, where a diagnostic points relative to the `{`, and the parser's keyword retry.
"""

from __future__ import annotations

import pytest
from lark.exceptions import UnexpectedToken
from lark.lexer import Token

from causalspec.diagnostics import SpecError, Span, render
from causalspec.semantics.analyse import load, load_text
from causalspec.syntax.parser import parse, syntax_diagnostic

VALID = "model M {\n  input a : bool\n  output o : bool = a\n}\n"


def first(text: str):
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec")
    return info.value.diagnostics[0]


def test_bom_file_parses_and_columns_ignore_it(tmp_path):
    path = tmp_path / "bom.cspec"
    path.write_bytes(b"\xef\xbb\xbf" + b"model M { input a : bool  output o : bool = a and zz }\n")
    with pytest.raises(SpecError) as info:
        load(path)
    d = info.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.column) == ("E0203", 1, 51)  # counted as an editor shows it
    out = render([d])
    assert "1 | model M {" in out and out.splitlines()[4].index("^") - 4 == 50
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert list(load(path).models["M"].outputs) == ["o"]


@pytest.mark.parametrize("char,name,fix", [
    ("\u00a0", "U+00A0 NO-BREAK SPACE", "replace it with a plain space"),
    ("\u200b", "U+200B ZERO WIDTH SPACE", "delete it"),
    ("\u200c", "U+200C ZERO WIDTH NON-JOINER", "delete it"),
    ("\u200d", "U+200D ZERO WIDTH JOINER", "delete it"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE", "delete it"),
    ("\u2009", "U+2009 THIN SPACE", "replace it with a plain space"),
    ("\u2060", "U+2060 WORD JOINER", "delete it"),
])
def test_invisible_character_is_named(char, name, fix):
    d = first(f"model M {{\n  input a :{char}bool\n  output o : bool = a\n}}\n")
    assert d.code == "E0105"
    assert name in d.message
    assert d.help.startswith(fix)
    assert (d.span.line, d.span.column, d.span.end_column) == (2, 12, 13)


def test_invisible_characters_inside_strings_and_comments_are_kept():
    text = 'model M {  # a\u00a0comment\n  domain D = enum { "a\u200bb", c }\n  input a : D\n  output o : D = a\n}\n'
    model = load_text(text, "t.cspec").models["M"]
    assert model.domain("a").values == ("a\u200bb", "c")


@pytest.mark.parametrize("text,line,col", [
    ("// header\n" + VALID, 1, 1),
    ("model M {\n  input a : bool // the input\n  output o : bool = a\n}\n", 2, 18),
    ("model M {\n  input a : int 0..3\n  output o : int 0..3 = a // same value\n}\n", 3, 27),
])
def test_slash_comment_points_at_the_slashes(text, line, col):
    d = first(text)
    assert "comments start with #" in d.message
    assert (d.span.line, d.span.column, d.span.end_column) == (line, col, col + 2)


def test_integer_division_is_still_division():
    model = load_text("model M {\n  input a : int 0..8\n  output o : int 0..4 = a // 2\n}\n", "t.cspec").models["M"]
    assert model.variables["o"].parents == ("a",)


@pytest.mark.parametrize("text", [
    "model M {\n  input a : int 0..3\n  output o : int 0..3 = a // 2 +\n",
    "model M {\n  input a : int 0..3\n  output o : int 0..3 = a // 2 )\n}\n",
])
def test_a_division_followed_by_another_mistake_is_not_called_a_comment(text):
    assert "comment" not in first(text).message


def test_slash_inside_a_string_is_not_a_comment():
    d = first('network n = hf "http://x" { prompt "a // b" answer x }\n')
    assert "comment" not in d.message and d.code == "E0102"


@pytest.mark.parametrize("text,line,col,where", [
    ("model M {\n  input a : bool\n  output o : bool = a\n", 1, 9, "the file ends inside it"),
    ("model M {\n  input a : bool\n  output o : bool = a\n\nnetwork n = hf \"gpt2\"\n", 1, 9, "line 5"),
    ("model M {\n  domain D = enum { x, y\n  input a : D\n  output o : bool = a == x\n}\n", 2, 19, "line 3"),
])
def test_unclosed_block_is_reported_at_its_brace(text, line, col, where):
    d = first(text)
    assert d.code == "E0106"
    assert (d.span.line, d.span.column) == (line, col)
    assert d.label == "this block is never closed"
    assert where in d.message


def test_balanced_braces_keep_the_token_level_error():
    d = first("model M {\n  input a : bool\n  output o : bool = a b\n}\n")
    assert (d.code, d.span.line, d.span.column) == ("E0102", 3, 23)


@pytest.mark.parametrize("text,fragment", [
    ("model M {\n  input a : int\n  output o : bool = a > 1\n}\n", "`int` needs a range"),
    ("model M {\n  input a : int 0..3\n  var v : int = a\n  output o : bool = v > 1\n}\n", "`int` needs a range"),
    ("model M {\n  input a : bool = true\n  output o : bool = a\n}\n", "an input has no `= value`"),
    ("model M {\n  input a, b : int 0..3\n  output o : bool = a = b\n}\n", "use `==` to compare"),
])
def test_equals_and_int_helps_fit_the_mistake(text, fragment):
    d = first(text)
    assert d.code == "E0102" and fragment in d.help


def test_prompt_without_placeholders_is_a_warning():
    text = ("model M {\n  input a : bool\n  output o : bool = a\n}\n"
            'network n = hf "gpt2" {\n  prompt "always the same"\n  answer " {o}"\n}\n'
            "align M to n as A {\n  o -> output\n}\n")
    ir = load_text(text, "t.cspec")
    (w,) = ir.warnings
    assert (w.code, w.severity, w.span.line, w.span.column) == ("W0601", "warning", 6, 10)
    assert "placeholder" in w.message and w.help
    ir = load_text(text.replace("always the same", "{a} is"), "t.cspec")
    assert not ir.warnings


def test_keyword_retry_still_works_on_a_deep_stack():
    """`_shifts` simulates reductions on a view of the parser's stack; inside deeply nested
    parentheses a keyword that is a name must still parse as one."""
    depth = 150
    spec = parse("model M {\n  input sample : int 0..3\n  output o : bool = " + "(" * depth + "sample"
                 + ")" * depth + " > 1\n}\n")
    assert spec.items[0].body[0].names[0].text == "sample"


def test_a_bang_alone_gets_the_negation_help_at_its_column():
    d = first("model M {\n  input a : bool\n  output o : bool = !a\n}\n")
    assert (d.code, d.span.line, d.span.column) == ("E0101", 3, 21)
    assert d.help == "use `not` for negation (`!=` compares)"


def test_an_unexpected_token_without_a_position_gets_the_unknown_span():
    # lark's lexer positions every token; one built by hand has none: the unknown span, not a crash
    exc = UnexpectedToken(Token("NAME", "oops"), {"LBRACE"})
    d = syntax_diagnostic(exc, "model M\n", "f.cspec")
    assert (d.code, d.message, d.span) == ("E0102", "unexpected `oops`", Span("f.cspec"))
    assert not d.span.known and d.help == "expected `{`"
