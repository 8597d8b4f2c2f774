"""Adapters: how high-level inputs become network inputs, and network outputs become values.

Why an adapter per backend: the engine only needs four things from a network — encode a
batch of high-level inputs, run it, decode the output into the model's output domain, and
say which token positions a site binding means for each row. A torch network gets them
from the user's `encode`/`decode` hooks; a Hugging Face LM from prompt templates, a
tokenizer and answer tokens (`causalspec.run.hf_adapter`).
"""

from __future__ import annotations

import contextlib
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
import torch

from causalspec.errors import CheckError
from causalspec.run.batching import is_oom
from causalspec.run.loading import LoadedNetwork, NetworkLoadError, UserCodeError, call_user, describe_exception
from causalspec.run.patching import UNDECODABLE, with_nonfinite
from causalspec.run.values import ValueTable
from causalspec.semantics.domains import Domain
from causalspec.semantics.model import CausalModel
from causalspec.semantics.sites import PositionSpec

ENCODED = "a Tensor [batch, …] or a dict of tensors"  # what an encode hook must return


class CheckUsageError(CheckError):
    """A problem with the spec that only shows at check time (e.g. token counts differ)."""


@dataclass
class Batch:
    """A batch of encoded inputs. `rows` are the high-level values (array representation)."""

    inputs: Any  # tensor or dict of tensors handed to the module
    rows: dict[str, np.ndarray]
    size: int
    meta: dict = field(default_factory=dict)


class Adapter(Protocol):
    sequence: bool  # whether activations have a sequence axis

    def encode(self, rows: Mapping[str, np.ndarray]) -> Batch: ...

    def forward(self, batch: Batch) -> torch.Tensor: ...

    def predict(self, raw: torch.Tensor, batch: Batch) -> np.ndarray: ...

    def positions(self, batch: Batch, binding) -> torch.Tensor | None: ...

    def describe_row(self, batch: Batch, i: int) -> str: ...


