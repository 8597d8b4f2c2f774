"""TransformerLens's attention-only transformers as a Hugging Face model (`model_type`
`tl_attn_only`), so that `hf "./attn-only-2l"` loads them and circuit claims run on them.

Why: the attention-only models the circuit literature studies (TransformerLens's
`attn-only-1l` … `attn-only-4l`, where Heimersheim & Janiak found the docstring circuit;
ARENA's `attn_only_2L_half`, where induction heads are taught) are no standard HF
architecture. They have no MLPs and optionally no LayerNorm; `attn-only-1l` … `attn-only-4l`
use standard position embeddings (TransformerLens's model table), while some, ARENA's
`attn_only_2L_half` and `attn-only-2l-demo` among them, use *shortformer* ones: the position
embedding is added to the queries' and keys' input only, never to the residual stream or the
values. A GPT-2 config with zeroed MLPs could not express either variant's missing MLPs as
TransformerLens computes them (nor shortformer positions at all), so this module
implements the architecture itself, following TransformerLens's `HookedTransformer`
(`TransformerBlock.forward`, `Attention`, `LayerNorm`; attention scaled by 1/sqrt(d_head)).

Layout (what `run.families.ATTN_ONLY` reads): `transformer.wte`, `transformer.wpe`,
`transformer.h[L]` with `ln_1`, `attn.{q,k,v,o}_proj` (Linear; `o_proj`'s input is every
head's z, heads concatenated), `ln_2` (identity) and `mlp` — a module whose output is 0:
the architecture has no MLPs, so a circuit that names none keeps a wire of zeros and
ablating it changes nothing. Then `transformer.ln_f` and `lm_head` (with TransformerLens's
unembedding bias).

Converting real weights: `convert_transformer_lens(cfg, state_dict)` takes a
`HookedTransformerConfig` as a dict and a `HookedTransformer.state_dict()` (LayerNorm folded
or not: with `normalization_type` "LNPre" the weights are the identity); `save_converted`
writes the folder. From the command line:
`python -m causalspec.run.attn_only CONFIG.json WEIGHTS.pth|.safetensors TOKENIZER_DIR OUT_DIR`
(the .pth is read with `torch.load(weights_only=True)`). docs/specs.md gives the steps for
each published spec.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from causalspec.semantics.paths import TL_ATTN_ONLY, is_shortformer_attn_only

MODEL_TYPE = TL_ATTN_ONLY
POSITIONAL = ("shortformer", "standard")
NORMALIZATION = ("LN", "LNPre", None)


class AttnOnlyConfig(PretrainedConfig):
    """The facts of a TransformerLens attention-only model, under HF's names where they exist."""

    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 50278, hidden_size: int = 512, num_hidden_layers: int = 2,
                 num_attention_heads: int = 8, head_dim: int = 64, n_ctx: int = 2048,
                 positional_embedding_type: str = "standard", normalization_type: str | None = "LN",
                 layer_norm_epsilon: float = 1e-5, **kwargs: Any):
        if positional_embedding_type not in POSITIONAL:
            raise ValueError(f"positional_embedding_type must be one of {POSITIONAL}, not "
                             f"{positional_embedding_type!r}")
        if normalization_type not in NORMALIZATION:
            raise ValueError(f"normalization_type must be one of {NORMALIZATION}, not {normalization_type!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.head_dim = head_dim
        self.n_ctx = n_ctx
        self.max_position_embeddings = n_ctx
        self.positional_embedding_type = positional_embedding_type
        self.normalization_type = normalization_type
        self.layer_norm_epsilon = layer_norm_epsilon
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)


def _norm(config: AttnOnlyConfig) -> nn.Module:
    """TransformerLens's LayerNorm (LN: learned; LNPre: the weights folded into the next layer,
    i.e. identity weights here) or nothing (normalization_type None)."""
    if config.normalization_type is None:
        return nn.Identity()
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)


