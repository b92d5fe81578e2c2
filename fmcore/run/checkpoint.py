"""Checkpoints and weight files: safetensors and JSON only (nothing is ever unpickled), written atomically.

A checkpoint is a folder ``checkpoints/step_XXXXXXXX`` holding ``model.safetensors``,
``optimizer.safetensors`` (tensors, with the non-tensor state as JSON metadata), ``ema.safetensors``,
``rng_<rank>.safetensors`` (generator states, and the losses of the current log interval) and ``state.json``.
It is written under a temporary name and renamed into place, so the newest ``step_*`` folder is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fmcore.core.errors import FmError

PREFIX = "step_"
TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Flatten ``optimizer.state_dict()`` into tensors plus JSON metadata."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    meta = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    return tensors, meta


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, str], source: str = "optimizer state"
                    ) -> dict[str, Any]:
    """Inverse of :func:`optimizer_tensors`; malformed metadata is an :class:`FmError` naming ``source``."""
    state: dict[int, dict[str, Any]] = {}
    try:
        scalars, groups = json.loads(meta["scalars"]), json.loads(meta["param_groups"])
        if not isinstance(scalars, dict) or not isinstance(groups, list) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
            raise ValueError("scalars must be an object and param_groups a list of groups with 'params'")
        for key, value in list(tensors.items()) + list(scalars.items()):
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    except (KeyError, ValueError, TypeError) as exc:
        raise FmError(f"{source}: malformed optimizer metadata ({type(exc).__name__}: {exc}); the checkpoint is "
                      "damaged: resume from an older checkpoint (delete this one) or start the run again") from None
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    """This process's torch RNG states (CPU, and each CUDA device)."""
    out = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda{i}"] = s
    return out


def restore_rng(tensors: dict[str, torch.Tensor], source: str = "RNG state") -> None:
    """Set the generator states saved by :func:`rng_tensors`; a missing or malformed one is an FmError."""
    try:
        torch.set_rng_state(tensors["cpu"])
        if torch.cuda.is_available():
            torch.cuda.set_rng_state_all([tensors[f"cuda{i}"] for i in range(torch.cuda.device_count())])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise FmError(f"{source}: malformed random generator state ({type(exc).__name__}: "
                      f"{' '.join(str(exc).split())}); the checkpoint is damaged: resume from an older checkpoint "
                      "(delete this one) or start the run again") from None


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def staging_dir(run_dir: Path, step: int) -> Path:
    """The temporary folder a checkpoint for ``step`` is written into (created empty)."""
    tmp = run_dir / "checkpoints" / f"{TMP_PREFIX}{PREFIX}{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(run_dir: Path, step: int, keep: int) -> Path:
    """Rename the staged checkpoint into place, then delete all but the ``keep`` newest."""
    root = run_dir / "checkpoints"
    tmp, final = root / f"{TMP_PREFIX}{PREFIX}{step:08d}", root / f"{PREFIX}{step:08d}"
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old)
    return final


#: the keys of a checkpoint's state.json and the least value each may take
STATE_KEYS = {"step": 0, "processes": 1, "skipped_steps": 0, "ema_updates": 0}


def read_state(ckpt: Path) -> dict[str, Any]:
    """A checkpoint's ``state.json``, checked: every key of :data:`STATE_KEYS`, an integer, in range."""
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FmError(f"checkpoint {ckpt} is unreadable: {exc}") from None
    problems = [] if isinstance(state, dict) else [f"it holds {type(state).__name__}, not an object"]
    for key, low in STATE_KEYS.items() if not problems else ():
        value = state.get(key)
        if type(value) is not int or value < low:
            problems.append(f"{key} = {json.dumps(value)} (expected an integer >= {low})")
    if problems:
        raise FmError(f"{ckpt / 'state.json'} is malformed: {'; '.join(problems)}; the checkpoint is damaged: "
                      "resume from an older checkpoint (delete this one) or start the run again")
    return state


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except Exception as exc:  # safetensors raises several error types for bad files
        raise FmError(f"{path} is not a readable safetensors file: {exc}") from None
