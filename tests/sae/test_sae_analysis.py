"""`sae(…)` in a spec: located diagnostics for a bad folder, bad shapes, bad latents and a hook
name that does not match the site; a width that does not fit the site is a check error naming
the file."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.errors import SpecError
from causalspec.semantics.analyse import load
from causalspec.testing.sae import planted_sae, write_sae

from .conftest import write_spec

ALIGN = '''
align HierEq to planted as A {{
  WX -> module "layers.0" output : {feat}
  O -> output : argmax
}}
check A {{
  interchange WX
  pairs 64 seed 0
  expect iia >= 0.9
}}
'''


def diagnostics(folder, feat: str, name: str = "a.cspec"):
    path = write_spec(folder, name, ALIGN.format(feat=feat))
    try:
        ir = load(path)
    except SpecError as exc:
        return [(d.code, d.span.line, d.span.column, d.message) for d in exc.diagnostics], None
    return [], ir


LINE = 15  # the alignment line of WX in the written spec
COL = 40  # the column of the folder argument of `sae(`
LATENTS = 47  # the column of `latents=` after `sae("sae", `
FEAT = 34  # the column of the featurizer (its colon)


def test_line_and_column_constants(sae_dir):
    _, ir = diagnostics(sae_dir, 'sae("sae", latents=[0])')
    (b,) = ir.alignments["A"].variables["WX"]
    assert b.span.line == LINE
    assert (sae_dir / "a.cspec").read_text().splitlines()[LINE - 1].index('"sae"') + 1 == COL


@pytest.mark.parametrize("feat, code, col, message", [
    ('sae("nope", latents=[0])', "E0801", COL, "not found"),
    ('sae("planted.safetensors", latents=[0])', "E0620", COL, "is a file"),
    ('sae("sae", latents=[78])', "E0621", LATENTS, "latent 78 does not exist"),
    ('sae("sae")', "E0604", FEAT, "needs the latents"),
    ('sae("sae", latents=[1, 1])', "E0604", LATENTS, "listed twice"),
    ('sae(latents=[1])', "E0604", FEAT, "quoted path"),
])
def test_located_errors(sae_dir, feat, code, col, message):
    found, _ = diagnostics(sae_dir, feat)
    assert found, feat
    got_code, line, column, text = found[0]
    assert (got_code, line, column) == (code, LINE, col), found
    assert message in text


def _with_weights(sae_dir, folder):
    (folder / "planted.safetensors").write_bytes((sae_dir / "planted.safetensors").read_bytes())
    return folder


def test_missing_cfg_and_shape_mismatch_are_located(sae_dir, tmp_path):
    folder = _with_weights(sae_dir, tmp_path)
    bad = planted_sae(folder / "nocfg")
    (bad / "cfg.json").unlink()
    found, _ = diagnostics(folder, 'sae("nocfg", latents=[0])')
    assert found[0][:3] == ("E0620", LINE, COL) and "cfg.json" in found[0][3]
    wrong = planted_sae(folder / "shapes")
    tensors = load_file(str(wrong / "sae_weights.safetensors"))
    tensors["W_dec"] = tensors["W_dec"][:, :39].contiguous()
    save_file(tensors, str(wrong / "sae_weights.safetensors"))
    found, _ = diagnostics(folder, 'sae("shapes", latents=[0])')
    assert found[0][:3] == ("E0622", LINE, COL) and "W_dec" in found[0][3]
    arch = planted_sae(folder / "gated")
    cfg = json.loads((arch / "cfg.json").read_text())
    cfg["architecture"] = "gated"
    (arch / "cfg.json").write_text(json.dumps(cfg))
    found, _ = diagnostics(folder, 'sae("gated", latents=[0])')
    assert found[0][:3] == ("E0620", LINE, COL) and "gated" in found[0][3]


def test_hook_mismatch_warns_at_the_featurizer(sae_dir, tmp_path):
    _with_weights(sae_dir, tmp_path)
    planted_sae(tmp_path / "elsewhere", hook_name="blocks.3.hook_resid_post")
    found, ir = diagnostics(tmp_path, 'sae("elsewhere", latents=[0])')
    assert not found
    (w,) = [d for d in ir.warnings if d.code == "W0610"]
    assert (w.span.line, w.span.column) == (LINE, FEAT)
    assert "blocks.3.hook_resid_post" in w.message and "resid.post[3]" in w.message
    _, ir = diagnostics(sae_dir, 'sae("sae", latents=[0])')  # trained at layers.0: no warning
    assert not [d for d in ir.warnings if d.code == "W0610"]


def test_locate_over_latents_needs_an_sae(sae_dir):
    body = ('align HierEq to planted as B {\n  O -> output : argmax\n}\n'
            'check B {\n  locate WX over latents of module "layers.0" output : das(k=1)\n  interchange WX\n'
            '  expect iia >= 0.9\n}\n'
            'check B as C {\n  locate WX over latents of module "layers.0" output : sae("sae", latents=[0])\n'
            '  interchange WX\n  expect iia >= 0.9\n}\n')
    path = write_spec(sae_dir, "b.cspec", body)
    with pytest.raises(SpecError) as info:
        load(path)
    lines = path.read_text().splitlines()
    das_line = next(i for i, t in enumerate(lines, 1) if "das(k=1)" in t)
    latents_line = next(i for i, t in enumerate(lines, 1) if "latents=[0]" in t)
    codes = [(d.code, d.span.line) for d in info.value.diagnostics]
    assert ("E0623", das_line) in codes and ("E0604", latents_line) in codes


def test_width_mismatch_is_a_check_error_naming_the_file(sae_dir, tmp_path):
    g = torch.Generator().manual_seed(0)
    write_sae(tmp_path / "narrow", torch.randn(8, 4, generator=g), torch.zeros(4), torch.randn(4, 8, generator=g),
              torch.zeros(8))
    _with_weights(sae_dir, tmp_path)
    _, ir = diagnostics(tmp_path, 'sae("narrow", latents=[0])')
    (r,) = run_checks(ir, CheckOptions(artifacts=str(tmp_path / "art")))
    assert r.status == "error"
    assert "narrow" in r.reason and "d_in=8" in r.reason and "width 40" in r.reason and "cfg.json" in r.reason
