"""The training loop: accelerate for devices, processes and mixed precision; exact resume.

One optimiser step draws ``batch_size / (processes * grad_accum)`` samples per process per micro-batch from
the data set with the process's global torch generator, so the generator states saved in a checkpoint are
all the randomness there is: resuming reproduces an uninterrupted run bit for bit. The hot loop keeps
losses on the device and synchronises with the host only every ``log_every`` steps.

Interruption (docs/reliability.md): SIGINT and SIGTERM set a flag; the current step finishes, a checkpoint is
written (atomically) and the run exits with 130 / 143, saying how to resume. Checkpoints are also written every
``checkpoint_minutes`` of wall time, every ``checkpoint_every`` steps and at the end. With several processes the
flags are combined (all-reduce, max) only at log steps, so every rank takes the same decision.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import attrs
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from fmcore.core.errors import FmError, NonFiniteLossError
from fmcore.core.network import count_parameters
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import Components, build
from fmcore.recipe.recipe import Recipe
from fmcore.recipe.train_options import MAX_SEED, TrainOptions
from fmcore.run import checkpoint as ckpt
from fmcore.run import plotting, rundir
from fmcore.run.distributed import import_dynamo, several
from fmcore.run.ema import EMA
from fmcore.run.loader import POSITION, BatchStream
from fmcore.run.lock import LOCK, RunLock
from fmcore.run.sampling import balanced_labels, generate

PREVIEW_SAMPLES = 2000
#: test hook: ``step:N`` or ``checkpoint:N`` makes the trainer stop after step N (or inside the checkpoint write
#: of step N, before it is published), create ``RUN_DIR/.held`` and wait until that file is removed or a signal
#: arrives; interruption tests and bench/interrupt.py signal it at a moment they observe
HOLD_ENV = "FMCORE_TEST_HOLD"
#: the key, in ``rng_<rank>.safetensors``, of the losses logged so far in the current log interval
INTERVAL = "interval_losses"
HELD = ".held"
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(FmError):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint; exit code 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = SIGNAL_EXIT.get(signum, 128 + signum)


def lr_factor(step: int, o: TrainOptions) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): linear warm-up, then the schedule."""
    if step < o.warmup:
        return (step + 1) / o.warmup
    if o.schedule == "constant":
        return 1.0
    progress = (step - o.warmup) / max(1, o.steps - o.warmup)
    return 1.0 - progress if o.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, o: TrainOptions) -> torch.optim.Optimizer:
    """Adam or AdamW with the multi-tensor (``foreach``) update on every device.

    PyTorch picks the per-parameter Python loop on the CPU by default; on the digits UNet (100+ parameter
    tensors) that loop was about 15% of a training step (bench/unet_step.py).
    """
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, foreach=True)


def make_accelerator(o: TrainOptions, run_dir: Path) -> Accelerator:
    """An Accelerator for the recipe; ``mixed_precision`` absent means accelerate's own configuration."""
    if o.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise FmError("[train] mixed_precision = 'fp16' needs a CUDA GPU (fp16 autocast with gradient scaling); "
                      "use 'bf16' or 'no' on the CPU")
    if several():
        import_dynamo()  # before accelerate starts the process group (fmcore.run.distributed.import_dynamo)
    kwargs = {}
    if o.log_with != "none":
        kwargs.update(log_with=o.log_with, project_dir=str(run_dir / "logs"))
    try:
        # cpu=True where there is no GPU: that is what makes accelerate read torchrun's environment on a CPU
        # machine and start gloo (several processes), instead of running each process alone.
        return Accelerator(mixed_precision=o.mixed_precision, gradient_accumulation_steps=o.grad_accum,
                           cpu=not torch.cuda.is_available(), **kwargs)
    except ValueError as exc:
        raise FmError(f"accelerate refused the training setup: {exc}") from None


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


@attrs.frozen
class TrainResult:
    run_dir: Path
    steps: int
    final_loss: float
    main_process: bool = True


