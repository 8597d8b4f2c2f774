"""One effective seed per check, and the child seed of every random choice made from it.

Why one module: a check makes several random choices — the held-out pairs, the training
split, the initialisation of a learned featurizer, every draw of every control, the
bootstrap of a circuit's confidence intervals, a `locate` sweep's confirmation pairs. If
each read "the seed" from a different place, `--seed 1` and `seed 1` in the spec could
give different verdicts (they did: the controls and training kept the spec's seed). Here
the effective seed is chosen once (command line > spec > default) and every other stream
is derived from it by name, so a purpose's stream depends on the effective seed and the
purpose's name only. The derivation is documented in docs/language.md ("Seeds").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SEED_BITS = 63  # child seeds fit a signed 64-bit integer (torch and numpy both accept them)


@dataclass(frozen=True)
class EffectiveSeed:
    """The seed a check runs with, and where it came from: "--seed" | "spec" | "default"."""

    value: int
    source: str


def effective_seed(cli: int | None, spec: int, spec_given: bool = True, flag: str = "--seed") -> EffectiveSeed:
    """The command line's seed when given, else the spec's `seed` (or the default)."""
    if cli is not None:
        return EffectiveSeed(int(cli), flag)
    return EffectiveSeed(int(spec), "spec" if spec_given else "default")


def derive_seed(seed: int, purpose: str) -> int:
    """The child seed of `purpose` (e.g. "random_subspace/3") under the effective `seed`.

    The first 8 bytes of sha256("causalspec:<seed>:<purpose>"), little-endian, keeping 63
    bits. A hash rather than `seed + offset`: two purposes never share a stream, seed s of
    one purpose is never seed s+1 of another, and the value does not depend on numpy's or
    torch's version.
    """
    digest = hashlib.sha256(f"causalspec:{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << SEED_BITS) - 1)


__all__ = ["EffectiveSeed", "derive_seed", "effective_seed"]
