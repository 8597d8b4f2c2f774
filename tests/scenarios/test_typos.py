"""A typo never becomes a skip that CI reads as green (docs/errors.md, "What skips and what
errors").

A check is skipped only for what is absent by design: hub weights not in the local cache, a
valid device this machine lacks. Every misspelling of something the user named — a local model
folder, a hub id one typo from a cached one, a device, a hook function, an `--only` name — is a
located spec error or usage error (exit 2) or a check ERROR (exit 1) that names the cause and
the fix, and the other checks still run. Each scenario runs the real CLI (in-process) or the
loader on files built in tmp_path, and checks the legitimate absent case beside the typo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from causalspec.cli import main
from causalspec.run import loading
from causalspec.run.loading import NetworkLoadError, NetworkUnavailable
from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_EXAMPLE, HIER_EQ_MODEL, hier_eq_alignment

# In-process pytester runs drop, afterwards, every module they imported; torch and transformers
# cannot be imported twice in one process, so what a check touches is imported here first.
import causalspec.claims.runner  # noqa: F401,E402
import causalspec.pytest_plugin  # noqa: F401,E402
import causalspec.report.terminal  # noqa: F401,E402
import causalspec.run.engine  # noqa: F401,E402
import causalspec.run.families  # noqa: F401,E402
import causalspec.run.hf_adapter  # noqa: F401,E402
import causalspec.semantics.analyse  # noqa: F401,E402

pytest_plugins = ["pytester"]

PLUGIN = ["-p", "causalspec.pytest_plugin", "-W", "ignore::pytest.PytestAssertRewriteWarning"]

COPY_MODEL = """
model Copy {
  domain Name = enum {Mary, John}
  input  A : Name ~ uniform
  var    B : Name = A
  output answer : Name = B
}
"""


def copy_check(source: str) -> str:
    """An hf network `net` on `source`, with a check `CopyPos` on it."""
    return COPY_MODEL + f"""
network net = hf "{source}" {{
  prompt "Say {{A}}:"
  answer " {{answer}}"
}}

align Copy to net as CopyPos {{
  B -> resid.post[0] @ last
  answer -> output
}}

