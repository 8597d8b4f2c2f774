"""Scenarios of issue 10, item 10 (CLI hygiene): the real CLI on specs built in tmp_path.

Each scenario asserts the documented outcome: exit 2 with a message that names the fix for
a usage mistake, a check ERROR naming the cause, or a clean run — never exit 3, never a
silent fallback. The hand-built hierarchical-equality net (examples/hier_eq) is the torch
network; tiny Hugging Face models (causalspec.testing.tiny) are built locally.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest

from causalspec.cli import main
from causalspec.testing.specs import (HAND_GOOD_CHECK, HIER_EQ_EXAMPLE, HIER_EQ_MODEL, MOVER_WORDS,
                                      hier_eq_alignment, mover_spec)

ROOT = Path(__file__).resolve().parents[2]

SWAPPED = hier_eq_alignment("Swapped", "[20:40]", "[0:20]") + """
check Swapped {
  interchange WX
  pairs 24 seed 0
  expect iia >= 0.9 each
}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert code != 3, cap.out + cap.err
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def hand_spec(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("hand"), "hand.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK)


# ───────────────────────── --version ─────────────────────────

def test_version_prints_the_installed_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"causalspec \d+\.\d+\.\d+\S*", out), out


def test_package_version_matches_pyproject():
    import tomllib

    import causalspec

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert causalspec.__version__ == project["version"]


def test_version_falls_back_to_the_package_when_not_installed(monkeypatch):
    import causalspec
    from causalspec.cli.base import version

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert version() == causalspec.__version__


# ───────────────────────── --device / --dtype ─────────────────────────

@pytest.mark.parametrize("argv, message", [
    (["--dtype", "banana"], "--dtype 'banana' is not a dtype"),
    (["--dtype", "bfloat"], "did you mean `bfloat16`?"),
    (["--device", "banana"], "--device 'banana' is not a device"),
    (["--device", "gpu"], "did you mean `cuda`?"),
    (["--device", "cuda0"], "did you mean `cuda:0`?"),
    (["--device", "meta"], "meta tensors hold no values"),
])
@pytest.mark.parametrize("command", ["check", "locate"])
def test_a_bad_device_or_dtype_is_a_usage_error_before_anything_runs(hand_spec, capsys, command, argv, message):
    code, out, err = cli(capsys, command, hand_spec, *argv)
    assert code == 2, out + err
    assert message in err
    assert "passed" not in out and "Traceback" not in err


@pytest.mark.parametrize("alias, canonical", [("fp16", "float16"), ("half", "float16"), ("bf16", "bfloat16"),
                                              ("fp32", "float32"), ("float", "float32"), ("FP64", "float64"),
                                              ("torch.bfloat16", "bfloat16")])
def test_dtype_aliases_resolve_to_the_canonical_name(alias, canonical):
    import argparse

    from causalspec.cli.options import validate_device_dtype

    args = argparse.Namespace(device="CUDA:1", dtype=alias)
    validate_device_dtype(args)
    assert (args.device, args.dtype) == ("cuda:1", canonical)


