"""Write the hand-built hierarchical-equality net to ``hand.safetensors``.

Usage: ``python examples/hier_eq/make_hand.py [--out PATH]``

Before writing, it checks the net is exactly right on all 20^4 inputs and
prints interchange-intervention accuracy (IIA) for the true alignment
(WX = layers.0[0:20], YZ = layers.0[20:40]) and for wrong ones, so the file
is never written from a broken construction.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def exhaustive_accuracy(net) -> float:
    """Accuracy of ``net`` against O on all 20^4 inputs."""
    ids = torch.tensor(list(itertools.product(range(M.N_OBJ), repeat=4)))
    with torch.no_grad():
        pred = net(ids).argmax(-1).bool()
    want = (ids[:, 0] == ids[:, 1]) == (ids[:, 2] == ids[:, 3])
    return (pred == want).float().mean().item()


def iia(net, var: str, dims: slice, n: int = 2000, seed: int = 0) -> float:
    """IIA of the claim "``var`` lives in ``layers.0[dims]``" on ``n`` balanced pairs."""
    g = torch.Generator().manual_seed(seed)
    base, source = M.sample_balanced(n, g), M.sample_balanced(n, g)
    got = M.decode(M.interchange(net, base, source, "layers.0", dims))
    hits = 0
    for b, s, o in zip(base.tolist(), source.tolist(), got):
        over = {var: (s[0] == s[1]) if var == "WX" else (s[2] == s[3])}
        hits += o == M.high_level(*b, **over)
    return hits / n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "hand.safetensors"))
    args = ap.parse_args(argv)

    net = M.build_hand()
    acc = exhaustive_accuracy(net)
    print(f"exhaustive accuracy (20^4 inputs): {acc:.6f}")
    if acc != 1.0:
        raise SystemExit("hand-built net is not exact; refusing to write")
    k = M.HAND_K
    for label, var, dims in [
        ("true  WX=layers.0[0:k]", "WX", slice(0, k)),
        ("true  YZ=layers.0[k:2k]", "YZ", slice(k, 2 * k)),
        ("wrong WX=layers.0[k:2k]", "WX", slice(k, 2 * k)),
        ("wrong YZ=layers.0[0:k]", "YZ", slice(0, k)),
        ("wrong WX=layers.0[0:k/2]", "WX", slice(0, k // 2)),
    ]:
        print(f"IIA {label} (k={k}): {iia(net, var, dims):.4f}")
    M.save(net, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
