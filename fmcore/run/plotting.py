"""Pictures written by the command line (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _limits(*sets: np.ndarray) -> tuple[float, float]:
    pts = np.concatenate([s.reshape(-1, 2) for s in sets])
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    pad = 0.1 * (hi - lo).max()
    return float(min(lo) - pad), float(max(hi) + pad)


def _save(fig, out: Path) -> None:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def scatter_pair(samples: Tensor, data: Tensor, out: Path, title: str = "") -> None:
    """Model samples beside data samples (2D points)."""
    s, d = _np(samples).reshape(len(samples), -1), _np(data).reshape(len(data), -1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    lo, hi = _limits(s[:, :2], d[:, :2])
    for ax, pts, name in ((axes[0], s, "model samples"), (axes[1], d, "data")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_title(f"{name} (n={len(pts)})")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    _save(fig, out)


def scatter(samples: Tensor, out: Path, title: str = "") -> None:
    """One scatter plot of 2D samples."""
    s = _np(samples).reshape(len(samples), -1)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_title(title or f"samples (n={len(s)})")
    _save(fig, out)


def trajectories(traj: Tensor, out: Path, title: str = "") -> None:
    """Paths of a few 2D points from the prior (t = 0, grey) to the samples (t = 1, black)."""
    tr = _np(traj).reshape(traj.shape[0], traj.shape[1], -1)
    fig, ax = plt.subplots(figsize=(6, 6))
    for k in range(tr.shape[1]):
        ax.plot(tr[:, k, 0], tr[:, k, 1], lw=0.8, alpha=0.7)
    ax.scatter(tr[0, :, 0], tr[0, :, 1], s=8, c="0.6", label="t = 0 (prior)", zorder=3)
    ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=8, c="k", label="t = 1 (samples)", zorder=3)
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
    ax.set_title(title or f"{tr.shape[1]} trajectories, {tr.shape[0] - 1} steps")
    _save(fig, out)


def loss_curve(metrics_file: Path, out: Path) -> None:
    """Training loss (log scale) against step, from a metrics.jsonl file."""
    steps, losses = [], []
    for line in metrics_file.read_text().splitlines():
        row = json.loads(line)
        if "loss" in row:
            steps.append(row["step"])
            losses.append(row["loss"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over log interval)")
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    _save(fig, out)


def image_grid(images: Tensor, out: Path, nrow: int | None = None, title: str = "") -> None:
    """Images [N, C, H, W] in [-1, 1] tiled ``nrow`` per row (default: about square)."""
    x = _np(images)
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
    rows = -(-n // nrow)
    grid = np.ones((c, rows * (h + 1) + 1, nrow * (w + 1) + 1), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, 1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = x[i]
    grid = np.clip((grid + 1) / 2, 0, 1)
    fig, ax = plt.subplots(figsize=(max(3, nrow * 0.6), max(3, rows * 0.6)))
    ax.imshow(grid[0] if c == 1 else grid.transpose(1, 2, 0), cmap="gray" if c == 1 else None,
              interpolation="nearest", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title)
    _save(fig, out)


def class_grid(images: Tensor, labels: Tensor, out: Path, per_class: int = 10, title: str = "") -> None:
    """Images [N, C, H, W] in [-1, 1] with their labels: one row per class (ascending), ``per_class`` images
    each (blank cells where a class has fewer)."""
    x, y = _np(images), _np(labels).astype(int)
    classes = sorted(set(y.tolist()))
    cols = min(per_class, max(int((y == k).sum()) for k in classes))
    grid = np.ones((len(classes) * cols, *x.shape[1:]), dtype=np.float32)  # white (blank) cells
    for r, k in enumerate(classes):
        chosen = x[y == k][:cols]
        grid[r * cols: r * cols + len(chosen)] = chosen
    image_grid(grid, out, nrow=cols, title=title)


def save_preview(samples: Tensor, data: Tensor, out: Path, title: str = "", labels: Tensor | None = None) -> None:
    """The picture that shows a model at a glance: 2D scatter beside data, or an image grid (one row per class
    when ``labels`` says which class each sample was asked for)."""
    shape = tuple(samples.shape[1:])
    if is_points(shape):
        scatter_pair(samples, data, out, title)
    elif len(shape) == 3 and labels is not None:
        class_grid(samples, labels, out, title=title)
    elif len(shape) == 3:
        image_grid(samples[:100], out, title=title)
    else:
        scatter_pair(samples.flatten(1), data.flatten(1), out, title)


def is_points(shape: tuple[int, ...]) -> bool:
    """Data the scatter plots can show: vectors of 2 (or more; the first two coordinates are drawn)."""
    return len(shape) == 1 and shape[0] >= 2
