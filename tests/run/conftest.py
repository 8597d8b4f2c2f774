"""Tiny random-init HF models for the site-adapter and engine tests (causalspec.testing.tiny).

Each model is built and saved with ``save_pretrained`` (``build_tiny_model``), then loaded
back with ``AutoModelFor*.from_pretrained`` (no hub access), so the tests exercise the same
loading path a spec's ``hf "<dir>"`` network takes. Built once per session: they are
only read, never trained, by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from causalspec.testing.specs import MOVER_WORDS
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer, single_thread

VOCAB = 100  # test_sites.py draws token ids below this

# name -> (kind of causalspec.testing.tiny, config overrides); 2 layers, d_model 32, 4 heads
CONFIGS: dict[str, tuple[str, dict]] = {
    "gpt2": ("gpt2", dict(n_positions=32)),
    "neox-parallel": ("neox", dict(max_position_embeddings=32, use_parallel_residual=True)),
    "neox-sequential": ("neox", dict(max_position_embeddings=32, use_parallel_residual=False)),
    "llama-gqa": ("llama", dict(max_position_embeddings=32, num_key_value_heads=2)),
    # head_dim 16 != hidden/heads = 8, one kv head: head sizes must come from the config
    "gemma": ("gemma", dict(max_position_embeddings=32, num_key_value_heads=1, head_dim=16)),
    "bert": ("bert", dict(max_position_embeddings=32)),
}
CAUSAL = [name for name, (kind, _) in CONFIGS.items() if kind != "bert"]


@dataclass(frozen=True)
class TinyModel:
    name: str
    model: nn.Module
    causal: bool


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Run the tiny models single-threaded (see `single_thread`)."""
    with single_thread():
        yield


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    models = {}
    for name, (kind, overrides) in CONFIGS.items():
        directory = tmp_path_factory.mktemp(name)
        build_tiny_model(kind, VOCAB, directory, seed=0, **overrides)
        auto = AutoModelForMaskedLM if kind == "bert" else AutoModelForCausalLM
        model = auto.from_pretrained(directory, dtype=torch.float32).eval()
        models[name] = TinyModel(name, model, name in CAUSAL)
    return models


@pytest.fixture(params=list(CONFIGS))
def tiny(request: pytest.FixtureRequest, tiny_models: dict[str, TinyModel]) -> TinyModel:
    return tiny_models[request.param]


@pytest.fixture(params=CAUSAL)
def tiny_causal(request: pytest.FixtureRequest, tiny_models: dict[str, TinyModel]) -> TinyModel:
    return tiny_models[request.param]


@pytest.fixture(scope="session")
def word_lm(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """kind -> folder of a tiny LM of that kind ("gpt2", "neox", "llama", "bert", ...) with the
    word tokenizer over MOVER_WORDS (causalspec.testing.specs.mover_spec), seed 0 and a large
    init (0.5) so that the answer depends on the prompt. Built on first use, once per session;
    read only (write specs elsewhere)."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            d = tmp_path_factory.mktemp(f"word_lm_{kind}")
            build_tiny_model(kind, None, d, seed=0, tokenizer=build_word_tokenizer(MOVER_WORDS), initializer_range=0.5)
            built[kind] = d
        return built[kind]

    return get
