"""pytest plugin: every `check` and `circuit` of a `.cspec` file becomes a test item.

    pytest specs/                         # each check is an item: specs/hier_eq.cspec::TrueAlignment
    pytest specs/ --causalspec-pairs 256  # override every check's pairs (and --causalspec-seed)
    pytest specs/ --causalspec-strict     # a skipped check fails (ini: causalspec_strict = true)

Every run option of `causalspec check` is offered as `--causalspec-<name>` (`--causalspec-batch`,
`--causalspec-device`, ...): both are built from the table in causalspec/cli/options.py, and
the values are checked in `pytest_configure` as the CLI checks its own.

Installed through the `pytest11` entry point (`pip install -e .` activates it); without
installing, load it with `-p causalspec.pytest_plugin` (which also works when it is
installed: the entry point then stands aside, see `_block_second_registration`).

Which `.cspec` files are collected — a spec runs networks, so it is never collected by
accident (test suites keep corpora of bad or toy specs, e.g. this repo's tests/syntax):
  1. a `.cspec` file named on the command line is always collected;
  2. if the ini option `causalspec_paths` is set (directories, relative to the ini file),
     `.cspec` files under those directories are collected, and no others;
  3. otherwise `.cspec` files under a directory named on the command line are collected
     (`pytest specs/`), but never under directories pytest found by itself (`testpaths`,
     or the current directory when no argument is given).

Verdicts are those of `causalspec check` (both call causalspec.claims.runner): passed -> pass;
failed or error -> failure showing the same block as the terminal report (numbers,
conditions, counterexamples, reproduce command); skipped -> pytest skip with the reason, or,
with `--causalspec-strict` (or the ini option `causalspec_strict = true`), a failure whose
reason names that option. Both are located at the spec's `check` line (`reportinfo`): a
failure's text ends with `path:line: check NAME failed`, `pytest -rs` lists a skip there.
A spec that fails analysis is one failing item showing the rendered diagnostics. Each
file is loaded once and its networks are shared by its items.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import cast

import pytest

from causalspec.cli.base import UsageError
from causalspec.cli.options import (PLUGIN_PREFIX, add_plugin_options, check_options, check_run_folders, plugin_values,
                                    validate_run_options)
from causalspec.score.results import ERROR, FAILED, SKIPPED, CheckResult
from causalspec.diagnostics import SpecError, render
from causalspec.semantics.paths import missing_path_help

SUFFIX = ".cspec"


ENTRY_POINT = "causalspec"  # the plugin's name in the pytest11 entry point (pyproject.toml)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    _block_second_registration(pluginmanager)
    group = parser.getgroup("causalspec", "causalspec spec checks (.cspec files)")
    add_plugin_options(group.addoption)  # every option of `causalspec check` that shapes a run
    parser.addini("causalspec_strict", type="bool", default=False,
                  help="fail every skipped check, as --causalspec-strict does")
    parser.addini("causalspec_paths", type="paths", default=[],
                  help="directories whose .cspec files are collected (default: only files or "
                       "directories named on the command line)")


_VALUES = pytest.StashKey[argparse.Namespace]()


def pytest_configure(config: pytest.Config) -> None:
    """The `--causalspec-*` options checked as `causalspec check` checks its own, before any
    item runs: a bad device name or a report folder that is not ours stops the session with
    the message (pytest's usage error), not one failure per check."""
    values = plugin_values(config.getoption)
    flag = lambda name: f"--{PLUGIN_PREFIX}{name}"  # noqa: E731
    try:
        validate_run_options(values, flag)
        check_run_folders(values, flag)
        _check_spec_paths(config)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_VALUES] = values


def _check_spec_paths(config: pytest.Config) -> None:
    """Each `causalspec_paths` entry must be a folder holding a .cspec file: the option selects
    the specs that run, so a misspelt entry would select none, and the session would be green
    with no claim tested (the rest of the suite passing)."""
    base = config.inipath.parent if config.inipath else Path(config.invocation_params.dir)
    for root in config.getini("causalspec_paths"):
        root = Path(os.path.abspath(root))
        shown = os.path.relpath(root, base) if _is_under(root, base) else str(root)
        where = f"causalspec_paths entry `{shown}`" + (f" (in {config.inipath.name})" if config.inipath else "")
        if root.exists() and not root.is_dir():
            raise UsageError(f"{where} is a file, not a folder: name the folder that holds the specs")
        if not root.exists():
            raise UsageError(f"{where} not found: no spec under it would run; "
                             + missing_path_help(shown, root, f"paths are relative to {base}"))
        if next(root.rglob(f"*{SUFFIX}"), None) is None:
            raise UsageError(f"{where} holds no {SUFFIX} file: no spec under it would run; name the folder "
                             "that holds the specs")


