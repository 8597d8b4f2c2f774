"""Featurizers: which coordinates of a site's activation carry an aligned variable.

What a featurizer denotes: a subspace of the last axis of a site's activation, given by a
basis `B` (`[width, k]`, orthonormal columns: `B.T @ B = I`), or the whole activation. An
interchange puts the source's coordinates inside span(B) into the base and keeps the base's
outside it: `base + ((source - base) @ B) @ B.T`. That formula is written once, in
`causalspec.run.sites` (`Intervention`, `make_edit`), and every runner patches through it:
the engine, training (`run.train`) and the nnsight backend.

Which subspace is `Featurizer.basis(width, read)`, the one description of it. The IR
answers for the featurizers whose subspace the spec fixes before any network runs:

- `identity`: None, the whole activation (a subspace patch with `B = I` would give the same
  values at the price of two matrix products);
- a slice `[a:b]`: the unit vectors `I[:, a:b]`, so the patch takes dims `a:b` from the source;
- `basis(file, key)`: the matrix stored in a safetensors file, read at check time (the file
  may change after the spec is analysed) and validated against the site's width.

Learned featurizers (`das`, `boundless`) have no subspace until training finds one at check
time: `basis` raises for them, and the trained basis reaches the engine as an override
(`AlignmentRun.fit` → `Engine.run_patched(bases=…)`), as do random control subspaces.

Why numpy and a `read` function: the semantics layer never imports torch. The engine (in
the run layer) calls `basis`, passing a reader that loads files with torch (numpy has no
bfloat16), and keeps only what is runtime's: a cache per (featurizer, width) and the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from causalspec.errors import CheckError
from causalspec.codes import E0603, E0604, E0605, E0612
from causalspec.diagnostics import NO_SPAN, DiagnosticSink, Span, did_you_mean
from causalspec.semantics.file_access import note_outside
from causalspec.semantics.paths import file_problem, resolve
from causalspec.syntax import ast as A

ReadTensors = Callable[[Path], Mapping[str, Any]]  # a safetensors file -> {name: array}


class FeaturizerError(CheckError, ValueError):
    """A featurizer has no basis for this site (a slice too wide, a bad basis file, a learned one)."""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as numpy arrays (the run layer passes a torch reader
    instead, which also reads bfloat16)."""
    from safetensors.numpy import load_file

    return load_file(str(path))


class Featurizer:
    """Base of the featurizer IR. Subclasses are frozen dataclasses with a `span`."""

    kind: ClassVar[str] = ""
    learned: ClassVar[bool] = False  # parameters are trained at check time (needs `heldout`)
    linear: ClassVar[bool] = True

    def basis(self, width: int, read: ReadTensors = read_safetensors) -> np.ndarray | None:
        """The subspace this featurizer denotes at a site of `width`: an orthonormal basis
        `[width, k]` (float32), or None for the whole activation. Raises FeaturizerError
        when there is none (see the module docstring)."""
        if self.learned:
            raise FeaturizerError(f"featurizer `{self.kind}` is learned: its subspace comes from training at "
                                  "check time, not from the spec — pass the trained basis to the engine")
        raise NotImplementedError(type(self).__name__)


@dataclass(frozen=True)
class Identity(Featurizer):
    """The whole activation (the default when a site has no featurizer)."""

    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "identity"

    def basis(self, width: int, read: ReadTensors = read_safetensors) -> None:
        return None


@dataclass(frozen=True)
class Slice(Featurizer):
    """Dimensions `lo:hi` of the last axis (Python slice semantics: `hi` excluded)."""

    lo: int
    hi: int
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "slice"

    def basis(self, width: int, read: ReadTensors = read_safetensors) -> np.ndarray:
        if self.hi > width:
            raise FeaturizerError(f"slice [{self.lo}:{self.hi}] does not fit an activation of width {width}")
        return np.eye(width, dtype=np.float32)[:, self.lo:self.hi].copy()


