"""RRDB-SFT: non-blind super-resolution conditioned on a per-pixel kernel PCA code map (MANet paper).

Graph contract: ``lr_rgb`` (N, 3, h, w) float32 RGB in [0, 1], ``kernel_code`` (N, L, h, w) — the
kernel of every LR pixel projected on the PCA basis (L = 15 in the paper) — and ``noise_sigma_255``
(N, 1, h, w), the input's estimated noise std per LR pixel on the 8-bit scale (``engine.noise``)
→ ``sr_rgb`` (N, 3, s·h, s·w) RGB, clamped to [0, 1] unless built with ``clamp_output=False``.

The noise map is our addition, after SRMD's degradation map (kernel code + noise level): the paper's
network sees the kernel code only, and trained on noisy inputs it cannot tell noise from texture
(given true kernels on noisy input it sharpens the noise). Every SFT layer sees the condition
``[kernel_code, noise_sigma_255 / NOISE_UNIT_255]``; weights trained without the noise channel load as
they are: a ``load_state_dict`` pre-hook applies :func:`with_noise_input`, which adds that channel with
zero weights (same output).

Layout (``nf`` features, ``gc`` growth; paper 64 / 32, 10 groups of 3 RDBs)::

    f0 = conv3x3(lr_rgb)                                   3 → nf
    x  = f0
    repeat groups:  x = x + 0.2 · RDB(RDB(RDB(SFT(x, code))))
    x  = conv3x3(x) + f0                                   trunk conv + global residual
    sr = PixelShuffle(s)(conv3x3(x))                       nf → 3·s²

The 0.2 residual of a group is taken around the whole group, SFT layer included: the group's input
``x`` (before the SFT layer) is the identity path, so a group whose branch outputs zero is an exact
identity. Each RDB carries its own ``out·0.2 + x`` inside. Neither has parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

INPUT_NAMES: tuple[str, ...] = ("lr_rgb", "kernel_code", "noise_sigma_255")
OUTPUT_NAMES: tuple[str, ...] = ("sr_rgb",)
RESIDUAL_SCALE = 0.2
NOISE_UNIT_255 = 15.0
"""The noise map enters the condition as ``noise_sigma_255 / NOISE_UNIT_255`` (σ 15/255 → 1)."""
NOISE_CHANNELS = 1


class SFTLayer(nn.Module):
    """Spatial feature transform ``F·γ + β`` conditioned on a code map ``H``.

    ``γ = sigmoid(conv3x3(lrelu(conv3x3([F, H]))))`` and ``β = conv3x3(lrelu(conv3x3([F, H])))``,
    two separate branches with ``hidden`` channels, LeakyReLU slope 0.2.

    Args:
        channels: feature width of ``F`` (input and output).
        code_len: channels of the condition map ``H``.
        hidden: width of each branch's hidden layer.
    """

    def __init__(self, channels: int, code_len: int, hidden: int) -> None:
        super().__init__()
        self.scale = nn.Sequential(
            nn.Conv2d(channels + code_len, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels, 3, padding=1),
        )
        self.shift = nn.Sequential(
            nn.Conv2d(channels + code_len, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels, 3, padding=1),
        )

    def forward(self, features: torch.Tensor, code_map: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([features, code_map], dim=1)
        return features * torch.sigmoid(self.scale(cond)) + self.shift(cond)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convolutions, ``out·0.2 + x``.

    Conv ``k`` (k = 0..3) maps ``nf + k·gc → gc`` and is followed by LeakyReLU 0.2; the fifth maps
    ``nf + 4·gc → nf`` with no activation. Each conv sees the concatenation of the block input and
    all earlier outputs.

    Args:
        nf: feature width (input and output).
        gc: growth channels of the four inner convs.
    """

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv2d(nf + k * gc, gc, 3, padding=1) for k in range(4)]
            + [nn.Conv2d(nf + 4 * gc, nf, 3, padding=1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs[:-1]:
            features.append(F.leaky_relu(conv(torch.cat(features, dim=1)), 0.2))
        out = self.convs[-1](torch.cat(features, dim=1))
        return out * RESIDUAL_SCALE + x


class SFTRRDBGroup(nn.Module):
    """One group: ``x + 0.2 · RDB_n(… RDB_1(SFT(x, code)))``.

    Args:
        nf: feature width.
        gc: RDB growth channels.
        code_len: condition-map channels.
        sft_hidden: SFT branch hidden width.
        num_rdb: residual dense blocks in the group (3 in the paper).
    """

    def __init__(self, nf: int, gc: int, code_len: int, sft_hidden: int, num_rdb: int) -> None:
        super().__init__()
        self.sft = SFTLayer(nf, code_len, sft_hidden)
        self.rdbs = nn.Sequential(*[ResidualDenseBlock(nf, gc) for _ in range(num_rdb)])

    def forward(self, x: torch.Tensor, code_map: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.rdbs(self.sft(x, code_map))


@dataclass(frozen=True)
class RRDBSFTConfig:
    """Sizes of an RRDB-SFT.

    Attributes:
        nf: feature width (paper 64).
        gc: RDB growth channels (paper 32).
        num_groups: SFT + RDB groups (paper 10).
        num_rdb: RDBs per group (paper 3).
        code_len: kernel PCA code length (paper 15; must match the PCA basis).
        sft_hidden: SFT branch hidden width (paper 32).
    """

    nf: int
    gc: int
    num_groups: int
    num_rdb: int = 3
    code_len: int = 15
    sft_hidden: int = 32


PRESETS: dict[str, RRDBSFTConfig] = {
    "paper": RRDBSFTConfig(nf=64, gc=32, num_groups=10),  # 8,086,256 parameters at ×4 + 5,760 (noise input)
    "small": RRDBSFTConfig(nf=32, gc=16, num_groups=4, sft_hidden=16),
    # small made 1.5x wider (about 2.2x the parameters and work); same depth and receptive field, so
    # it can start as the trained small network exactly (widen_state) and a short run adds capacity
    "medium": RRDBSFTConfig(nf=48, gc=24, num_groups=4, sft_hidden=24),
    "tiny": RRDBSFTConfig(nf=8, gc=4, num_groups=1, num_rdb=1, sft_hidden=8),
}


class RRDBSFT(nn.Module):
    """Non-blind SR: LR RGB + per-pixel kernel code map → SR RGB at ``scale``.

    Args:
        scale: upscaling factor (2, 3 or 4), done by one conv3x3 (nf → 3·s²) + PixelShuffle(s).
        nf: feature width.
        gc: RDB growth channels.
        num_groups: number of SFT + RDB groups.
        num_rdb: RDBs per group.
        code_len: channels of ``kernel_code``.
        sft_hidden: SFT branch hidden width.
        clamp_output: clamp ``sr_rgb`` to [0, 1] (exported graphs do; training may switch it off
            for full gradients, the state dict is the same).
    """

    def __init__(
        self,
        scale: int = 4,
        nf: int = 64,
        gc: int = 32,
        num_groups: int = 10,
        num_rdb: int = 3,
        code_len: int = 15,
        sft_hidden: int = 32,
        clamp_output: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.code_len = code_len
        self.clamp_output = clamp_output
        self.head = nn.Conv2d(3, nf, 3, padding=1)
        self.groups = nn.ModuleList(
            [SFTRRDBGroup(nf, gc, code_len + NOISE_CHANNELS, sft_hidden, num_rdb) for _ in range(num_groups)]
        )
        self.trunk = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(nf, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.sizes = RRDBSFTConfig(nf, gc, num_groups, num_rdb, code_len, sft_hidden)
        self.register_load_state_dict_pre_hook(load_without_noise_channel)  # weights from before the noise input

    def adapt_state_from_preset(self, state: dict[str, torch.Tensor], source_preset: str) -> dict[str, torch.Tensor]:
        """``state`` of this network at the narrower ``source_preset`` → weights for this one with the
        same output (:func:`widen_state`)."""
        return widen_state(state, PRESETS[source_preset], self, self.sizes, self.scale)

    def adapt_state_from_scale(self, state: dict[str, torch.Tensor], source_scale: int) -> dict[str, torch.Tensor]:
        """``state`` of an RRDB-SFT at ``source_scale`` → the same with the upsampling conv made for
        this scale: each output sub-pixel's filter is the area-weighted mean of the source sub-pixels
        its footprint overlaps inside the LR pixel (:func:`subpixel_overlap`), so the start is the
        source network's output area-resampled to this scale (×4 → ×2: the 2×2 box mean; ×4 → ×3:
        fractional overlaps). The conv is linear and PixelShuffle only rearranges, so this is exact
        before the clamp."""
        out = dict(state)
        s, src = self.scale, int(source_scale)
        weights_1d = subpixel_overlap(src, s).to(dtype=torch.float64)  # (s, src), rows sum to 1
        for key in ("upsample.0.weight", "upsample.0.bias"):
            tensor = out.pop(key, None)
            if tensor is None:
                continue
            rest = tensor.shape[1:]
            grid = tensor.to(torch.float64).reshape(3, src, src, -1)  # channel c·src² + row·src + col
            resampled = torch.einsum("ak,bl,cklr->cabr", weights_1d, weights_1d, grid)
            out[key] = resampled.reshape(3 * s * s, *rest).to(tensor.dtype)
        return out

    def forward(self, lr_rgb: torch.Tensor, kernel_code: torch.Tensor, noise_sigma_255: torch.Tensor) -> torch.Tensor:
        condition = torch.cat([kernel_code, noise_sigma_255 * (1.0 / NOISE_UNIT_255)], dim=1)
        f0 = self.head(lr_rgb)
        x = f0
        for group in self.groups:
            x = group(x, condition)
        sr = self.upsample(self.trunk(x) + f0)
        return sr.clamp(0.0, 1.0) if self.clamp_output else sr


def with_noise_input(state: dict[str, torch.Tensor], code_len: int) -> dict[str, torch.Tensor]:
    """A state dict of an RRDB-SFT without the noise channel (SFT input convs of ``nf + code_len``
    input channels) → the same with a zero-weight noise channel appended to each of those convs, so
    the network's output is unchanged whatever the noise map. States that already have it are
    returned as they are. :class:`RRDBSFT` applies this to every state dict it loads."""
    out = dict(state)
    _widen_sft_inputs(out, "", state["head.weight"].shape[0], code_len)
    return out


def _widen_sft_inputs(state: dict[str, torch.Tensor], prefix: str, nf: int, code_len: int) -> None:
    """In place: each SFT input conv under ``prefix`` with ``nf + code_len`` input channels gains a
    zero-weight noise channel (see :func:`with_noise_input`)."""
    for key in list(state):
        tensor = state[key]
        if key.startswith(prefix) and ".sft." in key and key.endswith(".0.weight") and tensor.shape[1] == nf + code_len:
            zeros = tensor.new_zeros(tensor.shape[0], NOISE_CHANNELS, *tensor.shape[2:])
            state[key] = torch.cat([tensor, zeros], dim=1)


def load_without_noise_channel(module: nn.Module, state: dict, prefix: str, *_args) -> None:
    """``load_state_dict`` pre-hook of the networks whose SFT layers see a noise channel (RRDB-SFT,
    SFTMD): in place, the first conv of each :class:`SFTLayer` branch saved without it (one input
    channel fewer than the layer has) gains it with zero weights, so weights from before the noise
    input load with the same output."""
    for name, conv in _sft_condition_convs(module):
        key = f"{prefix}{name}.weight"
        tensor = state.get(key)
        if tensor is not None and tensor.shape[1] == conv.in_channels - NOISE_CHANNELS:
            zeros = tensor.new_zeros(tensor.shape[0], NOISE_CHANNELS, *tensor.shape[2:])
            state[key] = torch.cat([tensor, zeros], dim=1)


def _sft_condition_convs(module: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """``(module path, conv)`` of the first conv of every :class:`SFTLayer` branch in ``module``: the
    convs that read ``[features, condition]``, the noise channel last."""
    return [(f"{name}.{branch}.0", getattr(layer, branch)[0]) for name, layer in module.named_modules()
            if isinstance(layer, SFTLayer) for branch in ("scale", "shift")]


def train_only_noise_channel(module: nn.Module) -> list[nn.Parameter]:
    """Freeze ``module`` except the noise-channel weights of its SFT layers; returns those parameters.

    What stays trainable is the first conv of each :class:`SFTLayer` branch, and of it only the
    weights reading the noise channel (the last ``NOISE_CHANNELS`` input channels; a gradient hook
    zeroes the rest, and the bias). A network so trained gives exactly its old output wherever the
    noise input is 0: fine-tuning it on noisy inputs cannot cost it anything on noise-free ones.
    """
    for param in module.parameters():
        param.requires_grad_(False)
    trainable = []
    for _name, conv in _sft_condition_convs(module):
        mask = torch.zeros_like(conv.weight)
        mask[:, -NOISE_CHANNELS:] = 1.0
        conv.weight.requires_grad_(True)
        conv.weight.register_hook(lambda grad, mask=mask: grad * mask.to(grad.dtype))
        trainable.append(conv.weight)
    return trainable


def _channel_segments(name: str, cfg: RRDBSFTConfig, scale: int) -> tuple[list[int], list[int]]:
    """(output, input) channel segments of the conv ``name`` (a module path) of an RRDB-SFT of ``cfg``:
    the sizes of the pieces its channels are made of, in order (a dense conv reads the block input and
    each earlier conv's growth), so that the same piece can be found in a wider network."""
    cond = cfg.code_len + NOISE_CHANNELS
    if name == "head":
        return [cfg.nf], [3]
    if name == "trunk":
        return [cfg.nf], [cfg.nf]
    if name == "upsample.0":
        return [3 * scale * scale], [cfg.nf]
    parts = name.split(".")
    if ".sft." in f".{name}.":  # groups.i.sft.{scale,shift}.{0,2}
        return ([cfg.sft_hidden], [cfg.nf, cond]) if parts[-1] == "0" else ([cfg.nf], [cfg.sft_hidden])
    if ".convs." in f".{name}.":  # groups.i.rdbs.j.convs.k
        k = int(parts[-1])
        return ([cfg.gc] if k < 4 else [cfg.nf]), [cfg.nf] + [cfg.gc] * k
    raise KeyError(f"no channel layout for {name!r}")


def _positions(small: list[int], wide: list[int]) -> torch.Tensor:
    """Indices, in a wide layout, of the channels of the small layout (each piece's channels first)."""
    out, start = [], 0
    for n_small, n_wide in zip(small, wide):
        if n_small > n_wide:
            raise ValueError("the target network is narrower than the source")
        out.append(torch.arange(start, start + n_small))
        start += n_wide
    return torch.cat(out)


def widen_state(state: dict[str, torch.Tensor], source: RRDBSFTConfig, model: "RRDBSFT",
                target: RRDBSFTConfig, scale: int) -> dict[str, torch.Tensor]:
    """The weights of an RRDB-SFT of ``source`` sizes placed in ``model`` (``target`` sizes: as deep, at
    least as wide) so that it computes exactly the same image.

    Each old channel keeps its place at the start of its piece (:func:`_channel_segments`). New output
    channels keep ``model``'s own initial weights; the weights from new input channels into old
    outputs are zero, so the new channels change nothing until training moves those zeros (their
    gradients are not zero: the new channels carry signal). Every residual adds old to old channels.
    """
    if (source.num_groups, source.num_rdb, source.code_len) != (target.num_groups, target.num_rdb, target.code_len):
        raise ValueError("widening keeps the depth and the code length")
    own = model.state_dict()
    out = {}
    for key, wide in own.items():
        module, kind = key.rsplit(".", 1)
        old = state[key]
        out_small, in_small = _channel_segments(module, source, scale)
        out_wide, in_wide = _channel_segments(module, target, scale)
        rows = _positions(out_small, out_wide)
        new = wide.clone()
        if kind == "bias":
            new[rows] = old
        else:
            cols = _positions(in_small, in_wide)
            new[rows] = 0.0  # old outputs read nothing from new inputs ...
            new[rows[:, None], cols] = old  # ... and exactly what they read before from old ones
        out[key] = new
    return out


def subpixel_overlap(source_scale: int, scale: int) -> torch.Tensor:
    """``(scale, source_scale)`` matrix: entry ``(a, k)`` is the share of output sub-pixel ``a``'s
    footprint ``[a/scale, (a+1)/scale)`` (in LR-pixel units) covered by source sub-pixel ``k``'s
    ``[k/source_scale, (k+1)/source_scale)``; each row sums to 1."""
    a = torch.arange(scale, dtype=torch.float64)[:, None]
    k = torch.arange(source_scale, dtype=torch.float64)[None, :]
    lo = torch.maximum(a / scale, k / source_scale)
    hi = torch.minimum((a + 1) / scale, (k + 1) / source_scale)
    return (hi - lo).clamp(min=0.0) * scale


def build(preset: str, scale: int, clamp_output: bool = True) -> RRDBSFT:
    """An RRDB-SFT of the named preset (``paper``, ``small``, ``tiny``) at ``scale`` (2, 3, 4)."""
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
    cfg = PRESETS[preset]
    return RRDBSFT(
        scale, cfg.nf, cfg.gc, cfg.num_groups, cfg.num_rdb, cfg.code_len, cfg.sft_hidden, clamp_output
    )


def receptive_radius_lr_px(preset: str, scale: int) -> int:
    """Largest LR distance (in pixels) from which an input pixel can influence an output pixel.

    head 1 + per group (SFT 2 + 5 per RDB) + trunk 1 + upsampling conv 1 (on the LR grid, so the
    radius does not depend on ``scale``; the argument keeps the signature of the other networks).
    """
    cfg = PRESETS[preset]
    return 1 + cfg.num_groups * (2 + 5 * cfg.num_rdb) + 1 + 1
