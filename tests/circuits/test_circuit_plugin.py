"""Circuit claims as pytest items (the plugin), run in-process through `pytester`."""

from __future__ import annotations

# In-process runs drop the modules they imported; torch and transformers cannot be imported
# twice in one process, so everything a circuit claim touches is imported here first.
import causalspec.claims.runner  # noqa: F401
import causalspec.claims.circuit  # noqa: F401
import causalspec.pytest_plugin  # noqa: F401
import causalspec.report.circuit_report  # noqa: F401
import causalspec.report.terminal  # noqa: F401
import causalspec.run.circuit_engine  # noqa: F401
import causalspec.run.families  # noqa: F401
import causalspec.run.hf_adapter  # noqa: F401
import causalspec.semantics.analyse  # noqa: F401
from causalspec.testing.toy_circuits import build_induction_model, spec_header

pytest_plugins = ["pytester"]
PLUGIN = ["-p", "causalspec.pytest_plugin", "-W", "ignore::pytest.PytestAssertRewriteWarning"]

CIRCUITS = """
circuit Induction on toy for Induction.answer {
  group prev = head[0.0]
  group ind  = head[1.0] @ END
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  pairs 16
  expect faithfulness >= 0.9
}

circuit MoverOnly on toy for Induction.answer {
  group ind = head[1.0] @ END
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  pairs 16
  expect faithfulness >= 0.9
}
"""


def test_circuits_are_pytest_items(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    build_induction_model(tmp_path / "toy")
    pytester.path.joinpath("toy.cspec").write_text(spec_header(tmp_path / "toy", ref_pairs=16) + CIRCUITS)
    result = pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", "toy.cspec", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["PASSED toy.cspec::Induction"])
    result.stdout.fnmatch_lines(["*circuit MoverOnly*", "does not hold on 16 sampled prompts (seed 0)*",
                                 "*ablation: mean over dataset `Ref`*", "*faithfulness*",
                                 "*reproduce: causalspec check toy.cspec --only MoverOnly --pairs 16 --seed 0"])
    assert "Traceback" not in result.stdout.str()
