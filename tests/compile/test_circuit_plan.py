"""compile/circuit_plan.py: node names, what each site kind stands for as circuit nodes, and the
resolution errors a user's circuit can hit (each names the site and the fix)."""

from __future__ import annotations

import pytest

from causalspec.compile.circuit_plan import Arch, CircuitPlanError, Node, parse_node_name, site_nodes
from causalspec.semantics.sites import SiteSpec

ARCH = Arch(layers=2, heads=3, family="toy")


@pytest.mark.parametrize("name, node", [
    ("a1.h2", Node.attention(1, 2)), ("m0", Node.mlp(0)), ("input", "embed"), ("embed", "embed"),
    ("logits", "logits"), (" m1 ", Node.mlp(1)),
])
def test_parse_node_name(name, node):
    assert parse_node_name(name) == node


@pytest.mark.parametrize("name", ["a1", "h1.a2", "mx", "b0", ""])
def test_parse_node_name_rejects(name):
    with pytest.raises(ValueError, match="is not a node name"):
        parse_node_name(name)


@pytest.mark.parametrize("site, nodes", [
    (SiteSpec("embed"), None),
    (SiteSpec("head", 1, 2), ["head[1.2]"]),
    (SiteSpec("head.z", 0, 0), ["head[0.0]"]),
    (SiteSpec("attn", 1), ["head[1.0]", "head[1.1]", "head[1.2]"]),
    (SiteSpec("mlp.out", 0), ["mlp[0]"]),
])
def test_site_nodes(site, nodes):
    got = site_nodes(site, ARCH)
    assert (None if got is None else [str(n) for n in got]) == nodes


@pytest.mark.parametrize("site, message", [
    (SiteSpec("head.q", 1, 2), "`head[1.2].q` is an input of a head, not a circuit node: list the head "
                               "(`head[1.2]`) and route to its input with an edge (`… -> GROUP.q`)"),
    (SiteSpec("resid.post", 0), "`resid.post[0]` cannot be evaluated as a circuit node"),
    (SiteSpec("mlp", 2), "`mlp[2]`: layer 2 out of range (toy has 2 layers, 0..1)"),
    (SiteSpec("attn", -1), "layer -1 out of range"),
    (SiteSpec("head", 0, 3), "`head[0.3]`: head 3 out of range (toy has 3 heads per layer, 0..2)"),
])
def test_site_nodes_errors(site, message):
    with pytest.raises(CircuitPlanError) as info:
        site_nodes(site, ARCH)
    assert message in str(info.value)
