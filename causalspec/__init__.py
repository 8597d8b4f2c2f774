"""causalspec: a declarative language for causal hypotheses about neural networks, and a checker."""

__version__ = "0.1.0"  # keep equal to pyproject.toml's [project] version (tests/test_packaging.py checks)
