"""The user docs cannot drift from the language silently.

* every diagnostic code is explained in docs/errors.md;
* every ```cspec block of docs/language.md is a complete spec that parses and analyses
  (fragments are fenced as ```text);
* every ```cspec-error CODE block of docs/errors.md fails analysis with that code;
* every rule, alias and named terminal of the grammar is listed in the grammar rule index
  of docs/language.md, so a new construct cannot go undocumented;
* internal links of both pages point at headings that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from causalspec.diagnostics import CATEGORIES, CODES, WARNING_CODES, SpecError
from causalspec.semantics.analyse import load_text
from causalspec.syntax.parser import grammar_path, lark_parser

DOCS = Path(__file__).resolve().parents[1] / "docs"
LANGUAGE = DOCS / "language.md"
ERRORS = DOCS / "errors.md"
SECURITY = DOCS / "security.md"
INDEX_HEADING = "## Appendix: Grammar rule index"

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)

# Files the documented examples refer to, created in a temporary folder for analysis.
NAMES = "# first names, one per line\nMary\nJohn\nAnna\nTom\n"
HOOKS = '''"""Stub builder and hooks for the documentation's examples (never called by analysis)."""


def build():
    raise NotImplementedError


def encode(inputs):
    raise NotImplementedError


def decode(outputs):
    raise NotImplementedError
