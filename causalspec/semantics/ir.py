"""Typed IR of everything outside `model` blocks (networks, prompts, datasets, alignments,
checks, locate, circuits), the spec-level `SpecIR`, and the defaults and vocabularies the
analysis checks against.

Why one module: every block-kind analyser (semantics.networks, .datasets, .alignments,
.checks, .circuits) and the later stages (compile, run, claims) share these types; keeping
them apart from the analysis code means no analyser imports another to name a type.
"""


from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

from causalspec.diagnostics import NO_SPAN, Diagnostic, Span
from causalspec.semantics.featurizers import Featurizer
from causalspec.semantics.model import CausalModel
from causalspec.semantics.sites import LAST, PositionSpec, SiteSpec
from causalspec.semantics.templates import Template, format_template_value
from causalspec.syntax import ast as A

DTYPES = ("float32", "float16", "bfloat16", "float64")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16",
                 "bf16": "bfloat16", "fp64": "float64", "double": "float64"}
DEVICES = ("cpu", "cuda", "cuda:N", "mps", "auto")
DEVICE_ALIASES = {"gpu": "cuda", "cuda0": '"cuda:0"', "metal": "mps"}
_DEVICE = re.compile(r"(cpu|cuda|cuda:[0-9]+|mps|auto)\Z")
CLASSES = ("causal_lm", "masked_lm", "base", "sequence_classification", "token_classification")
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

CIRCUIT_METRICS = {"logit_diff": (2, 16), "logit": (1, 1), "prob": (0, 1), "prob_greater": (1, 1), "accuracy": (0, 0)}
CIRCUIT_CLAIMS = {"faithfulness": False, "completeness": False, "necessity": True, "minimality": True}
NODE_PORTS = ("q", "k", "v")
RESERVED_ENDPOINTS = ("logits", "embed")


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
            if self.template is None:  # semantics.networks builds each PromptIR with one or the other
                raise ValueError("a prompt without `by` needs its one template")
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
    """A network declaration. `framework` is "hf" (`source` is the path or hub name, as
    written) or "torch" (`builder` builds the module; `weights` is loaded into it; analysis
    checks that the file exists). `backend_name` is the spec's `backend torch|nnsight`
    statement (what runs the checks), not to be confused with the framework."""

    name: str
    framework: str  # "hf" | "torch": how the network is built and loaded
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
    backend_name: str | None = None  # `backend torch|nnsight`: what runs the checks; None = not said
    remote: bool = False  # `backend nnsight remote`: run on NDIF (hf only)
    remote_host: str | None = None  # `backend nnsight remote "https://…"`: a self-hosted NDIF
    remote_span: Span | None = None  # where the spec names `remote_host` (for the check-time refusal)
    encoding: EncodingIR = field(default_factory=EncodingIR)
    # `output : value`: the output is one number per example (a real output is read this way)
    output_value: bool = False
    output_logit: str | None = None  # `output : value logit " yes"`: that token's logit (hf)
    output_value_span: Span | None = None

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
    decoder: str  # "argmax" | "answer" | "decode" | "value" (the network's `output : value`)
    span: Span = NO_SPAN
    # `O -> output @ 3`: read a [batch, positions, classes] output at token 3; `@ END` / `@ S[2]`: at a
    # position resolved per example (a PositionSpec: a slot, `last`, an offset of them)
    output_position: int | PositionSpec | None = None
    # `O[i] -> output @ i` over several elements: (element, position) per element, in order (`output`
    # and `output_position` are the first's); the check is scored per element and pooled
    # (claims/elements.py). Empty: one output.
    output_elements: tuple[tuple[str, int | PositionSpec], ...] = ()
    # On the per-element alignments a check of `O[i] -> output @ i` runs (claims/alignment.py): every
    # element of the original line. Learned featurizers (das, boundless) are trained once over all of
    # them (the pooled objective, run/elements.py) and scored per element. Empty: train on `output`.
    train_elements: tuple[tuple[str, int | PositionSpec], ...] = ()

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
    tolerance: Fraction | None = None  # `within 0.01`, read exactly from its text


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
    latent_search: LatentSearchIR | None = None  # `locate VAR over latents of …` (instead of a sweep)
    seed_given: bool = False  # the spec states `seed` (else DEFAULT_SEED): reports say where the seed came from
    draws: dict[str, int] = field(default_factory=dict)  # `controls NAME(n=R)` as written (see control_draws)
    # `within T` of its conditions: a real output's prediction counts as right within T of the
    # model's value (None: a discrete output, compared for equality)
    tolerance: Fraction | None = None

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
    # several variables (`locate H[i] … @ i`, `locate {A, B} …`, `locate {H[i]} … @ i`):
    # "element" — column j is one element, bound alone at its position and scored by the
    # interchange set `column_sets[j]` ({H[k]}); "joint" — every cell binds every variable and
    # is scored by the check's own sets. `bound[i][j]` lists the (variable, binding) pairs of
    # cell (i, j); `var` is then the statement's label (`H[i]`, `{A, B}`).
    mode: str = "single"
    bound: tuple[tuple[tuple[tuple[str, SiteBinding], ...], ...], ...] = ()
    column_sets: tuple[tuple[str, ...], ...] = ()
    variables: tuple[str, ...] = ()

    def cell_bindings(self, i: int, j: int) -> tuple[tuple[str, SiteBinding], ...]:
        """The (variable, binding) pairs cell (i, j) binds."""
        return self.bound[i][j] if self.bound else ((self.var, self.cells[i][j]),)

    @property
    def located(self) -> tuple[str, ...]:
        """Every variable the sweep binds."""
        return self.variables or (self.var,)

    @property
    def flat(self) -> list[SiteBinding]:
        return [b for row in self.cells for b in row]


