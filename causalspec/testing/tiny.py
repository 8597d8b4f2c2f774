"""Tiny tokenizers and random-init Hugging Face models, built locally (never downloaded).

Why: tests and examples must exercise the real loading path of an `hf "<dir>"` network
(config + safetensors + tokenizer files read by `AutoModel*.from_pretrained`) on machines
without a model hub. `build_word_tokenizer` makes a tokenizer whose tokens are exactly the
words you list, so a test knows which token every word becomes; `build_tiny_model` saves
a 2-layer model of a chosen family next to it.

Space convention of `build_word_tokenizer`: whitespace only *separates* tokens and belongs
to none of them — `"When Mary"` is `["When", "Mary"]` and `" Mary"` is `["Mary"]`, with
offsets that cover the word alone. So an answer template `" {answer}"` scores the same
token the name is inside a prompt. Punctuation characters are tokens of their own.
A listed word is always one token. A word that is not listed is split into listed pieces
when the vocabulary has them in WordPiece form (`"Anna"` + `"##bel"` make `"Annabel"`
two tokens: `Anna`, `##bel`); otherwise it is the single token `[UNK]`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]")
PUNCTUATION = tuple(".,!?;:'\"-()")
KINDS = ("gpt2", "neox", "llama", "gemma", "bert")


def vocabulary(words: Iterable[str]) -> list[str]:
    """Special tokens, punctuation, then every word (split on whitespace), deduplicated, in order."""
    out: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS)
    out.update(dict.fromkeys(PUNCTUATION))
    for w in words:
        for piece in str(w).split():
            out.setdefault(piece, None)
    return list(out)


def build_word_tokenizer(words: Iterable[str], save_dir: str | Path | None = None, *, add_bos: bool = False):
    """A fast tokenizer over `words` (see the module docstring for the space convention).

    Token ids: [PAD]=0, [UNK]=1, [BOS]=2, [EOS]=3, [MASK]=4, then punctuation, then the words.
    `[MASK]` written in a text is the mask token. `add_bos=True` prepends [BOS] to every
    encoded text (offsets (0, 0), like any special token). Saved with `save_pretrained`
    when `save_dir` is given, so `AutoTokenizer.from_pretrained(save_dir)` loads it back.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary(words))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation("isolated")])
    backend.decoder = decoders.WordPiece(prefix="##")
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(single="[BOS] $A", pair="[BOS] $A $B",
                                                               special_tokens=[("[BOS]", vocab["[BOS]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                        bos_token="[BOS]", eos_token="[EOS]", mask_token="[MASK]")
    if save_dir is not None:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


def tiny_config(kind: str, vocab_size: int, **overrides: Any):
    """A 2-layer config of `kind` (d_model 32, 4 heads; llama: 2 kv heads, i.e. GQA)."""
    from transformers import BertConfig, GemmaConfig, GPT2Config, GPTNeoXConfig, LlamaConfig

    common = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64, initializer_range=0.1)
    if kind == "gpt2":
        cfg = dict(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4, initializer_range=0.1)
        return GPT2Config(**{**cfg, **overrides})
    if kind == "neox":
        return GPTNeoXConfig(**{**common, **overrides})
    if kind == "llama":
        return LlamaConfig(**{**common, "num_key_value_heads": 2, **overrides})
    if kind == "gemma":
        return GemmaConfig(**{**common, **overrides})
    if kind == "bert":
        return BertConfig(**{**common, **overrides})
    raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {', '.join(KINDS)}")


def build_tiny_model(kind: str, vocab_size: int | None, save_dir: str | Path, seed: int = 0,
                     tokenizer=None, **overrides: Any):
    """Build a tiny random-init model of `kind` ("gpt2" | "neox" | "llama" | "gemma" | "bert"), save it
    (and `tokenizer`, when given) to `save_dir` with `save_pretrained`, and return the model
    (eval mode). `vocab_size` defaults to the tokenizer's size; `overrides` go to the config.
    Causal families get an LM head (`AutoModelForCausalLM`), BERT a masked-LM head.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    if vocab_size is None:
        if tokenizer is None:
            raise ValueError("give vocab_size or a tokenizer")
        vocab_size = len(tokenizer)
    if tokenizer is not None:  # keep the config's special ids inside the vocabulary
        for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(tokenizer, attr, None)
            if value is not None:
                overrides.setdefault(attr, value)
    config = tiny_config(kind, vocab_size, **overrides)
    auto = AutoModelForMaskedLM if kind == "bert" else AutoModelForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(config)
    model.eval()
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(save_dir))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(save_dir))
    return model


def build_token_copier(words: Sequence[str], save_dir: str | Path):
    """A tiny `GPT2ForTokenClassification` (saved with its word tokenizer) whose label at every
    token is that token: class k is `words[k]`.

    Why: a token-level head whose per-position mechanism is known exactly, for checks that read an
    hf network's output at a position (`O[i] -> output @ i`). The attention and MLP write nothing
    (their output projections are zero) and there are no position embeddings, so the residual
    stream at a token is its embedding — one-hot over the vocabulary — at every layer, and the
    classifier reads the one-hot entry of each word (the final LayerNorm keeps the argmax). So
    `resid.post[L] @ k` carries token k, and patching it from a source moves the label there.
    """
    import torch
    from transformers import GPT2ForTokenClassification

    tokenizer = build_word_tokenizer(words, save_dir)
    vocab = tokenizer.get_vocab()
    config = tiny_config("gpt2", len(tokenizer), n_embd=max(32, len(tokenizer)), num_labels=len(words),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2ForTokenClassification(config)
    with torch.no_grad():
        model.transformer.wte.weight.copy_(torch.eye(len(tokenizer), config.n_embd))
        model.transformer.wpe.weight.zero_()
        for name, param in model.transformer.h.named_parameters():
            if name.endswith(("attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight", "mlp.c_proj.bias")):
                param.zero_()  # attention and MLP write nothing to the residual stream
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        for k, w in enumerate(words):
            model.classifier.weight[k, vocab[w]] = 1.0
    model.eval()
    model.save_pretrained(str(save_dir))
    return model


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, restoring the setting (process-wide) after.

    Tiny models are faster so: for inputs like [2, 6, 32], intra-op threads only add
    synchronisation, and on a busy 2-core machine a 3-D `linear` took 16 ms instead of 10 us
    and a [16, 15, 192] GELU 60 ms instead of microseconds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


__all__ = ["KINDS", "PUNCTUATION", "SPECIAL_TOKENS", "build_tiny_model", "build_word_tokenizer", "single_thread",
           "tiny_config", "vocabulary"]
