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

`sae(dir, latents=[…])` is not a subspace: an SAE's encoder is non-linear, so its patch
`decode(f') + err_base` (the listed latents `f` of the base replaced by the source's) is
written by the run layer (`run.sae`); here is what the spec fixes before any network runs —
the folder in SAELens's on-disk format (`cfg.json`, `sae_weights.safetensors`), its
architecture, its shapes (read from the safetensors header, no weights loaded) and the
latents named — and `SAE.weights`, which loads and checks them against the site's width.

Why numpy and a `read` function: the semantics layer never imports torch. The engine (in
the run layer) calls `basis`, passing a reader that loads files with torch (numpy has no
bfloat16), and keeps only what is runtime's: a cache per (featurizer, width) and the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import json

if TYPE_CHECKING:
    import numpy as np
else:  # numpy loads when a value is first computed (lazy_numpy.py)
    from causalspec.semantics import lazy_numpy

    np = lazy_numpy.numpy.bind(globals(), "np")

from causalspec.errors import CheckError
from causalspec.codes import E0603, E0604, E0605, E0612, E0620, E0621, E0622
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
        matrix is transposed; its columns must be orthonormal (to 1e-3), and are then made exactly
        orthonormal (same span)."""
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
        # Why: a basis orthonormal to the 1e-3 accepted here (a file saved in float16, or
        # rounded) is not orthonormal to the patch's own check (run.sites.Intervention, 1e-4), and a
        # check on it ended in an internal error (exit 3). What the claim names is the span, so the
        # basis is replaced by its nearest orthonormal matrix (the polar factor U·Vᵀ of B = U·S·Vᵀ),
        # which spans the same subspace and moves each entry by less than the tolerance. A basis
        # already orthonormal to float32 precision is kept exactly as the file holds it.
        b64 = basis.astype(np.float64)
        if not np.allclose(b64.T @ b64, np.eye(basis.shape[1]), rtol=0.0, atol=1e-5):
            u, _, vt = np.linalg.svd(b64, full_matrices=False)
            basis = (u @ vt).astype(np.float32)
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


# ───────────────────────── sparse autoencoders (SAELens format) ─────────────────────────

SAE_CONFIG = "cfg.json"
SAE_WEIGHTS = "sae_weights.safetensors"
# SAELens's `architecture` values causalspec runs, and its older `activation_fn_str` spellings
SAE_ARCHITECTURES = ("standard", "jumprelu", "topk")
_ACTIVATIONS = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}
_NORMALIZE_OK = (None, "none")


class SAEFolderError(ValueError):
    """An SAE folder that causalspec cannot use: the message says what is wrong and with which file."""


@dataclass(frozen=True)
class SAEConfig:
    """What causalspec reads from an SAELens `cfg.json` (the rest of the file is ignored).

    SAELens ≥ 6 writes `architecture` ("standard", "jumprelu", "topk", "gated", …), `k` for
    top-k and the hook under `metadata.hook_name`; older versions write `activation_fn_str`
    ("relu", "topk") with `activation_fn_kwargs.k`, and `hook_name` at the top level. Both are
    read."""

    architecture: str  # one of SAE_ARCHITECTURES
    d_in: int
    d_sae: int
    hook_name: str | None = None
    apply_b_dec_to_input: bool = False
    k: int | None = None  # top-k only


@dataclass(frozen=True)
class SAEWeights:
    """An SAE's parameters (float32 numpy): `W_enc` [d_in, d_sae], `b_enc` [d_sae], `W_dec`
    [d_sae, d_in], `b_dec` [d_in], `threshold` [d_sae] (JumpReLU only)."""

    config: SAEConfig
    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray
    threshold: np.ndarray | None = None


def read_sae_config(folder: Path) -> SAEConfig:
    """The folder's `cfg.json`, checked: a supported architecture, integer `d_in` / `d_sae`, no
    activation normalisation (its scale is not in the weights file). Raises SAEFolderError."""
    path = Path(folder) / SAE_CONFIG
    if not path.is_file():
        raise SAEFolderError(f"`{folder}` has no {SAE_CONFIG} (an SAELens folder holds {SAE_CONFIG} and "
                             f"{SAE_WEIGHTS})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SAEFolderError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SAEFolderError(f"{path} holds {type(raw).__name__}, not a JSON object")
    arch = raw.get("architecture")
    act = raw.get("activation_fn_str")
    if arch is None:
        arch = _ACTIVATIONS.get(str(act), None) if act is not None else "standard"
        if arch is None:
            raise SAEFolderError(f"{path}: activation_fn_str {act!r} is not supported (causalspec runs "
                                 f"{', '.join(sorted(_ACTIVATIONS))})")
    if arch not in SAE_ARCHITECTURES:
        raise SAEFolderError(f"{path}: architecture {arch!r} is not supported (causalspec runs "
                             f"{', '.join(SAE_ARCHITECTURES)}; gated, batch-top-k training variants and "
                             "transcoders are not read)")
    if arch == "standard" and act not in (None, "relu"):
        raise SAEFolderError(f"{path}: activation_fn_str {act!r} is not supported with the standard "
                             "architecture (only relu)")
    for key in ("d_in", "d_sae"):
        if not isinstance(raw.get(key), int) or isinstance(raw.get(key), bool) or raw[key] < 1:
            raise SAEFolderError(f"{path}: `{key}` must be a positive integer, got {raw.get(key)!r}")
    norm = raw.get("normalize_activations")
    if norm not in _NORMALIZE_OK:
        raise SAEFolderError(f"{path}: normalize_activations {norm!r} is not supported (its scale is not stored "
                             "with the weights); fold the scale into W_enc and W_dec and write \"none\"")
    if raw.get("reshape_activations", "none") not in (None, "none"):
        raise SAEFolderError(f"{path}: reshape_activations {raw.get('reshape_activations')!r} is not supported "
                             "(align the SAE to a site of its own width, e.g. a head's z)")
    k = None
    if arch == "topk":
        k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= raw["d_sae"]:
            raise SAEFolderError(f"{path}: a top-k SAE needs an integer `k` in 1..d_sae, got {k!r}")
    meta = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
    hook = raw.get("hook_name", meta.get("hook_name"))
    return SAEConfig(arch, raw["d_in"], raw["d_sae"], hook if isinstance(hook, str) else None,
                     bool(raw.get("apply_b_dec_to_input", False)), k)


def _expected_shapes(cfg: SAEConfig) -> dict[str, tuple[int, ...]]:
    shapes = {"W_enc": (cfg.d_in, cfg.d_sae), "b_enc": (cfg.d_sae,), "W_dec": (cfg.d_sae, cfg.d_in),
              "b_dec": (cfg.d_in,)}
    if cfg.architecture == "jumprelu":
        shapes["threshold"] = (cfg.d_sae,)
    return shapes


def sae_shape_problems(folder: Path, cfg: SAEConfig) -> list[str]:
    """What in `sae_weights.safetensors` disagrees with `cfg.json` (a missing tensor, a wrong
    shape), read from the file's header without loading the weights. Raises SAEFolderError
    when the file is missing or unreadable."""
    path = Path(folder) / SAE_WEIGHTS
    if not path.is_file():
        raise SAEFolderError(f"`{folder}` has no {SAE_WEIGHTS}")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors' own error type (SafetensorError) is not exported
        raise SAEFolderError(f"{path} cannot be read as safetensors: {exc}") from None
    problems = []
    for name, want in _expected_shapes(cfg).items():
        got = shapes.get(name)
        if got is None:
            problems.append(f"{SAE_WEIGHTS} has no `{name}`"
                            + (" (a JumpReLU SAE needs its threshold)" if name == "threshold" else ""))
        elif tuple(got) != want:
            problems.append(f"`{name}` is {list(got)} but cfg.json's d_in={cfg.d_in}, d_sae={cfg.d_sae} "
                            f"make it {list(want)}")
    return problems


def load_sae(folder: Path, read: ReadTensors = read_safetensors) -> SAEWeights:
    """The SAE of an SAELens folder, checked (config and shapes). Raises SAEFolderError."""
    cfg = read_sae_config(folder)
    problems = sae_shape_problems(folder, cfg)
    if problems:
        raise SAEFolderError(f"SAE `{folder}`: " + "; ".join(problems))
    tensors = read(Path(folder) / SAE_WEIGHTS)

    def get(name: str) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(tensors[name], dtype=np.float32))

    return SAEWeights(cfg, get("W_enc"), get("b_enc"), get("W_dec"), get("b_dec"),
                      get("threshold") if cfg.architecture == "jumprelu" else None)


# TransformerLens hook names (what SAELens's `hook_name` uses) → causalspec's site kinds
_TL_HOOKS = {"hook_resid_pre": "resid.pre", "hook_resid_mid": "resid.mid", "hook_resid_post": "resid.post",
             "hook_attn_out": "attn.out", "hook_mlp_out": "mlp.out"}


def hook_site(hook_name: str) -> str | None:
    """The site a TransformerLens hook name denotes, in the spec's spelling (`blocks.3.hook_resid_post`
    → `resid.post[3]`, `hook_embed` → `embed`), or None when it is not one of those."""
    if hook_name == "hook_embed":
        return "embed"
    parts = hook_name.split(".")
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2] in _TL_HOOKS:
        return f"{_TL_HOOKS[parts[2]]}[{int(parts[1])}]"
    return None


def hook_mismatch(hook_name: str | None, site: Any) -> str | None:
    """Why an SAE trained at `hook_name` may not belong at `site` (a SiteAddress / SiteSpec), or
    None when they agree or cannot be compared (no hook name). A module site matches the hook
    named by its module path; other sites match the TransformerLens hook of the same kind."""
    if not hook_name:
        return None
    address = getattr(site, "address", site)
    named = hook_site(hook_name)
    trained = f"it was trained at `{hook_name}`" + (f" (`{named}`)" if named else "")
    if getattr(address, "kind", None) == "module":
        if hook_name == address.module_path:
            return None
        return f"{trained}, not at module `{address.module_path}`"
    if named is not None and named == str(address):
        return None
    return f"{trained}, not at `{address}`"


@dataclass(frozen=True)
class SAE(Featurizer):
    """Latents of a sparse autoencoder in SAELens's on-disk format (`dir` holds `cfg.json` and
    `sae_weights.safetensors`). An interchange replaces the listed latents of the base's
    encoding by the source's and writes `decode(f') + err_base` (`run.sae`); `latents` is empty
    in a `locate … over latents of` search, which chooses them."""

    path: str
    resolved: Path
    latents: tuple[int, ...] = ()
    config: SAEConfig | None = field(default=None, compare=False, repr=False)
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    kind: ClassVar[str] = "sae"

    def basis(self, width: int, read: ReadTensors = read_safetensors) -> np.ndarray:
        raise FeaturizerError(f"`sae(\"{self.path}\")` is not a subspace: its patch goes through the SAE's "
                              "non-linear encoder (run.sae)")

    def weights(self, width: int, read: ReadTensors = read_safetensors) -> SAEWeights:
        """The SAE's weights, checked against a site of `width` (FeaturizerError naming the folder)."""
        try:
            w = load_sae(self.resolved, read)
        except SAEFolderError as exc:
            raise FeaturizerError(str(exc)) from None
        if w.config.d_in != width:
            raise FeaturizerError(f"SAE `{self.path}` reads activations of width d_in={w.config.d_in} "
                                  f"({self.resolved / SAE_CONFIG}), but the site has width {width}: it was "
                                  "trained on another site or model")
        bad = [i for i in self.latents if not 0 <= i < w.config.d_sae]
        if bad:
            raise FeaturizerError(f"SAE `{self.path}` has {w.config.d_sae} latents; latent(s) "
                                  f"{', '.join(map(str, bad))} do not exist")
        # Why here: a NaN or inf in the SAE's tensors makes every patched run non-finite, and the
        # check then blamed the network ("fix the network (or its dtype)"); it is the SAE's file.
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            tensor = getattr(w, name)
            if tensor is not None and not np.isfinite(tensor).all():
                raise FeaturizerError(f"SAE `{self.path}`: `{name}` in {self.resolved / SAE_WEIGHTS} holds "
                                      f"{int((~np.isfinite(tensor)).sum())} non-finite value(s) (NaN/inf); "
                                      "a corrupt or diverged SAE cannot be patched through")
        return w


