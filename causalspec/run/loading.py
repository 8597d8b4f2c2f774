"""Load the network a spec names: a Hugging Face model from a local path/cache, or any torch
`nn.Module` built by a user function with safetensors weights.

Why offline by default: a check in CI must not silently download gigabytes or depend on a
hub being up; hub weights that are not in the local cache make a check *skipped, with the
reason*, never passed. That is the only skip a network's files can cause: a local path
that is missing or of the wrong kind is a spec error (semantics.paths, at analysis), and a
local model that cannot be loaded (a corrupt config.json, code that needs
`trust_remote_code`, missing weight files) is a check *error* naming the file.
Loading a `torch "file.py:build"` network runs user code (like a conftest.py) — the docs
say so; nothing here evaluates spec text.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from causalspec.diagnostics import did_you_mean
from causalspec.errors import CheckError, CheckSkipped
from causalspec.run.quiet import load_report_notes, quiet_load
from causalspec.semantics.paths import (TOKENIZER_FILES, WEIGHT_SUFFIXES, cached_hub_typo, did_you_mean_path,
                                        file_problem, hf_candidates, hf_folder, hf_folder_problem, hf_source_is_local,
                                        resolve)


class NetworkUnavailable(CheckSkipped):
    """Hub weights not in the local cache, or a requested device missing here: the check is
    skipped with this reason (a failure under `--strict`)."""


class NetworkLoadError(CheckError):
    """The network definition is wrong (bad hook, user code raised, shapes do not fit)."""


class UserCodeError(NetworkLoadError):
    """User code — a builder, an encode/decode hook, a model file, the network's forward —
    failed, exited, or returned something causalspec cannot use.

    Why a type of its own: a fault in the user's code is a check ERROR naming the hook and
    what was expected, never "a bug in causalspec" (exit 3). `hook` names what ran (e.g.
    "encode hook `model.py:encode`"); `cause` is the exception it raised, if any.
    """

    def __init__(self, message: str, hook: str = "", cause: BaseException | None = None):
        super().__init__(message)
        self.hook = hook
        self.cause = cause


def describe_exception(exc: BaseException) -> str:
    """`ValueError: bad` — or, for `sys.exit(n)`, `called sys.exit(n)` (a hook must return, not exit)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}) (user code must return or raise, not exit)" \
            if exc.code is not None else "called sys.exit() (user code must return or raise, not exit)"
    text = str(exc)
    return f"raised {type(exc).__name__}" + (f": {text}" if text else "")


