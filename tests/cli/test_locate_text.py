"""`causalspec locate` prints a check's error sentence on one line, as `causalspec check` does.

Why: rich folds text at the console's width (120 columns in a log), which cut a long error
message mid-sentence in locate while check printed it whole; a message is meant to be read
and searched (grep) as one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.cli import main

SPEC = """
model Copy {
  domain Name = enum {Mary, John}
  input  A : Name ~ uniform
  var    B : Name = A
  output answer : Name = B
}

network net = hf "./%s" {
  prompt "Say {A}:"
  answer " {answer}"
}

align Copy to net as CopyPos {
  B -> resid.post[0] @ last
  answer -> output
}

check CopyPos as Find {
  interchange B
  locate B over resid.post[0..1] @ last
  pairs 16 seed 0
  expect iia >= 0.5
}
"""


@pytest.fixture
def long_error_spec(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A spec whose network's config is corrupt, in a folder with a long name: the error names
    the config's full path, so its sentence runs far past 120 columns."""
    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal: the report console is 120 wide
    folder = "a_model_folder_whose_name_is_long_enough_to_push_the_error_sentence_past_the_log_width" * 2
    config = tmp_path / folder / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{not json", encoding="utf-8")
    spec = tmp_path / "s.cspec"
    spec.write_text(SPEC % folder, encoding="utf-8")
    return spec, config


def _error_line(out: str, start: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith(start)]
    assert len(lines) == 1, out
    return lines[0]


def test_locate_prints_a_long_error_sentence_on_one_line_like_check(long_error_spec, capsys, tmp_path):
    spec, config = long_error_spec
    assert main(["locate", str(spec), "--out", str(tmp_path)]) == 1
    located = _error_line(capsys.readouterr().out, "! Find: error: ")
    assert len(located) > 200 and str(config.parent.name) in located  # whole: the path is not cut

    assert main(["check", str(spec)]) == 1
    checked = capsys.readouterr().out
    reason = located.removeprefix("! Find: error: ")
    assert reason in checked.replace("\n", " ") and any(reason in line for line in checked.splitlines()), checked
