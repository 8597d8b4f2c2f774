"""The command line's stdout and stderr: rich's output, without importing rich for plain text.

Why: `causalspec parse` and `graph` run on every save in editors and pre-commit hooks, and
print only plain lines (`ok: FILE (...)`, diagnostics). Importing rich to print them costs
~20 ms of a ~0.2 s command. `Console.print` writes such a line itself, byte for byte what
`rich.console.Console(highlight=False, soft_wrap=True, emoji=False).print(text, markup=False)`
writes (tests/cli/test_console.py compares the two), and hands everything else to that rich
console, created (and rich imported) on first need.

What rich does to a plain string here, and so what the fast path must not meet: it removes
the control codes bell, backspace, vertical tab, form feed and carriage return; it expands
tabs to 8 columns; it strips whitespace at the end of a line longer than the console's width;
it renders through IPython in a notebook and through the win32 API on a legacy Windows
console. A text with any of these characters (or a line that ends in whitespace), a notebook,
Windows, markup, styles or several objects all take rich's path. Like rich, a write is
flushed at once (stdout and stderr interleave in order), a closed pipe exits with status 1
(stdout pointed at the null device), and a character the stream cannot encode says how to
fix the environment.
"""

from __future__ import annotations

import builtins
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import rich.console

# rich.control.STRIP_CONTROL_CODES (bell, backspace, vertical tab, form feed, carriage return)
# and the tab, which rich expands: text holding one of these is rendered by rich itself
_RICH_REWRITES = frozenset("\x07\x08\x0b\x0c\r\t")


def is_plain(text: str) -> bool:
    """Whether rich would print `text` unchanged (no character it removes or expands, no line
    ending in whitespace, which rich strips from lines wider than the console)."""
    if not _RICH_REWRITES.isdisjoint(text):
        return False
    return not any(line[-1:].isspace() for line in text.split("\n"))


class Console:
    """stdout (or stderr) of a command: `print(text, markup=False)` as rich prints it."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self._rich: rich.console.Console | None = None

    @property
    def rich(self) -> rich.console.Console:
        """The rich console this one stands for (rich is imported on first use)."""
        if self._rich is None:
            from rich.console import Console as RichConsole

            # emoji=False: a `:name:` in a file name or spec text stays as written (as in report.terminal)
            self._rich = RichConsole(stderr=self.stderr, highlight=False, soft_wrap=True, emoji=False)
        return self._rich

    def _fast_path_ok(self, objects: tuple[Any, ...], markup: bool | None, kwargs: dict[str, Any]) -> bool:
        return (markup is False and not kwargs and len(objects) == 1 and type(objects[0]) is str
                and sys.platform != "win32" and "get_ipython" not in vars(builtins) and is_plain(objects[0]))

    def print(self, *objects: Any, markup: bool | None = None, **kwargs: Any) -> None:
        if not self._fast_path_ok(objects, markup, kwargs):
            self.rich.print(*objects, markup=markup, **kwargs)
            return
        file = sys.stderr if self.stderr else sys.stdout
        if file is None:  # no stream at all (pythonw): rich writes nowhere too
            return
        if hasattr(file, "rich_proxied_file"):  # rich's own redirection (a live progress display)
            self.rich.print(*objects, markup=markup)
            return
        try:
            try:
                file.write(objects[0] + "\n")
            except UnicodeEncodeError as error:  # rich's hint, word for word
                error.reason = (f"{error.reason}\n*** You may need to add PYTHONIOENCODING=utf-8 to your "
                                "environment ***")
                raise
            file.flush()
        except BrokenPipeError:  # as rich.console.Console.on_broken_pipe: quiet exit 1
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(1) from None


def stdout() -> Console:
    return Console()


def stderr() -> Console:
    return Console(stderr=True)
