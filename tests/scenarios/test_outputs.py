"""Scenarios (issue 10, items 2 and 3): output flags never clobber a user's file, and a bad
output target is a usage error (exit 2) before anything is loaded or run.

Each scenario runs the real CLI in-process (`causalspec.cli.main`) on files built in
tmp_path. The foreign files are what sits next to specs in a real repository: README.md,
pyproject.toml, conftest.py, and JSON files that merely mention causalspec. Every output
flag of every command must refuse them and leave them byte-identical, with no temporary
file left behind; a previous output of ours is still replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import pytest

from causalspec.cli import main
from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_MODEL, hier_eq_alignment

SPEC = HIER_EQ_MODEL + HAND_GOOD_CHECK + hier_eq_alignment("Swapped", "[20:40]", "[0:20]") + """
check Swapped {
  interchange WX
  pairs 48 seed 0
  expect iia >= 0.9 each
}
"""

FOREIGN = {
    "README.md": "# causalspec\n\nCheck causal hypotheses: `causalspec check specs/`.\n",
    "pyproject.toml": '[project]\nname = "causalspec"\nversion = "0.1.0"\n\n[tool.causalspec]\nspecs = ["specs"]\n',
    "conftest.py": 'pytest_plugins = ["causalspec.pytest_plugin"]  # causalspec\n',
    "note.json": '{"note": "causalspec"}\n',
    "package.json": '{"name": "causalspec", "version": "1.0.0", "tool": {"name": "causalspec"}}\n',
}

# every output flag of every command: (id, argv given the spec, an input JSON and the target)
COMMANDS = {
    "check --json": lambda s, j, t: ["check", s, "--json", t],
    "check --junit": lambda s, j, t: ["check", s, "--junit", t],
    "check --html": lambda s, j, t: ["check", s, "--html", t],
    "graph -o (dot)": lambda s, j, t: ["graph", s, "-o", t],
    "graph -o (mermaid)": lambda s, j, t: ["graph", s, "--format", "mermaid", "-o", t],
    "graph -o (json)": lambda s, j, t: ["graph", s, "--format", "json", "-o", t],
    "graph -o (png)": lambda s, j, t: ["graph", s, "--format", "png", "-o", t],
    "locate --json": lambda s, j, t: ["locate", s, "--json", t],
    "circuit export -o": lambda s, j, t: ["circuit", "export", s, "--circuit", "C", "-o", t],
    "circuit import -o": lambda s, j, t: ["circuit", "import", j, "--name", "N", "--on", "hand", "--for",
                                          "HierEq.O", "-o", t],
    "circuit cpr --json": lambda s, j, t: ["circuit", "cpr", s, "--circuit", "C", "--scores", j, "--json", t],
}


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "hier_eq.cspec").write_text(SPEC)
    (tmp_path / "specs" / "edges.json").write_text('{"edges": {"input->m0": {"score": 1.0, "in_graph": true}}}')
    return tmp_path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(capsys, argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ───────────────────────── foreign files are never overwritten ─────────────────────────

@pytest.mark.parametrize("name", FOREIGN)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_output_flag_refuses_a_file_causalspec_did_not_write(repo, capsys, command, name):
    target = repo / name
    target.write_text(FOREIGN[name])
    before = _snapshot(repo)
    argv = COMMANDS[command](repo / "specs" / "hier_eq.cspec", repo / "specs" / "edges.json", target)
    code, out, err = _run(capsys, argv)
    assert code == 2, (out, err)
    assert f"{target} already exists and was not written by causalspec" in err
    assert "delete it first or choose another name" in err
    assert _snapshot(repo) == before  # byte-identical, nothing created, no .tmp left
    assert out == ""  # refused before anything ran


def test_graph_no_longer_replaces_pyproject(repo, capsys):
    # the reported case: `causalspec graph specs/hier_eq.cspec -o pyproject.toml` replaced it
    target = repo / "pyproject.toml"
    target.write_text(FOREIGN["pyproject.toml"])
    code, _, err = _run(capsys, ["graph", repo / "specs" / "hier_eq.cspec", "-o", target])
    assert code == 2 and "refusing to overwrite" in err
    assert target.read_text() == FOREIGN["pyproject.toml"]


def test_an_edited_export_is_the_users(repo, capsys):
    target = repo / "graph.dot"
    assert _run(capsys, ["graph", repo / "specs" / "hier_eq.cspec", "-o", target])[0] == 0
    edited = target.read_text().replace("rankdir=TB", "rankdir=LR")
    target.write_text(edited)
    code, _, err = _run(capsys, ["graph", repo / "specs" / "hier_eq.cspec", "-o", target])
    assert code == 2 and "not written by causalspec" in err
    assert target.read_text() == edited


# ───────────────────────── our own outputs are replaced ─────────────────────────

def test_a_rerun_replaces_its_own_reports(repo, capsys):
    spec = repo / "specs" / "hier_eq.cspec"
    j, x, h = repo / "out" / "r.json", repo / "out" / "r.xml", repo / "out" / "r.html"
    for _ in range(2):
        code, out, err = _run(capsys, ["check", spec, "--only", "Good", "--json", j, "--junit", x, "--html", h])
        assert code == 0, err
        assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert json.loads(j.read_text())["summary"]["passed"] == 1
    assert ET.parse(x).getroot().get("name") == "causalspec"
    assert h.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (repo / "out").iterdir()) == ["r.html", "r.json", "r.xml"]


@pytest.mark.parametrize("fmt", ["dot", "mermaid", "json", "png"])
def test_a_graph_export_replaces_its_own_earlier_export(repo, capsys, fmt):
    spec, target = repo / "specs" / "hier_eq.cspec", repo / f"g.{fmt}"
    for _ in range(2):
        assert _run(capsys, ["graph", spec, "--format", fmt, "-o", target])[0] == 0
    assert sorted(p.name for p in repo.iterdir()) == sorted(["specs", target.name])


def test_circuit_import_replaces_its_own_spec(repo, capsys):
    target = repo / "imported.cspec"
    for _ in range(2):
        argv = COMMANDS["circuit import -o"](None, repo / "specs" / "edges.json", target)
        code, _, err = _run(capsys, argv)
        assert code == 0, err
    assert "circuit N" in target.read_text()


# ───────────────────────── unwritable targets: exit 2 before running ─────────────────────────

@pytest.mark.parametrize("command", COMMANDS)
def test_a_target_under_a_regular_file_is_a_usage_error_before_running(repo, capsys, command):
    notes = repo / "notes.txt"
    notes.write_text("mine\n")
    target = notes / "report.out"
    before = _snapshot(repo)
    argv = COMMANDS[command](repo / "specs" / "hier_eq.cspec", repo / "specs" / "edges.json", target)
    code, out, err = _run(capsys, argv)
    assert code == 2, (out, err)
    assert f"cannot write {target}: {notes} is not a folder" in err
    assert out == "" and _snapshot(repo) == before


def _lock_chmod(folder: Path) -> Callable[[], None] | None:
    """Take write permission away (0o555); root ignores permissions, so not for root."""
    if os.name != "posix" or os.geteuid() == 0:
        return None
    folder.chmod(0o555)
    return lambda: folder.chmod(0o755)


def _lock_immutable(folder: Path) -> Callable[[], None] | None:
    """Mark the folder immutable (`chattr +i`): no one, root included, creates files in it.
    None where chattr, the capability (CAP_LINUX_IMMUTABLE) or the file system's support is missing."""
    chattr = shutil.which("chattr")
    if chattr is None:
        return None
    done = subprocess.run([chattr, "+i", str(folder)], capture_output=True)
    if done.returncode != 0:
        return None
    return lambda: subprocess.run([chattr, "-i", str(folder)], check=True, capture_output=True)


