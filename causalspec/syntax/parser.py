"""Parse spec text into the AST. The only module that imports lark's parser.

Why LALR with a contextual lexer: it is fast (a 1,000-variable spec parses in well under
a second), it reports the exact token where the text stops making sense, and keywords stay
usable as names wherever a keyword cannot appear.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from causalspec.diagnostics import Diagnostic, SpecError, Span
from causalspec.syntax import ast as A
from causalspec.syntax.build import AstBuilder

GRAMMAR_NAME = "causalspec.lark"


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


def parse(text: str, file: str = "<string>") -> A.Spec:
    """Parse spec text; raise `SpecError` with one located syntax diagnostic on failure."""
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_diagnostic(exc, text, file)]) from None
    return AstBuilder(file, text).transform(tree)


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
        lines = text.splitlines() or [""]
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
