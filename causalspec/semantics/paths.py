"""Local paths a spec names: which `hf` strings are paths, and what is wrong with a path
that does not fit.

Why a module of its own: a typo in a path must be a located diagnostic with a did-you-mean,
never a check skipped as "weights not found" that CI reads as green. Analysis (network
blocks, `basis` files) and loading (causalspec.run.loading) apply the same rules through
these functions, so the path analysis accepted is the path the loader opens. Nothing here
reads a file's content or imports torch.

The rule for `hf "…"` (docs/language.md, 5.1): the string is a **local path** when it
starts with `./`, `../`, `/` or `~`; when it is not shaped like a hub id (`name` or
`org/name`, letters, digits, `-`, `_`, `.`); when it names something that exists next to
the spec; when it names a model folder (one holding `config.json`) under the current
directory; for `org/name`, when `org` is a folder next to the spec; or when it is one typo
away from a local model folder (`modle` beside `model/`, see `typo_folder`) and is no hub id
in the Hugging Face cache. Anything else is a **hub id**: looked up in the Hugging Face
cache, and a check whose hub weights are not cached is skipped — the only skip a path can
cause. A typo is one edit — a character inserted, dropped, changed, two letters swapped —
or a difference of case; an edit that changes the digits is not a typo (`attn-only-4l` beside
`attn-only-2l/` is another model, whose folder may not be built yet), save a letter typed for
a digit (`7Om` for `70m`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from causalspec.codes import E0801, E0803, E0804

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?\Z")
LOCAL_PREFIXES = ("./", "../", "/", "~", ".\\", "..\\")
RELATIVE_HELP = "paths are relative to the spec file's folder"
LISTED = 6  # entries of a folder shown when nothing in it is close to the name


@dataclass(frozen=True)
class PathProblem:
    """Why a path a spec names does not fit: a diagnostic's code, message, label and help."""

    code: str  # E0801 not found | E0803 a folder where a file is expected | E0804 not a model folder
    message: str
    label: str
    help: str


def resolve(text: str, base_dir: Path) -> Path:
    """A path as written (`~` expanded), relative to the spec's folder unless absolute."""
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base_dir / path


def is_hub_id(text: str) -> bool:
    """`name` or `org/name` as the Hugging Face hub spells repository ids."""
    return bool(HUB_ID.match(text)) and ".." not in text and "--" not in text \
        and not text.endswith((".", "-"))


def hf_candidates(source: str, base_dir: Path) -> list[Path]:
    """Where a local `hf` path is looked for: the spec's folder, then the current directory."""
    path = Path(os.path.expanduser(source))
    return [path] if path.is_absolute() else [base_dir / path, Path.cwd() / path]


def hf_folder(source: str, base_dir: Path) -> Path | None:
    """The local model folder (one holding `config.json`) that `source` names, or None."""
    for c in hf_candidates(source, base_dir):
        if c.is_dir() and (c / "config.json").is_file():
            return c.resolve()
    return None


TL_ATTN_ONLY = "tl_attn_only"  # the HF model type causalspec.run.attn_only registers


def is_shortformer_attn_only(model_type: object, positional_embedding_type: object) -> bool:
    """Whether a config (its `model_type` and `positional_embedding_type`) is a TransformerLens
    attention-only model with shortformer positions: the one test behind both refusals of edge
    granularity (E0720 here, before loading; `run.attn_only.edge_granularity_problem` after)."""
    return model_type == TL_ATTN_ONLY and positional_embedding_type == "shortformer"


def shortformer_folder(source: str, base_dir: Path) -> Path | None:
    """The local model folder `source` names when its config.json is a TransformerLens
    attention-only model with shortformer positions (where edge granularity is ambiguous, see
    `causalspec.run.attn_only.edge_granularity_problem`), else None. A config that cannot be
    read is no answer here: loading reports it."""
    folder = hf_folder(source, base_dir)
    if folder is None:
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    # a config without the key loads with AttnOnlyConfig's default, standard positions
    positions = config.get("positional_embedding_type", "standard")
    return folder if is_shortformer_attn_only(config.get("model_type"), positions) else None


def hf_source_is_local(source: str, base_dir: Path) -> bool:
    """Whether `hf "source"` names a local path rather than a hub id (rule in the module docstring)."""
    if source.startswith(LOCAL_PREFIXES) or source in (".", "..") or not is_hub_id(source):
        return True
    if resolve(source, base_dir).exists() or hf_folder(source, base_dir) is not None:
        return True
    org = source.split("/", 1)[0]
    if "/" in source and (base_dir / org).is_dir():
        return True
    return typo_folder(source, base_dir) is not None and not hub_cached(source)


