"""Evaluation: distances between model samples and fresh data, beside the data-vs-data floor.

2D (and any vector) data: exact W2 and the energy distance. Image data ([C, H, W]): Fréchet distance in a
feature network's space, classifier accuracy and a memorisation signal (:mod:`fmcore.run.features`).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from fmcore.recipe.build import blame
from fmcore.run.features import evaluate_images, render_image_report
from fmcore.run.metrics import energy_distance, wasserstein2
from fmcore.run.rundir import OpenedRun
from fmcore.run.sampling import generate

MAX_EXACT_W2 = 5000


@attrs.frozen
class EvalReport:
    """What ``fm eval`` measured: ``values`` (``w2``, ``w2_floor``, ``energy``, ... or the image metrics) and a
    header naming the run, weights and sampler. ``render()`` is the table the command prints."""

    header: str
    images: bool
    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def render(self) -> str:
        if self.images:
            return render_image_report(self.values, self.header)
        lines = [f"{self.header}, n = {self.values['n']}",
                 f"{'metric':<18}{'model vs data':>16}{'data vs data':>16}{'ratio':>10}"]
        for key in ("w2", "energy"):
            if key in self.values:
                model, floor = self.values[key], self.values[f"{key}_floor"]
                ratio = model / floor if floor > 0 else float("nan")
                lines.append(f"{key:<18}{model:>16.4f}{floor:>16.4f}{ratio:>10.3f}")
        return "\n".join(lines)


def evaluate(run: OpenedRun, n: int, seed: int = 0, device=None, batch_size: int = 4096, *,
             guidance: float | None = None, features: str | None = None) -> EvalReport:
    """W2 and energy distance of ``n`` model samples to ``n`` fresh data points, and the same between two
    independent data sets of size ``n`` (the sampling floor: what a perfect model would score, roughly).

    Image data is evaluated by :func:`fmcore.run.features.evaluate_images`; ``guidance`` and ``features``
    apply there."""
    c = run.components
    header = f"{run.directory} ({run.weights.name}, sampler {run.recipe.sampler.name})"
    if len(c.dataset.info.shape) == 3:
        values = evaluate_images(run, n, seed, device, batch_size, guidance=guidance, features=features)
        return EvalReport(header, True, values)
    device = device or torch.device("cpu")
    c.network.to(device)
    with blame(f"{c.who('sampler')} on {c.who('network')}", "sampling"):
        samples = generate(c.field(), c.sampler, n, c.dataset.info.shape, seed=seed, device=device,
                           batch_size=batch_size).x.cpu()
    data = c.dataset.reference(n, seed=seed + 1_000_003).x
    data2 = c.dataset.reference(n, seed=seed + 2_000_003).x
    out: dict[str, Any] = {"n": n}
    if n <= MAX_EXACT_W2:
        out["w2"] = wasserstein2(samples, data)
        out["w2_floor"] = wasserstein2(data2, data)
        out["w2_ratio"] = out["w2"] / out["w2_floor"]
    out["energy"] = energy_distance(samples, data)
    out["energy_floor"] = energy_distance(data2, data)
    return EvalReport(header, False, out)
