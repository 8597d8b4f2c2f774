"""The API's progress bar: an HTML <progress> updated in place in a notebook, never escape codes."""

from __future__ import annotations

from causalspec.api.progress import NotebookProgress, in_notebook, progress_html, run_progress


class Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, obj):
        self.shown.append(("update", obj._repr_html_()))


def test_notebook_bar_is_one_display_updated_in_place():
    shown: list = []
    times = iter([0.0, 0.05, 0.1, 0.5, 0.6])

    def display(obj, display_id=False):
        assert display_id is True
        shown.append(("display", obj._repr_html_()))
        return Handle(shown)

    bar = NotebookProgress(display=display, clock=lambda: next(times))
    bar.begin("TrueAlignment")
    advance = bar("patched", 4)
    advance(1)  # 0.05 s after the first: throttled
    advance(1)  # 0.1 s: throttled
    advance(1)  # 0.5 s: shown
    advance(1)  # the last step is always shown
    bar.end()
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert shown[0][1] == progress_html("TrueAlignment: patched", 0, 4)
    assert '<progress value="4" max="4">' in shown[-1][1] and "4/4" in shown[-1][1]
    assert not any("\x1b" in text or "\r" in text for _, text in shown)


def test_label_is_escaped_and_outside_a_kernel_no_notebook_bar():
    assert "&lt;b&gt;" in progress_html("<b>", 1, 2)
    assert not in_notebook()  # pytest runs no Jupyter kernel
    assert run_progress(False) is None
    assert not isinstance(run_progress(None), NotebookProgress)
