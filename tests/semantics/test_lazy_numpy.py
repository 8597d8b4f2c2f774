"""semantics/lazy_numpy.py: a module imported on first use, whose bound globals then become the
module itself (the evaluators' `np.add` is a plain module attribute read afterwards)."""

from __future__ import annotations

import json

import pytest

from causalspec.semantics.lazy_numpy import LazyModule


def test_the_first_attribute_read_imports_the_module_and_rebinds_the_globals():
    lazy = LazyModule("json")
    namespace: dict = {}
    namespace["js"] = lazy.bind(namespace, "js")
    other: dict = {"js": "replaced by the user"}
    lazy.bind(other, "js")
    assert namespace["js"] is lazy
    assert namespace["js"].dumps([1]) == "[1]"
    assert namespace["js"] is json  # rebound: later reads skip the stand-in
    assert other["js"] == "replaced by the user"  # a global rebound to something else is left alone
    assert lazy.bind({}, "js") is json  # bound after the import: the module at once


def test_dunder_probes_do_not_import():
    lazy = LazyModule("a_module_that_does_not_exist")
    with pytest.raises(AttributeError):
        lazy.__wrapped__  # noqa: B018 - what inspect/copy probe
    with pytest.raises(ModuleNotFoundError):
        lazy.anything  # noqa: B018
