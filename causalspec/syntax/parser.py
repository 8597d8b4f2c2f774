"""Parse spec text into the AST. The only module that imports lark's parser.

Why LALR with a contextual lexer: it is fast (a 1,000-variable spec parses in well under
a second), it reports the exact token where the text stops making sense, and keywords stay
usable as names wherever a keyword cannot appear.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import causalspec.syntax.lark_import  # noqa: F401  (first: lark without `regex`)
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.grammar import Rule
from lark.lexer import UnlessCallback
from lark.parse_tree_builder import PropagatePositions
from lark.parsers.lalr_analysis import Shift

from causalspec.codes import E0101, E0102, E0103, E0105, E0106, E0801, E0802
from causalspec.diagnostics import Diagnostic, Span, SpecError
from causalspec.syntax import ast as A
from causalspec.syntax.build import AstBuilder, TooDeep
from causalspec.syntax.gc_pause import paused_gc
from causalspec.syntax.grammar_cache import cached_lalr

if TYPE_CHECKING:
    from importlib.abc import Traversable

GRAMMAR_NAME = "causalspec.lark"

# Deeper parse trees are refused: the AST builder, the analyser and the printer recurse over
# the tree, and a 1,000-term `or` chain would otherwise end in a RecursionError.
MAX_NESTING = 200

BOM = "\ufeff"


def grammar_path() -> Path:
    """The grammar file: shipped inside the wheel, or `grammar/` of a source checkout.

    The package folder is where `importlib.resources.files("causalspec")` points for a
    package on disk; importlib.resources (~5 ms to import and ask) is only asked for a
    package imported from elsewhere (a zip)."""
    package = Path(__file__).parents[1]
    if package.is_dir():
        packaged: Path | Traversable = package / "_grammar" / GRAMMAR_NAME
    else:
        from importlib import resources

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
    # the LALR tables come from the user's cache folder when a valid entry exists (see
    # grammar_cache: keyed by the grammar's hash and lark's version, never trusted if corrupt)
    parser = cached_lalr(grammar_path().read_text(encoding="utf-8"),
                         dict(parser="lalr", lexer="contextual", propagate_positions=True,
                              maybe_placeholders=False))
    # lark internals: a lark whose layout differs keeps its own (slower, equivalent) callbacks
    callbacks = getattr(getattr(getattr(parser.parser, "parser", None), "parser", None), "callbacks", None)
    if callbacks:
        for rule, callback in callbacks.items():
            if type(callback) is PropagatePositions and getattr(callback, "node_filter", None) is None:
                callbacks[rule] = _Positions(callback.node_builder)
    return parser


class _Positions:
    """lark's PropagatePositions, computing the same spans with fewer lookups.

    Why: every reduction — including the ~8 unit reductions from an atom up to `expr` — runs
    this, and lark's version asks each token for `container_*` attributes a token never has
    (a failed slot lookup per attribute); it was a third of the time of parsing a
    10,000-variable spec. The rule is lark's: a node starts at its first child's container
    and ends at its last child's container; an inlined rule (`?rule`) keeps the meta it has
    and records the container it was inlined from.
    """

    __slots__ = ("node_builder",)

    def __init__(self, node_builder):
        self.node_builder = node_builder

    def __call__(self, children):
        res = self.node_builder(children)
        if not isinstance(res, Tree):
            return res
        if len(children) == 1 and res is children[0]:
            # an inlined `?rule` over one tree: its first and last child is the tree itself,
            # so the rule below would write back the spans and containers it already holds
            known = res._meta.__dict__ if res._meta is not None else {}
            if "container_line" in known and "container_end_line" in known:
                return res
        first = _first_meta(children)
        if first is None:  # then no child has a position at either end
            return res
        meta = res.meta
        known = meta.__dict__
        if isinstance(first, Token):
            line, column, pos = first.line, first.column, first.start_pos
        else:
            d = first.__dict__
            line = d.get("container_line", first.line)
            column = d.get("container_column", first.column)
            pos = d.get("container_start_pos", first.start_pos)
        if "line" not in known:
            meta.line, meta.column, meta.start_pos, meta.empty = line, column, pos, False
        meta.container_line, meta.container_column, meta.container_start_pos = line, column, pos
        last = _first_meta(reversed(children))
        if isinstance(last, Token):
            line, column, pos = last.end_line, last.end_column, last.end_pos
        else:
            d = last.__dict__
            line = d.get("container_end_line", last.end_line)
            column = d.get("container_end_column", last.end_column)
            pos = d.get("container_end_pos", last.end_pos)
        if "end_line" not in known:
            meta.end_line, meta.end_column, meta.end_pos, meta.empty = line, column, pos, False
        meta.container_end_line, meta.container_end_column, meta.container_end_pos = line, column, pos
        return res


def _first_meta(children):
    """The first child with a position (a non-empty tree's meta, or a token), as lark's
    PropagatePositions._pp_get_meta."""
    for c in children:
        if isinstance(c, Tree):
            meta = c._meta
            if meta is not None and not meta.empty:
                return meta
        elif isinstance(c, Token):
            return c
        elif hasattr(c, "__lark_meta__"):
            return c.__lark_meta__()
    return None


_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_tree(text: str, parser: Lark | None = None) -> Tree:
    """lark's LALR loop (as `Lark.parse`), with two changes that a tree never shows:

    - a keyword token that the parser cannot shift is retried as a NAME. Why: LALR merges
      states with the same core, so the contextual lexer may offer a keyword where only a
      name can follow — after `x -> embed @ END`, an alignment line `answer -> …` would lex
      `answer` as the network keyword. Keywords are names wherever the keyword itself cannot
      appear; this only turns what would be a syntax error into a parse.
    - a unit reduction of an inlined rule (`?sum: product`, the ~8 steps from an atom up to
      `expr`) only replaces the top state: lark's callback for it returns its one child
      unchanged (see `_rule_actions`), and it was a third of all reductions.

    Errors are lark's own `UnexpectedToken`, raised from the same state as `feed_token`
    would raise them (the parser state's stacks are the ones this loop works on).
    """
    lark = parser or lark_parser()
    ip = lark.parse_interactive(text)
    state = ip.parser_state
    conf = state.parse_conf
    states = conf.states
    callbacks = conf.callbacks
    actions = _rule_actions(lark, callbacks)
    stack = state.state_stack
    values = state.value_stack
    token = None
    try:
        for token in lex_tokens(state):
            ttype = token.type
            action = states[stack[-1]].get(ttype)
            # (a state that has no action on NAME cannot shift one, after no reduction at all:
            # the usual case — a keyword that ends an expression — costs no simulation)
            if (not (action is not None and action[0] is Shift) and ttype != "NAME"
                    and "NAME" in states[stack[-1]] and _KEYWORD.match(token)
                    and not _shifts(state, ttype) and _shifts(state, "NAME")):
                token = Token.new_borrow_pos("NAME", str(token), token)
                ttype = "NAME"
            # lark's ParserState.feed_token for one (non-final) token, inlined
            while True:
                row = states[stack[-1]]
                action = row.get(ttype)
                if action is None:
                    expected = {s for s in row.keys() if s.isupper()}
                    raise UnexpectedToken(token, expected, state=state, interactive_parser=None)
                kind, arg = action
                if kind is Shift:
                    stack.append(arg)
                    values.append(token if ttype not in callbacks else callbacks[ttype](token))
                    break
                size, origin, callback = actions[arg]
                if callback is None:  # a unit `?rule`: its value is its child's
                    stack[-1] = states[stack[-2]][origin][1]
                    continue
                if size:
                    children = values[-size:]
                    del stack[-size:]
                    del values[-size:]
                else:
                    children = []
                stack.append(states[stack[-1]][origin][1])
                values.append(callback(children))
        end = Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)
        return state.feed_token(end, True)
    except UnexpectedInput as exc:
        exc.interactive_parser = ip
        raise


def lex_tokens(state):
    """The tokens of lark's contextual lexer (`state.lexer.lex(state)`), made the same way
    with less work per token: lark's `BasicLexer.next_token` loop with the line counter in
    locals, the token built in one call, and the keyword check of a NAME (lark's
    `UnlessCallback`, a regex per name) remembered per lexer and spelling.

    Anything but a plain token — no terminal matches (a syntax error), an ignored terminal
    with a callback, a lark whose internals differ — hands over to lark's own `lex` from the
    same position, so every error is lark's, raised as lark raises it.
    """
    thread = state.lexer
    lexer_state = thread.state
    contextual = thread.lexer
    lexers = getattr(contextual, "lexers", None)
    text_slice = lexer_state.text
    ctr = lexer_state.line_ctr
    if lexers is None or getattr(text_slice, "start", 0) != 0 or ctr.newline_char != "\n":
        yield from thread.lex(state)
        return
    text, end = text_slice.text, text_slice.end
    pos, line, line_start = ctr.char_pos, ctr.line, ctr.line_start_pos
    stack = state.state_stack
    plans: dict[Any, Any] = {}
    last = lexer_state.last_token
    handed_over = False
    try:
        while pos < end:
            lexer = lexers[stack[-1]]
            plan = plans.get(id(lexer))
            if plan is None:
                plan = plans[id(lexer)] = _lexer_plan(lexer)
                if plan is None:
                    break
            mres, ignore, newline_types, callbacks, keywords = plan
            for mre in mres:
                m = mre.match(text, pos, end)
                if m is not None:
                    break
            else:
                break  # a syntax error: lark's lex raises it
            value = m.group(0)
            type_ = m.lastgroup
            if type_ in ignore:
                if type_ in callbacks:
                    break  # an ignored token with a callback: lark's way
                if type_ in newline_types:
                    newlines = value.count("\n")
                    if newlines:
                        line += newlines
                        line_start = pos + value.rindex("\n") + 1
                pos += len(value)
                continue
            start, start_line, column = pos, line, pos - line_start + 1
            if type_ in newline_types:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if type_ in callbacks:
                memo = keywords.get(type_)
                if memo is not None:
                    kind = memo.get(value)
                    if kind is None:
                        probe = Token(type_, value, start, start_line, column)
                        kind = memo[value] = callbacks[type_](probe).type
                    type_ = kind
                    token = Token(type_, value, start, start_line, column, line, pos - line_start + 1, pos)
                else:
                    token = callbacks[type_](Token(type_, value, start, start_line, column, line,
                                                   pos - line_start + 1, pos))
                    if not isinstance(token, Token):
                        pos, line, line_start = start, start_line, start - column + 1
                        break  # lark raises its LexError for this callback
            else:
                token = Token(type_, value, start, start_line, column, line, pos - line_start + 1, pos)
            last = token
            yield token
        else:
            return
        handed_over = True
    finally:
        ctr.char_pos, ctr.line, ctr.line_start_pos = pos, line, line_start
        ctr.column = pos - line_start + 1
        lexer_state.last_token = last
    if handed_over:
        yield from contextual.lex(lexer_state, state)


def _lexer_plan(lexer):
    """What `lex_tokens` needs of one of lark's per-state lexers, or None if its internals differ."""
    try:
        mres = list(lexer.scanner._mres)
        ignore, newline_types, callbacks = lexer.ignore_types, lexer.newline_types, lexer.callback
    except AttributeError:
        return None
    # lark's keyword check: a NAME that spells a keyword this state accepts becomes it. It
    # depends on the spelling only, so each spelling is checked once per lexer.
    keywords: dict[str, dict[str, Any]] = {name: {} for name, cb in callbacks.items()
                                           if type(cb) is UnlessCallback}
    return mres, ignore, newline_types, callbacks, keywords


_ACTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _rule_actions(lark: Lark, callbacks) -> dict:
    """rule -> (length of its expansion, its name, its callback or None for a unit rule).

    A unit rule is an unaliased alternative of a `?rule` with one symbol that the child
    filter keeps (a rule, or a named terminal) and does not splice (`_rule`): lark's chain
    (ExpandSingleChild inside the position callback) returns that one child, and the
    position callback leaves it as it is — a tree already carries the container positions
    of its own rule, a token carries none. tests/syntax/test_parser_speedups.py checks the
    trees and every span against lark's own loop.
    """
    cached = _ACTIONS.get(lark)
    if cached is not None and cached[0] is callbacks:
        return cached[1]
    actions = {}
    for rule, callback in callbacks.items():
        if not isinstance(rule, Rule):
            continue
        expansion = rule.expansion
        unit = (len(expansion) == 1 and rule.options.expand1 and not rule.alias
                and not rule.options.empty_indices
                and not (expansion[0].is_term and getattr(expansion[0], "filter_out", False))
                and not (not expansion[0].is_term and expansion[0].name.startswith("_")))
        actions[rule] = (len(expansion), rule.origin.name, None if unit else callback)
    _ACTIONS[lark] = (callbacks, actions)
    return actions


def _shifts(state, token_type: str) -> bool:
    """Would the parser, after its reductions, shift a token of this type? (No side effects.)

    The reductions are simulated on a view of the real stack: `depth` says how much of it is
    still in place and `pushed` holds the states the simulation put on top, so a query costs
    the reductions it walks, not a copy of the whole stack (which made a deep stack — a long
    spec — quadratic, one copy per keyword).
    """
    states = state.parse_conf.states
    stack = state.state_stack
    depth = len(stack)  # stack[:depth] is untouched by the simulated reductions
    pushed: list = []
    while True:
        top = pushed[-1] if pushed else stack[depth - 1]
        action = states[top].get(token_type)
        if action is None:
            return False
        kind, arg = action
        if kind is Shift:
            return True
        pop = len(arg.expansion)
        if pop:
            dropped = min(pop, len(pushed))
            if dropped:
                del pushed[-dropped:]
            depth -= pop - dropped
        top = pushed[-1] if pushed else stack[depth - 1]
        pushed.append(states[top][arg.origin.name][1])


def parse(text: str, file: str = "<string>") -> A.Spec:
    """Parse spec text; raise `SpecError` with one located syntax diagnostic on failure.

    A UTF-8 byte order mark at the start (editors on Windows write one) is dropped; columns
    on line 1 are then counted without it, as an editor shows them."""
    if text.startswith(BOM):
        text = text[1:]
    with paused_gc():
        return _parse(text, file)


def _parse(text: str, file: str) -> A.Spec:
    try:
        tree = parse_tree(text)
    except UnexpectedInput as exc:
        raise SpecError([syntax_diagnostic(exc, text, file)]) from None
    try:
        return AstBuilder(file, text).build(tree, MAX_NESTING)
    except TooDeep:
        pass  # the exact diagnostic below; `build` stops at the first tree below the limit
    except VisitError as exc:  # lark's wrapper of what a builder method raises
        # (E0104 on a bad string): a too-deep expression is reported first, as it was when
        # the depth was checked before building
        if _too_deep(tree) is None:
            if isinstance(exc.orig_exc, SpecError):
                raise exc.orig_exc from None
            raise
    deep = _too_deep(tree)
    if deep is not None:
        meta = deep.meta
        raise SpecError([Diagnostic(
            E0102, f"expression nested too deeply (more than {MAX_NESTING} levels)",
            Span(file, meta.line, meta.column, meta.end_line, meta.end_column), "nested too deeply here",
            help="split it into intermediate `var`s, or use a table")])
    try:  # trees below the limit that are all empty (no positions): lark's own walk
        return AstBuilder(file, text).transform(tree)
    except VisitError as exc:
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
        raise SpecError([Diagnostic(E0801, f"spec file `{path}` not found",
                                    help=_missing_spec_help(path))]) from None
    except IsADirectoryError:
        specs = sorted(path.glob("*.cspec"))
        listing = f"it holds {len(specs)}: `{specs[0]}`{', …' if len(specs) > 1 else ''}" if specs else \
            "it holds no .cspec file"
        raise SpecError([Diagnostic(E0802, f"spec file `{path}` is a folder",
                                    help=f"name the spec files, e.g. `{path / '*.cspec'}` ({listing})")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Diagnostic(E0802, f"cannot read spec file `{path}`: {exc}",
                                    help="a spec file is UTF-8 text; check the path and its permissions "
                                         "(re-save it as UTF-8 if it was written in another encoding)")]) from None
    return parse(text, str(path))


def _missing_spec_help(path: Path) -> str:
    """The help of a spec file that is not there: the closest file name in its folder, if any."""
    try:
        names = sorted(p.name for p in path.parent.iterdir() if p.is_file())
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{path.parent / close[0]}`?"
    return "check the path; spec files usually end in .cspec"


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
    text = text[len(BOM):] if text.startswith(BOM) else text  # as parsing does: columns ignore a BOM
    found = []
    for tok in lark_parser().lex(text, dont_ignore=True):
        if tok.type == "COMMENT":
            # lark's lexer positions every token it makes (only a Token built by hand lacks one)
            assert tok.line is not None and tok.column is not None
            found.append(Comment(tok.line, tok.column, str(tok)))
    return found


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
    """The located diagnostic for a parse error, with the help line that fits the mistake.

    The checks run from the most specific cause to the most general: an invisible character,
    a `//` comment, a block left open (reported at its `{`), then the token-level helps."""
    offset = _error_offset(exc, text)
    slashes = _comment_slashes(text, offset)
    if slashes is not None and not _is_invisible(_char_at(text, offset)):
        return _slash_comment(text, file, slashes)
    expected = set(getattr(exc, "accepts", None) or getattr(exc, "expected", None) or ())
    if isinstance(exc, UnexpectedCharacters):
        line, col = exc.line, exc.column
        ch = _char_at(text, offset) or "?"  # offset: where the lexer stopped (_error_offset)
        if _is_invisible(ch):
            return _invisible(ch, file, line, col)
        help_ = None
        if ch == "'":
            help_ = "strings use double quotes: \"…\""
        elif ch in "\u201c\u201d\u201e\u2033":
            help_ = "use straight double quotes \"…\" (an editor or word processor turned them into curly quotes)"
        elif ch in "\u2018\u2019":
            help_ = "strings use straight double quotes: \"…\""
        elif ch == "&":
            help_ = "use `and`"
        elif ch == "|":
            help_ = "use `or`"
        elif ch == "/":
            help_ = "integer division is `//`; `#` starts a comment"
        elif ch == "=" and text[offset:offset + 2] == "=>":
            help_ = "`=>` separates an example's inputs from its expected values"
        elif ch == ";":
            help_ = "statements need no `;`: end the line instead"
        elif ch == "!" and text[offset:offset + 2] != "!=":
            help_ = "use `not` for negation (`!=` compares)"
        if help_ is None:
            unclosed = _unclosed_block(exc, text, file, expected, offset)
            if unclosed is not None:
                return unclosed
        return Diagnostic(E0101, f"unexpected character `{ch}`", Span(file, line, col, line, col + 1),
                          "not allowed here", help=help_ or _expected_help(exc.allowed) or _GENERIC_HELP)
    unclosed = _unclosed_block(exc, text, file, expected, offset)
    if unclosed is not None:
        return unclosed
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        # Lines as lark counts them (only "\n" ends a line); a final newline is not a new line.
        lines = text.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        line, col = len(lines), len(lines[-1]) + 1
        return Diagnostic(E0103, "unexpected end of file", Span(file, line, col, line, col + 1),
                          "the spec ends here",
                          help=_expected_help(expected) or "the spec stops in the middle of a statement; "
                                                           "finish it or delete it")
    assert isinstance(exc, UnexpectedToken)
    tok: Token = exc.token
    return Diagnostic(E0102, f"unexpected {_token_text(tok)}", _token_span(tok, file), "not expected here",
                      help=_token_help(tok, expected, text) or _expected_help(expected) or _GENERIC_HELP)


_GENERIC_HELP = "see docs/language.md for the statement's syntax"


def _token_span(tok: Token, file: str) -> Span:
    """The span of an unexpected token; one lark's lexer made always has a position, a token
    without one (built by hand) gets the unknown span, as build.token_span gives it."""
    if tok.line is None or tok.column is None:
        return Span(file)
    return Span(file, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + max(len(str(tok)), 1))

# Characters an editor shows as nothing or as a plain space. Outside strings and comments
# they are errors; the diagnostic names the code point, since the user cannot see it.
_SPACE_LIKE = {"\u00a0", "\u1680", "\u202f", "\u205f", "\u3000", "\u0085"} | {chr(c) for c in range(0x2000, 0x200b)}


def _char_at(text: str, offset: int) -> str:
    return text[offset] if 0 <= offset < len(text) else ""


def _is_invisible(ch: str) -> bool:
    """A space other than ASCII's, or a zero-width / format character (U+200B, U+FEFF, …)."""
    if not ch:
        return False
    return ch in _SPACE_LIKE or unicodedata.category(ch) in ("Cf", "Zl", "Zp") or (
        unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\x0c")


def _invisible(ch: str, file: str, line: int, col: int) -> Diagnostic:
    code = f"U+{ord(ch):04X}"
    name = unicodedata.name(ch, "") or {"\u0085": "NEXT LINE"}.get(ch, "CONTROL CHARACTER")
    spacey = ch in _SPACE_LIKE
    return Diagnostic(E0105, f"invisible character {code} {name}", Span(file, line, col, line, col + 1),
                      "invisible character here",
                      help=("replace it with a plain space" if spacey else "delete it")
                      + " (it often comes from copying text out of a web page, a PDF or a chat)")


def _error_offset(exc: UnexpectedInput, text: str) -> int:
    if isinstance(exc, UnexpectedCharacters):
        # lark sets it to the lexer's offset, but declares it on the base class as `pos_in_stream = None`
        pos: int | None = exc.pos_in_stream
        if pos is not None:
            return pos
    tok = getattr(exc, "token", None)
    if tok is not None and tok.type != "$END" and tok.start_pos is not None:
        return tok.start_pos
    return len(text)


def _code_chars(text: str, stop: int):
    """(offset, char) of the text before `stop` outside strings and `#` comments."""
    i = 0
    in_string = in_comment = False
    while i < stop:
        ch = text[i]
        if in_comment:
            in_comment = ch != "\n"
        elif in_string:
            if ch == "\\":
                i += 1
            elif ch in '"\n':
                in_string = False
        elif ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        else:
            yield i, ch
        i += 1


def _comment_slashes(text: str, offset: int) -> int | None:
    """The offset of a `//` (outside strings and comments) on the error's line at or before
    the error, or None: people coming from C, Java or JavaScript write `// comment`."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    if "//" not in text[line_start:min(line_end, offset + 2)]:
        return None
    found = None
    prev = None
    for i, ch in _code_chars(text, min(offset + 2, len(text))):
        if i < line_start:
            continue
        if ch == "/" and prev == i - 1 and text[i - 1] == "/":
            found = i - 1
            break
        prev = i if ch == "/" else None
    if found is None or found == offset:
        return found  # the parser stopped at the `//` itself: it cannot be a division there
    # Past the `//`: a comment reads as `a // word word`, the division parsed one operand and
    # stopped at the next word. Anything else (`a // 2 +` then the end) is a real division.
    between = text[found + 2:offset]
    if re.fullmatch(r"\s*\w+\s+", between) and re.match(r"\w", text[offset:offset + 1]):
        return found
    return None


def _slash_comment(text: str, file: str, at: int) -> Diagnostic:
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return Diagnostic(E0102, "`//` does not start a comment here: comments start with #",
                      Span(file, line, col, line, col + 2), "not a comment",
                      help="write `#` instead of `//` (`//` is integer division in expressions)")


_BLOCK_KEYWORDS = {"model", "network", "align", "check", "circuit", "dataset"}


def _unclosed_block(exc: UnexpectedInput, text: str, file: str, expected: set[str],
                    offset: int) -> Diagnostic | None:
    """A missing `}` is reported at the `{` it leaves open, not where the parser noticed.

    Only when it can be the cause: the file has more `{` than `}`, and a `}` would have been
    accepted at the error (so closing the innermost open block there fixes the parse)."""
    if "RBRACE" not in expected:
        return None
    opened: list[int] = []
    for i, ch in _code_chars(text, offset):
        if ch == "{":
            opened.append(i)
        elif ch == "}" and opened:
            opened.pop()
    if not opened:
        return None
    depth = 0
    for _, ch in _code_chars(text, len(text)):
        depth += (ch == "{") - (ch == "}")
    if depth <= 0:
        return None
    at = opened[-1]
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    head = text[text.rfind("\n", 0, at) + 1:at].strip()
    what = f"`{head} {{`" if head and len(head) <= 60 else "this block"
    tok = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or tok is None or tok.type == "$END" or offset >= len(text):
        where = "the file ends inside it"
        fix = "add `}` after its last statement"
    else:
        eline = text.count("\n", 0, offset) + 1
        shown = str(tok) if tok is not None else _char_at(text, offset)
        where = f"`{shown}` on line {eline} is still inside it"
        fix = f"add `}}` to close it before line {eline}" if eline > line else "add `}` to close it"
    return Diagnostic(E0106, f"{what} is never closed: {where}", Span(file, line, col, line, col + 1),
                      "this block is never closed", help=fix)


def _token_text(tok: Token) -> str:
    return f"`{tok}`" if str(tok) else tok.type.lower()


def _expected_help(expected) -> str | None:
    if not expected:
        return None
    return f"expected {_expected_list(expected)}"


def _token_help(tok: Token, expected, text: str = "") -> str | None:
    value = str(tok)
    names = set(expected or ())
    before = text[:tok.start_pos] if text and tok.start_pos is not None else ""
    recent = " ".join(re.sub(r'#[^"]*$', "", line) for line in before.split("\n")[-3:]).split()
    prev = recent[-1] if recent else ""  # the word before the token, comments left out
    line = before[before.rfind("\n") + 1:].lstrip()
    if prev == "int" and "INT" in names:
        return "`int` needs a range: write `int 0..9` (the smallest and largest value, both included)"
    if value == "=" and "EQUAL" not in names and re.match(r"input\b", line):
        return ("an input has no `= value`: it is sampled from its type (`input a : bool`); to fix its "
                "value in a test write an `example`, to compute it declare `var`")
    if value == "=" and "EQUAL" not in names:
        return "use `==` to compare; `=` only assigns in declarations and examples"
    if value == "/" and "SLASH" not in names:
        return "`#` starts a comment; `/` divides, inside an expression (`a / b`, a real)"
    if value in {"&&", "&"}:
        return "use `and`"
    if value in {"||", "|"} and "VBAR" not in names:
        return "use `or`"
    if value == ";" and "SEMICOLON" not in names:
        return "statements need no `;`: end the line instead (`;` only separates edges)"
    if tok.type != "NAME" and "NAME" in names and value.isidentifier():
        return f"`{value}` is a keyword here; choose another name"
    if value in _BLOCK_KEYWORDS and "RBRACE" in names:
        return "a `}` is missing before it, to close the block above"
    return None
