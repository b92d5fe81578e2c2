"""Feature networks and image metrics for ``fm eval`` on image data.

A *feature* component (registered with the ``register_features`` hook, kind ``"feature"``) maps images
[N, C, H, W] in [-1, 1] to feature vectors [N, d] and, when it is a classifier, to class logits. ``fm eval``
uses the feature component registered under the data set's name (or ``--features NAME``) to report:

- ``fd``: the Fréchet distance ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between Gaussians fitted to
  the features of model samples and of reference images, beside ``fd_floor``, the same distance between
  real training images and the reference images. Both compare sets of the same size ``k`` with the same
  reference, so the finite-sample bias is the same; ``fd`` averages over the ``n // k`` disjoint chunks of
  ``k`` samples, ``fd_floor`` over several random ``k``-subsets of the training images (the estimates of a
  single draw move by 20% or more at k = 1,000 against 359 held-out digits);
- ``accuracy`` (conditional models): how often the classifier gives a sample the class it was asked for;
- ``nn_ratio``: median pixel distance of samples to their nearest training image over the same for held-out
  images (well below 1: the model reproduces training images).

:class:`CachedClassifier` trains a small classifier deterministically from a :class:`ClassifierRecipe` and
caches its weights (safetensors) under ``$XDG_CACHE_HOME/fmcore/features`` (default ``~/.cache``), keyed by a
hash of everything that determines them, so stale weights are never used.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from fmcore.core.errors import FmError, did_you_mean, listing
from fmcore.core.features import FeatureExtractor
from fmcore.recipe.build import blame
from fmcore.run.sampling import balanced_labels, generate


@attrs.frozen
class ClassifierRecipe:
    """Everything that determines a cached classifier's weights.

    ``build()`` returns a module mapping images to ``(features, logits)``. Training: Adam, ``epochs`` passes
    over ``train_x`` in shuffled batches, each image shifted by up to ``shift`` pixels (background -1).
    """

    name: str
    build: Callable[[], nn.Module]
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    shift: int = 0

    def key(self) -> str:
        """A hash of the recipe: architecture, data, hyper-parameters and the torch version's major.minor."""
        h = hashlib.sha256()
        with torch.random.fork_rng(devices=[]):
            arch = repr(self.build())
        meta = {"name": self.name, "arch": arch, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "seed": self.seed, "shift": self.shift,
                "torch": ".".join(torch.__version__.split(".")[:2])}
        h.update(json.dumps(meta, sort_keys=True).encode())
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fmcore/features`` (``~/.cache/fmcore/features`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fmcore" / "features"


def random_shift(x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Each image moved by an integer offset in ``[-shift, shift]^2``, uncovered pixels set to -1."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    chan = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chan, rows, cols]


def train_classifier(recipe: ClassifierRecipe) -> tuple[nn.Module, float]:
    """Train ``recipe`` deterministically (its own generators; the global RNG state is left alone) and
    return the model and its accuracy on ``test_x``. It runs on one thread: the result does not depend on the
    machine's core count, and small convolutions are faster that way on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(recipe)
    finally:
        torch.set_num_threads(threads)


def _train(recipe: ClassifierRecipe) -> tuple[nn.Module, float]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = recipe.build()
    g = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    n = recipe.train_x.shape[0]
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            x = random_shift(recipe.train_x[idx], recipe.shift, g)
            loss = nn.functional.cross_entropy(model(x)[1], recipe.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(recipe.test_x)[1].argmax(1) == recipe.test_y).float().mean())
    return model, acc


class CachedClassifier(FeatureExtractor):
    """A classifier that fmcore trains itself from :meth:`recipe` on first use and caches by recipe hash."""

    @abc.abstractmethod
    def recipe(self) -> ClassifierRecipe:
        """What to train."""

    def __init__(self, options):
        super().__init__(options)
        self._model: nn.Module | None = None
        self.test_accuracy = float("nan")
        self.weights_path: Path | None = None

    def model(self) -> nn.Module:
        """The trained classifier: loaded from the cache, or trained (seconds) and cached."""
        if self._model is not None:
            return self._model
        recipe = self.recipe()
        path = cache_dir() / f"{recipe.name}-{recipe.key()}.safetensors"
        model = None
        if path.is_file():
            try:
                state = load_file(str(path))
                with torch.random.fork_rng(devices=[]):
                    model = recipe.build()
                model.load_state_dict({k: v for k, v in state.items() if k != "_test_accuracy"})
                self.test_accuracy = float(state["_test_accuracy"])
            except Exception:  # noqa: BLE001 - a damaged cache file is retrained, never trusted
                model = None
        if model is None:
            with torch.enable_grad():
                model, self.test_accuracy = train_classifier(recipe)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            state["_test_accuracy"] = torch.tensor(self.test_accuracy)
            save_file(state, str(tmp))
            tmp.replace(path)
        self._model, self.weights_path = model.eval(), path
        return self._model

    @torch.no_grad()
    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        model = self.model()
        feats, logits = zip(*(model(chunk.float()) for chunk in x.split(1024)), strict=True)
        return torch.cat(feats), torch.cat(logits)

    def describe(self) -> dict[str, float | str]:
        self.model()
        return {"classifier_test_accuracy": self.test_accuracy, "classifier_weights": str(self.weights_path)}


# -- metrics ----------------------------------------------------------------------------------------------
def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` [N, d] and ``b`` [M, d] (float64).

    ``tr((S_a S_b)^(1/2))`` is computed as the sum of square roots of the eigenvalues of the symmetric
    ``S_a^(1/2) S_b S_a^(1/2)``, which is stable where ``S_a S_b`` is ill-conditioned.
    """
    a = np.asarray(a.double().cpu() if isinstance(a, Tensor) else a, dtype=np.float64)
    b = np.asarray(b.double().cpu() if isinstance(b, Tensor) else b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def frechet_per_chunk(features: Tensor, ref: Tensor, k: int) -> list[float]:
    """Fréchet distance to ``ref`` of each of the ``len(features) // k`` disjoint chunks of ``k`` rows (a last,
    shorter chunk is left out: its finite-sample bias would differ)."""
    return [frechet_distance(part, ref) for part in features[: len(features) // k * k].split(k)]


def nearest_distances(a: Tensor, b: Tensor, chunk: int = 1024) -> Tensor:
    """For each row of ``a`` [N, ...] the Euclidean distance to its nearest row of ``b`` [M, ...]."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return torch.cat([torch.cdist(part, b).min(1).values for part in a.split(chunk)])


