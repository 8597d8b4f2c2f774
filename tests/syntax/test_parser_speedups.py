"""The parser's speed-ups change nothing a user can see.

`_Positions` replaces lark's PropagatePositions callbacks and `parse_tree` skips the unit
reductions of inlined rules: every subtree of the golden corpus and of a generated model must
be the tree, with exactly the spans, that lark's own `Lark.parse` builds.
`paused_gc` must restore the collector's state, also when parsing fails.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from lark import Lark

from causalspec.diagnostics import SpecError
from causalspec.syntax import parser as P
from causalspec.syntax.gc_pause import paused_gc
from causalspec.testing.large import large_model

OK_DIR = Path(__file__).parent / "ok"


def _spans(tree):
    return [(t.data, t.meta.empty, *(getattr(t.meta, k, None) for k in
             ("line", "column", "end_line", "end_column", "start_pos", "end_pos")))
            for t in tree.iter_subtrees()]


def test_positions_match_lark():
    reference = Lark(P.grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                     propagate_positions=True, maybe_placeholders=False, cache=False)
    texts = [p.read_text(encoding="utf-8") for p in sorted(OK_DIR.glob("*.cspec"))] + [large_model(200)]
    for text in texts:
        # lark's own loop and callbacks (`Lark.parse`): the unit reductions parse_tree skips
        # and the spans _Positions computes must not show
        expected = reference.parse(text)
        assert P.parse_tree(text) == expected
        assert _spans(P.parse_tree(text)) == _spans(expected)
        assert _spans(P.parse_tree(text, reference)) == _spans(expected)


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_gc_restores_the_collector(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with pytest.raises(SpecError):
            P.parse("model M {")
        assert gc.isenabled() is enabled
        with paused_gc():
            assert not gc.isenabled()
            with paused_gc():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def _tokens(tokens):
    return [(t.type, str(t), t.start_pos, t.line, t.column, t.end_line, t.end_column, t.end_pos) for t in tokens]


def _lark_tokens(text):
    """The tokens lark's own contextual lexer hands the parser (driven by lark's loop)."""
    seen = []
    ip = P.lark_parser().parse_interactive(text)
    for tok in ip.iter_parse():
        seen.append(tok)
    return seen


def _our_tokens(text):
    seen = []
    original = P.lex_tokens

    def spy(state):
        for tok in original(state):
            seen.append(tok)
            yield tok
    P.lex_tokens = spy
    try:
        P.parse_tree(text)
    finally:
        P.lex_tokens = original
    return seen


def test_lexer_gives_lark_s_tokens():
    """`lex_tokens` is lark's contextual lexer with less work per token: same types (keywords
    included), values and positions on the corpus, a model with comments and CRLF ends."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(OK_DIR.glob("*.cspec"))] + [
        large_model(200),
        "# head\r\nmodel M {  # open\r\n  input a : bool\r\n\r\n  output o : bool = not a  # end\r\n}\r\n",
    ]
    for text in texts:
        assert _tokens(_our_tokens(text)) == _tokens(_lark_tokens(text))


@pytest.mark.parametrize("text", ["model M {\n  input a : bool\n  output o : bool = a $ b\n}\n",
                                  "model M {\n  input a : bool\n  output o : bool = a\n}\nnetwork n = hf 'x'\n",
                                  "model M {\n  input model : bool\n}\n"])
def test_lexer_errors_are_lark_s(text):
    """A character no terminal matches hands over to lark's lexer: the same exception, at the
    same place, as lark's own parse raises."""
    reference = P.lark_parser()
    try:
        reference.parse(text)
    except Exception as exc:  # noqa: BLE001 - compared below
        expected = (type(exc), getattr(exc, "line", None), getattr(exc, "column", None))
    else:
        expected = None
    try:
        P.parse_tree(text)
    except Exception as exc:  # noqa: BLE001 - compared below
        got = (type(exc), getattr(exc, "line", None), getattr(exc, "column", None))
    else:
        got = None
    assert got == expected


_DEEP = "not " * (P.MAX_NESTING + 5) + "a"  # one `not_op` tree per `not`
_HUGE = "9" * 40  # an integer over 2^62: E0104 from the AST builder


@pytest.mark.parametrize("body, code, line", [
    (f"  output o : bool = {_DEEP}\n", "E0102", 3),
    # the nesting is reported first, wherever the builder would have failed first
    (f"  const K = {_HUGE}\n  output o : bool = {_DEEP}\n", "E0102", 4),
    (f"  output o : bool = {_DEEP}\n  const K = {_HUGE}\n", "E0102", 3),
    (f"  const K = {_HUGE}\n  output o : bool = a\n", "E0104", 3),
])
def test_nesting_limit_comes_before_builder_errors(body, code, line):
    """`AstBuilder.build` checks the depth while it builds: the diagnostics are the ones the
    separate depth pass before building gave."""
    with pytest.raises(SpecError) as info:
        P.parse("model M {\n  input a : bool\n" + body + "}\n", "t.cspec")
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.span.line) == (code, line)


def test_build_is_lark_s_transform():
    from causalspec.syntax.build import AstBuilder

    for text in [p.read_text(encoding="utf-8") for p in sorted(OK_DIR.glob("*.cspec"))] + [large_model(200)]:
        tree = P.parse_tree(text)
        assert AstBuilder("t", text).build(tree, P.MAX_NESTING) == AstBuilder("t", text).transform(tree)
