"""Arrays read row by row from disk: a folder of ``.npy`` / ``.safetensors`` shards, for data larger than memory.

A shard holds ``[n_i, ...]`` rows (the same row shape in every shard); shards are read in sorted file-name
order. ``.npy`` shards are memory-mapped (``np.load(mmap_mode='r')``, never unpickled) and their labels, if
any, are the integer array ``NAME.labels.npy`` beside ``NAME.npy``; ``.safetensors`` shards are read one row
at a time (``safe_open(...).get_slice``) and their labels are the tensor ``labels`` inside them. Every value
is checked once when the data set is opened, in chunks (memory stays bounded): real, finite, within float32's
range. Shards are opened lazily in each process (DataLoader workers open their own).
"""

from __future__ import annotations

import bisect
import itertools
from pathlib import Path

import attrs
import numpy as np
from safetensors import SafetensorError, safe_open

from fmcore import DataInfo, MapDataset
from fmcore.core.options import help_field

#: rows checked at a time when a shard is opened
CHECK_ROWS = 4096
LABELS_SUFFIX = ".labels.npy"


@attrs.define(kw_only=True)
class ShardsOptions:
    path: str = help_field(help="folder of .npy or .safetensors shards [n_i, ...], read in sorted name order "
                           "(relative to the recipe)", file=True)
    key: str = help_field("data", "tensor name inside .safetensors shards")


class Shard:
    """One file of rows; opened on first read in each process."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        self._array = None
        self._labels = None
        if path.suffix == ".npy":
            from fmcore_datasets.file import _read_npy

            array = _read_npy(path, mmap=True)
            self.shape, self.dtype = tuple(array.shape), array.dtype
            lpath = path.with_name(path.name[: -len(".npy")] + LABELS_SUFFIX)
            self.labels = _read_npy(lpath, mmap=False) if lpath.is_file() else None
        else:
            try:
                with safe_open(str(path), framework="numpy") as f:
                    if key not in f.keys():
                        raise ValueError(f"shard {str(path)!r} has no tensor {key!r}; it has {sorted(f.keys())}")
                    self.shape = tuple(f.get_slice(key).get_shape())
                    self.dtype = np.dtype(f.get_slice(key)[:1].dtype)
                    self.labels = f.get_tensor("labels") if "labels" in f.keys() else None
            except (SafetensorError, OSError) as exc:
                raise ValueError(f"{str(path)!r} is not a valid safetensors file: {exc}") from None
        if self.labels is not None and (self.labels.shape != self.shape[:1]
                                        or not np.issubdtype(self.labels.dtype, np.integer)
                                        or (self.labels.size and self.labels.min() < 0)):
            raise ValueError(f"labels of shard {str(path)!r}: expected {self.shape[0]} integers >= 0, got shape "
                             f"{self.labels.shape} of {self.labels.dtype}")

    def rows(self, start: int, stop: int) -> np.ndarray:
        if self.path.suffix == ".npy":
            if self._array is None:
                self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            return self._array[start:stop]
        if self._array is None:
            self._array = safe_open(str(self.path), framework="numpy").get_slice(self.key)
        return self._array[start:stop]

    def __getstate__(self):  # workers reopen the file themselves
        return {**self.__dict__, "_array": None}


def check_rows(shard: Shard) -> None:
    """The checks of an in-memory ``file`` data set, a chunk of rows at a time."""
    from fmcore_datasets.file import check_values

    for start in range(0, shard.shape[0], CHECK_ROWS):
        chunk = np.asarray(shard.rows(start, min(start + CHECK_ROWS, shard.shape[0])))
        try:
            check_values(chunk, shard.path)
        except ValueError as exc:
            raise ValueError(f"{exc} (rows counted from {start})") from None


class ShardedArrays(MapDataset):
    """Rows of one or more array files, streamed; labels where every shard has them."""

    def __init__(self, paths: list[Path], key: str):
        if not paths:
            raise ValueError("no .npy or .safetensors shards found")
        self.shards = [Shard(p, key) for p in paths]
        shapes = {s.shape[1:] for s in self.shards}
        if len(shapes) != 1:
            raise ValueError(f"shards hold rows of different shapes: {sorted(shapes)}; every shard must hold rows "
                             "of one shape")
        for shard in self.shards:
            check_rows(shard)
        labelled = [s.labels is not None for s in self.shards]
        if any(labelled) and not all(labelled):
            missing = [s.path.name for s in self.shards if s.labels is None]
            raise ValueError(f"some shards have labels and {len(missing)} do not ({missing[0]}, ...); give every "
                             "shard labels or none")
        num_classes = max(int(s.labels.max()) + 1 for s in self.shards) if all(labelled) else 0
        self.starts = [0, *itertools.accumulate(s.shape[0] for s in self.shards)]
        self._info = DataInfo(tuple(shapes.pop()), num_classes)

    @property
    def info(self) -> DataInfo:
        return self._info

    def __len__(self) -> int:
        return self.starts[-1]

    def shard_sizes(self) -> list[int]:
        return [s.shape[0] for s in self.shards]

    def item(self, i: int) -> tuple[np.ndarray, int]:
        k = bisect.bisect_right(self.starts, i) - 1
        shard, j = self.shards[k], i - self.starts[k]
        x = np.asarray(shard.rows(j, j + 1)[0], dtype=np.float32)
        return x, int(shard.labels[j]) if shard.labels is not None else 0


class Shards(ShardedArrays):
    """A folder of ``.npy`` or ``.safetensors`` shards (one kind per folder), streamed from disk."""

    Options = ShardsOptions

    def __init__(self, options: ShardsOptions):
        self.options = options
        root = Path(options.path)
        if not root.is_dir():
            raise ValueError(f"shard folder {str(root)!r} not found or not a folder")
        files = sorted(p for p in root.iterdir() if not p.name.startswith(".") and not p.name.endswith(LABELS_SUFFIX)
                       and p.suffix in (".npy", ".safetensors"))
        kinds = {p.suffix for p in files}
        if len(kinds) > 1:
            raise ValueError(f"{str(root)!r} mixes .npy and .safetensors shards; use one kind")
        if not files:
            raise ValueError(f"shard folder {str(root)!r} holds no .npy or .safetensors files")
        super().__init__(files, options.key)
