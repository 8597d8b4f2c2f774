"""The adapter for Hugging Face language models: prompt templates in, answer tokens out.

Why it looks like this (DESIGN.md §5 lists the pitfalls it exists to avoid):

* **Right padding, always.** Every row is tokenized on its own (one batched tokenizer call
  without padding) and padded on the right here, with an attention mask. Real tokens then
  sit at positions ``0..len-1`` in every row, so a causal model computes them exactly as
  for the row alone (no ``position_ids`` fix-up, no left-padding bugs), and the tokenizer
  object is never mutated (its ``padding_side`` and pad token stay the user's). A
  tokenizer without a pad token pads with its eos id, else 0; padding is masked and no
  position this adapter returns ever points at it.
* **Positions from offsets, per row.** A prompt is rendered from a row's high-level values
  with the character span of every slot occurrence kept; the slot's tokens are the tokens
  whose offset span overlaps it. A name that is two tokens is two tokens, wherever it is.
* **Answers are scored among the hypothesis's values.** See `HFAdapter.predict`.

Filling slots (`Template.render`): enum members are written verbatim (`Mary`,
`Mary Ann`), ints in decimal (`7`, `-2`), bools as `true` / `false` (the way a spec
writes them). Prompt placeholders may name any model variable: non-inputs are computed
by running the high-level model on the row (its un-intervened values).

The positions contract (the engine relies on it):

* `positions_list(batch, binding)` is the definition: for every row, the token indices
  the binding's positions select, concatenated in the order written (may differ in
  length between rows: `@ all`, or a multi-token slot with `.all`). The engine's clean
  pass uses it to cache each input's activations at exactly its own real tokens.
* `positions(batch, binding)` is the same as a rectangular LongTensor ``[batch, n_pos]``.
  It is used for patched batches, where the engine groups pairs by token counts, so the
  rows have equal counts; unequal counts raise `CheckUsageError` (never padded: padding
  positions are never read or patched). It never returns None: `all` is every real
  token of the row, listed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from causalspec.run.adapters import Batch, CheckUsageError
from causalspec.run.patching import decode, with_nonfinite
from causalspec.run.values import ValueTable
from causalspec.run.loading import LoadedNetwork
from causalspec.semantics.domains import Domain
from causalspec.semantics.model import CausalModel
from causalspec.semantics.sites import PositionSpec

ANSWER_TOKEN_PARTS = ("first", "last")


@dataclass
class RowEncoding:
    """One row's prompt after rendering and tokenization (no padding)."""

    values: dict[str, Any]  # Python values of the inputs (for descriptions)
    text: str
    template: str  # which template, for messages ("the `ABB` template")
    ids: list[int]
    offsets: list[tuple[int, int]]
    slots: dict[tuple[str, int], tuple[int, ...]] = field(default_factory=dict)  # (name, occurrence) -> tokens
    answer_pos: int = -1  # where the answer is read: last real token (causal) / first mask token (masked)

    @property
    def length(self) -> int:
        return len(self.ids)


