"""Every option of every benchmark script says what it does in `--help`.

Each script runs as a subprocess, as a user would start it (`python benchmarks/x.py --help`);
they run side by side (most import torch at the top: about a second each). Options hidden on
purpose (`help=argparse.SUPPRESS`, e.g. training_memory.py's child-process `--one`) do not
show in `--help` and are not asked for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def options_without_help(help_text: str) -> list[str]:
    """The options of an argparse `--help` text whose entry has no help text."""
    section = re.split(r"^options:\n", help_text, maxsplit=1, flags=re.M)[1]
    section = re.split(r"\n\n", section, maxsplit=1)[0]  # up to an epilog, if any
    entries = re.split(r"\n(?=  -)", section)
    # an entry is `  --name VALUE` then, after two or more spaces or on the next lines, its help
    return [e.strip() for e in entries if len(re.split(r"\s{2,}", e.strip(), maxsplit=1)) < 2]


def test_the_parser_of_the_check_reads_argparse_help():
    text = ("usage: x\n\noptions:\n  -h, --help   show this help message and exit\n  --runs RUNS\n"
            "  --positions POSITIONS\n                        comma-separated\n  --cold       time cold\n")
    assert options_without_help(text) == ["--runs RUNS"]


def test_every_benchmark_option_has_a_help_text():
    assert len(SCRIPTS) >= 7, SCRIPTS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in SCRIPTS}
    missing = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name} --help: {err}"
        assert out.startswith("usage: "), name
        if bare := options_without_help(out):
            missing[name] = bare
    assert missing == {}
