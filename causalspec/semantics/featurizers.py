"""Featurizers: which coordinates of a site's activation carry an aligned variable.

Why an IR with maps but without torch: the engine (the only code that touches torch) needs,
for every featurizer, a pair of functions over the last axis of an activation,

    to_features(x)            -> f                 # [..., width] -> [..., k]
    from_features(base, f)    -> x'                # base with its features replaced by f

such that `from_features(base, to_features(base)) == base`, and the interchange of a
source's features into a base is `from_features(base, to_features(source))`. The maps below
are written with array operators only (`@`, `.T`, slicing, `clone`/`copy`), so they work on
numpy arrays and torch tensors alike and stay differentiable for the learned ones. What an
IR object cannot know statically — a fixed basis's matrix (read from a file at check time)
or a learned rotation (trained at check time) — is passed to `feature_maps` by the engine.

Linear featurizers are described by an orthonormal basis `B` (`[width, k]`, `B.T @ B = I`),
the convention of `causalspec.run.sites.Intervention`: features `x @ B`, and
`from_features(base, f) = base + (f - base @ B) @ B.T`. A slice `[a:b]` is the basis of unit
vectors `I[:, a:b]` (computed by slicing, not by a matrix product).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from causalspec.diagnostics import NO_SPAN, DiagnosticSink, Span, did_you_mean
from causalspec.syntax import ast as A

ToFeatures = Callable[[Any], Any]
FromFeatures = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class FeatureMaps:
    to_features: ToFeatures
    from_features: FromFeatures
    k: int  # number of features


def _copy(x: Any) -> Any:
    return x.clone() if hasattr(x, "clone") else x.copy()


def _basis_maps(basis: Any) -> FeatureMaps:
    def to_features(x):
        return x @ basis

    def from_features(base, f):
        return base + (f - base @ basis) @ basis.T

    return FeatureMaps(to_features, from_features, int(basis.shape[1]))


class Featurizer:
    """Base of the featurizer IR. Subclasses are frozen dataclasses with a `span`."""

    kind: ClassVar[str] = ""
    learned: ClassVar[bool] = False  # parameters are trained at check time (needs `heldout`)
    linear: ClassVar[bool] = True

    def feature_maps(self, width: int, params: Any = None) -> FeatureMaps:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Identity(Featurizer):
    """The whole activation (the default when a site has no featurizer)."""

    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "identity"

    def feature_maps(self, width: int, params: Any = None) -> FeatureMaps:
        return FeatureMaps(lambda x: x, lambda base, f: f, width)


@dataclass(frozen=True)
class Slice(Featurizer):
    """Dimensions `lo:hi` of the last axis (Python slice semantics: `hi` excluded)."""

    lo: int
    hi: int
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "slice"

    def feature_maps(self, width: int, params: Any = None) -> FeatureMaps:
        if self.hi > width:
            raise ValueError(f"slice [{self.lo}:{self.hi}] does not fit an activation of width {width}")
        lo, hi = self.lo, self.hi

        def to_features(x):
            return x[..., lo:hi]

        def from_features(base, f):
            out = _copy(base)
            out[..., lo:hi] = f
            return out

        return FeatureMaps(to_features, from_features, hi - lo)


@dataclass(frozen=True)
class FixedBasis(Featurizer):
    """A fixed orthonormal basis read from a safetensors file at check time.

    `path` is as written in the spec, `resolved` relative to the spec's folder; `key` names
    the tensor in the file (None: the file's only tensor). The engine loads it and passes it
    to `feature_maps` as `params` (`[width, k]`, orthonormal columns).
    """

    path: str
    resolved: Path
    key: str | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "basis"

    def feature_maps(self, width: int, params: Any = None) -> FeatureMaps:
        if params is None:
            raise ValueError(f"basis `{self.path}` must be loaded by the engine and passed as params")
        return _basis_maps(params)


@dataclass(frozen=True)
class LearnedDAS(Featurizer):
    """Distributed alignment search: a learned `k`-dimensional orthonormal subspace.

    `params` for `feature_maps` is the trained basis `[width, k]`.
    """

    k: int = 1
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "das"
    learned: ClassVar[bool] = True

    def feature_maps(self, width: int, params: Any = None) -> FeatureMaps:
        if params is None:
            raise ValueError("a das featurizer is trained at check time; pass the learned basis as params")
        if int(params.shape[1]) != self.k:
            raise ValueError(f"das(k={self.k}) got a basis with {int(params.shape[1])} columns")
        return _basis_maps(params)


@dataclass(frozen=True)
class Boundless(Featurizer):
    """Boundless DAS: a learned rotation with a learned soft mask over rotated dimensions.

    The mask's sigmoid temperature is annealed from `temperature_start` to
    `temperature_end` while training. `params` for `feature_maps` is `(R, m)`: a rotation
    `[width, width]` with orthonormal columns and a mask `[width]` in [0, 1]; features are
    all rotated coordinates and only the masked ones are taken from the source.
    """

    temperature_start: float = 50.0
    temperature_end: float = 0.1
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "boundless"
    learned: ClassVar[bool] = True

    def feature_maps(self, width: int, params: Any = None) -> FeatureMaps:
        if params is None:
            raise ValueError("a boundless featurizer is trained at check time; pass (rotation, mask) as params")
        rotation, mask = params

        def to_features(x):
            return x @ rotation

        def from_features(base, f):
            return base + ((f - base @ rotation) * mask) @ rotation.T

        return FeatureMaps(to_features, from_features, int(rotation.shape[1]))


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
            sink.error("E0605", f"slice [{feat.lo}:{feat.hi}] is empty", feat.span,
                       "lo must be smaller than hi",
                       help=f"slices exclude `hi`, like Python: `[{min(feat.lo, feat.hi)}:"
                            f"{max(feat.lo, feat.hi) + (1 if feat.lo == feat.hi else 0)}]`")
            return None
        return Slice(feat.lo, feat.hi, span=feat.span)

    name = feat.name.text
    if name not in FEATURIZER_NAMES:
        sink.error("E0603", f"unknown featurizer `{name}`", feat.name.span, "not a featurizer",
                   help=did_you_mean(name, FEATURIZER_NAMES) or
                   "featurizers are `[a:b]`, `identity`, `basis(file=…, key=…)`, `das(k=…)` and `boundless`")
        return None
    if name in LEARNED and context != "alignment":
        sink.error("E0612", f"`{name}` is learned and allowed in alignments only", feat.name.span,
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
                args.fail(args.span_of(key), f"`{key}` must be a positive number, got {_show(value)}")
        if args.ok:
            return Boundless(float(got.get("temperature_start", 50.0)), float(got.get("temperature_end", 0.1)),
                             span=feat.span)
        return None
    # basis
    got = args.bind([("file", None), ("key", None)])
    if not args.ok:
        return None
    if "file" not in got:
        args.fail(feat.span, "`basis` needs a file: `basis(file=\"b.safetensors\", key=\"W\")`")
        return None
    path, key = got["file"], got.get("key")
    if not isinstance(path, str) or args.kinds.get("file") != "string":
        args.fail(args.span_of("file"), f"`basis` file must be a quoted path, got {_show(path)}")
        return None
    if key is not None and (not isinstance(key, str) or args.kinds.get("key") == "number"):
        args.fail(args.span_of("key"), f"`basis` key must be a tensor name, got {_show(key)}")
        return None
    if not path.endswith(BASIS_SUFFIXES):
        args.fail(args.span_of("file"), f"basis file `{path}` is not a .safetensors file",
                  help="bases are read with safetensors (never pickle); save with safetensors.torch.save_file")
        return None
    resolved = Path(path) if Path(path).is_absolute() else base_dir / path
    if not resolved.is_file():
        sink.error("E0801", f"basis file `{path}` not found", args.span_of("file"), f"looked for {resolved}",
                   help="paths are relative to the spec file's folder")
        return None
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
        self.sink.error("E0604", message, span, "bad argument", help=help)
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
                    self.fail(arg.span, f"positional argument after a keyword argument in `{name}(…)`")
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
                self.fail(arg.span, f"argument `{key}` of `{name}` is given twice")
                continue
            got[key] = arg.value
            self.spans[key] = arg.span
            self.kinds[key] = arg.kind
        return got


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
