"""Analyse `dataset` blocks: reference inputs drawn from a model (for mean/resample ablation),
with an optional prompt checked against that model."""


from __future__ import annotations

from causalspec.codes import E0201, E0704
from causalspec.semantics.ir import DatasetIR
from causalspec.semantics.networks import NetworkAnalysis
from causalspec.syntax import ast as A


class DatasetAnalysis(NetworkAnalysis):
    def _dataset(self, ds: A.Dataset) -> DatasetIR | None:
        model = self._model(ds.model)
        out = DatasetIR(ds.name.text, ds.model.text, span=ds.span)
        given: dict[str, A.Node] = {}
        for stmt in ds.body:
            key = "prompt" if isinstance(stmt, A.PromptDecl) else stmt.key
            if key in given:
                code = E0704 if isinstance(stmt, A.Setting) else E0201
                self.sink.error(code, f"`{key}` is given twice in dataset `{out.name}`", stmt.span, "given again",
                                notes=[f"first given at {given[key].span}"], help=f"keep one `{key}` line")
                continue
            given[key] = stmt
            if isinstance(stmt, A.PromptDecl):
                out.prompt = self._prompt(stmt)
                if out.prompt is not None and model is not None:
                    self._check_prompt(out.prompt, model, f"dataset `{out.name}`")
            elif stmt.key in ("pool", "batch", "train", "steps"):
                self.sink.error(E0704, f"`{stmt.key}` is a check setting; a dataset takes `pairs` and `seed`",
                                stmt.span, "not a dataset setting",
                                help=f"move `{stmt.key}` to the circuit or check that uses it")
            elif stmt.key == "pairs":
                if stmt.value < 1:
                    self.sink.error(E0704, "a dataset needs `pairs` >= 1", stmt.span, "must be >= 1",
                                    help="write a positive number of prompts, e.g. `pairs 256`")
                out.pairs = stmt.value
            else:
                out.seed = stmt.value
        return out if ds.model.text in self.model_decls else None
