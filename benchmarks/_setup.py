"""What the throughput benchmarks share (not a benchmark itself): the GPT-2-small-shaped
random-init model over a word tokenizer, the `Copy` spec that points at it, peak-RSS
sampling, the warm-up forward and the plain 2N forward every two-forwards-per-pair tool pays.

iia_throughput.py and sweep_throughput.py differ only in the prompt (its words) and in what
they measure; one copy of the setting keeps their numbers comparable.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

NAMES = ["Mary", "John", "Anna", "Tom", "Lisa", "Paul", "Kate", "Mark", "Emma", "Jack",
         "Sara", "Adam", "Lucy", "Ryan", "Nina", "Carl"]
LAYERS = 12


def spec_text(model_dir: Path, prompt: str, pairs: int, pool: int, batch: int, *, end_position: bool = False,
              layer: int = 6, position: str | None = None, network: str = "gpt2small") -> str:
    """Check `Claim`: `mover -> resid.post[layer]` at the last token, pairs from a pool of inputs.
    `end_position` declares `position END = last` and names the position `END`; `position` (a
    position expression) declares `position P = EXPR` and patches there instead."""
    names = ", ".join(NAMES)
    declared, at = ("\n  position END = last", "END") if end_position else ("", "last")
    if position is not None:
        declared, at = f"\n  position P = {position}", "P"
    return f"""
model Copy {{
  domain Name = enum {{{names}}}
  input A, B : Name ~ uniform where A != B
  var mover : Name = A
  output answer : Name = mover
}}
network {network} = hf "{model_dir}" {{
  prompt "{prompt}"
  answer " {{answer}}"{declared}
}}
align Copy to {network} as Claim {{
  mover -> resid.post[{layer}] @ {at}
  answer -> output
}}
check Claim {{
  interchange mover
  pairs {pairs} seed 0 pool {pool} batch {batch}
  expect iia >= 0.0
}}
"""


def build_model(directory: Path, words: list[str]) -> None:
    """GPT-2 small's body (12 layers, 12 heads, d_model 768), random init, over a word tokenizer
    of `words` and NAMES (no pretrained tokenizer can be fetched)."""
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    tok = build_word_tokenizer(words + NAMES)
    build_tiny_model("gpt2", len(tok), directory, seed=0, tokenizer=tok, n_layer=LAYERS, n_head=12, n_embd=768,
                     n_positions=64)


@contextmanager
def bench_spec(words: list[str], prompt: str, file: str, pairs: int, pool: int, batch: int,
               **spec_options) -> Iterator[object]:
    """The loaded spec (SpecIR) over a freshly built model, both in a temporary folder removed after."""
    from causalspec.semantics.analyse import load_text

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "gpt2small"
        build_model(model_dir, words)
        yield load_text(spec_text(model_dir, prompt, pairs, pool, batch, **spec_options), str(Path(tmp) / file),
                        base_dir=Path(tmp))


class PeakRSS:
    """Peak resident set size of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        return False

    def text(self) -> str:
        return f"peak RSS {self.peak / 2**20:7.0f} MiB (+{(self.peak - self.start) / 2**20:.0f})"


def warm_up(net, batch: int, seq: int = 16) -> None:
    """One forward before any measurement, so the allocator's growth is not charged to the first method."""
    with torch.no_grad():
        ids = torch.full((batch, seq), 5, dtype=torch.long, device=net.device)
        net.module(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    print(f"network loaded and warmed up: RSS {_rss() / 2**20:.0f} MiB")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def time_plain(net, base, source, batch: int) -> float:
    """Seconds of a plain batched forward of the 2N base and source inputs (no patching)."""
    ids = torch.cat([base.inputs["input_ids"], source.inputs["input_ids"]])
    mask = torch.cat([base.inputs["attention_mask"], source.inputs["attention_mask"]])
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(ids), batch):
            net.module(input_ids=ids[s:s + batch], attention_mask=mask[s:s + batch])
    return time.perf_counter() - t0


class Clock:
    """Seconds on two clocks, summed over every `with clock:` block: wall time and this
    process's CPU time (user + system of all its threads, `time.process_time`). With one torch
    thread, CPU time is what the work cost even while other jobs share the cores, where wall
    time also counts the waits for a core."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c

    def get(self, which: str) -> float:
        return self.cpu if which == "cpu" else self.wall


def clean_clock(net, adapter, rows: dict, batch: int) -> Clock:
    """`time_clean` on both clocks."""
    n = len(next(iter(rows.values())))
    clock = Clock()
    with torch.no_grad():
        for s in range(0, n, batch):
            b = adapter.encode({k: v[s:s + batch] for k, v in rows.items()})
            with clock:
                net.module(**b.inputs, use_cache=True)
    return clock


def time_clean(net, adapter, rows: dict, batch: int) -> float:
    """Seconds of plain forwards (no hooks) of the unique inputs `rows`, encoding outside the
    timing: the clean part of the limit no engine of this design can beat."""
    return clean_clock(net, adapter, rows, batch).wall