def call_user(what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """`fn(*args)`, user code: any exception it raises — `SystemExit` too — becomes a
    `UserCodeError` naming `what`. Ctrl-C (KeyboardInterrupt) passes through."""
    try:
        return fn(*args, **kwargs)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except UserCodeError:
        raise
    except BaseException as exc:  # noqa: BLE001 - user code: SystemExit is theirs too
        raise UserCodeError(f"{what} {describe_exception(exc)}", what, exc) from exc


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
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        have = ", ".join(f"cuda:{i}" for i in range(count))
        raise NetworkUnavailable(f"device `{name}` requested but this machine has {count} CUDA device"
                                 f"{'s' if count != 1 else ''} ({have})")
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
    path = resolve(file_part, base_dir).resolve()  # as analysis resolved it (semantics.paths)
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
        except (KeyboardInterrupt, GeneratorExit):
            del sys.modules[module_name]
            raise
        except BaseException as exc:  # noqa: BLE001 - user code (SystemExit too): report it as theirs
            del sys.modules[module_name]
            raise UserCodeError(f"{what}: importing `{path}` {describe_exception(exc)}", what, exc) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        hint = did_you_mean(func_name, functions)
        own = [n for n in functions if getattr(vars(module)[n], "__module__", None) == module_name]
        listing = ", ".join(f"`{n}`" for n in (own or functions)[:8]) or "none"
        found = "" if func is None else f" (`{func_name}` there is a {type(func).__name__}, not a function)"
        raise NetworkLoadError(f"{what}: `{path}` has no function `{func_name}`{found}; "
                               + (hint if hint else f"its functions: {listing}"))
    return func


def load_torch_network(name: str, builder: str, weights: str, base_dir: Path, encode: str | None,
                       decode: str | None, device: str | None, dtype: str | None) -> LoadedNetwork:
    import torch
    from safetensors.torch import load_file

    problem = file_problem(weights, base_dir, "weights file")
    if problem is not None:  # analysis checks this too; the file may have gone since
        raise NetworkLoadError(f"network `{name}`: {problem.message} ({problem.label}); {problem.help}")
    weights_path = resolve(weights, base_dir).resolve()
    build = import_user_function(builder, base_dir, f"network `{name}` builder")
    module = call_user(f"network `{name}`: builder `{builder}`", build)
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
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the module's own load_state_dict (user code) failed
        raise UserCodeError(f"network `{name}`: loading `{weights_path}` into the module built by `{builder}` "
                            f"{describe_exception(exc)}", f"network `{name}`", exc) from exc
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    call_user(f"network `{name}`: moving the module built by `{builder}` to {dev} / {dt}",
              lambda: module.to(device=dev, dtype=dt).eval())
    return LoadedNetwork(
        name, "torch", module, dev, dt,
        encode_hook=import_user_function(encode, base_dir, f"network `{name}` encode hook") if encode else None,
        decode_hook=import_user_function(decode, base_dir, f"network `{name}` decode hook") if decode else None,
        source=f"{builder} + {weights_path}",
        extra={"builder": builder, "encode": encode, "decode": decode},  # as the spec names them, for messages
    )


def local_hf_path(path: str, base_dir: Path) -> Path | None:
    """The local model folder (holding config.json) an `hf` string names, or None."""
    return hf_folder(path, base_dir)


def check_hf_config(config_path: Path, name: str, trust_remote_code: bool) -> None:
    """Raise NetworkLoadError, naming the file, when a model's config.json is one transformers
    cannot load, or would load only by running the model's own code without the opt-in.

    Checked here rather than left to transformers: its errors do not always name the file,
    and for code that needs `trust_remote_code` it may ask on stdin instead of failing."""
    where = f"network `{name}`: `{config_path}`"
    try:
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NetworkLoadError(f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                               "repair it, or save the model again with save_pretrained") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise NetworkLoadError(f"{where} cannot be read: {exc}") from exc
    if not isinstance(cfg, dict):
        raise NetworkLoadError(f"{where} must hold a JSON object, not a {type(cfg).__name__}; "
                               "save the model again with save_pretrained")
    auto_map = cfg.get("auto_map")
    if auto_map:
        if not trust_remote_code:
            classes = ", ".join(sorted(auto_map)) if isinstance(auto_map, dict) else str(auto_map)
            raise NetworkLoadError(
                f"network `{name}`: the model in `{config_path.parent}` needs trust_remote_code: its config.json "
                f"has `auto_map` ({classes}), so transformers builds it by running Python files from the model's "
                f"folder; causalspec runs them only if you opt in — add the statement `trust_remote_code` to "
                f"network `{name}`'s body, and only for code you trust")
        return  # opted in: the model's own code reads its config
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise NetworkLoadError(f"{where} has no `model_type`, which transformers needs to choose the "
                               "architecture (e.g. \"gpt2\", \"llama\"); add it, or save the model again "
                               "with save_pretrained")
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise NetworkLoadError(
            f"{where} has model_type `{model_type}`, which transformers {transformers.__version__} does not "
            "know: upgrade transformers (pip install -U transformers); a model that ships its own code lists "
            "it in config.json's `auto_map` and needs `trust_remote_code` in the network's body")


def _hub_config(repo_id: str) -> Path | None:
    """The cached config.json of a hub model, when the cache has one."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id or cache: transformers reports it below
        return None
    return Path(found) if isinstance(found, str) else None


def hub_id_problem(path: str, base_dir: Path, offline: bool, exc: BaseException) -> str | None:
    """Why a hub id whose config could not be had is a mistake rather than weights absent here
    (None: absent, the check is skipped). Offline, an id one typo away from one the local cache
    holds (`gtp2` when `gpt2` is cached: semantics.paths.cached_hub_typo). With downloads on,
    an id the hub has no repository of: then a bare name (`hf "model"`) is no hub id either
    way, and the folder it would be is not here. A gated repository exists (the user lacks
    access), and a hub that cannot be reached says nothing: both stay skips."""
    close = cached_hub_typo(path)
    if offline:
        if not close:
            return None
        return (f"hub id `{path}` is not in the local Hugging Face cache, but `{close}` is, one typo away: did "
                f"you mean `{close}`? (if `{path}` is another model, fetch it with --allow-download)")
    GatedRepoError, RepositoryNotFoundError = _hub_errors()
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, RepositoryNotFoundError) and not isinstance(cause, GatedRepoError):
            hint = f"did you mean `{close}`? (it is in the local Hugging Face cache); " if close else ""
            folder = ""
            if "/" not in path:  # a bare name: the folder reading is all that is left
                looked = ", ".join(str(c) for c in dict.fromkeys(hf_candidates(path, base_dir)))
                folder = (f", and there is no model folder `{path}` either (looked for {looked}; build it, e.g. "
                          "with model.save_pretrained(FOLDER) and tokenizer.save_pretrained(FOLDER))")
            return (f"the Hugging Face hub has no model `{path}`{folder}: {hint}check the id on huggingface.co "
                    "(a private repository needs a token: `hf auth login`, or HF_TOKEN)")
        cause = cause.__cause__ or cause.__context__
    return None


def _hub_errors() -> tuple[type, type]:
    """huggingface_hub's GatedRepoError and RepositoryNotFoundError, wherever this version keeps
    them: `huggingface_hub.errors` exists from 0.24 on, while transformers>=4.40 (this package's
    floor) accepts huggingface_hub 0.19-0.23, whose errors live in `huggingface_hub.utils` (still
    re-exported there). Importing only `.errors` made a missing hub repository an ImportError —
    exit 3, "a bug in causalspec" — on those versions."""
    try:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError
    return GatedRepoError, RepositoryNotFoundError


def absent_hub_reason(path: str, base_dir: Path, offline: bool, exc: Exception) -> str:
    """Why the check is skipped when `hf "path"` is read as a hub id and its config is not to be had.

    A bare word (`hf "model"`, `hf "gpt2"`) reads two ways: a folder next to the spec that is
    not there (yet: examples build theirs with a script), or a hub id. Saying only "run with
    --allow-download" would send the user who meant the folder to the hub for a repository of
    that name, so the reason names both readings, where the folder was looked for, how to
    build it, and how to make the path unambiguous (`./model`: a missing folder is then a spec
    error, E0801). An `org/name` id whose `org` is no folder next to the spec reads as a hub id."""
    if "/" in path:
        if offline:
            return (f"weights for `{path}` not found locally (a hub id, looked up in the Hugging Face cache); "
                    "run with --allow-download to fetch them, or point the spec at a local folder")
        return f"cannot load `{path}`: {exc}"
    looked = ", ".join(str(c) for c in dict.fromkeys(hf_candidates(path, base_dir)))
    hint = did_you_mean_path(path, resolve(path, base_dir))  # `hf "modle"` beside `model/`: say so
    looked += f"; {hint}" if hint.startswith("did you mean") else ""
    both = f"no model folder `{path}` (looked for {looked}) and no hub weights for the hub id `{path}`"
    as_folder = ("meant as a folder: build it (the spec's comments or README say how; any model saves into one "
                 f"with model.save_pretrained(FOLDER) and tokenizer.save_pretrained(FOLDER)), and write "
                 f"`hf \"./{path}\"` so that a missing folder is a spec error")
    if offline:
        return (f"weights for `{path}` not found locally, read either way: {both} in the Hugging Face cache; "
                f"{as_folder}; meant as a hub id: run with --allow-download to fetch it")
    return f"cannot load `{path}`, read either way: {both} on the hub ({_first_line(exc)}); {as_folder}"


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

    from causalspec.run.attn_only import register as register_attn_only

    register_attn_only()  # `model_type: tl_attn_only` folders (TransformerLens attention-only models)
    is_local = hf_source_is_local(path, base_dir)
    local = hf_folder(path, base_dir) if is_local else None
    if is_local and local is None:  # analysis reports this; the folder may have gone since
        problem = hf_folder_problem(path, base_dir)
        detail = f"{problem.message} ({problem.label}); {problem.help}" if problem else f"`{path}` not found"
        raise NetworkLoadError(f"network `{name}`: {detail}")
    source = str(local) if local else path
    offline = not allow_download
    config_file = local / "config.json" if local else _hub_config(path)
    if config_file is not None:
        check_hf_config(config_file, name, trust_remote_code)
    if local is not None and not any((local / f).is_file() for f in TOKENIZER_FILES):
        # transformers would build an empty tokenizer from the model type and every answer would
        # then "tokenize to no tokens": name the cause instead
        raise NetworkLoadError(f"network `{name}`: the model folder `{local}` has no tokenizer files "
                               f"({', '.join(TOKENIZER_FILES[:3])}, …); save the tokenizer there with "
                               "tokenizer.save_pretrained(FOLDER)")
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=offline, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        downloaded = _hub_config(path) if local is None and config_file is None else None
        if downloaded is not None:  # fetched just now (--allow-download): say what is wrong with it
            check_hf_config(downloaded, name, trust_remote_code)
        if local is not None or isinstance(exc, ValueError):  # the files are here: loading them failed
            raise NetworkLoadError(f"network `{name}`: cannot load the config of `{source}`: "
                                   f"{_first_line(exc)}") from exc
        mistake = hub_id_problem(path, base_dir, offline, exc)
        if mistake is not None:  # a typo of a hub id: an error, never a skip CI reads as green
            raise NetworkLoadError(f"network `{name}`: {mistake}") from exc
        raise NetworkUnavailable(absent_hub_reason(path, base_dir, offline, exc)) from exc
    cls_name = model_class or default_model_class(config)
    auto = {"causal_lm": transformers.AutoModelForCausalLM, "masked_lm": transformers.AutoModelForMaskedLM,
            "base": transformers.AutoModel,
            "sequence_classification": transformers.AutoModelForSequenceClassification,
            "token_classification": transformers.AutoModelForTokenClassification}[cls_name]
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    load_notes: list[str] = []
    try:
        placement: dict[str, Any] = {}  # extra from_pretrained arguments
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
        classified = weights_error(name, path, local, exc)
        if classified is not exc:  # a truncated or pickled weights file, named
            raise classified from exc
        if local is not None:  # a local folder: its weight or tokenizer files are missing or unreadable
            raise NetworkLoadError(f"network `{name}`: the model folder `{local}` cannot be loaded (weight or "
                                   f"tokenizer files missing or unreadable): {_first_line(exc)}") from exc
        raise NetworkUnavailable(f"weights or tokenizer for `{path}` not found locally: {exc}") from exc
    except (KeyboardInterrupt, GeneratorExit, NetworkLoadError):
        raise
    except BaseException as exc:  # noqa: BLE001 - classified: a bad weights file, or the model's own code
        error = weights_error(name, path, local, exc)
        if error is exc:
            raise
        raise error from exc
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


def weights_error(name: str, path: str, local: Path | None, exc: BaseException) -> BaseException:
    """What `from_pretrained` raising `exc` means: a weights file that is there but cannot be
    read (truncated, not safetensors, a pickle that `torch.load(weights_only=True)` refuses)
    or user code (a `trust_remote_code` model file that raised or exited) is a
    `NetworkLoadError` naming the file; anything else is returned as is (ours: exit 3)."""
    import pickle

    files = sorted(p.name for p in local.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)) if local else []
    where = f"`{local}` ({', '.join(files)})" if files else f"`{path}`"
    text = str(exc).split("\n")[0]
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return NetworkLoadError(
            f"network `{name}`: torch.load(weights_only=True) refused a pickled weights file in {where}: {text} — "
            "a pickle can run code, so causalspec never loads one unsafely; convert the weights to safetensors "
            "(model.save_pretrained(folder, safe_serialization=True) where you trust the file)")
    if type(exc).__name__ == "SafetensorError" or isinstance(exc, EOFError) or \
            (isinstance(exc, RuntimeError) and any(t in str(exc) for t in ("PytorchStreamReader", "zip archive"))):
        return NetworkLoadError(f"network `{name}`: cannot read the weights in {where}: {text} (a truncated or "
                                "corrupt file? download or save it again)")
    if isinstance(exc, SystemExit):
        return UserCodeError(f"network `{name}`: loading `{path}` {describe_exception(exc)}", f"network `{name}`",
                             exc)
    return exc


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def default_model_class(config) -> str:
    archs = [a.lower() for a in (getattr(config, "architectures", None) or [])]
    if any("maskedlm" in a for a in archs) or config.model_type in ("bert", "roberta", "distilbert"):
        return "masked_lm"
    return "causal_lm"


def _placement(module) -> tuple[Any, Any]:
    """(device, dtype) of a live module: those of its first floating parameter (cpu/float32 for a
    module without one)."""
    import torch

    for p in module.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def bind_torch_network(name: str, module: Any, encode_hook: Callable | None, decode_hook: Callable | None,
                       hooks: dict[str, str | None] | None = None) -> LoadedNetwork:
    """A torch network from a module already in memory (the Python API binds it): no builder
    is run and no weights are read; the module stays on its own device and dtype and is put
    in eval mode (dropout off), as a loaded network is. `hooks` names the hooks for messages
    (`{"encode": "model.py:encode"}`, or a description of a callable passed in)."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise NetworkLoadError(f"network `{name}` is a torch network: bind a torch.nn.Module, "
                               f"not {type(module).__name__}")
    dev, dt = _placement(module)
    call_user(f"network `{name}`: eval() of the bound module", module.eval)
    return LoadedNetwork(name, "torch", module, dev, dt, encode_hook=encode_hook, decode_hook=decode_hook,
                         source=f"a {type(module).__name__} bound in Python",
                         extra={"builder": None, **(hooks or {})})


def bind_hf_network(name: str, model: Any, tokenizer: Any, model_class: str | None = None) -> LoadedNetwork:
    """An hf network from a transformers model and tokenizer already in memory (the Python API
    binds them): nothing is read from disk or the hub; the model stays where it is (an
    accelerate-placed model included) and is put in eval mode."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise NetworkLoadError(f"network `{name}` is an hf network: bind a transformers model "
                               f"(a torch.nn.Module), not {type(model).__name__}")
    if tokenizer is None or not callable(tokenizer):
        raise NetworkLoadError(f"network `{name}` is an hf network: its prompts are tokenized, so bind the model "
                               "with its tokenizer, e.g. causalspec.Network(model, tokenizer=tokenizer)")
    dev, dt = _placement(model)
    device_map = getattr(model, "hf_device_map", None)
    call_user(f"network `{name}`: eval() of the bound model", model.eval)
    config = getattr(model, "config", None)
    cls_name = model_class or (default_model_class(config) if config is not None else "causal_lm")
    return LoadedNetwork(name, "hf", model, dev, dt, tokenizer=tokenizer,
                         source=f"a {type(model).__name__} bound in Python",
                         extra={"model_class": cls_name, "device_map": device_map, "weights": True,
                                "load_notes": []})
