"""Parse spec text into the AST. The only module that imports lark's parser.

Why LALR with a contextual lexer: it is fast (a 1,000-variable spec parses in well under
a second), it reports the exact token where the text stops making sense, and keywords stay
usable as names wherever a keyword cannot appear.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.parsers.lalr_analysis import Shift

from causalspec.diagnostics import Diagnostic, SpecError, Span
from causalspec.syntax import ast as A
from causalspec.syntax.build import AstBuilder

GRAMMAR_NAME = "causalspec.lark"

# Deeper parse trees are refused: the AST builder, the analyser and the printer recurse over
# the tree, and a 1,000-term `or` chain would otherwise end in a RecursionError.
MAX_NESTING = 200


def grammar_path() -> Path:
    """The grammar file: shipped inside the wheel, or `grammar/` of a source checkout."""
    packaged = resources.files("causalspec") / "_grammar" / GRAMMAR_NAME
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "grammar" / GRAMMAR_NAME
    if source.is_file():
        return source
    raise FileNotFoundError(
        f"causalspec grammar not found (looked in {packaged} and {source}); the installation is broken"
    )


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=False, cache=False)


_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_tree(text: str, parser: Lark | None = None) -> Tree:
    """lark's LALR loop (as `Lark.parse`), with one addition: a keyword token that the parser
    cannot shift is retried as a NAME.

    Why: LALR merges states with the same core, so the contextual lexer may offer a keyword
    where only a name can follow — after `x -> embed @ END`, an alignment line `answer -> …`
    would lex `answer` as the network keyword. Keywords are names wherever the keyword itself
    cannot appear; this only turns what would be a syntax error into a parse.
    """
    ip = (parser or lark_parser()).parse_interactive(text)
    state = ip.parser_state
    token = None
    try:
        for token in state.lexer.lex(state):
            if (token.type != "NAME" and _KEYWORD.match(token) and not _shifts(state, token.type)
                    and _shifts(state, "NAME")):
                token = Token.new_borrow_pos("NAME", str(token), token)
            state.feed_token(token)
        end = Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)
        return state.feed_token(end, True)
    except UnexpectedInput as exc:
        exc.interactive_parser = ip
        raise


def _shifts(state, token_type: str) -> bool:
    """Would the parser, after its reductions, shift a token of this type? (No side effects.)"""
    states = state.parse_conf.states
    stack = list(state.state_stack)
    while True:
        action = states[stack[-1]].get(token_type)
        if action is None:
            return False
        kind, arg = action
        if kind is Shift:
            return True
        if arg.expansion:
            del stack[-len(arg.expansion):]
        stack.append(states[stack[-1]][arg.origin.name][1])


def parse(text: str, file: str = "<string>") -> A.Spec:
    """Parse spec text; raise `SpecError` with one located syntax diagnostic on failure."""
    try:
        tree = parse_tree(text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_diagnostic(exc, text, file)]) from None
    deep = _too_deep(tree)
    if deep is not None:
        meta = deep.meta
        raise SpecError([Diagnostic(
            "E0102", f"expression nested too deeply (more than {MAX_NESTING} levels)",
            Span(file, meta.line, meta.column, meta.end_line, meta.end_column), "nested too deeply here",
            help="split it into intermediate `var`s, or use a table")])
    try:
        return AstBuilder(file, text).transform(tree)
    except VisitError as exc:  # lark wraps what a builder method raises (E0104 on a bad string)
        if isinstance(exc.orig_exc, SpecError):
            raise exc.orig_exc from None
        raise


def _too_deep(tree: Tree) -> Tree | None:
    """The first (by position) subtree deeper than MAX_NESTING, or None. Iterative."""
    found: list[Tree] = []
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING and not getattr(node.meta, "empty", True):
            found.append(node)
            continue
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return min(found, key=lambda t: (t.meta.line, t.meta.column)) if found else None


def parse_file(path: str | Path) -> A.Spec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Diagnostic("E0801", f"spec file `{path}` not found",
                                    help="check the path; spec files usually end in .cspec")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Diagnostic("E0802", f"cannot read spec file `{path}`: {exc}")]) from None
    return parse(text, str(path))


@dataclass(frozen=True)
class Comment:
    """A `#` comment of spec text: the grammar ignores comments, so the AST has none, and
    `causalspec fmt` needs them to keep them (syntax/formatter.py)."""

    line: int
    column: int
    text: str


def comments(text: str) -> list[Comment]:
    """The comments of spec text, in order. Call it on text that parses: a `#` inside a
    string is part of the string (strings never span lines), which the lexer knows."""
    return [Comment(tok.line, tok.column, str(tok)) for tok in lark_parser().lex(text, dont_ignore=True)
            if tok.type == "COMMENT"]


# ───────────────────────── friendly syntax errors ─────────────────────────

_FRIENDLY = {
    "NAME": "a name", "INT": "an integer", "SIGNED_NUMBER": "a number", "STRING": "a string",
    "$END": "end of file",
}


def _describe_terminal(name: str) -> str:
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    try:
        term = lark_parser().get_terminal(name)
    except KeyError:
        return name.lower()
    pattern = term.pattern
    if pattern.type == "str":
        return f"`{pattern.value}`"
    return name.lower()


def _expected_list(expected: set[str] | list[str]) -> str:
    items = sorted({_describe_terminal(e) for e in expected})
    if len(items) > 8:
        items = items[:8] + ["…"]
    return ", ".join(items)


def syntax_diagnostic(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        line, col = exc.line, exc.column
        ch = text[exc.pos_in_stream] if 0 <= exc.pos_in_stream < len(text) else "?"
        help_ = None
        if ch == "'":
            help_ = "strings use double quotes: \"…\""
        elif ch == "&":
            help_ = "use `and`"
        elif ch == "|":
            help_ = "use `or`"
        elif ch == "/":
            help_ = "integer division is `//`; `#` starts a comment"
        elif ch == "=" and text[exc.pos_in_stream:exc.pos_in_stream + 2] == "=>":
            help_ = "`=>` separates an example's inputs from its expected values"
        return Diagnostic("E0101", f"unexpected character `{ch}`", Span(file, line, col, line, col + 1),
                          "not allowed here", help=help_ or _expected_help(exc.allowed))
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        # Lines as lark counts them (only "\n" ends a line); a final newline is not a new line.
        lines = text.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        line, col = len(lines), len(lines[-1]) + 1
        expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or []
        return Diagnostic("E0103", "unexpected end of file", Span(file, line, col, line, col + 1),
                          "the spec ends here",
                          help=("a `}` is missing to close the block" if "RBRACE" in expected
                                else _expected_help(expected)))
    assert isinstance(exc, UnexpectedToken)
    tok: Token = exc.token
    span = Span(file, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + max(len(str(tok)), 1))
    expected = exc.accepts or exc.expected
    return Diagnostic("E0102", f"unexpected {_token_text(tok)}", span, "not expected here",
                      help=_token_help(tok, expected) or _expected_help(expected))


def _token_text(tok: Token) -> str:
    return f"`{tok}`" if str(tok) else tok.type.lower()


def _expected_help(expected) -> str | None:
    if not expected:
        return None
    return f"expected {_expected_list(expected)}"


def _token_help(tok: Token, expected) -> str | None:
    value = str(tok)
    names = set(expected or ())
    if value == "=" and "EQUAL" not in names:
        return "use `==` to compare; `=` only assigns in declarations and examples"
    if value in {"&&", "&"}:
        return "use `and`"
    if value in {"||", "|"} and "VBAR" not in names:
        return "use `or`"
    if tok.type != "NAME" and "NAME" in names and value.isidentifier():
        return f"`{value}` is a keyword here; choose another name"
    return None
