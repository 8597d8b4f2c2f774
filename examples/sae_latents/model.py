"""The network of this example: the planted hierarchical-equality net of causalspec.testing.planted."""

from causalspec.testing.planted import build_planted, encode

__all__ = ["build_planted", "encode"]
