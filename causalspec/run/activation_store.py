"""Where the clean pass keeps the activations of a plan's site bindings: in memory or on disk.

A store maps each binding to a *column*, a sequence over the unique inputs of one clean pass:
`store[b][u]` is input u's activation at binding b, a tensor `[n_pos, width]` (the bound
token positions; `n_pos` may differ between rows) or `[width]` (a site bound without
positions). Stores behave as mappings (`b in store`, `for b in store`, `store[b]`), and add

* `put(b, rows, values)`: record rows (the clean pass, one call per batch and binding);
* `stack(b, rows)`: the rows stacked into one tensor (equal shapes), on the device they were
  recorded on — what a patched batch needs;
* `counts(b)`: token positions per row (0 for `[width]` rows), without reading activations;
* `nbytes()`: activation bytes kept; `resident_bytes()`: those held in process memory.

`MemoryActivations` is a dict of lists of tensors (the engine's behaviour before stores
existed, at the same cost). `DiskActivations` writes each binding's rows to a file of its
own as they are produced, records each row's byte offset and token count, and reads rows
back through a read-only numpy memmap: process memory then holds an index of 12 bytes per
row and binding, not the activations. Rows of any dtype (bfloat16 included) are kept as
raw bytes. Its folder is a fresh temporary one, removed on `close()` (or when the store is
garbage-collected, or at interpreter exit), unless a folder was named: then the files stay
in a fresh `clean-*` subfolder of it, with `manifest.json` and a `*.index.npy` per file
(offset and token count per row) describing them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path

import numpy as np
import torch

MEMORY = "memory"
DISK = "disk"
MANIFEST = "manifest.json"


def open_store(where: str | Path | None, n: int, bindings: Sequence) -> MemoryActivations | DiskActivations:
    """A store for n unique inputs: `None`/"memory" in memory, "disk" in a temporary folder,
    any other string (or path) on disk under that folder (kept)."""
    if where is None or where == MEMORY:
        return MemoryActivations.empty(n, bindings)
    if where == DISK:
        return DiskActivations(n, bindings)
    return DiskActivations(n, bindings, folder=Path(where))


def as_store(acts) -> MemoryActivations | DiskActivations:
    """A store for `acts`: itself when it is one, else a dict `{binding: list of tensors}` wrapped."""
    if isinstance(acts, (MemoryActivations, DiskActivations)):
        return acts
    return MemoryActivations(acts or {})


def _npos(t: torch.Tensor) -> int:
    return int(t.shape[0]) if t.dim() == 2 else 0


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


# ─────────────────────────────── in memory ───────────────────────────────


class MemoryActivations(dict):
    """`{binding: [Tensor per unique input]}`; a dict, so indexing costs what it always did."""

    kind = MEMORY
    folder = None
    keep = False

    @classmethod
    def empty(cls, n: int, bindings: Iterable) -> MemoryActivations:
        return cls({b: [None] * n for b in bindings})

    def put(self, binding, rows: Sequence[int], values: Sequence[torch.Tensor]) -> None:
        column = self[binding]
        for row, value in zip(rows, values):
            column[row] = value.detach().clone()

    def stack(self, binding, rows) -> torch.Tensor:
        column = self[binding]
        return torch.stack([column[u] for u in rows])

    def counts(self, binding) -> np.ndarray:
        return np.fromiter((_npos(t) for t in self[binding]), dtype=np.int64, count=len(self[binding]))

    def width(self, binding) -> int:
        return int(self[binding][0].shape[-1])

    def nbytes(self) -> int:
        seen, total = set(), 0
        for column in self.values():
            for t in column:
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
        return total

    resident_bytes = nbytes

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass

    def where(self) -> str:
        return "in memory"


# ─────────────────────────────── on disk ───────────────────────────────


class DiskColumn(Sequence):
    """One binding's rows in one file: raw bytes appended as rows arrive, read via memmap."""

    def __init__(self, path: Path, n: int, files: list):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 — closed by DiskActivations (close / finalizer)
        files.append(self._file)
        self.offset = np.full(n, -1, dtype=np.int64)  # byte offset per row; -1: not recorded
        self.npos = np.zeros(n, dtype=np.int32)  # token positions per row (0: a [width] row)
        self.end = 0  # bytes written
        self.dtype: torch.dtype | None = None
        self.width: int | None = None
        self.ndim: int | None = None  # 2: rows [n_pos, width]; 1: rows [width]
        self.device: torch.device | None = None
        self._item = 0
        self._map: np.ndarray | None = None
        self._mapped = 0

    def __len__(self) -> int:
        return len(self.offset)

    def _itemsize(self) -> int:
        if not self._item:
            self._item = torch.empty((), dtype=self.dtype).element_size()
        return self._item

    def put(self, rows: Sequence[int], values: Sequence[torch.Tensor]) -> None:
        values = [v.detach() for v in values]
        if not values:
            return
        first = values[0]
        if self.dtype is None:
            self.dtype, self.width = first.dtype, int(first.shape[-1])
            self.ndim, self.device = first.dim(), first.device
        for v in values:
            if v.dtype != self.dtype or v.dim() != self.ndim or int(v.shape[-1]) != self.width:
                raise ValueError(f"activation {tuple(v.shape)} {v.dtype} does not fit the column's rows "
                                 f"({'[n_pos, ' if self.ndim == 2 else '['}{self.width}] {self.dtype})")
        flat = torch.cat([v.reshape(-1) for v in values]).to("cpu")  # one device-to-host copy per batch
        data = flat.view(torch.uint8).numpy() if flat.numel() else np.zeros(0, np.uint8)
        # numpy's stubs declare ndarray.__buffer__ only for Python >= 3.12; mypy checks as 3.10
        self._file.write(data)  # type: ignore[arg-type]
        item = self._itemsize()
        at = self.end
        for row, v in zip(rows, values):
            self.offset[row] = at
            self.npos[row] = _npos(v)
            at += v.numel() * item
        self.end = at

    def _view(self) -> np.ndarray:
        if self._mapped != self.end or self._map is None:
            if self._file.closed:
                raise ValueError(f"the activation store of {self.path.parent} is closed")
            self._file.flush()
            self._map = (np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.end,)) if self.end
                         else np.zeros(0, np.uint8))
            self._mapped = self.end
        return self._map

    def shape(self, u: int) -> tuple[int, ...]:
        if self.width is None:  # nothing recorded yet (the first row sets width, ndim and dtype)
            raise IndexError(f"row {u} of {self.path.name} was not recorded")
        return (int(self.npos[u]), self.width) if self.ndim == 2 else (self.width,)

    def _check(self, u: int) -> int:
        if self.offset[u] < 0:
            raise IndexError(f"row {u} of {self.path.name} was not recorded")
        return int(self.offset[u])

    def __getitem__(self, u):
        if isinstance(u, slice):
            return [self[i] for i in range(*u.indices(len(self)))]
        u = int(u)
        if u < 0:
            u += len(self)
        if not 0 <= u < len(self):
            raise IndexError(u)
        return self.stack([u])[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[u] for u in range(len(self)))

    def stack(self, rows) -> torch.Tensor:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        shapes = {self.shape(u) for u in rows}
        if len(shapes) > 1:
            raise RuntimeError(f"stack expects each tensor to be equal size, but rows have shapes {sorted(shapes)}")
        shape = shapes.pop() if shapes else (0,)
        nbytes = int(np.prod(shape)) * self._itemsize()
        if nbytes == 0:  # rows of no token positions
            for u in rows:
                self._check(u)
            return torch.empty((len(rows), *shape), dtype=self.dtype, device=self.device)
        out = np.empty((len(rows), nbytes), dtype=np.uint8)
        view = self._view()
        for i, u in enumerate(rows):
            at = self._check(u)
            out[i] = view[at:at + nbytes]
        if self.dtype is None:  # rows of some bytes were recorded, and the first one set dtype
            raise IndexError(f"no row of {self.path.name} was recorded")
        t = torch.from_numpy(out).view(self.dtype).reshape(len(rows), *shape)
        return t.to(self.device)

    def index_bytes(self) -> int:
        return self.offset.nbytes + self.npos.nbytes


