"""Memory-bounded batching: the batch size backs off on out-of-memory instead of crashing.

Why: peak memory of a check run depends on the batch size (activations of one forward),
not on the number of pairs — the engine keeps per-unique-input caches and per-pair
predictions only. The right batch size depends on the model, the sequence length and the
device, so the engine starts from the spec's (or `--batch`) size and halves it whenever a
forward runs out of memory, retrying the same rows; the smaller size sticks for the rest of
the run, and the check's notes say it happened. Out of memory at batch size 1 is re-raised.

Usage (the body of a batch loop, retried as a whole on out-of-memory)::

    for chunk in sizer.chunks(indices):
        with chunk:
            run(chunk.idx)

A body must not leave partial results behind when it raises: write outputs only after the
forward pass succeeded (the engine's loops do).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_oom(exc: BaseException) -> bool:
    """True for torch.OutOfMemoryError (CUDA, MPS) and CPU allocation failures (RuntimeError)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in OOM_TEXT)


def free_memory() -> None:
    """Give back what the failed batch held before retrying (tensors die with their frames)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class BatchSizer:
    """The current batch size of a run, halved on out-of-memory (never grown back).

    ``on_backoff(tried, new, exc)`` is called on each halving: a batch of ``tried`` rows ran out
    of memory, the size is now ``new`` (the engine notes it).
    """

    size: int
    minimum: int = 1
    on_backoff: Callable[[int, int, BaseException], None] | None = None
    backoffs: list = field(default_factory=list)  # (rows that failed, new size)

    def __post_init__(self) -> None:
        self.size = max(int(self.size), self.minimum)

    def chunks(self, indices: np.ndarray | int) -> Iterator[Chunk]:
        """Consecutive chunks of ``indices`` (or of ``range(indices)``) of the current size;
        a chunk whose body ran out of memory is offered again, smaller."""
        indices = np.arange(indices) if isinstance(indices, (int, np.integer)) else np.asarray(indices)
        at = 0
        while at < len(indices):
            chunk = Chunk(self, indices[at:at + self.size])
            yield chunk
            if chunk.failed:
                del chunk
                free_memory()
                continue
            if not chunk.entered:
                raise RuntimeError("a BatchSizer chunk must be used as `with chunk:`")
            at += len(chunk.idx)

    def shrink(self, exc: BaseException, tried: int) -> bool:
        """Halve the size after ``tried`` rows ran out of memory; False when it cannot shrink."""
        if tried <= self.minimum:
            return False
        new = max(self.minimum, min(self.size, tried) // 2)
        self.size = new
        self.backoffs.append((tried, new))
        if self.on_backoff is not None:
            self.on_backoff(tried, new, exc)
        return True


class Chunk:
    """One batch of row indices; ``with chunk:`` swallows out-of-memory after shrinking."""

    def __init__(self, sizer: BatchSizer, idx: np.ndarray):
        self.sizer = sizer
        self.idx = idx
        self.failed = False
        self.entered = False

    def __enter__(self) -> Chunk:
        self.entered = True
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not is_oom(exc):
            return False
        if not self.sizer.shrink(exc, len(self.idx)):
            return False  # out of memory at the smallest batch: nothing left to try
        self.failed = True  # `chunks` frees memory and offers the rows again, smaller
        return True


__all__ = ["OOM_TEXT", "BatchSizer", "Chunk", "free_memory", "is_oom"]
