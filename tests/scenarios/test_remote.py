"""Scenarios (issue 10, items 1 and 11): what a spec may contact and what it reads, end to end.

* A remote host named only by a spec is refused — `causalspec check` and `pytest specs/`
  give a check ERROR whose message says how to allow the host — and nothing is contacted:
  nnsight's remote backend (the transport) is swapped for a recorder that must stay empty.
* Allowed by the user (environment variable, config file, command line), the same spec
  reaches the (swapped) transport with that host.
* A file read from outside the spec's folder (`..`, an absolute path, a symbolic link) is
  shown: a warning from analysis (`parse`, `sample`, `check`) and a note in every check.

No test here reaches a network: the transport is swapped before any check runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import causalspec.claims.runner  # noqa: F401 - imported before pytester's in-process runs, which drop
import causalspec.pytest_plugin  # noqa: F401 - the modules they import (torch cannot be imported twice)
import causalspec.report.terminal  # noqa: F401
import causalspec.semantics.analyse  # noqa: F401
from causalspec.cli import main
from causalspec.remote_hosts import ENV_VAR
from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_EXAMPLE, HIER_EQ_MODEL, MOVER_WORDS, mover_spec

EVIL = "https://collector.example.org"
HUB_ID = "causalspec-test/tiny-mover"  # resolved to a local tiny model by `hub_model` below
PLUGIN = ["-p", "causalspec.pytest_plugin", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def user_env(tmp_path, monkeypatch):
    """This user has allowed nothing: no allow-list, no NDIF_HOST, an empty config folder."""
    for var in (ENV_VAR, "NDIF_HOST"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "xdg"
    config.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def transport(monkeypatch):
    """nnsight's remote backend replaced by a recorder: every host a session is sent to.
    It raises, as an unreachable server would; the tests only ask whether it was reached."""
    nnsight = pytest.importorskip("nnsight")  # noqa: F841 - the backend under test
    from nnsight.modeling.transformers import TransformersModel

    asked: list = []

    def remote_backend(self, remote, blocking, job_id, verbose):
        asked.append(remote)
        raise ConnectionRefusedError("swapped transport: no server in the tests")

    monkeypatch.setattr(TransformersModel, "_remote_backend", remote_backend)
    return asked


def remote_spec(folder: Path, host: str | None = EVIL, source: str = HUB_ID) -> Path:
    """The mover spec on an hf network that asks to run remotely (at `host`, if given)."""
    clause = f'remote "{host}"' if host else "remote"
    text = mover_spec(source, pairs=8).replace(
        '  answer " {answer}"\n', f'  answer " {{answer}}"\n  backend nnsight {clause}\n')
    path = folder / "remote.cspec"
    path.write_text(text)
    return path


def spec_line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def check(capsys, *argv) -> tuple[int, str, str]:
    code = main(["check", *map(str, argv)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ───────────────────────── a host named by the spec ─────────────────────────

def test_a_spec_named_host_is_refused_and_never_contacted(tmp_path, capsys, transport, user_env):
    spec = remote_spec(tmp_path)
    code, out, err = check(capsys, spec, "--json", tmp_path / "r.json")
    assert code == 1, out + err  # a check ERROR: not a pass, not a skip, not exit 3
    assert transport == []  # nothing was sent anywhere
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert result["status"] == "error"
    reason = result["reason"]
    line = spec_line(spec, EVIL)
    # names the host, where the spec names it, and the three ways to allow it
    assert EVIL in reason and f"{spec}:{line}:" in reason
    assert f"--remote {EVIL}" in reason and f"{ENV_VAR}={EVIL}" in reason
    assert str(user_env / "causalspec" / "config.toml") in reason and "allowed_hosts" in reason
    # analysis already warned, at the host's literal
    assert "warning[E0808]" in err and f"remote.cspec:{line}:" in err


def test_parse_warns_about_a_spec_named_host_and_still_validates(tmp_path, capsys, monkeypatch):
    spec = remote_spec(tmp_path)
    assert main(["parse", str(spec)]) == 0
    err = capsys.readouterr().err
    assert "warning[E0808]" in err and EVIL in err and ENV_VAR in err
    monkeypatch.setenv(ENV_VAR, EVIL)  # allowed: nothing to warn about
    assert main(["parse", str(spec)]) == 0
    assert "E0808" not in capsys.readouterr().err


def test_pytest_specs_never_contacts_a_spec_named_host(pytester, monkeypatch, transport):
    """`pytest specs/` has no --remote: a spec-named host is an error item, never a pass or skip."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    specs = pytester.mkdir("specs")
    remote_spec(specs)
    result = pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", "specs")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert EVIL in out and ENV_VAR in out
    assert transport == []


