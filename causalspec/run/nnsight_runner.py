"""The one fixed function an nnsight session runs for a causalspec check — locally or on NDIF.

Why one fixed function fed with data: NDIF (and a self-hosted NDIF) executes the body of an
nnsight session on its own servers, where causalspec is not installed. So everything the
server runs lives here, in a module that imports nothing but torch (a test enforces it), and
is shipped by value (`nnsight.register`); what varies between checks — inputs, sites,
positions, source rows, subspaces, how to read the answer — travels as a plain *plan*
(nested dicts, lists, ints and tensors; `run.nnsight_backend` builds it). What comes back is
one integer output code per example (and, per read site, its width), never activations:
source activations are read and written inside the same session, on the server.

A plan::

    {"format": 1,
     "clean":   [batch, ...],     # forwards whose site values are kept (by key and row) and
                                  # whose answers are decoded
     "patched": [batch, ...],     # forwards with site values written, answers decoded
     "return_reads": bool}        # local runs only: also hand back what was read

    batch = {"inputs": {"input_ids": LongTensor[b, s], "attention_mask": ...},
             "kwargs": {"use_cache": False, ...},
             "rows":   [int] * b,                     # clean batches: unique-row ids
             "steps":  [step, ...],                   # in the order the forward reaches them
             "decode": {"answer_pos": LongTensor[b] | None, "candidates": LongTensor[n] | None}
                       | None}                        # None: hand back the raw output (local only)

    step = {"path": "transformer.h.3", "io": "input" | "output",
            "reads":  [{"key": int, "cols": [a, b] | None, "positions": [[int, ...]] * b | None}],
            "writes": [{"cols": [a, b] | None, "positions": LongTensor[b, n_pos] | None,
                        "key": int, "sources": [int] * b,       # values read by a clean batch
                        "values": Tensor | None,                # or given (local runs)
                        "basis": Tensor[width, k] | (Tensor[width, k], Tensor[k, width]) | None}]}

The edit arithmetic (`mix`, `patch_positions`) and the answer decoding (`decode`) are not
here: they live in `run.patching`, which the torch engine imports too (`run.sites`,
`run.hf_adapter`), so the two backends cannot drift apart. `run.patching` imports only
torch and is shipped by value together with this module; this module imports only torch
and `run.patching` (a test enforces both).
"""

from __future__ import annotations

import torch

from causalspec.run.patching import decode, main_tensor, mix, patch_positions, replace_main

FORMAT = 1

# ───────────────────────── the runner ─────────────────────────

def run(model, plan: dict, remote=False) -> dict:
    """Execute ``plan`` on ``model`` (an nnsight model) in one session; ``remote`` is handed
    to ``model.session`` (False: here; True: NDIF; a URL: that NDIF host; "local": nnsight's
    serialise-and-run-here dry run of the remote path). Returns
    ``{"clean": [per batch], "patched": [per batch], "widths": {key: int}, "reads": {(key, row):
    Tensor}}`` — per batch, a LongTensor of codes, or the raw output where its decode is None."""
    from nnsight import save

    session = model.session(remote=remote) if remote else model.session()
    with session:
        result = execute(model, plan)
        save(result)
    return result


def execute(model, plan: dict) -> dict:
    """The session body: clean batches (reading sites), then patched batches (writing them)."""
    if plan.get("format") != FORMAT:
        raise ValueError(f"causalspec runner: plan format {plan.get('format')!r}, this runner reads {FORMAT}")
    stash: dict = {}
    widths: dict = {}
    out: dict[str, list] = {"clean": [], "patched": []}
    for batch in plan["clean"]:
        out["clean"].append(_forward(model, batch, stash, widths))
    for batch in plan["patched"]:
        out["patched"].append(_forward(model, batch, stash, widths))
    result = {"clean": out["clean"], "patched": out["patched"], "widths": widths}
    if plan.get("return_reads"):
        result["reads"] = stash
    return result


def _forward(model, batch: dict, stash: dict, widths: dict):
    """One traced forward of a batch: its steps in order, then its decoded answer codes.

    nnsight compiles a trace's block on its own (no `return` inside it), so the block only
    calls `_traced` and leaves the answer in a box."""
    box: dict = {}
    with model.trace(**batch["inputs"], **batch.get("kwargs", {})):
        box["out"] = _traced(model, batch, stash, widths)
    return box["out"]


def _traced(model, batch: dict, stash: dict, widths: dict):
    for step in batch["steps"]:
        envoy = _envoy(model, step["path"])
        value = envoy.input if step["io"] == "input" else envoy.output
        x = main_tensor(value)
        if x is None:
            raise ValueError(f"causalspec runner: {step['path']}.{step['io']} has no tensor")
        for read in step["reads"]:
            _read(x, read, batch["rows"], stash, widths)
        if step["writes"]:
            for write in step["writes"]:
                x = _write(x, write, stash)
            new = replace_main(value, x)
            if step["io"] == "input":
                envoy.input = new
            else:
                envoy.output = new
    output = model.output
    raw = output.logits if hasattr(output, "logits") else main_tensor(output)
    spec = batch["decode"]
    if spec is None:
        return raw.detach().cpu()
    return decode(raw, spec["answer_pos"], spec["candidates"]).cpu()


def _envoy(model, path: str):
    envoy = model
    for part in path.split(".") if path else ():
        envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
    return envoy


def _columns(x: torch.Tensor, cols):
    return x if cols is None else x[..., cols[0]:cols[1]]


def _read(x: torch.Tensor, read: dict, rows: list, stash: dict, widths: dict) -> None:
    x = _columns(x, read["cols"])
    widths[read["key"]] = int(x.shape[-1])
    positions = read["positions"]
    for j, row in enumerate(rows):
        if positions is None:
            value = x[j]
        else:
            value = x[j, torch.as_tensor(positions[j], dtype=torch.long, device=x.device)]
        stash[(read["key"], row)] = value.detach().clone()


def _write(x: torch.Tensor, write: dict, stash: dict) -> torch.Tensor:
    values = write["values"]
    if values is None:
        values = torch.stack([stash[(write["key"], row)] for row in write["sources"]])
    cols = write["cols"]
    part = _columns(x, cols)
    if write["positions"] is None:
        edited = mix(part, values.to(dtype=part.dtype, device=part.device), write["basis"])
    else:
        edited = patch_positions(part, write["positions"], values, write["basis"])
    if cols is None:
        return edited
    return torch.cat([x[..., :cols[0]], edited, x[..., cols[1]:]], dim=-1)
