"""Hooks of the zoo specs: build the torch port of a compiled program, encode inputs, decode outputs.

Every spec of this folder names a program's builder (`build_count_a`, …), its encoder and its decoder
here. The builders shape `causalspec.testing.tracr_port.TracrTransformer` from the program's layout
JSON (causalspec then loads the compiled weights into it from the `.safetensors` file the spec names).

The causal models name the input tokens as a family `t[1]`, `t[2]`, … (token i of the sequence; the
network sees it at position i, after BOS at 0; the unrolled names `t0`, `t1`, … for token k + 1 are
read too); programs over sequences of varying length also have an input `n`, the
number of real tokens (positions after the n-th are PAD, and the tokens the model draws for them are
ignored). A program's output is one value per position; the specs read it as one number, the
positions' values as the digits of a base-R numeral, first position first: that is how a spec of
today's language, whose output is one value per example, states a per-position output exactly.

- Fixed-length programs (count_a, detect_ab): digit = the index of the position's value in the output
  space (tracr's argmax), R = number of output values.
- Varying-length programs (length, reverse): digit = the value's index; or `len(values)` ("none")
  where the output space holds no value (tracr's Aggregate found no key: every output coordinate is 0,
  and tracr's argmax would silently show the first value); or `len(values) + 1` ("pad") at a padding
  position. R = number of output values + 2.
- The numerical program (count_a_share): digit = 4 × the position's value, which must be a whole
  number (to 1e-3); anything else decodes to -1, outside the output's type, so it counts as wrong.
  Today's language has no real-valued variables, so the model states the value in quarters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from causalspec.testing.tracr_port import (
    TracrTransformer,
    build_port,
    decode_categorical,
    decode_numerical,
    encode_tokens,
    load_layout,
)

HERE = Path(__file__).resolve().parent
_LAYOUTS: dict[str, dict[str, Any]] = {}


def layout(program: str) -> dict[str, Any]:
    if program not in _LAYOUTS:
        _LAYOUTS[program] = load_layout(HERE / f"{program}.json")
    return _LAYOUTS[program]


def _tokens(program: str, inputs: dict[str, list[Any]]) -> list[list[Any]]:
    """The token columns, first token first: the family `t[1]`… or the unrolled `t0`…."""
    n = layout(program)["max_seq_len"]
    return [inputs[f"t[{k + 1}]"] if f"t[{k + 1}]" in inputs else inputs[f"t{k}"] for k in range(n)]


def _encode(program: str, inputs: dict[str, list[Any]]) -> torch.Tensor:
    columns = _tokens(program, inputs)
    return encode_tokens(layout(program), [list(seq) for seq in zip(*columns)])


def _value_index(value: Any) -> int:
    # bool outputs are digits 0/1 (False < True, as in tracr's sorted output space); ints are themselves
    return int(value)


def _decode_numeral(program: str, outputs: torch.Tensor) -> list[int]:
    radix = len(layout(program)["output"]["values"])
    result = []
    for row in decode_categorical(layout(program), outputs):
        number = 0
        for value in row:
            number = number * radix + _value_index(value)
        result.append(number)
    return result


def _decode_padded_numeral(program: str, outputs: torch.Tensor) -> list[int]:
    n_values = len(layout(program)["output"]["values"])
    none, pad, radix = n_values, n_values + 1, n_values + 2
    result = []
    for row in outputs[:, 1:]:  # every position after BOS
        number = 0
        for position in row:
            if position[-1] > 0.5:
                digit = pad
            elif position[:-1].max() < 0.5:
                digit = none
            else:
                digit = int(position[:-1].argmax())
            number = number * radix + digit
        result.append(number)
    return result


def _encode_padded(program: str, inputs: dict[str, list[Any]]) -> torch.Tensor:
    columns = _tokens(program, inputs)
    return encode_tokens(layout(program), [list(seq[:length]) for length, *seq in zip(inputs["n"], *columns)])


# ── count_a: lib.make_count(tokens, "a") ──


def build_count_a() -> TracrTransformer:
    return build_port(layout("count_a"))


def encode_count_a(inputs: dict[str, list[Any]]) -> torch.Tensor:
    return _encode("count_a", inputs)


def decode_count_a(outputs: torch.Tensor) -> list[int]:
    return _decode_numeral("count_a", outputs)


# ── detect_ab: lib.detect_pattern(tokens, "ab") ──


def build_detect_ab() -> TracrTransformer:
    return build_port(layout("detect_ab"))


def encode_detect_ab(inputs: dict[str, list[Any]]) -> torch.Tensor:
    return _encode("detect_ab", inputs)


def decode_detect_ab(outputs: torch.Tensor) -> list[int]:
    return _decode_numeral("detect_ab", outputs)


# ── length: lib.make_length() over sequences of 1..4 tokens ──


def build_length() -> TracrTransformer:
    return build_port(layout("length"))


def encode_length(inputs: dict[str, list[Any]]) -> torch.Tensor:
    return _encode_padded("length", inputs)


def decode_length(outputs: torch.Tensor) -> list[int]:
    return _decode_padded_numeral("length", outputs)


# ── reverse: lib.make_reverse(tokens) over sequences of 1..4 tokens ──


def build_reverse() -> TracrTransformer:
    return build_port(layout("reverse"))


def encode_reverse(inputs: dict[str, list[Any]]) -> torch.Tensor:
    return _encode_padded("reverse", inputs)


def decode_reverse(outputs: torch.Tensor) -> list[int]:
    return _decode_padded_numeral("reverse", outputs)


# ── count_a_share: numerical(Map(lambda c: c / 4, lib.make_count(tokens, "a"))) ──


def build_count_a_share() -> TracrTransformer:
    return build_port(layout("count_a_share"))


def encode_count_a_share(inputs: dict[str, list[Any]]) -> torch.Tensor:
    return _encode("count_a_share", inputs)


def decode_count_a_share(outputs: torch.Tensor) -> list[int]:
    result = []
    for row in decode_numerical(outputs):
        number = 0
        for value in row:
            quarters = round(4 * value)
            if abs(4 * value - quarters) > 1e-3 or not 0 <= quarters <= 4:
                number = -1
                break
            number = number * 5 + quarters
        result.append(number)
    return result
