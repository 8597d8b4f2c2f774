"""semantics.paths: which `hf` strings are local paths, and the diagnostics of paths that do
not fit (docs/language.md 5.1, docs/errors.md E0801/E0803/E0804)."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.semantics.paths import (closest_name, did_you_mean_path, file_problem, hf_folder_problem,
                                        hf_source_is_local, is_hub_id)


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
