"""Regenerate the ground-truth zoo: compile RASP programs with tracr and write what the specs need.

Run from the repository root with the `zoo` extra installed (tracr and jax; nothing else in causalspec
needs them):

    pip install -e '.[zoo]'
    python examples/zoo/compile_zoo.py            # every program
    python examples/zoo/compile_zoo.py count_a    # one program

For each program NAME this writes, next to this file:

- `NAME.safetensors` — the compiled weights under the parameter names of the plain-torch port
  (`causalspec/testing/tracr_port.py`), plus the read-out matrix `unembed.weight` (tracr's projection of
  the residual stream onto the output space, which tracr computes on the fly and never stores);
- `NAME.json` — the model's configuration, the vocabulary and its token ids (BOS and PAD included),
  the residual-stream layout (every basis direction of tracr's residual space in order; for each RASP
  value, the dimensions it occupies, its encoding and values, and the half-layer that writes it, hence
  from which residual tap on it is present) and tracr's own outputs on every input of the program's
  input space (its decoded output per input, and the residual stream at every tap on a few inputs), which
  `tests/examples/test_zoo.py` compares the torch port against without jax.

Only regeneration imports tracr; the checks and the tests read the committed files.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from safetensors.numpy import save_file
from tracr.compiler import (
    assemble,
    basis_inference,
    craft_graph_to_model,
    craft_model_to_transformer,
    expr_to_craft_graph,
    lib,
    nodes,
    rasp_to_graph,
)
from tracr.craft import bases, transformers
from tracr.rasp import rasp

HERE = Path(__file__).resolve().parent
BOS, PAD = "BOS", "PAD"
#: about how many inputs (spread over the input space) get their whole residual stream recorded
RECORD_STREAMS = 16


@dataclass(frozen=True)
class Program:
    """One zoo program: how to build it, and the input space it is compiled for."""

    name: str
    source: str  # how the program is written, for the JSON and docs/zoo.md
    build: Callable[[], rasp.SOp]
    vocab: tuple[str, ...]
    max_seq_len: int


def _count_a() -> rasp.SOp:
    # tracr's lib.make_count(tokens, "a"): a SelectorWidth of Select(tokens, tokens, k == "a")
    return lib.make_count(rasp.tokens, "a").named("count_a")


def _detect_ab() -> rasp.SOp:
    # tracr's lib.detect_pattern(tokens, "ab"), with each intermediate named for the layout
    is_b = (rasp.tokens == "b").named("is_b")
    is_a = (rasp.tokens == "a").named("is_a")
    prev = rasp.Select(rasp.indices, rasp.indices, lambda k, q: q == k + 1).named("prev_selector")
    prev_is_a = rasp.Aggregate(prev, is_a, default=None).named("prev_is_a")
    return (prev_is_a & is_b).named("detect_ab")


def _length() -> rasp.SOp:
    # tracr's lib.make_length(): SelectorWidth(Select(tokens, tokens, TRUE))
    return lib.make_length()


def _reverse() -> rasp.SOp:
    # tracr's lib.make_reverse(tokens): length, opp_idx = length - indices, opp_idx-1, then an Aggregate
    return lib.make_reverse(rasp.tokens).named("reverse")


def _count_a_share() -> rasp.SOp:
    # a numerical value: count_a (as in lib.make_count) mapped to count / 4, the share of "a" tokens in
    # a sequence of 4; tracr compiles the Map to an MLP that writes one dimension
    count = lib.make_count(rasp.tokens, "a").named("count_a")
    return rasp.numerical(rasp.Map(lambda c: c / 4, count)).named("count_a_share")


PROGRAMS: dict[str, Program] = {
    p.name: p
    for p in [
        Program("count_a", 'lib.make_count(tokens, "a")', _count_a, ("a", "b", "c"), 4),
        Program("detect_ab", 'lib.detect_pattern(tokens, "ab")', _detect_ab, ("a", "b", "c"), 4),
        Program("length", "lib.make_length()", _length, ("a", "b"), 4),
        Program(
            "count_a_share",
            'numerical(Map(lambda c: c / 4, lib.make_count(tokens, "a")))',
            _count_a_share,
            ("a", "b", "c"),
            4,
        ),
        Program("reverse", "lib.make_reverse(tokens)", _reverse, ("a", "b", "c"), 4),
    ]
}


def _block_outputs(block: transformers.Block) -> set[str]:
    """The residual basis names a craft block writes."""
    if isinstance(block, transformers.MLP):
        return {d.name for d in block.snd.output_space.basis}
    return {d.name for head in block.as_multi().heads() for d in head.w_ov.output_space.basis}


def _jsonable(value: object) -> object:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def compile_program(prog: Program) -> None:
    sop = prog.build()
    # the steps of tracr.compiler.compiling.compile_rasp_to_model, kept apart so that the craft model
    # (which block writes which value) is at hand for the layout
    extracted = rasp_to_graph.extract_rasp_graph(sop)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, set(prog.vocab), prog.max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=100
    )
    craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
    model = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft_model,
        graph=graph,
        sink=sink,
        max_seq_len=prog.max_seq_len,
        causal=False,
        compiler_bos=BOS,
        compiler_pad=PAD,
    )
    _, module_names = assemble._get_model_config_and_module_names(craft_model)
    cfg = model.model_config
    labels = list(model.residual_labels)
    d_model = len(labels)

    # taps: 0 = embeddings; 2l+1 = after layer l's attention; 2l+2 = after layer l's MLP
    taps = ["embed"] + [f"layer {li} {part}" for li in range(cfg.num_layers) for part in ("attn", "mlp")]
    writers: dict[str, list[int]] = {}
    for name, block in zip(module_names, craft_model.blocks):
        layer = int(name.split("/")[1].split("_")[1])
        tap = 2 * layer + (1 if name.endswith("attn") else 2)
        for out in _block_outputs(block):
            writers.setdefault(out, []).append(tap)

    # group the residual directions by name (tracr sorts them, so each name is one contiguous block)
    blocks: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        blocks.setdefault(lab.split(":", 1)[0], []).append(i)
    # tracr labels carry a unique id (`count_a_1`); the layout names each value by its RASP name
    clean = {
        lab: node[nodes.EXPR].name for lab, node in graph.nodes.items() if isinstance(node[nodes.EXPR], rasp.SOp)
    }

    def readable(name: str) -> str:
        for lab in sorted(clean, key=len, reverse=True):
            if name == lab or name.startswith(lab + "_"):
                return clean[lab] + name[len(lab) :]
        return name

    values: dict[str, dict[str, object]] = {}
    for name, dims in blocks.items():
        if dims != list(range(dims[0], dims[-1] + 1)):
            raise SystemExit(f"{prog.name}: residual block {name} is not contiguous: {dims}")
        entry: dict[str, object] = {
            "tracr_label": name,
            "dims": [dims[0], dims[-1] + 1],
            "labels": [labels[i] for i in dims],
        }
        if name in (rasp.tokens.label, rasp.indices.label):
            entry["encoding"], entry["kind"] = "categorical", "input"
        elif name in graph.nodes and isinstance(graph.nodes[name][nodes.EXPR], rasp.SOp):
            expr = graph.nodes[name][nodes.EXPR]
            entry["encoding"] = rasp.get_encoding(expr).value
            entry["kind"] = "sop"
        else:
            entry["encoding"] = "numerical" if len(dims) == 1 and ":" not in labels[dims[0]] else "categorical"
            entry["kind"] = "hidden"  # a compiler-internal direction (a selector width's attention output, 'one')
        if ":" in labels[dims[0]]:
            entry["values"] = [lab.split(":", 1)[1] for lab in entry["labels"]]  # type: ignore[union-attr]
        # the first tap at which the value is in the stream, and every sublayer that writes it (a selector
        # width's attention output is written by its attention and cleaned up by its MLP)
        if name in (rasp.tokens.label, rasp.indices.label, "one"):
            entry["from_tap"], entry["written_by"] = 0, ["embed"]
        else:
            entry["from_tap"] = min(writers[name])
            entry["written_by"] = [taps[t] for t in sorted(writers[name])]
        values[readable(name)] = entry

    token_ids = dict(model.input_encoder.encoding_map)
    out_name = sink[nodes.ID]
    out_dims = values[readable(out_name)]["dims"]
    out_encoding = rasp.get_encoding(sink[nodes.EXPR]).value
    # the read-out: tracr's projection onto the output space, plus one last row that reads the
    # `tokens:PAD` direction, so that a decode hook can tell padding positions (whose outputs tracr's
    # apply() never shows) from real ones
    unembed = np.zeros((out_dims[1] - out_dims[0] + 1, d_model), dtype=np.float32)  # type: ignore[index]
    for row, dim in enumerate(range(out_dims[0], out_dims[1])):  # type: ignore[index]
        unembed[row, dim] = 1.0
    unembed[-1, labels.index(f"{rasp.tokens.label}:{PAD}")] = 1.0
    output_values = (
        [_jsonable(v) for v in sorted(graph.nodes[out_name][nodes.VALUE_SET])] if out_encoding == "categorical" else []
    )

    tensors: dict[str, np.ndarray] = {"unembed.weight": unembed}
    params = model.params
    tensors["token_embed.weight"] = np.asarray(params["token_embed"]["embeddings"], dtype=np.float32)
    tensors["pos_embed.weight"] = np.asarray(params["pos_embed"]["embeddings"], dtype=np.float32)
    for layer in range(cfg.num_layers):
        for part, subs in (("attn", ("query", "key", "value", "linear")), ("mlp", ("linear_1", "linear_2"))):
            for sub in subs:
                p = params[f"transformer/layer_{layer}/{part}/{sub}"]
                # haiku's Linear is x @ w + b with w [in, out]; torch's nn.Linear keeps [out, in]
                tensors[f"layers.{layer}.{part}.{sub}.weight"] = np.ascontiguousarray(np.asarray(p["w"]).T, np.float32)
                tensors[f"layers.{layer}.{part}.{sub}.bias"] = np.asarray(p["b"], dtype=np.float32)
    save_file(tensors, str(HERE / f"{prog.name}.safetensors"))

    # tracr's own outputs on every input of the input space, through its own apply()
    recorded = []
    streams = []
    inputs = [seq for n in range(1, prog.max_seq_len + 1) for seq in itertools.product(prog.vocab, repeat=n)]
    every = max(1, len(inputs) // RECORD_STREAMS)
    for i, seq in enumerate(inputs):
        out = model.apply([BOS, *seq])
        recorded.append({"tokens": list(seq), "decoded": [_jsonable(v) for v in out.decoded[1:]]})
        pad = prog.max_seq_len - len(seq)
        if i % every == 0:  # the whole stream on a spread of inputs, padded as the port runs them
            ids = jnp.array([[token_ids[BOS]] + [token_ids[t] for t in seq] + [token_ids[PAD]] * pad])
            fwd = model.forward(model.params, ids).transformer_output
            layers = [fwd.input_embeddings] + list(fwd.residuals)
            streams.append(
                {
                    "tokens": list(seq),
                    "taps": [np.round(np.asarray(x[0], dtype=np.float64), 6).tolist() for x in layers],
                }
            )

    layout = {
        "program": prog.name,
        "source": prog.source,
        "compiler": "tracr-pypi 1.0.0, compile_rasp_to_model steps, mlp_exactness=100, causal=False",
        "max_seq_len": prog.max_seq_len,
        "vocab": list(prog.vocab),
        "bos": BOS,
        "pad": PAD,
        "token_ids": token_ids,
        "config": {
            "d_model": d_model,
            "num_layers": cfg.num_layers,
            "num_heads": cfg.num_heads,
            "key_size": cfg.key_size,
            "mlp_hidden_size": cfg.mlp_hidden_size,
            "vocab_size": int(tensors["token_embed.weight"].shape[0]),
            "n_positions": int(tensors["pos_embed.weight"].shape[0]),
            "output_dims": int(unembed.shape[0]) - 1,
        },
        "taps": taps,
        "residual_labels": labels,
        "values": values,
        "output": {"sop": readable(out_name), "encoding": out_encoding, "values": output_values},
        "recorded": recorded,
        "recorded_streams": streams,
    }
    (HERE / f"{prog.name}.json").write_text(json.dumps(layout, indent=1) + "\n")
    print(f"{prog.name}: d_model {d_model}, {cfg.num_layers} layer(s), {len(recorded)} recorded inputs")


def main(argv: list[str]) -> None:
    names = argv or list(PROGRAMS)
    for name in names:
        compile_program(PROGRAMS[name])


if __name__ == "__main__":
    main(sys.argv[1:])