class ZeroMLP(nn.Module):
    """The MLP an attention-only model does not have: its output is always 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class AttnOnlyAttention(nn.Module):
    """Causal multi-head attention with separate q/k/v inputs (shortformer: q and k see positions)."""

    def __init__(self, config: AttnOnlyConfig):
        super().__init__()
        self.n_heads, self.d_head = config.num_attention_heads, config.head_dim
        width = self.n_heads * self.d_head
        self.q_proj = nn.Linear(config.hidden_size, width)
        self.k_proj = nn.Linear(config.hidden_size, width)
        self.v_proj = nn.Linear(config.hidden_size, width)
        self.o_proj = nn.Linear(width, config.hidden_size)

    def forward(self, qk_in: torch.Tensor, v_in: torch.Tensor) -> torch.Tensor:
        b, s, _ = v_in.shape

        def heads(x: torch.Tensor) -> torch.Tensor:  # [b, s, H*d] -> [b, H, s, d]
            return x.view(b, s, self.n_heads, self.d_head).transpose(1, 2)

        q, k, v = heads(self.q_proj(qk_in)), heads(self.k_proj(qk_in)), heads(self.v_proj(v_in))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)  # [b, H, s, s]
        causal = torch.ones(s, s, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        z = torch.softmax(scores, dim=-1) @ v  # [b, H, s, d]
        return self.o_proj(z.transpose(1, 2).reshape(b, s, self.n_heads * self.d_head))


class AttnOnlyBlock(nn.Module):
    def __init__(self, config: AttnOnlyConfig):
        super().__init__()
        self.shortformer = config.positional_embedding_type == "shortformer"
        self.ln_1 = _norm(config)
        self.attn = AttnOnlyAttention(config)
        self.ln_2 = nn.Identity()
        self.mlp = ZeroMLP()

    def forward(self, hidden_states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        v_in = self.ln_1(hidden_states)  # resid.pre is this module's input, read once
        if self.shortformer:  # TransformerLens: ln1(resid_pre + pos) for queries and keys
            qk_in = self._norm_again(hidden_states + positions)
        else:
            qk_in = v_in
        x = hidden_states + self.attn(qk_in, v_in)
        return x + self.mlp(self.ln_2(x))

    def _norm_again(self, x: torch.Tensor) -> torch.Tensor:
        """ln_1's function without calling the module (its hooks see the residual stream only)."""
        ln = self.ln_1
        if isinstance(ln, nn.LayerNorm):
            return nn.functional.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
        return x


class AttnOnlyModel(nn.Module):
    def __init__(self, config: AttnOnlyConfig):
        super().__init__()
        self.shortformer = config.positional_embedding_type == "shortformer"
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.n_ctx, config.hidden_size)
        self.h = nn.ModuleList(AttnOnlyBlock(config) for _ in range(config.num_hidden_layers))
        self.ln_f = _norm(config)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        pos = self.wpe(torch.arange(input_ids.shape[1], device=input_ids.device))[None]  # [1, s, d]
        x = self.wte(input_ids)
        if not self.shortformer:
            x = x + pos
        for block in self.h:
            x = block(x, pos)
        return self.ln_f(x)


class AttnOnlyForCausalLM(PreTrainedModel):
    config_class = AttnOnlyConfig
    base_model_prefix = "transformer"
    main_input_name = "input_ids"

    def __init__(self, config: AttnOnlyConfig):
        super().__init__(config)
        self.transformer = AttnOnlyModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=getattr(self.config, "initializer_range", 0.02))
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **_: Any) -> CausalLMOutput:
        if attention_mask is not None and bool((attention_mask[:, 1:] > attention_mask[:, :-1]).any()):
            # causal attention makes right padding harmless; left padding would shift positions
            raise ValueError("tl_attn_only models take right-padded batches only")
        return CausalLMOutput(logits=self.lm_head(self.transformer(input_ids)))


def edge_granularity_problem(config: Any) -> str | None:
    """Why edge granularity (path patching) is ambiguous on this model, or None when it is not.

    With shortformer positions the position embedding is added to each layer's query and key
    input, never to the residual stream. A path patch rebuilds a head's q/k input from the
    residual stream minus its unlisted senders' contributions. The positions belong to no
    sender, so nothing says whether an edge-level circuit keeps them on the paths it cuts. A
    node-level patch has no such choice: it replaces a head's output, and every head computes
    its own queries and keys as the model does.
    """
    if not is_shortformer_attn_only(getattr(config, "model_type", None),
                                    getattr(config, "positional_embedding_type", None)):
        return None
    return ("it is a TransformerLens attention-only model with shortformer positions: the position embedding "
            "is added to the queries' and keys' input only, not to the residual stream, so an edge-level "
            "(path) patch of a head's q/k input cannot tell whether the positions travel with the edges it "
            "cuts")


