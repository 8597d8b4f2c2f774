"""Device and dtype *names* as a user writes them (command line, pytest options, Python API).

Why a module of its own: `--device banana` must be a usage error before anything loads,
and `--dtype fp16` must mean float16 rather than silently running float32. The CLI, the
pytest plugin and the network loader all call these two functions, so the names they
accept cannot differ. No torch import: validating a flag costs nothing.

Accepted (the same set a spec's `device` / `dtype` network options accept):
  devices  cpu, cuda, cuda:N, mps, auto (cuda when available, else cpu); case-insensitive.
           `meta` is refused: meta tensors hold no values, so no check could score them.
           A valid device that this machine lacks (cuda without a GPU) is not a name
           error: the check is skipped with that reason when the network loads.
  dtypes   float32, float16, bfloat16, float64, and the aliases fp32/float, fp16/half,
           bf16, fp64/double.
"""

from __future__ import annotations

import difflib
import re

from causalspec.errors import UsageError
from causalspec.diagnostics import did_you_mean
from causalspec.semantics.ir import DTYPE_ALIASES, DTYPES

DEVICES = ("cpu", "cuda", "cuda:N", "mps", "auto")
_DEVICE = re.compile(r"(cpu|cuda|cuda:[0-9]+|mps|auto)\Z")
# common spellings that are not device names, with what the user meant
_DEVICE_HINTS = {"gpu": "cuda", "cuda0": "cuda:0", "cuda1": "cuda:1", "metal": "mps", "cuda:": "cuda:0",
                 "mps:0": "mps", "cpu:0": "cpu"}


class BadDeviceOrDtype(UsageError, ValueError):
    """A device or dtype name that is not one (the message says which names are)."""


def dtype_name(text: str, flag: str = "dtype") -> str:
    """The canonical dtype for `text` (aliases resolved), or `BadDeviceOrDtype`."""
    key = text.strip().lower()
    if key in DTYPES:
        return key
    if key.startswith("torch."):
        key = key[len("torch."):]
        if key in DTYPES:
            return key
    if key in DTYPE_ALIASES:
        return DTYPE_ALIASES[key]
    close = difflib.get_close_matches(key, DTYPES, n=1, cutoff=0.6) or \
        [DTYPE_ALIASES[a] for a in difflib.get_close_matches(key, DTYPE_ALIASES, n=1, cutoff=0.75)]
    hint = f"did you mean `{close[0]}`?" if close else None
    raise BadDeviceOrDtype(f"{flag} {text!r} is not a dtype" + (f"; {hint}" if hint else "")
                           + f" (dtypes: {', '.join(DTYPES)}; aliases: "
                           + ", ".join(f"{a}={t}" for a, t in DTYPE_ALIASES.items()) + ")")


def device_name(text: str, flag: str = "device") -> str:
    """The canonical device for `text`, or `BadDeviceOrDtype` (availability is not checked here)."""
    key = text.strip().lower()
    if _DEVICE.match(key):
        return key
    if key == "meta":
        raise BadDeviceOrDtype(f"{flag} 'meta' cannot run a check: meta tensors hold no values "
                               f"(devices: {', '.join(DEVICES)})")
    hint = _DEVICE_HINTS.get(key)
    hint = f"did you mean `{hint}`?" if hint else did_you_mean(key, ("cpu", "cuda", "cuda:0", "mps", "auto"))
    raise BadDeviceOrDtype(f"{flag} {text!r} is not a device" + (f"; {hint}" if hint else "")
                           + f" (devices: {', '.join(DEVICES)})")


__all__ = ["DEVICES", "DTYPES", "DTYPE_ALIASES", "BadDeviceOrDtype", "device_name", "dtype_name"]
