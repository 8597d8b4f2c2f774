"""causalspec: a declarative language for causal hypotheses about neural networks, and a checker.

The public Python API (docs/python-api.md) is what `__all__` lists::

    import causalspec
    spec = causalspec.load("specs/hier_eq.cspec")
    results = spec.check(networks={"hand": module})
    results  # in a notebook: the HTML report inline

Everything else is private. The names are imported on first use (PEP 562), so `import
causalspec` stays cheap for the command line and the pytest plugin, which need only the
version and never torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # keep equal to pyproject.toml's [project] version (tests/test_packaging.py checks)

if TYPE_CHECKING:
    from causalspec.api import Network, Results, Spec, Sweeps, load, loads
    from causalspec.errors import CausalspecError, CheckError, CheckSkipped, SpecError, UsageError
    from causalspec.score.results import CheckResult, ClaimResult, ConditionResult
    from causalspec.score.stats import Proportion

# public name -> the module that defines it
_PUBLIC = {
    "load": "causalspec.api", "loads": "causalspec.api", "Spec": "causalspec.api", "Network": "causalspec.api",
    "Results": "causalspec.api", "Sweeps": "causalspec.api",
    "CheckResult": "causalspec.score.results", "ClaimResult": "causalspec.score.results",
    "ConditionResult": "causalspec.score.results", "Proportion": "causalspec.score.stats",
    "CausalspecError": "causalspec.errors", "SpecError": "causalspec.errors", "UsageError": "causalspec.errors",
    "CheckError": "causalspec.errors", "CheckSkipped": "causalspec.errors",
}

__all__ = ["CausalspecError", "CheckError", "CheckResult", "CheckSkipped", "ClaimResult", "ConditionResult",
           "Network", "Proportion", "Results", "Spec", "SpecError", "Sweeps", "UsageError", "__version__",
           "load", "loads"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'causalspec' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
