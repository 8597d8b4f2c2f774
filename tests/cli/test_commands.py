"""The command table: one place lists the commands; a broken command module fails loudly
(it used to be swallowed, silently removing `check`); renderers never import the CLI."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import causalspec
from causalspec import errors
from causalspec.cli.app import COMMANDS, build_parser, exit_status, main
from causalspec.files import OverwriteRefused
from causalspec.run.adapters import CheckUsageError
from causalspec.run.devices import BadDeviceOrDtype
from causalspec.run.loading import NetworkUnavailable

PACKAGE = Path(causalspec.__file__).resolve().parent


def _subcommands(parser) -> list[str]:
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return list(sub.choices)


def test_the_parser_offers_exactly_the_commands_of_the_table():
    assert _subcommands(build_parser()) == [c.name for c in COMMANDS]
    assert [c.name for c in COMMANDS] == ["parse", "graph", "sample", "check", "locate", "circuit", "fmt"]


@pytest.mark.parametrize("broken, importer", [("causalspec.semantics.blocks", "causalspec.semantics.analyse")])
def test_a_broken_import_fails_loudly_instead_of_removing_a_feature(monkeypatch, broken, importer):
    parent, _, child = broken.rpartition(".")
    monkeypatch.setitem(sys.modules, broken, None)  # importing it raises ImportError
    monkeypatch.delattr(sys.modules[parent], child, raising=False)
    monkeypatch.delitem(sys.modules, importer)
    with pytest.raises(ImportError):
        importlib.import_module(importer)


@pytest.mark.parametrize("broken", ["causalspec.cli.check", "causalspec.cli.circuit"])
def test_a_broken_command_module_fails_loudly(monkeypatch, broken):
    # command modules load lazily (only the command that runs): a broken one still raises
    # its ImportError — from the full parser (`--help`), from the table, and when it runs
    from causalspec.cli import app

    parent, _, child = broken.rpartition(".")
    monkeypatch.setitem(sys.modules, broken, None)
    monkeypatch.delattr(sys.modules[parent], child, raising=False)
    with pytest.raises(ImportError):
        build_parser()
    with pytest.raises(ImportError):
        app.COMMANDS  # noqa: B018 - the attribute loads every command
    with pytest.raises(ImportError):
        app.main([child, "--help"])


def test_running_one_command_loads_only_that_command(monkeypatch):
    from causalspec.cli import app

    monkeypatch.setitem(sys.modules, "causalspec.cli.check", None)  # would raise if imported
    monkeypatch.delattr(sys.modules["causalspec.cli"], "check", raising=False)
    parser = build_parser(only="parse")
    assert _subcommands(parser) == [n for n, _ in app.COMMAND_MODULES]
    assert app.main(["parse", str(Path(__file__).resolve().parents[2] / "specs" / "hier_eq.cspec")]) == 0


def test_causalspec_cli_main_is_the_console_script_function():
    from causalspec.cli import main

    assert callable(main) and main.__module__ == "causalspec.cli.app"
    assert importlib.import_module("causalspec.cli").main is main


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "report").glob("*.py")), ids=lambda p: p.name)
def test_renderers_never_import_the_cli(path):
    assert not [m for m in _imports(path) if m == "causalspec.cli" or m.startswith("causalspec.cli.")]


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=lambda p: p.name)
def test_commands_never_import_the_app_module(path):
    """Commands share base.py; only __init__/__main__ reach app.py, which imports every command."""
    if path.name in ("app.py", "__init__.py", "__main__.py"):
        return
    assert "causalspec.cli.app" not in _imports(path)


# ───────────────────────── the one except-ladder: exceptions -> exit codes ─────────────────────────

def _spec_error():
    from causalspec.diagnostics import Diagnostic, Span

    return errors.SpecError([Diagnostic("E0201", "unknown name `Q`", Span("s.cspec", 3, 5))])


@pytest.mark.parametrize("exc, code, said", [
    (_spec_error(), 2, "E0201"),
    (errors.UsageError("--pairs must be at least 1"), 2, "error: --pairs must be at least 1"),
    (OverwriteRefused("out.json is not a file of ours"), 2, "error: out.json is not a file of ours"),
    (BadDeviceOrDtype("unknown device `gpu`"), 2, "error: unknown device `gpu`"),
    (NetworkUnavailable("weights of gpt2 are not cached"), 1, "skipped: weights of gpt2 are not cached"),
    (CheckUsageError("token counts differ"), 1, "error: token counts differ"),
    (errors.CheckError("cannot serve resid.mid[0]"), 1, "error: cannot serve resid.mid[0]"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (BrokenPipeError(), 0, ""),
    (KeyError("oops"), 3, "internal error: KeyError: 'oops'"),
])
def test_the_error_tree_maps_to_exit_codes_in_one_place(exc, code, said, capsys):
    assert exit_status(exc) == code
    err = capsys.readouterr().err
    assert said in err if said else err == ""
    if code != 3:
        assert "bug in causalspec" not in err


def test_main_runs_the_ladder_and_systemexit_passes_through(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "missing.cspec")]) == 2
    with pytest.raises(SystemExit):
        exit_status(SystemExit(4))
