"""Analyse everything outside `model` blocks: networks, prompts, datasets, alignments,
checks and locate, circuits, into typed IR (semantics.ir) for the compile stage.

Why the blocks are resolved together, in dependency order, with every problem reported in
one pass: they refer to each other (an alignment names a model and a network, its templates
are only checkable against that model's variables, a check names an alignment, a circuit
names a dataset). Each block kind has its own module; this one composes them. Nothing here
loads a network, imports torch or transformers, or runs user Python: files a spec names are
only checked to exist and to be a file (a folder for a local `hf` model, holding
config.json) — torch weights included, so a typo is a located error rather than a check
skipped at run time (semantics.paths).

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

from pathlib import Path

from causalspec.diagnostics import DiagnosticSink
from causalspec.semantics.checks import CheckAnalysis
from causalspec.semantics.circuits import CircuitAnalysis
from causalspec.semantics.datasets import DatasetAnalysis
from causalspec.semantics.ir import SpecIR
from causalspec.syntax import ast as A


def analyse_blocks(spec: A.Spec, ir: SpecIR, sink: DiagnosticSink, base_dir: Path,
                   live: frozenset[str] = frozenset()) -> None:
    """Fill `ir.networks`, `ir.datasets`, `ir.alignments`, `ir.checks`, `ir.circuits`.
    `live`: networks bound in memory by the caller, whose files are not checked."""
    _Blocks(spec, ir, sink, base_dir, live).run()


class _Blocks(DatasetAnalysis, CheckAnalysis, CircuitAnalysis):
    """Every block analyser over one shared context (semantics.context)."""

    def run(self) -> None:
        self.network_decls = self._unique(self.items(A.Network), "network")
        self.dataset_decls = self._unique(self.items(A.Dataset), "dataset")
        self.alignment_decls = self._unique(self.items(A.Alignment), "alignment")
        self._unique(self.items(A.Circuit), "circuit")
        for net in self.network_decls.values():
            self.ir.networks[net.name.text] = self._network(net)
        for ds in self.dataset_decls.values():
            dataset = self._dataset(ds)
            if dataset is not None:
                self.ir.datasets[dataset.name] = dataset
        for al in self.alignment_decls.values():
            alignment = self._alignment(al)
            if alignment is not None:
                self.ir.alignments[alignment.name] = alignment
        names: dict[str, A.Check] = {}
        for chk in self.items(A.Check):
            check = self._check(chk, names)
            if check is not None:
                self.ir.checks.append(check)
        seen: set[str] = set()
        for circ in self.items(A.Circuit):
            if circ.name.text in seen:
                continue
            seen.add(circ.name.text)
            circuit = self._circuit(circ)
            if circuit is not None:
                self.ir.circuits[circuit.name] = circuit
