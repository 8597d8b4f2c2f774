"""Progress of an API run: a notebook progress bar in Jupyter, the terminal's bar elsewhere.

Why not the terminal bar in a notebook: rich's live display writes cursor-movement escape
codes, which a notebook cell shows as garbage (or, with ipywidgets missing, nothing useful).
In a Jupyter kernel the bar is an HTML `<progress>` element shown with IPython's display
and updated in place through its display handle (`update_display`): plain HTML, no escape
codes, no widget library needed, and a notebook executed headlessly keeps the last state
as an ordinary `text/html` output. Outside a kernel the terminal report's `CheckProgress`
is used, which draws only on a terminal.

The object has the interface `CheckOptions.progress` expects (`begin`, `end`, and
`progress(kind, total) -> advance(n)`), so the claims cannot tell the two apart.
"""

from __future__ import annotations

import html
import time
from typing import Any, Callable

# updates are sent at most this often (seconds): each one is a message to the notebook frontend
MIN_INTERVAL = 0.2


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (IPython with a kernel attached)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class NotebookProgress:
    """Progress shown as an HTML `<progress>` bar in a notebook cell, updated in place."""

    def __init__(self, display: Callable[..., Any] | None = None, clock: Callable[[], float] = time.monotonic):
        if display is None:
            from IPython.display import display as ipython_display

            display = ipython_display
        self._display = display
        self._clock = clock
        self._handle: Any = None
        self.label = ""
        self._last = 0.0

    def begin(self, label: str = "") -> None:
        self.label = label

    def end(self) -> None:
        self.label = ""

    def __enter__(self) -> NotebookProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def __call__(self, kind: str, total: int) -> Callable[[int], None]:
        label = f"{self.label}: {kind}" if self.label else kind
        done = 0
        self._show(label, done, total, force=True)

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            self._show(label, done, total, force=done >= total)

        return advance

    def _show(self, label: str, done: int, total: int, force: bool) -> None:
        now = self._clock()
        if not force and now - self._last < MIN_INTERVAL:
            return
        self._last = now
        bar = _Html(progress_html(label, done, total), f"{label} {min(done, total)}/{total}")
        if self._handle is None:
            self._handle = self._display(bar, display_id=True)
        elif hasattr(self._handle, "update"):
            self._handle.update(bar)


class _Html:
    """An object IPython displays as HTML (`_repr_html_`), without importing IPython.display."""

    def __init__(self, text: str, plain: str):
        self.text = text
        self.plain = plain

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.plain


def progress_html(label: str, done: int, total: int) -> str:
    """One bar: `label  <progress> done/total`."""
    total = max(int(total), 1)
    done = min(int(done), total)
    return (f'<div class="causalspec-progress"><code>{html.escape(label)}</code> '
            f'<progress value="{done}" max="{total}"></progress> {done}/{total}</div>')


def run_progress(enabled: bool | None) -> Any:
    """The progress object of an API run: None (no bar) when `enabled` is False; a notebook
    bar in a Jupyter kernel; otherwise the terminal bar (drawn only on a terminal)."""
    if enabled is False:
        return None
    if in_notebook():
        return NotebookProgress()
    from causalspec.report.terminal import TerminalReport

    return TerminalReport().progress()
