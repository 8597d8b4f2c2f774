"""E0613: two variables aligned to non-orthogonal fixed subspaces of one site warn at analysis time."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from causalspec.cli import main
from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text

W = 16


def _spec(a_feat: str, b_feat: str, b_site: str = "resid.post[3] @ END", extra: str = "") -> str:
    return f'''
model M {{
  input a, b : bool
  var A : bool = a
  var B : bool = b
  output o : bool = A and B
}}
network n = hf "gpt2" {{ prompt "{{a}} {{b}}" answer " {{o}}" position END = last position S = slot(a) }}
align M to n as Al {{
  A -> resid.post[3] @ END : {a_feat}
  B -> {b_site} : {b_feat}
  o -> output
}}
{extra}'''


@pytest.fixture
def bases(tmp_path):
    eye = np.eye(W, dtype=np.float32)
    diag = ((eye[:, 0] + eye[:, 1]) / np.sqrt(2)).astype(np.float32)
    save_file({"P": eye[:, 0:2].copy(), "Q": eye[:, 2:4].copy(), "D": diag[:, None].copy(),
               "PT": eye[:, 0:2].T.copy()}, str(tmp_path / "b.safetensors"))
    return tmp_path


def _warnings(text, base_dir):
    ir = load_text(text, "s.cspec", base_dir=base_dir)
    return [w for w in ir.warnings if w.code == "E0613"]


def test_two_bases_sharing_a_direction_warn_naming_both_variables_the_site_and_the_overlap(bases):
    [w] = _warnings(_spec('basis(file="b.safetensors", key="P")', 'basis(file="b.safetensors", key="D")'), bases)
    assert w.severity == "warning"
    assert "`B` and `A`" in w.message and "resid.post[3]" in w.message
    assert "largest cosine 1.000" in w.message and "0.0°" in w.message  # D lies in span(P)
    assert w.span.line == 11  # B's line
    assert "orthonormalise" in w.help


def test_non_orthogonal_bases_report_the_largest_cosine_and_principal_angle(bases):
    [w] = _warnings(_spec('basis(file="b.safetensors", key="D")', 'basis(file="b.safetensors", key="PT")'), bases)
    assert "largest cosine 1.000" in w.message  # a [k, width] matrix is read transposed
    [w] = _warnings(_spec('[0:1]', 'basis(file="b.safetensors", key="D")'), bases)
    assert "largest cosine 0.707" in w.message and "45.0°" in w.message and "slice [0:1]" in w.message


def test_the_same_basis_vector_for_two_variables_warns(bases):
    [w] = _warnings(_spec('basis(file="b.safetensors", key="Q")', 'basis(file="b.safetensors", key="Q")'), bases)
    assert "share a direction" in w.message


def test_orthogonal_bases_other_positions_and_learned_featurizers_say_nothing(bases):
    assert _warnings(_spec('basis(file="b.safetensors", key="P")', 'basis(file="b.safetensors", key="Q")'),
                     bases) == []
    assert _warnings(_spec('basis(file="b.safetensors", key="P")', '[2:8]'), bases) == []
    assert _warnings(_spec('basis(file="b.safetensors", key="P")', 'basis(file="b.safetensors", key="P")',
                           b_site="resid.post[3] @ S"), bases) == []  # other token: no shared coordinates
    assert _warnings(_spec('basis(file="b.safetensors", key="P")', 'basis(file="b.safetensors", key="P")',
                           b_site="resid.post[4] @ END"), bases) == []  # another site
    assert _warnings(_spec('basis(file="b.safetensors", key="P")', 'das(k=2)'), bases) == []


def test_overlapping_slices_stay_an_error_not_a_warning(bases):
    with pytest.raises(SpecError) as info:
        load_text(_spec("[0:8]", "[4:12]"), "s.cspec", base_dir=bases)
    assert [d.code for d in info.value.diagnostics] == ["E0608"]


def test_cli_prints_the_warning_and_the_spec_stays_valid(bases, capsys):
    spec = bases / "s.cspec"
    spec.write_text(_spec('basis(file="b.safetensors", key="P")', 'basis(file="b.safetensors", key="D")'))
    assert main(["parse", str(spec)]) == 0
    err = capsys.readouterr().err
    assert "warning[E0613]" in err and "`B` and `A`" in err and "s.cspec:11:" in err
