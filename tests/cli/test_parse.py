"""`causalspec parse`: one line per valid spec; diagnostics and exit code 2 for invalid ones."""

from __future__ import annotations

from causalspec.cli import main
from causalspec.cli.base import EXIT_INVALID, EXIT_OK
from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_MODEL


def test_parse_reports_valid_and_invalid_files(tmp_path, capsys):
    good, bad = tmp_path / "good.cspec", tmp_path / "bad.cspec"
    good.write_text(HIER_EQ_MODEL + HAND_GOOD_CHECK)
    bad.write_text("model M {\n  input A : bool ~ uniform\n  output O : bool = B\n}\n")
    assert main(["parse", str(good)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"ok: {good} (1 model(s), 1 network(s), 1 alignment(s), 1 check(s)" in out.replace("\n", "")
    assert main(["parse", str(good), str(bad)]) == EXIT_INVALID
    captured = capsys.readouterr()
    assert f"ok: {good}" in captured.out.replace("\n", "")
    assert f"{bad}: 1 error(s)" in captured.err.replace("\n", "") and "`B`" in captured.err
