"""Analyse everything outside `model` blocks: networks, encodings, alignments, checks,
circuits and reference datasets, into typed IR for the compile stage.

Why one module for all of them: they refer to each other (an alignment names a model and a
network, its templates are only checkable against that model's variables, a check names an
alignment, a circuit names a dataset), so they are resolved together, in dependency order,
with every problem reported in one pass. Nothing here loads a network, imports torch or
transformers, or runs user Python: files a spec names are only checked to exist and to be
a file (a folder for a local `hf` model, holding config.json) — torch weights included, so
a typo is a located error rather than a check skipped at run time (semantics.paths).

Decisions a reader may look for (docs/language.md states them for users):

* A network that is used (by an alignment or a circuit) must say how high-level inputs
  become network inputs: a torch network needs an `encode` hook — the tool cannot guess
  column order, ids versus one-hot vectors, or dtypes — and an hf network needs a `prompt`
  template or an `encode` hook. A network nobody uses needs neither.
* Prompt placeholders may name any variable of the model (rendered from the base input's
  un-intervened run); answer-template placeholders may name only the aligned output.
* The output decoder defaults to `answer` when the network has an answer template, else
  `decode` when it has a decode hook, else `argmax`.
* Every alignment must say how the output is read (`O -> output`): a check scores it.
* A check without `interchange` is allowed only when it claims `aaa`: it then covers every
  non-empty subset of the aligned variables (each subset from one source).
* `expect control(NAME) …` runs that control even if `controls` does not list it.
* Circuits must name their ablation (there is no neutral default); the metric defaults to
  `accuracy` at `last`, the granularity to `node`. Circuit scores are normalised so that
  higher means the claim holds better: their bounds are `>=`/`>`.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from causalspec.diagnostics import NO_SPAN, DiagnosticSink, Span, did_you_mean
from causalspec.semantics.analyse_model import literal_value
from causalspec.semantics.domains import Domain
from causalspec.semantics.featurizers import Featurizer, Identity, Slice, featurizer_from_ast
from causalspec.semantics.file_access import note_outside
from causalspec.semantics.model import CausalModel
from causalspec.semantics.paths import PathProblem, file_problem, hf_folder_problem, resolve
from causalspec.semantics.shared_directions import warn_shared_directions
from causalspec.semantics.sites import ALL, LAST, PositionResolver, PositionSpec, SiteSpec, site_from_ast
from causalspec.syntax import ast as A

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

DTYPES = ("float32", "float16", "bfloat16", "float64")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16",
                 "bf16": "bfloat16", "fp64": "float64", "double": "float64"}
DEVICES = ("cpu", "cuda", "cuda:N", "mps", "auto")
DEVICE_ALIASES = {"gpu": "cuda", "cuda0": '"cuda:0"', "metal": "mps"}
_DEVICE = re.compile(r"(cpu|cuda|cuda:[0-9]+|mps|auto)\Z")
CLASSES = ("causal_lm", "masked_lm", "base", "sequence_classification")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's strategies
ENGINES = ("torch", "nnsight")  # `backend X` of a network body: torch hooks or nnsight traces
DECODERS = ("argmax", "answer", "decode")
WEIGHTS_HELP = ("paths are relative to the spec file's folder; if a training script writes the weights, "
                "run it before checking")

CHECK_METRICS = ("iia", "aaa", "control")
CONTROLS = ("random_init", "random_subspace", "heldout")
# controls that are random draws, and how many a check takes unless `controls NAME(n=R)` says
DEFAULT_DRAWS = {"random_subspace": 10, "random_init": 3}
MAX_DRAWS = 1000
STATISTICS = ("point", "lower95")
AGGREGATIONS = ("each", "mean")
CHECK_SETTINGS = ("pairs", "seed", "pool", "batch", "train", "steps")
MAX_LOCATE_CELLS = 1024
# Counts that size arrays a check allocates: refused above these, at analysis, rather than
# failing with a MemoryError in the middle of a run.
MAX_SETTING = {"pairs": 10_000_000, "pool": 10_000_000, "batch": 1_000_000, "train": 10_000_000,
               "steps": 10_000_000}
SETTING_UNITS = {"pairs": "counterfactual pairs", "pool": "sampled inputs", "batch": "pairs per forward pass",
                 "train": "training pairs", "steps": "training steps", "seed": "a random seed"}
SETTING_EXAMPLES = {"pairs": 1024, "pool": 256, "batch": 64, "train": 4096, "steps": 200, "seed": 0}
DEFAULT_PAIRS = 1024
DEFAULT_SEED = 0
DEFAULT_BATCH = 64
DEFAULT_CIRCUIT_PROMPTS = 256
MAX_DEFAULT_SUBSET_VARS = 10  # `aaa` without interchange: 2**n - 1 subsets

CIRCUIT_METRICS = {"logit_diff": (2, 2), "logit": (1, 1), "prob": (0, 1), "accuracy": (0, 0)}
CIRCUIT_CLAIMS = {"faithfulness": False, "completeness": False, "necessity": True, "minimality": True}
NODE_PORTS = ("q", "k", "v")
RESERVED_ENDPOINTS = ("logits", "embed")


# ───────────────────────── templates ─────────────────────────

@dataclass(frozen=True)
class Placeholder:
    name: str
    start: int  # offset of `{` in the template's text
    end: int  # offset after `}`


@dataclass(frozen=True)
class RenderedSlot:
    name: str
    occurrence: int  # 1-based, in order of appearance
    start: int  # character offsets in the rendered text
    end: int


@dataclass(frozen=True)
class Rendered:
    text: str
    slots: tuple[RenderedSlot, ...]

    def slot(self, name: str, occurrence: int = 1) -> RenderedSlot:
        for s in self.slots:
            if s.name == name and s.occurrence == occurrence:
                return s
        raise KeyError(f"slot {name!r} occurrence {occurrence} not in the rendered template")


@dataclass(frozen=True)
class Template:
    """A template string split into literal text and `{Slot}` placeholders.

    `{{` and `}}` stand for literal braces. `span` is the string literal's span when it could
    be located exactly (`exact`), else the span of the statement holding it.
    """

    text: str
    parts: tuple[str | Placeholder, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    exact: bool = field(default=False, compare=False, repr=False)

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if isinstance(p, Placeholder))

    def count(self, name: str) -> int:
        return self.placeholders.count(name)

    def span_of(self, ph: Placeholder) -> Span:
        return self.sub_span(ph.start, ph.end)

    def sub_span(self, start: int, end: int) -> Span:
        if not self.exact:
            return self.span
        col = self.span.column + 1  # after the opening quote
        return Span(self.span.file, self.span.line, col + start, self.span.line, col + end)

    def render(self, values: Mapping[str, Any]) -> Rendered:
        """Fill the placeholders (bool as true/false, others with str()); slots keep offsets."""
        out: list[str] = []
        slots: list[RenderedSlot] = []
        seen: dict[str, int] = {}
        pos = 0
        for part in self.parts:
            if isinstance(part, str):
                text = part
            else:
                text = format_template_value(values[part.name])
                seen[part.name] = seen.get(part.name, 0) + 1
                slots.append(RenderedSlot(part.name, seen[part.name], pos, pos + len(text)))
            out.append(text)
            pos += len(text)
        return Rendered("".join(out), tuple(slots))


def format_template_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scan_template(text: str) -> tuple[tuple[str | Placeholder, ...], list[tuple[int, int, str, str]]]:
    """Split a template; errors are (start, end, message, help) by character offset."""
    parts: list[str | Placeholder] = []
    errors: list[tuple[int, int, str, str]] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            buf.append(c)
            i += 2
        elif c == "{":
            j = text.find("}", i + 1)
            if j < 0:
                errors.append((i, n, "unclosed `{` in template", "write `{{` for a literal brace"))
                buf.append(text[i:])
                break
            name = text[i + 1:j]
            if not _IDENT.match(name):
                errors.append((i, j + 1, f"`{{{name}}}` is not a slot: slots are `{{Name}}`",
                               "write `{{` and `}}` for literal braces"))
            else:
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(Placeholder(name, i, j + 1))
            i = j + 1
        elif c == "}":
            errors.append((i, i + 1, "unmatched `}` in template", "write `}}` for a literal brace"))
            buf.append(c)
            i += 1
        else:
            buf.append(c)
            i += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts), errors


@dataclass(frozen=True)
class PromptCase:
    key: Any  # a value of the `by` variable's domain, as written (checked per model)
    template: Template
    span: Span = field(default=NO_SPAN, compare=False, repr=False)  # the key's span


@dataclass(frozen=True)
class PromptIR:
    """One prompt template, or one per value of the variable `by`."""

    by: str | None
    template: Template | None = None
    cases: tuple[PromptCase, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    by_span: Span = field(default=NO_SPAN, compare=False, repr=False)

    def templates(self) -> tuple[Template, ...]:
        return (self.template,) if self.template is not None else tuple(c.template for c in self.cases)

    def select(self, values: Mapping[str, Any]) -> Template:
        """The template for one example's high-level values."""
        if self.by is None:
            return self.template
        key = values[self.by]
        for case in self.cases:
            if case.key == key and type(case.key) is type(key):
                return case.template
        raise KeyError(f"no prompt case for {self.by} = {key!r}")

    def case_name(self, template: Template) -> str:
        for c in self.cases:
            if c.template is template:
                return f"the `{format_template_value(c.key)}` template"
        return "the prompt template"


@dataclass(frozen=True)
class AnswerIR:
    """The answer template and which of its tokens are scored (default: the first)."""

    template: Template
    tokens: str = "first"  # "first" | "last" | "all"
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass
class EncodingIR:
    prompt: PromptIR | None = None
    answer: AnswerIR | None = None
    positions: dict[str, PositionSpec] = field(default_factory=dict)


# ───────────────────────── networks ─────────────────────────

