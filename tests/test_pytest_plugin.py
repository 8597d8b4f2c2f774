"""The pytest plugin: `.cspec` checks as pytest items, run in-process through `pytester`.

Autoloading of installed plugins is switched off in the inner runs so that `-p
causalspec.pytest_plugin` is the one registration whether or not causalspec is installed
(the pytest11 entry point would otherwise register the same module a second time).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.testing.specs import MISSING_HF_SPEC

# In-process runs drop, afterwards, every module they imported; numpy, torch and transformers
# cannot be imported twice in one process, so everything a check touches is imported here first.
import causalspec.claims.runner  # noqa: F401,E402
import causalspec.pytest_plugin  # noqa: F401,E402
import causalspec.report.terminal  # noqa: F401,E402
import causalspec.run.engine  # noqa: F401,E402
import causalspec.run.families  # noqa: F401,E402
import causalspec.run.hf_adapter  # noqa: F401,E402
import causalspec.semantics.analyse  # noqa: F401,E402

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
# the plugin module is imported above already, so pytest cannot assertion-rewrite it: say nothing
PLUGIN = ["-p", "causalspec.pytest_plugin", "-W", "ignore::pytest.PytestAssertRewriteWarning"]

MISSING_HF = MISSING_HF_SPEC

BAD = "model M {\n  input A : bool ~ uniform\n  output O : bool = B\n}\n"


@pytest.fixture
def inner(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def run(*args):
        return pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", *map(str, args))

    return run


def test_hier_eq_spec_gives_one_pass_and_one_failure(inner):
    spec = ROOT / "specs" / "hier_eq.cspec"
    # 400 pairs: enough for TrueAlignment's `lower95 >= 0.99` (Wilson bound 0.9905 at 400/400)
    result = inner(spec, "--causalspec-pairs", 400, "-rA")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["PASSED *specs/hier_eq.cspec::TrueAlignment"])
    result.stdout.fnmatch_lines([
        "*check SwappedAlignment*",
        "does not hold on 400 sampled pairs (seed 0)*iia >= 0.9 each*",
        "*counterexamples (3 shown)*",
        f"*reproduce: causalspec check {spec} --only SwappedAlignment --pairs 400 --seed 0",
        "FAILED *specs/hier_eq.cspec::SwappedAlignment*",  # pytest cuts this line to the terminal width
    ])
    assert "Traceback" not in out and "CheckFailed" not in out and "warning" not in out


def test_missing_weights_skip_and_an_invalid_spec_fails_with_diagnostics(pytester, inner):
    pytester.path.joinpath("skip.cspec").write_text(MISSING_HF)
    pytester.path.joinpath("bad.cspec").write_text(BAD)
    result = inner("skip.cspec", "bad.cspec", "--causalspec-seed", 3, "-rs")
    result.assert_outcomes(skipped=1, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*weights for `causalspec-test/absent-model` not found locally*"])
    result.stdout.fnmatch_lines(["error[E0203]: unknown variable `B` in mechanism of `O`", "*bad.cspec:3:21"])
    assert "Traceback" not in out and "SpecError" not in out


def test_an_invalid_spec_item_is_located_at_its_first_error(pytester, inner):
    """Its item's location (junit's `line`, 0-based as pytest writes it) is the first error's line."""
    pytester.path.joinpath("bad.cspec").write_text(BAD)
    result = inner("bad.cspec", "--junitxml", "junit.xml", "-o", "junit_family=xunit1")
    result.assert_outcomes(failed=1)
    assert 'file="bad.cspec" line="2"' in pytester.path.joinpath("junit.xml").read_text()


def _check_line(text: str, name: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(f"check {name} "))


def test_a_skip_is_reported_at_the_specs_check_line_not_in_the_plugin(pytester, inner):
    """`pytest -ra` names where each skip comes from: the spec file and its `check` line
    (pytest would otherwise name the plugin's line that raised the skip)."""
    pytester.path.joinpath("skip.cspec").write_text(MISSING_HF)
    line = _check_line(MISSING_HF, "CopyPos")
    result = inner("skip.cspec", "-rs", "--junitxml", "junit.xml")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] skip.cspec:{line}: weights for `causalspec-test/absent-model`*"])
    assert "pytest_plugin" not in result.stdout.str()
    junit = pytester.path.joinpath("junit.xml").read_text()
    assert f'skip.cspec:{line}: weights for' in junit and "pytest_plugin" not in junit


