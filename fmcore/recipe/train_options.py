"""The ``[train]`` table of a recipe."""

from __future__ import annotations

import attrs

from fmcore.core.options import OptionValueError, help_field, in_range, int_range, non_negative, one_of, positive

MIXED_PRECISION = ("no", "bf16", "fp16")
#: seeds are 32-bit (numpy and accelerate's set_seed refuse larger ones)
MAX_SEED = 2**32 - 1
#: no run takes more optimiser steps than this; a larger count is a typo
MAX_STEPS = 10**12


def _betas(_inst, attribute: attrs.Attribute, value: list[float]) -> None:
    if len(value) != 2 or not all(0.0 <= b < 1.0 for b in value):
        raise OptionValueError(attribute.name, value, "two numbers in [0, 1), e.g. [0.9, 0.999]")


def _mixed_precision(_inst, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None:
        one_of(MIXED_PRECISION)(_inst, attribute, value)


@attrs.define(kw_only=True)
class TrainOptions:
    """How to train: steps, batch, optimiser, schedule, precision, EMA, checkpoints and logs."""

    steps: int = help_field(5000, "optimiser steps", validator=int_range(1, MAX_STEPS))
    batch_size: int = help_field(256, "global batch per optimiser step (split over processes)", validator=positive)
    lr: float = help_field(1e-3, "peak learning rate", validator=positive)
    optimizer: str = help_field("adam", "'adam' or 'adamw'", validator=one_of(("adam", "adamw")))
    betas: list[float] = help_field(attrs.Factory(lambda: [0.9, 0.999]), "Adam betas", validator=_betas)
    weight_decay: float = help_field(0.0, "weight decay (decoupled for adamw)", validator=non_negative)
    warmup: int = help_field(0, "linear learning-rate warm-up steps", validator=non_negative)
    schedule: str = help_field(
        "constant", "learning-rate schedule after warm-up: 'constant', 'linear' or 'cosine' (to 0)",
        validator=one_of(("constant", "linear", "cosine")),
    )
    grad_clip: float = help_field(0.0, "clip the gradient norm to this value (0: no clipping)", validator=non_negative)
    grad_accum: int = help_field(1, "micro-batches accumulated per optimiser step", validator=positive)
    mixed_precision: str | None = help_field(
        None, "'no', 'bf16' or 'fp16' (fp16 needs CUDA); absent: accelerate's configuration decides",
        validator=_mixed_precision,
    )
    ema: float = help_field(0.0, "EMA decay of the weights (0: no EMA)", validator=in_range(0.0, 1.0, hi_open=True))
    ema_warmup: bool = help_field(True, "use decay min(ema, (1 + n) / (10 + n)) at update n")
    seed: int = help_field(0, "random seed in 0 .. 2^32 - 1 (each process adds its rank)",
                           validator=int_range(0, MAX_SEED))
    checkpoint_every: int = help_field(0, "also save a checkpoint every N steps (0: by time and at the end)",
                                       validator=non_negative)
    checkpoint_minutes: float = help_field(
        10.0, "save a checkpoint when this many minutes passed since the last one (0: off), and always at the end "
        "and on SIGINT/SIGTERM", validator=non_negative)
    keep_checkpoints: int = help_field(2, "how many newest checkpoints to keep", validator=positive)
    log_every: int = help_field(100, "log metrics every N steps", validator=positive)
    compile: bool = help_field(False, "wrap the network in torch.compile (the first steps compile it; needs a "
                               "platform torch.compile supports, e.g. a C++ compiler for the CPU backend)")
    workers: int = help_field(2, "DataLoader worker processes reading a streaming data set (0: read in the "
                              "training process); in-memory data sets ignore it", validator=int_range(0, 256))
    sample_every: int = help_field(0, "write a sample picture every N steps (0: only at the end)",
                                   validator=non_negative)
    log_with: str = help_field("none", "also log to accelerate trackers: 'none' or 'tensorboard'",
                               validator=one_of(("none", "tensorboard")))
    init: str = help_field("", "start from these weights instead of a random initialisation: a .safetensors file "
                           "of the same network, e.g. another run's ema.safetensors (relative to the recipe; "
                           "read only when the run has no checkpoint yet)", file=True)
