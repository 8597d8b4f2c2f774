"""Load the network a spec names: a Hugging Face model from a local path/cache, or any torch
`nn.Module` built by a user function with safetensors weights.

Why offline by default: a check in CI must not silently download gigabytes or depend on a
hub being up; missing weights make a check *skipped, with the reason*, never passed.
Loading a `torch "file.py:build"` network runs user code (like a conftest.py) — the docs
say so; nothing here evaluates spec text.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from causalspec.run.quiet import load_report_notes, quiet_load


class NetworkUnavailable(Exception):
    """The network's weights are not available here: the check is skipped with this reason."""


class NetworkLoadError(Exception):
    """The network definition is wrong (bad hook, user code raised, shapes do not fit)."""


@dataclass
class LoadedNetwork:
    name: str
    backend: str  # "hf" | "torch"
    module: Any  # torch.nn.Module
    device: Any
    dtype: Any
    tokenizer: Any = None
    encode_hook: Callable | None = None
    decode_hook: Callable | None = None
    source: str = ""  # what was loaded, for reports
    extra: dict = field(default_factory=dict)


def resolve_device(name: str | None):
    """A torch.device for a device name (`run.devices`): a name that is not a device is a
    load error; a valid device this machine lacks makes the check skipped, with the reason."""
    import torch

    from causalspec.run.devices import BadDeviceOrDtype, device_name

    if name not in (None, ""):
        try:
            name = device_name(name)
        except BadDeviceOrDtype as exc:
            raise NetworkLoadError(str(exc)) from None
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NetworkUnavailable(f"device `{name}` requested but CUDA is not available on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise NetworkUnavailable("device `mps` requested but it is not available on this machine")
    return torch.device(name)


def resolve_dtype(name: str | None):
    """A torch dtype for a dtype name or alias (`run.devices`); never a silent float32."""
    import torch

    from causalspec.run.devices import BadDeviceOrDtype, dtype_name

    try:
        return getattr(torch, dtype_name(name) if name else "float32")
    except BadDeviceOrDtype as exc:
        raise NetworkLoadError(str(exc)) from None


@contextmanager
def neighbours_importable(folder: Path) -> Iterator[None]:
    """Let a hook file import the modules that sit next to it (`import helpers` for
    `helpers.py` in the same folder), as it would when run as a script.

    The folder is first on `sys.path` only while the hook file's top level runs, and the
    modules imported through that entry are taken out of `sys.modules` afterwards (the hook
    keeps its references): two specs whose folders both have a `helpers.py` each get their
    own, and nothing of one spec's folder shadows a module for the rest of the process. A
    folder already on `sys.path` (the project root, say) is left as it is, and so are its
    modules. An import inside a hook function runs later, with the folder no longer on the
    path: import at the top of the file."""
    folder = folder.resolve()
    if any(_same_folder(entry, folder) for entry in sys.path):
        yield
        return
    entry = str(folder)
    before = set(sys.modules)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()  # files written since the last import (tests, generated code)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)  # the first occurrence: ours, unless the hook moved it
        except ValueError:
            pass
        for name in set(sys.modules) - before:
            if _imported_from(sys.modules[name], name, folder):
                del sys.modules[name]


def _same_folder(entry: str, folder: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == folder
    except (OSError, RuntimeError, TypeError):
        return False


def _imported_from(module, name: str, folder: Path) -> bool:
    """Whether module `name` was found through the `sys.path` entry `folder`: its file is
    `folder/<name as a path>.py` or `folder/<name as a path>/__init__.py`."""
    file = getattr(module, "__file__", None)
    if not file:
        return False
    try:
        rel = Path(file).resolve().relative_to(folder)
    except (OSError, ValueError):
        return False
    parts = name.split(".")
    return rel.with_suffix("").parts in (tuple(parts), (*parts, "__init__"))


def import_user_function(ref: str, base_dir: Path, what: str) -> Callable:
    """`"path/file.py:function"` -> the function. Runs the file's top-level code (user code)."""
    if ":" not in ref:
        raise NetworkLoadError(f"{what} `{ref}` must be written \"file.py:function\"")
    file_part, func_name = ref.rsplit(":", 1)
    path = Path(file_part)
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if not path.is_file():
        raise NetworkLoadError(f"{what}: file `{path}` not found (paths are relative to the spec's folder)")
    module_name = f"causalspec_user_{abs(hash(str(path)))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise NetworkLoadError(f"{what}: cannot import `{path}`")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with neighbours_importable(path.parent):
                spec.loader.exec_module(module)
        except Exception as exc:  # user code: report it as theirs
            del sys.modules[module_name]
            raise NetworkLoadError(f"{what}: importing `{path}` raised {type(exc).__name__}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise NetworkLoadError(f"{what}: `{path}` has no function `{func_name}`")
    return func


def load_torch_network(name: str, builder: str, weights: str, base_dir: Path, encode: str | None,
                       decode: str | None, device: str | None, dtype: str | None) -> LoadedNetwork:
    import torch
    from safetensors.torch import load_file

    weights_path = Path(weights)
    if not weights_path.is_absolute():
        weights_path = (base_dir / weights_path).resolve()
    if not weights_path.is_file():
        raise NetworkUnavailable(f"weights file `{weights_path}` not found")
    build = import_user_function(builder, base_dir, f"network `{name}` builder")
    try:
        module = build()
    except Exception as exc:
        raise NetworkLoadError(f"network `{name}`: `{builder}` raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise NetworkLoadError(f"network `{name}`: `{builder}` returned {type(module).__name__}, "
                               "not a torch.nn.Module")
    try:
        state = load_file(str(weights_path))
    except Exception as exc:
        raise NetworkLoadError(f"network `{name}`: cannot read safetensors file `{weights_path}`: {exc}") from exc
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise NetworkLoadError(f"network `{name}`: weights in `{weights_path}` do not fit the module "
                               f"built by `{builder}`: {exc}") from exc
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    module.to(device=dev, dtype=dt).eval()
    return LoadedNetwork(
        name, "torch", module, dev, dt,
        encode_hook=import_user_function(encode, base_dir, f"network `{name}` encode hook") if encode else None,
        decode_hook=import_user_function(decode, base_dir, f"network `{name}` decode hook") if decode else None,
        source=f"{builder} + {weights_path}",
    )


def local_hf_path(path: str, base_dir: Path) -> Path | None:
    p = Path(os.path.expanduser(path))
    candidates = [p] if p.is_absolute() else [base_dir / p, Path.cwd() / p]
    for c in candidates:
        if c.is_dir() and (c / "config.json").is_file():
            return c.resolve()
    return None


@quiet_load  # no third-party progress bars or warnings in our output (run.quiet)
def load_hf_network(name: str, path: str, base_dir: Path, model_class: str | None, device: str | None,
                    dtype: str | None, trust_remote_code: bool = False,
                    allow_download: bool = False, device_map: str | dict | None = None,
                    weights: bool = True) -> LoadedNetwork:
    """Load an HF model and tokenizer (offline unless ``allow_download``).

    ``weights=False`` builds the architecture from the config on the meta device and loads
    no weights: a remote (NDIF) check needs the module tree (to locate and validate sites)
    and the tokenizer here, while the weights stay on the server.

    ``device_map`` (e.g. ``"auto"``) is handed to ``from_pretrained``: accelerate places the
    layers over the available GPUs (and CPU/disk) and moves activations between them; the
    model is then not moved as a whole, and inputs go to the device of its first parameters.
    It needs the `accelerate` package."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    local = local_hf_path(path, base_dir)
    source = str(local) if local else path
    offline = not allow_download
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=offline, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        where = f"{(base_dir / path)} or the Hugging Face cache" if local is None else str(local)
        if offline:
            raise NetworkUnavailable(
                f"weights for `{path}` not found locally (looked in {where}); "
                "run with --allow-download to fetch them, or point the spec at a local folder") from exc
        raise NetworkUnavailable(f"cannot load `{path}`: {exc}") from exc
    cls_name = model_class or default_model_class(config)
    auto = {"causal_lm": transformers.AutoModelForCausalLM, "masked_lm": transformers.AutoModelForMaskedLM,
            "base": transformers.AutoModel,
            "sequence_classification": transformers.AutoModelForSequenceClassification}[cls_name]
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    load_notes: list[str] = []
    try:
        placement = {}
        if device_map is not None:
            if importlib.util.find_spec("accelerate") is None:
                raise NetworkLoadError(f"network `{name}`: device_map={device_map!r} needs the `accelerate` "
                                       "package (pip install accelerate)")
            placement["device_map"] = device_map
        if weights:
            module, info = auto.from_pretrained(source, local_files_only=offline, trust_remote_code=trust_remote_code,
                                                dtype=dt, output_loading_info=True, **placement)
            load_notes = load_report_notes(name, info)
        else:
            with torch.device("meta"):
                module = auto.from_config(config, trust_remote_code=trust_remote_code, dtype=dt)
            module.config._name_or_path = path  # the hub id NDIF knows the model by
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline,
                                                  trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise NetworkUnavailable(f"weights or tokenizer for `{path}` not found locally: {exc}") from exc
    if not weights:
        dev = torch.device("cpu")  # inputs are built here and shipped; the module holds no data
    elif device_map is None:
        module.to(dev)
    else:  # accelerate placed the layers; inputs go where the first parameters are
        dev = next(module.parameters()).device
    module.eval()
    return LoadedNetwork(name, "hf", module, dev, dt, tokenizer=tokenizer, source=source,
                         extra={"model_class": cls_name, "device_map": device_map, "weights": weights,
                                "load_notes": load_notes})


def default_model_class(config) -> str:
    archs = [a.lower() for a in (getattr(config, "architectures", None) or [])]
    if any("maskedlm" in a for a in archs) or config.model_type in ("bert", "roberta", "distilbert"):
        return "masked_lm"
    return "causal_lm"
