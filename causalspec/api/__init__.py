"""The Python API: load a spec, bind networks already in memory, check it, see the results.

The names here are re-exported by `causalspec` itself (`causalspec.load`, …); that is the
public surface, documented in docs/python-api.md. This package sits at the top of the
layering, beside `cli`: it may import every stage, and nothing in causalspec imports it.
"""

from causalspec.api.networks import Network
from causalspec.api.results import Results, Sweeps
from causalspec.api.spec import Spec, load, loads

__all__ = ["Network", "Results", "Spec", "Sweeps", "load", "loads"]
