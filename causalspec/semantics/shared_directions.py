"""Shared directions: two variables aligned to non-orthogonal subspaces of one site (E0613).

Why a warning of its own: an interchange on one variable patches its subspace; when the
other variable's subspace is not orthogonal to it, the patch also moves the other
variable's coordinates, so "intervening on A" is partly an intervention on B, and an IIA
that holds may hold for the wrong reason. Coordinates that overlap exactly (slices that
share dimensions, a whole activation) are already an error (E0608: the map is no longer a
partition). What only the numbers of a basis file reveal — two `basis(…)` featurizers, or a
basis and a slice, that are not mutually orthogonal — is a *warning*: the spec is valid, and
a small overlap may be intended (a basis saved in bfloat16 is never exactly orthogonal).

The overlap is the largest cosine between the two subspaces: the largest singular value of
`A.T @ B` (the cosine of the smallest principal angle). 1 means they share a direction;
it is reported when above `TOLERANCE`. Learned featurizers (`das`, `boundless`) have no
subspace before training: nothing is said about them here. Basis files that cannot be
read, or that do not fit each other, are left to the check (which reports them).

A site's width is not known at analysis time (it is the network's), so a basis matrix is
read with its longer axis as the width: a basis `[width, k]` has k ≤ width (orthonormal
columns), and a square one spans the whole activation either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import numpy as np
else:  # numpy loads when a value is first computed (lazy_numpy.py)
    from causalspec.semantics import lazy_numpy

    np = lazy_numpy.numpy.bind(globals(), "np")

from causalspec.codes import E0613
from causalspec.diagnostics import DiagnosticSink
from causalspec.semantics.featurizers import FixedBasis, Identity, Slice, read_safetensors
from causalspec.semantics.ir import SiteBinding
from causalspec.semantics.sites import ALL

CODE = E0613
TOLERANCE = 0.01  # largest cosine above which two subspaces share a direction (angle below ~89.4°)


@dataclass(frozen=True)
class Overlap:
    cosine: float  # the largest cosine between the two subspaces (1: a shared direction)
    angle: float  # the smallest principal angle, in degrees


def _positions_meet(a: SiteBinding, b: SiteBinding) -> bool:
    return a.positions == b.positions or ALL in a.positions or ALL in b.positions or bool(
        set(a.positions) & set(b.positions))


def _matrix(feat: FixedBasis, read: Callable) -> np.ndarray | None:
    """The basis file's tensor as `[width, k]` (longer axis = width), or None if unreadable."""
    try:
        tensors = read(feat.resolved)
        if feat.key is None:
            if len(tensors) != 1:
                return None
            (m,) = tensors.values()
        else:
            m = tensors.get(feat.key)
            if m is None:
                return None
        m = np.asarray(m, dtype=np.float64)
    except Exception:  # noqa: BLE001 — an unreadable file is the check's error (E0802 / check ERROR)
        return None
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.size == 0:
        return None
    return m if m.shape[0] >= m.shape[1] else m.T


def overlap(fa, fb, read: Callable = read_safetensors, cache: dict | None = None) -> Overlap | None:
    """The overlap of two featurizers' subspaces at one site, or None when it is not known at
    analysis time (learned featurizers, unreadable files, widths that disagree) or when both
    are slices/identity (E0608 decides those)."""
    if isinstance(fa, Identity) or isinstance(fb, Identity) or not (isinstance(fa, FixedBasis) or
                                                                      isinstance(fb, FixedBasis)):
        return None
    if not all(isinstance(f, (FixedBasis, Slice)) for f in (fa, fb)):
        return None
    cache = {} if cache is None else cache

    def matrix(f: FixedBasis):
        if f not in cache:
            cache[f] = _matrix(f, read)
        return cache[f]

    if isinstance(fa, Slice):
        fa, fb = fb, fa
    a = matrix(fa)
    if a is None:
        return None
    if isinstance(fb, Slice):
        if fb.hi > a.shape[0]:
            return None
        cross = a[fb.lo:fb.hi, :]  # = I[:, lo:hi].T @ A
    else:
        b = matrix(fb)
        if b is None or b.shape[0] != a.shape[0]:
            return None
        cross = a.T @ b
    cos = float(np.linalg.norm(cross, ord=2)) if cross.size else 0.0
    cos = min(cos, 1.0)
    return Overlap(cos, float(np.degrees(np.arccos(cos))))


def _describe(f) -> str:
    if isinstance(f, Slice):
        return f"slice [{f.lo}:{f.hi}]"
    return f"basis `{f.path}`" + (f" key `{f.key}`" if f.key else "")


def warn_shared_directions(variables: Mapping[str, Sequence[SiteBinding]], sink: DiagnosticSink,
                           read: Callable = read_safetensors) -> int:
    """Warn (E0613) for each pair of variables whose fixed subspaces at one site (with
    overlapping positions) are not mutually orthogonal; returns the number of warnings."""
    cache: dict = {}
    seen: list[tuple[str, SiteBinding]] = []
    count = 0
    for name, bindings in variables.items():
        for b in bindings:
            for other, ob in seen:
                if other == name or b.site != ob.site or not _positions_meet(b, ob):
                    continue
                got = overlap(b.featurizer, ob.featurizer, read, cache)
                if got is None or got.cosine <= TOLERANCE:
                    continue
                shared = "share a direction" if got.cosine >= 1 - 1e-6 else "are not orthogonal"
                sink.warn(CODE, f"`{name}` and `{other}` are aligned to subspaces of `{b.site}` that {shared}: "
                                f"largest cosine {got.cosine:.3f} (smallest principal angle {got.angle:.1f}°) "
                                f"between {_describe(b.featurizer)} and {_describe(ob.featurizer)}",
                          b.span, "shares directions with another variable",
                          help=f"an interchange on `{name}` also moves `{other}` (aligned at {ob.span}); "
                               "use mutually orthogonal subspaces (orthonormalise both bases together, "
                               "e.g. one torch.linalg.qr of their concatenation)")
                count += 1
            seen.append((name, b))
    return count


__all__ = ["CODE", "TOLERANCE", "Overlap", "overlap", "warn_shared_directions"]