def is_typo_of(name: str, other: str) -> bool:
    """Whether `name` is one typo away from `other`: they differ in case only, by two letters
    swapped (`tyni` for `tiny`), or by one edit (a character inserted, dropped or changed, or two
    neighbours swapped) that does not change the digits — digits tell models apart
    (`pythia-70m`, `pythia-160m`; `attn-only-2l`, `attn-only-4l`) — beyond a letter typed for a
    digit or the reverse (`pythia-7Om`)."""
    if name == other:
        return False
    if name.lower() == other.lower():
        return True
    a, b = name.lower(), other.lower()
    if len(a) >= 4 and sorted(a) == sorted(b) and [c for c in a if c.isdigit()] == [c for c in b if c.isdigit()] \
            and sum(x != y for x, y in zip(a, b)) <= 3:
        return True  # letters swapped further apart (`tyni` for `tiny`), the digits in their order
    if len(a) < 3 or len(b) < 3 or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        if a[i + 1:] == b[i + 1:]:  # one character changed: `O` for `0` is a typo, `4` for `2` another model
            return not (a[i].isdigit() and b[i].isdigit())
        if i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]:
            return not (a[i].isdigit() and a[i + 1].isdigit())  # two neighbours swapped (`12`, `21`: two models)
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return short[i:] == long_[i + 1:] and not long_[i].isdigit()  # one character inserted or dropped


def typo_folder(source: str, base_dir: Path) -> str | None:
    """`source` corrected — each part of it that does not exist replaced by the one folder
    beside it that it is a typo of (`is_typo_of`) — when that names a local model folder (one
    holding config.json, or weights or tokenizer files: a folder being written, whose own name
    would be E0804), next to the spec or under the current directory; else None.
    `hf "modle"` beside `model/` gives "model"; `hf "modles/tiny"` beside `models/tiny/`
    gives "models/tiny"."""
    parts = [p for p in source.split("/") if p]
    if not parts:
        return None
    for root in dict.fromkeys(p for p in (base_dir, Path.cwd()) if not Path(source).is_absolute()):
        fixed, here, changed = [], root, False
        for part in parts:
            if (here / part).exists():
                fixed.append(part)
                here = here / part
                continue
            close = [p for p in _subfolders(here) if is_typo_of(part, p.name)]
            if len(close) != 1:
                break
            fixed.append(close[0].name)
            here, changed = close[0], True
        else:
            if changed and _model_files(here):
                return "/".join(fixed)
    return None


# what tokenizer.save_pretrained writes, one of which a local model folder must hold (run.loading)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")  # the weight files a model folder may hold
# what makes a folder a model folder, or one being written: a typo of its name is a path
MODEL_FILES = ("config.json", *TOKENIZER_FILES)


def _model_files(folder: Path) -> bool:
    """Whether `folder` holds a model's files: config.json, a tokenizer file, or weights."""
    try:
        return folder.is_dir() and any(e.name in MODEL_FILES or e.name.endswith(WEIGHT_SUFFIXES)
                                       for e in folder.iterdir() if e.is_file())
    except OSError:
        return False