class Trainer:
    """Trains the recipe's network into ``run_dir``; see :func:`train`."""

    def __init__(self, recipe: Recipe, registry: Registry, run_dir: Path, resume: bool = False,
                 memory_check: bool = True):
        self.recipe, self.o, self.run_dir = recipe, recipe.train, Path(run_dir)
        self.acc = make_accelerator(self.o, self.run_dir)
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        if self.o.seed + self.world - 1 > MAX_SEED:
            raise FmError(f"[train] seed = {self.o.seed}: each of the {self.world} processes adds its rank, and seeds "
                          f"end at {MAX_SEED}; use a seed of at most {MAX_SEED - self.world + 1}")
        per_step = self.world * self.o.grad_accum
        if self.o.batch_size % per_step:
            raise FmError(f"[train] batch_size = {self.o.batch_size} must be divisible by processes x grad_accum "
                          f"= {self.world} x {self.o.grad_accum}")
        self.micro = self.o.batch_size // per_step
        set_seed(self.o.seed)  # identical initial weights on every process
        # the compatibility check and the memory preflight, before step 1
        self.c: Components = build(recipe, registry, training=True, device=self.acc.device, batch=self.micro,
                                   memory_check=memory_check)
        self.info = self.c.dataset.info
        set_seed(self.o.seed, device_specific=True)  # then a distinct data stream per process
        if count_parameters(self.c.network) == 0:
            raise FmError(f"[network] {recipe.network.name} has no trainable parameters, so there is nothing to "
                          "train; make a run from it directly: fm oracle RECIPE --run-dir DIR, then fm sample DIR")
        self.device = self.acc.device
        model = self.c.network.to(self.device)
        if self.o.init and not (resume and ckpt.checkpoint_dirs(self.run_dir)):
            rundir.load_init(model, Path(self.o.init), recipe.network)  # the EMA, created below, starts from it
        self.model, self.opt = self.acc.prepare(model, make_optimizer(model, self.o))
        self.net = self.acc.unwrap_model(self.model)
        if self.o.compile:
            self.model = compiled(self.model)  # shares its parameters with self.net (checkpoints, EMA)
        self.ema = EMA(self.net, self.o.ema, self.o.ema_warmup) if self.o.ema > 0 else None
        self.step = 0
        self.skipped = 0
        self._losses = torch.zeros(self.o.log_every * self.o.grad_accum, device=self.device)  # this log interval
        self._k = 0
        self._signal: int | None = None  # set by the SIGINT/SIGTERM handler
        self._saved_step = -1  # the step of the newest checkpoint this process wrote or resumed from
        self._hold = _parse_hold(os.environ.get(HOLD_ENV, ""))
        self._stream_start = 0  # streamed micro-batches consumed (restored from the checkpoint)
        if resume:
            self._restore()
        self.stream = None  # a streaming data set comes through a DataLoader; in-memory ones are sampled directly
        if getattr(self.c.dataset, "streaming", False):
            self.stream = BatchStream(self.c.dataset, self.micro, self.o.seed, self.device, rank=self.rank,
                                      world=self.world, start=self._stream_start, workers=self.o.workers)

    # -- checkpoints ------------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        acc, step = self.acc, self.step
        acc.wait_for_everyone()
        tmp = self.run_dir / "checkpoints" / f"{ckpt.TMP_PREFIX}{ckpt.PREFIX}{step:08d}"
        if acc.is_main_process:
            ckpt.staging_dir(self.run_dir, step)
        acc.wait_for_everyone()
        # the generators, and the losses of the current log interval (so a resumed run logs the same means)
        extra = {} if self.stream is None else {POSITION: torch.tensor([self.stream.consumed], dtype=torch.int64)}
        ckpt.save_tensors({**ckpt.rng_tensors(), INTERVAL: self._losses[: self._k], **extra},
                          tmp / f"rng_{self.rank}.safetensors")
        if acc.is_main_process:
            meta = rundir.network_metadata(self.recipe.network)
            ckpt.save_tensors(self.net.state_dict(), tmp / rundir.MODEL, meta)
            tensors, opt_meta = ckpt.optimizer_tensors(self.opt.state_dict())
            ckpt.save_tensors(tensors, tmp / "optimizer.safetensors", opt_meta)
            if self.ema is not None:
                ckpt.save_tensors(self.ema.state_dict(), tmp / rundir.EMA, meta)
            state = {"step": step, "processes": self.world, "skipped_steps": self.skipped,
                     "ema_updates": self.ema.updates if self.ema else 0}
            (tmp / "state.json").write_text(json.dumps(state))
            self._held("checkpoint")
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.publish(self.run_dir, step, self.o.keep_checkpoints)
        acc.wait_for_everyone()
        self._saved_step, self._saved_at = step, time.monotonic()

    def _restore(self) -> None:
        """Continue from the newest complete checkpoint (from step 0 when there is none yet: the fresh
        weights and generators are then exactly those the interrupted run started from)."""
        found = ckpt.checkpoint_dirs(self.run_dir)
        if not found:
            self.acc.print(f"{self.run_dir} has no checkpoint yet: starting again from step 0")
            self._truncate_metrics(0)
            return
        path = found[-1]
        state = ckpt.read_state(path)
        if state["step"] > self.o.steps:
            raise FmError(f"{path} is at step {state['step']}, beyond [train] steps = {self.o.steps}; raise steps "
                          f"(--set train.steps=N) to train further")
        if state["processes"] != self.world:
            raise FmError(f"{path} was written by {state['processes']} processes; resume it with the same "
                          f"number (this launch has {self.world}) to continue exactly")
        rundir.load_weights(self.net, path / rundir.MODEL, self.recipe.network)
        tensors, meta = ckpt.load_tensors(path / "optimizer.safetensors")
        try:
            self.opt.load_state_dict(ckpt.optimizer_state(tensors, meta, str(path / "optimizer.safetensors")))
        except (ValueError, KeyError, RuntimeError) as exc:
            raise FmError(f"{path / 'optimizer.safetensors'} does not fit this optimiser and network ("
                          f"{type(exc).__name__}: {' '.join(str(exc).split())}); resume from an older checkpoint "
                          "or start the run again") from None
        if self.ema is not None:
            ema_path = path / rundir.EMA
            if not ema_path.is_file():
                raise FmError(f"{path} has no {rundir.EMA}, but [train] ema = {self.o.ema}: the recipe's ema was "
                              "changed after training started; restore it in recipe.toml")
            self.ema.load_state_dict(rundir.checked_tensors(self.net, ema_path, self.recipe.network),
                                     state["ema_updates"])
        rng = path / f"rng_{self.rank}.safetensors"
        tensors = ckpt.load_tensors(rng)[0]
        interval = tensors.pop(INTERVAL, torch.zeros(0))
        position = tensors.pop(POSITION, None)
        if getattr(self.c.dataset, "streaming", False):
            if position is None or position.shape != (1,) or int(position[0]) < 0:
                raise FmError(f"{rng}: no valid {POSITION} (the position in the streamed data); was the data set "
                              "changed to a streaming one after training started? Restore the recipe's [data]")
            self._stream_start = int(position[0])
        if interval.ndim != 1 or interval.shape[0] > self._losses.shape[0]:
            raise FmError(f"{rng}: {INTERVAL} has shape {list(interval.shape)}; expected at most "
                          f"{self._losses.shape[0]} values ([train] log_every x grad_accum): was log_every changed?")
        ckpt.restore_rng(tensors, str(rng))
        self._k = interval.shape[0]
        self._losses[: self._k] = interval.to(self._losses)
        self.step, self.skipped = state["step"], state["skipped_steps"]
        self._saved_step = self.step
        self._truncate_metrics(self.step)
        self.acc.print(f"resuming from {path} (step {self.step})")

    def _truncate_metrics(self, step: int) -> None:
        """Drop the metrics rows logged after ``step`` (the run repeats those steps), so each step appears once."""
        metrics = self.run_dir / rundir.METRICS
        if not self.acc.is_main_process or not metrics.is_file():
            return
        lines = metrics.read_text().splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                row_step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill mid-write
            if isinstance(row_step, int) and row_step <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
        if len(kept) != len(lines):
            ckpt.write_text_atomic(metrics, "".join(kept))

    # -- pictures -------------------------------------------------------------------------------------
    def _sampling_network(self) -> torch.nn.Module:
        net = copy.deepcopy(self.net)
        if self.ema is not None:
            self.ema.copy_to(net)
        return net.eval()

    def write_preview(self, out: Path, n: int = PREVIEW_SAMPLES) -> None:
        """Samples from the current (EMA) weights beside data, as ``out`` (main process only). Image data: 100
        samples, one row per class (the recipe's [sampler] guidance) when the network is class-conditional."""
        net = self._sampling_network()
        labels = None
        if len(self.info.shape) == 3:
            n = min(n, 100)
            if net.info.num_classes:
                labels = balanced_labels(n, net.info.num_classes)
        samples = generate(self.c.field(net), self.c.sampler, n, self.info.shape, seed=self.o.seed,
                           device=self.device, labels=labels, null_label=net.info.null_label).x
        data = self.c.dataset.reference(n, seed=self.o.seed + 1).x
        plotting.save_preview(samples, data, out, title=f"{self.recipe.source} step {self.step}", labels=labels)

    # -- interruption ---------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame) -> None:
        """SIGINT/SIGTERM: finish the step, checkpoint, stop. A second SIGINT stops at once (the previous
        checkpoint stays intact: checkpoints are published by an atomic rename)."""
        if self._signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._signal = signum

    def _held(self, where: str) -> None:
        """The :data:`HOLD_ENV` test hook: wait at ``where`` (step / checkpoint) of the step named there."""
        if self._hold != (where, self.step) or not self.acc.is_main_process:
            return
        marker = self.run_dir / HELD
        ckpt.write_text_atomic(marker, f"{where} {self.step} {os.getpid()}\n")
        while marker.exists() and self._signal is None:
            time.sleep(0.005)
        marker.unlink(missing_ok=True)

    def _should_stop(self, sync: bool) -> tuple[bool, bool]:
        """(stop now, checkpoint now because of wall time), identical on every process: one process decides
        at every step; several combine their flags (max) at log steps only, where they synchronise anyway."""
        due = bool(self.o.checkpoint_minutes) and time.monotonic() - self._saved_at >= 60 * self.o.checkpoint_minutes
        stop = self._signal is not None
        if self.world == 1:
            return stop, due
        if not sync:
            return False, False
        flags = torch.tensor([float(stop), float(due)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return bool(flags[0]), bool(flags[1])

    def _interrupted(self) -> Interrupted:
        signum = self._signal if self._signal is not None else signal.SIGTERM
        name = signal.Signals(signum).name
        where = ckpt.checkpoint_dirs(self.run_dir)
        return Interrupted(f"{name} received: training stopped after step {self.step} of {self.o.steps}; the "
                           f"checkpoint {where[-1] if where else '(none)'} holds it. Continue exactly where it "
                           f"stopped with: fm train --resume {self.run_dir}", signum)

    # -- the loop -------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Run the loop under SIGINT/SIGTERM handlers (main thread only): see the module's docstring."""
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, self._on_signal) for sig in SIGNAL_EXIT}
        try:
            return self._train()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _train(self) -> TrainResult:
        o, acc = self.o, self.acc
        main = acc.is_main_process
        acc.print(f"network: {self.recipe.network.name}, {count_parameters(self.net):,} parameters; "
                  f"{self.world} process(es) on {self.device}, micro-batch {self.micro}, "
                  f"precision {acc.mixed_precision}")
        if acc.mixed_precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            acc.print("note: this CPU has no native bf16 instructions; bf16 autocast is emulated and much slower "
                      "than fp32 here")
        if o.log_with != "none":
            acc.init_trackers("fmcore", config={"recipe": self.recipe.to_toml()})
        metrics_file = self.run_dir / rundir.METRICS
        bar = tqdm(total=o.steps, initial=self.step, disable=not main, dynamic_ncols=True, mininterval=0.5)
        t_last, step_last = time.perf_counter(), self.step
        self._saved_at = time.monotonic()
        self.model.train()
        while self.step < o.steps:
            log_now = (self.step + 1) % o.log_every == 0 or self.step + 1 == o.steps
            lr, grad_norm = self.train_step(log_now)
            bar.update(1)
            if log_now:
                now = time.perf_counter()
                row = self._log(self._losses[: self._k], lr, grad_norm, (self.step - step_last) / (now - t_last))
                self._k, t_last, step_last = 0, now, self.step
                if main:
                    bar.set_postfix(loss=f"{row['loss']:.4g}")
                    with open(metrics_file, "a") as f:
                        f.write(json.dumps(row) + "\n")
                if o.log_with != "none":
                    acc.log({key: v for key, v in row.items() if key != "step"}, step=self.step)
            if self._hold is not None:
                self._held("step")
            stop, due = self._should_stop(log_now)
            if stop or due or self.step == o.steps or (o.checkpoint_every and self.step % o.checkpoint_every == 0):
                if self.step != self._saved_step:
                    self._check_weights()
                    self._save_checkpoint()
                    stop = stop or (self.world == 1 and self._signal is not None)  # a signal during the write
            if stop:
                bar.close()
                raise self._interrupted()
            if main and o.sample_every and self.step % o.sample_every == 0 and self.step < o.steps:
                self.write_preview(self.run_dir / f"samples_step{self.step:08d}.png")
        bar.close()
        final = self._finish(metrics_file)
        acc.end_training()  # trackers finish; a process group is destroyed (alive at exit, gloo can abort)
        return TrainResult(self.run_dir, self.step, final, acc.is_main_process)

    def train_step(self, log_now: bool = False):
        """One optimiser step: ``grad_accum`` micro-batches, clipping, the update, EMA. No host sync.

        Returns the learning rate used and the gradient norm (a device tensor, computed only when clipping
        or when ``log_now``).
        """
        o, acc, c = self.o, self.acc, self.c
        lr = o.lr * lr_factor(self.step, o)
        for group in self.opt.param_groups:
            group["lr"] = lr
        grad_norm = None
        for _ in range(o.grad_accum):
            batch = c.dataset.sample(self.micro).to(self.device) if self.stream is None else self.stream.next()
            with acc.accumulate(self.model), compile_errors(self.o.compile):
                loss = c.objective.loss(self.model, c.path, batch, self.info.null_label)
                acc.backward(loss)
                if acc.sync_gradients:
                    if o.grad_clip > 0 or log_now:
                        grad_norm = acc.clip_grad_norm_(self.model.parameters(), o.grad_clip or math.inf)
                    self._optimizer_step()
            self._losses[self._k % self._losses.shape[0]] = loss.detach()
            self._k += 1
        if acc.mixed_precision == "fp16" and self.opt.step_was_skipped:
            self.skipped += 1
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        return lr, grad_norm

    def _optimizer_step(self) -> None:
        """Step and clear gradients. With a gradient scaler (fp16) accelerate's wrapper does it; otherwise the
        plain optimiser steps, because the wrapper looks up an optional package on every call (about 0.7 ms
        per step on a CPU, measured with bench/overhead.py)."""
        if self.acc.scaler is not None:
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        else:
            self.opt.optimizer.step()
            self.opt.optimizer.zero_grad(set_to_none=True)

    def _log(self, losses: torch.Tensor, lr: float, grad_norm, steps_per_s: float) -> dict:
        """Check the interval's losses are finite, then reduce them over processes into one log row."""
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first_bad = int((~finite).nonzero()[0, 0]) // self.o.grad_accum
            step = self.step - losses.shape[0] // self.o.grad_accum + first_bad + 1
            self._diverged(f"the loss became non-finite at step {step}")
        mean = self.acc.reduce(losses.mean(), reduction="mean")
        row = {"step": self.step, "loss": float(mean), "lr": lr, "steps_per_s": steps_per_s,
               "samples_per_s": steps_per_s * self.o.batch_size}
        if grad_norm is not None:
            row["grad_norm"] = float(grad_norm)
        if self.acc.mixed_precision == "fp16":
            row["skipped_steps"] = self.skipped
        return row

    def _check_weights(self) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in self.net.parameters()):
            self._diverged(f"the weights became non-finite by step {self.step}")

    def _diverged(self, what: str) -> None:
        found = ckpt.checkpoint_dirs(self.run_dir)
        kept = f"the last good checkpoint, {found[-1]}, is intact" if found else "no checkpoint had been written"
        raise NonFiniteLossError(f"{what}; training stopped ({kept}). Lower [train] lr, set grad_clip, or "
                                 "check the data for NaN/inf values")

    def _finish(self, metrics_file: Path) -> float:
        """Final weights, the loss-curve picture and samples beside data (main process)."""
        if not self.acc.is_main_process:
            return math.nan
        meta = rundir.network_metadata(self.recipe.network)
        ckpt.save_tensors(self.net.state_dict(), self.run_dir / rundir.MODEL, meta)
        if self.ema is not None:
            ckpt.save_tensors(self.ema.state_dict(), self.run_dir / rundir.EMA, meta)
        last = math.nan
        if metrics_file.is_file():
            rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
            last = rows[-1]["loss"] if rows else math.nan
            plotting.loss_curve(metrics_file, self.run_dir / "loss.png")
        self.write_preview(self.run_dir / "samples.png")
        return last


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(model)``, refused with an FmError where this platform has no TorchDynamo."""
    import torch._dynamo.eval_frame

    if not torch._dynamo.eval_frame.is_dynamo_supported():
        raise FmError(f"[train] compile = true: torch.compile is not supported on this platform (torch "
                      f"{torch.__version__}, Python {sys.version.split()[0]}); set compile = false")
    return torch.compile(model)


@contextlib.contextmanager
def compile_errors(active: bool):
    """Turn a failure of torch.compile's backend (it compiles at the first steps: e.g. no working C++ compiler
    for the CPU backend) into an FmError saying so; other errors pass through unchanged."""
    if not active:
        yield
        return
    from torch._dynamo.exc import BackendCompilerFailed

    try:
        yield
    except BackendCompilerFailed as exc:
        first = " ".join(str(exc).split())[:400]
        raise FmError(f"[train] compile = true: torch.compile could not compile the network on this platform "
                      f"({first}); set compile = false (eager mode), or install what the message names (the CPU "
                      "backend needs a working C++ compiler)") from None


def _parse_hold(text: str) -> tuple[str, int] | None:
    where, _, step = text.partition(":")
    return (where, int(step)) if where in ("step", "checkpoint") and step.isdigit() else None


def _contents(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name not in (LOCK, HELD))


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to train into an existing, non-empty run directory unless resuming it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FmError(f"run directory {str(run_dir)!r} exists and is not a directory; choose another --run-dir")
    if resume:
        if not (run_dir / rundir.RECIPE).is_file():
            raise FmError(f"cannot resume {str(run_dir)!r}: it is not an fmcore run directory (no {rundir.RECIPE})")
        return
    if run_dir.exists() and _contents(run_dir):
        if (run_dir / rundir.RECIPE).is_file():
            raise FmError(f"run directory {str(run_dir)!r} already holds a run; continue it with `fm train --resume "
                          f"{run_dir}` (from its newest checkpoint, or from step 0 if it has none) or choose another "
                          "--run-dir")
        raise FmError(f"run directory {str(run_dir)!r} already exists and is not empty (it is not an fmcore run: no "
                      f"{rundir.RECIPE}); choose another --run-dir")


def train(recipe: Recipe, registry: Registry, run_dir: str | Path, resume: bool = False,
          memory_check: bool = True) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (``resume``: continue from its newest complete checkpoint, or from
    step 0 when the run has none yet), holding the run directory's lock (the main process) throughout."""
    run_dir = Path(run_dir)
    if not (run_dir / LOCK).exists():  # not written by fmcore: nothing to lock, refuse before writing in it
        check_run_dir(run_dir, resume)
    created = not run_dir.exists()
    lock = None
    if int(os.environ.get("RANK", "0")) == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
    try:
        check_run_dir(run_dir, resume)  # under the lock: a second writer is told who holds it, above
        return train_locked(recipe, registry, run_dir, resume, memory_check)
    except BaseException:
        if created and lock is not None and run_dir.is_dir() and not _contents(run_dir):
            (run_dir / LOCK).unlink(missing_ok=True)  # nothing was written: leave no directory behind
            run_dir.rmdir()
        raise
    finally:
        if lock is not None:
            lock.release()


def train_locked(recipe: Recipe, registry: Registry, run_dir: Path, resume: bool = False,
                 memory_check: bool = True) -> TrainResult:
    """Train into ``run_dir``, whose lock the caller holds (the main process) and which it has checked; a fresh
    run writes its recipe and provenance first."""
    trainer = Trainer(recipe, registry, run_dir, resume, memory_check)
    if trainer.acc.is_main_process and not resume:
        ckpt.write_text_atomic(run_dir / rundir.RECIPE, recipe.to_toml(relative_to=run_dir))
        rundir.write_provenance(run_dir, recipe, registry)
    trainer.acc.wait_for_everyone()
    return trainer.train()
