"""semantics.python_names: the names a hook file binds, read from its syntax tree (nothing runs),
so that a misspelt hook function is a located spec error; None when they cannot be known."""

from __future__ import annotations

import pytest

from causalspec.semantics.python_names import top_level_names


def names(tmp_path, text: str):
    path = tmp_path / "hooks.py"
    path.write_text(text)
    return top_level_names(path)


def test_what_a_file_binds_at_its_top_level(tmp_path):
    text = """
import torch, os.path
from model import encode as enc, decode
def build():
    inner = 1
class Net:
    method = 2
async def fetch(): ...
A, (B, *C) = 1, (2, 3)
D: int = 4
E += 1
if torch:
    def cuda_build(): ...
else:
    cpu_build = build
try:
    from fast import go
except ImportError as err:
    go = None
finally:
    done = True
with open(__file__) as fh:
    pass
for i in range(2):
    pass
while False:
    w = 1
x = (walrus := 5)
"""
    assert names(tmp_path, text) == {"torch", "os", "enc", "decode", "build", "Net", "fetch", "A", "B", "C", "D",
                                     "E", "cuda_build", "cpu_build", "go", "err", "done", "fh", "i", "w", "x",
                                     "walrus"}


@pytest.mark.parametrize("text", ["from model import *\n", "globals()['f'] = print\n", "def __getattr__(n): ...\n",
                                  "exec('def f(): pass')\n", "import sys\nsetattr(sys.modules[__name__], 'f', 1)\n",
                                  "def f(:\n", "match 1:\n    case x:\n        pass\n"])
def test_names_that_cannot_be_known_without_running_the_file(tmp_path, text):
    assert names(tmp_path, text) is None


def test_an_unreadable_file_is_no_answer(tmp_path):
    assert top_level_names(tmp_path / "absent.py") is None
    (tmp_path / "bin.py").write_bytes(b"\xff\xfe\x00")
    assert top_level_names(tmp_path / "bin.py") is None


def test_a_name_a_function_declares_global_counts_as_bound(tmp_path):
    """A hook defined through `global` inside a function the top level calls binds a module
    name when the file runs: it must not be reported as missing (a spec error on a valid hook)."""
    text = """
def _setup():
    global encode
    def encode(x):
        return x
_setup()
"""
    assert names(tmp_path, text) >= {"_setup", "encode"}
