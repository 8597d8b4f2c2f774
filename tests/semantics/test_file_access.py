"""semantics.file_access: every kind of file a spec reads is flagged (E0807, a warning) when it
lies outside the spec's folder, after `..` and symbolic links are resolved — and only then."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from causalspec.semantics.analyse import load
from causalspec.semantics.file_access import is_outside, outside_notes
from causalspec.testing.specs import HIER_EQ_EXAMPLE

MODEL = "model M {\n  domain Name = enum {Mary, John}\n  input a : Name\n  output o : Name = a\n}\n"


def outside(spec) -> list:
    return [w for w in load(spec).warnings if w.code == "E0807"]


def test_is_outside_resolves_dotdot_and_symlinks(tmp_path):
    folder = tmp_path / "specs"
    (folder / "sub").mkdir(parents=True)
    assert not is_outside(folder / "sub" / ".." / "x.txt", folder)
    assert not is_outside(folder / "sub" / "x.txt", folder)
    assert is_outside(folder / ".." / "x.txt", folder)
    assert is_outside(tmp_path / "specs2" / "x.txt", folder)  # a sibling sharing the prefix is outside
    (folder / "link").symlink_to(tmp_path)
    assert is_outside(folder / "link" / "x.txt", folder)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_basis_file(tmp_path, where):
    folder = tmp_path / "specs"
    folder.mkdir()
    basis = (folder if where == "inside" else tmp_path) / "b.safetensors"
    save_file({"W": np.eye(4, 2, dtype=np.float32)}, str(basis))
    written = "b.safetensors" if where == "inside" else "../b.safetensors"
    spec = folder / "s.cspec"
    spec.write_text(MODEL + f'network n = hf "gpt2" {{\n  prompt "{{a}}"\n  answer " {{o}}"\n}}\n'
                    f'align M to n as A {{\n  a -> resid.post[0] @ last : basis(file="{written}")\n  o -> output\n}}\n')
    found = outside(spec)
    assert len(found) == (where == "outside")
    if found:
        assert "basis file" in found[0].message and str(basis) in found[0].message
        assert found[0].span.line == 11


def test_an_hf_folder_outside_and_a_hub_id(tmp_path):
    model = tmp_path / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    folder = tmp_path / "specs"
    folder.mkdir()
    spec = folder / "s.cspec"
    for source, flagged in ((str(model), True), ("../models/tiny", True), ("openai-community/gpt2", False)):
        spec.write_text(MODEL + f'network n = hf "{source}" {{\n  prompt "{{a}}"\n  answer " {{o}}"\n}}\n')
        found = outside(spec)
        assert len(found) == flagged, source
        if flagged:
            assert "hf model folder" in found[0].message and found[0].span.line == 6


def test_torch_files_become_one_note_per_file(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"")  # analysis checks that the weights file exists
    (tmp_path / "spec").mkdir()
    spec = tmp_path / "spec" / "s.cspec"
    spec.write_text(MODEL.replace("Name = enum {Mary, John}", "Name = int 0..1") +
                    f'network n = torch "{HIER_EQ_EXAMPLE}/model.py:build_hand" weights "../w.safetensors" {{\n'
                    f'  encode "{HIER_EQ_EXAMPLE}/model.py:encode"\n}}\n')
    ir = load(spec)
    notes = outside_notes(ir.warnings)
    # model.py holds both the builder and the encode hook: one read, one warning (at its first use)
    assert len(notes) == 2 and all("outside the spec's folder" in n and "s.cspec:" in n for n in notes)
    assert notes[0].startswith("torch builder file") and notes[1].startswith("torch weights `../w.safetensors`")
