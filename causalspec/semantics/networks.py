"""Analyse `network` blocks and their prompts: backends (hf folders, torch builders and
weights), options, `backend` engines, `encode`/`decode` hooks, prompt and answer templates,
and whether a network can serve a model's variables (semantics.alignments and
semantics.circuits call `_check_network_for` and `_check_answer`).

Nothing here loads a network or runs user Python: files are only checked to exist.
"""


from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from causalspec.codes import E0201, E0203, E0303, E0315, E0606, E0607, E0610, E0611, E0615, E0808, W0601
from causalspec.diagnostics import Span, did_you_mean
from causalspec.semantics.analyse_model import literal_value
from causalspec.semantics.context import Context, join_names, show_value, suggest_value
from causalspec.semantics.file_access import note_outside
from causalspec.semantics.ir import (
    _DEVICE,
    CLASSES,
    DEVICE_ALIASES,
    DEVICE_MAPS,
    DEVICES,
    DTYPE_ALIASES,
    DTYPES,
    ENGINES,
    WEIGHTS_HELP,
    AnswerIR,
    NetworkIR,
    PromptCase,
    PromptIR,
)
from causalspec.semantics.model import CausalModel
from causalspec.semantics.paths import file_problem, hf_folder_problem, resolve
from causalspec.semantics.sites import PositionResolver, PositionSpec
from causalspec.semantics.templates import Placeholder
from causalspec.syntax import ast as A
from causalspec.remote_hosts import how_to_allow, refuse_reason


