"""A hand-built 2-layer GPT-2 whose behaviour flows through known heads (circuit ground truth).

Why hand-built: circuit claims (faithfulness, necessity, edges) can only be tested against a
network whose circuit is known. Every weight here is set by code; the model is saved with
`save_pretrained` next to a word tokenizer, so a spec loads it through the ordinary
`hf "<dir>"` path (GPT-2 family table, HF adapter, answer tokens) — the code paths a real
GPT-2 takes.

The task is induction on name tokens: the prompt `then A B C A` is answered with `B`, the
name that followed the earlier occurrence of the last token (A, B, C distinct names).

Ground truth (a two-head induction circuit):

* head 0.0, **previous-token head**: at position p it attends to p-1 (by position
  embeddings, Q·K) and copies that token's name identity into the `prev` subspace (OV);
* head 1.0, **induction head**: at the last position its query is the current token's name
  (from the embeddings), its keys are the `prev` subspace written by head 0.0 (K-composition:
  the edge `prev -> induction.k`), so it attends to the position after the earlier `A`, i.e.
  to `B`; its OV copies that token's name (from the embeddings: the edge `embed ->
  induction.v`) into the `out` subspace, which the unembedding reads.

Heads 0.1-0.3 and 1.1-1.3 are **distractors**: they attend uniformly and write name
information into `junk` dimensions that nothing reads. The MLPs are all zero.

Residual stream: d_model = 64, used as 32 two-dimensional "pairs" (e_2k - e_2k+1)/sqrt 2.
Every feature is such a pair, so every residual vector has mean 0 and GPT-2's LayerNorm
reduces to a division by the vector's norm. A large constant `stabiliser` feature (norm
STABILISER in every token embedding) makes that norm nearly constant, so LayerNorm is
nearly a fixed scaling, undone by the LayerNorm weights: heads read features as written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

from causalspec.testing.tiny import build_word_tokenizer

NAMES = ("Mary", "John", "Tom", "Anna", "Paul", "Lisa")
FILLER = "then"
TEMPLATE = "then {A} {B} {C} {A}"
D_MODEL, N_HEAD, HEAD_DIM, N_LAYER, N_POSITIONS = 64, 4, 16, 2, 16
STABILISER = 20.0
OUT_GAIN = 4.0  # amplitude the induction head writes into `out`
UNEMBED = 2.0  # logit per unit of `out`
JUNK_GAIN = 0.5
SCORE = 40.0  # query gain: attention logits of SCORE / sqrt(HEAD_DIM) = 10 on the target

# pair indices of the residual stream
PAIR_STABILISER = 0
PAIR_TOKEN = tuple(range(1, 1 + len(NAMES)))  # name identity (embeddings)
PAIR_PREV = tuple(range(7, 7 + len(NAMES)))  # previous token's name (head 0.0)
PAIR_OUT = tuple(range(13, 13 + len(NAMES)))  # answer (head 1.0), read by the unembedding
PAIR_POS = tuple(range(19, 27))  # positions 0..7
PAIR_JUNK = tuple(range(27, 31))  # distractor heads write here; nothing reads it

PREV_HEAD = (0, 0)
INDUCTION_HEAD = (1, 0)

SPEC_TEMPLATE = """\
# Induction on a hand-built 2-layer GPT-2 (causalspec.testing.toy_circuits).
model Induction {{
  domain Name = enum {{{names}}}
  input  A, B, C : Name ~ uniform where A != B and B != C and A != C
  output answer : Name = B
}}

network toy = hf "{path}" {{
  prompt "{template}"
  answer " {{answer}}"
  position END = last
}}