@dataclass(frozen=True)
class FixedBasis(Featurizer):
    """A fixed orthonormal basis read from a safetensors file at check time.

    `path` is as written in the spec, `resolved` relative to the spec's folder; `key` names
    the tensor in the file (None: the file's only tensor).
    """

    path: str
    resolved: Path
    key: str | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "basis"

    def basis(self, width: int, read: ReadTensors = read_safetensors) -> np.ndarray:
        """The file's tensor as `[width, k]`: a vector `[width]` is one direction, a `[k, width]`
        matrix is transposed; its columns must be orthonormal (to 1e-3)."""
        if not Path(self.resolved).is_file():
            raise FeaturizerError(f"basis file `{self.path}` not found (looked for {self.resolved})")
        try:
            tensors = read(self.resolved)
        except (OSError, ValueError, EOFError) as exc:
            raise FeaturizerError(f"basis file `{self.path}` cannot be read as safetensors: {exc} "
                                  "(a truncated or corrupt file? write it again)") from exc
        except Exception as exc:  # noqa: BLE001 - safetensors' own error type (SafetensorError) is not exported
            if type(exc).__name__ != "SafetensorError":
                raise
            raise FeaturizerError(f"basis file `{self.path}` cannot be read as safetensors: {exc} "
                                  "(a truncated or corrupt file? write it again)") from exc
        names = ", ".join(sorted(tensors))
        if self.key is None:
            if len(tensors) != 1:
                raise FeaturizerError(f"basis file `{self.path}` holds {len(tensors)} tensors ({names}); "
                                      "name one with key=\"…\"")
            (basis,) = tensors.values()
        elif self.key not in tensors:
            raise FeaturizerError(f"basis file `{self.path}` has no tensor `{self.key}` (it has {names})")
        else:
            basis = tensors[self.key]
        basis = np.asarray(basis, dtype=np.float32)
        if basis.ndim == 1:
            basis = basis[:, None]
        if basis.ndim == 2 and basis.shape[0] != width and basis.shape[1] == width:
            basis = basis.T
        if basis.ndim != 2 or basis.shape[0] != width:
            raise FeaturizerError(f"basis `{self.path}` has shape {tuple(basis.shape)}; the site has width {width}")
        if not np.allclose(basis.T @ basis, np.eye(basis.shape[1], dtype=np.float32), atol=1e-3):
            raise FeaturizerError(f"basis `{self.path}` is not orthonormal (B.T @ B != I); "
                                  "orthonormalise it (e.g. torch.linalg.qr) before saving")
        return np.ascontiguousarray(basis)


@dataclass(frozen=True)
class LearnedDAS(Featurizer):
    """Distributed alignment search: a learned `k`-dimensional orthonormal subspace
    (trained by `run.train`; `basis` raises)."""

    k: int = 1
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "das"
    learned: ClassVar[bool] = True


@dataclass(frozen=True)
class Boundless(Featurizer):
    """Boundless DAS: a learned rotation with a learned soft mask over rotated dimensions.

    The mask's sigmoid temperature is annealed from `temperature_start` to
    `temperature_end` while training (`run.train`); the trained featurizer is the subspace
    of the rotated dimensions the mask keeps (cut at 0.5). `basis` raises.
    """

    temperature_start: float = 50.0
    temperature_end: float = 0.1
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "boundless"
    learned: ClassVar[bool] = True


# ───────────────────────── analysis ─────────────────────────

FEATURIZER_NAMES = ("identity", "basis", "das", "boundless")
LEARNED = ("das", "boundless")
BASIS_SUFFIXES = (".safetensors",)