@dataclass(frozen=True)
class LatentSearchIR:
    """`locate VAR over latents of SITE @ POSITIONS : sae("DIR")`: rank the SAE's latents at one
    site by the IIA of patching each alone. `binding` is the site with the SAE featurizer
    (no latents: the search chooses them)."""

    var: str
    binding: SiteBinding
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


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
    # `: score 0.12`: an attribution score carried for circuit files (EAP-IG / MIB); evaluation ignores it
    score: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AblationIR:
    kind: str  # "zero" | "mean" | "resample"
    dataset: str | None = None


CONVENTIONS = ("causalspec", "mib")
MLPS_MODES = ("ablated", "kept")
INPUT_ABLATIONS = ("token", "token+position")


@dataclass(frozen=True)
class ConventionIR:
    """What a circuit's numbers mean: which components outside the circuit are ablated, what
    ablating the input (the embeddings) removes, and how edges are cleaned before a run.

    `causalspec` (the default): a kind of node is ablated only if the circuit names one
    (`mlps = "auto"`, `heads = "auto"`; the convention of Wang et al. 2022), edges out of
    `embed` are cut only when some edge names `embed`, zero ablation of the input removes token
    and position embeddings. `mib` (MIB / EAP-IG, `Graph` + `evaluate_graph`): every head and
    MLP outside the circuit is ablated, every edge out of the input not in the circuit carries
    the ablated input, the input node is the token embedding only (`hook_embed`; position
    embeddings are never ablated), and dangling edges are pruned (`Graph.prune`).
    """

    name: str = "causalspec"  # the base convention: causalspec | mib
    mlps: str = "auto"  # auto | ablated | kept
    input_ablation: str = "token+position"  # token | token+position
    heads: str = "auto"  # auto | ablated
    embed_edges: str = "named"  # named | always (edge granularity: when inputs without an edge from embed lose it)
    prune: bool = False  # drop edges out of nodes without inputs, and into nodes without outputs (EAP-IG prune)
    stated: bool = False  # the spec states the convention (or an aspect of it)

    @classmethod
    def mib(cls, stated: bool = True) -> ConventionIR:
        return cls("mib", "ablated", "token", "ablated", "always", True, stated)

    @property
    def label(self) -> str:
        base = ConventionIR.mib() if self.name == "mib" else ConventionIR()
        changed = []
        if self.mlps != base.mlps:
            changed.append(f"mlps {self.mlps}")
        if self.input_ablation != base.input_ablation:
            changed.append(f"input ablation {self.input_ablation}")
        return self.name + (f" ({', '.join(changed)})" if changed else "")

    def describe(self) -> str:
        """In words, for reports."""
        mlps = {"auto": "MLPs outside the circuit are ablated only if the circuit names an MLP (kept as wires "
                        "otherwise)",
                "ablated": "MLPs outside the circuit are ablated", "kept": "MLPs are kept as wires"}[self.mlps]
        heads = ("heads outside the circuit are ablated" if self.heads == "ablated" else
                 "heads outside the circuit are ablated only if the circuit names a head")
        inp = ("zero ablation of the input zeros the token embedding only (position embeddings stay)"
               if self.input_ablation == "token" else
               "zero ablation of the input zeros token and position embeddings")
        emb = ("at edge granularity every input without an edge from `embed` sees the ablated input"
               if self.embed_edges == "always" else
               "at edge granularity inputs lose `embed` only when some edge names `embed`")
        text = f"convention {self.label}: {heads}; {mlps}; {emb}; {inp}"
        if self.prune:
            text += "; dangling edges are pruned (EAP-IG Graph.prune)"
        return text + ("" if self.stated else " (the default: the spec states no convention)")

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "label": self.label, "heads": self.heads, "mlps": self.mlps,
                "input_ablation": self.input_ablation, "embed_edges": self.embed_edges, "prune": self.prune,
                "stated": self.stated, "text": self.describe()}


@dataclass(frozen=True)
class MetricArg:
    kind: str  # "var" (a model variable rendered by the answer template) | "token" (a string)
    value: str


@dataclass(frozen=True)
class MetricIR:
    name: str  # logit_diff (A minus the largest of the rest) | logit | prob | prob_greater | accuracy
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
    prompts: int = 256  # prompts the circuit is evaluated on (DEFAULT_CIRCUIT_PROMPTS; the spec's `pairs`)
    seed: int = DEFAULT_SEED
    batch: int = DEFAULT_BATCH
    convention: ConventionIR = field(default_factory=ConventionIR)


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


@dataclass
class SpecIR:
    """The analysed spec: models, and the blocks outside them keyed by name (checks in order)."""

    file: str
    ast: A.Spec
    models: dict[str, CausalModel] = field(default_factory=dict)
    networks: dict[str, NetworkIR] = field(default_factory=dict)
    alignments: dict[str, AlignmentIR] = field(default_factory=dict)
    checks: list[CheckIR] = field(default_factory=list)
    circuits: dict[str, CircuitIR] = field(default_factory=dict)
    datasets: dict[str, DatasetIR] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
