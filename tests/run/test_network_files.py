"""run.loading: only absent hub weights are NetworkUnavailable (a skip); every problem with
files that are here is a NetworkLoadError naming the file (issue 10, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causalspec.run import loading
from causalspec.run.loading import NetworkLoadError, NetworkUnavailable, check_hf_config, load_hf_network
from causalspec.testing.specs import HIER_EQ_EXAMPLE

AUTO_MAP = {"AutoConfig": "configuration_frob.FrobConfig", "AutoModelForCausalLM": "modeling_frob.Frob"}


def config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(text)
    return path


def test_auto_map_needs_the_opt_in_and_passes_with_it(tmp_path):
    path = config(tmp_path / "m", json.dumps({"model_type": "frob", "auto_map": AUTO_MAP}))
    with pytest.raises(NetworkLoadError, match=r"needs trust_remote_code: its config.json has `auto_map` "
                                               r"\(AutoConfig, AutoModelForCausalLM\)"):
        check_hf_config(path, "n", trust_remote_code=False)
    check_hf_config(path, "n", trust_remote_code=True)  # opted in: transformers runs the folder's code


def test_a_known_model_type_passes(tmp_path):
    check_hf_config(config(tmp_path / "m", json.dumps({"model_type": "gpt2"})), "n", trust_remote_code=False)


def test_a_cached_hub_model_with_a_bad_config_is_an_error_not_a_skip(tmp_path, monkeypatch):
    bad = config(tmp_path / "snapshot", json.dumps({"model_type": "frob", "auto_map": AUTO_MAP}))
    monkeypatch.setattr(loading, "_hub_config", lambda repo_id: bad)
    with pytest.raises(NetworkLoadError, match="needs trust_remote_code"):
        load_hf_network("n", "some-org/custom-model", tmp_path, None, "cpu", None)


def test_an_uncached_hub_id_is_the_one_skip(tmp_path):
    with pytest.raises(NetworkUnavailable, match="weights for `causalspec-test/absent-model` not found locally"):
        load_hf_network("n", "causalspec-test/absent-model", tmp_path, None, "cpu", None)


def test_a_local_folder_gone_since_analysis_is_an_error(tmp_path):
    with pytest.raises(NetworkLoadError, match=r"local model folder `\./gone` not found"):
        load_hf_network("n", "./gone", tmp_path, None, "cpu", None)


def test_torch_weights_missing_or_a_folder_are_errors(tmp_path):
    build = f"{HIER_EQ_EXAMPLE}/model.py:build_hand"
    with pytest.raises(NetworkLoadError, match=r"weights file `hand.safetensor` not found .*did you mean"):
        loading.load_torch_network("n", build, "hand.safetensor", HIER_EQ_EXAMPLE, None, None, "cpu", None)
    (tmp_path / "w").mkdir()
    with pytest.raises(NetworkLoadError, match="weights file `w` is a folder, not a file"):
        loading.load_torch_network("n", build, "w", tmp_path, None, None, "cpu", None)


def test_a_local_folder_without_tokenizer_files_is_an_error_naming_them(tmp_path):
    from causalspec.testing.tiny import build_tiny_model

    build_tiny_model("gpt2", 20, tmp_path / "m", n_layer=1)  # weights and config, no tokenizer
    with pytest.raises(NetworkLoadError, match=r"has no tokenizer files \(tokenizer.json, tokenizer_config.json"):
        load_hf_network("n", "./m", tmp_path, None, "cpu", None)
