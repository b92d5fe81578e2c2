"""Streaming data sets (memory-mapped files, shards, lazily decoded image folders with a uint8 cache) and the
resumable epoch sampler that feeds them through a DataLoader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from fmcore.core.errors import FmError
from fmcore.plugins.loading import get_registry
from fmcore.run.loader import EpochBatches, epoch_order, process_part
from fmcore.run.training import HELD, HOLD_ENV
from tests.tables import write_image_folder


def dataset(name: str, **options):
    comp = get_registry().get("dataset", name)
    return comp.cls(comp.options_class(**options))


# -- the sampler ------------------------------------------------------------------------------------------


def test_epochs_are_permutations_and_processes_get_disjoint_parts():
    shards = [7, 3, 11, 5]
    n = sum(shards)
    for epoch in range(3):
        order = epoch_order(shards, seed=4, epoch=epoch)
        assert sorted(order.tolist()) == list(range(n))
        parts = [process_part(shards, 4, epoch, r, 3) for r in range(3)]
        seen = torch.cat(parts).tolist()
        assert len(seen) == len(set(seen)) == 3 * (n // 3), "disjoint, floor(N / world) each"
    assert not torch.equal(epoch_order(shards, 4, 0), epoch_order(shards, 4, 1)), "a new order every epoch"
    assert not torch.equal(epoch_order(shards, 4, 0), epoch_order(shards, 5, 0)), "the seed decides the order"


def test_epoch_order_keeps_each_shard_together():
    shards = [10, 10, 10, 10]
    order = epoch_order(shards, seed=0, epoch=0)
    shard_of = (order // 10).tolist()
    runs = sum(1 for a, b in zip(shard_of, shard_of[1:], strict=False) if a != b) + 1
    assert runs == 4, "shards are visited one after the other, so two processes read disjoint shards"
    assert set(process_part(shards, 0, 0, 0, 2).div(10, rounding_mode="floor").tolist()).isdisjoint(
        set(process_part(shards, 0, 0, 1, 2).div(10, rounding_mode="floor").tolist()))


def test_a_stream_started_at_batch_k_continues_the_stream_exactly():
    shards = [13, 6]
    full = EpochBatches(shards, micro=5, seed=9, rank=1, world=2)
    it = iter(full)
    first = [next(it) for _ in range(12)]  # several epochs (9 items per process per epoch), batches straddle them
    resumed = iter(EpochBatches(shards, micro=5, seed=9, rank=1, world=2, start=7))
    assert [next(resumed) for _ in range(5)] == first[7:]
    flat = sum(first, [])
    for epoch in range(len(flat) // 9):  # the stream is this process's parts of epochs 0, 1, 2, ... in turn
        assert flat[9 * epoch:9 * (epoch + 1)] == process_part(shards, 9, epoch, 1, 2).tolist()


def test_fewer_items_than_processes_is_an_error():
    with pytest.raises(FmError, match="fewer than the 4 processes"):
        EpochBatches([3], micro=1, seed=0, world=4)


# -- the data sets ----------------------------------------------------------------------------------------


def test_streamed_file_reads_the_rows_of_the_in_memory_file(tmp_path):
    data = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float64)
    np.save(tmp_path / "d.npy", data)
    np.save(tmp_path / "y.npy", np.arange(50) % 4)
    memory = dataset("file", path=str(tmp_path / "d.npy"), labels="y.npy")
    stream = dataset("file", path=str(tmp_path / "d.npy"), labels="y.npy", stream=True)
    assert type(stream).__name__ == "StreamedFile" and len(stream) == 50 and stream.info == memory.info
    assert isinstance(stream.shards[0].rows(0, 1), np.memmap), "memory-mapped, not loaded"
    for i in (0, 17, 49):
        x, label = stream.item(i)
        assert np.array_equal(x, memory.data[i].numpy()) and label == int(memory.labels[i])


def test_shards_npy_and_safetensors(tmp_path):
    rng = np.random.default_rng(1)
    rows = [rng.normal(size=(n, 2, 3)).astype(np.float32) for n in (5, 9, 4)]
    (tmp_path / "npy").mkdir()
    (tmp_path / "st").mkdir()
    for k, r in enumerate(rows):
        np.save(tmp_path / "npy" / f"part{k}.npy", r)
        np.save(tmp_path / "npy" / f"part{k}.labels.npy", np.full(len(r), k))
        save_file({"data": r, "labels": np.full(len(r), k, dtype=np.int64)},
                  str(tmp_path / "st" / f"part{k}.safetensors"))
    want = np.concatenate(rows)
    for folder in ("npy", "st"):
        ds = dataset("shards", path=str(tmp_path / folder))
        assert len(ds) == 18 and ds.shard_sizes() == [5, 9, 4] and ds.info.shape == (2, 3) and ds.info.num_classes == 3
        assert all(np.array_equal(ds.item(i)[0], want[i]) for i in range(18))
        assert [ds.item(i)[1] for i in (0, 5, 14, 17)] == [0, 1, 2, 2]
        batch = ds.sample(6, torch.Generator().manual_seed(0))
        assert batch.x.shape == (6, 2, 3) and batch.labels.shape == (6,)


def test_shards_are_checked_when_opened(tmp_path):
    bad = np.zeros((10, 2), np.float32)
    bad[7, 1] = np.nan
    np.save(tmp_path / "a.npy", np.zeros((4, 2), np.float32))
    np.save(tmp_path / "b.npy", bad)
    with pytest.raises(ValueError, match=r"b\.npy.*NaN or inf values in 1 of 10 rows \(the first is row 7\)"):
        dataset("shards", path=str(tmp_path))
    np.save(tmp_path / "b.npy", np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="rows of different shapes"):
        dataset("shards", path=str(tmp_path))


def _images(root, n=12, classes=("a", "b")):
    return write_image_folder(root, classes, per_class=n, size=(9, 11), seed=2)


@pytest.mark.parametrize("cache", [False, True])
def test_streamed_image_folder_gives_the_in_memory_pixels(tmp_path, cache):
    root = _images(tmp_path / "imgs")
    memory = dataset("image_folder", path=str(root), size=8)
    stream = dataset("image_folder", path=str(root), size=8, stream=True, cache=cache)
    assert type(stream).__name__ == "StreamedImageFolder" and stream.info == memory.info
    for i in range(len(stream)):
        x, label = stream.item(i)
        assert np.array_equal(x, memory.data[i].numpy()) and label == int(memory.labels[i])
    assert (root / ".fmcore-cache-8-3.npy").is_file() == cache


def test_image_cache_is_built_once_and_rebuilt_when_a_file_changes(tmp_path):
    from PIL import Image

    root = _images(tmp_path / "imgs", n=3)
    dataset("image_folder", path=str(root), size=8, stream=True, cache=True)
    cache = root / ".fmcore-cache-8-3.npy"
    built = cache.stat().st_mtime_ns
    dataset("image_folder", path=str(root), size=8, stream=True, cache=True)
    assert cache.stat().st_mtime_ns == built, "a matching cache is reused"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a" / "0.png")
    ds = dataset("image_folder", path=str(root), size=8, stream=True, cache=True)
    assert np.array_equal(ds.item(0)[0], np.full((3, 8, 8), -1.0, np.float32)), "rebuilt from the new file"
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")], "nothing half written is left"


def test_streamed_image_folder_refuses_an_undecodable_file_when_caching(tmp_path):
    root = _images(tmp_path / "imgs", n=2)
    (root / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"1 of 5 files .* could not be read as images: a/broken\.png"):
        dataset("image_folder", path=str(root), size=8, stream=True, cache=True)
    assert not (root / ".fmcore-cache-8-3.npy").exists()


# -- training from a stream, interrupted and resumed --------------------------------------------------------

RECIPE = """
[data]
name = "image_folder"
path = "imgs"
size = 8
flip = true
stream = true
cache = CACHE