def featurizer_from_ast(feat: A.SliceFeaturizer | A.CallFeaturizer | None, sink: DiagnosticSink,
                        base_dir: Path, *, context: str = "alignment") -> Featurizer | None:
    """Validate a featurizer; None if it is invalid (diagnostics are in the sink).

    `context` is where it is written: learned featurizers (`das`, `boundless`) are allowed
    in alignments only (E0612) — anywhere else nothing would train them.
    """
    if feat is None:
        return Identity()
    if isinstance(feat, A.SliceFeaturizer):
        if feat.lo >= feat.hi:
            sink.error(E0605, f"slice [{feat.lo}:{feat.hi}] is empty", feat.span,
                       "lo must be smaller than hi",
                       help=f"slices exclude `hi`, like Python: `[{min(feat.lo, feat.hi)}:"
                            f"{max(feat.lo, feat.hi) + (1 if feat.lo == feat.hi else 0)}]`")
            return None
        return Slice(feat.lo, feat.hi, span=feat.span)

    name = feat.name.text
    if name not in FEATURIZER_NAMES:
        sink.error(E0603, f"unknown featurizer `{name}`", feat.name.span, "not a featurizer",
                   help=did_you_mean(name, FEATURIZER_NAMES) or
                   "featurizers are `[a:b]`, `identity`, `basis(file=…, key=…)`, `das(k=…)` and `boundless`")
        return None
    if name in LEARNED and context != "alignment":
        sink.error(E0612, f"`{name}` is learned and allowed in alignments only", feat.name.span,
                   f"not allowed in {context}",
                   help="use a slice `[a:b]` or a fixed `basis(…)` here")
        return None
    args = _Args(feat, sink)
    if name == "identity":
        args.bind([])
        return Identity(span=feat.span) if args.ok else None
    if name == "das":
        got = args.bind([("k", 1)])
        k = got.get("k", 1)
        if args.ok and (not isinstance(k, int) or k < 1):
            args.fail(args.span_of("k"), f"`das` needs an integer k >= 1, got {_show(k)}",
                      help="k is the dimension of the learned subspace, e.g. `das(k=1)`")
        return LearnedDAS(k, span=feat.span) if args.ok else None
    if name == "boundless":
        got = args.bind([("temperature_start", 50.0), ("temperature_end", 0.1)])
        for key in ("temperature_start", "temperature_end"):
            value = got.get(key)
            if args.ok and key in got and (isinstance(value, str) or not value > 0):
                args.fail(args.span_of(key), f"`{key}` must be a positive number, got {_show(value)}",
                          help="e.g. `boundless(temperature_start=50, temperature_end=0.1)`")
        if args.ok:
            return Boundless(float(got.get("temperature_start", 50.0)), float(got.get("temperature_end", 0.1)),
                             span=feat.span)
        return None
    # basis
    got = args.bind([("file", None), ("key", None)])
    if not args.ok:
        return None
    if "file" not in got:
        args.fail(feat.span, "`basis` needs a file: `basis(file=\"b.safetensors\", key=\"W\")`",
                  help='name the safetensors file: `basis(file="b.safetensors")`')
        return None
    path, key = got["file"], got.get("key")
    if not isinstance(path, str) or args.kinds.get("file") != "string":
        args.fail(args.span_of("file"), f"`basis` file must be a quoted path, got {_show(path)}",
                  help=f'quote it: `basis(file="{path}.safetensors")`')
        return None
    if key is not None and (not isinstance(key, str) or args.kinds.get("key") == "number"):
        args.fail(args.span_of("key"), f"`basis` key must be a tensor name, got {_show(key)}",
                  help='quote the name of the tensor in the file, e.g. `key="W"`')
        return None
    if not path.endswith(BASIS_SUFFIXES):
        args.fail(args.span_of("file"), f"basis file `{path}` is not a .safetensors file",
                  help="bases are read with safetensors (never pickle); save with safetensors.torch.save_file")
        return None
    problem = file_problem(path, base_dir, "basis file")
    if problem is not None:
        sink.error(problem.code, problem.message, args.span_of("file"), problem.label, help=problem.help)
        return None
    resolved = resolve(path, base_dir)
    note_outside(sink, "basis file", path, resolved, base_dir, args.span_of("file"))
    return FixedBasis(path, resolved, key, span=feat.span)


class _Args:
    """Binds a call featurizer's positional and keyword arguments to parameters (E0604)."""

    def __init__(self, feat: A.CallFeaturizer, sink: DiagnosticSink):
        self.feat = feat
        self.sink = sink
        self.ok = True
        self.spans: dict[str, Span] = {}
        self.kinds: dict[str, str] = {}

    def fail(self, span: Span, message: str, help: str | None = None) -> None:
        self.sink.error(E0604, message, span, "bad argument", help=help)
        self.ok = False

    def span_of(self, key: str) -> Span:
        return self.spans.get(key, self.feat.span)

    def bind(self, params: list[tuple[str, Any]]) -> dict[str, Any]:
        name = self.feat.name.text
        names = [p for p, _ in params]
        sig = ", ".join(f"{p}=…" for p in names) if names else "no arguments"
        got: dict[str, Any] = {}
        seen_keyword = False
        for i, arg in enumerate(self.feat.args or ()):
            if arg.key is None:
                if seen_keyword:
                    self.fail(arg.span, f"positional argument after a keyword argument in `{name}(…)`",
                              help=f"name this argument too (`{name}` takes {sig})")
                    continue
                if i >= len(names):
                    self.fail(arg.span, f"`{name}` takes {len(names) or 'no'} argument(s), got more",
                              help=f"`{name}` takes {sig}")
                    continue
                key = names[i]
            else:
                seen_keyword = True
                key = arg.key
                if key not in names:
                    self.fail(arg.span, f"`{name}` has no argument `{key}`",
                              help=did_you_mean(key, names) or f"`{name}` takes {sig}")
                    continue
            if key in got:
                self.fail(arg.span, f"argument `{key}` of `{name}` is given twice",
                          help=f"give `{key}` once")
                continue
            got[key] = arg.value
            self.spans[key] = arg.span
            self.kinds[key] = arg.kind
        return got


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
