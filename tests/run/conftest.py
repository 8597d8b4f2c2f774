"""Tiny random-init HF models for the site-adapter tests.

Each model is built from a config, saved with ``save_pretrained`` and loaded back with
``AutoModelFor*.from_pretrained`` (no hub access), so the tests exercise the same
loading path a spec's ``hf "<dir>"`` network takes. Built once per session: they are
only read, never trained, by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
)

VOCAB = 100  # test_sites.py draws token ids below this

COMMON = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              max_position_embeddings=32, initializer_range=0.1)


@dataclass(frozen=True)
class TinyModel:
    name: str
    model: nn.Module
    causal: bool


CONFIGS: dict[str, tuple[Callable[[], object], object, bool]] = {
    "gpt2": (lambda: GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                initializer_range=0.1), AutoModelForCausalLM, True),
    "neox-parallel": (lambda: GPTNeoXConfig(**COMMON, use_parallel_residual=True), AutoModelForCausalLM, True),
    "neox-sequential": (lambda: GPTNeoXConfig(**COMMON, use_parallel_residual=False), AutoModelForCausalLM, True),
    "llama-gqa": (lambda: LlamaConfig(**COMMON, num_key_value_heads=2), AutoModelForCausalLM, True),
    # head_dim 16 != hidden/heads = 8, one kv head: head sizes must come from the config
    "gemma": (lambda: GemmaConfig(**COMMON, num_key_value_heads=1, head_dim=16), AutoModelForCausalLM, True),
    "bert": (lambda: BertConfig(**COMMON), AutoModelForMaskedLM, False),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Run the tiny models single-threaded: for [2, 6, 32] inputs, intra-op threads only
    add synchronisation, and on a busy 2-core box (other test runs) a 3-D ``linear``
    took 16 ms instead of 10 us. Restored afterwards, since the setting is process-wide."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TinyModel]:
    models = {}
    for name, (make_config, auto, causal) in CONFIGS.items():
        torch.manual_seed(0)
        config = make_config()
        directory = tmp_path_factory.mktemp(name)
        auto.from_config(config).save_pretrained(directory)
        model = auto.from_pretrained(directory, dtype=torch.float32).eval()
        models[name] = TinyModel(name, model, causal)
    return models


@pytest.fixture(params=list(CONFIGS))
def tiny(request: pytest.FixtureRequest, tiny_models: dict[str, TinyModel]) -> TinyModel:
    return tiny_models[request.param]


@pytest.fixture(params=[name for name, (_, _, causal) in CONFIGS.items() if causal])
def tiny_causal(request: pytest.FixtureRequest, tiny_models: dict[str, TinyModel]) -> TinyModel:
    return tiny_models[request.param]
