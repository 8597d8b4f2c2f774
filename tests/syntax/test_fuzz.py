"""Fuzz the whole language stage (parse + full analysis) with hypothesis.

Two generators: (a) random text over an alphabet weighted toward spec tokens, and
(b) mutations of the golden corpus tests/syntax/ok/*.cspec (delete, insert, duplicate and
swap slices, replace one token with another, insert or delete raw characters). Each text
must either analyse cleanly or raise `SpecError` whose every diagnostic has a valid span in
the fuzzed file, a help line, and renders; any other exception is a bug.

`CAUSALSPEC_FUZZ_EXAMPLES` (default 2,000) is the total of the default run, split between
the two generators; the `slow` variants run 20,000.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causalspec.diagnostics import SpecError, render
from causalspec.semantics.analyse import load_text
from causalspec.syntax.parser import lark_parser

OK_DIR = Path(__file__).parent / "ok"
FILE = "fuzz.cspec"

TOTAL = int(os.environ.get("CAUSALSPEC_FUZZ_EXAMPLES", 2000))
SLOW_TOTAL = 20_000
# Mutants reach the analyser (and cost more each); random text mostly stops in the parser.
TEXT_SHARE = 0.4


def _settings(total: int, share: float):
    return settings(max_examples=max(1, round(total * share)), deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), print_blob=True)


# ───────────────────────── the property ─────────────────────────

def check_text(text: str) -> None:
    try:
        load_text(text, FILE, base_dir=OK_DIR)
    except SpecError as exc:
        diags = exc.diagnostics
        assert diags, "SpecError without diagnostics"
        lines = text.split("\n")
        for d in diags:
            span = d.span
            where = f"{d.code} {d.message!r} at {span}"
            assert span.file == FILE, where
            assert 1 <= span.line <= len(lines) + 1, where
            assert span.column >= 1, where
            if span.line <= len(lines):
                assert span.column <= len(lines[span.line - 1]) + 1, where
            assert (span.end_line, span.end_column) >= (span.line, span.column) or not span.end_line, where
            assert d.help, f"{where}: no help line"  # every diagnostic says how to fix it
        out = render(diags, {FILE: text})
        assert f"error[{diags[0].code}]" in out
        assert f"--> {FILE}:{diags[0].span.line}:{diags[0].span.column}" in out


# ───────────────────────── (a) random token soup ─────────────────────────

KEYWORDS = sorted({t.pattern.value for t in lark_parser().terminals
                   if t.pattern.type == "str" and t.pattern.value.isidentifier()})
OPERATORS = sorted({t.pattern.value for t in lark_parser().terminals
                    if t.pattern.type == "str" and not t.pattern.value.isidentifier()})
NAMES = ["M", "W", "X", "Y", "Z", "WX", "O", "a", "b", "x", "y", "Obj", "T", "red", "ABB", "END", "S1",
         "iia", "das", "k", "resid", "post", "head", "q", "layers", "abs", "min", "max", "mod", "clip",
         "count", "xor", "logit_diff", "faithfulness", "random_init", "mlp", "gpt2", "HierEq", "C1"]
NUMBERS = ["0", "1", "2", "3", "9", "10", "19", "0.5", "0.95", "-1", "1e3", "2048", "99999999999999999999"]
STRINGS = ['"gpt2"', '"names.txt"', '"colors.txt"', '"nets/toy.py:build"', '"layers.0"', '"{W} and {X}"',
           '" {answer}"', '""', '"a\\"b"', '"\\x4"', '"unterminated']
PUNCT = list("{}()[]<>=!:,.@|~-+*/%#\"'_;&$\\")
SPACES = [" ", " ", " ", "\n", "\n", "", "\t", "  "]

PIECE = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(OPERATORS + PUNCT),
    st.sampled_from(NAMES),
    st.sampled_from(NUMBERS),
    st.sampled_from(STRINGS),
    st.text(alphabet="abcXYZ019_{}()[]<>=!:,.@|~-+*/%#\"' \n\r\x0c", max_size=4),
)
PREFIXES = ["", "", "model M {\n", "model M {\n  input a, b : bool\n  output o : bool = ",
            "model M {\n  input x : int 0..3\n  var y : int 0..9 = ", "check C {\n", "align M to N as A {\n",
            "network n = hf \"gpt2\" {\n", "circuit c on n for M.o {\n"]


@st.composite
def token_soup(draw) -> str:
    prefix = draw(st.sampled_from(PREFIXES))
    parts = draw(st.lists(st.tuples(PIECE, st.sampled_from(SPACES)), max_size=60))
    body = "".join(p + s for p, s in parts)
    suffix = draw(st.sampled_from(["", "\n}\n", "}"]))
    return prefix + body + suffix


# ───────────────────────── (b) corpus mutations ─────────────────────────

TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\.\.|//|==|!=|<=|>=|->|=>'
                      r"|\s+|#[^\n]*|.", re.S)
CORPUS = {p.name: p.read_text(encoding="utf-8") for p in sorted(OK_DIR.glob("*.cspec"))}
CORPUS_TOKENS = {name: TOKEN_RE.findall(text) for name, text in CORPUS.items()}
assert all("".join(toks) == CORPUS[n] for n, toks in CORPUS_TOKENS.items())
TOKEN_POOL = sorted({t for toks in CORPUS_TOKENS.values() for t in toks if not t.isspace()})


@st.composite
def corpus_slice(draw) -> list[str]:
    toks = CORPUS_TOKENS[draw(st.sampled_from(sorted(CORPUS_TOKENS)))]
    i = draw(st.integers(0, len(toks) - 1))
    n = draw(st.integers(1, 40))
    return toks[i:i + n]


@st.composite
def mutated_corpus(draw) -> str:
    toks = list(CORPUS_TOKENS[draw(st.sampled_from(sorted(CORPUS_TOKENS)))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "replace", "replace",
                                   "chars"]))
        n = len(toks)
        i = draw(st.integers(0, max(n - 1, 0)))
        k = draw(st.integers(1, 30))
        if op == "delete":
            del toks[i:i + k]
        elif op == "insert":
            toks[i:i] = draw(corpus_slice())
        elif op == "duplicate":
            toks[i:i] = toks[i:i + k]
        elif op == "swap":
            j = draw(st.integers(0, max(n - 1, 0)))
            a, b = sorted((i, j))
            if b >= a + k:
                toks = toks[:a] + toks[b:b + k] + toks[a + k:b] + toks[a:a + k] + toks[b + k:]
        elif op == "replace":
            if toks:
                toks[i] = draw(st.sampled_from(TOKEN_POOL) | st.sampled_from(KEYWORDS + OPERATORS))
        else:
            text = "".join(toks)
            c = draw(st.integers(0, len(text)))
            if draw(st.booleans()):
                text = text[:c] + text[c + draw(st.integers(1, 3)):]
            else:
                text = text[:c] + draw(st.text(alphabet="{}()[]\"'#:,.=-<>@|0123456789\n ", min_size=1,
                                               max_size=3)) + text[c:]
            toks = TOKEN_RE.findall(text)
    return "".join(toks)


# ───────────────────────── tests ─────────────────────────

# The printer's syntax sample parses but need not pass analysis; it is still mutated.
SYNTAX_ONLY = {"kitchen_sink.cspec"}


def test_corpus_is_valid_before_mutation():
    for name, text in CORPUS.items():
        if name in SYNTAX_ONLY:
            check_text(text)
        else:
            load_text(text, FILE, base_dir=OK_DIR)  # raises (with diagnostics) if not


@_settings(TOTAL, TEXT_SHARE)
@given(token_soup())
def test_fuzz_token_soup(text):
    check_text(text)


@_settings(TOTAL, 1 - TEXT_SHARE)
@given(mutated_corpus())
def test_fuzz_corpus_mutations(text):
    check_text(text)


@pytest.mark.slow
@_settings(SLOW_TOTAL, TEXT_SHARE)
@given(token_soup())
def test_fuzz_token_soup_slow(text):
    check_text(text)


@pytest.mark.slow
@_settings(SLOW_TOTAL, 1 - TEXT_SHARE)
@given(mutated_corpus())
def test_fuzz_corpus_mutations_slow(text):
    check_text(text)


EDGE_CASES = [
    "",
    "\n\n",
    "model",
    "model M {",
    "model M { input x : int 0..3 output o : bool = " + " or ".join(["x == 1"] * 400) + " }",
    "model M { input x : bool output o : bool = " + "not " * 1000 + "x }",
    "model M { input x : int 0..3 output o : bool = x > 99999999999999999999 }",
    "model M { input x : int 99999999999999999999..99999999999999999999 output o : bool = true }",
    "model M { input x : int 0..3 table T : int 0..999999, int 0..999999 -> bool = { _: true } "
    "output o : bool = x > 1 }",
    'model M { domain N = enum { "a\\x4" } input x : N output o : N = x }',
    "model M {\x0c input a : bool\x0c output o : bool = a \x0c",
    "model M {\r\n  input a : bool\r\n  output o : bool = a &&\r\n}",
    "model M {\n  input a : bool\n  output o : bool = a\n\n\n",
    "align M to n as A { x -> embed @ END  answer -> output }",
    "model M { input x : bool ~ weighted { true: 1e308, false: 1e308 } output o : bool = x }",
    "model M { input x : int 0..999999 var y : int 0..6 = x * x * x * x % 7 output o : bool = y > 3 }",
]


@pytest.mark.parametrize("text", EDGE_CASES, ids=[f"edge{i}" for i in range(len(EDGE_CASES))])
def test_known_edge_cases(text):
    check_text(text)


@pytest.mark.parametrize("keyword", ["answer", "prompt", "position", "device", "group", "metric", "expect",
                                     "backend", "device_map", "remote"])
def test_statement_keyword_is_a_name_after_a_positioned_site(keyword):
    """LALR merges the state after `site @ POS` in an alignment with states of networks and
    circuits, so the lexer offers their statement keywords there; the parser retries such a
    keyword as a name (`answer -> output` is the natural IOI spelling)."""
    from causalspec.syntax import ast as A
    from causalspec.syntax.parser import parse

    spec = parse(f"align M to n as A {{\n  x -> resid.post[1] @ END\n  {keyword} -> output\n}}\n")
    (align,) = spec.items
    assert [type(s) for s in align.body] == [A.VarAlignment, A.OutputAlignment]
    assert align.body[1].var.text == keyword


def test_engine_statement_words_are_names_elsewhere():
    """`backend`, `remote` and `device_map` are keywords only inside a network body: models,
    variables, networks, positions and engines may be called that."""
    from causalspec.syntax import ast as A
    from causalspec.syntax.parser import parse

    spec = parse("""model remote {
  input backend, remote, device_map : bool
  output o : bool = remote and backend or device_map
}
network backend = hf "gpt2" { backend remote remote position remote = last device_map device_map }
network remote = hf "gpt2" { device_map "auto" backend nnsight remote "https://ndif.example.org" }
align remote to backend as device_map { remote -> resid.post[0] @ remote  o -> output }
""")
    model, net, net2, align = spec.items
    assert model.name.text == "remote"
    assert [n.text for n in model.body[0].names] == ["backend", "remote", "device_map"]
    assert net.name.text == "backend"
    assert net.body == (A.EngineStmt(A.Name("remote"), True, None),
                        A.PositionDecl(A.Name("remote"), A.NamedPos(A.Name("last"))),
                        A.OptionStmt("device_map", "device_map"))
    assert net2.body == (A.OptionStmt("device_map", "auto", True),
                         A.EngineStmt(A.Name("nnsight"), True, "https://ndif.example.org"))
    assert (align.model.text, align.network.text, align.name.text) == ("remote", "backend", "device_map")
