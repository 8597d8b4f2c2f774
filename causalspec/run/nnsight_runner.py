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

The edit arithmetic (`mix`, `patch_positions`) and the answer decoding (`decode`) are the
ones the torch engine uses too (`run.sites`, `run.hf_adapter` import them), so the two
backends cannot drift apart.
"""

from __future__ import annotations

import torch

FORMAT = 1
UNDECODABLE = -1  # a prediction outside the output domain (never equals a label)
# An example whose output (the scores read) holds a NaN, or else an inf. Never equal to a label,
# and counted apart: a claim with any non-finite output is an error (score.iia.nonfinite_counts).
NAN_OUTPUT = -2
INF_OUTPUT = -3


# ───────────────────────── arithmetic shared with the torch engine ─────────────────────────

def mix(current: torch.Tensor, source: torch.Tensor, basis) -> torch.Tensor:
    """The patched value: ``source`` inside span(basis), ``current`` outside it.

    ``basis`` is None (the whole activation), a Tensor ``[W, k]`` with orthonormal columns,
    or a pair ``(read [W, k], write [k, W])``: the difference is read along ``read`` and
    written back through ``write`` (``write = read.T`` is the plain subspace patch; the
    illusion check writes only the part of it inside the clean activations' span)."""
    if basis is None:
        return source
    if isinstance(basis, (tuple, list)):
        read, write = (t.to(dtype=current.dtype, device=current.device) for t in basis)
        return current + ((source - current) @ read) @ write
    basis = basis.to(dtype=current.dtype, device=current.device)
    # [..., W] + (([..., W] @ [W, k]) @ [k, W]) -- equals x - xBB^T + sBB^T
    return current + ((source - current) @ basis) @ basis.T


def patch_positions(x: torch.Tensor, positions: torch.Tensor, values: torch.Tensor,
                    basis) -> torch.Tensor:
    """``x`` [batch, seq, width] with ``values`` [batch, n_pos, width] mixed in at ``positions``."""
    width = x.shape[-1]
    index = positions.to(x.device)[:, :, None].expand(-1, -1, width)  # [batch, n_pos, width]
    current = x.gather(1, index)
    return x.scatter(1, index, mix(current, values.to(dtype=x.dtype, device=x.device), basis))


def decode(raw: torch.Tensor, answer_pos: torch.Tensor | None, candidates: torch.Tensor | None) -> torch.Tensor:
    """Output codes [batch]: argmax over the candidates' logits at each row's answer position
    (``candidates`` None: ``raw`` is [batch, classes] and the class index is the code)."""
    if candidates is None:
        scores = raw
    else:
        rows = torch.arange(raw.shape[0], device=raw.device)
        scores = raw[rows, answer_pos.to(raw.device)][:, candidates.to(raw.device)]  # [batch, n_values]
    scores = scores.float()
    return with_nonfinite(scores.argmax(dim=-1), scores)


def with_nonfinite(codes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``codes`` [batch] with rows whose ``scores`` [batch, …] hold a NaN set to NAN_OUTPUT,
    and rows with an inf (and no NaN) set to INF_OUTPUT."""
    flat = scores.reshape(scores.shape[0], -1)
    nan = torch.isnan(flat).any(dim=-1)
    inf = torch.isinf(flat).any(dim=-1)
    codes = torch.where(inf, torch.full_like(codes, INF_OUTPUT), codes)
    return torch.where(nan, torch.full_like(codes, NAN_OUTPUT), codes)


def _primary_key(value) -> str:
    return "logits" if "logits" in value else next(iter(value.keys()))


def main_tensor(value):
    """The main tensor of a module's input or output: itself, the first element of a tuple or
    list (decoder blocks return a tuple or, in transformers >= 5, a bare tensor), or ``logits``
    / the first field of a ``ModelOutput``; None when there is none."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if hasattr(value, "keys") and len(value):
        first = value[_primary_key(value)]
        return first if isinstance(first, torch.Tensor) else None
    return None


def replace_main(value, new: torch.Tensor):
    """``value`` with its main tensor (see `main_tensor`) replaced by ``new``."""
    if isinstance(value, torch.Tensor):
        return new
    if isinstance(value, tuple):
        return (new, *value[1:])
    if isinstance(value, list):
        return [new, *value[1:]]
    value[_primary_key(value)] = new  # ModelOutput: setting the key also sets the attribute
    return value


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
    out = {"clean": [], "patched": []}
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
