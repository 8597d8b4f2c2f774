"""Every grammar rule, alias and terminal is exercised by the golden corpus tests/syntax/ok/.

Why: the grammar is the language's contract. A rule no valid spec ever uses is either dead
or untested — in both cases the corpus (which the printer round-trip, the snapshot and the
fuzz tests all reuse) would not notice when it breaks.

Three views of the corpus' parse trees:

* with the real parser (`lark_parser()`, run by `parse_tree` as `parse` runs it), the `data`
  of every subtree: each rule's alias, or
  its name when it has none (rules written `?rule` without an alias are inlined by lark
  and can only be seen in the next view);
* with a twin parser built from the same grammar text with every `?` removed and all tokens
  kept (the LALR tables are the same; only tree shaping differs): every rule name, including
  inlined ones like the parenthesised `atom`, and every terminal, so each keyword and each
  anonymous operator alternative (`==`, `//`, `..`, `=>`…) is covered;
* every terminal the lexer can produce (except the ignored whitespace and comments).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from lark import Lark, Token, Tree

from causalspec.syntax.parser import grammar_path, lark_parser, parse_tree

OK_DIR = Path(__file__).parent / "ok"
IGNORED_TERMINALS = {"WS", "COMMENT"}


def ok_files() -> list[Path]:
    return sorted(OK_DIR.glob("*.cspec"))


@functools.lru_cache(maxsize=1)
def twin_parser() -> Lark:
    """The grammar with every `?rule` un-inlined and every token kept in the tree."""
    text = grammar_path().read_text(encoding="utf-8")
    text = re.sub(r"^\?(\w+)\s*:", r"\1:", text, flags=re.M)
    return Lark(text, parser="lalr", lexer="contextual", keep_all_tokens=True,
                maybe_placeholders=False, cache=False)


def _walk(tree: Tree, datas: set[str], tokens: set[str]) -> None:
    for sub in tree.iter_subtrees():
        datas.add(str(sub.data))
        for child in sub.children:
            if isinstance(child, Token):
                tokens.add(child.type)


def _terminal_names(parser: Lark) -> dict[str, str]:
    """terminal name -> how it is written (the literal for anonymous/keyword terminals)."""
    out = {}
    for t in parser.terminals:
        if t.name in IGNORED_TERMINALS:
            continue
        out[t.name] = repr(t.pattern.value) if t.pattern.type == "str" else t.name
    return out


def _rule_names(parser: Lark, *, inlined: bool) -> set[str]:
    """Names a tree can carry: each rule's alias, else its origin (hidden `_rules` excluded).

    `inlined=False` drops unaliased alternatives of `?rules`, which lark never shows.
    """
    names = set()
    for rule in parser.rules:
        origin = str(rule.origin.name)
        if origin.startswith("_"):
            continue
        if rule.alias:
            names.add(str(rule.alias))
        elif inlined or not (rule.options and rule.options.expand1):
            names.add(origin)
    return names


@functools.lru_cache(maxsize=1)
def corpus_coverage() -> tuple[set[str], set[str], set[str]]:
    real_datas: set[str] = set()
    twin_datas: set[str] = set()
    tokens: set[str] = set()
    for path in ok_files():
        text = path.read_text(encoding="utf-8")
        _walk(parse_tree(text), real_datas, set())
        _walk(parse_tree(text, twin_parser()), twin_datas, tokens)
    return real_datas, twin_datas, tokens


def test_corpus_is_not_empty():
    assert len(ok_files()) >= 8, f"expected at least 8 golden specs in {OK_DIR}"


def test_every_rule_and_alias_is_exercised():
    real_datas, _, _ = corpus_coverage()
    expected = _rule_names(lark_parser(), inlined=False)
    missing = sorted(expected - real_datas)
    assert not missing, (
        f"grammar rules/aliases never exercised by {OK_DIR}/*.cspec: {', '.join(missing)}"
    )


def test_every_inlined_rule_is_exercised():
    _, twin_datas, _ = corpus_coverage()
    expected = _rule_names(twin_parser(), inlined=True)
    missing = sorted(expected - twin_datas)
    assert not missing, (
        f"grammar rules (including `?` alternatives) never exercised by {OK_DIR}/*.cspec: "
        f"{', '.join(missing)}"
    )


def test_every_terminal_is_exercised():
    _, _, tokens = corpus_coverage()
    terminals = _terminal_names(twin_parser())
    missing = sorted(terminals[name] for name in set(terminals) - tokens)
    assert not missing, (
        f"terminals (keywords, operators, token kinds) never used by {OK_DIR}/*.cspec: "
        f"{', '.join(missing)}"
    )


def test_twin_parser_agrees_with_the_real_one():
    """The twin differs only in tree shape: same terminals, same rules, same accepted texts."""
    real, twin = lark_parser(), twin_parser()
    assert {t.name for t in real.terminals} == {t.name for t in twin.terminals}
    assert ({(str(r.origin.name), r.alias) for r in real.rules}
            == {(str(r.origin.name), r.alias) for r in twin.rules})


def test_parse_tree_matches_lark_on_the_corpus():
    """`parse_tree` (the parser's loop with the keyword-as-name retry) builds the very trees
    `Lark.parse` builds wherever the latter succeeds."""
    for path in ok_files():
        text = path.read_text(encoding="utf-8")
        assert parse_tree(text) == lark_parser().parse(text), path.name
