"""Keep third-party progress bars and warnings out of a check's output.

Why: `causalspec check` prints one block per check and a summary line that CI parses; a
transformers "Loading weights" tqdm bar, a huggingface_hub download bar or a library's
FutureWarning in the middle of it is noise the user cannot act on. Around a network load
(and only there) this module switches off transformers' and huggingface_hub's progress
bars, lowers transformers' logging to errors and swallows Python warnings; afterwards
every setting is restored, so our own messages — diagnostics, check notes, the
summary — and warnings raised outside a load are untouched.

What is not lost: transformers' load report of parameters that were missing from the
checkpoint (randomly initialised) or had the wrong shape. `load_report_notes` turns
`from_pretrained(..., output_loading_info=True)`'s answer into check notes, because a
network with random weights is something the user must see.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
MAX_KEYS = 5  # parameter names quoted in a load-report note; more are counted


@contextmanager
def third_party_quiet() -> Iterator[None]:
    """No progress bars, no transformers logging below ERROR, no Python warnings inside the block."""
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.callback(_transformers_quiet())
        stack.callback(_hub_quiet())
        yield


def quiet_load(func: Callable[..., T]) -> Callable[..., T]:
    """Decorator: run a network loader inside `third_party_quiet`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> T:
        with third_party_quiet():
            return func(*args, **kwargs)

    return wrapper


def _transformers_quiet() -> Callable[[], None]:
    """Silence transformers; returns the function that restores its settings."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return lambda: None
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    def restore() -> None:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()

    return restore


def _hub_quiet() -> Callable[[], None]:
    """Silence huggingface_hub's download bars; returns the function that restores them."""
    try:
        from huggingface_hub import utils as hub_utils
    except ImportError:  # pragma: no cover - comes with transformers
        return lambda: None
    if hub_utils.are_progress_bars_disabled():
        return lambda: None
    hub_utils.disable_progress_bars()
    return hub_utils.enable_progress_bars


def load_report_notes(name: str, info: dict | None) -> list[str]:
    """Notes for the parameters transformers could not load from the checkpoint (missing ones
    are randomly initialised; mismatched ones have the wrong shape), from `output_loading_info`."""
    if not info:
        return []
    notes = []
    for key, what in (("missing_keys", "missing from the checkpoint, randomly initialised by transformers"),
                      ("mismatched_keys",
                       "of the wrong shape in the checkpoint, randomly initialised by transformers")):
        keys = sorted(str(k[0] if isinstance(k, (tuple, list)) else k) for k in (info.get(key) or ()))
        if keys:
            shown = ", ".join(keys[:MAX_KEYS]) + (f", … ({len(keys)} in all)" if len(keys) > MAX_KEYS else "")
            notes.append(f"network `{name}`: {len(keys)} parameter(s) {what}: {shown}")
    return notes


__all__ = ["load_report_notes", "quiet_load", "third_party_quiet"]
