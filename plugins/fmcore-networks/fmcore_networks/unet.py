"""A DDPM/ADM-style UNet for image data [C, H, W].

Layout (Ho et al. 2020; Dhariwal & Nichol 2021)::

    conv_in -> [level 0: ResBlock x blocks_per_level (+ attention)] -> down -> ... -> [level L-1]
            -> middle: ResBlock, attention, ResBlock
            -> [level L-1: ResBlock x (blocks_per_level + 1), each on concat(h, skip)] -> up -> ... -> [level 0]
            -> GroupNorm, SiLU, conv_out (zero-initialised, so the untrained network predicts 0)

Every residual block receives the embedding ``e = MLP(sinusoidal(t)) + class_embedding(label)`` as a
per-channel scale and shift after its second normalisation: ``h = norm(h) * (1 + scale) + shift``.
Level ``i`` works at resolution ``H / 2^i`` with ``channels * channel_mult[i]`` channels, so H and W must be
divisible by ``2^(len(channel_mult) - 1)``.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from fmcore import DataInfo, Network
from fmcore.core.network import SinusoidalTimeEmbedding
from fmcore.core.options import OptionValueError, help_field, in_range, positive, positive_ints


def _levels(_inst, attribute: attrs.Attribute, value: list[int]) -> None:
    if any(v < 0 for v in value) or len(set(value)) != len(value):
        raise OptionValueError(attribute.name, value, "distinct level indices >= 0 (0 = full resolution)")


def _num_classes(_inst, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 0:
        raise OptionValueError(attribute.name, value, "0 (ignore labels) or the data's class count; "
                               "leave it out to follow the data")


@attrs.define(kw_only=True)
class UNetOptions:
    channels: int = help_field(64, "channels at the first level", validator=positive)
    channel_mult: list[int] = help_field(attrs.Factory(lambda: [1, 2, 2]),
                                         "channel multiplier per level; len - 1 = number of down-samplings",
                                         validator=positive_ints)
    blocks_per_level: int = help_field(2, "residual blocks per level (the up path has one more)", validator=positive)
    attention_levels: list[int] = help_field(attrs.Factory(lambda: [1]),
                                             "levels (0 = full resolution) with self-attention after each block",
                                             validator=_levels)
    head_channels: int = help_field(32, "channels per attention head (1 head if channels are fewer)",
                                    validator=positive)
    dropout: float = help_field(0.0, "dropout inside residual blocks", validator=in_range(0.0, 1.0, hi_open=True))
    num_classes: int | None = help_field(
        None, "absent: class-conditional exactly when the data has labels; 0: ignore labels; otherwise it "
        "must equal the data's class count", validator=_num_classes)
    checkpointing: bool = help_field(False, "activation checkpointing: keep only each block's input during "
                                     "training and recompute the block in the backward pass (less memory, more "
                                     "time; the same gradients)")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(channels, 32)`` groups: 32 where possible, valid for any channel count."""
    return nn.GroupNorm(math.gcd(channels, 32), channels)


def zero(module: nn.Module) -> nn.Module:
    """``module`` with its parameters set to zero."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv -> GroupNorm * (1 + scale) + shift -> SiLU -> dropout -> conv (zero), + skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.drop = group_norm(c_out), nn.Dropout(dropout)
        self.conv2 = zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H x W positions, with a zero-initialised output projection."""

    def __init__(self, channels: int, head_channels: int):
        super().__init__()
        self.heads = channels // head_channels if channels % head_channels == 0 and channels >= head_channels else 1
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class Level(nn.Module):
    """Residual blocks at one resolution, each optionally followed by attention."""

    def __init__(self, c_ins: list[int], c_out: int, emb_dim: int, dropout: float, attention: bool,
                 head_channels: int):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(c, c_out, emb_dim, dropout) for c in c_ins)
        self.attns = nn.ModuleList(Attention(c_out, head_channels) if attention else nn.Identity() for _ in c_ins)


