"""The boundary between user code and causalspec (issue 10, items 4-5), unit by unit.

What a user's hook, builder or forward does wrong is a `UserCodeError` (a check ERROR);
what causalspec's own code does wrong inside a user's forward (a site hook) keeps its type
(an internal error stays one); out-of-memory keeps its type (the engine retries smaller).
Sites count their module's calls per forward; outputs that hold NaN/inf get their own codes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from causalspec.run import patching
from causalspec.run.adapters import (Batch, TorchAdapter, check_encoded, decoded_values, nonfinite_codes,
                                     raised_by_causalspec)
from causalspec.run.loading import LoadedNetwork, UserCodeError, call_user
from causalspec.run.hooks import patch, record
from causalspec.run.sites import Intervention, SiteCallError
from causalspec.semantics.site_kinds import SiteAddress
from causalspec.score.iia import NONFINITE_KINDS, nonfinite_counts
from causalspec.testing.specs import only_model

MODEL = only_model("""
model Copy {
  input A : bool ~ uniform
  output O : bool = A
}
""")


class Net(nn.Module):
    def __init__(self, fail: BaseException | None = None, twice: bool = False):
        super().__init__()
        self.hidden = nn.Linear(1, 2)
        self.spare = nn.ReLU()  # never called
        self.fail, self.twice = fail, twice

    def forward(self, x):
        if self.fail is not None:
            raise self.fail
        h = self.hidden(x)
        if self.twice:
            h = self.hidden(x) + h
        return h


def adapter(module: nn.Module, encode=None, decode=None) -> TorchAdapter:
    net = LoadedNetwork("n", "torch", module, torch.device("cpu"), torch.float32,
                        encode_hook=encode or (lambda v: torch.tensor([[float(a)] for a in v["A"]])),
                        decode_hook=decode, extra={"encode": "net.py:encode", "decode": "net.py:decode"})
    return TorchAdapter(net, MODEL, "O")


def batch(n: int = 3) -> Batch:
    return Batch(torch.ones(n, 1), {"A": np.ones(n, dtype=bool)}, n)


# ───────────────────────── user code vs ours ─────────────────────────

def test_a_forward_that_raises_is_the_users_error_naming_the_input():
    with pytest.raises(UserCodeError, match=r"forward failed on what the encode hook `net.py:encode` produced "
                                            r"\(Tensor \(3, 1\) float32\): raised KeyError"):
        adapter(Net(fail=KeyError("x"))).forward(batch())


def test_sys_exit_in_user_code_is_the_users_error():
    with pytest.raises(UserCodeError, match=r"sys.exit\(2\)"):
        adapter(Net(fail=SystemExit(2))).forward(batch())
    with pytest.raises(UserCodeError, match=r"my hook called sys.exit\(\)"):
        call_user("my hook", lambda: exec("raise SystemExit"))


def test_an_error_in_causalspecs_own_hook_keeps_its_type():
    # a bug of ours (here: a malformed intervention reaching make_edit) is raised in causalspec's
    # code inside the user's forward: it must stay an internal error, not become the user's fault
    net = Net()
    broken = Intervention(SiteAddress("module", module_path="hidden", module_io="output"), None, object())
    with pytest.raises(AttributeError) as info, patch(net, None, [broken]):
        adapter(net).forward(batch())
    assert not isinstance(info.value, UserCodeError)
    try:  # classified the way the adapter does it, from the frame that catches
        with patch(net, None, [broken]):
            net(torch.ones(3, 1))
    except AttributeError as exc:
        assert raised_by_causalspec(exc)
    try:  # an error from the user's code (this test file) or from torch alone is not ours
        Net(fail=ValueError("user"))(torch.ones(3, 1))
    except ValueError as exc:
        assert not raised_by_causalspec(exc)
    try:
        nn.Linear(2, 2)(torch.ones(3, 1))
    except RuntimeError as exc:
        assert not raised_by_causalspec(exc)


def test_out_of_memory_keeps_its_type_for_the_batch_sizer():
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)("CUDA out of memory. Tried to allocate 2 GiB")
    with pytest.raises(type(oom)) as info:
        adapter(Net(fail=oom)).forward(batch())
    assert not isinstance(info.value, UserCodeError)


def test_a_keyboard_interrupt_is_never_swallowed():
    with pytest.raises(KeyboardInterrupt):
        adapter(Net(fail=KeyboardInterrupt())).forward(batch())
    with pytest.raises(KeyboardInterrupt):
        call_user("hook", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))


# ───────────────────────── hook results ─────────────────────────

@pytest.mark.parametrize("value, needle", [
    ([[1.0]] * 3, "got list"), (None, "got None"), ({}, "got an empty dict"),
    ({"x": [1, 2, 3]}, "entry 'x' is list"), (torch.ones(2, 1), r"shape \(2, 1\) for a batch of 3"),
    (torch.tensor(1.0), r"shape \(\) for a batch of 3"), ({"x": torch.ones(4)}, "under 'x'"),
])
def test_encode_results_are_checked(value, needle):
    with pytest.raises(UserCodeError, match=needle):
        check_encoded(value, 3, "encode hook `e.py:f`")


def test_good_encode_results_pass():
    check_encoded(torch.ones(3, 2), 3, "e")
    check_encoded({"ids": torch.ones(3, 2, dtype=torch.long), "mask": torch.ones(3, 2)}, 3, "e")


@pytest.mark.parametrize("value, needle", [
    ([True, False], "returned 2 value"), (None, "got None"), (7, "got int"), ("ab c", "got str"),
    ([True] * 4, "returned 4 value"),
])
def test_decode_results_are_checked(value, needle):
    with pytest.raises(UserCodeError, match=needle):
        decoded_values(value, 3, "decode hook `d.py:f`")


def test_decode_may_return_a_tensor_or_array():
    assert decoded_values(torch.tensor([1, 0, 1]), 3, "d") == [1, 0, 1]
    assert decoded_values(np.array([True, False, True]), 3, "d") == [True, False, True]


def test_dict_outputs_are_read_when_unambiguous():
    a = adapter(Net())
    x = torch.ones(3, 2)
    assert a._main_output({"logits": x, "aux": 1}) is x
    assert a._main_output({"scores": x, "note": "text"}) is x  # its only tensor
    assert a._main_output((x, None)) is x
    with pytest.raises(UserCodeError, match="keys 'a', 'b'"):
        a._main_output({"a": x, "b": x})
    with pytest.raises(UserCodeError, match="got str"):
        a._main_output("logits")


def test_embeddings_refuse_ids_they_do_not_have():
    class Emb(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(5, 2)

        def forward(self, ids):
            return self.table(ids).sum(1)

    a = adapter(Emb())
    assert a.forward(Batch(torch.tensor([[0, 4]]), {}, 1)).shape == (1, 2)
    for bad in (5, -1):
        with pytest.raises(UserCodeError, match=rf"embedding `table` got token id {bad} but has 5 rows \(ids 0..4\)"):
            a.forward(Batch(torch.tensor([[0, bad]]), {}, 1))


# ───────────────────────── non-finite outputs ─────────────────────────

def test_rows_with_nan_or_inf_get_their_own_codes():
    raw = torch.tensor([[0.0, 1.0], [float("nan"), 1.0], [float("inf"), 0.0], [float("nan"), float("-inf")]])
    expected = [1, patching.NAN_OUTPUT, patching.INF_OUTPUT, patching.NAN_OUTPUT]
    assert patching.decode(raw, None, None).tolist() == expected
    assert nonfinite_codes(raw, 4).tolist() == [0, *expected[1:]]
    assert adapter(Net()).predict(raw, batch(4)).tolist() == expected
    # a decode hook does not hide them
    decoding = adapter(Net(), decode=lambda out: [True] * out.shape[0])
    assert decoding.predict(raw, batch(4)).tolist() == [1, *expected[1:]]


def test_score_layer_codes_agree_with_the_run_layer():
    assert NONFINITE_KINDS == {patching.NAN_OUTPUT: "NaN", patching.INF_OUTPUT: "inf"}


def test_nonfinite_pairs_are_counted_once_by_their_worst_kind():
    nan, inf = patching.NAN_OUTPUT, patching.INF_OUTPUT
    base = np.array([0, nan, 1, 1, 0])
    sources = np.array([[0, 0, inf, 1, 0]])
    patched = np.array([1, inf, 1, nan, 0])
    assert nonfinite_counts(base, sources, patched) == {"NaN": 2, "inf": 1}
    assert nonfinite_counts(base[[0, 4]], sources[:, [0, 4]], patched[[0, 4]]) == {}
    assert nonfinite_counts(np.array([]), np.zeros((1, 0)), np.array([])) == {}


# ───────────────────────── calls per forward ─────────────────────────

HIDDEN = SiteAddress("module", module_path="hidden", module_io="output")


def test_a_module_run_twice_per_forward_is_an_error_for_reads_and_patches():
    net = Net(twice=True)
    with pytest.raises(SiteCallError, match=r"module `hidden` ran 2 times in one forward pass"):
        with record(net, None, [HIDDEN]):
            net(torch.ones(3, 1))
    iv = Intervention(HIDDEN, None, torch.zeros(3, 2))
    with pytest.raises(SiteCallError, match=r"ran 2 times"):
        with patch(net, None, [iv]):
            net(torch.ones(3, 1))


def test_once_per_forward_is_fine_over_several_forwards_and_stacked_patches():
    net = Net()
    with record(net, None, [HIDDEN]) as captured:
        net(torch.ones(3, 1))
        net(torch.ones(3, 1))
    assert captured[HIDDEN].shape == (3, 2)
    ivs = [Intervention(HIDDEN, None, torch.zeros(3, 2)), Intervention(HIDDEN, None, torch.ones(3, 2))]
    with patch(net, None, ivs):  # two interventions at one site: each hook runs once per forward
        out = net(torch.ones(3, 1))
    assert torch.equal(out, torch.ones(3, 2))


def test_a_read_at_a_module_forward_never_calls_is_an_error():
    net = Net()
    spare = SiteAddress("module", module_path="spare", module_io="output")
    with pytest.raises(SiteCallError, match=r"module `spare` never ran"):
        with record(net, None, [spare]):
            net(torch.ones(3, 1))
    with record(net, None, [spare]):  # no forward of the model in the block: nothing to judge
        net.hidden(torch.ones(3, 1))