def _lock_folder(folder: Path) -> Callable[[], None]:
    """Make `folder` a folder this process cannot create files in, the strongest way this
    system allows; returns the undo. As root (CI containers, this project's machines) chmod
    means nothing, so the immutable flag is used; where neither works the test is skipped
    with the reason, and the root-proof variants (a folder that is a file, /proc) still run."""
    for lock in (_lock_chmod, _lock_immutable):
        undo = lock(folder)
        if undo is not None:
            try:  # the writer's own probe: can a file really not be created?
                fd, probe = tempfile.mkstemp(dir=folder)
            except OSError:
                return undo
            os.close(fd)
            os.unlink(probe)
            undo()
    pytest.skip("no way to make a folder read-only for this user here (not root-proof chmod, no chattr +i)")


def test_a_target_in_a_read_only_folder_is_a_usage_error_before_running(repo, capsys):
    locked = repo / "locked"
    locked.mkdir()
    undo = _lock_folder(locked)
    try:
        code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--json", locked / "r.json"])
        left = sorted(p.name for p in locked.iterdir())
    finally:
        undo()
    assert code == 2 and out == ""
    assert f"cannot write {locked / 'r.json'}: cannot create files in {locked}" in err
    assert left == []  # nothing written, no probe or .tmp left behind


def test_a_target_inside_a_read_only_folder_tree_is_a_usage_error(repo, capsys):
    # the folder to create (`new/deeper`) does not exist: its nearest existing ancestor is probed
    locked = repo / "locked"
    locked.mkdir()
    undo = _lock_folder(locked)
    try:
        target = locked / "new" / "deeper" / "r.xml"
        code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--junit", target])
        left = sorted(p.name for p in locked.iterdir())
    finally:
        undo()
    assert code == 2 and out == ""
    assert f"cannot write {target}: cannot create files in {locked}" in err
    assert left == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_a_target_no_one_can_create_is_a_usage_error_before_running(repo, capsys):
    # /proc refuses new files even to root: the probe the writer's own test makes finds it out
    code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--junit", "/proc/causalspec.xml"])
    assert code == 2 and out == ""
    assert "--junit: cannot write /proc/causalspec.xml: cannot create files in /proc" in err


