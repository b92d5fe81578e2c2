"""``fm eval``: distances between model samples and fresh data, beside the data-vs-data floor."""

from __future__ import annotations

import torch

from fmcore.core.oracle import bind_network
from fmcore.run.metrics import energy_distance, wasserstein2
from fmcore.run.rundir import Run
from fmcore.run.sampling import generate

MAX_EXACT_W2 = 5000


def evaluate(run: Run, n: int, seed: int = 0, device=None, batch_size: int = 4096, *,
             guidance: float | None = None, features: str | None = None) -> dict[str, float]:
    """W2 and energy distance of ``n`` model samples to ``n`` fresh data points, and the same between two
    independent data sets of size ``n`` (the sampling floor: what a perfect model would score, roughly).

    Image data ([C, H, W]) is evaluated by :func:`fmcore.core.features.evaluate_images` instead (Fréchet distance
    in a feature network's space, classifier accuracy, memorisation signal); ``guidance`` and ``features``
    apply there."""
    c = run.components
    if len(c.dataset.info.shape) == 3:
        from fmcore.core.features import evaluate_images

        return evaluate_images(run, n, seed, device, batch_size, guidance=guidance, features=features)
    bind_network(c)
    device = device or torch.device("cpu")
    c.network.to(device)
    samples = generate(c.field(), c.sampler, n, c.dataset.info.shape, seed=seed, device=device,
                       batch_size=batch_size).x.cpu()
    data = c.dataset.reference(n, seed=seed + 1_000_003).x
    data2 = c.dataset.reference(n, seed=seed + 2_000_003).x
    out = {"n": n}
    if n <= MAX_EXACT_W2:
        out["w2"] = wasserstein2(samples, data)
        out["w2_floor"] = wasserstein2(data2, data)
        out["w2_ratio"] = out["w2"] / out["w2_floor"]
    out["energy"] = energy_distance(samples, data)
    out["energy_floor"] = energy_distance(data2, data)
    return out