def classifier_report(logits: Tensor, labels: Tensor | None, num_classes: int) -> dict:
    """Mean confidence of the classifier on samples and, for conditional samples, accuracy on the class asked
    for (overall and per class)."""
    prob = logits.softmax(1)
    out: dict = {"confidence": float(prob.max(1).values.mean())}
    pred = prob.argmax(1)
    out["class_fractions"] = [float((pred == k).float().mean()) for k in range(num_classes)]
    if labels is not None:
        hit = (pred == labels).float()
        per_class = [float(hit[labels == k].mean()) for k in range(num_classes) if bool((labels == k).any())]
        out["accuracy"] = float(np.mean(per_class))
        out["accuracy_per_class"] = per_class
        out["accuracy_min"] = float(min(per_class))
    return out


#: random training subsets the Fréchet floor is averaged over (at least as many as the model's chunks)
FLOOR_DRAWS = 8


def evaluate_images(run, n: int, seed: int = 0, device=None, batch_size: int = 4096, guidance: float | None = None,
                    features: str | None = None, registry=None, processes=None) -> dict:
    """``fm eval`` for image data: Fréchet distance in a feature network's space beside its floor, classifier
    accuracy of conditional samples (classes cycled 0, 1, ..., K-1), and the nearest-neighbour memorisation
    signal. See the module docstring and docs/images.md for what the numbers mean.

    The reference set is the data set's held-out images (``dataset.held_out``) when it has them, else one half
    of the training images; the floor compares the same number of other training images to it.
    """
    c = run.components
    registry = registry or run.registry
    name = features or run.recipe.data.name
    extractor = None
    if ("feature", name) in registry:
        comp = registry.get("feature", name)
        extractor = comp.cls(comp.options_class())
    elif features:
        raise FmError(f"--features {features!r}: " + _missing(registry, features))
    info = c.network.info
    labels = balanced_labels(n, info.num_classes) if info.num_classes else None
    if guidance is None:
        guidance = float(getattr(c.sampler.options, "guidance", 1.0))
    device = device or torch.device("cpu")
    c.network.to(device)
    with blame(f"{c.who('sampler')} on {c.who('network')}", "sampling"):
        samples = generate(c.field(), c.sampler, n, info.shape, seed=seed, device=device, batch_size=batch_size,
                           labels=labels, null_label=info.null_label, guidance=guidance,
                           processes=processes).x.cpu().float()
    ds = c.dataset
    gen = torch.Generator().manual_seed(seed + 7919)
    train = ds.data if isinstance(getattr(ds, "data", None), Tensor) else ds.sample(max(2 * n, 2000), gen).x
    held = getattr(ds, "held_out", None)
    if held is not None:
        ref, pool = held.x, train
    else:
        perm = torch.randperm(train.shape[0], generator=gen)
        ref, pool = train[perm[: train.shape[0] // 2]], train[perm[train.shape[0] // 2:]]
    k = min(n, pool.shape[0])
    chunks = n // k
    draws = 1 if k == pool.shape[0] else max(chunks, FLOOR_DRAWS)  # k = all of the pool: one possible draw
    out: dict = {"n": n, "compared": k, "chunks": chunks, "floor_draws": draws,
                 "reference": int(ref.shape[0]),
                 "reference_kind": "held-out images" if held is not None else "half of the training images",
                 "guidance": guidance if labels is not None else None, "features": name if extractor else None}
    if extractor is not None:
        f_s, logits = extractor.features_and_logits(samples)
        f_r, _ = extractor.features_and_logits(ref)
        f_p, _ = extractor.features_and_logits(pool)
        model = frechet_per_chunk(f_s, f_r, k)
        floor = [frechet_distance(f_p[torch.randperm(pool.shape[0], generator=gen)[:k]], f_r)
                 for _ in range(draws)]
        out["fd"], out["fd_floor"] = float(np.mean(model)), float(np.mean(floor))
        out["fd_range"], out["fd_floor_range"] = [min(model), max(model)], [min(floor), max(floor)]
        out["fd_ratio"] = out["fd"] / out["fd_floor"]
        if logits is not None:
            same = labels is not None and extractor.num_classes == info.num_classes
            out.update(classifier_report(logits, labels if same else None, extractor.num_classes))
        out.update(extractor.describe())
    base = train if held is not None else ref
    d_samples = nearest_distances(samples, base)
    d_fresh = nearest_distances(ref if held is not None else pool, base)
    out["nn_samples"] = float(d_samples.median())
    out["nn_fresh"] = float(d_fresh.median())
    out["nn_ratio"] = out["nn_samples"] / out["nn_fresh"]
    out["nn_copies"] = float((d_samples < 1e-3 * d_fresh.median()).float().mean())
    return out


def _missing(registry, name: str) -> str:
    names = registry.names("feature")
    return (f"no feature network {name!r}{did_you_mean(name, names)}; installed: {listing(names)}. A plugin "
            "registers one with the register_features hook (docs/images.md)")


def render_image_report(r: dict, header: str) -> str:
    """The table ``fm eval`` prints for image data."""
    lines: list[str] = []
    print = lines.append  # noqa: A001 - the report is built line by line
    cond = f", guidance {r['guidance']:g}" if r.get("guidance") is not None else ""
    print(f"{header}, n = {r['n']}{cond}")
    print(f"reference: {r['reference']} {r['reference_kind']}; model: mean over {r['chunks']} chunk(s) of "
          f"{r['compared']} samples; floor: mean over {r['floor_draws']} draws of {r['compared']} training images")
    if "fd" in r:
        print(f"{'metric':<30}{'model':>12}{'floor':>12}{'ratio':>10}")
        print(f"{'Fréchet distance (' + r['features'] + ')':<30}{r['fd']:>12.3f}{r['fd_floor']:>12.3f}"
              f"{r['fd_ratio']:>10.3f}")
        (lo, hi), (flo, fhi) = r["fd_range"], r["fd_floor_range"]
        print(f"{'  range over chunks / draws':<30}{f'{lo:.1f}-{hi:.1f}':>12}{f'{flo:.1f}-{fhi:.1f}':>12}")
    else:
        print("no feature network for this data: Fréchet distance and accuracy skipped (--features NAME)")
    print(f"{'nearest training image (px)':<30}{r['nn_samples']:>12.3f}{r['nn_fresh']:>12.3f}{r['nn_ratio']:>10.3f}"
          f"   (floor column: fresh images; exact copies {100 * r['nn_copies']:.1f}%)")
    if "confidence" in r:
        print(f"classifier confidence on samples: {r['confidence']:.3f} (classifier held-out accuracy "
              f"{r.get('classifier_test_accuracy', float('nan')):.3f})")
    if "accuracy" in r:
        per = " ".join(f"{a:.2f}" for a in r["accuracy_per_class"])
        print(f"accuracy on the class asked for: {r['accuracy']:.3f} (min {r['accuracy_min']:.3f}; per class {per})")
    return "\n".join(lines)