@dataclass(frozen=True)
class HookRef:
    """`"file.py:function"`: the file as written and resolved against the spec's folder.

    Expected signatures (called by the engine, never here): a torch builder `build() ->
    nn.Module`; `encode(inputs: dict[str, list]) -> Tensor | dict[str, Tensor]` (one list of
    high-level values per input variable); `decode(outputs) -> list` (one value per example).
    """

    ref: str
    file: str
    function: str
    path: Path
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass
class NetworkIR:
    """A network declaration. `backend` is "hf" (`source` is the path or hub name, as
    written) or "torch" (`builder` builds the module; `weights` is loaded into it; analysis
    checks that the file exists)."""

    name: str
    backend: str
    source: str
    span: Span
    builder: HookRef | None = None
    weights: str | None = None
    weights_path: Path | None = None
    encode: HookRef | None = None
    decode: HookRef | None = None
    device: str = "auto"  # cuda when available, else cpu
    dtype: str = "float32"
    model_class: str | None = None  # hf only; default causal_lm
    trust_remote_code: bool = False
    device_map: str | None = None  # hf only: from_pretrained(device_map=...) (accelerate); None = not said
    engine: str | None = None  # `backend torch|nnsight`: the engine that runs checks; None = not said
    remote: bool = False  # `backend nnsight remote`: run on NDIF (hf only)
    remote_host: str | None = None  # `backend nnsight remote "https://…"`: a self-hosted NDIF
    remote_span: Span | None = None  # where the spec names `remote_host` (for the check-time refusal)
    encoding: EncodingIR = field(default_factory=EncodingIR)

    @property
    def has_templates(self) -> bool:
        return self.encoding.prompt is not None


# ───────────────────────── alignments ─────────────────────────

@dataclass(frozen=True)
class SiteBinding:
    site: SiteSpec
    positions: tuple[PositionSpec, ...]
    featurizer: Featurizer
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass
class AlignmentIR:
    name: str
    model: str
    network: str
    variables: dict[str, tuple[SiteBinding, ...]]
    output: str
    decoder: str  # "argmax" | "answer" | "decode"
    span: Span = NO_SPAN

    @property
    def learned(self) -> bool:
        return any(b.featurizer.learned for bs in self.variables.values() for b in bs)


# ───────────────────────── checks ─────────────────────────

@dataclass(frozen=True)
class ConditionIR:
    """`metric op threshold modes`: e.g. `iia >= 0.9 lower95 each`.

    statistic: "point" (default) or "lower95" (the lower end of a 95% interval);
    aggregation over interchange sets: "each" (default: every set must meet the bound) or
    "mean" (their mean must). `aaa` is one number already: its aggregation is "mean".
    """

    metric: str
    arg: str | None
    op: str
    threshold: float
    statistic: str = "point"
    aggregation: str = "each"
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


InterchangeSetIR = tuple[tuple[str, ...], ...]  # groups of variables; each group its own source


@dataclass
class CheckIR:
    name: str
    alignment: str
    interchange: tuple[InterchangeSetIR, ...]
    conditions: tuple[ConditionIR, ...]
    pairs: int = DEFAULT_PAIRS
    seed: int = DEFAULT_SEED
    pool: int | None = None  # distinct inputs pairs are drawn from; None: fresh per pair
    batch: int = DEFAULT_BATCH
    controls: tuple[str, ...] = ()
    interchange_default: bool = False  # True: every subset, for an `aaa` check
    span: Span = NO_SPAN
    train: int | None = None  # training pairs per interchange set, for learned featurizers
    steps: int | None = None  # most optimiser steps when training learned featurizers
    locate: tuple[LocateIR, ...] = ()  # localization sweeps (at most one per check)
    seed_given: bool = False  # the spec states `seed` (else DEFAULT_SEED): reports say where the seed came from
    draws: dict[str, int] = field(default_factory=dict)  # `controls NAME(n=R)` as written (see control_draws)

    def control_draws(self, name: str) -> int:
        """How many random draws control `name` takes (1 for a control that draws nothing)."""
        return int(self.draws.get(name, DEFAULT_DRAWS.get(name, 1)))


@dataclass(frozen=True)
class LocateIR:
    """`locate VAR over SITES @ POSITIONS : FEATURIZER`: the cells of a localization sweep.

    `cells[i][j]` is the binding of site i at position j (positions: one column per listed
    position, or a single `all` column). `site_labels`/`position_labels` label the heatmap.
    """

    var: str
    cells: tuple[tuple[SiteBinding, ...], ...]
    site_labels: tuple[str, ...]
    position_labels: tuple[str, ...]
    featurizer: Featurizer
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def flat(self) -> list[SiteBinding]:
        return [b for row in self.cells for b in row]


# ───────────────────────── circuits and datasets ─────────────────────────

