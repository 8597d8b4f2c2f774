"""lark's LALR tables cached in the user cache folder (causalspec/syntax/grammar_cache.py):
reused when valid, rebuilt when the grammar, lark or the file changed, never fatal."""

from __future__ import annotations

from pathlib import Path

import lark
import pytest

from causalspec.syntax import grammar_cache as gc
from causalspec.syntax.parser import grammar_path

OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False)
TEXT = "model M {\n  input a : bool\n  output y : bool = not a\n}\n"


@pytest.fixture()
def grammar() -> str:
    return grammar_path().read_text(encoding="utf-8")


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAUSALSPEC_CACHE_DIR", str(folder))
    return folder


def _entry(grammar: str) -> tuple[str, Path]:
    key = gc.cache_key(grammar, OPTIONS)
    path = gc.cache_file(key)
    assert path is not None
    return key, path


def test_a_built_parser_is_stored_and_loaded_back_equal(grammar, cache):
    built = gc.cached_lalr(grammar, OPTIONS)
    key, path = _entry(grammar)
    assert path.parent == cache and path.is_file()
    loaded = gc.load_cached(path, key)
    assert loaded is not None
    assert loaded.parse(TEXT) == built.parse(TEXT)
    calls = []
    again = gc.cached_lalr(grammar, OPTIONS, build=lambda: calls.append(1) or built)  # type: ignore[func-returns-value]
    assert calls == [] and again.parse(TEXT) == built.parse(TEXT)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_a_corrupt_cache_file_is_never_trusted(grammar, cache, damage):
    gc.cached_lalr(grammar, OPTIONS)
    key, path = _entry(grammar)
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[-100] ^= 0xFF
    elif damage == "truncate":
        del blob[len(blob) // 2:]
    elif damage == "empty":
        blob = bytearray()
    else:
        blob = bytearray(b"\x80\x05garbage" * 50)
    path.write_bytes(bytes(blob))
    assert gc.load_cached(path, key) is None
    rebuilt = gc.cached_lalr(grammar, OPTIONS)  # rebuilds, and repairs the entry
    assert rebuilt.parse(TEXT).data == "start"
    assert gc.load_cached(path, key) is not None


def test_the_key_follows_the_grammar_the_options_and_lark(grammar, monkeypatch):
    key = gc.cache_key(grammar, OPTIONS)
    assert gc.cache_key(grammar + "\n// edited\n", OPTIONS) != key
    assert gc.cache_key(grammar, dict(OPTIONS, propagate_positions=False)) != key
    monkeypatch.setattr(lark, "__version__", "0.0.1")
    assert gc.cache_key(grammar, OPTIONS) != key


def test_an_entry_for_another_key_is_not_loaded(grammar, cache):
    gc.cached_lalr(grammar, OPTIONS)
    key, path = _entry(grammar)
    other = gc.cache_key(grammar + "\n", OPTIONS)
    assert gc.load_cached(path, other) is None


def test_an_unwritable_cache_folder_falls_back_to_building(grammar, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("CAUSALSPEC_CACHE_DIR", str(blocker / "causalspec"))
    parser = gc.cached_lalr(grammar, OPTIONS)
    assert parser.parse(TEXT).data == "start"
    assert blocker.read_text() == "a file where the cache folder would be"
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]  # no stray temporary file


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("CAUSALSPEC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gc.cache_dir() == tmp_path / "causalspec"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert gc.cache_dir() == tmp_path / "home" / ".cache" / "causalspec"
    monkeypatch.setenv("CAUSALSPEC_CACHE_DIR", "")
    assert gc.cache_dir() is None and gc.cache_file("0" * 64) is None


# ───────────────────────── lark without `regex` (syntax/lark_import.py) ─────────────────────────

REGEX_PROBE = r"""
import json, sys
FIRST
from causalspec.syntax.parser import parse
parse("model M {\n  input a : bool\n  output y : bool = not a\n}\n", "m.cspec")
before = "regex" in sys.modules
import lark, lark.lark, lark.utils
flags = [lark.lark._has_regex, lark.utils._has_regex]
tree = lark.Lark(r'start: /\p{Lu}+/', parser="lalr", regex=True).parse("ÀB")
print(json.dumps({"regex_after_parse": before, "flags": flags, "token": str(tree.children[0]),
                  "regex_after_use": "regex" in sys.modules}))
"""


def _regex_probe(first: str) -> dict:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", REGEX_PROBE.replace("FIRST", first)], cwd=root, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                                                             "CAUSALSPEC_CACHE_DIR": ""}).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_parsing_does_not_import_regex_yet_lark_regex_mode_still_works():
    pytest.importorskip("regex")
    result = _regex_probe("")
    assert result["regex_after_parse"] is False  # parse never needed it
    assert result["flags"] == [True, True] and result["token"] == "ÀB" and result["regex_after_use"] is True


def test_regex_imported_first_is_left_alone():
    pytest.importorskip("regex")
    result = _regex_probe("import regex")
    assert result["regex_after_parse"] is True and result["flags"] == [True, True] and result["token"] == "ÀB"