class HFAdapter:
    """Adapter for an `hf` network with a `prompt` template (see the module docstring).

    Reads the answer from the logits of a causal LM at the last real token, or of a
    masked LM at the first mask token (the prompt must contain the tokenizer's mask
    token, e.g. ``[MASK]``). A `sequence_classification` model without an answer template
    is decoded by argmax over its classes (class i = the i-th value of the output).
    """

    sequence = True

    def __init__(self, net: LoadedNetwork, network_ir, model: CausalModel, output: str,
                 values: ValueTable | None = None, position: int | PositionSpec | None = None):
        self.net = net
        # `output : value logit " yes"` (a real output): that token's logit at the answer position
        # is the value, matched against the model's exact values within the tolerance (run.values)
        self.values = values
        # `O -> output @ 3` on a token-level head (`class token_classification`): the token index read
        self.position = position
        self.network_ir = network_ir
        self.model = model
        self.output = output
        self.domain: Domain = model.domain(output)
        self.tokenizer = net.tokenizer
        self.model_class = (net.extra or {}).get("model_class", "causal_lm")
        encoding = network_ir.encoding
        if encoding.prompt is None:
            raise CheckUsageError(f"network `{net.name}`: hf networks need a `prompt` template for "
                                  "`causalspec check` (encode hooks on hf networks are not supported yet)")
        if self.tokenizer is None:
            raise CheckUsageError(f"network `{net.name}` has no tokenizer; prompt templates need one")
        self.prompt = encoding.prompt
        self.answer = encoding.answer
        self.pad_id = _pad_id(self.tokenizer)
        self._special_ids = set(getattr(self.tokenizer, "all_special_ids", None) or ())
        self.mask_id = None
        self._cache: dict[tuple, RowEncoding] = {}
        self._needed = set(model.inputs) | {p for t in self.prompt.templates() for p in t.placeholders}
        if self.prompt.by is not None:
            self._needed.add(self.prompt.by)
        self._needs_run = not self._needed <= set(model.inputs)  # a placeholder names a non-input
        if self.model_class == "masked_lm":
            self.mask_id = self._mask_id()
        if values is not None:
            if self.model_class not in ("causal_lm", "masked_lm"):
                raise CheckUsageError(f"network `{net.name}`: `output : value logit` reads a token's logit, which "
                                      f"needs a language-model head (class causal_lm or masked_lm), not "
                                      f"`{self.model_class}`")
            self.candidates: torch.Tensor | None = self._logit_token(network_ir.output_logit)  # LongTensor [1]
        elif self.answer is not None:
            if self.model_class not in ("causal_lm", "masked_lm"):
                raise CheckUsageError(f"network `{net.name}`: an answer template needs a language-model head "
                                      f"(class causal_lm or masked_lm), not `{self.model_class}`")
            self.candidates = self._answer_candidates()  # LongTensor [n_values]
        elif self.model_class == "sequence_classification":
            self.candidates = None
        elif self.model_class == "token_classification":
            if position is None:
                raise CheckUsageError(f"network `{net.name}` is a token-level head (class token_classification): "
                                      f"read `{output}` at a token, e.g. `{output} -> output @ 3` (token index, "
                                      "0-based), or `O[i] -> output @ i` for a family")
            self.candidates = None
        else:
            raise CheckUsageError(f"network `{net.name}` has no `answer` template: write e.g. "
                                  f"`answer \" {{{output}}}\"` so the output can be read from the LM's logits")

    # answers ---------------------------------------------------------------------------
    def _logit_token(self, text: str | None) -> torch.Tensor:
        """The one token whose logit is the value (`output : value logit " yes"`)."""
        toks = self.tokenizer(text or "", add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            shown = ", ".join(repr(self.tokenizer.decode([t])) for t in toks) or "no token"
            raise CheckUsageError(f"network `{self.net.name}`: `output : value logit {text!r}` must name one token; "
                                  f"the tokenizer reads {len(toks)} ({shown}) — name one of them, e.g. with or "
                                  "without its leading space")
        unknown_token_check(self.tokenizer, toks[0], text or "", f"network `{self.net.name}`: `output : value logit`")
        return torch.tensor(toks, dtype=torch.long)

    def _answer_candidates(self) -> torch.Tensor:
        """For each value of the output domain, the token its rendered answer is scored by."""
        part = self.answer.tokens
        if part not in ANSWER_TOKEN_PARTS:
            raise CheckUsageError(f"network `{self.net.name}`: answer tokens `{part}` is not supported yet; "
                                  "use `first` (default) or `last`")
        ids = []
        owner: dict[int, Any] = {}
        for value in self.domain.values:
            text = self.answer.template.render({self.output: value}).text
            toks = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not toks:
                raise CheckUsageError(f"network `{self.net.name}`: the answer for {self.output} = "
                                      f"{self.domain.format(value)} ({text!r}) tokenizes to no tokens")
            tok = int(toks[0] if part == "first" else toks[-1])
            unknown_token_check(self.tokenizer, tok, text, f"network `{self.net.name}`: the answer for "
                                                           f"{self.output} = {self.domain.format(value)}")
            if tok in owner:
                shown = self.tokenizer.convert_ids_to_tokens([tok])[0]
                raise CheckUsageError(
                    f"network `{self.net.name}`: the answers for {self.output} = {self.domain.format(owner[tok])} "
                    f"and {self.output} = {self.domain.format(value)} share their {part} token {shown!r} "
                    f"(id {tok}), so the network's answer cannot tell them apart; change the answer template, "
                    f"score the other token (`answer \"…\" {'last' if part == 'first' else 'first'}`), or use values "
                    "that tokenize apart")
            owner[tok] = value
            ids.append(tok)
        vocab = self._vocab_size()
        if vocab is not None and max(ids) >= vocab:
            raise CheckUsageError(f"network `{self.net.name}`: answer token id {max(ids)} is outside the model's "
                                  f"vocabulary of {vocab}; do the tokenizer and the model belong together?")
        return torch.tensor(ids, dtype=torch.long)

    def _vocab_size(self) -> int | None:
        cfg = getattr(self.net.module, "config", None)
        size = getattr(cfg, "vocab_size", None)
        return int(size) if isinstance(size, int) else None

    def _mask_id(self) -> int:
        tok = self.tokenizer
        if getattr(tok, "mask_token_id", None) is None or not getattr(tok, "mask_token", None):
            raise CheckUsageError(f"network `{self.net.name}` is a masked LM but its tokenizer has no mask token")
        for t in self.prompt.templates():
            if tok.mask_token not in t.text:
                raise CheckUsageError(f"network `{self.net.name}` is a masked LM: {self.prompt.case_name(t)} "
                                      f"must contain the mask token `{tok.mask_token}` where the answer goes "
                                      f"(got {t.text!r})")
        return int(tok.mask_token_id)

    # encoding --------------------------------------------------------------------------
    def encode(self, rows: Mapping[str, np.ndarray]) -> Batch:
        """Render, tokenize (cached per distinct row) and right-pad a batch of rows."""
        names = sorted(rows)
        n = len(rows[names[0]])
        keys = [tuple(rows[k][j].item() for k in names) for j in range(n)]
        missing = [j for j, key in enumerate(keys) if key not in self._cache]
        if missing:
            sub = {k: np.asarray(rows[k])[missing] for k in names}
            for key, enc in zip((keys[j] for j in missing), self._encode_rows(sub)):
                self._cache[key] = enc
        encs = [self._cache[key] for key in keys]
        width = max(e.length for e in encs)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for j, e in enumerate(encs):
            ids[j, :e.length] = torch.tensor(e.ids, dtype=torch.long)
            mask[j, :e.length] = 1
        device = self.net.device
        inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}  # [batch, seq] each
        return Batch(inputs, dict(rows), n, meta={"rows": encs})

    def _encode_rows(self, rows: Mapping[str, np.ndarray]) -> list[RowEncoding]:
        model = self.model
        env = model.run(rows) if self._needs_run else rows
        n = len(next(iter(rows.values())))
        decoded = {k: model.domain(k).decode(np.asarray(env[k])) for k in self._needed}
        rendered, labels, shown = [], [], []
        for j in range(n):
            values = {k: v[j] for k, v in decoded.items()}
            try:
                template = self.prompt.select(values)
            except KeyError as exc:  # analysis checks coverage; a defensive message all the same
                raise CheckUsageError(f"network `{self.net.name}`: {exc.args[0]}") from exc
            rendered.append(template.render(values))
            labels.append(self.prompt.case_name(template))
            shown.append({k: values[k] for k in model.inputs if k in values})
        texts = [r.text for r in rendered]
        try:
            tok = self.tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True)
        except NotImplementedError as exc:
            raise CheckUsageError(f"network `{self.net.name}`: its tokenizer gives no offsets mapping (a slow "
                                  "tokenizer?); slot positions need a fast tokenizer") from exc
        out = []
        for j, r in enumerate(rendered):
            ids = [int(t) for t in tok["input_ids"][j]]
            offsets = [(int(a), int(b)) for a, b in tok["offset_mapping"][j]]
            enc = RowEncoding(shown[j], r.text, labels[j], ids, offsets)
            if not ids:
                raise CheckUsageError(f"network `{self.net.name}`: the prompt of example ({self._show(enc)}) "
                                      "tokenizes to no tokens")
            for s in r.slots:
                enc.slots[(s.name, s.occurrence)] = tuple(
                    i for i, (a, b) in enumerate(offsets) if b > a and a < s.end and b > s.start)
            if self.mask_id is not None:
                where = [i for i, t in enumerate(ids) if t == self.mask_id]
                if not where:
                    raise CheckUsageError(f"network `{self.net.name}`: no mask token in the prompt of example "
                                          f"({self._show(enc)}); a masked LM answers at its mask token")
                enc.answer_pos = where[0]
            else:
                if len(ids) > 1 and offsets[-1][1] <= offsets[-1][0] and ids[-1] in self._special_ids:
                    shown = self.tokenizer.convert_ids_to_tokens([ids[-1]])[0]
                    raise CheckUsageError(
                        f"network `{self.net.name}`: the tokenizer appends the special token {shown!r} after the "
                        f"prompt of example ({self._show(enc)}); a causal LM would answer after it — use a "
                        "tokenizer that adds no end-of-sequence token")
                enc.answer_pos = len(ids) - 1
            out.append(enc)
        return out

    def forward(self, batch: Batch) -> torch.Tensor:
        kwargs = dict(batch.inputs)
        if self.model_class == "causal_lm":
            kwargs["use_cache"] = False  # one full pass; no KV cache to build
        out = self.net.module(**kwargs)
        return out.logits if hasattr(out, "logits") else out[0]  # [batch, seq, vocab] | [batch, classes]

    # decoding --------------------------------------------------------------------------
    def predict(self, raw: torch.Tensor, batch: Batch, offset: torch.Tensor | None = None) -> np.ndarray:
        """Output codes: argmax over the candidates' logits at the answer position.

        The restriction to candidates is deliberate: the question is which of the
        hypothesis's values the network prefers, not what its free-running next token
        is (a network that puts most mass on " the" still ranks the names). Logits, not
        log-probs: the softmax normaliser is shared by all candidates of a row, so the
        argmax is the same. A row whose candidate logits hold a NaN or an inf gets the code
        NAN_OUTPUT or INF_OUTPUT (`run.patching`): never a label, and the claim errors.
        """
        if self.model_class == "token_classification":  # [batch, seq, classes], read at `self.position`
            if raw.dim() != 3 or raw.shape[2] != self.domain.size:
                raise CheckUsageError(f"network `{self.net.name}`: output of shape {tuple(raw.shape)}; expected "
                                      f"[batch, seq, {self.domain.size}] classes for `{self.output}` "
                                      f"({self.domain.describe()})")
        elif self.candidates is None:  # sequence classification: [batch, classes]
            if raw.dim() != 2 or raw.shape[1] != self.domain.size:
                raise CheckUsageError(f"network `{self.net.name}`: output of shape {tuple(raw.shape)}; expected "
                                      f"[batch, {self.domain.size}] classes for `{self.output}` "
                                      f"({self.domain.describe()})")
        else:
            if raw.dim() != 3 or raw.shape[0] != batch.size:
                raise CheckUsageError(f"network `{self.net.name}`: logits of shape {tuple(raw.shape)}; expected "
                                      "[batch, seq, vocab]")
        spec = self._read_spec(batch)
        if spec["answer_pos"] is not None and offset is not None:  # raw covers positions offset[i].. of row i
            spec["answer_pos"] = spec["answer_pos"] - offset.cpu()  # (an incremental forward)
        if self.values is not None:  # the named token's logit is the value
            rows = torch.arange(raw.shape[0], device=raw.device)
            logit = raw[rows, spec["answer_pos"].to(raw.device)][:, self._value_token(raw)].float()  # [b, 1]
            flagged = with_nonfinite(torch.zeros(raw.shape[0], dtype=torch.long, device=raw.device), logit)
            codes = self.values.match(logit[:, 0].cpu().numpy(), self.net.name)
            flags = flagged.cpu().numpy().astype(np.int64)
            return np.where(flags != 0, flags, codes)
        return decode(raw, spec["answer_pos"], spec["candidates"]).cpu().numpy().astype(np.int64)

    def read_value(self, raw: torch.Tensor, batch: Batch) -> torch.Tensor:
        """`output : value logit "tok"`: that token's logit at each row's answer position, [batch]
        (differentiable: learned featurizers train on it)."""
        where = self._read_spec(batch)["answer_pos"].to(raw.device)
        at = raw[torch.arange(raw.shape[0], device=raw.device), where]  # [batch, vocab]
        return at[:, self._value_token(raw)][:, 0]

    def _value_token(self, like: torch.Tensor) -> torch.Tensor:
        """The token of `output : value logit "tok"` ([1]), on `like`'s device; __init__ sets it with `values`."""
        if self.candidates is None:
            raise CheckUsageError(f"network `{self.net.name}`: `{self.output}` is read as a value logit, "
                                  "but no token was resolved for it")
        return self.candidates.to(like.device)

    def decode_spec(self, batch: Batch) -> dict:
        """How `run.patching.decode` reads this batch's output codes: each row's answer
        position and the candidates' token ids (both None for sequence classification). Plain
        data, so a remote nnsight session can decode on the server and return only codes."""
        if self.values is not None:
            raise CheckUsageError(f"network `{self.net.name}`: a value read from a logit (`output : value logit`) "
                                  "is matched here, not in an nnsight session: check it with `backend torch`")
        return self._read_spec(batch)

    def _read_spec(self, batch: Batch) -> dict:
        if self.model_class == "token_classification":
            return {"answer_pos": self.read_positions(batch), "candidates": None}
        if self.candidates is None:
            return {"answer_pos": None, "candidates": None}
        return {"answer_pos": torch.tensor([e.answer_pos for e in batch.meta["rows"]], dtype=torch.long),
                "candidates": self.candidates}

    def read_positions(self, batch: Batch) -> torch.Tensor:
        """A token-level head (`class token_classification`): the token each row's output is read at,
        [batch] — `O -> output @ 3` in every row, or a position resolved per example (`@ END`,
        `@ S[2]`: a slot, `last`, an offset of them), which must be one token."""
        rows = batch.meta["rows"]
        pos = self.position if self.position is not None else 0
        if isinstance(pos, int):
            short = next((e for e in rows if pos >= e.length), None)
            if short is not None:
                raise CheckUsageError(f"network `{self.net.name}`: the output is read at token {pos}, but example "
                                      f"({self._show(short)}) has {short.length} token(s)")
            return torch.full((batch.size,), pos, dtype=torch.long)
        out = []
        for enc in rows:
            tokens = self._resolve(pos, enc)
            if len(tokens) != 1:
                raise CheckUsageError(f"network `{self.net.name}`: the output `{self.output}` is read at position "
                                      f"`{_label(pos)}`, which covers {len(tokens)} tokens in example "
                                      f"({self._show(enc)}); the output is read at one token — use `.first` or "
                                      "`.last` of the slot")
            out.append(tokens[0])
        return torch.tensor(out, dtype=torch.long)

    # positions -------------------------------------------------------------------------
    def positions_list(self, batch: Batch, binding) -> list[list[int]]:
        """Per row, the token indices the binding's positions select (in the order written)."""
        return [[i for spec in binding.positions for i in self._resolve(spec, enc)]
                for enc in batch.meta["rows"]]

    def positions(self, batch: Batch, binding) -> torch.Tensor:
        """`positions_list` as a LongTensor [batch, n_pos]; rows must select equally many tokens."""
        lists = self.positions_list(batch, binding)
        counts = {len(p) for p in lists}
        if len(counts) > 1:
            encs = batch.meta["rows"]
            a = next(j for j, p in enumerate(lists) if len(p) == min(counts))
            b = next(j for j, p in enumerate(lists) if len(p) == max(counts))
            raise CheckUsageError(
                f"site binding `{binding.site}` covers {len(lists[a])} token(s) in example ({self._show(encs[a])}) "
                f"but {len(lists[b])} in example ({self._show(encs[b])}); a patch needs equal counts — choose a "
                "token part (first/last) in the position, or inputs that tokenize alike")
        return torch.tensor(lists, dtype=torch.long).reshape(batch.size, -1)

    def _resolve(self, spec, enc: RowEncoding) -> list[int]:
        n = enc.length
        kind = spec.kind
        if kind == "last":
            return [n - 1]
        if kind == "all":
            return list(range(n))
        if kind == "index":
            self._in_range(spec, [spec.index], enc)
            return [spec.index]
        if kind == "range":
            span = list(range(spec.lo, spec.hi + 1))
            self._in_range(spec, span, enc)
            return span
        if kind == "slot":
            toks = enc.slots.get((spec.slot, spec.occurrence))
            if toks is None:
                raise CheckUsageError(f"position `{_label(spec)}`: {enc.template} has no occurrence "
                                      f"{spec.occurrence} of `{{{spec.slot}}}` (example: {self._show(enc)})")
            if not toks:
                raise CheckUsageError(f"position `{_label(spec)}`: slot `{{{spec.slot}}}` (occurrence "
                                      f"{spec.occurrence}) maps to no token in example ({self._show(enc)}); "
                                      "is its value empty?")
            return [toks[0]] if spec.part == "first" else [toks[-1]] if spec.part == "last" else list(toks)
        if kind == "offset":
            shifted = [p + spec.offset for p in self._resolve(spec.base, enc)]
            self._in_range(spec, shifted, enc)
            return shifted
        raise CheckUsageError(f"position kind `{kind}` is not supported")  # pragma: no cover

    def _in_range(self, spec, positions: Sequence[int], enc: RowEncoding) -> None:
        bad = [p for p in positions if not 0 <= p < enc.length]
        if bad:
            raise CheckUsageError(f"position `{_label(spec)}` is token {bad[0]}, outside the prompt of example "
                                  f"({self._show(enc)}), which has {enc.length} token(s) (indices 0..{enc.length - 1})")

    # descriptions ----------------------------------------------------------------------
    def _show(self, enc: RowEncoding) -> str:
        values = ", ".join(f"{k}={self.model.domain(k).format(v)}" for k, v in enc.values.items())
        return f"{values}: {enc.text!r}"

    def describe_row(self, batch: Batch, i: int) -> str:
        """The row's input values and its rendered prompt, e.g. `IO=Mary, S=John: 'When Mary …'`."""
        return self._show(batch.meta["rows"][i])

    def tokens(self, batch: Batch, i: int) -> list[str]:
        """The row's tokens as strings (for reports and debugging)."""
        return self.tokenizer.convert_ids_to_tokens(batch.meta["rows"][i].ids)


def unknown_token_check(tokenizer, tok: int, text: str, what: str) -> None:
    """Refuse a scored token that is the tokenizer's unknown token while the text is not.

    Why: a word-level tokenizer maps a word it does not know (a typo, `"Marry"`, or a value
    missing from the vocabulary) to `[UNK]`/`<unk>`, and the logit of that token is a number
    like any other: a circuit metric `logit_diff("Marry", C)` then scored the unknown token and
    passed (tests/claims/test_circuit_redteam2.py). What is scored must be the text written."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or int(tok) != int(unk):
        return
    unk_text = getattr(tokenizer, "unk_token", None)
    if unk_text and str(unk_text) in text:
        return  # the text names the unknown token itself
    raise CheckUsageError(f"{what} ({text!r}) is scored by the tokenizer's unknown token {unk_text!r} (id {tok}): "
                          "the tokenizer does not know it, so its logit is not that text's; check the spelling, "
                          "or use a value the tokenizer has")


def _label(spec) -> str:
    return f"{spec.name} = {spec}" if spec.name else str(spec)


def _pad_id(tokenizer) -> int:
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0