class UNet(Network):
    """DDPM/ADM-style UNet: residual blocks with time (and class) scale-shift, attention, skip connections."""

    Options = UNetOptions

    @classmethod
    def data_problems(cls, options: UNetOptions, info: DataInfo) -> list[str]:
        """Image data [C, H, W] with H and W divisible by 2^(levels - 1); num_classes absent, 0 or the data's."""
        o = options
        if len(info.shape) != 3:
            return [f"unet needs image data of shape [C, H, W]; this data has samples of shape {list(info.shape)} "
                    "(use the mlp network for vectors)"]
        problems = []
        if o.num_classes not in (None, 0, info.num_classes):
            problems.append(f"num_classes = {o.num_classes}, but the data has {info.num_classes or 'no'} classes; "
                            "leave num_classes out to follow the data, or set 0 to ignore the labels")
        levels = len(o.channel_mult)
        factor = 2 ** (levels - 1)
        _, height, width = info.shape
        if height % factor or width % factor:
            problems.append(f"unet with {levels} levels (channel_mult = {o.channel_mult}) halves the resolution "
                            f"{levels - 1} times, so H and W must be divisible by {factor}; the data is "
                            f"{height} x {width}")
        bad = [i for i in o.attention_levels if i >= levels]
        if bad:
            problems.append(f"attention_levels = {o.attention_levels}: levels are 0 .. {levels - 1} "
                            f"(channel_mult has {levels} entries)")
        return problems

    def __init__(self, options: UNetOptions, info: DataInfo):
        o = options
        problems = self.data_problems(o, info)
        if problems:
            raise ValueError("; ".join(problems))
        if o.num_classes == 0:
            info = attrs.evolve(info, num_classes=0)
        super().__init__(options, info)
        self.checkpointing = o.checkpointing
        c_img, height, width = info.shape
        levels = len(o.channel_mult)
        ch, emb_dim = o.channels, 4 * o.channels
        self.time_embedding = SinusoidalTimeEmbedding(ch)
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if info.num_classes:
            self.class_embedding = nn.Embedding(info.num_classes + 1, emb_dim)
        self.conv_in = nn.Conv2d(c_img, ch, 3, padding=1)
        widths = [ch * m for m in o.channel_mult]
        skips, c = [ch], ch
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, w in enumerate(widths):
            level = Level([c] + [w] * (o.blocks_per_level - 1), w, emb_dim, o.dropout, i in o.attention_levels,
                          o.head_channels)
            self.down.append(level)
            c = w
            skips += [w] * o.blocks_per_level
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb_dim, o.dropout)
        self.mid_attn = Attention(c, o.head_channels)
        self.mid2 = ResBlock(c, c, emb_dim, o.dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            w = widths[i]
            c_ins = []
            for _ in range(o.blocks_per_level + 1):
                c_ins.append(c + skips.pop())
                c = w
            self.up.append(Level(c_ins, w, emb_dim, o.dropout, i in o.attention_levels, o.head_channels))
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = group_norm(c)
        self.conv_out = zero(nn.Conv2d(c, c_img, 3, padding=1))

    def _block(self, block: ResBlock, attn: nn.Module, h: Tensor, emb: Tensor) -> Tensor:
        """``attn(block(h, emb))``; with ``checkpointing`` (while gradients are recorded) its activations are
        recomputed in the backward pass instead of kept (torch.utils.checkpoint, the RNG state preserved so
        that dropout draws the same mask)."""
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(lambda a, e: attn(block(a, e)), h, emb, use_reentrant=False)
        return attn(block(h, emb))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(self.time_embedding(t))
        if self.info.num_classes:
            if cond is None:
                cond = torch.full((x.shape[0],), self.info.null_label, device=x.device, dtype=torch.long)
            emb = emb + self.class_embedding(cond)
        h = self.conv_in(x)
        skips = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = self._block(block, attn, h, emb)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for j, level in enumerate(self.up):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = self._block(block, attn, torch.cat([h, skips.pop()], dim=1), emb)
            if j < len(self.upsample):
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h))).to(x.dtype)
