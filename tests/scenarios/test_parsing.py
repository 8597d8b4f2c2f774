"""End-to-end scenarios of issue 10, items 7-9 (parsing): the real CLI on files written to
tmp_path. Each mistake ends in a located diagnostic with a help line (exit 2), never a
traceback (exit 3), never a silent pass; accepted input (a BOM, a constant prompt) exits 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from causalspec.cli import main

NET = '''model M {
  input a, b : int 0..3
  var s : int 0..6 = a + b
  output big : bool = s > 3
}

network gpt2 = hf "gpt2" {
  prompt "{a} plus {b} is big:"
  answer " {big}"
  position END = last
}

align M to gpt2 as Sum {
  s -> resid.post[6] @ END
  big -> output
}
'''


def run(tmp_path: Path, capsys, argv: list[str], text: str | bytes) -> tuple[int, str]:
    spec = tmp_path / "spec.cspec"
    if isinstance(text, bytes):
        spec.write_bytes(text)
    else:
        spec.write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main([*argv, str(spec)])
    out = capsys.readouterr()
    return code, out.out + out.err


def located(output: str, tmp_path: Path, line: int, col: int) -> bool:
    return f"{tmp_path / 'spec.cspec'}:{line}:{col}" in output and "= help:" in output


def test_bom_spec_validates(tmp_path, capsys):
    code, out = run(tmp_path, capsys, ["parse"], b"\xef\xbb\xbf" + NET.encode())
    assert code == 0, out
    assert "ok:" in out


def test_no_break_space_is_named_and_located(tmp_path, capsys):
    code, out = run(tmp_path, capsys, ["parse"], NET.replace("var s :", "var\u00a0s :"))
    assert code == 2, out
    assert "error[E0105]: invisible character U+00A0 NO-BREAK SPACE" in out
    assert located(out, tmp_path, 3, 6) and "replace it with a plain space" in out


def test_slash_comment_says_comments_start_with_hash(tmp_path, capsys):
    code, out = run(tmp_path, capsys, ["parse"], "// my hypothesis\n" + NET)
    assert code == 2, out
    assert "comments start with #" in out and located(out, tmp_path, 1, 1)


def test_missing_brace_points_at_the_open_block(tmp_path, capsys):
    code, out = run(tmp_path, capsys, ["parse"], NET.replace("  output big : bool = s > 3\n}\n",
                                                             "  output big : bool = s > 3\n"))
    assert code == 2, out
    assert "error[E0106]" in out and "this block is never closed" in out and located(out, tmp_path, 1, 9)


@pytest.mark.parametrize("check_body,code_,line,col", [
    ("  expect iia >= 0.5\n  locate s over head[0..100000.0..100000].z\n", "E0711", 21, 3),
    ("  pairs 99999999999999999999999\n  expect iia >= 0.9\n", "E0104", 20, 9),
    ("  expect iia >= 1e999999\n", "E0104", 20, 17),
])
def test_check_refuses_huge_sizes_before_running(tmp_path, capsys, check_body, code_, line, col):
    text = NET + "\ncheck Sum {\n  interchange s\n" + check_body + "}\n"
    code, out = run(tmp_path, capsys, ["check"], text)
    assert code == 2, out
    assert f"error[{code_}]" in out and located(out, tmp_path, line, col)
    assert "bug in causalspec" not in out


def test_input_with_value_gets_its_own_help(tmp_path, capsys):
    code, out = run(tmp_path, capsys, ["parse"], NET.replace("input a, b : int 0..3", "input a, b : int 0..3 = 1"))
    assert code == 2, out
    assert "an input has no `= value`" in out and "use `==` to compare" not in out


def test_prompt_without_placeholders_warns_but_validates(tmp_path, capsys):
    code, out = run(tmp_path, capsys, ["parse"], NET.replace('"{a} plus {b} is big:"', '"is it big:"'))
    assert code == 0, out
    assert "warning[W0601]" in out and located(out, tmp_path, 8, 10)