def _block_second_registration(pluginmanager: pytest.PytestPluginManager) -> None:
    """`pytest -p causalspec.pytest_plugin` with causalspec installed: `-p` registers this
    module under its module name first, then pytest would register it again through the
    entry point and stop with "Plugin already registered under a different name". Blocking
    the entry point's name skips that second registration (pluggy skips blocked names);
    loaded through the entry point, nothing changes. `pytest_addoption` is where a plugin
    first sees the plugin manager: it runs as soon as the module is registered."""
    me = sys.modules[__name__]
    name = pluginmanager.get_name(me)
    if name is not None and name != ENTRY_POINT and not pluginmanager.has_plugin(ENTRY_POINT):
        pluginmanager.set_blocked(ENTRY_POINT)


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _explicit_args(config: pytest.Config) -> list[Path]:
    """The paths the user named on the command line (not testpaths, not the default '.')."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    base = Path(config.invocation_params.dir)
    out = []
    for arg in config.args:
        path = arg.split("::", 1)[0]
        if path and not path.startswith("-"):
            out.append(Path(os.path.abspath(base / path)))
    return out


def wanted(config: pytest.Config, file_path: Path) -> bool:
    """Whether a .cspec file is to be collected (rules in the module docstring)."""
    file_path = Path(os.path.abspath(file_path))
    explicit = _explicit_args(config)
    if file_path in explicit:
        return True
    roots = [Path(os.path.abspath(p)) for p in config.getini("causalspec_paths")]
    if roots:
        return any(_is_under(file_path, r) for r in roots)
    return any(_is_under(file_path, p) for p in explicit if p.is_dir())


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == SUFFIX and wanted(parent.config, file_path):
        return SpecFile.from_parent(parent, path=file_path)
    return None


def _display_path(config: pytest.Config, path: Path) -> str:
    """The spec path as the user would type it: relative to where pytest was started when under it."""
    path = Path(os.path.abspath(path))
    base = Path(os.path.abspath(config.invocation_params.dir))
    return str(path.relative_to(base)) if _is_under(path, base) else str(path)


class SpecFile(pytest.File):
    def collect(self):
        from causalspec.claims.runner import NetworkCache
        from causalspec.semantics.analyse import load

        try:
            self.ir = load(_display_path(self.config, self.path))
        except SpecError as exc:
            text = render(exc.diagnostics) + f"\n{self.path.name}: {len(exc.diagnostics)} error(s)"
            here = [d.span.line for d in exc.diagnostics
                    if d.severity == "error" and d.span.known and Path(d.span.file).resolve() == self.path.resolve()]
            yield InvalidSpecItem.from_parent(self, name="spec", text=text, line=here[0] if here else None)
            return
        from causalspec.claims.runner import selected_checks

        self.networks = NetworkCache()
        for check in selected_checks(self.ir, None):  # checks, then circuit claims
            yield CheckItem.from_parent(self, name=check.name, check=check)


class CheckFailed(Exception):
    """Raised by an item whose check failed or errored; rendered by repr_failure."""

    def __init__(self, result: CheckResult):
        super().__init__(result.reason)
        self.result = result


class InvalidSpecFailure(Exception):
    pass


class InvalidSpecItem(pytest.Item):
    """Stands for a spec that failed analysis: fails with the diagnostics, no traceback."""

    def __init__(self, *, text: str, line: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.text = text
        self.line = line  # of the first error in this file (1-based), if any

    def runtest(self) -> None:
        raise InvalidSpecFailure(self.text)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, InvalidSpecFailure):
            return self.text
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None if self.line is None else self.line - 1, f"{self.path.name}: invalid spec"


class CheckItem(pytest.Item):
    def __init__(self, *, check, **kwargs):
        super().__init__(**kwargs)
        self.check = check
        self.result: CheckResult | None = None

    def _options(self):
        config = self.config
        flag = "--causalspec-strict" if config.getoption("causalspec_strict") else \
            "causalspec_strict = true (ini)" if config.getini("causalspec_strict") else ""
        return check_options(config.stash[_VALUES], seed_flag="--causalspec-seed", strict=bool(flag),
                             strict_flag=flag or "--causalspec-strict")

    def runtest(self) -> None:
        from causalspec.claims.runner import run_check

        spec = cast("SpecFile", self.parent)
        result = run_check(spec.ir, self.check, self._options(), spec.networks)
        self.result = result
        for c in result.claims:
            if c.iia.trials:
                key = c.label if c.kind == "declared" else f"{c.label} (aaa subset)"
                self.user_properties.append((f"iia {key}", c.iia.estimate))
        if result.circuit is not None:
            for sc in result.circuit.scores:
                self.user_properties.append((sc.name, sc.value.estimate))
        if result.status == SKIPPED:
            # `pytest.skip(...)` would report the skip at the line that raised it (this file);
            # `_use_item_location` makes pytest take it from `reportinfo`, the spec's `check`
            # line, as pytest does itself for skip markers and skipped unittest cases.
            raise pytest.skip.Exception(result.reason, _use_item_location=True)
        if result.status in (FAILED, ERROR):
            raise CheckFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CheckFailed):
            from causalspec.report.terminal import check_text

            # the last line names the spec's `check` line, as pytest ends a Python failure
            # with the failing line (`tests/test_x.py:12: AssertionError`)
            result = excinfo.value.result
            status = "failed" if result.status == FAILED else "error"
            return check_text(result, header=False).rstrip() + f"\n{self.spec_location()}: {self._what()} {status}"
        return super().repr_failure(excinfo, style)

    def _what(self) -> str:
        return f"{'check' if hasattr(self.check, 'alignment') else 'circuit'} {self.name}"

    def spec_location(self) -> str:
        """`path:line` of the check in the spec, the path as the user typed it."""
        return f"{_display_path(self.config, self.path)}:{self.check.span.line}"

    def reportinfo(self):
        # 0-based line: pytest adds one wherever it shows it (skip lines, junit `line`)
        return self.path, max(self.check.span.line - 1, 0), self._what()