dataset Ref from Induction {{
  pairs {ref_pairs}
  seed 1
}}
"""


def spec_header(path: str | Path, ref_pairs: int = 64) -> str:
    """The model, network and reference dataset of a spec for the toy (circuits go below)."""
    return SPEC_TEMPLATE.format(names=", ".join(NAMES), path=path, template=TEMPLATE, ref_pairs=ref_pairs)


def _pair(k: int):
    import torch

    v = torch.zeros(D_MODEL)
    v[2 * k], v[2 * k + 1] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return v  # [d_model], unit norm, mean 0


def build_induction_model(save_dir: str | Path):
    """Build the toy, save model + tokenizer to `save_dir`; return (model, tokenizer)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    save_dir = Path(save_dir)
    tokenizer = build_word_tokenizer([FILLER, *NAMES])
    vocab = tokenizer.get_vocab()
    config = GPT2Config(vocab_size=len(vocab), n_positions=N_POSITIONS, n_embd=D_MODEL, n_layer=N_LAYER,
                        n_head=N_HEAD, tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    name_ids = [vocab[n] for n in NAMES]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        t = model.transformer
        blocks = cast("list[GPT2Block]", list(t.h))  # indexing an nn.ModuleList gives a plain Module
        # embeddings: stabiliser on every token, name identity on names, one feature per position
        t.wte.weight[:] = STABILISER * _pair(PAIR_STABILISER)
        for i, tok in enumerate(name_ids):
            t.wte.weight[tok] += _pair(PAIR_TOKEN[i])
        for pos, k in enumerate(PAIR_POS):
            t.wpe.weight[pos] = _pair(k)
        # LayerNorms: undo the (nearly constant) normalisation scale of the stabilised stream
        gain = STABILISER / math.sqrt(D_MODEL)
        for ln in [t.ln_f] + [b.ln_1 for b in blocks] + [b.ln_2 for b in blocks]:
            ln.weight[:] = gain

        def head_weights(layer: int, head: int):
            attn = blocks[layer].attn
            cols = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
            # Conv1D weights are [in, out]; c_attn's output is [q heads | k heads | v heads]
            wq = attn.c_attn.weight[:, cols]
            wk = attn.c_attn.weight[:, D_MODEL + head * HEAD_DIM: D_MODEL + (head + 1) * HEAD_DIM]
            wv = attn.c_attn.weight[:, 2 * D_MODEL + head * HEAD_DIM: 2 * D_MODEL + (head + 1) * HEAD_DIM]
            wo = attn.c_proj.weight[cols, :]
            return wq, wk, wv, wo  # views: [d, hd] x3, [hd, d]

        # head 0.0: previous-token head (position p attends to p-1, copies the name to `prev`)
        wq, wk, wv, wo = head_weights(*PREV_HEAD)
        for pos, k in enumerate(PAIR_POS):
            wk[:, pos] += _pair(k)
            if pos >= 1:
                wq[:, pos - 1] += SCORE * _pair(k)
        for i in range(len(NAMES)):
            wv[:, i] += _pair(PAIR_TOKEN[i])
            wo[i, :] += _pair(PAIR_PREV[i])
        # head 1.0: induction head (query: own name; key: `prev`; value: name; out: `out`)
        wq, wk, wv, wo = head_weights(*INDUCTION_HEAD)
        for i in range(len(NAMES)):
            wq[:, i] += SCORE * _pair(PAIR_TOKEN[i])
            wk[:, i] += _pair(PAIR_PREV[i])
            wv[:, i] += _pair(PAIR_TOKEN[i])
            wo[i, :] += OUT_GAIN * _pair(PAIR_OUT[i])
        # distractors: uniform attention, name identity into junk (signs alternate per name)
        for layer in range(N_LAYER):
            for head in range(1, N_HEAD):
                wq, wk, wv, wo = head_weights(layer, head)
                junk = _pair(PAIR_JUNK[(layer * N_HEAD + head) % len(PAIR_JUNK)])
                for i in range(len(NAMES)):
                    wv[:, i] += _pair(PAIR_TOKEN[i])
                    wo[i, :] += JUNK_GAIN * (1 if i % 2 == 0 else -1) * junk
        # unembedding reads `out`
        for i, tok in enumerate(name_ids):
            model.lm_head.weight[tok] = UNEMBED * _pair(PAIR_OUT[i])
    model.eval()
    save_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(save_dir))
    tokenizer.save_pretrained(str(save_dir))
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    """`python -m causalspec.testing.toy_circuits DIR`: build the toy into DIR."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m causalspec.testing.toy_circuits DIR", file=sys.stderr)
        return 2
    build_induction_model(args[0])
    print(f"wrote the hand-built induction GPT-2 and its tokenizer to {args[0]}")
    return 0


__all__ = ["INDUCTION_HEAD", "NAMES", "PREV_HEAD", "TEMPLATE", "build_induction_model", "main", "spec_header"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
