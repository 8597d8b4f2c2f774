"""The heatmap of a `locate` sweep: held-out IIA per site and position, the best cell outlined.

A renderer (`causalspec locate` writes it as a PNG, the HTML report embeds it); the numbers
come from `claims.locate.Sweep`.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from causalspec.claims.locate import Sweep
from causalspec.files import atomic_write_bytes

HEATMAP_SOFTWARE = "causalspec locate"  # the PNG's tEXt Software chunk: our marker (causalspec/files.py)


def heatmap_bytes(found: Sweep) -> bytes:
    """Layer/site x position heatmap of held-out IIA, best cell outlined, as PNG bytes."""
    import matplotlib  # here, not at the top: matplotlib takes a second to import and only heatmaps need it

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    grid = found.grid()
    rows, cols = grid.shape
    base = found.baseline_score
    bases = [found.column_baseline(j) for j in range(cols)]  # an element sweep: one per column
    known = [b for b in bases if b is not None]
    # colours start at the no-intervention baseline: a cell that changes nothing scores it, so
    # every cell at or below it is the darkest colour and 0.7..1.0 spreads over the whole scale
    low = 0.0 if not known or min(known) >= 0.999 else min(known)
    fig, ax = plt.subplots(figsize=(max(5.6, 0.9 * cols + 4.2), max(2.4, 0.42 * rows + 1.5)), dpi=110)
    try:
        im = ax.imshow(grid, vmin=low, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(cols), found.position_labels, fontsize=8)
        ax.set_yticks(range(rows), found.site_labels, fontsize=8)
        ax.set_xlabel("element @ position" if found.mode == "element" else "position")
        ax.set_ylabel("site")
        for i in range(rows):
            for j in range(cols):
                v = grid[i, j]
                b = bases[j]
                text = "n/a" if np.isnan(v) else f"{v:.2f}" + (" ≤b" if b is not None and v <= b + 1e-9 else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if (not np.isnan(v) and v > low + 0.6 * (1 - low)) else "white")
        marked = found.column_best() if found.mode == "element" else [found.best]  # an element: its column's
        for best in marked:
            if best is not None:
                i = found.site_labels.index(best.site)
                j = found.position_labels.index(best.position)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        title = f"locate {found.var} : {found.featurizer}"
        if found.mode == "element" and known:
            title += (f"\nno-intervention baselines {min(known):.2f}..{max(known):.2f} per element "
                      "(≤b: a cell at or below its column's)")
        elif base is not None:
            title += f"\nno-intervention baseline {base:.2f} (≤b: a cell at or below it)"
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("IIA, held-out pairs", fontsize=8)
        if base is not None:  # the scale starts at the baseline (when below 1): label that end of it
            ticks = [t for t in bar.get_ticks() if low + 0.05 < t <= 1.0]
            bar.set_ticks([low, *ticks], labels=[f"{low:.2f} baseline" if low else "0", *[f"{t:.1f}" for t in ticks]])
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": HEATMAP_SOFTWARE})
        return buf.getvalue()
    finally:
        plt.close(fig)


def heatmap_png(found: Sweep, path) -> Path:
    """The heatmap written to `path` atomically; an existing file is replaced only if it is
    an output of ours (`causalspec.files`), else `OverwriteRefused`."""
    return atomic_write_bytes(path, heatmap_bytes(found))


def heatmap_base64(found: Sweep) -> str:
    return base64.b64encode(heatmap_bytes(found)).decode("ascii")
