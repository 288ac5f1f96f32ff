"""IKC (Gu et al., CVPR 2019): SFTMD super-resolver, kernel-code Predictor and Corrector.

Three networks share this file because they only make sense together (the IKC loop)::

    h0 = predictor(lr_rgb); sr0 = sftmd(lr_rgb, h0)
    for i in 1..t:  h_i = h_{i-1} + corrector(sr_{i-1}, h_{i-1});  sr_i = sftmd(lr_rgb, h_i)

Graph contracts (NCHW float32, RGB in [0, 1]; codes are isotropic-kernel PCA codes, L = 10):

- ``sftmd``: ``lr_rgb`` (N, 3, h, w), ``kernel_code`` (N, L), ``noise_sigma_255`` (N, 1, h, w) →
  ``sr_rgb`` (N, 3, s·h, s·w) in [0, 1]. The code is stretched to an (N, L, h, w) map inside the
  network; with the noise map (the input's estimated noise std per LR pixel on the 8-bit scale,
  ``engine.noise``, divided by ``NOISE_UNIT_255``) it is the condition of every SFT layer. The noise
  input is our addition, as in :mod:`engine.archs.rrdb_sft`: trained on noisy inputs without it,
  SFTMD has to trade sharpness on clean input for denoising. Weights saved before it load with a
  zero-weight noise channel (a ``load_state_dict`` pre-hook), which leaves the output unchanged.
- ``ikc_predictor``: ``lr_rgb`` (N, 3, H, W) → ``kernel_code`` (N, L) (global average pooling).
- ``ikc_corrector``: ``sr_rgb`` (N, 3, H, W), ``kernel_code`` (N, L) → ``code_delta`` (N, L).

Predictor and corrector pool over the whole image: run them once on the full (or downscaled) image
and tile only SFTMD with the code fixed.

Choices where published versions differ: the SFT scale branch goes through a sigmoid (as in
RRDB-SFT, :class:`engine.archs.rrdb_sft.SFTLayer` is reused); activations after the input convs and
in the upsampler are LeakyReLU 0.2; the predictor keeps the LeakyReLU after its last conv (so the
pooled code is a mean of LeakyReLU outputs, which can still be negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from engine.archs.rrdb_sft import NOISE_CHANNELS, NOISE_UNIT_255, SFTLayer, load_without_noise_channel
from engine.detail import DETAIL_CELL_PX, DETAIL_FLOOR

SFTMD_INPUT_NAMES: tuple[str, ...] = ("lr_rgb", "kernel_code", "noise_sigma_255")
SFTMD_OUTPUT_NAMES: tuple[str, ...] = ("sr_rgb",)
PREDICTOR_INPUT_NAMES: tuple[str, ...] = ("lr_rgb",)
PREDICTOR_OUTPUT_NAMES: tuple[str, ...] = ("kernel_code",)
CORRECTOR_INPUT_NAMES: tuple[str, ...] = ("sr_rgb", "kernel_code")
CORRECTOR_OUTPUT_NAMES: tuple[str, ...] = ("code_delta",)

CODE_LEN = 10


def _stretch(code: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N, L) code → (N, L, h, w) map with the spatial size of ``like`` (N, C, h, w)."""
    return code[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


def _check_scale(scale: int) -> None:
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")


# --- SFTMD ----------------------------------------------------------------------------------------


class SFTResidualBlock(nn.Module):
    """``x + conv(ReLU(SFT(conv(ReLU(SFT(x, H))), H)))`` (SFT → ReLU → conv3x3, twice).

    Args:
        nf: feature width.
        code_len: condition-map channels.
        sft_hidden: SFT branch hidden width.
    """

    def __init__(self, nf: int, code_len: int, sft_hidden: int) -> None:
        super().__init__()
        self.sft1 = SFTLayer(nf, code_len, sft_hidden)
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.sft2 = SFTLayer(nf, code_len, sft_hidden)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor, code_map: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.sft1(x, code_map)))
        y = self.conv2(F.relu(self.sft2(y, code_map)))
        return x + y


def _upsample_steps(scale: int) -> list[int]:
    return [2, 2] if scale == 4 else [scale]


