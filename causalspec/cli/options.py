"""The options of a check run, declared once: `causalspec check` and the pytest plugin are
both built from `CHECK_OPTIONS`, so every option the check offers (`--batch`) is offered by the
plugin too (`--causalspec-batch`), with the same help, the same validation and the same
mapping onto `CheckOptions`.

Options that only shape the command's own output (`--json`, `--junit`, `--html`, `--quiet`,
`--only`) are not in the table: pytest has its own (`--junitxml`, `-q`, `-k`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from causalspec.cli.base import UsageError
from causalspec.files import OutputError, check_folder

DEVICE_HELP = ("torch device for every network: cpu, cuda, cuda:N, mps or auto (cuda when available); "
               "a device this machine lacks skips the checks")
DTYPE_HELP = "dtype for every network: float32, float16, bfloat16, float64 (aliases fp32, fp16/half, bf16, fp64)"

PLUGIN_PREFIX = "causalspec-"


@dataclass(frozen=True)
class Option:
    """One check option: `name` is the long flag without dashes (`full-forwards`), `kwargs`
    the argparse keywords; `plugin` overrides keywords for the pytest plugin's
    `--causalspec-<name>` (an option whose value is optional there takes a value: pytest
    would otherwise read a test path after it as the value)."""

    name: str
    kwargs: dict[str, Any]
    plugin: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest", self.name.replace("-", "_"))


def _option(name: str, **kwargs) -> Option:
    plugin = kwargs.pop("plugin", {})
    return Option(name, kwargs, plugin)


# In the order `causalspec check --help` lists them (the report options sit between, see check.py).
PAIRS = _option("pairs", type=int, metavar="N", help="pairs per interchange set, overriding every check's `pairs`")
SEED = _option("seed", type=int, metavar="S", help="seed, overriding every check's `seed`")
BATCH = _option("batch", type=int, metavar="B", help="forward-pass batch size")
ALLOW_DOWNLOAD = _option("allow-download", action="store_true",
                         help="let Hugging Face networks download missing weights (off: such checks are skipped)")
STRICT = _option("strict", action="store_true",
                 help="fail every skipped check (exit 1): for CI that must test every claim; a check is "
                      "skipped only when hub weights are not cached here or a requested device is missing",
                 plugin={"help": "fail every skipped check (hub weights not cached, a device missing): for CI "
                                 "that must test every claim (ini: causalspec_strict = true)"})
DEVICE = _option("device", metavar="D", help=DEVICE_HELP)
DTYPE = _option("dtype", metavar="T", help=DTYPE_HELP)
DEVICE_MAP = _option("device-map", metavar="MAP", dest="device_map",
                     help="hf networks: place layers with accelerate, e.g. `auto` (spreads a large model over "
                          "the GPUs and CPU); needs the accelerate package")
BACKEND = _option("backend", choices=["torch", "nnsight"], default=None,
                  help="run forwards with torch hooks or in nnsight sessions (pip install nnsight; full "
                       "forwards, same results); default: the network's `backend` statement, else torch")
REMOTE = _option("remote", nargs="?", const="ndif", default=None, metavar="TARGET",
                 help="run the checks' nnsight sessions remotely (implies --backend nnsight): on NDIF "
                      "(no TARGET; needs NDIF_API_KEY), on a self-hosted NDIF (TARGET = its https:// URL), "
                      "or `local` (nnsight's dry run of the remote path, here); only output codes come back",
                 plugin={"nargs": None, "const": None,
                         "help": "run the checks' nnsight sessions remotely (implies nnsight): TARGET is `ndif` "
                                 "(needs NDIF_API_KEY), a self-hosted NDIF's https:// URL, or `local` (nnsight's "
                                 "dry run of the remote path, here)"})
FULL_FORWARDS = _option("full-forwards", action="store_true", dest="full_forwards",
                        help="patched runs recompute every position (off: only positions from the patch on, "
                             "from cached keys/values, where the model allows)")
ACTIVATIONS_ON_DISK = _option(
    "activations-on-disk", nargs="?", const="disk", default=None, metavar="DIR", dest="activations_on_disk",
    help="keep the clean pass's site activations in files instead of memory, for big runs: "
         "in a temporary folder removed afterwards, or under DIR (kept, with a manifest)",
    plugin={"nargs": None, "const": None,
            "help": "keep the clean pass's site activations in files instead of memory, for big runs: "
                    "`disk` for a temporary folder removed afterwards, or a folder DIR (kept, with a manifest)"})
RETRAIN = _option("retrain", action="store_true",
                  help="train learned featurizers (das, boundless) even when a matching artifact exists")
ARTIFACTS = _option("artifacts", metavar="DIR",
                    help="folder of trained-featurizer artifacts (default: .causalspec/artifacts next to the spec)")

CHECK_OPTIONS: tuple[Option, ...] = (PAIRS, SEED, BATCH, ALLOW_DOWNLOAD, STRICT, DEVICE, DTYPE, DEVICE_MAP, BACKEND,
                                     REMOTE, FULL_FORWARDS, ACTIVATIONS_ON_DISK, RETRAIN, ARTIFACTS)


def add_cli_options(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    for opt in options:
        parser.add_argument(f"--{opt.name}", **opt.kwargs)


def plugin_flag(opt: Option) -> str:
    return f"--{PLUGIN_PREFIX}{opt.name}"


def plugin_dest(opt: Option) -> str:
    return "causalspec_" + opt.dest


def add_plugin_options(addoption: Callable[..., None]) -> None:
    """Every check option as `--causalspec-<name>` (pytest's `group.addoption`)."""
    for opt in CHECK_OPTIONS:
        kwargs = {**opt.kwargs, **opt.plugin, "dest": plugin_dest(opt)}
        kwargs = {k: v for k, v in kwargs.items() if not (k in ("nargs", "const") and v is None)}
        kwargs.setdefault("default", False if kwargs.get("action") == "store_true" else None)
        addoption(plugin_flag(opt), **kwargs)


def validate_device_dtype(values: Any, flag: Callable[[str], str] = lambda n: f"--{n}") -> None:
    """`device` / `dtype` to their canonical names (aliases resolved), before anything loads:
    a name that is no device or dtype is a usage error (exit 2) with a did-you-mean. `values`
    is an argparse namespace (or any object with those attributes), changed in place."""
    if getattr(values, "device", None) is None and getattr(values, "dtype", None) is None:
        return
    # lazy: run.devices reads the dtype table of semantics (sympy, ~1 s to import), which the
    # pytest plugin would otherwise add to every pytest session, causalspec options or not
    from causalspec.run.devices import BadDeviceOrDtype, device_name, dtype_name

    try:
        if getattr(values, "device", None) is not None:
            values.device = device_name(values.device, flag("device"))
        if getattr(values, "dtype", None) is not None:
            values.dtype = dtype_name(values.dtype, flag("dtype"))
    except BadDeviceOrDtype as exc:
        raise UsageError(str(exc)) from None


def validate_run_options(values: Any, flag: Callable[[str], str] = lambda n: f"--{n}") -> None:
    """The checks the CLI and the plugin make before anything loads (`UsageError`): device and
    dtype names, the numbers' ranges, and `--activations-on-disk` naming a folder."""
    validate_device_dtype(values, flag)
    for name, low in (("pairs", 1), ("batch", 1), ("seed", 0)):
        value = getattr(values, name, None)
        if value is not None and value < low:
            raise UsageError(f"{flag(name)} must be at least {low} (got {value})")
    folder = getattr(values, "activations_on_disk", None)
    if folder not in (None, "disk") and (folder.endswith(".cspec") or Path(folder).is_file()):
        raise UsageError(f"{flag('activations-on-disk')} takes a folder, not the file `{folder}`; name the spec "
                         f"files first, or write {flag('activations-on-disk')}=DIR")


def check_run_folders(values: Any, flag: Callable[[str], str] = lambda n: f"--{n}") -> None:
    """The output folders of a run (`--artifacts`, `--activations-on-disk DIR`), checked up front."""
    folder = getattr(values, "activations_on_disk", None)
    targets = {"artifacts": getattr(values, "artifacts", None),
               "activations-on-disk": None if folder in (None, "disk") else folder}
    for name, path in targets.items():
        if path:
            try:
                check_folder(path)
            except OutputError as exc:
                raise UsageError(f"{flag(name)}: {exc}") from None


def check_options(values: Any, **extra):
    """`CheckOptions` from validated option values (an argparse namespace, or the plugin's
    values under the same names); `extra` adds or overrides what only one caller knows
    (`only`, `progress`, the flag names quoted in reasons)."""
    from causalspec.claims.runner import CheckOptions  # lazy: it imports torch, `causalspec parse` must not

    get: Callable[[str], Any] = (values.get if isinstance(values, Mapping)
                                 else lambda name: getattr(values, name, None))
    fields = dict(pairs=get("pairs"), seed=get("seed"), batch=get("batch"),
                  allow_download=bool(get("allow_download")), device=get("device"), dtype=get("dtype"),
                  device_map=get("device_map"), incremental=not get("full_forwards"), backend=get("backend"),
                  remote=get("remote"), retrain=bool(get("retrain")), artifacts=get("artifacts"),
                  activations=get("activations_on_disk"), strict=bool(get("strict")))
    return CheckOptions(**{**fields, **extra})


def plugin_values(getoption: Callable[[str], Any]) -> argparse.Namespace:
    """The plugin's `--causalspec-<name>` values under the CLI's names (`pairs`, `device`...)."""
    return argparse.Namespace(**{opt.dest: getoption(plugin_dest(opt)) for opt in CHECK_OPTIONS})
