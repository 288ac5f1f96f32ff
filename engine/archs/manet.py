"""MANet: per-pixel blur-kernel estimation with mutual affine convolutions (Liang et al., ICCV 2021).

Graph contract: ``lr_rgb`` (N, 3, H, W) float32 RGB in [0, 1], H and W multiples of
:data:`MULTIPLE_OF` → ``kernels`` (N, 441, H, W): for every LR pixel a 21×21 kernel (row-major,
``kernels[:, ky * 21 + kx]``) that is non-negative and sums to 1 (softmax over the channel axis).

The network never pads: callers pad with :func:`pad_to_multiple` (replicate, bottom/right only, so
pixel (0, 0) stays at the origin) and crop the result back with :func:`crop_to`. Keeping the padding
outside the network lets the graph export with dynamic height and width.

Layout (channels ``c1`` / ``c2``; paper 128 / 256)::

    f0 = conv3x3(lr_rgb)                 3 → c1
    f1 = MABlock(f0)                     c1
    b  = MABlock(conv2x2/2(f1))          c1 → c2, half resolution
    u  = convT2x2/2(b)                   c2 → c1, full resolution
    u  = MABlock(u + f1)                 skip 1: the first MABlock's output
    kernels = softmax(conv3x3(u + f0))   skip 2: the first conv's output; c1 → 441

Receptive field: 22 × 22 LR pixels (11 before and 10 after an even output pixel, one more before
for odd pixels), so tiles are exact with 12 LR pixels of context and origins at multiples of 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

INPUT_NAMES: tuple[str, ...] = ("lr_rgb",)
OUTPUT_NAMES: tuple[str, ...] = ("kernels",)
MULTIPLE_OF = 8
"""Input height and width must be multiples of this (the graph has one stride-2 level; 8 keeps
tile origins aligned with the published tiling rule)."""
CONTEXT_LR_PX = 12
"""LR pixels of context a tile needs on every side for its inner part to be exact."""
RECEPTIVE_FIELD_LR_PX = 22


def _split_sizes(channels: int, split: int) -> list[int]:
    """Split ``channels`` into ``split`` near-equal parts (the first parts take the remainder)."""
    base, extra = divmod(channels, split)
    if base == 0:
        raise ValueError(f"cannot split {channels} channels into {split} groups")
    return [base + (1 if i < extra else 0) for i in range(split)]


class MAConv(nn.Module):
    """Mutual affine convolution: a 3×3 convolution whose input groups modulate each other.

    The ``in_channels`` are split into ``split`` groups. For group ``i`` the concatenation of the
    *other* groups goes through ``conv1x1 → ReLU → conv1x1`` and yields a scale and a translation of
    group ``i``'s width; the group becomes ``conv3x3(x_i * sigmoid(scale) + translation)`` with
    ``out_channels / split`` outputs. The group outputs are concatenated. The receptive field stays
    3×3; MAConv(128, 128) has 86,464 parameters against 147,584 for a plain 3×3 convolution.

    Args:
        in_channels: input channels (at least ``split``).
        out_channels: output channels (at least ``split``).
        split: number of channel groups (the paper uses 2).
        reduction: the affine branch's hidden width is ``(width of the other groups) // reduction``.
    """

    def __init__(self, in_channels: int, out_channels: int, split: int = 2, reduction: int = 2) -> None:
        super().__init__()
        if split < 2:
            raise ValueError("MAConv needs split >= 2 (a group is modulated by the others)")
        self.in_splits = _split_sizes(in_channels, split)
        out_splits = _split_sizes(out_channels, split)
        self.affine = nn.ModuleList()
        self.conv = nn.ModuleList()
        for i in range(split):
            others = in_channels - self.in_splits[i]
            hidden = max(1, others // reduction)
            self.affine.append(
                nn.Sequential(
                    nn.Conv2d(others, hidden, 1),
                    nn.ReLU(),
                    nn.Conv2d(hidden, 2 * self.in_splits[i], 1),
                )
            )
            self.conv.append(nn.Conv2d(self.in_splits[i], out_splits[i], 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(x, self.in_splits, dim=1)
        outs = []
        for i, group in enumerate(groups):
            others = torch.cat([g for j, g in enumerate(groups) if j != i], dim=1)
            scale, translation = torch.chunk(self.affine[i](others), 2, dim=1)
            outs.append(self.conv[i](group * torch.sigmoid(scale) + translation))
        return torch.cat(outs, dim=1)


class MABlock(nn.Module):
    """Residual block ``x + MAConv(ReLU(MAConv(x)))`` with ``channels`` in and out.

    Args:
        channels: feature width.
        split: MAConv groups.
        reduction: MAConv affine-branch reduction.
    """

    def __init__(self, channels: int, split: int = 2, reduction: int = 2) -> None:
        super().__init__()
        self.conv1 = MAConv(channels, channels, split, reduction)
        self.conv2 = MAConv(channels, channels, split, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


@dataclass(frozen=True)
class MANetConfig:
    """Sizes of a MANet.

    Attributes:
        channels: feature width at full resolution (paper 128).
        channels_low: feature width at half resolution (paper 256).
        kernel_size: side of the estimated kernels (21; the output has ``kernel_size**2`` channels).
        split: MAConv channel groups.
        reduction: MAConv affine-branch reduction.
    """

    channels: int
    channels_low: int
    kernel_size: int = 21
    split: int = 2
    reduction: int = 2


PRESETS: dict[str, MANetConfig] = {
    "paper": MANetConfig(channels=128, channels_low=256),  # 1,810,361 parameters
    "small": MANetConfig(channels=32, channels_low=64),
    "tiny": MANetConfig(channels=8, channels_low=16),
}


class MANet(nn.Module):
    """Kernel estimator: LR RGB image → one normalised ``kernel_size``² kernel per LR pixel.

    Args:
        channels: feature width at full LR resolution.
        channels_low: feature width at half LR resolution.
        kernel_size: side of each estimated kernel (odd; 21 in the paper for scales 2, 3, 4).
        split: MAConv channel groups.
        reduction: MAConv affine-branch reduction.

    ``forward(lr_rgb)`` takes (N, 3, H, W) RGB in [0, 1] with H, W multiples of 8 and returns
    (N, kernel_size², H, W), softmax-normalised over the channel axis.
    """

    def __init__(
        self,
        channels: int = 128,
        channels_low: int = 256,
        kernel_size: int = 21,
        split: int = 2,
        reduction: int = 2,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.block_high = MABlock(channels, split, reduction)
        self.down = nn.Conv2d(channels, channels_low, 2, stride=2)
        self.block_low = MABlock(channels_low, split, reduction)
        self.up = nn.ConvTranspose2d(channels_low, channels, 2, stride=2)
        self.block_up = MABlock(channels, split, reduction)
        self.tail = nn.Conv2d(channels, kernel_size * kernel_size, 3, padding=1)
        self.register_buffer("channel_ones", torch.empty(1, kernel_size * kernel_size, 1, 1), persistent=False)
        self.init_constants()

    def init_constants(self) -> None:
        """Fill the non-persistent constant buffers (also called after materialising from meta)."""
        with torch.no_grad():
            self.channel_ones.fill_(1.0)

    def forward(self, lr_rgb: torch.Tensor) -> torch.Tensor:
        f0 = self.head(lr_rgb)
        f1 = self.block_high(f0)
        u = self.up(self.block_low(self.down(f1)))
        u = self.block_up(u + f1)
        return channel_softmax(self.tail(u + f0), self.channel_ones)


def build(preset: str, scale: int) -> MANet:
    """A MANet of the named preset (``paper``, ``small``, ``tiny``).

    The architecture does not depend on ``scale`` (kernels are 21×21 at every scale); it is
    validated so that every network builder has the same signature. Weights use PyTorch's default
    initialisation; see :func:`engine.archs.init_weights` for a seeded one.
    """
    _check_scale(scale)
    cfg = PRESETS[preset]
    return MANet(cfg.channels, cfg.channels_low, cfg.kernel_size, cfg.split, cfg.reduction)


def channel_softmax(logits: torch.Tensor, ones: torch.Tensor) -> torch.Tensor:
    """Softmax over axis 1 of (N, C, H, W), written as max-subtract, exp, channel sum, divide.

    Mathematically ``torch.softmax(logits, dim=1)``. Exported to ONNX, this form (ReduceMax, Sub,
    Exp, a 1×1 convolution with ones for the channel sum, Div) runs several times faster in
    onnxruntime than its Softmax on a non-last axis, which transposes internally and took about 70 %
    of MANet's time (see bench/bench_backends.py). ``ones`` is a (1, C, 1, 1) tensor of ones held by
    the module as a non-persistent buffer: a graph constant, absent from the weight files.
    """
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
    return e / F.conv2d(e, ones)


def _check_scale(scale: int) -> None:
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE_OF) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad (N, C, H, W) ``x`` at the bottom and right up to multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`. Padding only the
    bottom/right keeps LR pixel (0, 0) at the origin, so kernels need no re-indexing.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop (N, C, H', W') ``x`` back to the top-left ``size = (H, W)`` (undoes :func:`pad_to_multiple`)."""
    h, w = size
    return x[..., :h, :w]


def estimate_kernels(model: MANet, lr_rgb: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on (N, 3, H, W) RGB in [0, 1] of any size: pad, estimate, crop back.

    Returns (N, 441, H, W) kernels on the LR grid (never expanded to the HR grid).
    """
    padded, size = pad_to_multiple(lr_rgb, MULTIPLE_OF)
    return crop_to(model(padded), size)