class TorchAdapter:
    """A user `nn.Module` with an `encode` hook (required) and an optional `decode` hook.

    Without a decode hook the output is decoded by argmax over the last axis: class i is
    the i-th value of the output domain (`false, true` for bool; `lo..hi` for ints).

    The hooks and the module's forward are user code: what they raise (`sys.exit` too) and
    what they return is checked here, at the boundary, and a fault becomes a `UserCodeError`
    naming the hook and what was expected — a check ERROR, never an internal error. A row
    whose output holds a NaN or an inf is decoded as NAN_OUTPUT / INF_OUTPUT, whatever the
    decode hook says (a claim with such outputs errors: `claims.alignment.evaluate_conditions`).
    """

    sequence = False

    def __init__(self, net: LoadedNetwork, model: CausalModel, output: str, position: int | PositionSpec | None = None,
                 values: ValueTable | None = None):
        if net.encode_hook is None:
            raise NetworkLoadError(f"network `{net.name}` needs an `encode \"file.py:function\"` hook: "
                                   "causalspec cannot guess how high-level inputs become tensors")
        self._encode_hook: Callable = net.encode_hook
        self.net = net
        self.model = model
        self.output = output
        self.domain: Domain = model.domain(output)
        # `O -> output @ 3`: a [batch, positions, classes] output is read at this position
        self.position = position
        # `output : value` (a real output): the output is one number per example, matched
        # against the model's exact values within the check's tolerance (run.values)
        self.values = values
        self._embeddings: tuple[Any, list] = (None, [])

    def _hook(self, kind: str) -> str:
        """`encode hook `model.py:encode`` (the hook as the spec names it)."""
        ref = self.net.extra.get(kind)
        return f"{kind} hook" + (f" `{ref}`" if ref else "")

    def encode(self, rows: Mapping[str, np.ndarray]) -> Batch:
        values = {k: self.model.domain(k).decode(v) for k, v in rows.items()}
        n = len(next(iter(rows.values())))
        what = f"network `{self.net.name}`: {self._hook('encode')}"
        inputs = call_user(what, self._encode_hook, values)
        check_encoded(inputs, n, what)
        return Batch(_to_device(inputs, self.net.device), dict(rows), n)

    def forward(self, batch: Batch) -> torch.Tensor:
        module = self.net.module
        try:
            with self._id_guard(module):
                out = module(**batch.inputs) if isinstance(batch.inputs, dict) else module(batch.inputs)
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - classified: the user's forward, or ours (hooks)
            if raised_by_causalspec(exc) or is_oom(exc):
                raise  # our hooks' errors keep their types; out-of-memory is retried smaller (run.batching)
            what = f"network `{self.net.name}`: forward"
            raise UserCodeError(f"{what} failed on what the {self._hook('encode')} produced "
                                f"({describe_inputs(batch.inputs)}): {describe_exception(exc)}", what, exc) from exc
        return self._main_output(out)

    def _main_output(self, out: Any) -> torch.Tensor:
        """The output tensor of a forward: itself, `.logits`, a dict's 'logits' entry (or its only
        tensor), or a tuple's first item; anything else is a UserCodeError."""
        what = f"network `{self.net.name}`: forward"
        if not isinstance(out, torch.Tensor) and isinstance(getattr(out, "logits", None), torch.Tensor):
            return out.logits
        if isinstance(out, Mapping):
            if "logits" in out:
                out = out["logits"]
            else:
                tensors = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
                if len(tensors) != 1:
                    keys = ", ".join(f"'{k}'" for k in out) or "none"
                    raise UserCodeError(f"{what} returned a dict (keys {keys}); causalspec reads its 'logits' "
                                        "entry, or its only tensor — return a Tensor [batch, classes], or a dict "
                                        "with a 'logits' tensor", what)
                out = out[tensors[0]]
        elif isinstance(out, (tuple, list)) and out:
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise UserCodeError(f"{what} must return a Tensor [batch, classes] (or a dict with a 'logits' tensor, "
                                f"or a tuple whose first item is the output); got {_kind(out)}", what)
        return out

    @contextlib.contextmanager
    def _id_guard(self, module):
        """During a forward, every `nn.Embedding` checks that its ids are rows it has: an encode
        hook that returns out-of-range ids is named here (on a GPU, torch would abort instead)."""
        if self._embeddings[0] is not module:
            self._embeddings = (module, [(name, m) for name, m in module.named_modules()
                                         if isinstance(m, torch.nn.Embedding)])
        handles = [m.register_forward_pre_hook(self._id_check(name)) for name, m in self._embeddings[1]]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _id_check(self, name: str):
        def check(mod, args):
            ids = args[0] if args else None
            if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() or not ids.numel():
                return  # torch names a wrong dtype itself (reported by `forward`)
            lo, hi = int(ids.min()), int(ids.max())
            rows = mod.num_embeddings
            if lo < 0 or hi >= rows:
                what = f"network `{self.net.name}`: {self._hook('encode')}"
                raise UserCodeError(f"network `{self.net.name}`: embedding `{name or '(root)'}` got token id "
                                    f"{lo if lo < 0 else hi} but has {rows} rows (ids 0..{rows - 1}); check what "
                                    f"the {self._hook('encode')} returns", what)
        return check

    def predict(self, raw: torch.Tensor, batch: Batch) -> np.ndarray:
        raw = self._at_position(raw, batch)
        flagged = nonfinite_codes(raw, batch.size)  # [batch]: NAN_OUTPUT / INF_OUTPUT / 0 (finite)
        if self.values is not None:
            out = self.values.match(self.value_of(raw, batch).detach().double().cpu().numpy(), self.net.name)
        elif self.net.decode_hook is not None:
            what = f"network `{self.net.name}`: {self._hook('decode')}"
            values = decoded_values(call_user(what, self.net.decode_hook, raw), batch.size, what)
            out = np.full(batch.size, UNDECODABLE, dtype=np.int64)
            for i, v in enumerate(values):
                member = self.domain.lookup(v)
                if member is not None:
                    out[i] = self.domain.codes(self.domain.encode([member]))[0]
        else:
            if raw.dim() != 2 or raw.shape[0] != batch.size:
                raise NetworkLoadError(f"network `{self.net.name}`: output of shape {tuple(raw.shape)} cannot be "
                                       "decoded by argmax; expected [batch, classes] or give a decode hook")
            if raw.shape[1] != self.domain.size:
                raise NetworkLoadError(f"network `{self.net.name}`: {raw.shape[1]} output classes but the output "
                                       f"`{self.output}` has {self.domain.size} values ({self.domain.describe()})")
            out = raw.argmax(dim=-1).cpu().numpy().astype(np.int64)
        if flagged is not None:
            out = np.where(flagged != 0, flagged, out)
        return out

    def read_value(self, raw: torch.Tensor, batch: Batch) -> torch.Tensor:
        """A forward's output as [batch] values (differentiable: learned featurizers train on it)."""
        return self.value_of(self._at_position(raw, batch), batch)

    def value_of(self, raw: torch.Tensor, batch: Batch) -> torch.Tensor:
        """`output : value`: the output (already read at the alignment's position) as [batch]
        floats; it must be [batch] or [batch, 1]."""
        if (not isinstance(raw, torch.Tensor) or not raw.is_floating_point() or raw.dim() not in (1, 2)
                or raw.shape[0] != batch.size or (raw.dim() == 2 and raw.shape[1] != 1)):
            shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
            kind = "" if not isinstance(raw, torch.Tensor) or raw.is_floating_point() else f" of {raw.dtype}"
            at = f" at position {self.position}" if self.position is not None else ""
            raise CheckUsageError(
                f"network `{self.net.name}`: `output : value` reads one number per example for the real output "
                f"`{self.output}`: expected a float output [{batch.size}] or [{batch.size}, 1]{at}; got {shape}{kind}"
                + ("" if self.position is not None else
                   " (a [batch, positions] output is read at a position with `-> output @ i`)"))
        return raw.reshape(batch.size)

    def _at_position(self, raw: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The output at the alignment's position (`-> output @ 3`), or the output itself."""
        if self.position is None:
            return raw
        least = 2 if self.values is not None else 3  # a value output: [batch, positions(, 1)]
        if not isinstance(raw, torch.Tensor) or raw.dim() < least or raw.shape[0] != batch.size:
            shape = tuple(raw.shape) if isinstance(raw, torch.Tensor) else type(raw).__name__
            need = "[batch, positions] or [batch, positions, 1]" if self.values is not None else \
                "[batch, positions, classes]"
            raise NetworkLoadError(f"network `{self.net.name}`: the output `{self.output}` is read at position "
                                   f"{self.position}, which needs an output {need}; got {shape}")
        index = self.position_index(raw.shape[1])
        if not 0 <= index < raw.shape[1]:
            raise NetworkLoadError(f"network `{self.net.name}`: the output `{self.output}` is read at position "
                                   f"{self.position}, but the output has {raw.shape[1]} positions "
                                   f"(0..{raw.shape[1] - 1})")
        return raw[:, index]

    def position_index(self, length: int) -> int:
        """The index of the position the output is read at, in an output of `length` positions:
        a number as written, `last` (a declared `position END = last`) the last one, an offset
        of `last` counted from it. A torch network has no prompt, so nothing else resolves here."""
        pos = self.position
        if isinstance(pos, int):
            return pos
        kind = getattr(pos, "kind", None)
        if kind == "last":
            return length - 1
        if kind == "offset" and pos is not None and getattr(pos.base, "kind", None) == "last":
            return length - 1 + int(pos.offset)
        raise CheckUsageError(f"network `{self.net.name}`: the output `{self.output}` is read at position "
                              f"`{pos}`, which needs a prompt template; a torch network's output is read at a "
                              "number, `last` or an offset of `last`")

    def positions(self, batch: Batch, binding) -> torch.Tensor | None:
        specs = binding.positions
        if not specs or all(p.kind == "all" for p in specs):
            return None
        idx = []
        for p in specs:
            if p.kind == "index":
                idx.append(p.index)
            elif p.kind == "range":
                idx.extend(range(p.lo, p.hi + 1))
            else:
                raise CheckUsageError(f"position `{p.name or p.kind}` needs a prompt template; network "
                                      f"`{self.net.name}` takes tensors from an encode hook")
        return torch.tensor([idx] * batch.size, dtype=torch.long)

    def describe_row(self, batch: Batch, i: int) -> str:
        return ", ".join(f"{k}={self.model.domain(k).format(self.model.domain(k).decode(v[i:i + 1])[0])}"
                         for k, v in batch.rows.items())


def _kind(x: Any) -> str:
    return "None" if x is None else type(x).__name__


def check_encoded(x: Any, n: int, what: str) -> None:
    """An encode hook's result must be a Tensor [batch, …] or a dict of such tensors (str keys)
    whose first axis is the batch of `n` inputs; otherwise a UserCodeError naming `what`."""
    if isinstance(x, torch.Tensor):
        tensors = {"": x}
    elif isinstance(x, Mapping) and x:
        wrong = {k: v for k, v in x.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)}
        if wrong:
            k, v = next(iter(wrong.items()))
            raise UserCodeError(f"{what} must return {ENCODED}; got a dict whose entry {k!r} is {_kind(v)}", what)
        tensors = dict(x)
    else:
        got = "an empty dict" if isinstance(x, Mapping) else _kind(x)
        hint = " (convert it with torch.as_tensor)" if isinstance(x, (list, tuple, np.ndarray)) else ""
        raise UserCodeError(f"{what} must return {ENCODED}; got {got}{hint}", what)
    for key, t in tensors.items():
        if t.dim() == 0 or t.shape[0] != n:
            where = f" under '{key}'" if key else ""
            raise UserCodeError(f"{what} returned a Tensor of shape {tuple(t.shape)}{where} for a batch of {n} "
                                f"input(s); its first axis must be the batch ({n}): {ENCODED}", what)


