"""Where trained featurizers are kept, and the content hash that names them.

Why a module of its own: the key decides whether a check retrains or reuses an artifact, so
everything that determines the trained featurizers (the model, network and alignment
declarations, the network's weights and hook files, the interchange sets, seed, training
settings and the training algorithm's version) is listed in one place, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from causalspec.compile.plan import CheckPlan
from causalspec.run.train import ALGORITHM_VERSION

ARTIFACT_DIR = ".causalspec/artifacts"  # relative to the spec file's folder, unless options say otherwise

WEIGHT_HASHES: dict[int, tuple[Any, str]] = {}


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 over the module's state dict (names, shapes, dtypes, bytes); cached per module."""
    cached = WEIGHT_HASHES.get(id(module))
    if cached is not None and cached[0] is module:
        return cached[1]
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    WEIGHT_HASHES[id(module)] = (module, digest)
    return digest


def _file_hash(path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _pool_hash(plan: CheckPlan) -> str:
    """sha256 of the held-out input rows (as domain codes, sorted)."""
    columns = [plan.model.domain(k).codes(plan.pool[k]).tolist() for k in plan.model.inputs]
    return hashlib.sha256(json.dumps(sorted(map(list, zip(*columns)))).encode()).hexdigest()


def artifact_key(ir, check, alignment, net, plan: CheckPlan, config, variant: str) -> str:
    """Content hash of everything that determines the trained featurizers."""
    model_ast = getattr(plan.model, "ast", None)
    net_ir = plan.network
    hooks = {}
    for what in ("builder", "encode", "decode"):
        ref = getattr(net_ir, what, None)
        if ref is not None:
            hooks[what] = [ref.ref, _file_hash(ref.path)]
    bindings = {v: [repr(b) for b in bs] for v, bs in sorted(alignment.variables.items())}
    # what the output is read as: one output (at its position, when it has one), or every element of
    # `O[i] -> output @ i` (trained once over all of them: each element's run finds the same key)
    elements = getattr(alignment, "train_elements", ())
    read: list = [[list(e) for e in elements]] if elements else [alignment.output]
    if not elements and getattr(alignment, "output_position", None) is not None:
        read.append(alignment.output_position)
    doc = {
        "model": repr(model_ast) if model_ast is not None else repr(sorted(plan.model.variables)),
        "network": [net_ir.framework, net_ir.source, repr(getattr(net_ir, "encoding", None)), hooks],
        "alignment": [bindings, *read, alignment.decoder],
        "interchange": [c.groups for c in plan.claims],
        # the held-out inputs: training excludes exactly these, so another pool means another split
        "heldout": _pool_hash(plan),
        "pairs": [int(check.pairs), int(plan.seed), check.pool, getattr(check, "train", None)],
        "weights": weights_hash(net.module),
        "config": config.key(),
        "variant": variant,
        "algorithm": ALGORITHM_VERSION,
    }
    if getattr(check, "tolerance", None) is not None:  # a real output: training stops early within it
        doc["tolerance"] = [str(check.tolerance), getattr(net_ir, "output_logit", None)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
