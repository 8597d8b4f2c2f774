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


def test_a_bare_word_without_folder_or_cache_names_both_readings(tmp_path):
    """`hf "model"` may mean a folder next to the spec that an example's script builds, or a hub
    id: the skip says where the folder was looked for, how to build it and how to say `./model`,
    and that --allow-download fetches the hub id (which alone would mislead the first reader)."""
    with pytest.raises(NetworkUnavailable) as info:
        load_hf_network("n", "model", tmp_path, None, "cpu", None)
    reason = str(info.value)
    assert reason.startswith("weights for `model` not found locally, read either way: no model folder `model` "
                             f"(looked for {tmp_path / 'model'}")
    assert "no hub weights for the hub id `model` in the Hugging Face cache" in reason
    assert "meant as a folder: build it" in reason
    assert 'write `hf "./model"` so that a missing folder is a spec error' in reason
    assert reason.endswith("meant as a hub id: run with --allow-download to fetch it")


def test_a_bare_word_one_typo_from_a_model_folder_beside_the_spec_is_an_error_not_a_skip(tmp_path):
    """`hf "modle"` beside `model/` used to be a skip whose reason held the did-you-mean: exit 0,
    green in CI. One typo away from a local model folder, it is that folder's path, misspelt."""
    config(tmp_path / "model", json.dumps({"model_type": "gpt2"}))
    with pytest.raises(NetworkLoadError, match=r"local model folder `modle` not found .*did you mean `model`\?"):
        load_hf_network("n", "modle", tmp_path, None, "cpu", None)


def test_a_bare_word_whose_near_folder_differs_in_a_digit_is_still_the_absent_skip(tmp_path):
    """`attn-only-4l` beside a built `attn-only-2l/` is another model (its folder not built yet),
    not a typo: the skip names both readings, as for any bare word."""
    config(tmp_path / "attn-only-2l", json.dumps({"model_type": "gpt2"}))
    with pytest.raises(NetworkUnavailable, match="weights for `attn-only-4l` not found locally, read either way"):
        load_hf_network("n", "attn-only-4l", tmp_path, None, "cpu", None)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A local Hugging Face cache (in tmp_path) holding entries for `gpt2` and `EleutherAI/pythia-70m`."""
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    for repo in ("gpt2", "EleutherAI/pythia-70m"):
        (cache / ("models--" + repo.replace("/", "--")) / "snapshots").mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("typo,meant", [("gtp2", "gpt2"), ("GPT2", "gpt2"), ("EleutherAl/pythia-70m",
                                                                               "EleutherAI/pythia-70m"),
                                        ("EleutherAI/pythia-7Om", "EleutherAI/pythia-70m")])
def test_an_uncached_hub_id_one_typo_from_a_cached_one_is_an_error(tmp_path, hub_cache, typo, meant):
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    with pytest.raises(NetworkLoadError, match=rf"hub id `{typo}` is not in the local Hugging Face cache, "
                                               rf"but `{meant}` is, one typo away: did you mean `{meant}`\?"):
        load_hf_network("n", typo, spec_dir, None, "cpu", None)


@pytest.mark.parametrize("other", ["EleutherAI/pythia-160m", "openai-community/gpt2", "gpt3",
                                   "causalspec-test/absent-model"])
def test_an_uncached_hub_id_that_is_another_model_is_still_the_skip(tmp_path, hub_cache, other):
    """A digit apart (pythia-70m / pythia-160m), the same name under another org (`gpt2` and
    `openai-community/gpt2` are both valid ids), or nothing alike: weights absent, a skip."""
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    with pytest.raises(NetworkUnavailable, match=f"weights for `{other}` not found locally"):
        load_hf_network("n", other, spec_dir, None, "cpu", None)


def repository_not_found(path: str, gated: bool = False) -> OSError:
    """What transformers raises, with downloads on, for an id the hub has no repository of (or,
    `gated`, one whose files need an access the user lacks)."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    kind = GatedRepoError if gated else RepositoryNotFoundError
    inner = kind.__new__(kind)  # the hub library's own constructor wants an HTTP response
    Exception.__init__(inner, "404 Client Error. Repository Not Found")
    try:
        raise OSError(f"{path} is not a local folder and is not a valid model identifier") from inner
    except OSError as exc:
        return exc


def test_with_downloads_on_an_id_the_hub_lacks_is_an_error(tmp_path, hub_cache):
    problem = loading.hub_id_problem("EleutherAI/pythia-7O0m", tmp_path, offline=False,
                                     exc=repository_not_found("EleutherAI/pythia-7O0m"))
    assert problem is not None and problem.startswith("the Hugging Face hub has no model `EleutherAI/pythia-7O0m`:")
    assert "hf auth login" in problem
    problem = loading.hub_id_problem("gtp2", tmp_path, offline=False, exc=repository_not_found("gtp2"))
    assert problem is not None and "did you mean `gpt2`? (it is in the local Hugging Face cache)" in problem
    # a bare word the hub lacks is no hub id either way: the folder it would be is not here
    problem = loading.hub_id_problem("model", tmp_path, offline=False, exc=repository_not_found("model"))
    assert problem is not None and problem.startswith(
        f"the Hugging Face hub has no model `model`, and there is no model folder `model` either (looked for "
        f"{tmp_path / 'model'}")
    # a gated repository exists (the user lacks access): absent here, a skip
    assert loading.hub_id_problem("org/gated", tmp_path, offline=False,
                                  exc=repository_not_found("org/gated", True)) is None
    # no connection: the weights are absent here, a skip
    assert loading.hub_id_problem("org/name", tmp_path, offline=False, exc=OSError("We couldn't connect")) is None


def test_a_bare_word_the_hub_cannot_serve_either_names_both_readings(tmp_path):
    reason = loading.absent_hub_reason("model", tmp_path, offline=False, exc=OSError("Repository Not Found\nmore"))
    assert reason.startswith("cannot load `model`, read either way: no model folder `model`")
    assert "no hub weights for the hub id `model` on the hub (Repository Not Found); meant as a folder" in reason


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


def test_with_downloads_on_the_loader_turns_a_missing_repository_into_an_error(tmp_path, monkeypatch):
    import transformers

    def no_repository(source, **kwargs):
        raise repository_not_found(source)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_repository)
    with pytest.raises(NetworkLoadError, match="network `n`: the Hugging Face hub has no model `org/typo`"):
        load_hf_network("n", "org/typo", tmp_path, None, "cpu", None, allow_download=True)

    def unreachable(source, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", unreachable)
    with pytest.raises(NetworkUnavailable, match="cannot load `org/typo`"):  # the hub is not reachable: a skip
        load_hf_network("n", "org/typo", tmp_path, None, "cpu", None, allow_download=True)


def test_hub_errors_are_found_on_a_hub_library_without_the_errors_module(tmp_path, hub_cache, monkeypatch):
    """huggingface_hub before 0.24 (allowed by transformers>=4.40) has no `huggingface_hub.errors`:
    its errors live in `huggingface_hub.utils`. Importing `.errors` only was an ImportError (exit 3)."""
    import sys

    from types import ModuleType

    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    exc = repository_not_found("gtp2")
    old_utils = ModuleType("huggingface_hub.utils")  # what 0.19-0.23 kept the errors in
    old_utils.GatedRepoError, old_utils.RepositoryNotFoundError = GatedRepoError, RepositoryNotFoundError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub.utils", old_utils)
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", None)  # `import` of it raises ImportError
    problem = loading.hub_id_problem("gtp2", tmp_path, offline=False, exc=exc)
    assert problem is not None and "did you mean `gpt2`?" in problem