def test_a_config_that_cannot_be_read_refuses_the_host_and_names_the_file(tmp_path, capsys, user_env, transport):
    config = user_env / "causalspec" / "config.toml"
    config.parent.mkdir()
    config.write_text("[remote]\nallowed_hosts = \"https://collector.example.org\"\n")  # not a list
    code, out, err = check(capsys, remote_spec(tmp_path), "--json", tmp_path / "r.json")
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert code == 1 and result["status"] == "error"
    assert str(config) in result["reason"] and "list of host URLs" in result["reason"]
    assert transport == []


# ───────────────────────── a host the user allowed ─────────────────────────

@pytest.fixture
def hub_model(tmp_path_factory, monkeypatch):
    """`HUB_ID` loads (config and tokenizer, no weights) from a tiny model laid out as the
    Hugging Face cache lays out a download (models--org--name/snapshots/REV, refs/main), with
    the cache pointed there: the spec names a hub id, as NDIF needs, and the real loading path
    finds it offline."""
    import huggingface_hub.constants as hub_constants

    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    cache = tmp_path_factory.mktemp("hub")
    repo = cache / ("models--" + HUB_ID.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    build_tiny_model("gpt2", None, snapshot, seed=0, tokenizer=build_word_tokenizer(MOVER_WORDS))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return snapshot


def reached(tmp_path, capsys, *argv, host: str | None = EVIL) -> dict:
    code, out, err = check(capsys, remote_spec(tmp_path, host), "--json", tmp_path / "r.json", *argv)
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert code == 1 and result["status"] == "error", out + err
    assert "swapped transport" in result["reason"], result["reason"]  # it got as far as the transport
    return result


def test_a_host_allowed_by_the_environment_reaches_the_transport(tmp_path, capsys, monkeypatch, hub_model,
                                                                 transport):
    monkeypatch.setenv(ENV_VAR, f"https://other.example.org, {EVIL}/")
    reached(tmp_path, capsys)
    assert transport == [EVIL]


def test_a_host_allowed_by_the_config_file_reaches_the_transport(tmp_path, capsys, user_env, hub_model, transport):
    config = user_env / "causalspec" / "config.toml"
    config.parent.mkdir()
    config.write_text('[remote]\nallowed_hosts = ["collector.example.org"]\n')  # no scheme: https
    reached(tmp_path, capsys)
    assert transport == [EVIL]


def test_the_command_line_names_the_host_and_the_spec_host_is_ignored(tmp_path, capsys, hub_model, transport):
    mine = "https://ndif.my-lab.org"
    reached(tmp_path, capsys, "--remote", mine)
    assert transport == [mine]


def test_ndif_itself_needs_the_users_key(tmp_path, capsys, monkeypatch, hub_model, transport):
    """`backend nnsight remote` (no host) goes to NDIF's configured host, and only with a key."""
    import nnsight

    spec = remote_spec(tmp_path, host=None)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    code, out, err = check(capsys, spec, "--json", tmp_path / "r.json")
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert code == 1 and result["status"] == "error" and "NDIF_API_KEY" in result["reason"]
    assert transport == []
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "the-users-key")
    reached(tmp_path, capsys, host=None)
    assert transport == [True]  # nnsight's configured host (NDIF, or the user's NDIF_HOST)