def test_a_check_error_ends_with_the_specs_check_line(pytester, inner):
    """A failed or errored check ends, as a failing Python test does, with `path:line` of its
    `check` (here the strict skip, an error)."""
    pytester.path.joinpath("skip.cspec").write_text(MISSING_HF)
    result = inner("skip.cspec", "--causalspec-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*skipped, and --causalspec-strict fails every skip*",
        f"skip.cspec:{_check_line(MISSING_HF, 'CopyPos')}: check CopyPos error",
    ])


def test_cspec_files_are_collected_only_where_asked(pytester, inner):
    """A corpus of specs inside the test suite never runs unless named or configured."""
    pytester.mkdir("tests")
    pytester.mkdir("tests/corpus").joinpath("bad.cspec").write_text(BAD)
    pytester.path.joinpath("tests", "test_ok.py").write_text("def test_ok():\n    pass\n")
    pytester.mkdir("specs").joinpath("bad.cspec").write_text(BAD)
    pytester.makeini("[pytest]\ntestpaths = tests\n")

    inner().assert_outcomes(passed=1)  # testpaths: found by pytest itself, not named
    inner("tests").assert_outcomes(passed=1, failed=1)  # a directory named on the command line
    inner("tests/corpus/bad.cspec").assert_outcomes(failed=1)  # a file named

    pytester.makeini("[pytest]\ntestpaths = tests\ncausalspec_paths = specs\n")
    inner("tests").assert_outcomes(passed=1)  # configured paths decide for directories
    inner("tests/corpus/bad.cspec").assert_outcomes(failed=1)  # a named file always runs
    inner("specs").assert_outcomes(failed=1)


# ───────────────────────── the check's options, offered by the plugin ─────────────────────────

def test_the_plugin_offers_every_run_option_of_causalspec_check(inner):
    """Built from the same table as `causalspec check` (cli/options.py): none is missing."""
    from causalspec.cli.options import CHECK_OPTIONS

    help_text = inner("--help").stdout.str()
    names = [opt.name for opt in CHECK_OPTIONS]
    assert {"batch", "device", "dtype", "backend", "remote", "full-forwards", "activations-on-disk", "artifacts",
            "retrain", "strict", "device-map", "allow-download", "pairs", "seed"} <= set(names)
    for name in names:
        assert f"--causalspec-{name}" in help_text, name


def test_plugin_options_reach_the_check_run(pytester, inner, monkeypatch):
    import causalspec.claims.runner as checking
    from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_MODEL

    seen = []
    real = checking.run_check

    def run_check(ir, check, options, networks):
        seen.append(options)
        return real(ir, check, options, networks)

    monkeypatch.setattr(checking, "run_check", run_check)
    pytester.path.joinpath("good.cspec").write_text(HIER_EQ_MODEL + HAND_GOOD_CHECK)
    result = inner("good.cspec", "--causalspec-batch", 7, "--causalspec-dtype", "fp64", "--causalspec-device", "CPU",
                   "--causalspec-full-forwards", "--causalspec-pairs", 32, "--causalspec-retrain",
                   "--causalspec-artifacts", pytester.path / "arts")
    result.assert_outcomes(passed=1)
    (options,) = seen
    assert (options.batch, options.dtype, options.device, options.incremental, options.pairs) == \
        (7, "float64", "cpu", False, 32)
    assert options.retrain and options.artifacts == str(pytester.path / "arts")
    assert options.seed_flag == "--causalspec-seed" and options.strict is False


@pytest.mark.parametrize("argv, message", [
    (["--causalspec-device", "gpu"], "did you mean `cuda`?"),
    (["--causalspec-dtype", "banana"], "--causalspec-dtype 'banana' is not a dtype"),
    (["--causalspec-batch", "0"], "--causalspec-batch must be at least 1 (got 0)"),
    (["--causalspec-activations-on-disk", "good.cspec"], "--causalspec-activations-on-disk takes a folder"),
])
def test_a_bad_plugin_option_stops_the_session_with_the_reason(pytester, inner, argv, message):
    pytester.path.joinpath("good.cspec").write_text("model M {\n  input A : bool ~ uniform\n  output O : bool = A\n}\n")
    result = inner("good.cspec", *argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_plugin_artifacts_folder_that_is_a_file_is_refused_up_front(pytester, inner):
    pytester.path.joinpath("notes.txt").write_text("mine\n")
    result = inner("--causalspec-artifacts", "notes.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--causalspec-artifacts:" in result.stderr.str()
    assert pytester.path.joinpath("notes.txt").read_text() == "mine\n"
