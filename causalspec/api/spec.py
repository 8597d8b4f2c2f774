"""`causalspec.load` / `loads` and `Spec`: a validated spec, checked from Python.

Why a layer on top: the CLI, the pytest plugin and this API must give the same verdicts, so
`Spec.check` runs the same claims runner with the same options builder as `causalspec check`
(`cli.options.check_options`), and only adds what a notebook needs — live networks bound by
name, results as objects, a notebook progress bar. Nothing below `causalspec.api` imports it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from causalspec.api.networks import bind_networks, network_kind
from causalspec.api.progress import run_progress
from causalspec.api.results import Results, Sweeps
from causalspec.diagnostics import Diagnostic, did_you_mean, render
from causalspec.errors import SpecError, UsageError
from causalspec.semantics.analyse import analyse
from causalspec.semantics.ir import SpecIR
from causalspec.syntax import ast as A
from causalspec.syntax.parser import parse

SEED_ARGUMENT = "seed="  # how an API run names a seed override in reports (the CLI: --seed)


class InvalidSpec(SpecError):
    """A `SpecError` whose text is every diagnostic rendered as `causalspec parse` prints them."""

    def __init__(self, diagnostics: Sequence[Diagnostic], rendered: str):
        super().__init__(diagnostics)
        self.rendered = rendered

    def __str__(self) -> str:
        return self.rendered


def load(path: str | os.PathLike[str], live: Iterable[str] = ()) -> Spec:
    """Parse and validate the spec file at `path`; `SpecError` (every diagnostic) when invalid.
    `live` names networks you will bind in memory (`Spec.check(networks=...)`): their files
    (weights, builder, hook files, model folder) need not exist."""
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read spec file {file}: {exc.strerror or exc}") from None
    return _analysed(text, file, Path(file).resolve().parent, live)


def loads(text: str, base_dir: str | os.PathLike[str] | None = None, filename: str = "<string>",
          live: Iterable[str] = ()) -> Spec:
    """Parse and validate spec text. Relative paths in it (weights, hook files, model folders)
    are resolved against `base_dir` (default: the current folder); reports name the spec
    `base_dir/filename`. `live` as for `load`. `SpecError` (every diagnostic) when invalid."""
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    file = os.path.join(os.fspath(base_dir), filename) if base_dir is not None else filename
    return _analysed(text, file, folder.resolve(), live)


def _analysed(text: str, file: str, base_dir: Path, live: Iterable[str]) -> Spec:
    names = frozenset([live] if isinstance(live, str) else live)
    try:
        tree = parse(text, file)
        declared = [it.name.text for it in tree.items if isinstance(it, A.Network)]
        for name in sorted(names - set(declared)):  # before analysis: its file errors would hide the typo
            hint = did_you_mean(name, declared)
            raise UsageError(f"live={name!r}: {file} declares no network `{name}`"
                             + (f"; {hint}" if hint else f" (networks: {', '.join(declared) or 'none'})"))
        ir = analyse(tree, base_dir, names)
    except SpecError as exc:
        rendered = render(exc.diagnostics, {file: text})
        raise InvalidSpec(exc.diagnostics, f"{rendered}\n{file}: {len(exc.diagnostics)} error(s)") from None
    return Spec(ir, text, names)


@dataclass(frozen=True)
class Spec:
    """A validated spec. `check` runs its checks and circuit claims; `locate` its sweeps."""

    ir: SpecIR
    text: str
    live: frozenset[str] = frozenset()  # networks to be bound in memory: their files were not required

    @property
    def file(self) -> str:
        return self.ir.file

    @property
    def checks(self) -> list[str]:
        """The names of the spec's checks, then its circuit claims (what `only=` selects from)."""
        return [c.name for c in self.ir.checks] + list(self.ir.circuits)

    @property
    def networks(self) -> dict[str, str]:
        """Network name -> its kind, "hf" or "torch" (what `networks=` binds to)."""
        return {name: network_kind(net) for name, net in self.ir.networks.items()}

    @property
    def warnings(self) -> list[str]:
        """The spec's warnings, rendered as `causalspec parse` prints them."""
        return [render([w], {self.file: self.text}) for w in self.ir.warnings]

    def check(self, networks: Mapping[str, Any] | None = None, *, only: str | Sequence[str] | None = None,
              pairs: int | None = None, seed: int | None = None, batch: int | None = None,
              device: str | None = None, dtype: str | None = None, strict: bool = False,
              allow_download: bool = False, retrain: bool = False, artifacts: str | os.PathLike[str] | None = None,
              progress: bool | None = None) -> Results:
        """Run the checks and circuit claims (those named in `only`) and return their results.

        `networks` binds live objects to the spec's network names (see `Network`); the others
        are loaded from their files as `causalspec check` loads them. `pairs`, `seed`, `batch`,
        `device`, `dtype`, `strict`, `allow_download`, `retrain`, `artifacts` are the CLI's `--pairs` …
        `--artifacts` (`device`/`dtype` apply to networks loaded from files; a bound one stays where it is).
        `progress`: False for no bar; otherwise a notebook bar in Jupyter, the terminal's elsewhere."""
        from causalspec.claims import runner

        names = self._only(only)
        self._all_live_bound(networks)
        options, bar = self._options(only=names, pairs=pairs, seed=seed, batch=batch, device=device, dtype=dtype,
                                     strict=strict, allow_download=allow_download, retrain=retrain,
                                     artifacts=None if artifacts is None else os.fspath(artifacts), progress=progress)
        cache = runner.NetworkCache(bound=bind_networks(self.ir, networks))
        results = []
        claims: list[Any] = runner.selected_checks(self.ir, names)
        for claim in claims:
            if bar is not None:
                bar.begin(claim.name)
            try:
                results.append(runner.run_check(self.ir, claim, options, cache))
            finally:
                if bar is not None:
                    bar.end()
        return Results(results, [self.file])

    def locate(self, networks: Mapping[str, Any] | None = None, *, only: str | Sequence[str] | None = None,
               pairs: int | None = None, seed: int | None = None, batch: int | None = None,
               device: str | None = None, dtype: str | None = None, retrain: bool = False,
               artifacts: str | os.PathLike[str] | None = None, progress: bool | None = None) -> Sweeps:
        """Run the `locate` sweeps of the checks that have one (as `causalspec locate` does):
        held-out IIA per site and position, and the best cell. A check whose network cannot be
        loaded or whose sites cannot be served raises (the CLI reports it and exits 1)."""
        from causalspec.claims import runner
        from causalspec.claims.locate import sweep
        from causalspec.compile.plan import compile_check

        names = self._only(only)
        self._all_live_bound(networks)
        todo = [c for c in self.ir.checks if c.locate and (not names or c.name in names)]
        if not todo:
            raise UsageError("no check with a `locate` statement" + (f" among {', '.join(names)}" if names else "")
                             + f" in {self.file}")
        options, bar = self._options(only=names, pairs=pairs, seed=seed, batch=batch, device=device, dtype=dtype,
                                     strict=False, allow_download=False, retrain=retrain,
                                     artifacts=None if artifacts is None else os.fspath(artifacts), progress=progress)
        cache = runner.NetworkCache(bound=bind_networks(self.ir, networks))
        found = []
        for check in todo:
            plan: Any = compile_check(self.ir, check, options.pairs, options.seed)
            net = cache.get(self.ir, plan.network.name, options)
            if bar is not None:
                bar.begin(check.name)
            try:
                found.append(sweep(self.ir, check, plan, net, options, progress=bar))
            finally:
                if bar is not None:
                    bar.end()
        return Sweeps(found)

    def _all_live_bound(self, networks: Mapping[str, Any] | None) -> None:
        missing = sorted(self.live - set(networks or {}))
        if missing:
            raise UsageError(f"network(s) {', '.join(f'`{n}`' for n in missing)} of {self.file} were loaded as live "
                             "(their files are not read): bind them, e.g. networks={"
                             + ", ".join(f"{n!r}: model" for n in missing) + "}")

    def _only(self, only: str | Sequence[str] | None) -> list[str] | None:
        """`only` as a list of names, each one a check or circuit claim of the spec."""
        if only is None:
            return None
        names = [only] if isinstance(only, str) else list(only)
        known = self.checks
        for name in names:
            if name not in known:
                hint = did_you_mean(name, known)
                raise UsageError(f"only={name!r}: no check of that name in {self.file}"
                                 + (f"; {hint}" if hint else f" (checks: {', '.join(known) or 'none'})"))
        return names

    def _options(self, *, only: list[str] | None, progress: bool | None, **values: Any) -> tuple[Any, Any]:
        """(CheckOptions, progress bar or None), validated as the CLI validates its flags."""
        from causalspec.cli.options import check_options, check_run_folders, validate_run_options

        namespace = argparse.Namespace(**values)
        validate_run_options(namespace, flag=lambda name: f"{name.replace('-', '_')}=")
        check_run_folders(namespace, flag=lambda name: f"{name.replace('-', '_')}=")
        bar = run_progress(progress)
        options = check_options(vars(namespace), only=only, progress=bar, seed_flag=SEED_ARGUMENT)
        return options, bar

    def __repr__(self) -> str:
        return f"<causalspec.Spec {self.file}: checks {', '.join(self.checks) or 'none'}>"