def describe_inputs(x: Any) -> str:
    """`Tensor (8, 4) int64` / `dict {'ids': Tensor (8, 4) int64, …}`: what a forward was given."""
    if isinstance(x, torch.Tensor):
        return f"Tensor {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
    if isinstance(x, Mapping):
        return "dict {" + ", ".join(f"{k!r}: {describe_inputs(v)}" for k, v in x.items()) + "}"
    return _kind(x)


def decoded_values(values: Any, n: int, what: str) -> list:
    """A decode hook's result as a list of `n` values (one per input, in order), or a UserCodeError."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        values = values.tolist() if values.ndim else values.item()
    if values is None or isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        raise UserCodeError(f"{what} must return a sequence of {n} output value(s), one per input; got "
                            f"{_kind(values)}", what)
    values = list(values)
    if len(values) != n:
        raise UserCodeError(f"{what} returned {len(values)} value(s) for a batch of {n} output(s); it must "
                            "return one value per input, in order", what)
    return values


def nonfinite_codes(raw: Any, n: int) -> np.ndarray | None:
    """Per row of a `[n, …]` output: NAN_OUTPUT where it holds a NaN, INF_OUTPUT where it holds an
    inf (and no NaN), 0 elsewhere; None when the output is not a float tensor with n rows."""
    if not isinstance(raw, torch.Tensor) or not raw.is_floating_point() or raw.dim() == 0 or raw.shape[0] != n:
        return None
    flagged = with_nonfinite(torch.zeros(n, dtype=torch.long, device=raw.device), raw.detach())
    return flagged.cpu().numpy().astype(np.int64)


_PACKAGE = Path(__file__).resolve().parents[1]  # the causalspec package
_NOT_OURS = (_PACKAGE / "testing",)  # its test networks stand in for user code
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def raised_by_causalspec(exc: BaseException) -> bool:
    """Whether `exc` comes from causalspec's own code running inside a user's forward (a site
    hook) rather than from the user's code (see `exception_origin`; a traceback of library
    frames alone — a torch layer refusing its input — is the network's, not ours)."""
    return exception_origin(exc)[0] == "ours"