@dataclass(frozen=True)
class GroupIR:
    name: str
    nodes: tuple[SiteSpec, ...]
    positions: tuple[PositionSpec, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def heads_only(self) -> bool:
        """Every node is attention heads: `head[L.H]` (or its z/result) or a whole `attn[L]`."""
        return all(n.kind in ("head", "head.z", "head.result", "attn", "attn.out") for n in self.nodes)


@dataclass(frozen=True)
class CircuitEdgeIR:
    src: str  # a group, or `embed`
    dst: str  # a group, or `logits`
    port: str | None = None  # q | k | v of the destination's heads; None: all inputs


@dataclass(frozen=True)
class AblationIR:
    kind: str  # "zero" | "mean" | "resample"
    dataset: str | None = None


@dataclass(frozen=True)
class MetricArg:
    kind: str  # "var" (a model variable rendered by the answer template) | "token" (a string)
    value: str


@dataclass(frozen=True)
class MetricIR:
    name: str  # logit_diff | logit | prob | accuracy
    args: tuple[MetricArg, ...] = ()
    positions: tuple[PositionSpec, ...] = (LAST,)


@dataclass
class CircuitIR:
    name: str
    network: str
    model: str
    output: str
    groups: dict[str, GroupIR]
    edges: tuple[CircuitEdgeIR, ...]
    ablation: AblationIR
    granularity: str  # "node" | "edge"
    metric: MetricIR
    conditions: tuple[ConditionIR, ...]
    span: Span = NO_SPAN
    pairs: int = 256  # prompts the circuit is evaluated on (DEFAULT_CIRCUIT_PROMPTS)
    seed: int = DEFAULT_SEED
    batch: int = DEFAULT_BATCH


@dataclass
class DatasetIR:
    """Reference inputs drawn from `model` (for mean/resample ablation). Without a prompt,
    the inputs are encoded by the network of the circuit that uses the dataset."""

    name: str
    model: str
    prompt: PromptIR | None = None
    pairs: int = DEFAULT_PAIRS  # how many inputs are drawn
    seed: int = DEFAULT_SEED
    span: Span = NO_SPAN


# ───────────────────────── analysis ─────────────────────────

def analyse_bindings(spec: A.Spec, ir, sink: DiagnosticSink, base_dir: Path) -> None:
    """Fill `ir.networks`, `ir.datasets`, `ir.alignments`, `ir.checks`, `ir.circuits`."""
    _Bindings(spec, ir, sink, base_dir).run()


class _Bindings:
    def __init__(self, spec: A.Spec, ir, sink: DiagnosticSink, base_dir: Path):
        self.spec = spec
        self.ir = ir
        self.sink = sink
        self.base_dir = base_dir
        self.model_decls = {it.name.text: it for it in spec.items if isinstance(it, A.Model)}
        self.resolvers: dict[str, PositionResolver] = {}
        self.checked_encodings: set[tuple] = set()
        self.encode_reported: set[str] = set()
        # per alignment: every variable it mentions, its output variable, and whether its
        # variable lines resolved (if not, checks do not report variables as unaligned)
        self.alignment_vars: dict[str, tuple[set[str], str | None, bool]] = {}
        self.prompt_declared: set[str] = set()

    def items(self, kind) -> list:
        return [it for it in self.spec.items if isinstance(it, kind)]

    def run(self) -> None:
        self.network_decls = self._unique(self.items(A.Network), "network")
        self.dataset_decls = self._unique(self.items(A.Dataset), "dataset")
        self.alignment_decls = self._unique(self.items(A.Alignment), "alignment")
        self._unique(self.items(A.Circuit), "circuit")
        for net in self.network_decls.values():
            self.ir.networks[net.name.text] = self._network(net)
        for ds in self.dataset_decls.values():
            out = self._dataset(ds)
            if out is not None:
                self.ir.datasets[out.name] = out
        for al in self.alignment_decls.values():
            out = self._alignment(al)
            if out is not None:
                self.ir.alignments[out.name] = out
        names: dict[str, A.Check] = {}
        for chk in self.items(A.Check):
            out = self._check(chk, names)
            if out is not None:
                self.ir.checks.append(out)
        seen: set[str] = set()
        for circ in self.items(A.Circuit):
            if circ.name.text in seen:
                continue
            seen.add(circ.name.text)
            out = self._circuit(circ)
            if out is not None:
                self.ir.circuits[out.name] = out

    # shared helpers ------------------------------------------------------------------
    def _unique(self, items: list, what: str) -> dict:
        seen: dict = {}
        for it in items:
            if it.name.text in seen:
                self.sink.error("E0201", f"{what} `{it.name.text}` is declared twice", it.name.span,
                                "declared again here", notes=[f"first declared at {seen[it.name.text].name.span}"],
                                help=f"rename one of the two {what}s; names are unique per kind")
            else:
                seen[it.name.text] = it
        return seen

    def _model(self, ref: A.Name) -> CausalModel | None:
        """The analysed model, or None (E0206 if it is not declared; silent if it had errors)."""
        if ref.text not in self.model_decls:
            self.sink.error("E0206", f"unknown model `{ref.text}`", ref.span, "no model of this name",
                            help=did_you_mean(ref.text, self.model_decls, "models"))
            return None
        return self.ir.models.get(ref.text)

    def _network_ref(self, ref: A.Name) -> NetworkIR | None:
        if ref.text not in self.network_decls:
            self.sink.error("E0207", f"unknown network `{ref.text}`", ref.span, "no network of this name",
                            help=did_you_mean(ref.text, self.network_decls) or
                            f"declare it: `network {ref.text} = hf \"…\"`")
            return None
        return self.ir.networks.get(ref.text)

    def _string_span(self, node_span: Span, value: str) -> tuple[Span, bool]:
        """The span of a string literal that ends its statement, when it can be located exactly
        (one line, no escapes in the literal); else the statement's span."""
        plain = all(c not in '"\\' and c.isprintable() for c in value)
        start = node_span.end_column - len(value) - 2
        if plain and node_span.known and node_span.line == node_span.end_line and start >= node_span.column:
            return Span(node_span.file, node_span.line, start, node_span.line, node_span.end_column), True
        return node_span, False

    def _template(self, text: str, span: Span, exact: bool) -> Template | None:
        parts, errors = scan_template(text)
        template = Template(text, parts, span, exact)
        for start, end, message, help_ in errors:
            self.sink.error("E0606", message, template.sub_span(start, end), "malformed template", help=help_)
        return template if not errors else None

    def _prompt(self, decl: A.PromptDecl) -> PromptIR | None:
        if decl.by is None:
            span, exact = self._string_span(decl.span, decl.template)
            t = self._template(decl.template, span, exact)
            if t is not None and not t.placeholders:
                self.sink.warn("W0601", "the prompt has no placeholders: every input renders the same text, "
                               "so no intervention can change what the network reads", span,
                               "no `{…}` placeholder",
                               help='name the model\'s inputs in braces, e.g. `prompt "{a} plus {b} is"`')
            return PromptIR(None, t, span=decl.span) if t is not None else None
        cases = []
        ok = True
        for case in decl.cases:
            t = self._template(case.template, case.span, False)
            if t is None:
                ok = False
                continue
            cases.append(PromptCase(literal_value(case.key), t, case.key.span))
        if not ok:
            return None
        return PromptIR(decl.by.text, None, tuple(cases), span=decl.span, by_span=decl.by.span)

    def _hook(self, ref: str, span: Span, what: str, at_end: bool = True) -> HookRef | None:
        lit_span = self._string_span(span, ref)[0] if at_end else span
        if ":" not in ref:
            self.sink.error("E0610", f"{what} `{ref}` must be written `file.py:function`", lit_span,
                            "missing `:function`", help=f"for example `\"{ref or 'model.py'}:build\"`")
            return None
        file, function = ref.rsplit(":", 1)
        if not _IDENT.match(function):
            self.sink.error("E0610", f"{what} `{ref}`: `{function}` is not a function name", lit_span,
                            "expected `file.py:function`",
                            help="the part after the last `:` must be a Python identifier")
            return None
        if not file.endswith(".py"):
            self.sink.error("E0610", f"{what} `{ref}`: `{file}` is not a Python file", lit_span,
                            "expected a .py file", help="hooks and builders are functions in a .py file")
            return None
        problem = file_problem(file, self.base_dir, f"{what} file")
        if problem is not None:
            self._path_error(problem, lit_span)
            return None
        path = resolve(file, self.base_dir)
        note_outside(self.sink, f"{what} file", file, path, self.base_dir, lit_span)
        return HookRef(ref, file, function, path, span=lit_span)

    def _path_error(self, problem: PathProblem, span: Span) -> None:
        self.sink.error(problem.code, problem.message, span, problem.label, help=problem.help)

    # networks ------------------------------------------------------------------------
    def _network(self, net: A.Network) -> NetworkIR:
        backend = net.backend
        is_torch = isinstance(backend, A.TorchBackend)
        out = NetworkIR(net.name.text, "torch" if is_torch else "hf",
                        backend.builder if is_torch else backend.path, net.span)
        if is_torch:
            out.builder = self._hook(backend.builder, backend.span, "torch builder", at_end=False)
            out.weights = backend.weights
            out.weights_path = resolve(backend.weights, self.base_dir)
            problem = file_problem(backend.weights, self.base_dir, "weights file", WEIGHTS_HELP)
            if problem is not None:
                self._path_error(problem, self._string_span(backend.span, backend.weights)[0])
            else:
                note_outside(self.sink, "torch weights", backend.weights, out.weights_path, self.base_dir,
                             self._string_span(backend.span, backend.weights)[0])
        else:
            out.model_class = "causal_lm"
            if not backend.path.strip():
                self.sink.error("E0610", "empty hf model path", backend.span, "empty",
                                help='name a local folder or a hub id, e.g. `hf "gpt2"`')
            problem = hf_folder_problem(backend.path, self.base_dir)
            if problem is not None:
                self._path_error(problem, self._string_span(backend.span, backend.path)[0])
            elif backend.path.strip():
                self._hf_folder_outside(backend)
        given: dict[str, A.Node] = {}
        positions: dict[str, A.PositionDecl] = {}
        for stmt in net.body:
            key = self._stmt_key(stmt)
            if key is not None:
                if key in given:
                    self.sink.error("E0610", f"`{key}` is given twice in network `{out.name}`", stmt.span,
                                    "given again", notes=[f"first given at {given[key].span}"],
                                    help=f"keep one `{key}` line")
                    continue
                given[key] = stmt
            if isinstance(stmt, A.HookStmt):
                hook = self._hook(stmt.ref, stmt.span, f"{stmt.kind} hook")
                setattr(out, stmt.kind, hook)
            elif isinstance(stmt, A.OptionStmt):
                self._option(out, stmt, is_torch)
            elif isinstance(stmt, A.FlagStmt):
                if is_torch:
                    self.sink.error("E0610", "`trust_remote_code` applies to hf networks only", stmt.span,
                                    "not an hf network", help="a torch network's code is its builder file")
                else:
                    out.trust_remote_code = True
            elif isinstance(stmt, A.EngineStmt):
                self._engine(out, stmt, is_torch)
            elif isinstance(stmt, (A.PromptDecl, A.AnswerDecl)):
                if is_torch:
                    what = "prompt" if isinstance(stmt, A.PromptDecl) else "answer"
                    self.sink.error("E0610", f"a torch network has no tokenizer: `{what}` templates need an "
                                    "hf network", stmt.span, "not allowed on a torch network",
                                    help="a torch network's inputs come from its `encode` hook")
                elif isinstance(stmt, A.PromptDecl):
                    out.encoding.prompt = self._prompt(stmt)
                else:
                    span, exact = self._string_span(stmt.span, stmt.template) if stmt.tokens is None \
                        else (stmt.span, False)
                    t = self._template(stmt.template, span, exact)
                    if t is not None:
                        out.encoding.answer = AnswerIR(t, stmt.tokens or "first", stmt.span)
            elif isinstance(stmt, A.PositionDecl):
                name = stmt.name
                if name.text in ("last", "all"):
                    self.sink.error("E0201", f"`{name.text}` is a built-in position and cannot be redeclared",
                                    name.span, "built-in", help="choose another name")
                elif name.text in positions:
                    self.sink.error("E0201", f"position `{name.text}` is declared twice in network `{out.name}`",
                                    name.span, "declared again here",
                                    notes=[f"first declared at {positions[name.text].name.span}"],
                                    help="rename one of the two positions")
                else:
                    positions[name.text] = stmt
        if not is_torch and "prompt" in given and "encode" in given:
            self.sink.error("E0610", f"network `{out.name}` has both a prompt template and an encode hook",
                            given["encode"].span, "choose one",
                            help="the encode hook turns high-level inputs into model inputs itself; "
                                 "remove it to use the prompt template")
        if "device" in given and "device_map" in given and out.device_map is not None:
            self.sink.error("E0610", f"network `{out.name}` has both `device` and `device_map`",
                            given["device"].span, "choose one",
                            help="with `device_map` accelerate places the layers itself and `device` "
                                 "would be ignored: remove one of them")
        if "prompt" in given:
            self.prompt_declared.add(out.name)  # even if its template had errors: no cascades
        resolver = PositionResolver(positions, self.sink, templates="prompt" in given, torch_network=is_torch,
                                    network=out.name)
        self.resolvers[out.name] = resolver
        for name in positions:
            spec = resolver.declaration(name)
            if spec is not None:
                out.encoding.positions[name] = spec
                self._check_slots(out, spec)
        return out

    @staticmethod
    def _stmt_key(stmt) -> str | None:
        if isinstance(stmt, A.HookStmt):
            return stmt.kind
        if isinstance(stmt, A.OptionStmt):
            return stmt.key
        if isinstance(stmt, A.FlagStmt):
            return stmt.flag
        if isinstance(stmt, A.EngineStmt):
            return "backend"
        if isinstance(stmt, A.PromptDecl):
            return "prompt"
        if isinstance(stmt, A.AnswerDecl):
            return "answer"
        return None

    def _option(self, out: NetworkIR, stmt: A.OptionStmt, is_torch: bool) -> None:
        value = stmt.value
        if stmt.key == "dtype":
            if value in DTYPES:
                out.dtype = value
            else:
                hint = f"did you mean `{DTYPE_ALIASES[value]}`?" if value in DTYPE_ALIASES else \
                    did_you_mean(value, DTYPES)
                self.sink.error("E0610", f"unknown dtype `{value}`", stmt.span, "not a dtype",
                                help=hint or f"dtypes are {', '.join(DTYPES)}")
        elif stmt.key == "device":
            if _DEVICE.match(value):
                out.device = value
            else:
                hint = f"did you mean `{DEVICE_ALIASES[value]}`?" if value in DEVICE_ALIASES else \
                    did_you_mean(value, DEVICES[:2] + DEVICES[3:])
                self.sink.error("E0610", f"unknown device `{value}`", stmt.span, "not a device",
                                help=hint or
                                'devices are cpu, cuda, "cuda:N", mps and auto')
        elif stmt.key == "class":
            if is_torch:
                self.sink.error("E0610", "`class` applies to hf networks only", stmt.span, "not an hf network",
                                help="a torch network's module comes from its builder")
            elif value in CLASSES:
                out.model_class = value
            else:
                self.sink.error("E0610", f"unknown model class `{value}`", stmt.span, "not a model class",
                                help=did_you_mean(value, CLASSES) or f"classes are {', '.join(CLASSES)}")
        elif stmt.key == "device_map":
            if is_torch:
                self.sink.error("E0610", "`device_map` applies to hf networks only", stmt.span,
                                "not an hf network", help="a torch network is placed whole with `device`")
            elif value in DEVICE_MAPS:
                out.device_map = value
            else:
                one_device = "; to put the whole model on one device write `device …` instead" \
                    if _DEVICE.match(value) else ""
                self.sink.error("E0610", f"unknown device_map `{value}`", stmt.span, "not a device_map strategy",
                                help=did_you_mean(value, DEVICE_MAPS) or
                                f"device_map strategies are {', '.join(DEVICE_MAPS)}{one_device}")

    def _hf_folder_outside(self, backend: A.HFBackend) -> None:
        """An hf network read from a local folder outside the spec's folder: warn (E0807). The
        folder is found as the loader finds it (run.loading.local_hf_path); a hub id is no folder."""
        written = os.path.expanduser(backend.path)
        candidates = [Path(written)] if Path(written).is_absolute() else [self.base_dir / written,
                                                                           Path.cwd() / written]
        for folder in candidates:
            if folder.is_dir() and (folder / "config.json").is_file():
                note_outside(self.sink, "hf model folder", backend.path, folder, self.base_dir,
                             self._string_span(backend.span, backend.path)[0])
                return

    def _engine(self, out: NetworkIR, stmt: A.EngineStmt, is_torch: bool) -> None:
        """`backend torch|nnsight [remote ["https://host"]]`: which engine runs the checks, and
        whether on NDIF; one diagnostic per statement."""
        engine = stmt.engine.text
        if engine not in ENGINES:
            self.sink.error("E0610", f"unknown engine `{engine}`", stmt.engine.span, "not an engine",
                            help=did_you_mean(engine, ENGINES) or
                            "engines are torch (hooks) and nnsight (traces; `backend nnsight remote` runs on NDIF)")
            return
        if stmt.remote and engine != "nnsight":
            self.sink.error("E0610", f"`remote` needs the nnsight engine, not `{engine}`", stmt.span,
                            "not an nnsight engine", help="write `backend nnsight remote`")
            return
        if stmt.remote and is_torch:
            self.sink.error("E0610", "`remote` needs an hf network", stmt.span, "not an hf network",
                            help="NDIF runs hub models; a torch network's module is built locally: "
                                 "drop `remote` or declare the network `hf \"<hub id>\"`")
            return
        if stmt.host is not None and not stmt.host.startswith(("http://", "https://")):
            self.sink.error("E0610", f"NDIF host `{stmt.host}` is not an http(s) URL",
                            self._string_span(stmt.span, stmt.host)[0], "not a URL",
                            help='write the full address, e.g. `remote "https://ndif.example.org"`')
            return
        out.engine = engine
        out.remote = stmt.remote
        out.remote_host = stmt.host
        if stmt.host is not None:
            out.remote_span = self._string_span(stmt.span, stmt.host)[0]
            self._remote_host_warning(out, out.remote_span)

    def _remote_host_warning(self, out: NetworkIR, span: Span) -> None:
        """A spec-named host the user has not allowed: warn now (the check refuses it; see
        causalspec.remote_hosts). Advisory: `--remote URL` on the command line also allows it."""
        from causalspec.remote_hosts import how_to_allow, refuse_reason

        if refuse_reason(out.remote_host, f"network `{out.name}`") is None:
            return
        self.sink.warn("E0808", f"network `{out.name}` names the remote host `{out.remote_host}`, which you have "
                       "not allowed; its checks will be refused (your NDIF API key would be sent there)", span,
                       "host named by the spec", help=how_to_allow(out.remote_host))

    def _check_slots(self, net: NetworkIR, slot: PositionSpec) -> None:
        """A declared `slot(S, k)` must find k occurrences of `{S}` in every prompt template."""
        prompt = net.encoding.prompt
        if prompt is None or slot.kind != "slot":
            return  # an offset's base is a declared position, checked at its own declaration
        templates = prompt.templates()
        everywhere = {p for t in templates for p in t.placeholders}
        if slot.slot not in everywhere:
            self.sink.error("E0611", f"slot `{slot.slot}` is not a placeholder of network `{net.name}`'s prompt",
                            slot.span, "no such placeholder",
                            help=did_you_mean(slot.slot, everywhere) or
                            f"placeholders are {_names(sorted(everywhere)) or 'none'}")
            return
        short = [(prompt.case_name(t), t.count(slot.slot)) for t in templates if t.count(slot.slot) < slot.occurrence]
        if short:
            counts = "; ".join(f"{n} has {c}" for n, c in short)
            self.sink.error("E0611", f"`slot({slot.slot}, {slot.occurrence})` needs {slot.occurrence} occurrence(s) "
                            f"of `{{{slot.slot}}}` in every prompt template: {counts}", slot.span,
                            "not in every template", help="occurrences count from 1 within one template")

    # encodings against a model ---------------------------------------------------------
    def _check_prompt(self, prompt: PromptIR, model: CausalModel, owner: str) -> None:
        """Placeholders name variables of `model`; `by` cases are its values, every one."""
        variables = model.variables
        for t in prompt.templates():
            for part in t.parts:
                if isinstance(part, Placeholder) and part.name not in variables:
                    self.sink.error("E0606", f"template of {owner} refers to `{{{part.name}}}`, which is not a "
                                    f"variable of model `{model.name}`", t.span_of(part), "unknown slot",
                                    help=did_you_mean(part.name, variables) or
                                    f"variables are {_names(model.order)}")
        if prompt.by is None:
            return
        var = variables.get(prompt.by)
        if var is None:
            self.sink.error("E0203", f"`prompt by {prompt.by}`: `{prompt.by}` is not a variable of model "
                            f"`{model.name}`", prompt.by_span, "unknown variable",
                            help=did_you_mean(prompt.by, variables, "variables"))
            return
        dom = var.domain
        covered: dict[Any, Span] = {}
        outside = False
        for case in prompt.cases:
            member = dom.lookup(case.key)
            if member is None:
                self.sink.error("E0303", f"{_show(case.key)} is not a value of `{prompt.by}` ({dom.describe()})",
                                case.span, "outside the domain", help=_suggest(case.key, dom))
                outside = True
                continue
            if member in covered:
                self.sink.error("E0201", f"prompt case {_show(member)} is given twice", case.span,
                                "given again", notes=[f"first given at {covered[member]}"],
                                help="give each value one template; delete the second case")
                continue
            covered[member] = case.span
        missing = [v for v in dom.values if v not in covered]
        if missing and not outside:  # a key outside the domain is usually a misspelt missing one
            shown = ", ".join(_show(v) for v in missing[:10]) + (f", … ({len(missing)} in all)"
                                                                if len(missing) > 10 else "")
            self.sink.error("E0607", f"`prompt by {prompt.by}` has no template for {shown}", prompt.by_span,
                            "cases do not cover the domain",
                            help=f"every value of `{prompt.by}` ({dom.describe()}) needs a template")

    def _check_network_for(self, net: NetworkIR, model: CausalModel, user: str, user_span: Span) -> None:
        """Network encodings against a model that uses them (each pair checked once)."""
        key = (net.name, model.name)
        if key not in self.checked_encodings:
            self.checked_encodings.add(key)
            if net.encoding.prompt is not None:
                self._check_prompt(net.encoding.prompt, model, f"network `{net.name}`")
        if net.name in self.encode_reported:
            return
        if net.backend == "torch" and net.encode is None:
            self.encode_reported.add(net.name)
            self.sink.error("E0610", f"torch network `{net.name}` needs an `encode` hook", self.network_decls[
                net.name].name.span, "no encode hook",
                notes=[f"used by {user} at {user_span}"],
                help="the tool cannot guess how high-level inputs become tensors (column order, ids or "
                     "one-hot, dtype): add `{ encode \"file.py:encode\" }`")
        elif net.backend == "hf" and net.encode is None and net.name not in self.prompt_declared:
            self.encode_reported.add(net.name)
            self.sink.error("E0610", f"hf network `{net.name}` needs a prompt template or an `encode` hook",
                            self.network_decls[net.name].name.span, "no way to build inputs",
                            notes=[f"used by {user} at {user_span}"],
                            help="add `prompt \"… {Var} …\"` to the network")

    def _check_answer(self, net: NetworkIR, model: CausalModel, output: str, where: Span) -> None:
        answer = net.encoding.answer
        if answer is None or (net.name, model.name, output) in self.checked_encodings:
            return
        self.checked_encodings.add((net.name, model.name, output))
        t = answer.template
        ok = True
        for part in t.parts:
            if isinstance(part, Placeholder) and part.name != output:
                what = "a variable" if part.name in model.variables else "not a variable"
                self.sink.error("E0606", f"answer template of network `{net.name}` refers to `{{{part.name}}}` "
                                f"({what} of `{model.name}`); it may only use the output `{{{output}}}`",
                                t.span_of(part), "not the aligned output",
                                help=did_you_mean(part.name, [output]) or
                                f"the answer is rendered from the expected value of `{output}`")
                ok = False
        if ok and output not in t.placeholders:
            self.sink.error("E0606", f"answer template of network `{net.name}` does not mention the output "
                            f"`{{{output}}}`", t.span, "constant answer",
                            help=f"write e.g. `answer \" {{{output}}}\"`", notes=[f"output aligned at {where}"])

    # datasets ----------------------------------------------------------------------------
    def _dataset(self, ds: A.Dataset) -> DatasetIR | None:
        model = self._model(ds.model)
        out = DatasetIR(ds.name.text, ds.model.text, span=ds.span)
        given: dict[str, A.Node] = {}
        for stmt in ds.body:
            key = "prompt" if isinstance(stmt, A.PromptDecl) else stmt.key
            if key in given:
                code = "E0704" if isinstance(stmt, A.Setting) else "E0201"
                self.sink.error(code, f"`{key}` is given twice in dataset `{out.name}`", stmt.span, "given again",
                                notes=[f"first given at {given[key].span}"], help=f"keep one `{key}` line")
                continue
            given[key] = stmt
            if isinstance(stmt, A.PromptDecl):
                out.prompt = self._prompt(stmt)
                if out.prompt is not None and model is not None:
                    self._check_prompt(out.prompt, model, f"dataset `{out.name}`")
            elif stmt.key in ("pool", "batch", "train", "steps"):
                self.sink.error("E0704", f"`{stmt.key}` is a check setting; a dataset takes `pairs` and `seed`",
                                stmt.span, "not a dataset setting",
                                help=f"move `{stmt.key}` to the circuit or check that uses it")
            elif stmt.key == "pairs":
                if stmt.value < 1:
                    self.sink.error("E0704", "a dataset needs `pairs` >= 1", stmt.span, "must be >= 1",
                                    help="write a positive number of prompts, e.g. `pairs 256`")
                out.pairs = stmt.value
            else:
                out.seed = stmt.value
        return out if ds.model.text in self.model_decls else None

    # alignments ----------------------------------------------------------------------------
    def _alignment(self, al: A.Alignment) -> AlignmentIR | None:
        model = self._model(al.model)
        net = self._network_ref(al.network)
        resolver = self.resolvers.get(al.network.text)
        variables: dict[str, tuple[SiteBinding, ...]] = {}
        first: dict[str, A.Name] = {}
        output: A.OutputAlignment | None = None
        decoder: str | None = None
        ok = True
        vars_ok = True
        output_tried = False
        for stmt in al.body:
            name = stmt.var
            if isinstance(stmt, A.OutputAlignment) or (model is not None and name.text in model.variables
                                                       and model.variables[name.text].kind == "output"):
                output_tried = True
            if name.text in first:
                self.sink.error("E0608", f"`{name.text}` is aligned twice in `{al.name.text}`", name.span,
                                "aligned again", notes=[f"first aligned at {first[name.text].span}"],
                                help="list several sites in one line: `V -> site1, site2`")
                ok = vars_ok = False
                continue
            first[name.text] = name
            var = model.variables.get(name.text) if model is not None else None
            if model is not None and var is None:
                self.sink.error("E0203", f"unknown variable `{name.text}` in alignment `{al.name.text}`", name.span,
                                f"not in model `{model.name}`", help=did_you_mean(name.text, model.variables, "variables"))
                ok = vars_ok = False
                continue
            if isinstance(stmt, A.OutputAlignment):
                if var is not None and var.kind != "output":
                    self.sink.error("E0609", f"`{name.text}` is {_a(var.kind)}: only output variables are read "
                                    "from the network's output", name.span, "not an output",
                                    help=f"align `{name.text}` to a site instead: `{name.text} -> resid.post[L]`")
                    ok = False
                    continue
                if output is not None:
                    self.sink.error("E0609", f"alignment `{al.name.text}` reads two outputs (`{output.var.text}` "
                                    f"and `{name.text}`)", name.span, "second output",
                                    help="one alignment scores one output; write a second alignment for the other")
                    ok = False
                    continue
                output = stmt
                decoder = self._decoder(stmt, net)
                ok &= decoder is not None
                continue
            if var is not None and var.kind == "output":
                self.sink.error("E0609", f"`{name.text}` is the model's output: it is read from the network's "
                                "output, not from a site", name.span, "output aligned to a site",
                                help=f"write `{name.text} -> output`")
                ok = False
                continue
            bindings = []
            for ref in stmt.sites:
                b = self._site_binding(ref, resolver)
                if b is None:
                    ok = False
                else:
                    bindings.append(b)
            if len(bindings) == len(stmt.sites):
                variables[name.text] = tuple(bindings)
        ok &= self._disjoint(variables)
        warn_shared_directions(variables, self.sink)  # E0613: fixed bases that are not orthogonal
        out_var = next((s.var.text for s in al.body if isinstance(s, A.OutputAlignment)), None)
        self.alignment_vars[al.name.text] = ({s.var.text for s in al.body}, out_var, vars_ok and model is not None)
        if model is not None and not output_tried:
            outs = model.outputs
            self.sink.error("E0609", f"alignment `{al.name.text}` does not say how to read the output",
                            al.name.span, "no `-> output` line",
                            help=f"add `{outs[0] if outs else 'O'} -> output`: checks score the network's output")
            ok = False
        if model is not None and net is not None:
            self._check_network_for(net, model, f"alignment `{al.name.text}`", al.span)
            if output is not None and decoder == "answer":
                self._check_answer(net, model, output.var.text, output.span)
        if not ok or model is None or net is None or output is None:
            return None
        return AlignmentIR(al.name.text, model.name, net.name, variables, output.var.text, decoder, al.span)

    def _decoder(self, stmt: A.OutputAlignment, net: NetworkIR | None) -> str | None:
        if stmt.decoder is None:
            if net is None:
                return "argmax"
            if net.encoding.answer is not None:
                return "answer"
            return "decode" if net.decode is not None else "argmax"
        name = stmt.decoder.text
        if name not in DECODERS:
            self.sink.error("E0609", f"unknown output decoder `{name}`", stmt.decoder.span, "not a decoder",
                            help=did_you_mean(name, DECODERS) or
                            "decoders are `argmax` (class index), `answer` (the answer template's tokens) and "
                            "`decode` (the network's decode hook)")
            return None
        if net is not None and name == "answer" and net.encoding.answer is None:
            self.sink.error("E0609", f"decoder `answer` needs an answer template in network `{net.name}`",
                            stmt.decoder.span, "no answer template",
                            help=f"add `answer \" {{{stmt.var.text}}}\"` to the network, or use `argmax`")
            return None
        if net is not None and name == "decode" and net.decode is None:
            self.sink.error("E0609", f"decoder `decode` needs a decode hook in network `{net.name}`",
                            stmt.decoder.span, "no decode hook",
                            help="add `decode \"file.py:decode\"` to the network, or use `argmax`")
            return None
        return name

    def _site_binding(self, ref: A.SiteRef, resolver: PositionResolver | None) -> SiteBinding | None:
        site = site_from_ast(ref.site, self.sink)
        positions: tuple[PositionSpec, ...] | None = (ALL,)
        if resolver is not None:
            positions = resolver.site_positions(ref.positions)
        feat = featurizer_from_ast(ref.featurizer, self.sink, self.base_dir)
        if site is not None and feat is not None and site.kind == "logits" and feat.learned:
            self.sink.error("E0612", f"`{feat.kind}` cannot be learned on `logits`", ref.featurizer.span,
                            "learned featurizer on the output",
                            help="the logits are what is scored; patch them whole or by a slice `[a:b]`")
            return None
        if site is None or feat is None or positions is None:
            return None
        return SiteBinding(site, positions, feat, ref.span)

    def _disjoint(self, variables: dict[str, tuple[SiteBinding, ...]]) -> bool:
        """Two variables may not share coordinates of one site (the map must be a partition)."""
        ok = True
        seen: list[tuple[str, SiteBinding]] = []
        for name, bindings in variables.items():
            for b in bindings:
                for other, ob in seen:
                    if other != name and _overlap(b, ob):
                        self.sink.error("E0608", f"`{name}` and `{other}` are aligned to overlapping coordinates "
                                        f"of `{b.site}`", b.span, "overlaps another variable",
                                        notes=[f"`{other}` is aligned at {ob.span}"],
                                        help="an intervention on one would move the other; use disjoint slices")
                        ok = False
                seen.append((name, b))
        return ok

    # checks ----------------------------------------------------------------------------------
    def _check(self, chk: A.Check, names: dict[str, A.Check]) -> CheckIR | None:
        name_node = chk.name or chk.target
        name = name_node.text
        if name in names:
            self.sink.error("E0705", f"two checks are named `{name}`", name_node.span, "name taken",
                            notes=[f"the first is at {names[name].span}"],
                            help=f"name this one: `check {chk.target.text} as {chk.target.text}_2 {{ … }}`")
        else:
            names[name] = chk
        target = chk.target.text
        alignment = self.ir.alignments.get(target)
        if target not in self.alignment_decls:
            self.sink.error("E0208", f"unknown alignment `{target}`", chk.target.span, "no alignment of this name",
                            help=did_you_mean(target, self.alignment_decls, "alignments"))
        ok = True
        settings: dict[str, A.Setting] = {}
        sets: list[InterchangeSetIR] = []
        set_keys: dict[frozenset, A.InterchangeSet] = {}
        controls: list[str] = []
        draws: dict[str, int] = {}
        conditions: list[ConditionIR] = []
        interchanges = [s for s in chk.body if isinstance(s, A.Interchange)]
        expects = [s for s in chk.body if isinstance(s, A.Expect)]
        locates: list[LocateIR] = []
        for stmt in chk.body:
            if isinstance(stmt, A.Locate):
                if locates:
                    self.sink.error("E0711", "a check sweeps one variable: this is a second `locate`", stmt.span,
                                    "second locate", help="write one check per located variable")
                    ok = False
                    continue
                got = self._locate(stmt, alignment) if alignment is not None else None
                if got is None:
                    ok = False
                else:
                    locates.append(got)
        located = {s.var.text for s in chk.body if isinstance(s, A.Locate)}  # even if the sweep was bad
        for stmt in chk.body:
            if isinstance(stmt, A.Setting):
                ok &= self._setting(stmt, settings)
            elif isinstance(stmt, A.Interchange):
                for iset in stmt.sets:
                    got = self._interchange_set(iset, target, located)
                    if got is None:
                        ok = False
                        continue
                    key = frozenset(frozenset(g) for g in got)
                    if key in set_keys:
                        self.sink.error("E0201", "this interchange set is listed twice", iset.span, "listed again",
                                        notes=[f"first listed at {set_keys[key].span}"],
                                        help="delete the second copy of the set")
                        ok = False
                        continue
                    set_keys[key] = iset
                    sets.append(got)
            elif isinstance(stmt, A.Controls):
                for i, c in enumerate(stmt.names):
                    args = stmt.args_of(i)
                    if c.text in CONTROLS and args is not None:
                        n = self._control_draws(c, args)
                        if n is None:
                            ok = False
                        else:
                            draws[c.text] = n
                    if c.text not in CONTROLS:
                        self.sink.error("E0707", f"unknown control `{c.text}`", c.span, "not a control",
                                        help=did_you_mean(c.text, CONTROLS) or
                                        f"controls are {', '.join(CONTROLS)}")
                        ok = False
                    elif c.text in controls:
                        self.sink.error("E0707", f"control `{c.text}` is listed twice", c.span, "listed again",
                                        help=f"list `{c.text}` once")
                        ok = False
                    else:
                        controls.append(c.text)
            elif isinstance(stmt, A.Expect):
                for cond in stmt.conditions:
                    got = self._check_condition(cond)
                    if got is None:
                        ok = False
                    else:
                        conditions.append(got)
        for cond in conditions:
            if cond.metric == "control" and cond.arg not in controls:
                controls.append(cond.arg)
        claims_aaa = any(c.metric == "aaa" for c in conditions)
        default = False
        if not expects:
            self.sink.error("E0708", f"check `{name}` has no `expect`: it can never fail", name_node.span,
                            "nothing is claimed", help="add e.g. `expect iia >= 0.9`")
            ok = False
        if not interchanges:
            if claims_aaa and all(c.metric != "iia" for c in conditions):
                if alignment is not None:
                    got = self._all_subsets(alignment, name_node)
                    if got is None:
                        ok = False
                    else:
                        sets, default = got, True
            elif expects:
                self.sink.error("E0708", f"check `{name}` has no `interchange`: nothing is intervened on",
                                name_node.span, "no interchange",
                                help="add e.g. `interchange X` (or claim `aaa`, which covers every subset)")
                ok = False
        if not ok or alignment is None:
            return None
        value = {k: s.value for k, s in settings.items()}
        return CheckIR(name, target, tuple(sets), tuple(conditions), value.get("pairs", DEFAULT_PAIRS),
                       value.get("seed", DEFAULT_SEED), value.get("pool"), value.get("batch", DEFAULT_BATCH),
                       tuple(controls), default, chk.span, value.get("train"), value.get("steps"), tuple(locates),
                       seed_given="seed" in value, draws=draws)

    def _control_draws(self, name: A.Name, args: tuple) -> int | None:
        """`random_subspace(n=20)` -> 20; a bad argument is E0712 (None)."""
        control = name.text
        if control not in DEFAULT_DRAWS:
            self.sink.error("E0712", f"control `{control}` takes no arguments: it draws nothing at random",
                            name.span, "no arguments", help=f"write `{control}`")
            return None
        if len(args) != 1 or args[0].key not in (None, "n"):
            where = args[0].span if args else name.span
            self.sink.error("E0712", f"control `{control}` takes one argument, `n` (the number of random draws)",
                            where, "not `n=…`", help=f"write `{control}(n={DEFAULT_DRAWS[control]})`")
            return None
        arg = args[0]
        if arg.kind != "number" or not isinstance(arg.value, int) or not 1 <= arg.value <= MAX_DRAWS:
            self.sink.error("E0712", f"`n` of control `{control}` must be a whole number from 1 to {MAX_DRAWS}, "
                            f"got {arg.value}", arg.span, "not a number of draws",
                            help=f"e.g. `{control}(n={DEFAULT_DRAWS[control]})` (the default)")
            return None
        return int(arg.value)

    def _locate(self, stmt: A.Locate, alignment: AlignmentIR) -> LocateIR | None:
        """Expand a sweep into cells (sites x positions), each validated like an alignment site."""
        var = stmt.var.text
        model = self.ir.models.get(alignment.model)
        if model is not None and var not in model.variables:
            self.sink.error("E0203", f"unknown variable `{var}` in `locate`", stmt.var.span,
                            f"not a variable of model `{model.name}`", help=did_you_mean(var, model.variables, "variables"))
            return None
        if var == alignment.output:
            self.sink.error("E0703", f"`{var}` is the output of `{alignment.name}`: it is scored, not located",
                            stmt.var.span, "the output",
                            help="locate an intermediate variable; the output is read from the network's output")
            return None
        positions = [None] if stmt.positions is None else [(p,) for p in stmt.positions]
        size = sweep_size(stmt.site)  # counted before anything is built
        sites = _expand_sweep(stmt.site) if isinstance(size, int) and size * len(positions) <= MAX_LOCATE_CELLS \
            else size
        if isinstance(sites, str):
            self.sink.error("E0711", sites, stmt.site.span, "cannot expand this sweep",
                            help='write ranges as `resid.post[0..11]` and module patterns as "layers.{0..2}"')
            return None
        if isinstance(sites, int):
            self.sink.error("E0711", f"the sweep has {sites * len(positions):,} cells (at most {MAX_LOCATE_CELLS})",
                            stmt.span, "too many cells",
                            help="sweep fewer layers, heads or positions, e.g. `resid.post[0..11]`; "
                                 "run one `locate` per region of the network")
            return None
        resolver = self.resolvers.get(alignment.network)
        rows = []
        ok = True
        for site in sites:
            row = []
            for pos in positions:
                ref = A.SiteRef(site, pos, False, stmt.featurizer, span=stmt.span)
                got = self._site_binding(ref, resolver)
                if got is None:
                    ok = False
                    break
                row.append(got)
            if not ok:
                break
            rows.append(tuple(row))
        if not ok:
            return None
        feat = rows[0][0].featurizer
        site_labels = tuple(str(r[0].site) for r in rows)
        pos_labels = tuple("all" if p is None else ", ".join(b.label for b in cell.positions)
                           for p, cell in zip(positions, rows[0]))
        return LocateIR(var, tuple(rows), site_labels, pos_labels, feat, stmt.span)

    def _setting(self, stmt: A.Setting, settings: dict[str, A.Setting]) -> bool:
        if stmt.key in settings:
            self.sink.error("E0704", f"`{stmt.key}` is given twice", stmt.span, "given again",
                            notes=[f"first given at {settings[stmt.key].span}"],
                            help=f"keep one `{stmt.key}` line")
            return False
        settings[stmt.key] = stmt
        if stmt.key in ("pairs", "pool", "batch", "train", "steps") and stmt.value < 1:
            self.sink.error("E0704", f"`{stmt.key}` must be at least 1, got {stmt.value}", stmt.span, "must be >= 1",
                            help=f"`{stmt.key}` counts {SETTING_UNITS[stmt.key]}; write a positive number, "
                                 f"e.g. `{stmt.key} {SETTING_EXAMPLES[stmt.key]}`")
            return False
        if stmt.key in MAX_SETTING and stmt.value > MAX_SETTING[stmt.key]:
            self.sink.error("E0704", f"`{stmt.key} {stmt.value:,}` is more than the at most {MAX_SETTING[stmt.key]:,} "
                            f"{SETTING_UNITS[stmt.key]} a check can hold in memory", stmt.span, "too large",
                            help=f"use fewer, e.g. `{stmt.key} {SETTING_EXAMPLES[stmt.key]}`; a confidence "
                                 "interval narrows with the square root of the pairs")
            return False
        return True

    def _interchange_set(self, iset: A.InterchangeSet, target: str,
                         located: set[str] = frozenset()) -> InterchangeSetIR | None:
        mentioned, out_var, reliable = self.alignment_vars.get(target, (None, None, False))
        if mentioned is not None and located:
            mentioned = set(mentioned) | set(located)
        seen: set[str] = set()
        groups = []
        ok = True
        for group in iset.groups:
            names = []
            for n in group:
                if n.text in seen:
                    self.sink.error("E0201", f"`{n.text}` appears twice in one interchange set", n.span,
                                    "listed again", help="each variable takes its value from one source")
                    ok = False
                    continue
                seen.add(n.text)
                names.append(n.text)
                if not reliable:
                    continue  # unknown alignment or unresolved variable lines: reported already
                if n.text == out_var:
                    self.sink.error("E0703", f"`{n.text}` is the output of `{target}`: it is scored, not "
                                    "intervened on", n.span, "the output",
                                    help="interchange the variables the output depends on")
                    ok = False
                elif n.text not in mentioned:
                    pool = sorted(v for v in mentioned if v != out_var)
                    self.sink.error("E0703", f"`{n.text}` is not aligned in `{target}`", n.span, "not aligned",
                                    help=did_you_mean(n.text, pool) or
                                    (f"aligned variables are {_names(pool)}" if pool else
                                     f"align it first: `{n.text} -> site` in `align … as {target}`"))
                    ok = False
            groups.append(tuple(names))
        return tuple(groups) if ok else None

    def _all_subsets(self, alignment: AlignmentIR, where: A.Name) -> tuple[InterchangeSetIR, ...] | None:
        names = [v for v in alignment.variables]
        if len(names) > MAX_DEFAULT_SUBSET_VARS:
            self.sink.error("E0708", f"`aaa` without `interchange` would cover {2 ** len(names) - 1} subsets of "
                            f"{len(names)} variables", where.span, "too many subsets",
                            help="list the sets to average over with `interchange`")
            return None
        if not names:
            self.sink.error("E0708", f"alignment `{alignment.name}` aligns no variable to intervene on",
                            where.span, "nothing to interchange",
                            help=f"align a variable to a site in `{alignment.name}`, e.g. `X -> resid.post[0]`")
            return None
        return tuple((tuple(c),) for r in range(1, len(names) + 1) for c in itertools.combinations(names, r))

    def _modes(self, cond: A.Condition) -> tuple[str | None, str | None, bool]:
        statistic = aggregation = None
        ok = True
        for mode in cond.modes:
            kind, current = ("statistic", statistic) if mode in STATISTICS else ("aggregation", aggregation)
            if current is not None:
                same = current == mode
                self.sink.error("E0709", f"`{mode}` " + ("is given twice" if same else f"conflicts with `{current}`"),
                                cond.span, "conflicting modes",
                                help="one of point|lower95 and one of each|mean per condition")
                ok = False
                continue
            if kind == "statistic":
                statistic = mode
            else:
                aggregation = mode
        return statistic, aggregation, ok

    def _threshold(self, cond: A.Condition) -> bool:
        if not 0.0 <= cond.threshold <= 1.0:
            percent = f"; for {cond.threshold:g}% write {cond.threshold / 100:g}" if 1 < cond.threshold <= 100 else ""
            self.sink.error("E0701", f"threshold {cond.threshold:g} is outside [0, 1]", cond.span, "not a fraction",
                            help=f"`{cond.metric.name.text}` is a fraction between 0 and 1{percent}")
            return False
        return True

    def _check_condition(self, cond: A.Condition) -> ConditionIR | None:
        metric, arg = cond.metric.name.text, cond.metric.arg
        ok = True
        if metric not in CHECK_METRICS:
            self.sink.error("E0702", f"unknown metric `{metric}`", cond.metric.name.span, "not a check metric",
                            help=did_you_mean(metric, CHECK_METRICS) or
                            "check metrics are `iia`, `aaa` and `control(NAME)`")
            return None
        if metric == "control":
            if arg is None:
                self.sink.error("E0702", "`control` needs the control's name: `control(random_init)`",
                                cond.metric.span, "which control?", help=f"controls are {', '.join(CONTROLS)}")
                return None
            if arg.text not in CONTROLS:
                self.sink.error("E0707", f"unknown control `{arg.text}`", arg.span, "not a control",
                                help=did_you_mean(arg.text, CONTROLS) or f"controls are {', '.join(CONTROLS)}")
                return None
            if cond.op not in ("<=", "<"):
                self.sink.error("E0702", f"`control({arg.text}) {cond.op} …` bounds a control from below",
                                cond.span, "use <= or <",
                                help="a control must score low: the alignment should fail on a random network "
                                     "or subspace; write `control(…) <= 0.2`")
                ok = False
        else:
            if arg is not None:
                self.sink.error("E0702", f"`{metric}` takes no argument", arg.span, "unexpected argument",
                                help="the check's interchange sets say what is scored")
                ok = False
            if cond.op not in (">=", ">"):
                self.sink.error("E0702", f"`{metric} {cond.op} …` bounds {metric} from above", cond.span,
                                "use >= or >", help=f"a claim says the network agrees with the model often "
                                f"enough: `{metric} >= 0.9`; bound controls from above instead")
                ok = False
        ok &= self._threshold(cond)
        statistic, aggregation, modes_ok = self._modes(cond)
        ok &= modes_ok
        if modes_ok and metric == "aaa" and aggregation is not None:
            self.sink.error("E0709", f"`{aggregation}` does not apply to `aaa`", cond.span, "aaa is one number",
                            help="aaa is already the mean IIA over interchange sets")
            ok = False
        if modes_ok and metric == "control" and statistic == "lower95":
            self.sink.error("E0709", "`lower95` on an upper bound would make the control easier to pass",
                            cond.span, "anti-conservative", help="use the point estimate for controls")
            ok = False
        if not ok:
            return None
        if aggregation is None:
            aggregation = "mean" if metric == "aaa" else "each"
        return ConditionIR(metric, arg.text if arg is not None else None, cond.op, float(cond.threshold),
                           statistic or "point", aggregation, cond.span)

    # circuits ----------------------------------------------------------------------------------
    def _circuit(self, circ: A.Circuit) -> CircuitIR | None:
        net = self._network_ref(circ.network)
        model = self._model(circ.model)
        resolver = self.resolvers.get(circ.network.text)
        ok = net is not None and model is not None
        output_ok = False
        if model is not None:
            var = model.variables.get(circ.output.text)
            if var is None:
                self.sink.error("E0203", f"`{circ.output.text}` is not a variable of model `{model.name}`",
                                circ.output.span, "unknown variable",
                                help=did_you_mean(circ.output.text, model.variables, "variables"))
                ok = False
            elif var.kind != "output":
                self.sink.error("E0609", f"`{circ.output.text}` is {_a(var.kind)}; a circuit explains an output",
                                circ.output.span, "not an output",
                                help=f"outputs of `{model.name}` are {_names(model.outputs)}")
                ok = False
            else:
                output_ok = True
        if net is not None and model is not None:
            self._check_network_for(net, model, f"circuit `{circ.name.text}`", circ.span)
            if output_ok:
                self._check_answer(net, model, circ.output.text, circ.output.span)
        groups: dict[str, GroupIR] = {}
        declared: dict[str, Span] = {}
        node_seen: dict[SiteSpec, Span] = {}
        for stmt in circ.body:
            if isinstance(stmt, A.GroupDecl):
                g = self._group(stmt, declared, node_seen, resolver)
                if g is None:
                    ok = False
                else:
                    groups[g.name] = g
        group_names = {s.name.text for s in circ.body if isinstance(s, A.GroupDecl)}
        if not group_names:
            self.sink.error("E0706", f"circuit `{circ.name.text}` has no group", circ.name.span, "empty circuit",
                            help="declare its parts: `group movers = head[9.9], head[9.6]`")
            ok = False
        edges: list[CircuitEdgeIR] = []
        ablation: AblationIR | None = None
        granularity: A.Granularity | None = None
        metric_decl: A.MetricDecl | None = None
        metric = MetricIR("accuracy")
        conditions: list[ConditionIR] = []
        expects = 0
        settings: dict[str, A.Setting] = {}
        for stmt in circ.body:
            if isinstance(stmt, A.Setting):
                if stmt.key in ("pool", "train", "steps"):
                    self.sink.error("E0704", f"`{stmt.key}` is a check setting; a circuit takes `pairs`, `seed` and "
                                    "`batch`",
                                    stmt.span, "not a circuit setting",
                                    help="`pairs` is how many prompts the circuit is evaluated on")
                    ok = False
                else:
                    ok &= self._setting(stmt, settings)
            elif isinstance(stmt, A.CircuitEdges):
                for e in stmt.edges:
                    got = self._edge(e, groups, group_names, edges)
                    if got is None:
                        ok = False
                    else:
                        edges.append(got)
            elif isinstance(stmt, A.Ablate):
                if ablation is not None:
                    self.sink.error("E0710", "a circuit has one ablation; this is the second", stmt.span,
                                    "second ablation",
                                    help="keep one `ablate complement with …` line; write another circuit to compare")
                    ok = False
                    continue
                ablation = AblationIR(stmt.kind, stmt.dataset.text if stmt.dataset else None)
                if stmt.dataset is not None:
                    ok &= self._ablation_dataset(stmt.dataset, net)
            elif isinstance(stmt, A.Granularity):
                if granularity is not None:
                    self.sink.error("E0706", "`granularity` is given twice", stmt.span, "given again",
                                    help="keep one `granularity` line")
                    ok = False
                    continue
                granularity = stmt
            elif isinstance(stmt, A.MetricDecl):
                if metric_decl is not None:
                    self.sink.error("E0706", "a circuit has one metric; this is the second", stmt.span,
                                    "second metric",
                                    help="keep one `metric` line; write another circuit for another metric")
                    ok = False
                    continue
                metric_decl = stmt
                got = self._metric(stmt, model, net, resolver, circ.output.text if output_ok else None)
                if got is None:
                    ok = False
                else:
                    metric = got
            elif isinstance(stmt, A.Expect):
                expects += 1
                for cond in stmt.conditions:
                    got = self._circuit_condition(cond, group_names)
                    if got is None:
                        ok = False
                    else:
                        conditions.append(got)
        if ablation is None:
            self.sink.error("E0710", f"circuit `{circ.name.text}` does not say how the rest of the network is "
                            "ablated", circ.name.span, "no `ablate` line",
                            help="add e.g. `ablate complement with mean over D` (a `dataset D`), `resample from D`"
                                 " or `zero`")
            ok = False
        if granularity is not None and granularity.value == "edge" and not any(
                isinstance(s, A.CircuitEdges) for s in circ.body):
            self.sink.error("E0706", "`granularity edge` needs an `edges { … }` block", granularity.span,
                            "no edges declared", help="declare the circuit's edges, or use `granularity node`")
            ok = False
        if not expects:
            self.sink.error("E0708", f"circuit `{circ.name.text}` has no `expect`: it can never fail",
                            circ.name.span, "nothing is claimed", help="add e.g. `expect faithfulness >= 0.8`")
            ok = False
        if not ok:
            return None
        given = {k: v.value for k, v in settings.items()}
        return CircuitIR(circ.name.text, net.name, model.name, circ.output.text, groups, tuple(edges), ablation,
                         granularity.value if granularity else "node", metric, tuple(conditions), circ.span,
                         pairs=given.get("pairs", DEFAULT_CIRCUIT_PROMPTS), seed=given.get("seed", DEFAULT_SEED),
                         batch=given.get("batch", DEFAULT_BATCH))

    def _group(self, stmt: A.GroupDecl, declared: dict[str, Span], node_seen: dict[SiteSpec, Span],
               resolver: PositionResolver | None) -> GroupIR | None:
        name = stmt.name
        ok = True
        if name.text in RESERVED_ENDPOINTS:
            self.sink.error("E0706", f"`{name.text}` is reserved for edges; name the group differently", name.span,
                            "reserved name", help=f"call the group e.g. `{name.text}_nodes`")
            ok = False
        elif name.text in declared:
            self.sink.error("E0201", f"group `{name.text}` is declared twice", name.span, "declared again",
                            notes=[f"first declared at {declared[name.text]}"],
                            help="rename one of the two groups, or merge their sites into one")
            ok = False
        else:
            declared[name.text] = name.span
        nodes = []
        for node in stmt.nodes:
            site = site_from_ast(node, self.sink, circuit=True)
            if site is None:
                ok = False
                continue
            if site.kind == "logits":
                self.sink.error("E0706", "`logits` is not a circuit node", node.span, "the circuit's sink",
                                help="edges end at `logits`: `group -> logits`")
                ok = False
                continue
            if site in node_seen:
                self.sink.error("E0706", f"`{site}` is in two groups (or twice in one)", node.span, "listed again",
                                notes=[f"first listed at {node_seen[site]}"],
                                help="a node belongs to one group; remove it from the other")
                ok = False
                continue
            node_seen[site] = node.span
            nodes.append(site)
        positions: tuple[PositionSpec, ...] | None = (ALL,)
        if resolver is not None:
            positions = resolver.site_positions(stmt.positions)
        if not ok or positions is None:
            return None
        return GroupIR(name.text, tuple(nodes), positions, stmt.span)

    def _edge(self, e: A.CircuitEdge, groups: dict[str, GroupIR], group_names: set[str],
              edges: list[CircuitEdgeIR]) -> CircuitEdgeIR | None:
        ok = True
        for end, role in ((e.src, "src"), (e.dst, "dst")):
            n = end.name.text
            if n in RESERVED_ENDPOINTS:
                if (role, n) == ("src", "logits"):
                    self.sink.error("E0706", "`logits` is the end of the circuit: it cannot be an edge's source",
                                    end.span, "edge out of logits",
                                    help="reverse the edge: `… -> logits`")
                    ok = False
                elif (role, n) == ("dst", "embed"):
                    self.sink.error("E0706", "`embed` is the start of the circuit: it cannot be an edge's target",
                                    end.span, "edge into embed",
                                    help="reverse the edge: `embed -> …`")
                    ok = False
            elif n not in group_names:
                self.sink.error("E0213", f"unknown group `{n}`", end.name.span, "not a group of this circuit",
                                help=did_you_mean(n, list(group_names) + list(RESERVED_ENDPOINTS)) or
                                f"groups are {_names(sorted(group_names))}; `embed` and `logits` are built in")
                ok = False
            if end.port is None:
                continue
            if role == "src":
                self.sink.error("E0706", f"a port names an input of the edge's target; `{n}.{end.port.text}` "
                                "is a source", end.port.span, "port on a source",
                                help=f"write `{n} -> target.{end.port.text}`")
                ok = False
            elif end.port.text not in NODE_PORTS:
                self.sink.error("E0706", f"unknown port `.{end.port.text}`", end.port.span, "not a port",
                                help=did_you_mean(end.port.text, NODE_PORTS) or "head inputs are q, k and v")
                ok = False
            elif n in groups and not groups[n].heads_only:
                self.sink.error("E0706", f"port `.{end.port.text}` needs a group of attention heads; `{n}` has "
                                "other nodes", end.port.span, "not a head group",
                                help=f"drop `.{end.port.text}`, or split the heads into their own group")
                ok = False
            elif n in RESERVED_ENDPOINTS:
                self.sink.error("E0706", f"`{n}` has no ports", end.port.span, "not a head group",
                                help=f"write `{n}` without `.q`/`.k`/`.v`; ports belong to attention-head groups")
                ok = False
        if not ok:
            return None
        if e.src.name.text == e.dst.name.text:
            self.sink.error("E0706", f"edge from `{e.src.name.text}` to itself", e.span, "self-loop",
                            help="an edge connects two different groups; delete this one")
            return None
        got = CircuitEdgeIR(e.src.name.text, e.dst.name.text, e.dst.port.text if e.dst.port else None)
        if got in edges:
            self.sink.error("E0706", "this edge is declared twice", e.span, "declared again",
                            help="delete the second copy")
            return None
        return got

    def _ablation_dataset(self, ref: A.Name, net: NetworkIR | None) -> bool:
        if ref.text not in self.dataset_decls:
            self.sink.error("E0211", f"unknown dataset `{ref.text}`", ref.span, "no dataset of this name",
                            help=did_you_mean(ref.text, self.dataset_decls) or
                            f"declare it: `dataset {ref.text} from Model {{ prompt \"…\" pairs 256 }}`")
            return False
        ds = self.ir.datasets.get(ref.text)
        model = self.ir.models.get(ds.model) if ds is not None else None
        if ds is not None and ds.prompt is None and net is not None and model is not None:
            # The dataset's inputs go through this network's own encoding.
            self._check_network_for(net, model, f"dataset `{ds.name}`", ds.span)
        return True

    def _metric(self, stmt: A.MetricDecl, model: CausalModel | None, net: NetworkIR | None,
                resolver: PositionResolver | None, output: str | None) -> MetricIR | None:
        """`output` is the circuit's output variable, or None when it did not resolve."""
        name = stmt.name.text
        if name not in CIRCUIT_METRICS:
            self.sink.error("E0702", f"unknown circuit metric `{name}`", stmt.name.span, "not a metric",
                            help=did_you_mean(name, CIRCUIT_METRICS) or
                            f"metrics are {', '.join(CIRCUIT_METRICS)}")
            return None
        lo, hi = CIRCUIT_METRICS[name]
        args = stmt.args or ()
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} or {hi}"
            self.sink.error("E0702", f"`{name}` takes {want} argument(s), got {len(args)}", stmt.span,
                            "wrong number of arguments",
                            help="e.g. `metric logit_diff(IO, S)`: the answer for IO minus the answer for S"
                            if name == "logit_diff" else
                            f"e.g. `metric {name}(IO)`: the variable whose answer is read" if lo >= 1 else
                            f"write `metric {name}` without arguments")
            return None
        ok = True
        out_args = []
        for a in args:
            if isinstance(a, A.StrLit):
                out_args.append(MetricArg("token", a.value))
                continue
            out_args.append(MetricArg("var", a.text))
            if model is None:
                continue
            var = model.variables.get(a.text)
            if var is None:
                self.sink.error("E0203", f"`{a.text}` is not a variable of model `{model.name}`", a.span,
                                "unknown variable", help=did_you_mean(a.text, model.variables, "variables"))
                ok = False
            elif output is None:
                continue
            elif var.domain != model.variables[output].domain:
                self.sink.error("E0702", f"`{name}({a.text})`: `{a.text}` ({var.domain.describe()}) has not the "
                                f"output's values ({model.variables[output].domain.describe()})", a.span,
                                "not an answer value", help="metric arguments are rendered as answers")
                ok = False
            elif net is not None and net.encoding.answer is None:
                self.sink.error("E0702", f"`{name}({a.text})` needs an answer template in network `{net.name}` "
                                "to turn a value into tokens", a.span, "no answer template",
                                help=f"add `answer \" {{{output}}}\"` to the network, or pass a token string")
                ok = False
        positions: tuple[PositionSpec, ...] | None = (LAST,)
        if stmt.positions is not None and resolver is not None:
            positions = resolver.site_positions(stmt.positions)
        if not ok or positions is None:
            return None
        return MetricIR(name, tuple(out_args), positions)

    def _circuit_condition(self, cond: A.Condition, group_names: set[str]) -> ConditionIR | None:
        metric, arg = cond.metric.name.text, cond.metric.arg
        if metric not in CIRCUIT_CLAIMS:
            self.sink.error("E0702", f"unknown circuit claim `{metric}`", cond.metric.name.span, "not a claim",
                            help=did_you_mean(metric, CIRCUIT_CLAIMS) or
                            "claims are faithfulness, completeness, necessity(GROUP) and minimality(GROUP)")
            return None
        ok = True
        if CIRCUIT_CLAIMS[metric] and arg is None:
            self.sink.error("E0702", f"`{metric}` needs a group: `{metric}(GROUP)`", cond.metric.span,
                            "which group?", help=f"groups are {_names(sorted(group_names))}")
            ok = False
        elif not CIRCUIT_CLAIMS[metric] and arg is not None:
            self.sink.error("E0702", f"`{metric}` takes no argument", arg.span, "unexpected argument",
                            help=f"`{metric}` is a property of the whole circuit")
            ok = False
        elif arg is not None and arg.text not in group_names:
            self.sink.error("E0213", f"unknown group `{arg.text}`", arg.span, "not a group of this circuit",
                            help=did_you_mean(arg.text, group_names) or f"groups are {_names(sorted(group_names))}")
            ok = False
        if cond.op not in (">=", ">"):
            self.sink.error("E0702", f"`{metric} {cond.op} …`: circuit scores are bounded from below", cond.span,
                            "use >= or >", help="every circuit score is normalised so that higher is better")
            ok = False
        ok &= self._threshold(cond)
        statistic, aggregation, modes_ok = self._modes(cond)
        if not (ok and modes_ok):
            return None
        return ConditionIR(metric, arg.text if arg is not None else None, cond.op, float(cond.threshold),
                           statistic or "point", aggregation or "each", cond.span)