def hub_cached(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds anything of the hub model `repo_id` (a hub
    id the user has used is never read as a typo of a folder beside the spec)."""
    return any(folder.name == "models--" + repo_id.replace("/", "--") for folder in cached_hub_folders())


def cached_hub_folders() -> list[Path]:
    """The `models--org--name` folders of the local Hugging Face cache (none when it cannot be read)."""
    try:
        from huggingface_hub import constants

        cache = Path(constants.HF_HUB_CACHE)
        return [f for f in cache.iterdir() if f.name.startswith("models--") and f.is_dir()]
    except Exception:  # noqa: BLE001 - no hub library, no cache, a cache we may not read: nothing cached
        return []


def cached_hub_ids() -> list[str]:
    """The hub ids the local Hugging Face cache holds models of, e.g. `gpt2`, `EleutherAI/pythia-70m`."""
    return sorted(f.name[len("models--"):].replace("--", "/") for f in cached_hub_folders())


def cached_hub_typo(repo_id: str) -> str | None:
    """The cached hub id that `repo_id` (not cached itself) is one typo away from — a typo in
    its org (`EleutherAl/pythia-70m`) or in its name (`gtp2` for `gpt2`), the other part the
    same — or None when no one cached id is that close. A name under another org is no typo:
    `gpt2` and `openai-community/gpt2` are both valid ids."""
    org, _, name = repo_id.rpartition("/")
    close = [cached for cached in cached_hub_ids() if cached != repo_id and _hub_typo(org, name, cached)]
    return close[0] if len(close) == 1 else None


def _hub_typo(org: str, name: str, cached: str) -> bool:
    c_org, _, c_name = cached.rpartition("/")
    if c_name == name:
        return bool(org) and bool(c_org) and is_typo_of(org, c_org)
    return c_org.lower() == org.lower() and is_typo_of(name, c_name)


def file_problem(text: str, base_dir: Path, what: str, missing_help: str = "") -> PathProblem | None:
    """None when `text` names an existing file; else why not (E0801 missing, E0803 a folder).
    `what` starts the message (e.g. "weights file"); `missing_help` is added to a missing
    path's help (e.g. how the file gets made)."""
    path = resolve(text, base_dir)
    if path.is_dir():
        inside = _entries(path, files_only=True)
        listing = f"; it holds {_listing(inside)}" if inside else "; it holds no files"
        return PathProblem(E0803, f"{what} `{text}` is a folder, not a file", f"{path} is a folder",
                           f"name a file inside it{listing}")
    if path.exists():
        return None
    return PathProblem(E0801, f"{what} `{text}` not found", f"looked for {path}",
                       missing_path_help(text, path, missing_help or RELATIVE_HELP))


def hf_folder_problem(source: str, base_dir: Path) -> PathProblem | None:
    """None when `hf "source"` is a hub id or names a model folder; else why not (E0801 a
    missing local path, E0804 a file, or a folder without config.json)."""
    if not source.strip() or not hf_source_is_local(source, base_dir) or hf_folder(source, base_dir):
        return None
    candidates = hf_candidates(source, base_dir)
    found = next((c for c in candidates if c.exists()), None)
    typo = typo_folder(source, base_dir) if found is None and is_hub_id(source) else None
    if typo is not None:
        return PathProblem(E0801, f"local model folder `{source}` not found", f"looked for {candidates[0]}",
                           f"did you mean `{typo}`? (a folder with a model's files; a name one typo away from "
                           "a local model folder is read as a path, never skipped as hub weights not cached; if "
                           f"you meant the hub id `{source}`, download it once, e.g. `hf download {source}`, and "
                           "it is read as a hub id)")
    if found is None:
        return PathProblem(E0801, f"local model folder `{source}` not found", f"looked for {candidates[0]}",
                           missing_path_help(source, candidates[0],
                                             f"{RELATIVE_HELP} or the current directory; a hub id is written "
                                             "`name` or `org/name`, e.g. `gpt2` or `openai-community/gpt2`"))
    if not found.is_dir():
        parent = source.rstrip("/").rsplit("/", 1)[0] if "/" in source.rstrip("/") else "."
        return PathProblem(E0804, f"`{source}` is a file; `hf` takes a model folder", f"{found} is a file",
                           f"name the folder that holds config.json and the weights, e.g. `hf \"{parent}\"`")
    nested = sorted(p.name for p in _subfolders(found) if (p / "config.json").is_file())
    help_ = (f"did you mean `{source.rstrip('/')}/{nested[0]}`? (it holds config.json)" if nested else
             "save the model with `model.save_pretrained(FOLDER)` and the tokenizer with "
             "`tokenizer.save_pretrained(FOLDER)`: they write config.json, the weights and the tokenizer files")
    return PathProblem(E0804, f"`{source}` is not a Hugging Face model folder: it has no config.json",
                       f"no config.json in {found}", help_)


def missing_path_help(text: str, path: Path, rest: str = RELATIVE_HELP) -> str:
    """The help of a missing path: `did you mean …? (rest)`, or `rest` when nothing is close."""
    hint = did_you_mean_path(text, path)
    return f"{hint} ({rest})" if hint else rest


def did_you_mean_path(text: str, path: Path) -> str:
    """A did-you-mean for a missing path: the first component that does not exist, compared
    (difflib) with the names in its parent folder; the whole path with the fix when the
    component appears once in what the user wrote. Empty when nothing is close."""
    missing, parent = path, path.parent
    while not parent.exists() and parent != parent.parent:
        missing, parent = parent, parent.parent
    name = missing.name
    entries = _entries(parent)
    close = closest_name(name, entries)
    if close:
        segments = text.split("/")
        if segments.count(name) == 1:
            segments[segments.index(name)] = close
            return f"did you mean `{'/'.join(segments)}`?"
        return f"did you mean `{close}` (in {parent})?"
    if entries and len(entries) <= LISTED:
        return f"{parent} holds {_listing(entries)}"
    return ""


def closest_name(name: str, entries: list[str]) -> str | None:
    """The entry closest to `name`: difflib's best at 0.6, else one that differs only in case or
    in the order of its letters (`tyni` -> `tiny`, which difflib scores 0.5)."""
    close = difflib.get_close_matches(name, entries, n=1, cutoff=0.6)
    if close:
        return close[0]
    for entry in entries:
        if entry.lower() == name.lower() or (len(name) >= 3 and sorted(entry) == sorted(name)):
            return entry
    return None


def _entries(folder: Path, files_only: bool = False) -> list[str]:
    try:
        return sorted(e.name for e in folder.iterdir() if not files_only or e.is_file())
    except OSError:
        return []


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [e for e in folder.iterdir() if e.is_dir()]
    except OSError:
        return []


def _listing(names: list[str]) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:LISTED])
    return shown + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