'''


def blocks(path: Path, info: str) -> list[tuple[int, str, str]]:
    """(line, info string, body) of every fenced block whose info string starts with `info`."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        tag = m.group(1).strip()
        if tag == info or tag.startswith(info + " "):
            out.append((text.count("\n", 0, m.start()) + 1, tag, m.group(2)))
    return out


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("doc_examples") / "spec"  # a folder with a parent of its own (E0807)
    d.mkdir()
    (d.parent / "shared_names.txt").write_text(NAMES, encoding="utf-8")
    (d / "names.txt").write_text(NAMES, encoding="utf-8")
    (d / "model.py").write_text(HOOKS, encoding="utf-8")
    (d / "data").mkdir()  # a folder where a file is expected (the E0802 example)
    (d / "attn-only-4l").mkdir()  # a converted TransformerLens attention-only model (the E0720 example)
    (d / "attn-only-4l" / "config.json").write_text(
        '{"model_type": "tl_attn_only", "positional_embedding_type": "shortformer"}', encoding="utf-8")
    _write_basis(d / "basis.safetensors")
    _write_saes(d)
    for weights in ("mlp.safetensors", "weights/mlp.safetensors"):  # torch networks' weights must exist
        (d / weights).parent.mkdir(exist_ok=True)
        (d / weights).write_bytes(b"")
    return d


def _write_saes(d: Path) -> None:
    """SAELens-format folders for the SAE examples: `sae` (d_in 768, d_sae 8, trained at
    resid.post[0]: W0610 at resid.post[3]) and `bad_sae` (W_dec of the wrong shape: E0622)."""
    import torch

    from causalspec.testing.sae import write_sae

    write_sae(d / "sae", torch.zeros(768, 8), torch.zeros(8), torch.zeros(8, 768), torch.zeros(768),
              hook_name="blocks.0.hook_resid_post")
    write_sae(d / "sae_layer0", torch.zeros(40, 78), torch.zeros(78), torch.zeros(78, 40), torch.zeros(40),
              hook_name="layers.0")  # language.md's examples (the hier_eq net's layers.0)
    write_sae(d / "bad_sae", torch.zeros(768, 8), torch.zeros(8), torch.zeros(8, 700), torch.zeros(768))


def _write_basis(path: Path) -> None:
    """A real orthonormal basis (only its existence matters to analysis)."""
    try:
        import numpy as np
        from safetensors.numpy import save_file

        save_file({"W": np.eye(16, 2, dtype=np.float32)}, str(path))
    except ImportError:  # pragma: no cover - safetensors is a dependency
        path.write_bytes(b"")


# ───────────────────────── errors.md ─────────────────────────

def test_every_code_is_documented():
    text = ERRORS.read_text(encoding="utf-8")
    missing = [code for code in CODES if not re.search(rf"\b{code}\b", text)]
    assert not missing, f"docs/errors.md does not explain {', '.join(missing)}"


def test_every_code_has_a_heading_with_its_title():
    text = ERRORS.read_text(encoding="utf-8")
    headings = dict(re.findall(r"^### (E\d{4}) — (.+)$", text, re.M))
    for code, title in CODES.items():
        assert code in headings, f"docs/errors.md has no `### {code} — {title}` heading"
        assert headings[code].strip() == title, f"{code}: heading says {headings[code]!r}, CODES says {title!r}"


def test_every_category_is_a_section():
    text = ERRORS.read_text(encoding="utf-8")
    for digits, name in CATEGORIES.items():
        assert re.search(rf"^## .*E{digits}xx", text, re.M), f"no section for category {digits} ({name})"


ERROR_BLOCKS = blocks(ERRORS, "cspec-error")


def test_errors_page_has_examples():
    assert len(ERROR_BLOCKS) >= 25


@pytest.mark.parametrize("line,tag,body", ERROR_BLOCKS, ids=[f"errors.md:{b[0]}" for b in ERROR_BLOCKS])
def test_error_example_produces_its_code(line, tag, body, example_dir):
    code = tag.split()[1]
    assert code in CODES, f"errors.md:{line}: {code} is not a registered code"
    with pytest.raises(SpecError) as info:
        load_text(body, "doc.cspec", base_dir=example_dir)
    got = [d.code for d in info.value.diagnostics]
    # minimal examples: the documented code and nothing else (no cascade to explain away)
    assert set(got) == {code}, f"errors.md:{line}: expected only {code}, analysis reported {got}"
    # every diagnostic tells the fix
    no_help = [d.message for d in info.value.diagnostics if not d.help]
    assert not no_help, f"errors.md:{line}: {code} without a help line: {no_help}"


def test_every_code_has_an_example():
    """Each code's section shows a spec that produces it (and the test above, that it has a help)."""
    shown = {tag.split()[1] for _, tag, _ in ERROR_BLOCKS + WARNING_BLOCKS}
    missing = sorted(set(CODES) - shown)
    assert not missing, f"docs/errors.md has no ```cspec-error example for {', '.join(missing)}"


WARNING_BLOCKS = blocks(ERRORS, "cspec-warning")


@pytest.mark.parametrize("line,tag,body", WARNING_BLOCKS, ids=[f"errors.md:{b[0]}" for b in WARNING_BLOCKS])
def test_warning_example_analyses_and_warns_with_its_code(line, tag, body, example_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CAUSALSPEC_REMOTE_HOSTS", raising=False)  # E0808: no host allowed by the user
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    code = tag.split()[1]
    assert code in CODES or code in WARNING_CODES, f"errors.md:{line}: {code} is not a registered code"
    ir = load_text(body, "doc.cspec", base_dir=example_dir)  # a warning never invalidates the spec
    got = [d.code for d in ir.warnings]
    assert got == [code], f"errors.md:{line}: expected the warning {code}, analysis reported {got}"


# ───────────────────────── language.md ─────────────────────────

SPEC_BLOCKS = blocks(LANGUAGE, "cspec")


def test_language_page_has_examples():
    assert len(SPEC_BLOCKS) >= 15


@pytest.mark.parametrize("line,tag,body", SPEC_BLOCKS, ids=[f"language.md:{b[0]}" for b in SPEC_BLOCKS])
def test_spec_example_parses_and_analyses(line, tag, body, example_dir):
    assert tag == "cspec", f"language.md:{line}: a complete spec is fenced exactly as ```cspec"
    try:
        load_text(body, "doc.cspec", base_dir=example_dir)
    except SpecError as exc:
        first = exc.diagnostics[0]
        pytest.fail(f"language.md:{line}: example is invalid: {first.code} {first.message} "
                    f"(example line {first.span.line})")


def _rule_names() -> set[str]:
    parser = lark_parser()
    names = set()
    for rule in parser.rules:
        origin = str(rule.origin.name)
        if not origin.startswith("_"):  # lark's generated helper rules (__x_star_0)
            names.add(origin)
        if rule.alias:
            names.add(str(rule.alias))
    return names


def _named_terminals() -> set[str]:
    text = grammar_path().read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Z][A-Z_]*)\s*:", text, re.M))


def test_grammar_rule_index_covers_every_rule():
    text = LANGUAGE.read_text(encoding="utf-8")
    assert INDEX_HEADING in text, f"docs/language.md lacks the heading {INDEX_HEADING!r}"
    index = text.split(INDEX_HEADING, 1)[1]
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", index))
    wanted = _rule_names() | _named_terminals()
    assert len(wanted) > 100  # rules and aliases: a sanity check on the lark API
    missing = sorted(wanted - listed)
    assert not missing, f"the grammar rule index of docs/language.md misses {', '.join(missing)}"
    unknown = sorted(listed - wanted)
    assert not unknown, f"the grammar rule index names what the grammar lacks: {', '.join(unknown)}"


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", [LANGUAGE, ERRORS, SECURITY], ids=lambda p: p.name)
def test_internal_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    outside = FENCE.sub("", text)
    anchors = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", outside, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", outside)
    assert links
    broken = sorted({link for link in links if link not in anchors})
    assert not broken, f"{page.name}: links to missing headings: {', '.join(broken)}"
    for target in re.findall(r"\]\(([\w.-]+\.md)(?:#[^)]*)?\)", outside):
        assert (DOCS / target).is_file(), f"{page.name}: links to missing page {target}"


def test_architecture_doc_names_only_modules_that_exist():
    """docs/architecture.md says where things live; every `causalspec/...` path it names must
    exist, so a move without a doc update fails here instead of sending a reader nowhere."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`(causalspec/[\w/]*(?:\.py)?)`", text))
    assert len(paths) >= 15, paths
    missing = sorted(p for p in paths if not (root / p).exists())
    assert missing == []
    # the relative names in the package paragraphs exist in the package they are listed under
    for package, body in re.findall(r"\*\*`(causalspec/\w+/)`\*\* — (.*?)(?=\n- \*\*|\n## )", text, re.S):
        names = set(re.findall(r"`(\w+\.py)`", body))
        assert names, package
        assert sorted(n for n in names if not (root / package / n).exists()) == [], package
    assert "docs/architecture.md" in (root / "README.md").read_text()


def test_keyword_list_names_every_keyword_of_the_grammar():
    """§2.3 lists the language's keywords: a keyword added to the grammar must be listed there
    (a newcomer reads the list to know which names the parser may take as keywords)."""
    text = LANGUAGE.read_text(encoding="utf-8")
    start = text.index("The\nlanguage's keywords are:")
    block = text[start:].split("```text\n", 1)[1].split("```", 1)[0]
    listed = set(block.split())
    keywords = {t.pattern.value for t in lark_parser().terminals
                if t.pattern.type == "str" and t.pattern.value.replace("_", "a").isalnum()}
    assert len(keywords) > 50
    assert not keywords - listed, f"§2.3 of docs/language.md misses the keywords {sorted(keywords - listed)}"
    assert not listed - keywords, f"§2.3 of docs/language.md lists non-keywords {sorted(listed - keywords)}"