# ───────────────────────── small helpers ─────────────────────────

_BRACE = re.compile(r"\{([^{}]*)\}")


def sweep_size(site: A.SweepSite) -> int | str:
    """How many sites a sweep expands to, counted arithmetically (nothing is built), or a
    message saying why it cannot be expanded.

    Why count first: `head[0..100000.0..100000]` is 10^10 sites; building them before the
    MAX_LOCATE_CELLS check once took gigabytes at parse time.
    """
    if site.module is not None:
        return _pattern_size(site.module)
    if site.ranges is None:
        return 1
    total = 1
    for lo, hi in site.ranges:
        if lo > hi:
            return f"range `{lo}..{hi}` is empty (the start is after the end)"
        total *= hi - lo + 1
    return total


def _pattern_choices(body: str, pattern: str) -> list[str] | int | str:
    """The choices of one `{…}` group: a list for `{a,b}`, a count for a range `{lo..hi}`
    (expanded only once the total is known to be small), or a message."""
    if ".." in body:
        lo, _, hi = body.partition("..")
        if not (lo.strip().isdigit() and hi.strip().isdigit()) or int(lo) > int(hi):
            return f"`{{{body}}}` in module pattern `{pattern}` is not a range `{{a..b}}` with a <= b"
        return int(hi) - int(lo) + 1
    choices = [c.strip() for c in body.split(",")]
    if not all(choices):
        return f"`{{{body}}}` in module pattern `{pattern}` has an empty choice"
    return choices


