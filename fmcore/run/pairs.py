"""Stored (noise, endpoint) pairs of a trained flow, as ``fm reflow`` writes them: a folder of chunk files.

``FOLDER/pairs.json`` (the manifest) holds ``n``, ``chunk``, ``shape``, ``num_classes`` and what made the
pairs (the source run, its weights' SHA-256, the sampler, the seed). ``FOLDER/chunk_KKKKKK.safetensors`` holds
samples ``K * chunk`` .. ``min(n, (K + 1) * chunk) - 1``: ``noise`` [c, *shape] (the standard normal draws
``eps``; the flow started from ``path.prior_sample(eps)``), ``data`` [c, *shape] (the endpoints) and, for a
class-conditional model, ``labels`` [c]. Each chunk is written atomically, so a chunk present is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.run.checkpoint import load_tensors, save_tensors, write_text_atomic

MANIFEST = "pairs.json"
KEYS = ("noise", "data")


def chunk_path(folder: Path, k: int) -> Path:
    return Path(folder) / f"chunk_{k:06d}.safetensors"


def chunk_count(n: int, chunk: int) -> int:
    return -(-n // chunk)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder``, or None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise FmError(f"{path} is not valid JSON ({exc}); it is written by fm reflow: remove the folder and draw "
                      "the pairs again") from None
    missing = [key for key in ("n", "chunk", "shape", "num_classes") if key not in manifest]
    if not isinstance(manifest, dict) or missing:
        raise FmError(f"{path} lacks {missing or 'its keys'}; it is written by fm reflow: remove the folder and "
                      "draw the pairs again")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(folder) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def missing_chunks(folder: Path, manifest: dict[str, Any]) -> list[int]:
    return [k for k in range(chunk_count(manifest["n"], manifest["chunk"]))
            if not chunk_path(folder, k).is_file()]


def save_chunk(folder: Path, k: int, noise: Tensor, data: Tensor, labels: Tensor | None) -> None:
    tensors = {"noise": noise, "data": data} if labels is None else {"noise": noise, "data": data, "labels": labels}
    save_tensors(tensors, chunk_path(folder, k))


def load_pairs(folder: Path) -> tuple[Tensor, Tensor, Tensor | None, int]:
    """``(noise, data, labels, num_classes)`` of a complete pairs folder (ValueError, naming the file, when a
    chunk is missing or does not match the manifest)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"pairs folder {str(folder)!r} not found (fm reflow RUN --pairs N --run-dir NEW writes "
                         "NEW/pairs)")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ValueError(f"{str(folder)!r} has no {MANIFEST}: it is not a pairs folder written by fm reflow")
    missing = missing_chunks(folder, manifest)
    if missing:
        total = chunk_count(manifest["n"], manifest["chunk"])
        raise ValueError(f"{str(folder)!r} is incomplete: {len(missing)} of its {total} chunks are missing (the "
                         f"first is {chunk_path(folder, missing[0]).name}); run the same fm reflow command again to "
                         "draw the rest")
    parts: dict[str, list[Tensor]] = {"noise": [], "data": [], "labels": []}
    shape = tuple(manifest["shape"])
    for k in range(chunk_count(manifest["n"], manifest["chunk"])):
        path = chunk_path(folder, k)
        tensors = load_tensors(path)[0]
        count = min(manifest["chunk"], manifest["n"] - k * manifest["chunk"])
        for key in KEYS:
            value = tensors.get(key)
            if value is None or tuple(value.shape) != (count, *shape) or not bool(torch.isfinite(value).all()):
                raise ValueError(f"{path}: tensor {key!r} is missing, not of shape {[count, *shape]} or not finite; "
                                 "remove this chunk and run the same fm reflow command again to draw it anew")
            parts[key].append(value.float())
        if manifest["num_classes"]:
            parts["labels"].append(tensors["labels"].long())
    labels = torch.cat(parts["labels"]) if manifest["num_classes"] else None
    return torch.cat(parts["noise"]), torch.cat(parts["data"]), labels, int(manifest["num_classes"])