[path]
name = "condot"

[objective]
name = "cfm"

[network]
name = "unet"
channels = 8
channel_mult = [1, 2]
blocks_per_level = 1
attention_levels = []
num_classes = 2

[sampler]
name = "euler"
steps = 2

[train]
steps = 24
batch_size = 10
log_every = 4
checkpoint_every = 8
workers = 2
seed = 5
ema = 0.9
"""

ENV = {k: v for k, v in os.environ.items() if k != HOLD_ENV} | {"OMP_NUM_THREADS": "1"}


def _train(recipe, run, hold: str | None = None):
    cmd = [sys.executable, "-m", "fmcore", "train", str(recipe), "--run-dir", str(run)]
    if hold is None:
        return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    proc = subprocess.Popen(cmd, env=ENV | {HOLD_ENV: hold}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / HELD).exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


@pytest.mark.e2e
@pytest.mark.parametrize("cache", ["false", "true"])
def test_streaming_resumes_bit_exactly_after_sigkill(tmp_path, cache):
    _images(tmp_path / "imgs", n=13)  # 26 images: an epoch is 2.6 batches, so batches straddle epochs
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.replace("CACHE", cache))
    ref = _train(recipe, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    run = tmp_path / "run"
    proc = _train(recipe, run, hold="step:13")  # checkpoint at step 8; steps 9-13 are lost
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    resumed = subprocess.run([sys.executable, "-m", "fmcore", "train", "--resume", str(run)], capture_output=True,
                             text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and "step 8" in resumed.stdout
    for name in ("model.safetensors", "ema.safetensors"):
        assert (run / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    ref_rows = [line.split('"lr"')[0] for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    run_rows = [line.split('"lr"')[0] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert run_rows == ref_rows, "the same losses at every logged step"