def _upsampler(nf: int, scale: int) -> nn.Sequential:
    """×4: two [conv3x3 nf → 4·nf, PixelShuffle(2), LeakyReLU]; ×2 / ×3: one with PixelShuffle(s)."""
    layers: list[nn.Module] = []
    for s in _upsample_steps(scale):
        layers += [nn.Conv2d(nf, nf * s * s, 3, padding=1), nn.PixelShuffle(s), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class SFTMDConfig:
    """Sizes of an SFTMD.

    Attributes:
        nf: feature width (paper 64).
        num_blocks: SFT residual blocks (paper 16).
        code_len: kernel code length (paper 10; must match the PCA basis).
        sft_hidden: SFT branch hidden width (paper 32).
        tail_kernel: side of the output convolution on the SR grid (paper 9; the small presets use
            3 because a 9×9 conv with 3 outputs dominates CPU run time at ×4: ~2 s of ORT time on a
            256² LR image against ~0.2 s for 3×3).
    """

    nf: int
    num_blocks: int
    code_len: int = CODE_LEN
    sft_hidden: int = 32
    tail_kernel: int = 9


SFTMD_PRESETS: dict[str, SFTMDConfig] = {
    "paper": SFTMDConfig(nf=64, num_blocks=16),  # 4,234,691 parameters at ×4
    "small": SFTMDConfig(nf=32, num_blocks=6, sft_hidden=16, tail_kernel=3),
    # small with twice the SFT residual blocks (868k parameters at ×4): room for clean and noisy
    # inputs at once; starts from a trained small network exactly (SFTMD.adapt_state_from_preset)
    "medium": SFTMDConfig(nf=32, num_blocks=12, sft_hidden=16, tail_kernel=3),
    "tiny": SFTMDConfig(nf=8, num_blocks=1, sft_hidden=8, tail_kernel=3),
}


class SFTMD(nn.Module):
    """Non-blind SR conditioned on one kernel code per image.

    ``conv3x3 (3→nf) → LReLU → conv3x3 → LReLU → conv3x3`` gives ``f``; ``num_blocks`` SFT residual
    blocks → SFT → conv3x3, plus ``f`` (global skip); upsampler; conv9x9 (nf → 3, or
    ``tail_kernel``) on the SR grid; clamp to [0, 1].

    Args:
        scale: upscaling factor (2, 3 or 4).
        nf: feature width.
        num_blocks: SFT residual blocks.
        code_len: length of ``kernel_code``.
        sft_hidden: SFT branch hidden width.
        tail_kernel: odd side of the output convolution (9 in the paper).
        clamp_output: clamp ``sr_rgb`` to [0, 1] (exported graphs do; the state dict is the same
            either way, so training may switch it off).
    """

    def __init__(
        self,
        scale: int = 4,
        nf: int = 64,
        num_blocks: int = 16,
        code_len: int = CODE_LEN,
        sft_hidden: int = 32,
        tail_kernel: int = 9,
        clamp_output: bool = True,
    ) -> None:
        super().__init__()
        if tail_kernel % 2 != 1:
            raise ValueError("tail_kernel must be odd")
        self.scale = scale
        self.code_len = code_len
        self.clamp_output = clamp_output
        self.head = nn.Sequential(
            nn.Conv2d(3, nf, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(nf, nf, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(nf, nf, 3, padding=1),
        )
        cond = code_len + NOISE_CHANNELS
        self.blocks = nn.ModuleList([SFTResidualBlock(nf, cond, sft_hidden) for _ in range(num_blocks)])
        self.sft = SFTLayer(nf, cond, sft_hidden)
        self.trunk = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsample = _upsampler(nf, scale)
        self.tail = nn.Conv2d(nf, 3, tail_kernel, padding=tail_kernel // 2)
        self.register_load_state_dict_pre_hook(load_without_noise_channel)  # weights from before the noise input

    def forward(self, lr_rgb: torch.Tensor, kernel_code: torch.Tensor, noise_sigma_255: torch.Tensor) -> torch.Tensor:
        f = self.head(lr_rgb)
        code_map = torch.cat([_stretch(kernel_code, f), noise_sigma_255 * (1.0 / NOISE_UNIT_255)], dim=1)
        x = f
        for block in self.blocks:
            x = block(x, code_map)
        x = self.trunk(self.sft(x, code_map)) + f
        sr = self.tail(self.upsample(x))
        return sr.clamp(0.0, 1.0) if self.clamp_output else sr

    def adapt_state_from_preset(self, state: dict[str, torch.Tensor], source_preset: str) -> dict[str, torch.Tensor]:
        """``state`` of an SFTMD of the shallower ``source_preset`` → weights for this one with the
        same output (:func:`deepen_state`)."""
        return deepen_state(state, SFTMD_PRESETS[source_preset], self)


def deepen_state(state: dict[str, torch.Tensor], source: SFTMDConfig, model: SFTMD) -> dict[str, torch.Tensor]:
    """The weights of an SFTMD of ``source`` sizes placed in ``model`` (as wide, at least as many
    residual blocks) so that it computes exactly the same image.

    The source's blocks keep their indices; every added block keeps ``model``'s own initial weights
    except its last conv, which is zeroed, so the block adds nothing (``x + 0``) until training moves
    that conv (its gradient is not zero: the block's first half carries signal).
    """
    own = model.state_dict()
    widths = {key: tuple(t.shape) for key, t in own.items() if not key.startswith("blocks.")}
    if any(tuple(state[key].shape) != shape for key, shape in widths.items()) or source.num_blocks > len(model.blocks):
        raise ValueError("deepening keeps every width and only adds residual blocks")
    out = {}
    for key, tensor in own.items():
        if key in state:
            out[key] = state[key]
        elif key.startswith("blocks.") and ".conv2." in key:
            out[key] = torch.zeros_like(tensor)
        else:
            out[key] = tensor.clone()
    return out


def build_sftmd(preset: str, scale: int, clamp_output: bool = True) -> SFTMD:
    """An SFTMD of the named preset (``paper``, ``medium``, ``small``, ``tiny``) at ``scale`` (2, 3, 4)."""
    _check_scale(scale)
    cfg = SFTMD_PRESETS[preset]
    return SFTMD(scale, cfg.nf, cfg.num_blocks, cfg.code_len, cfg.sft_hidden, cfg.tail_kernel, clamp_output)


def sftmd_receptive_radius_lr_px(preset: str, scale: int) -> int:
    """Largest LR distance (rounded up) from which an input pixel can influence an output pixel.

    Head 3 + 6 per block + SFT 2 + trunk 1, then each upsampler conv adds one pixel of its own grid
    and the tail ``tail_kernel // 2`` SR pixels.
    """
    cfg = SFTMD_PRESETS[preset]
    radius = Fraction(3 + 6 * cfg.num_blocks + 3)
    grid = 1
    for step in _upsample_steps(scale):
        radius += Fraction(1, grid)
        grid *= step
    radius += Fraction(cfg.tail_kernel // 2, scale)
    return math.ceil(radius)


# --- Predictor ------------------------------------------------------------------------------------


#: added to an image's standard deviation (RGB in [0, 1]) by :func:`standardize_image`
NORM_EPS = 0.01


def standardize_image(rgb: torch.Tensor) -> torch.Tensor:
    """Each image of (N, C, H, W) minus its mean, divided by its standard deviation + ``NORM_EPS``."""
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    std = (rgb - mean).square().mean(dim=(1, 2, 3), keepdim=True).sqrt()
    return (rgb - mean) / (std + NORM_EPS)


@dataclass(frozen=True)
class CodeNetConfig:
    """Width of a predictor or corrector.

    Attributes:
        nf: convolution width (paper 64); the corrector's code branch has the same width.
        code_len: kernel code length (paper 10).
        normalize_input: standardise each input image (:func:`standardize_image`) before the first
            conv (predictor: the LR image; corrector: the SR image). Not in the paper; without it
            the small predictor stayed on the mean code for 9500 CPU steps (patch contrast varies far
            more than blur does), with it a fresh one left that plateau within ~1000 steps.
        detail_pooling_scales: corrector only: at these scales, pool its per-location corrections
            weighted by the SR image's local detail (:func:`detail_weights`) instead of a plain mean.
            Not in the paper: a smooth region shows nothing of the blur, so its corrections are the
            prior's pull towards the typical kernel, and a loop that repeats that pull drifts. Only
            the scales whose shipped weights were trained with it (×4); the ×2 and ×3 correctors keep
            the mean until they are.
    """

    nf: int
    code_len: int = CODE_LEN
    normalize_input: bool = False
    detail_pooling_scales: tuple[int, ...] = ()


PREDICTOR_PRESETS: dict[str, CodeNetConfig] = {
    "paper": CodeNetConfig(nf=64),  # 430,730 parameters
    "small": CodeNetConfig(nf=32, normalize_input=True),
    "tiny": CodeNetConfig(nf=8, normalize_input=True),
}
CORRECTOR_PRESETS: dict[str, CodeNetConfig] = {
    "paper": CodeNetConfig(nf=64),  # 649,930 parameters
    "small": CodeNetConfig(nf=32, normalize_input=True, detail_pooling_scales=(4,)),
    "tiny": CodeNetConfig(nf=8, normalize_input=True, detail_pooling_scales=(2, 3, 4)),
}


class Predictor(nn.Module):
    """Initial kernel code from the LR image.

    Six conv5×5 (3 → nf, nf → nf ×4 with stride 2 at the fourth, nf → code_len), LeakyReLU 0.2 after
    each, global average pooling → (N, code_len).

    Args:
        nf: convolution width.
        code_len: output code length.
        normalize_input: standardise each image first (see :class:`CodeNetConfig`).
    """

    def __init__(self, nf: int = 64, code_len: int = CODE_LEN, normalize_input: bool = False) -> None:
        super().__init__()
        self.normalize_input = normalize_input
        chans = [3, nf, nf, nf, nf, nf, code_len]
        strides = [1, 1, 1, 2, 1, 1]
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 5, stride=stride, padding=2), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)

    def forward(self, lr_rgb: torch.Tensor) -> torch.Tensor:
        x = standardize_image(lr_rgb) if self.normalize_input else lr_rgb
        return self.body(x).mean(dim=(2, 3))


def build_predictor(preset: str, scale: int) -> Predictor:
    """A predictor of the named preset; ``scale`` is validated only (the architecture ignores it)."""
    _check_scale(scale)
    cfg = PREDICTOR_PRESETS[preset]
    return Predictor(cfg.nf, cfg.code_len, cfg.normalize_input)


# --- Corrector ------------------------------------------------------------------------------------


class Corrector(nn.Module):
    """Code correction Δh from the current SR image and code.

    SR branch: seven conv5×5 (3 → nf, then nf → nf; stride 2 at layers 2 and 4), LeakyReLU 0.2 after
    each. Code branch: FC code_len → nf → LReLU → FC nf → nf → LReLU, stretched to the SR feature
    map. Concatenation (2·nf) → conv1×1 2·nf → 2·nf → LReLU → 1×1 → nf → LReLU → 1×1 → code_len,
    one correction per feature location; global average pooling → (N, code_len), or with
    ``detail_pooling`` the mean weighted by :func:`detail_weights` of the SR image.

    Args:
        nf: width of both branches.
        code_len: code length (input and output).
        normalize_input: standardise each SR image first (see :class:`CodeNetConfig`).
        detail_pooling: weight the pooling by local detail (see :class:`CodeNetConfig`).
    """

    def __init__(self, nf: int = 64, code_len: int = CODE_LEN, normalize_input: bool = False,
                 detail_pooling: bool = False) -> None:
        super().__init__()
        self.normalize_input = normalize_input
        self.detail_pooling = detail_pooling
        chans = [3] + [nf] * 7
        strides = [1, 2, 1, 2, 1, 1, 1]
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 5, stride=stride, padding=2), nn.LeakyReLU(0.2)]
        self.image_branch = nn.Sequential(*layers)
        self.code_branch = nn.Sequential(
            nn.Linear(code_len, nf),
            nn.LeakyReLU(0.2),
            nn.Linear(nf, nf),
            nn.LeakyReLU(0.2),
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * nf, 2 * nf, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * nf, nf, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(nf, code_len, 1),
        )

    def forward(self, sr_rgb: torch.Tensor, kernel_code: torch.Tensor) -> torch.Tensor:
        features = self.image_branch(standardize_image(sr_rgb) if self.normalize_input else sr_rgb)
        code_map = _stretch(self.code_branch(kernel_code), features)
        delta_map = self.fuse(torch.cat([features, code_map], dim=1))
        if not self.detail_pooling:
            return delta_map.mean(dim=(2, 3))
        weights = detail_weights(sr_rgb)
        return (delta_map * weights).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))


def detail_weights(sr_rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) image → (N, 1, ⌈H/4⌉, ⌈W/4⌉) weights on the corrector's feature grid (two stride-2
    convs), as :func:`engine.detail.detail_weights_np` defines them: the blur shows only where there
    are edges and texture."""
    grey = sr_rgb.mean(dim=1, keepdim=True)
    detail = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs(), (0, 1, 0, 0)) + \
        F.pad((grey[..., 1:, :] - grey[..., :-1, :]).abs(), (0, 0, 0, 1))
    return F.avg_pool2d(detail, DETAIL_CELL_PX, DETAIL_CELL_PX, ceil_mode=True) + DETAIL_FLOOR


def build_corrector(preset: str, scale: int) -> Corrector:
    """A corrector of the named preset; ``scale`` is validated only (the architecture ignores it)."""
    _check_scale(scale)
    cfg = CORRECTOR_PRESETS[preset]
    return Corrector(cfg.nf, cfg.code_len, cfg.normalize_input, scale in cfg.detail_pooling_scales)