def exception_origin(exc: BaseException) -> tuple[str, str, int]:
    """(kind, file, line) of the innermost frame of `exc`'s traceback, below the frame that
    caught it, that is not a library's (torch, transformers, the standard library,
    site-packages): kind "ours" (causalspec's code: an internal error keeps its type, exit 3)
    or "user" (a model file, a hook, `trust_remote_code` code); ("library", "", 0) when
    every frame is a library's."""
    frames = []
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip the catching frame
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    for filename, line in reversed(frames):
        kind = _frame_kind(filename)
        if kind != "library":
            return kind, filename, line
    return "library", "", 0


def _frame_kind(filename: str) -> str:
    """"ours" (causalspec), "library" or "user" for a traceback frame's file."""
    if filename.startswith("<"):
        return "library"
    path = Path(filename).resolve()
    if path.is_relative_to(_PACKAGE) and not any(path.is_relative_to(p) for p in _NOT_OURS):
        return "ours"
    if {"site-packages", "dist-packages"} & set(path.parts) or path.is_relative_to(_STDLIB):
        return "library"
    return "user"


def _to_device(x: Any, device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def labels_to_codes(domain: Domain, values: np.ndarray) -> np.ndarray:
    """Model array representation -> 0-based codes (what predictions are compared with)."""
    return domain.codes(values)


def rows_subset(rows: Mapping[str, np.ndarray], index: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    index = np.asarray(index, dtype=np.int64)
    return {k: v[index] for k, v in rows.items()}
