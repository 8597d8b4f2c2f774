"""The command line's console prints exactly what rich prints (cli/console.py): plain text is
written without importing rich, everything else is handed to rich."""

from __future__ import annotations

import contextlib
import io
import random
import sys

import pytest
from rich.console import Console as RichConsole

from causalspec.cli.console import Console, is_plain

ALPHABET = "ab Z09_:[]/\\\n\t\r\x07\x08\x0b\x0c\x1b\x00\x85\u2028\u00a0é中😀\u0300 "
SAFE = ALPHABET.translate({ord(c): None for c in "\t\r\x07\x08\x0b\x0c"})  # no character rich rewrites


def _both(text: str, stream: str = "stdout", **kwargs) -> tuple[str, str]:
    outs = []
    for make in (lambda: RichConsole(stderr=stream == "stderr", highlight=False, soft_wrap=True, emoji=False),
                 lambda: Console(stderr=stream == "stderr")):
        buf = io.StringIO()
        redirect = contextlib.redirect_stdout if stream == "stdout" else contextlib.redirect_stderr
        with redirect(buf):
            make().print(text, **kwargs)
        outs.append(buf.getvalue())
    return outs[0], outs[1]


@pytest.mark.parametrize("text", [
    "", "a", "a\n", "\n", "a\n\nb", "ok: specs/x.cspec (1 model(s))", "é 中文 😀", "\x1b[31mred\x1b[0m",
    "[bold]not markup[/bold] :smile:", "x" * 300, "中" * 200, "w " * 100 + "x",
    # what rich rewrites (these take rich's path, and must still match)
    "tab\there", "bell\x07", "cr\rlf", "trailing space \nnext", "x" * 100 + "   ", "a\x0bb\x0cc\x08"])
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_prints_what_rich_prints(text, stream):
    rich_out, ours = _both(text, stream, markup=False)
    assert ours == rich_out


def test_random_texts_print_what_rich_prints():
    rng = random.Random(0)
    plain = 0
    for _ in range(400):
        alphabet = ALPHABET if rng.random() < 0.5 else SAFE
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        plain += is_plain(text)
        rich_out, ours = _both(text, markup=False)
        assert ours == rich_out, repr(text)
    assert 20 < plain < 400  # both paths were exercised


def test_markup_and_styles_go_to_rich():
    rich_out, ours = _both("[bold]x[/bold] y")  # markup on: rich removes the tags
    assert ours == rich_out == "x y\n"
    assert not is_plain("a\tb") and not is_plain("a \nb") and is_plain("a b\nc")


def test_the_plain_path_flushes_and_a_closed_pipe_exits_1(monkeypatch):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError

        def fileno(self):
            return self.fd

    closed = Closed()
    closed.fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
    dup = []
    monkeypatch.setattr("os.open", lambda path, flags: -1)
    monkeypatch.setattr("os.dup2", lambda a, b: dup.append((a, b)))
    monkeypatch.setattr(sys, "stdout", closed)
    with pytest.raises(SystemExit) as exc:
        Console().print("x", markup=False)
    assert exc.value.code == 1 and dup == [(-1, closed.fd)]  # as rich: stdout pointed at the null device