def _release(files: list, folder: Path | None) -> None:
    """Close the files; remove the folder (None: keep it). Also the finalizer: no reference to the store."""
    for f in files:
        try:
            f.close()
        except OSError:
            pass
    files.clear()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


class DiskActivations(MutableMapping):
    """Each binding's rows in a file of its own under `folder`; see the module docstring."""

    kind = DISK

    def __init__(self, n: int, bindings: Iterable, folder: Path | None = None):
        self.keep = folder is not None
        if folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="causalspec-acts-"))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="clean-", dir=folder))
        self.n = n
        self._files: list = []
        self._columns: dict = {}
        self._finalizer = weakref.finalize(self, _release, self._files, None if self.keep else self.folder)
        for b in bindings:
            self._columns[b] = self._new_column()

    def _new_column(self) -> DiskColumn:
        names = {c.path.name for c in self._columns.values()}
        i = len(names)
        while f"{i:03d}.bin" in names:
            i += 1
        return DiskColumn(self.folder / f"{i:03d}.bin", self.n, self._files)

    # mapping ---------------------------------------------------------------------------------
    def __getitem__(self, binding) -> DiskColumn:
        return self._columns[binding]

    def __setitem__(self, binding, column) -> None:
        """Alias another binding's column, or record a list of row tensors."""
        if not isinstance(column, DiskColumn):
            rows = list(column)
            new = self._new_column()
            new.put(range(len(rows)), rows)
            column = new
        self._columns[binding] = column

    def __delitem__(self, binding) -> None:
        del self._columns[binding]

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    # store -------------------------------------------------------------------------------------
    def put(self, binding, rows: Sequence[int], values: Sequence[torch.Tensor]) -> None:
        self._columns[binding].put(rows, values)

    def stack(self, binding, rows) -> torch.Tensor:
        return self._columns[binding].stack(rows)

    def counts(self, binding) -> np.ndarray:
        return self._columns[binding].npos.astype(np.int64)

    def width(self, binding) -> int:
        return int(self._columns[binding].width)

    def _unique_columns(self) -> list[DiskColumn]:
        return list({id(c): c for c in self._columns.values()}.values())

    def nbytes(self) -> int:
        return sum(c.end for c in self._unique_columns())

    def resident_bytes(self) -> int:
        """Bytes held in process memory: the row index only (the activations are in the files)."""
        return sum(c.index_bytes() for c in self._unique_columns())

    def where(self) -> str:
        return f"on disk in {self.folder}" + ("" if self.keep else " (removed when the run ends)")

    def finish(self) -> None:
        """After the clean pass: flush the files; in a named folder, write the manifest and indices."""
        for c in self._unique_columns():
            if not c._file.closed:
                c._file.flush()
        if self.keep:
            self._write_manifest()

    def _write_manifest(self) -> None:
        entries = []
        for b, c in self._columns.items():
            np.save(c.path.with_suffix(".index.npy"), np.stack([c.offset, c.npos.astype(np.int64)], axis=1))
            entries.append({"site": str(getattr(b, "site", b)),
                            "positions": [getattr(p, "name", None) or getattr(p, "kind", str(p))
                                          for p in getattr(b, "positions", ())],
                            "file": c.path.name, "index": c.path.with_suffix(".index.npy").name,
                            "dtype": str(c.dtype).removeprefix("torch."), "width": c.width,
                            "rows": "[n_pos, width]" if c.ndim == 2 else "[width]"})
        manifest = {"schema": "causalspec.activations/1", "inputs": self.n, "bindings": entries,
                    "layout": "each row's bytes (C order) at index[row, 0] of its file; index[row, 1] = n_pos; "
                              "offset -1: row not recorded"}
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2))

    def close(self) -> None:
        """Close the files and remove the folder (unless it was named); reads fail afterwards."""
        if self.keep and not self.closed:
            self.finish()
        for c in self._unique_columns():
            c._map = None
            c._mapped = -1
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> DiskActivations:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["DISK", "MEMORY", "DiskActivations", "DiskColumn", "MemoryActivations", "as_store", "fmt_bytes",
           "open_store"]
