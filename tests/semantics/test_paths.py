"""semantics.paths: which `hf` strings are local paths, and the diagnostics of paths that do
not fit (docs/language.md 5.1, docs/errors.md E0801/E0803/E0804)."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.semantics.paths import (cached_hub_typo, closest_name, did_you_mean_path, file_problem,
                                        hf_folder_problem, hf_source_is_local, hub_cached, is_hub_id, is_typo_of,
                                        typo_folder)


@pytest.mark.parametrize("text", ["gpt2", "openai-community/gpt2", "EleutherAI/pythia-160m", "bert-base-uncased",
                                  "meta-llama/Llama-3.1-8B"])
def test_hub_ids_are_not_local_paths(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    assert is_hub_id(text) and not hf_source_is_local(text, tmp_path)
    assert hf_folder_problem(text, tmp_path) is None  # a hub id is never an analysis error


@pytest.mark.parametrize("text", ["./model", "../model", "/abs/model", "~/model", "models/tiny/v2", "my model",
                                  "C:\\models\\tiny", "org/../x", ".", "model-"])
def test_path_shaped_strings_are_local(tmp_path, text):
    assert hf_source_is_local(text, tmp_path)


def test_a_hub_shaped_string_is_local_when_it_or_its_org_folder_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    assert not hf_source_is_local("model", spec_dir) and not hf_source_is_local("models/tiny", spec_dir)
    (spec_dir / "model").mkdir()
    (spec_dir / "models").mkdir()
    assert hf_source_is_local("model", spec_dir)  # exists next to the spec
    assert hf_source_is_local("models/tiny", spec_dir)  # its `org` part is a folder next to the spec
    (tmp_path / "cwdmodel").mkdir()
    assert not hf_source_is_local("cwdmodel", spec_dir)  # a folder under the current directory ...
    (tmp_path / "cwdmodel" / "config.json").write_text("{}")
    assert hf_source_is_local("cwdmodel", spec_dir)  # ... counts when it is a model folder


def test_did_you_mean_compares_the_first_missing_part_with_its_siblings(tmp_path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "small").mkdir()
    assert did_you_mean_path("models/tyni", tmp_path / "models/tyni") == "did you mean `models/tiny`?"
    assert did_you_mean_path("./modles/tiny/w.safetensors", tmp_path / "modles/tiny/w.safetensors") == \
        "did you mean `./models/tiny/w.safetensors`?"
    # nothing close: a short folder is listed instead
    assert did_you_mean_path("models/zzz", tmp_path / "models/zzz") == f"{tmp_path / 'models'} holds `small`, `tiny`"


def test_closest_name():
    assert closest_name("tyni", ["tiny", "small"]) == "tiny"  # letters out of order (difflib: 0.5)
    assert closest_name("MLP.safetensors", ["mlp.safetensors"]) == "mlp.safetensors"
    assert closest_name("hand.safetensor", ["hand.safetensors", "model.py"]) == "hand.safetensors"
    assert closest_name("ab", ["ba"]) is None and closest_name("data", ["tiny"]) is None


def test_file_problem(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.safetensors").write_bytes(b"")
    assert file_problem("w.safetensors", tmp_path, "weights file") is None
    missing = file_problem("w.safetensor", tmp_path, "weights file")
    assert (missing.code, missing.message) == ("E0801", "weights file `w.safetensor` not found")
    assert missing.help.startswith("did you mean `w.safetensors`?")
    folder = file_problem("d", tmp_path, "weights file")
    assert (folder.code, folder.message) == ("E0803", "weights file `d` is a folder, not a file")
    assert folder.help == "name a file inside it; it holds `a.safetensors`"


def test_hf_folder_problem(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    no_config = hf_folder_problem("./m", tmp_path)
    assert no_config.message == "`./m` is not a Hugging Face model folder: it has no config.json"
    as_file = hf_folder_problem("./m/model.safetensors", tmp_path)
    assert as_file.code == "E0804" and 'e.g. `hf "./m"`' in as_file.help
    (tmp_path / "m" / "config.json").write_text("{}")
    assert hf_folder_problem("./m", tmp_path) is None


MODEL = "model M {\n  domain N = enum from \"nmes.txt\"\n  input a : N\n  output o : N = a\n}\n"


def test_an_enum_file_typo_gets_a_did_you_mean(tmp_path):
    (tmp_path / "names.txt").write_text("Mary\nJohn\n")
    with pytest.raises(SpecError) as info:
        load_text(MODEL, "t.cspec", base_dir=tmp_path)
    d = next(d for d in info.value.diagnostics if d.code == "E0801")
    assert d.help.startswith("did you mean `names.txt`?")


def test_hub_ids_parse_without_any_file(tmp_path):
    text = ("model M {\n  input a : bool\n  output o : bool = a\n}\n"
            'network a = hf "gpt2"\nnetwork b = hf "openai-community/gpt2"\n')
    assert set(load_text(text, "t.cspec", base_dir=tmp_path).networks) == {"a", "b"}


def test_a_located_hf_path_error(tmp_path):
    text = 'model M {\n  input a : bool\n  output o : bool = a\n}\nnetwork n = hf "./nowhere"\n'
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec", base_dir=tmp_path)
    [d] = info.value.diagnostics
    assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("E0801", 5, 16, 27)
    assert isinstance(d.label, str) and str(Path(tmp_path) / "nowhere") in d.label


@pytest.mark.parametrize("typo,other,expected", [
    ("modle", "model", True), ("modl", "model", True), ("models", "model", True), ("Model", "model", True),
    ("gtp2", "gpt2", True), ("pythia-7Om", "pythia-70m", True), ("EleutherAl", "EleutherAI", True),
    ("tyni", "tiny", True), ("model", "model", False), ("attn-only-4l", "attn-only-2l", False), ("gpt2", "gpt", False),
    ("pythia-70m", "pythia-160m", False), ("x12", "x21", False), ("ab", "abc", False), ("abcdef", "fedcba", False),
])
def test_a_typo_is_one_edit_that_keeps_the_digits(typo, other, expected):
    assert is_typo_of(typo, other) is expected


def model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "gpt2"}')
    return path


def test_a_hub_shaped_name_one_typo_from_a_model_folder_is_a_local_path(tmp_path, monkeypatch):
    """`hf "modle"` beside `model/` is that folder misspelt — analysis reports it (E0801 with
    the fix) — never a hub id whose weights are skipped as not cached."""
    monkeypatch.chdir(tmp_path)
    spec_dir = tmp_path / "spec"
    model_folder(spec_dir / "model")
    model_folder(spec_dir / "models" / "tiny")
    model_folder(spec_dir / "attn-only-2l")
    assert typo_folder("modle", spec_dir) == "model" and hf_source_is_local("modle", spec_dir)
    assert typo_folder("modles/tiny", spec_dir) == "models/tiny" and hf_source_is_local("modles/tiny", spec_dir)
    problem = hf_folder_problem("modle", spec_dir)
    assert problem is not None and problem.code == "E0801"
    assert problem.help.startswith("did you mean `model`? (a folder with a model's files")
    assert "`hf download modle`" in problem.help  # how to mean the hub id after all
    # a digit apart: another model, whose folder is not built yet; an id of the hub
    assert typo_folder("attn-only-4l", spec_dir) is None and not hf_source_is_local("attn-only-4l", spec_dir)
    # a folder that holds no model's files is not what a typo meant
    (spec_dir / "data").mkdir()
    (spec_dir / "data" / "names.txt").write_text("Mary\n")
    assert not hf_source_is_local("dta", spec_dir)
    # one being written (weights, no config.json yet) is: `hf "tiyn"` beside it is no hub id
    (spec_dir / "tiny").mkdir()
    (spec_dir / "tiny" / "model.safetensors").write_bytes(b"")
    assert typo_folder("tiyn", spec_dir) == "tiny" and hf_source_is_local("tiyn", spec_dir)


def test_a_cached_hub_id_is_never_read_as_a_typo(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    model_folder(tmp_path / "gpt-2")
    assert hf_source_is_local("gpt2", tmp_path)  # one typo from `gpt-2/`, and not cached: a path
    (tmp_path / "cache" / "models--gpt2").mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hub_cached("gpt2") and not hf_source_is_local("gpt2", tmp_path)  # cached: the hub id
    assert hf_folder_problem("gpt2", tmp_path) is None


def test_cached_hub_typo(tmp_path, monkeypatch):
    from huggingface_hub import constants

    for repo in ("models--gpt2", "models--EleutherAI--pythia-70m", "models--EleutherAI--pythia-160m"):
        (tmp_path / repo).mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert cached_hub_typo("gtp2") == "gpt2"
    assert cached_hub_typo("EleutherAl/pythia-70m") == "EleutherAI/pythia-70m"
    assert cached_hub_typo("EleutherAI/pythia-7Om") == "EleutherAI/pythia-70m"
    assert cached_hub_typo("EleutherAI/pythia-410m") is None  # another model
    assert cached_hub_typo("openai-community/gpt2") is None  # the same name under an org: a valid id
    assert cached_hub_typo("gpt2") is None  # itself