def test_an_allowed_host_does_not_allow_its_plain_http_twin(tmp_path, capsys, monkeypatch, transport):
    monkeypatch.setenv(ENV_VAR, EVIL)
    spec = remote_spec(tmp_path, host=EVIL.replace("https://", "http://"))
    code, out, err = check(capsys, spec, "--json", tmp_path / "r.json")
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert code == 1 and "not allowed" in result["reason"] and transport == []


# ───────────────────────── files from outside the spec's folder ─────────────────────────

def test_an_enum_file_outside_the_folder_is_shown_by_parse_and_sample(tmp_path, capsys):
    (tmp_path / "names.txt").write_text("Mary\nJohn\n")
    folder = tmp_path / "specs"
    folder.mkdir()
    absolute = tmp_path / "names.txt"
    for written in ("../names.txt", str(absolute)):
        spec = folder / "s.cspec"
        spec.write_text(f'model M {{\n  domain Name = enum from "{written}"\n  input a : Name\n'
                        "  output o : Name = a\n}\n")
        assert main(["parse", str(spec)]) == 0
        err = capsys.readouterr().err
        assert "warning[E0807]" in err and str(absolute) in err and "s.cspec:2:17" in err
        assert main(["sample", str(spec), "--n", "2"]) == 0
        cap = capsys.readouterr()
        assert "warning[E0807]" in cap.err and ("Mary" in cap.out or "John" in cap.out)  # the file's lines


def test_a_symlink_inside_the_folder_that_leads_outside_is_shown(tmp_path, capsys):
    (tmp_path / "secret.txt").write_text("Mary\nJohn\n")
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "names.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "inside.txt").write_text("Mary\nJohn\n")
    spec = folder / "s.cspec"
    spec.write_text('model M {\n  domain Name = enum from "names.txt"\n  domain Other = enum from "inside.txt"\n'
                    "  input a : Name\n  output o : Name = a\n}\n")
    assert main(["parse", str(spec)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning[E0807]") == 1 and str(tmp_path / "secret.txt") in err


def test_files_outside_the_folder_are_listed_in_the_checks_notes(tmp_path, capsys):
    """The hand net's model.py (builder and encode hook) and weights live in examples/, not next to
    this spec: one note (and one warning) per file read."""
    spec = tmp_path / "hand.cspec"
    spec.write_text(HIER_EQ_MODEL + HAND_GOOD_CHECK)
    code, out, err = check(capsys, spec, "--json", tmp_path / "r.json")
    assert code == 0, out + err
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    outside = [n for n in result["notes"] if "outside the spec's folder" in n]
    assert len(outside) == 2, result["notes"]
    assert any("torch weights" in n and str(HIER_EQ_EXAMPLE / "hand.safetensors") in n for n in outside)
    assert any("torch builder file" in n and str(HIER_EQ_EXAMPLE / "model.py") in n for n in outside)
    assert "note: torch weights" in out  # the terminal block shows them too
    assert err.count("warning[E0807]") == 2


def test_files_inside_the_folder_are_not_flagged(tmp_path, capsys):
    """The same net copied next to the spec: nothing read from outside, no note, no warning."""
    import shutil

    local = tmp_path / "hier_eq"
    shutil.copytree(HIER_EQ_EXAMPLE, local)
    spec = tmp_path / "hand.cspec"
    spec.write_text(HIER_EQ_MODEL + HAND_GOOD_CHECK.replace(str(HIER_EQ_EXAMPLE), "hier_eq"))
    code, out, err = check(capsys, spec, "--json", tmp_path / "r.json")
    assert code == 0, out + err
    [result] = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert not any("outside" in n for n in result["notes"]) and "E0807" not in err