def test_a_directory_target_is_a_usage_error(repo, capsys):
    code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--html", repo / "specs"])
    assert code == 2 and out == ""
    assert f"{repo / 'specs'} is a directory; give a file name" in err


@pytest.mark.parametrize("flag", ["--artifacts", "--activations-on-disk"])
def test_an_output_folder_that_is_a_file_is_a_usage_error(repo, capsys, flag):
    notes = repo / "notes.txt"
    notes.write_text("mine\n")
    value = [f"{flag}={notes / 'sub'}"]
    code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", *value])
    assert code == 2 and out == ""
    assert f"{flag}: cannot write {notes / 'sub'}: {notes} is not a folder" in err


def test_locate_out_under_a_file_is_a_usage_error(repo, capsys):
    notes = repo / "notes.txt"
    notes.write_text("mine\n")
    code, out, err = _run(capsys, ["locate", repo / "specs" / "hier_eq.cspec", "--out", notes])
    assert code == 2 and out == ""
    assert f"--out: {notes} is not a folder" in err


def test_a_report_naming_a_spec_file_is_refused(repo, capsys):
    spec = repo / "specs" / "hier_eq.cspec"
    before = spec.read_bytes()
    code, _, err = _run(capsys, ["check", spec, "--json", spec])
    assert code == 2 and "is one of the spec files being checked" in err
    assert spec.read_bytes() == before


def test_two_reports_naming_one_file_are_refused(repo, capsys):
    target = repo / "r.out"
    code, _, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--json", target, "--junit", target])
    assert code == 2 and "--json and --junit name the same file" in err


# ───────────────────────── Ctrl-C ─────────────────────────

def _interrupt_after_first(monkeypatch):
    import causalspec.claims.runner as checking

    real = checking.run_check
    calls = []

    def run_check(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(checking, "run_check", run_check)


def test_ctrl_c_summarises_the_finished_checks_writes_the_reports_and_exits_130(repo, capsys, monkeypatch):
    _interrupt_after_first(monkeypatch)
    j, h, x = repo / "out" / "r.json", repo / "out" / "r.html", repo / "out" / "r.xml"
    code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--json", j, "--html", h, "--junit", x])
    assert code == 130, err
    lines = out.splitlines()
    assert "interrupted: 1 of 2 check(s) finished; the others did not run" in lines
    assert lines[-1] == "1 passed, 0 failed"
    assert "internal error" not in err and "bug in causalspec" not in err
    doc = json.loads(j.read_text())
    assert doc["interrupted"] is True and [c["name"] for c in doc["checks"]] == ["Good"]
    assert "<strong>interrupted</strong>" in h.read_text()
    # JUnit has no "interrupted" field: an error testcase keeps CI from reading the partial run as green
    root = ET.parse(x).getroot()
    assert root.get("errors") == "1" and root.get("failures") == "0" and root.get("tests") == "2"
    error = root.find("testsuite[@name='causalspec (interrupted)']/testcase/error")
    assert error is not None and error.get("type") == "Interrupted"
    assert "after 1 finished check(s)" in error.get("message")
    assert sorted(p.name for p in (repo / "out").iterdir()) == ["r.html", "r.json", "r.xml"]


def test_ctrl_c_while_a_report_is_written_leaves_no_temp_file_and_the_old_report(repo, capsys, monkeypatch):
    spec, j = repo / "specs" / "hier_eq.cspec", repo / "r.json"
    assert _run(capsys, ["check", spec, "--only", "Good", "--json", j])[0] == 0
    old = j.read_bytes()

    def replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr("causalspec.files.os.replace", replace)
    code, _, err = _run(capsys, ["check", spec, "--only", "Good", "--json", j])
    assert code == 130 and "interrupted" in err
    assert j.read_bytes() == old
    assert sorted(p.name for p in repo.iterdir()) == ["r.json", "specs"]


def test_sigterm_is_handled_like_ctrl_c_with_exit_143(repo, capsys, monkeypatch):
    import signal

    import causalspec.claims.runner as checking
    from causalspec.cli.base import raise_terminated

    if not hasattr(signal, "SIGTERM") or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("SIGTERM is handled by the test runner here")
    real = checking.run_check
    calls = []

    def run_check(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            assert signal.getsignal(signal.SIGTERM) is raise_terminated  # never kill the test run itself
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(checking, "run_check", run_check)
    j = repo / "r.json"
    code, out, err = _run(capsys, ["check", repo / "specs" / "hier_eq.cspec", "--json", j])
    assert code == 143, err
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert json.loads(j.read_text())["interrupted"] is True
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored after the command
    assert sorted(p.name for p in repo.iterdir()) == ["r.json", "specs"]
