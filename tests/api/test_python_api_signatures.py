"""docs/python-api.md's headings give each function's signature: they must name exactly the
parameters the function takes, in order, with the same defaults (a parameter added to the API and
not to the page, or renamed, fails here)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import causalspec

PAGE = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"
HEADINGS = re.findall(r"^### `((?:causalspec|Spec)\.\w+)\((.*?)\)(?: -> \w+)?`$", PAGE.read_text(encoding="utf-8"),
                      re.M)


def _documented(params: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for part in (p.strip() for p in params.split(",")):
        if part and part != "*":
            name, _, default = part.partition("=")
            out.append((name, default or None))
    return out


def _actual(target) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for p in inspect.signature(target).parameters.values():
        if p.name == "self":
            continue
        out.append((p.name, None if p.default is inspect.Parameter.empty else repr(p.default).replace("'", '"')))
    return out


def test_the_page_has_signature_headings():
    assert {name for name, _ in HEADINGS} >= {"causalspec.load", "causalspec.loads", "Spec.check", "Spec.locate",
                                             "causalspec.Network"}


@pytest.mark.parametrize("name,params", HEADINGS, ids=[h[0] for h in HEADINGS])
def test_heading_matches_the_signature(name, params):
    owner, attr = name.split(".")
    target = getattr(causalspec if owner == "causalspec" else causalspec.Spec, attr)
    assert _documented(params) == _actual(target), f"docs/python-api.md: the heading of {name} is out of date"