class NetworkAnalysis(Context):
    def _prompt(self, decl: A.PromptDecl) -> PromptIR | None:
        if decl.by is None:
            # the parser gives a prompt either its one template or `by` with cases (syntax.build)
            assert decl.template is not None, "a prompt with neither a template nor `by`"
            span, exact = self._string_span(decl.span, decl.template)
            t = self._template(decl.template, span, exact)
            if t is not None and not t.placeholders:
                self.sink.warn(W0601, "the prompt has no placeholders: every input renders the same text, "
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

    def _network(self, net: A.Network) -> NetworkIR:
        backend = net.backend
        is_torch = isinstance(backend, A.TorchBackend)
        on_disk = net.name.text not in self.live  # a live network is bound in memory: no file is read
        source = backend.builder if isinstance(backend, A.TorchBackend) else backend.path
        out = NetworkIR(net.name.text, "torch" if is_torch else "hf", source, net.span)
        if isinstance(backend, A.TorchBackend):
            out.builder = self._hook(backend.builder, backend.span, "torch builder", at_end=False,
                                     must_exist=on_disk)
            out.weights = backend.weights
            out.weights_path = resolve(backend.weights, self.base_dir)
            problem = file_problem(backend.weights, self.base_dir, "weights file", WEIGHTS_HELP) if on_disk else None
            if problem is not None:
                self._path_error(problem, self._string_span(backend.span, backend.weights)[0])
            else:
                note_outside(self.sink, "torch weights", backend.weights, out.weights_path, self.base_dir,
                             self._string_span(backend.span, backend.weights)[0])
        else:
            out.model_class = "causal_lm"
            if not backend.path.strip():
                self.sink.error(E0610, "empty hf model path", backend.span, "empty",
                                help='name a local folder or a hub id, e.g. `hf "gpt2"`')
            problem = hf_folder_problem(backend.path, self.base_dir) if on_disk else None
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
                    self.sink.error(E0610, f"`{key}` is given twice in network `{out.name}`", stmt.span,
                                    "given again", notes=[f"first given at {given[key].span}"],
                                    help=f"keep one `{key}` line")
                    continue
                given[key] = stmt
            if isinstance(stmt, A.HookStmt):
                hook = self._hook(stmt.ref, stmt.span, f"{stmt.kind} hook", must_exist=on_disk)
                setattr(out, stmt.kind, hook)
            elif isinstance(stmt, A.OptionStmt):
                self._option(out, stmt, is_torch)
            elif isinstance(stmt, A.FlagStmt):
                if is_torch:
                    self.sink.error(E0610, "`trust_remote_code` applies to hf networks only", stmt.span,
                                    "not an hf network", help="a torch network's code is its builder file")
                else:
                    out.trust_remote_code = True
            elif isinstance(stmt, A.EngineStmt):
                self._engine(out, stmt, is_torch)
            elif isinstance(stmt, A.OutputValueStmt):
                self._output_value(out, stmt, is_torch)
            elif isinstance(stmt, (A.PromptDecl, A.AnswerDecl)):
                if is_torch:
                    what = "prompt" if isinstance(stmt, A.PromptDecl) else "answer"
                    self.sink.error(E0610, f"a torch network has no tokenizer: `{what}` templates need an "
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
                    self.sink.error(E0201, f"`{name.text}` is a built-in position and cannot be redeclared",
                                    name.span, "built-in", help="choose another name")
                elif name.text in positions:
                    self.sink.error(E0201, f"position `{name.text}` is declared twice in network `{out.name}`",
                                    name.span, "declared again here",
                                    notes=[f"first declared at {positions[name.text].name.span}"],
                                    help="rename one of the two positions")
                elif stmt.index is not None:  # `position S[i in 1..3] = …`: one named position per element
                    for element in self._position_family(stmt):
                        positions.setdefault(element.name.text, element)
                else:
                    positions[name.text] = stmt
        if not is_torch and "prompt" in given and "encode" in given:
            self.sink.error(E0610, f"network `{out.name}` has both a prompt template and an encode hook",
                            given["encode"].span, "choose one",
                            help="the encode hook turns high-level inputs into model inputs itself; "
                                 "remove it to use the prompt template")
        if out.output_value and "decode" in given:
            self.sink.error(E0315, f"network `{out.name}` has both `output : value` and a decode hook",
                            given["decode"].span, "choose one",
                            help="`output : value` reads the output tensor as one number per example; a decode "
                                 "hook reads it itself — remove one of them")
        if "device" in given and "device_map" in given and out.device_map is not None:
            self.sink.error(E0610, f"network `{out.name}` has both `device` and `device_map`",
                            given["device"].span, "choose one",
                            help="with `device_map` accelerate places the layers itself and `device` "
                                 "would be ignored: remove one of them")
        if "prompt" in given:
            self.prompt_declared.add(out.name)  # even if its template had errors: no cascades
        resolver = PositionResolver(positions, self.sink, templates="prompt" in given, torch_network=is_torch,
                                    network=out.name)
        self.resolvers[out.name] = resolver
        for position in positions:
            spec = resolver.declaration(position)
            if spec is not None:
                out.encoding.positions[position] = spec
                self._check_slots(out, spec)
        return out

    def _output_value(self, out: NetworkIR, stmt: A.OutputValueStmt, is_torch: bool) -> None:
        """`output : value [logit "tok"]`: a torch network's output tensor is the value; an hf
        network's value is the logit of one token at the answer position."""
        if is_torch and stmt.logit is not None:
            self.sink.error(E0315, "`logit \"…\"` names a token, and a torch network has no tokenizer",
                            stmt.span, "not an hf network",
                            help="write `output : value`: the network's output [batch] or [batch, 1] is the value")
            return
        if not is_torch and stmt.logit is None:
            self.sink.error(E0315, "an hf network's value is the logit of a token: name it", stmt.span,
                            "which token?", help='write `output : value logit " yes"` (the token whose logit, at '
                                                 'the answer position, is the value)')
            return
        out.output_value = True
        out.output_logit = stmt.logit
        out.output_value_span = stmt.span
    def _position_family(self, stmt: A.PositionDecl) -> list[A.PositionDecl]:
        """`position S[i in 1..3] = slot(x, i)`: the declarations `S[1]` … `S[3]`, the index
        replaced by the element's (in `i`, `i + 1`, `slot(x, i)`); E0615 when the range is not
        two numbers or an element would lie before the first token."""
        index = stmt.index
        assert index is not None and index.var is not None
        lo, hi = (e.value if isinstance(e, A.IntLit) else None for e in (index.lo, index.hi))
        if lo is None or hi is None or lo > hi or hi - lo >= MAX_POSITION_FAMILY:
            self.sink.error(E0615, f"the range of position family `{stmt.name.text}` must be two numbers, "
                            f"lo <= hi, at most {MAX_POSITION_FAMILY} elements", index.span, "not a range",
                            help=f"e.g. `position {stmt.name.text}[i in 1..3] = slot(x, i)`")
            return []
        var = index.var.text
        if stmt.items and len(stmt.items) != hi - lo + 1:
            self.sink.error(E0615, f"position family `{stmt.name.text}[{lo}..{hi}]` has {hi - lo + 1} elements but "
                            f"{len(stmt.items)} listed positions", stmt.span, "one position per element",
                            help="list one position per element, in order")
            return []
        out = []
        for k in range(lo, hi + 1):
            expr = _position_at(stmt.items[k - lo] if stmt.items else stmt.expr, var, k)
            if expr is None:
                self.sink.error(E0615, f"element {k} of position family `{stmt.name.text}` lies before the first "
                                "token", stmt.expr.span, "negative position",
                                help="start the family where the position exists, or shift it less")
                return []
            out.append(A.PositionDecl(A.Name(f"{stmt.name.text}[{k}]", span=stmt.name.span), expr, span=stmt.span))
        return out

    @staticmethod
    def _stmt_key(stmt) -> str | None:
        if isinstance(stmt, A.OutputValueStmt):
            return "output"
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
                self.sink.error(E0610, f"unknown dtype `{value}`", stmt.span, "not a dtype",
                                help=hint or f"dtypes are {', '.join(DTYPES)}")
        elif stmt.key == "device":
            if _DEVICE.match(value):
                out.device = value
            else:
                hint = f"did you mean `{DEVICE_ALIASES[value]}`?" if value in DEVICE_ALIASES else \
                    did_you_mean(value, (*DEVICES[:2], "cuda:0", *DEVICES[3:]))  # `cuda:O` is `cuda:0` misspelt
                self.sink.error(E0610, f"unknown device `{value}`", stmt.span, "not a device",
                                help=hint or
                                'devices are cpu, cuda, "cuda:N", mps and auto')
        elif stmt.key == "class":
            if is_torch:
                self.sink.error(E0610, "`class` applies to hf networks only", stmt.span, "not an hf network",
                                help="a torch network's module comes from its builder")
            elif value in CLASSES:
                out.model_class = value
            else:
                self.sink.error(E0610, f"unknown model class `{value}`", stmt.span, "not a model class",
                                help=did_you_mean(value, CLASSES) or f"classes are {', '.join(CLASSES)}")
        elif stmt.key == "device_map":
            if is_torch:
                self.sink.error(E0610, "`device_map` applies to hf networks only", stmt.span,
                                "not an hf network", help="a torch network is placed whole with `device`")
            elif value in DEVICE_MAPS:
                out.device_map = value
            else:
                one_device = "; to put the whole model on one device write `device …` instead" \
                    if _DEVICE.match(value) else ""
                self.sink.error(E0610, f"unknown device_map `{value}`", stmt.span, "not a device_map strategy",
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
            self.sink.error(E0610, f"unknown engine `{engine}`", stmt.engine.span, "not an engine",
                            help=did_you_mean(engine, ENGINES) or
                            "engines are torch (hooks) and nnsight (traces; `backend nnsight remote` runs on NDIF)")
            return
        if stmt.remote and engine != "nnsight":
            self.sink.error(E0610, f"`remote` needs the nnsight engine, not `{engine}`", stmt.span,
                            "not an nnsight engine", help="write `backend nnsight remote`")
            return
        if stmt.remote and is_torch:
            self.sink.error(E0610, "`remote` needs an hf network", stmt.span, "not an hf network",
                            help="NDIF runs hub models; a torch network's module is built locally: "
                                 "drop `remote` or declare the network `hf \"<hub id>\"`")
            return
        if stmt.host is not None and not stmt.host.startswith(("http://", "https://")):
            self.sink.error(E0610, f"NDIF host `{stmt.host}` is not an http(s) URL",
                            self._string_span(stmt.span, stmt.host)[0], "not a URL",
                            help='write the full address, e.g. `remote "https://ndif.example.org"`')
            return
        out.backend_name = engine
        out.remote = stmt.remote
        out.remote_host = stmt.host
        if stmt.host is not None:
            out.remote_span = self._string_span(stmt.span, stmt.host)[0]
            self._remote_host_warning(out, stmt.host, out.remote_span)

    def _remote_host_warning(self, out: NetworkIR, host: str, span: Span) -> None:
        """A spec-named host the user has not allowed: warn now (the check refuses it; see
        causalspec.remote_hosts). Advisory: `--remote URL` on the command line also allows it."""
        if refuse_reason(host, f"network `{out.name}`") is None:
            return
        self.sink.warn(E0808, f"network `{out.name}` names the remote host `{host}`, which you have "
                       "not allowed; its checks will be refused (your NDIF API key would be sent there)", span,
                       "host named by the spec", help=how_to_allow(host))

    def _check_slots(self, net: NetworkIR, slot: PositionSpec) -> None:
        """A declared `slot(S, k)` must find k occurrences of `{S}` in every prompt template."""
        prompt = net.encoding.prompt
        if prompt is None or slot.kind != "slot":
            return  # an offset's base is a declared position, checked at its own declaration
        templates = prompt.templates()
        everywhere = {p for t in templates for p in t.placeholders}
        if slot.slot is None:  # a "slot" spec always names its placeholder (semantics.sites.PositionSpec)
            return
        if slot.slot not in everywhere:
            self.sink.error(E0611, f"slot `{slot.slot}` is not a placeholder of network `{net.name}`'s prompt",
                            slot.span, "no such placeholder",
                            help=did_you_mean(slot.slot, everywhere) or
                            f"placeholders are {join_names(sorted(everywhere)) or 'none'}")
            return
        short = [(prompt.case_name(t), t.count(slot.slot)) for t in templates if t.count(slot.slot) < slot.occurrence]
        if short:
            counts = "; ".join(f"{n} has {c}" for n, c in short)
            self.sink.error(E0611, f"`slot({slot.slot}, {slot.occurrence})` needs {slot.occurrence} occurrence(s) "
                            f"of `{{{slot.slot}}}` in every prompt template: {counts}", slot.span,
                            "not in every template", help="occurrences count from 1 within one template")

    # encodings against a model ---------------------------------------------------------
    def _check_prompt(self, prompt: PromptIR, model: CausalModel, owner: str) -> None:
        """Placeholders name variables of `model`; `by` cases are its values, every one."""
        variables = model.variables
        for t in prompt.templates():
            for part in t.parts:
                if isinstance(part, Placeholder) and part.name not in variables:
                    self.sink.error(E0606, f"template of {owner} refers to `{{{part.name}}}`, which is not a "
                                    f"variable of model `{model.name}`", t.span_of(part), "unknown slot",
                                    help=did_you_mean(part.name, variables) or
                                    f"variables are {join_names(model.order)}")
        if prompt.by is None:
            return
        var = variables.get(prompt.by)
        if var is None:
            self.sink.error(E0203, f"`prompt by {prompt.by}`: `{prompt.by}` is not a variable of model "
                            f"`{model.name}`", prompt.by_span, "unknown variable",
                            help=did_you_mean(prompt.by, variables, "variables"))
            return
        dom = var.domain
        covered: dict[Any, Span] = {}
        outside = False
        for case in prompt.cases:
            member = dom.lookup(case.key)
            if member is None:
                self.sink.error(E0303, f"{show_value(case.key)} is not a value of `{prompt.by}` ({dom.describe()})",
                                case.span, "outside the domain", help=suggest_value(case.key, dom))
                outside = True
                continue
            if member in covered:
                self.sink.error(E0201, f"prompt case {show_value(member)} is given twice", case.span,
                                "given again", notes=[f"first given at {covered[member]}"],
                                help="give each value one template; delete the second case")
                continue
            covered[member] = case.span
        missing = [v for v in dom.values if v not in covered]
        if missing and not outside:  # a key outside the domain is usually a misspelt missing one
            shown = ", ".join(show_value(v) for v in missing[:10]) + (f", … ({len(missing)} in all)"
                                                                if len(missing) > 10 else "")
            self.sink.error(E0607, f"`prompt by {prompt.by}` has no template for {shown}", prompt.by_span,
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
        if net.framework == "torch" and net.encode is None:
            self.encode_reported.add(net.name)
            self.sink.error(E0610, f"torch network `{net.name}` needs an `encode` hook", self.network_decls[
                net.name].name.span, "no encode hook",
                notes=[f"used by {user} at {user_span}"],
                help="the tool cannot guess how high-level inputs become tensors (column order, ids or "
                     "one-hot, dtype): add `{ encode \"file.py:encode\" }`")
        elif net.framework == "hf" and net.encode is None and net.name not in self.prompt_declared:
            self.encode_reported.add(net.name)
            self.sink.error(E0610, f"hf network `{net.name}` needs a prompt template or an `encode` hook",
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
                self.sink.error(E0606, f"answer template of network `{net.name}` refers to `{{{part.name}}}` "
                                f"({what} of `{model.name}`); it may only use the output `{{{output}}}`",
                                t.span_of(part), "not the aligned output",
                                help=did_you_mean(part.name, [output]) or
                                f"the answer is rendered from the expected value of `{output}`")
                ok = False
        if ok and output not in t.placeholders:
            self.sink.error(E0606, f"answer template of network `{net.name}` does not mention the output "
                            f"`{{{output}}}`", t.span, "constant answer",
                            help=f"write e.g. `answer \" {{{output}}}\"`", notes=[f"output aligned at {where}"])


MAX_POSITION_FAMILY = 4096


def _position_at(expr: A.PositionExpr, var: str, k: int) -> A.PositionExpr | None:
    """A position family's expression for element k (None: before the first token)."""
    if isinstance(expr, A.NamedPos) and expr.name.text == var:
        return A.IndexPos(k, span=expr.span)
    if isinstance(expr, A.OffsetPos) and expr.base.text == var:
        return A.IndexPos(k + expr.offset, span=expr.span) if k + expr.offset >= 0 else None
    if isinstance(expr, A.SlotPos) and expr.occurrence_var is not None and expr.occurrence_var.text == var:
        return A.SlotPos(expr.slot, k, expr.part, span=expr.span)
    return expr