def register() -> None:
    """Make `AutoConfig` / `AutoModelForCausalLM` know `tl_attn_only` (idempotent)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if MODEL_TYPE not in CONFIG_MAPPING:
        AutoConfig.register(MODEL_TYPE, AttnOnlyConfig)
        AutoModelForCausalLM.register(AttnOnlyConfig, AttnOnlyForCausalLM)


# ───────────────────────── conversion from TransformerLens ─────────────────────────

def convert_transformer_lens(cfg: dict[str, Any], state: dict[str, torch.Tensor]
                             ) -> tuple[AttnOnlyConfig, dict[str, torch.Tensor]]:
    """A `HookedTransformerConfig` (as a dict) and its `state_dict()` → this model's config and
    state dict. Refuses what this architecture is not: MLPs, rotary positions, other norms."""
    if not cfg.get("attn_only", False):
        raise ValueError("the TransformerLens config is not attn_only: the model has MLPs")
    pos_type = cfg.get("positional_embedding_type", "standard")
    norm = cfg.get("normalization_type", "LN")
    config = AttnOnlyConfig(vocab_size=int(cfg["d_vocab"]), hidden_size=int(cfg["d_model"]),
                            num_hidden_layers=int(cfg["n_layers"]), num_attention_heads=int(cfg["n_heads"]),
                            head_dim=int(cfg["d_head"]), n_ctx=int(cfg["n_ctx"]),
                            positional_embedding_type=pos_type, normalization_type=norm,
                            layer_norm_epsilon=float(cfg.get("eps", 1e-5)))
    if int(cfg.get("d_vocab_out", cfg["d_vocab"])) != config.vocab_size:
        raise ValueError("d_vocab_out differs from d_vocab; this architecture unembeds into the vocabulary")
    H, d = config.num_attention_heads, config.head_dim
    out: dict[str, torch.Tensor] = {
        "transformer.wte.weight": state["embed.W_E"],
        "transformer.wpe.weight": state["pos_embed.W_pos"],
        "lm_head.weight": state["unembed.W_U"].T,
        "lm_head.bias": state.get("unembed.b_U", torch.zeros(config.vocab_size)),
    }
    ones, zeros = torch.ones(config.hidden_size), torch.zeros(config.hidden_size)
    for L in range(config.num_hidden_layers):
        p, a = f"transformer.h.{L}.", f"blocks.{L}.attn."
        for name in ("q", "k", "v"):
            W = state[f"{a}W_{name.upper()}"]  # [H, d_model, d_head]
            out[f"{p}attn.{name}_proj.weight"] = W.permute(0, 2, 1).reshape(H * d, config.hidden_size)
            out[f"{p}attn.{name}_proj.bias"] = state[f"{a}b_{name.upper()}"].reshape(H * d)
        out[f"{p}attn.o_proj.weight"] = state[f"{a}W_O"].reshape(H * d, config.hidden_size).T  # [d_model, H*d]
        out[f"{p}attn.o_proj.bias"] = state[f"{a}b_O"]
        if norm is not None:
            out[f"{p}ln_1.weight"] = state.get(f"blocks.{L}.ln1.w", ones)
            out[f"{p}ln_1.bias"] = state.get(f"blocks.{L}.ln1.b", zeros)
    if norm is not None:
        out["transformer.ln_f.weight"] = state.get("ln_final.w", ones)
        out["transformer.ln_f.bias"] = state.get("ln_final.b", zeros)
    return config, {k: v.detach().clone().contiguous() for k, v in out.items()}


def save_converted(config: AttnOnlyConfig, state: dict[str, torch.Tensor], out_dir: str | Path,
                   tokenizer: Any = None) -> Path:
    """Write the HF folder (config.json, model.safetensors, and the tokenizer when given)."""
    register()
    model = AttnOnlyForCausalLM(config)
    model.load_state_dict(state, strict=True)
    out = Path(out_dir)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m causalspec.run.attn_only",
                                     description="Convert a TransformerLens attention-only model to an HF folder.")
    parser.add_argument("config", help="HookedTransformerConfig as JSON (model.cfg.to_dict())")
    parser.add_argument("weights", help="HookedTransformer state_dict: .pth (weights_only) or .safetensors")
    parser.add_argument("tokenizer", help="a tokenizer folder or hub id (e.g. EleutherAI/gpt-neox-20b)")
    parser.add_argument("out", help="the folder to write")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    cfg = json.loads(Path(args.config).read_text())
    if str(args.weights).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(args.weights)
    else:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
    config, converted = convert_transformer_lens(cfg, state)
    save_converted(config, converted, args.out, AutoTokenizer.from_pretrained(args.tokenizer))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