def test_a_dtype_alias_runs_the_network_in_that_dtype(tmp_path):
    import torch

    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.semantics.analyse import load

    spec = write(tmp_path, "hand.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK)
    ir = load(str(spec))
    net = NetworkCache().get(ir, "hand", CheckOptions(dtype="fp64"))
    assert net.dtype == torch.float64
    assert next(net.module.parameters()).dtype == torch.float64


def test_the_python_api_refuses_a_bad_dtype_instead_of_running_float32(hand_spec):
    from causalspec.claims.runner import CheckOptions, run_checks
    from causalspec.score.results import ERROR
    from causalspec.semantics.analyse import load

    (result,) = run_checks(load(str(hand_spec)), CheckOptions(dtype="banana"))
    assert result.status == ERROR and "'banana' is not a dtype" in result.reason
    (result,) = run_checks(load(str(hand_spec)), CheckOptions(device="banana"))
    assert result.status == ERROR and "'banana' is not a device" in result.reason


def test_a_valid_device_this_machine_lacks_still_skips_with_the_reason(hand_spec, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: cuda:0 runs")
    code, out, _ = cli(capsys, "check", hand_spec, "--device", "cuda:0")
    assert code == 0
    assert "CUDA is not available" in out and out.splitlines()[-1].endswith("1 skipped")


def test_a_bad_device_in_the_spec_is_a_located_diagnostic(tmp_path, capsys):
    text = HIER_EQ_MODEL + HAND_GOOD_CHECK.replace('  encode "', '  device banana\n  encode "')
    code, _, err = cli(capsys, "check", write(tmp_path, "dev.cspec", text))
    assert code == 2
    assert "error[E0610]" in err and "unknown device `banana`" in err


# ───────────────────────── the reproduce line ─────────────────────────

def test_the_reproduce_line_is_not_wrapped_at_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "and-another-one-below-it"
    spec = write(deep, "hier_eq_with_a_long_name.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK + SWAPPED)
    code, out, _ = cli(capsys, "check", spec, "--only", "Swapped")
    assert code == 1
    expected = f"  reproduce: causalspec check {spec} --only Swapped --pairs 24 --seed 0"
    assert len(expected) > 80
    assert expected in out.splitlines(), out


# ───────────────────────── unknown module paths ─────────────────────────

def test_an_unknown_module_path_lists_the_submodules_and_suggests_one(tmp_path, capsys):
    bad = hier_eq_alignment("Typo", "[0:20]", "[20:40]").replace('module "layers.0" output : [0:20]',
                                                                  'module "layers.9" output : [0:20]')
    text = HIER_EQ_MODEL + HAND_GOOD_CHECK + bad + "\ncheck Typo {\n  interchange WX\n  pairs 8 seed 0\n" \
        "  expect iia >= 0.9 each\n}\n"
    code, out, _ = cli(capsys, "check", write(tmp_path, "typo.cspec", text))
    assert code == 1
    assert "✓ PASS Good" in out  # the other check still ran
    assert "no submodule named 'layers.9' (did you mean 'layers.1' or 'layers.0'?)" in out
    assert "`layers` has 2 submodule(s): layers.0, layers.1" in out
    assert "! ERROR Typo" in out and out.splitlines()[-1] == "1 passed, 1 failed"


def test_a_module_path_without_the_models_prefix_suggests_the_full_path(tiny_lm):
    from transformers import AutoModelForCausalLM

    from causalspec.run.families import submodule_hint

    model = AutoModelForCausalLM.from_pretrained(str(tiny_lm("llama")))
    hint = submodule_hint(model, "layers.9")
    assert "did you mean 'model.layers.1' or 'model.layers.0'" in hint
    assert "the model's top level has 2 submodule(s): model, lm_head" in hint
    assert "numbered submodules: model.layers.0..1" in hint
    gpt2 = AutoModelForCausalLM.from_pretrained(str(tiny_lm("gpt2")))
    assert "did you mean 'transformer.h.0'" in submodule_hint(gpt2, "h.0")


# ───────────────────────── hook files import their neighbours ─────────────────────────

MODEL_PY = (HIER_EQ_EXAMPLE / "model.py").read_text()


def hook_folder(folder: Path, mark: str) -> Path:
    """`folder/pkg/model.py` builds the hand net through `import helpers` (pkg/helpers.py), which
    carries MARK = mark; the spec checks that build."""
    write(folder / "pkg", "helpers.py", MODEL_PY + f"\nMARK = {mark!r}\n")
    write(folder / "pkg", "model.py", "import helpers\n\n"
          f"assert helpers.MARK == {mark!r}, helpers.MARK  # not another spec's helpers\n\n"
          "def build():\n    return helpers.build_hand()\n\n"
          "def encode(values):\n    return helpers.encode(values)\n")
    network = (f'\nnetwork hand = torch "pkg/model.py:build" weights "{HIER_EQ_EXAMPLE}/hand.safetensors" {{\n'
               '  encode "pkg/model.py:encode"\n}\n')
    check = "\ncheck Good {\n  interchange WX, YZ\n  pairs 16 seed 0\n  expect iia >= 0.95 each\n}\n"
    return write(folder, "spec.cspec", HIER_EQ_MODEL + network + hier_eq_alignment("Good", "[0:20]", "[20:40]")
                 + check)


def test_a_hook_file_imports_the_module_next_to_it(tmp_path, capsys):
    path_before = list(sys.path)
    a, b = hook_folder(tmp_path / "a", "a"), hook_folder(tmp_path / "b", "b")
    code, out, _ = cli(capsys, "check", a, b)
    assert code == 0, out
    assert out.splitlines()[-1] == "2 passed, 0 failed"  # each spec got its own `helpers`
    assert sys.path == path_before
    assert "helpers" not in sys.modules


def test_a_folder_already_on_the_path_keeps_its_modules(tmp_path, monkeypatch):
    """The project root (on sys.path) holds the hook: what it imports stays imported, once."""
    from causalspec.run.loading import import_user_function

    write(tmp_path / "proj_pkg_cli", "__init__.py", "")
    write(tmp_path / "proj_pkg_cli", "shared.py", "VALUE = 7\n")
    write(tmp_path, "hooks_cli.py", "import proj_pkg_cli.shared\n\ndef f():\n    return proj_pkg_cli.shared\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path_before = list(sys.path)
    f = import_user_function("hooks_cli.py:f", tmp_path, "hook")
    assert sys.path == path_before
    assert sys.modules["proj_pkg_cli.shared"] is f()  # not dropped: one copy for the whole process
    for name in ("proj_pkg_cli", "proj_pkg_cli.shared"):
        sys.modules.pop(name, None)


def test_a_package_below_the_path_is_kept_while_the_neighbour_is_dropped(tmp_path, monkeypatch):
    """pkg/model.py imports `pkg.util` (through the root on sys.path) and `helpers` (its neighbour)."""
    from causalspec.run.loading import import_user_function

    write(tmp_path / "pkg_cli_b", "__init__.py", "")
    write(tmp_path / "pkg_cli_b", "util.py", "X = 1\n")
    write(tmp_path / "pkg_cli_b", "helpers_cli_b.py", "Y = 2\n")
    write(tmp_path / "pkg_cli_b", "model.py", "import helpers_cli_b\nimport pkg_cli_b.util\n\n"
          "def f():\n    return helpers_cli_b.Y + pkg_cli_b.util.X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    f = import_user_function("pkg_cli_b/model.py:f", tmp_path, "hook")
    assert f() == 3
    assert "helpers_cli_b" not in sys.modules and "pkg_cli_b.util" in sys.modules
    for name in ("pkg_cli_b", "pkg_cli_b.util"):
        sys.modules.pop(name, None)


# ───────────────────────── pytest -p with the plugin installed ─────────────────────────

def test_pytest_p_plugin_works_when_the_plugin_is_also_installed(hand_spec, tmp_path):
    installed = [ep for ep in metadata.entry_points(group="pytest11") if ep.value == "causalspec.pytest_plugin"]
    if not installed:
        pytest.skip("causalspec is not installed: no pytest11 entry point to collide with")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", str(hand_spec), "-p", "causalspec.pytest_plugin",
                           "-p", "no:cacheprovider", "-q", "--causalspec-pairs", "16"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "already registered" not in out
    assert "1 passed" in out


# ───────────────────────── tiny HF models ─────────────────────────

@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """kind -> folder of a tiny word-tokenizer LM (built once per module)."""
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            d = tmp_path_factory.mktemp(f"lm_{kind}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                build_tiny_model(kind, None, d, seed=0, tokenizer=build_word_tokenizer(MOVER_WORDS),
                                 initializer_range=0.5)
            built[kind] = d
        return built[kind]

    return get


# ───────────────────────── third-party output ─────────────────────────

def run_cli_subprocess(*argv, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh process: transformers' warn-once messages and bars are not used up by other tests."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "causalspec.cli", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


THIRD_PARTY = re.compile(r"Loading weights|it/s\]|\d+%\|[^|]*\||FutureWarning|DeprecationWarning|UserWarning|"
                         r"\[transformers\]|LOAD REPORT|past_key_values")


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_check_on_an_hf_model_prints_no_third_party_bars_or_warnings(tiny_lm, tmp_path, kind):
    import shutil

    model = tmp_path / "model"  # beside the spec: a folder outside it would add our own E0807 warning
    shutil.copytree(tiny_lm(kind), model)
    spec = write(tmp_path, "mover.cspec", mover_spec(model, pairs=8))
    proc = run_cli_subprocess("check", spec, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    for stream in (proc.stdout, proc.stderr):
        noise = [line for line in stream.splitlines() if THIRD_PARTY.search(line)]
        assert not noise, stream
    assert proc.stderr == ""
    assert re.fullmatch(r"\d passed, \d failed", proc.stdout.splitlines()[-1]), proc.stdout


def test_parameters_missing_from_the_checkpoint_become_a_note(tiny_lm, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "cut"
    shutil.copytree(tiny_lm("gpt2"), folder)
    state = load_file(str(folder / "model.safetensors"))
    del state["transformer.h.1.mlp.c_fc.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    spec = write(tmp_path, "cut.cspec", mover_spec(folder, pairs=8))
    proc = run_cli_subprocess("check", spec, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert ("note: network `net`: 1 parameter(s) missing from the checkpoint, randomly initialised by "
            "transformers: transformer.h.1.mlp.c_fc.weight") in proc.stdout
    assert "LOAD REPORT" not in proc.stdout + proc.stderr


def test_the_quiet_block_restores_every_setting_and_keeps_warnings_outside_it():
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    from causalspec.run.quiet import third_party_quiet

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with third_party_quiet():
            assert not hf_logging.is_progress_bar_enabled() and hub_utils.are_progress_bars_disabled()
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            warnings.warn("inside", FutureWarning, stacklevel=1)
        warnings.warn("outside", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["outside"]
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(),
            hub_utils.are_progress_bars_disabled()) == before
