"""User data from a ``.npy`` or ``.safetensors`` file, never unpickled."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file

from fmcore import ArrayDataset
from fmcore.core.options import help_field
from fmcore_datasets.shards import ShardedArrays

SUFFIXES = (".npy", ".safetensors")


@attrs.define(kw_only=True)
class FileOptions:
    path: str = help_field(help="a .npy or .safetensors file holding an array [N, ...] (relative to the recipe)",
                           file=True)
    key: str = help_field("", "tensor name inside a .safetensors file (default: its only tensor, or 'data')")
    labels: str = help_field("", "integer class labels [N]: a .npy/.safetensors file, or a tensor name in the "
                             "data's .safetensors file", file=False)
    stream: bool = help_field(False, "read rows from disk as training needs them (a memory-mapped .npy, or a "
                              ".safetensors read row by row) instead of loading the array into memory")


def _check_file(path: Path) -> None:
    """``path`` exists and is a regular file (a symlink loop, a folder or a pipe is named as such)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError(f"data file {str(path)!r} not found") from None
    except OSError as exc:
        raise ValueError(f"data file {str(path)!r} cannot be opened: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"data file {str(path)!r} is not a regular file (a folder, pipe or device)")


def _read_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """A numeric ``.npy`` array (``mmap``: memory-mapped, read-only); a truncated file or one holding Python
    objects is named as such."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(f)
        except (ValueError, EOFError) as exc:
            raise ValueError(f"{str(path)!r} is not a valid .npy file (its header cannot be read: {exc})") from None
        if dtype.hasobject:
            raise ValueError(f"{str(path)!r} holds Python objects ({dtype}), which would need unpickling; fmcore "
                             "refuses that (save a numeric array instead)")
        expected = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual < expected:
        raise ValueError(f"{str(path)!r} is truncated: its header announces an array {list(shape)} of {dtype} "
                         f"({expected:,} bytes with the header) but the file has {actual:,} bytes; write it again")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _read(path: Path, key: str) -> np.ndarray:
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{str(path)!r}: unsupported file type {path.suffix!r}; expected one of {SUFFIXES}")
    _check_file(path)
    if path.suffix == ".npy":
        return _read_npy(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: {exc}") from None
    if not key:
        key = next(iter(tensors)) if len(tensors) == 1 else "data"
    if key not in tensors:
        raise ValueError(f"{str(path)!r} has no tensor {key!r}; it has {sorted(tensors)}")
    return tensors[key]


def check_values(data: np.ndarray, path: Path) -> None:
    """Real numbers (no complex, bool, text), a non-empty sample shape, every value finite (else the first
    bad row is named)."""
    where = str(path)
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"{where!r} holds an array of shape {list(data.shape)}; expected [N, ...] with N >= 1")
    if 0 in data.shape[1:]:
        raise ValueError(f"{where!r} holds an array of shape {list(data.shape)}: each sample has no values "
                         "(a zero-width dimension); expected [N, d, ...] with every d >= 1")
    if np.iscomplexobj(data):
        raise ValueError(f"{where!r} holds complex values ({data.dtype}); expected real numbers (store the real and "
                         "imaginary parts as separate columns)")
    if data.dtype == np.bool_ or not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"{where!r} holds {data.dtype} values; expected real numbers (float or int)")
    if np.issubdtype(data.dtype, np.floating):
        finite = np.isfinite(data.reshape(data.shape[0], -1)).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f"{where!r} holds NaN or inf values in {len(bad):,} of {data.shape[0]:,} rows (the "
                             f"first is row {int(bad[0])}); remove or fix those rows")
    if np.abs(data).max() > np.finfo(np.float32).max:
        raise ValueError(f"{where!r} holds values beyond float32's range (up to {np.abs(data).max():.3g}); "
                         "rescale the data")


class FileDataset(ArrayDataset):
    """An array [N, ...] from a .npy or .safetensors file, with optional integer labels [N]; with ``stream``,
    a :class:`StreamedFile` instead."""

    Options = FileOptions

    def __new__(cls, options: FileOptions):
        if options.stream and cls is FileDataset:
            return StreamedFile(options)
        return super().__new__(cls)

    def __init__(self, options: FileOptions):
        self.options = options
        path = Path(options.path)
        data = _read(path, options.key)
        check_values(data, path)
        labels, num_classes = None, 0
        if options.labels:
            lpath = Path(options.labels)
            if lpath.suffix in SUFFIXES:
                lpath = lpath if lpath.is_absolute() else path.parent / lpath
                raw = _read(lpath, "")
            else:
                raw = _read(path, options.labels)
            if raw.shape != (data.shape[0],) or not np.issubdtype(raw.dtype, np.integer) or raw.min() < 0:
                raise ValueError(f"labels {options.labels!r}: expected {data.shape[0]} integers >= 0, got shape "
                                 f"{raw.shape} of {raw.dtype}")
            labels, num_classes = torch.from_numpy(raw.astype(np.int64)), int(raw.max()) + 1
        super().__init__(torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)), labels, num_classes)


class StreamedFile(ShardedArrays):
    """The ``file`` data set with ``stream = true``: one shard read from disk (labels as a .npy file, or the
    tensor named by ``labels`` in the .safetensors file)."""

    Options = FileOptions

    def __init__(self, options: FileOptions):
        self.options = options
        path = Path(options.path)
        if path.suffix not in SUFFIXES:
            raise ValueError(f"{str(path)!r}: unsupported file type {path.suffix!r}; expected one of {SUFFIXES}")
        _check_file(path)
        super().__init__([path], options.key or "data")
        if options.labels:
            lpath = Path(options.labels)
            if lpath.suffix in SUFFIXES:
                raw = _read(lpath if lpath.is_absolute() else path.parent / lpath, "")
            else:
                raw = _read(path, options.labels)
            shard = self.shards[0]
            if raw.shape != shard.shape[:1] or not np.issubdtype(raw.dtype, np.integer) or raw.min() < 0:
                raise ValueError(f"labels {options.labels!r}: expected {shard.shape[0]} integers >= 0, got shape "
                                 f"{raw.shape} of {raw.dtype}")
            shard.labels = raw.astype(np.int64)
            self._info = attrs.evolve(self._info, num_classes=int(raw.max()) + 1)