def _pattern_size(pattern: str) -> int | str:
    """The number of paths a module pattern expands to (groups multiply), or a message."""
    total = 1
    for m in _BRACE.finditer(pattern):
        got = _pattern_choices(m.group(1), pattern)
        if isinstance(got, str):
            return got
        total *= got if isinstance(got, int) else len(got)
    return total


def _expand_sweep(site: A.SweepSite) -> list | str:
    """A sweep's sites as `A.NamedSite`/`A.ModuleSite` nodes, or a message saying why not.
    Callers check `sweep_size` against MAX_LOCATE_CELLS first."""
    if site.module is not None:
        paths = [site.module]
        while any(_BRACE.search(p) for p in paths):
            out = []
            for p in paths:
                m = _BRACE.search(p)
                if m is None:
                    out.append(p)
                    continue
                body = m.group(1)
                got = _pattern_choices(body, site.module)
                if isinstance(got, str):
                    return got
                if isinstance(got, int):
                    if len(out) + got > MAX_LOCATE_CELLS:  # braces nested in braces: checked as they appear
                        return f"module pattern `{site.module}` expands to more than {MAX_LOCATE_CELLS} paths"
                    lo = int(body.partition("..")[0])
                    got = [str(i) for i in range(lo, lo + got)]
                out.extend(p[:m.start()] + c + p[m.end():] for c in got)
            paths = out
            if len(paths) > MAX_LOCATE_CELLS:
                return f"module pattern `{site.module}` expands to more than {MAX_LOCATE_CELLS} paths"
        return [A.ModuleSite(p, site.io, span=site.span) for p in paths]
    ranges = site.ranges
    if ranges is None:
        return [A.NamedSite(site.path, None, site.part, span=site.span)]
    for lo, hi in ranges:
        if lo > hi:
            return f"range `{lo}..{hi}` is empty (the start is after the end)"
    return [A.NamedSite(site.path, tuple(idx), site.part, span=site.span)
            for idx in itertools.product(*[range(lo, hi + 1) for lo, hi in ranges])]


def _overlap(a: SiteBinding, b: SiteBinding) -> bool:
    if a.site != b.site:
        return False
    if not (a.positions == b.positions or ALL in a.positions or ALL in b.positions
            or set(a.positions) & set(b.positions)):
        return False
    fa, fb = a.featurizer, b.featurizer
    if isinstance(fa, Identity) or isinstance(fb, Identity):
        return True
    if isinstance(fa, Slice) and isinstance(fb, Slice):
        return fa.lo < fb.hi and fb.lo < fa.hi
    return False  # bases and learned subspaces: only known at check time


def _names(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _a(kind: str) -> str:
    return {"input": "an input", "var": "an intermediate variable", "output": "an output"}.get(kind, kind)


def _show(value: Any) -> str:
    return Domain.boolean().format(value)


def _suggest(value: Any, dom: Domain) -> str | None:
    if dom.kind == "int":
        return f"values are {dom.lo}..{dom.hi}"
    if dom.kind == "bool":
        return "values are true and false"
    return did_you_mean(str(value), dom.values, "values")