# ───────────────────────── analysis ─────────────────────────

FEATURIZER_NAMES = ("identity", "basis", "das", "boundless", "sae")
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
                   "featurizers are `[a:b]`, `identity`, `basis(file=…, key=…)`, `das(k=…)`, `boundless` and "
                   "`sae(\"dir\", latents=[…])`")
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
            if args.ok and key in got and (isinstance(value, str) or value is None or not value > 0):
                args.fail(args.span_of(key), f"`{key}` must be a positive number, got {_show(value)}",
                          help="e.g. `boundless(temperature_start=50, temperature_end=0.1)`")
        if args.ok:
            return Boundless(float(got.get("temperature_start", 50.0)), float(got.get("temperature_end", 0.1)),
                             span=feat.span)
        return None
    if name == "sae":
        return _sae_from_args(feat, args, sink, base_dir, search=context == "latent search")
    # basis
    got = args.bind([("file", None), ("key", None)])
    if not args.ok:
        return None
    if "file" not in got:
        args.fail(feat.span, "`basis` needs a file: `basis(file=\"b.safetensors\", key=\"W\")`",
                  help='name the safetensors file: `basis(file="b.safetensors")`')
        return None
    path, tensor = got["file"], got.get("key")
    if not isinstance(path, str) or args.kinds.get("file") != "string":
        args.fail(args.span_of("file"), f"`basis` file must be a quoted path, got {_show(path)}",
                  help=f'quote it: `basis(file="{path}.safetensors")`')
        return None
    if tensor is not None and (not isinstance(tensor, str) or args.kinds.get("key") == "number"):
        args.fail(args.span_of("key"), f"`basis` key must be a tensor name, got {_show(tensor)}",
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
    return FixedBasis(path, resolved, tensor, span=feat.span)


def _sae_from_args(feat: A.CallFeaturizer, args: _Args, sink: DiagnosticSink, base_dir: Path, *,
                   search: bool) -> SAE | None:
    """`sae("dir", latents=[…])`: the folder exists and is an SAELens SAE causalspec runs (E0620),
    its tensors fit its cfg.json (E0622), the latents exist (E0621). In a latent search
    (`search`) the latents are not written: the search chooses them."""
    got = args.bind([("dir", None), ("latents", None)])
    if not args.ok:
        return None
    text = got.get("dir")
    if text is None or args.kinds.get("dir") != "string":
        args.fail(args.span_of("dir") if "dir" in got else feat.span,
                  "`sae` needs its folder as a quoted path: `sae(\"sae_dir\", latents=[3])`",
                  help="the folder holds SAELens's cfg.json and sae_weights.safetensors")
        return None
    latents: tuple[int, ...] = ()
    if search:
        if "latents" in got:
            args.fail(args.span_of("latents"), "a latent search chooses the latents: drop `latents=`",
                      help=f'write `sae("{text}")`')
            return None
    else:
        raw = got.get("latents")
        if raw is None or args.kinds.get("latents") != "list" or not raw:
            args.fail(args.span_of("latents") if "latents" in got else feat.span,
                      "`sae` in an alignment needs the latents that carry the variable: `latents=[3, 17]`",
                      help="to find them, write `locate VAR over latents of SITE : sae(\"dir\")` in a check")
            return None
        if any(not isinstance(v, int) or v < 0 for v in raw):
            args.fail(args.span_of("latents"), "latents are indices: non-negative integers",
                      help="e.g. `latents=[3, 17]`")
            return None
        if len(set(raw)) != len(raw):
            args.fail(args.span_of("latents"), "a latent is listed twice", help="list each latent once")
            return None
        latents = tuple(int(v) for v in raw)
    span = args.span_of("dir")
    resolved = resolve(text, base_dir)
    if not resolved.exists():
        problem = file_problem(text, base_dir, "SAE folder")
        if problem is not None:
            sink.error(problem.code, problem.message, span, problem.label, help=problem.help)
        return None
    note_outside(sink, "SAE folder", text, resolved, base_dir, span)
    if not resolved.is_dir():
        sink.error(E0620, f"SAE `{text}` is a file; `sae` takes the folder SAELens saves", span, "not a folder",
                   help=f"name the folder that holds {SAE_CONFIG} and {SAE_WEIGHTS}")
        return None
    try:
        config = read_sae_config(resolved)
        problems = sae_shape_problems(resolved, config)
    except SAEFolderError as exc:
        sink.error(E0620, f"SAE `{text}` cannot be used: {exc}", span, "not a usable SAE folder",
                   help=f"an SAELens folder holds {SAE_CONFIG} (architecture standard, jumprelu or topk) and "
                        f"{SAE_WEIGHTS} (W_enc, b_enc, W_dec, b_dec, and threshold for jumprelu)")
        return None
    if problems:
        sink.error(E0622, f"SAE `{text}`: its weights do not fit its {SAE_CONFIG}: {problems[0]}", span,
                   "shapes disagree", notes=problems[1:],
                   help="write the folder again (SAELens's save_model, or causalspec.testing.sae.write_sae)")
        return None
    bad = [i for i in latents if i >= config.d_sae]
    if bad:
        sink.error(E0621, f"SAE `{text}` has {config.d_sae} latents (0..{config.d_sae - 1}); "
                          f"latent {bad[0]} does not exist", args.span_of("latents"), "out of range",
                   help=f"latents are indices below d_sae = {config.d_sae}")
        return None
    return SAE(text, resolved, latents, config, span=feat.span)


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
