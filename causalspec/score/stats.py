"""Interval estimates for the numbers a report shows.

Why Wilson: IIA is a proportion, often near 1.0 and sometimes on few kept pairs; the normal
approximation gives intervals past 1 or of zero width there, Wilson's score interval does
not. Claims may be judged on the lower bound (`lower95`) so the interval is load-bearing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    successes: int
    trials: int
    lower: float
    upper: float

    @property
    def estimate(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    def to_dict(self) -> dict:
        return {"successes": self.successes, "trials": self.trials,
                "estimate": None if not self.trials else self.estimate,
                "lower95": None if not self.trials else self.lower,
                "upper95": None if not self.trials else self.upper}


def wilson(successes: int, trials: int, z: float = Z95) -> Proportion:
    """Wilson score interval; (nan, nan) bounds when there are no trials."""
    if trials <= 0:
        return Proportion(0, 0, float("nan"), float("nan"))
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} not in 0..{trials}")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == trials else min(1.0, centre + half)
    return Proportion(successes, trials, lower, upper)


def bootstrap_mean(values: np.ndarray, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of per-example values (for circuit metrics)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
