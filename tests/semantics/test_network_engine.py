"""`device_map` and `backend torch|nnsight [remote ["URL"]]` in a network body: their IR fields,
their diagnostics (E0610, one per mistake, with did-you-mean), and that a spec's `device_map`
reaches the hf loader unless the command line overrides it."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.claims import networks
from causalspec.claims.runner import CheckOptions, NetworkCache
from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load, load_text

OK = Path(__file__).parents[1] / "syntax" / "ok"
MODEL = "model M {\n  input a : bool\n  output o : bool = a\n}\n"
TORCH = 'network n = torch "m.py:build" weights "w.safetensors" {\n  encode "m.py:encode"\n'


def analyse(body: str, tmp_path: Path, torch: bool = False):
    (tmp_path / "m.py").write_text("def build(): ...\ndef encode(x): ...\n")
    (tmp_path / "w.safetensors").write_bytes(b"")
    head = TORCH if torch else 'network n = hf "gpt2" {\n  prompt "{a}"\n'
    return load_text(MODEL + head + body + "}\n", "t.cspec", base_dir=tmp_path)


def diagnostics(body: str, tmp_path: Path, torch: bool = False):
    with pytest.raises(SpecError) as info:
        analyse(body, tmp_path, torch)
    return info.value.diagnostics


def test_ok_corpus_networks():
    ir = load(OK / "greater_than.cspec")
    xl, remote, plain = ir.networks["gpt2xl"], ir.networks["gpt2remote"], ir.networks["gpt2"]
    assert (xl.device_map, xl.backend_name, xl.remote, xl.remote_host, xl.dtype) == \
        ("auto", "nnsight", False, None, "bfloat16")
    assert (remote.device_map, remote.backend_name, remote.remote, remote.remote_host) == \
        ("balanced", "nnsight", True, "https://ndif.example.org")
    assert (plain.device_map, plain.backend_name, plain.remote, plain.remote_host) == (None, None, False, None)


@pytest.mark.parametrize("body,want", [
    ("  device_map auto\n", ("auto", None, False, None)),
    ('  device_map "sequential"\n', ("sequential", None, False, None)),
    ("  device_map balanced_low_0\n  backend torch\n", ("balanced_low_0", "torch", False, None)),
    ("  backend nnsight\n", (None, "nnsight", False, None)),
    ("  backend nnsight remote\n", (None, "nnsight", True, None)),
    ('  backend nnsight remote "http://localhost:5001"\n', (None, "nnsight", True, "http://localhost:5001")),
])
def test_ir_fields(body, want, tmp_path):
    net = analyse(body, tmp_path).networks["n"]
    assert (net.device_map, net.backend_name, net.remote, net.remote_host) == want


def test_torch_network_takes_a_local_engine(tmp_path):
    net = analyse("  backend nnsight\n", tmp_path, torch=True).networks["n"]
    assert (net.backend_name, net.remote, net.device_map) == ("nnsight", False, None)


@pytest.mark.parametrize("body,torch,line,column,words", [  # line: of the body, from 1
    ("  device_map autoo\n", False, 1, 3, ["unknown device_map", "did you mean `auto`?"]),
    ('  device_map "cuda:0"\n', False, 1, 3, ["strategies are auto, balanced", "`device …` instead"]),
    ("  device_map auto\n", True, 1, 3, ["applies to hf networks only"]),
    ("  backend nnsigt\n", False, 1, 11, ["unknown engine `nnsigt`", "did you mean `nnsight`?"]),
    ("  backend hooks\n", False, 1, 11, ["unknown engine", "engines are torch"]),
    ("  backend torch remote\n", False, 1, 3, ["needs the nnsight engine", "backend nnsight remote"]),
    ("  backend nnsight remote\n", True, 1, 3, ["needs an hf network", "NDIF runs hub models"]),
    ('  backend nnsight remote "ndif.org"\n', False, 1, 26, ["not an http(s) URL"]),
    ("  backend nnsight\n  backend torch\n", False, 2, 3, ["`backend` is given twice"]),
    ("  device_map auto\n  device_map auto\n", False, 2, 3, ["`device_map` is given twice"]),
    ("  device cpu\n  device_map auto\n", False, 1, 3, ["both `device` and `device_map`"]),
])
def test_invalid(body, torch, line, column, words, tmp_path):
    diags = diagnostics(body, tmp_path, torch)
    shown = [(d.code, d.span.line, d.span.column, d.message, d.help) for d in diags]
    assert len(diags) == 1, shown  # one mistake, one diagnostic
    d = diags[0]
    assert (d.code, d.span.line, d.span.column) == ("E0610", MODEL.count("\n") + 2 + line, column), shown
    for w in words:
        assert w in d.message + " " + (d.help or ""), shown


@pytest.mark.parametrize("cli,want", [(None, "balanced"), ("auto", "auto")])
def test_spec_device_map_reaches_the_loader(cli, want, tmp_path, monkeypatch):
    ir = analyse('  device_map "balanced"\n', tmp_path)
    seen = {}

    def fake_load(name, source, base_dir, model_class, device, dtype, **kw):
        seen.update(kw)
        return "loaded"

    monkeypatch.setattr(networks, "load_hf_network", fake_load)
    assert NetworkCache().get(ir, "n", CheckOptions(device_map=cli)) == "loaded"
    assert seen["device_map"] == want
