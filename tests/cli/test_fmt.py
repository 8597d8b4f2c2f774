"""`causalspec fmt`: rewrites in place (atomically, only files that parse), `--check` for CI,
`--diff`; never loses a comment or a file's permissions."""

from __future__ import annotations

import os
import stat

import pytest

from causalspec.cli import main
from causalspec.cli.fmt import replace_text

MESSY = "# my notes\nmodel M {\n  input  A : bool ~ uniform   # why A\n  output O : bool = A\n}\nmodel N {\n" \
        "  input  B : bool ~ uniform\n  output P  : bool = B\n}\n"
CANONICAL_N = "model N {\n  input B : bool ~ uniform\n  output P : bool = B\n}\n"
BAD = "model M {\n  input A : bool ~ uniform\n  output O : bool = \n}\n"


@pytest.fixture
def specs(tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "messy.cspec").write_text(MESSY)
    (folder / "clean.cspec").write_text(CANONICAL_N)
    return folder


def run(capsys, *argv):
    code = main(["fmt", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_fmt_rewrites_in_place_keeping_comments_and_check_then_passes(specs, capsys):
    code, _, err = run(capsys, specs)
    assert code == 0, err
    assert f"reformatted {specs / 'messy.cspec'}" in err and "1 file(s) reformatted, 1 file(s) left unchanged" in err
    text = (specs / "messy.cspec").read_text()
    assert text.endswith("\n\n" + CANONICAL_N)  # the item without comments: canonical
    assert "# my notes" in text and "  input  A : bool ~ uniform   # why A" in text  # kept as written
    assert (specs / "clean.cspec").read_text() == CANONICAL_N
    assert sorted(p.name for p in specs.iterdir()) == ["clean.cspec", "messy.cspec"]  # no temporary file left
    assert run(capsys, "--check", specs)[0] == 0


def test_check_lists_the_files_that_would_change_and_changes_nothing(specs, capsys):
    before = {p.name: p.read_bytes() for p in specs.iterdir()}
    code, out, err = run(capsys, "--check", specs)
    assert code == 1
    assert f"would reformat {specs / 'messy.cspec'}" in err and "clean.cspec" not in err
    assert "1 file(s) would be reformatted, 1 file(s) would be left unchanged" in err
    assert {p.name: p.read_bytes() for p in specs.iterdir()} == before


def test_diff_prints_the_change_and_changes_nothing(specs, capsys):
    before = (specs / "messy.cspec").read_bytes()
    code, out, _ = run(capsys, "--diff", specs / "messy.cspec")
    assert code == 0
    assert "-  input  B : bool ~ uniform\n-  output P  : bool = B\n+  input B : bool ~ uniform\n" in out
    assert (specs / "messy.cspec").read_bytes() == before
    assert run(capsys, "--diff", "--check", specs / "messy.cspec")[0] == 1


def test_a_file_that_does_not_parse_is_left_unchanged_and_the_others_are_formatted(specs, capsys):
    (specs / "bad.cspec").write_text(BAD)
    code, _, err = run(capsys, specs)
    assert code == 2
    assert "bad.cspec:4:1" in err and "bad.cspec: 1 error(s); left unchanged" in err
    assert (specs / "bad.cspec").read_text() == BAD
    assert (specs / "messy.cspec").read_text().endswith(CANONICAL_N)


@pytest.mark.parametrize("what", ["missing", "empty folder"])
def test_a_path_with_nothing_to_format_is_a_usage_error_not_a_green_check(tmp_path, capsys, what):
    path = tmp_path / "nothing"
    if what == "empty folder":
        path.mkdir()
        (path / "notes.txt").write_text("x")
    code, _, err = run(capsys, "--check", path)
    assert code == 2 and str(path) in err


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and links")
def test_permissions_and_links_are_kept(specs, capsys):
    messy = specs / "messy.cspec"
    messy.chmod(0o640)
    link = specs.parent / "link.cspec"
    link.symlink_to(messy)
    assert run(capsys, link)[0] == 0
    assert link.is_symlink() and messy.read_text().endswith(CANONICAL_N)
    assert stat.S_IMODE(messy.stat().st_mode) == 0o640


def test_a_file_changed_while_formatting_is_not_overwritten(tmp_path):
    path = tmp_path / "a.cspec"
    path.write_text("new text the user just saved\n")
    with pytest.raises(OSError, match="changed while it was being formatted"):
        replace_text(path, b"what fmt read before\n", "formatted\n")
    assert path.read_text() == "new text the user just saved\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.cspec"]


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("folder", ["specs", "examples"])
def test_shipped_specs_are_in_canonical_form(capsys, folder):
    """Issue 12's done-when: `causalspec fmt --check specs/` passes, so the shipped specs (and the
    examples') stay in the form `fmt` writes; a hand edit that breaks it fails here, not in a user's CI."""
    code, out, err = run(capsys, "--check", os.path.join(REPO, folder))
    assert code == 0, out + err
    assert "0 file(s) would be reformatted" in out + err
