"""User data from a ``.npy`` or ``.safetensors`` file, never unpickled."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file

from fmcore import ArrayDataset
from fmcore.core.options import help_field

SUFFIXES = (".npy", ".safetensors")


@attrs.define(kw_only=True)
class FileOptions:
    path: str = help_field(help="a .npy or .safetensors file holding an array [N, ...] (relative to the recipe)",
                           file=True)
    key: str = help_field("", "tensor name inside a .safetensors file (default: its only tensor, or 'data')")
    labels: str = help_field("", "integer class labels [N]: a .npy/.safetensors file, or a tensor name in the "
                             "data's .safetensors file", file=False)


def _read(path: Path, key: str) -> np.ndarray:
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{str(path)!r}: unsupported file type {path.suffix!r}; expected one of {SUFFIXES}")
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} not found")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{str(path)!r} holds Python objects, which would need unpickling; fmcore refuses "
                             f"that (save a numeric array instead): {exc}") from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid safetensors file: {exc}") from None
    if not key:
        key = next(iter(tensors)) if len(tensors) == 1 else "data"
    if key not in tensors:
        raise ValueError(f"{str(path)!r} has no tensor {key!r}; it has {sorted(tensors)}")
    return tensors[key]


class FileDataset(ArrayDataset):
    """An array [N, ...] from a .npy or .safetensors file, with optional integer labels [N]."""

    Options = FileOptions

    def __init__(self, options: FileOptions):
        self.options = options
        path = Path(options.path)
        data = _read(path, options.key)
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"{str(path)!r} holds an array of shape {data.shape}; expected [N, ...] with N >= 1")
        if not np.issubdtype(data.dtype, np.number):
            raise ValueError(f"{str(path)!r} holds {data.dtype} values; expected numbers")
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