check CopyPos {{
  interchange B
  pairs 16 seed 0
  expect iia >= 0.5
}}
"""


@pytest.fixture(autouse=True)
def wide_output(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A local Hugging Face cache (in tmp_path) that holds an entry for `gpt2`."""
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    (cache / "models--gpt2" / "snapshots").mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([*map(str, argv)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def sound(code: int, out: str, err: str) -> None:
    """No internal error (exit 3) and no traceback."""
    assert code != 3 and "Traceback" not in out and "internal error" not in err and "bug in causalspec" not in err


def gpt2_folder(folder: Path) -> None:
    write(folder, "config.json", json.dumps({"model_type": "gpt2", "vocab_size": 16, "n_embd": 8, "n_layer": 1,
                                             "n_head": 2, "n_positions": 16}))


# ───────────────────────── an hf folder misspelt: a located spec error ─────────────────────────

@pytest.mark.parametrize("source,meant", [("modle", "model"), ("Model", "model"), ("modles/tiny", "models/tiny")])
def test_a_bare_hf_name_one_typo_from_a_model_folder_is_a_located_error_not_a_skip(tmp_path, capsys, source,
                                                                                      meant):
    """Before: `hf "modle"` beside `model/` read as a hub id, skipped, exit 0 — the did-you-mean
    was inside the skip reason, and CI read the run as green."""
    gpt2_folder(tmp_path / meant)
    if source == "Model" and (tmp_path / "Model").exists():
        pytest.skip("a case-insensitive file system: `Model` is `model`")
    spec = write(tmp_path, "s.cspec", copy_check(source))
    for command in ("parse", "check"):
        code, out, err = cli(capsys, command, spec)
        sound(code, out, err)
        assert code == 2 and "skipped" not in out and "passed" not in out
        assert f"error[E0801]: local model folder `{source}` not found" in err
        line = next(i for i, t in enumerate(spec.read_text().splitlines(), 1) if t.startswith("network net"))
        assert f"{spec}:{line}:{len('network net = hf ') + 1}" in err
        assert f"did you mean `{meant}`?" in err


def test_a_bare_hf_name_that_differs_in_a_digit_is_still_the_absent_skip(tmp_path, capsys):
    """`attn-only-4l` beside a built `attn-only-2l/`: another model whose folder is not built
    yet (or a hub id), not a typo — the one skip, whose reason names both readings."""
    gpt2_folder(tmp_path / "attn-only-2l")
    spec = write(tmp_path, "s.cspec", copy_check("attn-only-4l"))
    code, out, err = cli(capsys, "check", spec)
    sound(code, out, err)
    assert code == 0 and "skipped: weights for `attn-only-4l` not found locally, read either way" in out
    code, out, err = cli(capsys, "check", spec, "--strict")
    assert code == 1 and "--strict fails every skip" in out


def test_pytest_plugin_reports_a_misspelt_hf_folder_as_a_failure_not_a_skip(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    gpt2_folder(pytester.path / "model")
    pytester.path.joinpath("typo.cspec").write_text(copy_check("modle"))
    result = pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", "typo.cspec", "-rs")
    outcomes = result.parseoutcomes()
    assert not outcomes.get("skipped") and not outcomes.get("passed")
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) >= 1
    result.stdout.fnmatch_lines(["*local model folder `modle` not found*"])
    result.stdout.fnmatch_lines(["*did you mean `model`?*"])


# ───────────────────────── a hub id misspelt: a check error ─────────────────────────

def test_an_uncached_hub_id_one_typo_from_a_cached_one_is_an_error_and_the_other_check_runs(tmp_path, capsys,
                                                                                              hub_cache):
    spec = write(tmp_path, "spec/s.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK + copy_check("gtp2"))
    code, out, err = cli(capsys, "check", spec)
    sound(code, out, err)
    assert code == 1 and "skipped" not in out
    assert "ERROR CopyPos" in out
    assert "hub id `gtp2` is not in the local Hugging Face cache, but `gpt2` is, one typo away: " \
           "did you mean `gpt2`?" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"  # the hand-net check still ran


def test_an_uncached_hub_id_of_another_model_is_the_skip(tmp_path, capsys, hub_cache):
    spec = write(tmp_path, "spec/s.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK + copy_check("gpt2-medium"))
    code, out, err = cli(capsys, "check", spec)
    sound(code, out, err)
    assert code == 0 and "skipped: weights for `gpt2-medium` not found locally" in out
    assert out.splitlines()[-1] == "1 passed, 0 failed, 1 skipped"


# ───────────────────────── devices ─────────────────────────

@pytest.mark.parametrize("device,hint", [("cuda:O", "cuda:0"), ("gpu", "cuda"), ("cuda0", "cuda:0")])
def test_a_misspelt_device_flag_is_a_usage_error(tmp_path, capsys, device, hint):
    spec = write(tmp_path, "s.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK)
    code, out, err = cli(capsys, "check", spec, "--device", device)
    sound(code, out, err)
    assert code == 2 and "passed" not in out and "skipped" not in out
    assert f"--device '{device}' is not a device; did you mean `{hint}`?" in err


def test_a_misspelt_device_in_a_spec_is_a_located_error(tmp_path, capsys):
    net = (f'\nnetwork hand = torch "{HIER_EQ_EXAMPLE}/model.py:build_hand" '
           f'weights "{HIER_EQ_EXAMPLE}/hand.safetensors" {{\n'
           f'  encode "{HIER_EQ_EXAMPLE}/model.py:encode"\n  device "cuda:O"\n}}\n')
    good = HAND_GOOD_CHECK.split("\nalign", 1)[1]
    spec = write(tmp_path, "s.cspec", HIER_EQ_MODEL + net + "\nalign" + good)
    code, out, err = cli(capsys, "check", spec)
    sound(code, out, err)
    assert code == 2 and "error[E0610]: unknown device `cuda:O`" in err and "did you mean `cuda:0`?" in err


def test_a_valid_device_this_machine_lacks_is_the_skip(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NetworkUnavailable, match="device `cuda:0` requested but CUDA is not available"):
        loading.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(NetworkUnavailable, match=r"device `cuda:3` requested but this machine has 1 CUDA "
                                                 r"device \(cuda:0\)"):
        loading.resolve_device("cuda:3")
    with pytest.raises(NetworkLoadError, match="did you mean `cuda:0`"):
        loading.resolve_device("cuda:O")  # a name that is no device: an error, never a skip


# ───────────────────────── hooks and --only ─────────────────────────

def test_a_misspelt_hook_function_is_a_located_error_with_a_did_you_mean(tmp_path, capsys):
    """Read from the file's syntax tree at analysis (nothing of it runs): `model.py:encdoe` is
    E0610 at the hook's string, with ``did you mean `encode`?``."""
    net = (f'\nnetwork typo = torch "{HIER_EQ_EXAMPLE}/model.py:build_hand" '
           f'weights "{HIER_EQ_EXAMPLE}/hand.safetensors" {{\n'
           f'  encode "{HIER_EQ_EXAMPLE}/model.py:encdoe"\n}}\n')
    typo_check = hier_eq_alignment("Typo", "[0:20]", "[20:40]", network="typo") + \
        "\ncheck Typo {\n  interchange WX, YZ\n  pairs 16 seed 0\n  expect iia >= 0.95 each\n}\n"
    spec = write(tmp_path, "s.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK + net + typo_check)
    code, out, err = cli(capsys, "check", spec)
    sound(code, out, err)
    assert code == 2 and "passed" not in out and "skipped" not in out
    assert f"error[E0610]: encode hook `{HIER_EQ_EXAMPLE}/model.py:encdoe`: `{HIER_EQ_EXAMPLE}/model.py` " \
           "defines no `encdoe`" in err
    line = next(i for i, t in enumerate(spec.read_text().splitlines(), 1) if "encdoe" in t)
    assert f"{spec}:{line}:10" in err and "did you mean `encode`?" in err


def test_a_hook_function_defined_dynamically_is_left_to_the_loader(tmp_path, capsys):
    """A file whose names are not known without running it (here `globals()`): analysis
    accepts the hook, and the loader, which imports the file, names a missing function as the
    check's error — with a did-you-mean — while the other check runs."""
    write(tmp_path, "hooks.py", f"import sys\nsys.path.insert(0, {str(HIER_EQ_EXAMPLE)!r})\n"
                                "from model import encode as _encode\n"
                                "globals()['encoder'] = _encode\n")
    net = (f'\nnetwork typo = torch "{HIER_EQ_EXAMPLE}/model.py:build_hand" '
           f'weights "{HIER_EQ_EXAMPLE}/hand.safetensors" {{\n  encode "hooks.py:encode"\n}}\n')
    typo_check = hier_eq_alignment("Typo", "[0:20]", "[20:40]", network="typo") + \
        "\ncheck Typo {\n  interchange WX, YZ\n  pairs 16 seed 0\n  expect iia >= 0.95 each\n}\n"
    spec = write(tmp_path, "s.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK + net + typo_check)
    code, out, err = cli(capsys, "check", spec)
    sound(code, out, err)
    assert code == 1 and "skipped" not in out
    assert "ERROR Typo" in out and "has no function `encode`; did you mean `encoder`?" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_a_hook_function_that_is_nothing_alike_lists_the_functions(tmp_path):
    write(tmp_path, "hooks.py", "def encode(v):\n    return v\n\n\ndef decode(v):\n    return v\n\nLIMIT = 3\n")
    with pytest.raises(NetworkLoadError, match=r"has no function `zzz`; its functions: `encode`, `decode`"):
        loading.import_user_function("hooks.py:zzz", tmp_path, "encode hook")
    with pytest.raises(NetworkLoadError, match=r"has no function `LIMIT` \(`LIMIT` there is a int, not a function\)"):
        loading.import_user_function("hooks.py:LIMIT", tmp_path, "encode hook")


def test_a_misspelt_only_name_is_a_usage_error(tmp_path, capsys):
    spec = write(tmp_path, "s.cspec", HIER_EQ_MODEL + HAND_GOOD_CHECK)
    code, out, err = cli(capsys, "check", spec, "--only", "Goood")
    sound(code, out, err)
    assert code == 2 and "passed" not in out and "did you mean `Good`?" in err


# ───────────────────────── the pytest plugin's causalspec_paths ─────────────────────────

def test_a_misspelt_causalspec_paths_entry_stops_the_session(pytester, monkeypatch):
    """`causalspec_paths` selects the specs that run: a misspelt entry selected none, and the
    session was green on the rest of the suite with no claim tested."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.mkdir("specs").joinpath("s.cspec").write_text(COPY_MODEL)
    pytester.path.joinpath("test_ok.py").write_text("def test_ok():\n    pass\n")
    run = lambda: pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider")  # noqa: E731
    pytester.makeini("[pytest]\ncausalspec_paths = spcs\n")
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*causalspec_paths entry `spcs` (in tox.ini) not found: no spec under it would "
                                 "run; did you mean `specs`?*"])
    pytester.mkdir("docs")
    pytester.makeini("[pytest]\ncausalspec_paths = docs\n")
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*causalspec_paths entry `docs` (in tox.ini) holds no .cspec file*"])
    pytester.makeini("[pytest]\ncausalspec_paths = specs\n")
    run().assert_outcomes(passed=1)  # the spec declares no check: nothing of it runs, and that is no error


# ───────────────────────── circuit files ─────────────────────────

def test_a_misspelt_circuit_file_is_an_error_with_a_did_you_mean(tmp_path, monkeypatch):
    from causalspec.interop.circuit_files import CircuitFileError, read_graph

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "circuits/ioi.json", json.dumps({"nodes": ["a0.h1"], "edges": []}))
    with pytest.raises(CircuitFileError, match=r"circuit file `circuits/ioi.jsno` not found; did you mean "
                                               r"`circuits/ioi.json`\?"):
        read_graph("circuits/ioi.jsno")
    with pytest.raises(CircuitFileError, match="circuit file `circuits` is a folder, not a circuit file"):
        read_graph("circuits")
    assert read_graph("circuits/ioi.json") is not None


# ───────────────────────── causalspec locate --only ─────────────────────────

LOCATE_CHECKS = """
check CopyPos as Find {
  interchange B
  locate B over resid.post[0..1] @ last
  pairs 16 seed 0
  expect iia >= 0.5
}
"""


@pytest.mark.parametrize("only,message", [
    (["Find", "Fnid"], "--only Fnid: no check of that name in {spec}; did you mean `Find`?"),
    (["CopyPos"], "--only CopyPos: check `CopyPos` has no `locate` statement, so there is nothing to sweep "
                  "(checks with one: Find)"),
])
def test_locate_only_names_each_a_sweep(tmp_path, capsys, only, message):
    """`locate --only Find --only Fnid` ran Find and dropped the typo without a word."""
    spec = write(tmp_path, "s.cspec", copy_check("causalspec-test/absent-model") + LOCATE_CHECKS)
    argv = ["locate", spec, "--out", tmp_path / "out"] + [a for name in only for a in ("--only", name)]
    code, out, err = cli(capsys, *argv)
    sound(code, out, err)
    assert code == 2 and message.format(spec=spec) in err


# ───────────────────────── spec files on the command line ─────────────────────────

def test_a_misspelt_spec_file_gets_a_did_you_mean_and_a_folder_names_its_specs(tmp_path, capsys):
    write(tmp_path, "specs/copy.cspec", COPY_MODEL)
    code, out, err = cli(capsys, "check", tmp_path / "specs" / "cpoy.cspec")
    assert code == 2 and f"did you mean `{tmp_path / 'specs' / 'copy.cspec'}`?" in err
    code, out, err = cli(capsys, "check", tmp_path / "specs")
    assert code == 2 and f"spec file `{tmp_path / 'specs'}` is a folder" in err
    assert f"name the spec files, e.g. `{tmp_path / 'specs' / '*.cspec'}` (it holds 1:" in err
