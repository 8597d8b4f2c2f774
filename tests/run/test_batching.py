"""Memory-bounded batching: out-of-memory makes the batch size back off, never changes a result.

Out-of-memory is simulated with a fake memory limit: a forward pre-hook on the model raises
`torch.OutOfMemoryError` when a forward feeds more tokens (rows x positions) than the limit,
the way a GPU would. The run must complete with the same predictions as an unconstrained
run, and the check's notes must say that the batch size backed off.
"""

from __future__ import annotations

import pytest
import torch

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.run.batching import BatchSizer, is_oom
from causalspec.semantics.analyse import load
from causalspec.testing.claims import claim_run
from causalspec.testing.specs import mover_spec


def spec_text(model_dir, at: str) -> str:
    """`mover -> resid.post[0] @ at` (A1 or END), 40 pairs, batch 16."""
    return mover_spec(model_dir, at=at, positions=True, pairs=40, batch=16)


# ───────────────────────── the sizer itself ─────────────────────────


def test_oom_is_recognised_in_its_usual_forms():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert is_oom(MemoryError())
    assert not is_oom(RuntimeError("shape mismatch"))
    assert not is_oom(ValueError("out of memory"))  # only runtime errors carry allocator failures


def run_with_limit(sizer: BatchSizer, n: int, limit: int) -> list[list[int]]:
    done = []
    for chunk in sizer.chunks(n):
        with chunk:
            if len(chunk.idx) > limit:
                raise torch.OutOfMemoryError("simulated")
            done.append(chunk.idx.tolist())
    return done


def test_sizer_halves_until_it_fits_and_keeps_the_smaller_size():
    seen = []
    sizer = BatchSizer(16, on_backoff=lambda old, new, exc: seen.append((old, new)))
    done = run_with_limit(sizer, 37, limit=5)
    assert [i for part in done for i in part] == list(range(37))  # every row once, in order
    assert max(len(p) for p in done) <= 5 and sizer.size == 4
    assert seen == sizer.backoffs == [(16, 8), (8, 4)]


def test_sizer_reraises_at_the_smallest_size_and_never_swallows_other_errors():
    with pytest.raises(torch.OutOfMemoryError):
        run_with_limit(BatchSizer(8), 10, limit=0)
    sizer = BatchSizer(8)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        for chunk in sizer.chunks(10):
            with chunk:
                raise RuntimeError("shape mismatch")
    assert sizer.size == 8 and not sizer.backoffs


def test_a_chunk_must_be_entered():
    with pytest.raises(RuntimeError, match="with chunk"):
        for _ in BatchSizer(4).chunks(8):
            pass


# ───────────────────────── the engine under a fake memory limit ─────────────────────────


@pytest.fixture(scope="module")
def model_dir(word_lm):
    return word_lm("gpt2")


class FakeMemoryLimit:
    """Raise torch.OutOfMemoryError from any forward that feeds more than `tokens` tokens."""

    def __init__(self, module, tokens: int):
        self.module, self.tokens, self.refused = module, tokens, 0

    def __enter__(self):
        def check(mod, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None and ids.numel() > self.tokens:
                self.refused += 1
                raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {ids.numel()} > {self.tokens} tokens)")

        self.handle = self.module.register_forward_pre_hook(check, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False


def predictions(ir, incremental: bool, limit: int | None):
    run = claim_run(ir, batch=16, incremental=incremental)
    fake = FakeMemoryLimit(run.net.module, limit if limit is not None else 10**9)
    with fake:
        _, preds = run.run()
    return preds, run.engine, fake


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("at", ["END", "A1"])
def test_engine_backs_off_under_a_small_memory_limit_with_identical_results(model_dir, tmp_path, incremental, at):
    (tmp_path / "p.cspec").write_text(spec_text(model_dir, at))
    ir = load(tmp_path / "p.cspec")
    free, _, _ = predictions(ir, incremental, None)
    preds, engine, fake = predictions(ir, incremental, limit=40)  # prompts are 11-12 tokens: 3 rows fit
    assert fake.refused > 0
    assert preds.tolist() == free.tolist()
    assert engine.sizer("clean").size <= 3 and engine.sizer("clean").backoffs
    notes = engine.run_notes()
    assert any(n.startswith("clean forwards ran out of memory on a batch of 12; continued with batches of 6")
               for n in notes), notes  # 12 unique inputs
    if incremental and at == "END":  # one token per pair: patched batches of 16 fit the same budget
        assert engine.sizer("patched").size == 16 and not engine.sizer("patched").backoffs


def test_check_notes_report_the_backoff(model_dir, tmp_path):
    (tmp_path / "p.cspec").write_text(spec_text(model_dir, "END"))
    ir = load(tmp_path / "p.cspec")
    from causalspec.claims.runner import NetworkCache

    networks = NetworkCache()
    net = networks.get(ir, "net", CheckOptions())
    with FakeMemoryLimit(net.module, 40):
        [result] = run_checks(ir, CheckOptions(), networks)
    assert result.status in ("passed", "failed"), result.reason
    assert any("ran out of memory" in n for n in result.notes), result.notes
