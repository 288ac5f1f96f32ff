"""Degradations ``LR = (HR (x) k) |s + n``: blur + subsample, bicubic, noise, JPEG, 8-bit rounding.

Images are ``rgb_f32``: H x W x 3 float32 in [0, 1] (grey H x W is accepted where noted). Kernels
follow :mod:`engine.degradation.kernels` (21 x 21 float32, sum 1, ``[row, col]``).

**MANet convention** (``blur_subsample``, ``blur_subsample_variant``, ``degrade_manet``): the HR
image is reflect-padded by 10 px (mirror *without* repeating the edge pixel, i.e. numpy
``"reflect"`` = OpenCV ``BORDER_REFLECT_101``) into ``HRpad`` and, for the LR grid of
``h = H // s`` by ``w = W // s`` pixels::

    LR[i, j] = sum_{a, b} HRpad[s*i + a, s*j + b] * K[a, b]        (HR index s*i + a - 10)

With the kernel mean at ``kernel_center(s) = 10 + (s-1)/2`` the LR pixel ``i`` is centred on HR
position ``s*i + (s-1)/2`` (the alignment of area/bicubic resizing and PixelShuffle). Only the LR
sample positions are evaluated. A spatially variant field has one kernel per LR pixel,
``(h, w, 21, 21)``.

**IKC convention** (``blur_bicubic``, ``degrade_ikc``): blur with a centred kernel (reflect
padding, no shift), crop to a multiple of ``s`` and downsample with MATLAB bicubic
``imresize(., 1/s)``; the LR image is again ``H // s`` by ``W // s``.

``degrade_*`` add optional Gaussian noise (sigma in 8-bit units), round to 8 bits and optionally
JPEG-compress, in that order.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.degradation.kernels import KERNEL_RADIUS, KERNEL_SIZE, isotropic_gaussian_kernel
from engine.degradation.resize import imresize

_BAND_PIXELS = 2048  # LR pixels per band in blur_subsample_variant (kernel planes ~3.6 MB)


def _as_chw(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """float32 C x H x W view/copy of an H x W x C or H x W image, and whether it was grey."""
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        return x[None], True
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(2, 0, 1)), False
    raise ValueError(f"expected an H x W x C or H x W image, got shape {x.shape}")


def _from_chw(x: np.ndarray, grey: bool) -> np.ndarray:
    return x[0] if grey else np.ascontiguousarray(x.transpose(1, 2, 0))


def _lr_size(hw: tuple[int, int], scale: int) -> tuple[int, int]:
    s = int(scale)
    if s < 1 or s != scale:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = hw[0] // s, hw[1] // s
    if h < 1 or w < 1:
        raise ValueError(f"image {hw} is smaller than the scale factor {s}")
    return h, w


def _polyphase(chw: np.ndarray, scale: int) -> list[list[np.ndarray]]:
    """Reflect-pad by 10 px and split into ``s x s`` contiguous phases ``pad[:, p::s, q::s]``."""
    r = KERNEL_RADIUS
    pad = np.pad(chw, ((0, 0), (r, r), (r, r)), mode="reflect")
    return [[np.ascontiguousarray(pad[:, p::scale, q::scale]) for q in range(scale)] for p in range(scale)]


def blur_subsample(hr: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """MANet-convention blur + direct subsampling with one (spatially invariant) kernel.

    ``hr``: ``rgb_f32`` H x W x 3 (or grey H x W) in [0, 1]; ``kernel``: (21, 21). Returns the LR
    image ``(H // s, W // s[, 3])`` float32 (not rounded).
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.shape != (KERNEL_SIZE, KERNEL_SIZE):
        raise ValueError(f"kernel must be ({KERNEL_SIZE}, {KERNEL_SIZE}), got {k.shape}")
    chw, grey = _as_chw(hr)
    h, w = _lr_size(chw.shape[1:], scale)
    phases = _polyphase(chw, scale)
    acc = np.zeros((chw.shape[0], h, w), dtype=np.float32)
    for a in range(KERNEL_SIZE):
        for b in range(KERNEL_SIZE):
            weight = k[a, b]
            if weight == 0.0:
                continue
            ph = phases[a % scale][b % scale]
            ra, rb = a // scale, b // scale
            acc += ph[:, ra : ra + h, rb : rb + w] * weight
    return _from_chw(acc, grey)


def blur_subsample_variant(hr: np.ndarray, kernels_lr: np.ndarray, scale: int) -> np.ndarray:
    """MANet-convention blur + subsampling with one kernel per LR pixel (spatially variant).

    ``hr``: ``rgb_f32`` H x W x 3 (or grey H x W) in [0, 1]; ``kernels_lr``: ``(H//s, W//s, 21, 21)``.
    Evaluated only at the LR sample positions, by a loop over the 441 taps. Returns float32
    ``(H // s, W // s[, 3])``.
    """
    chw, grey = _as_chw(hr)
    h, w = _lr_size(chw.shape[1:], scale)
    field = np.asarray(kernels_lr, dtype=np.float32)
    if field.shape != (h, w, KERNEL_SIZE, KERNEL_SIZE):
        raise ValueError(
            f"kernel field must be (H//s, W//s, {KERNEL_SIZE}, {KERNEL_SIZE}) = {(h, w, KERNEL_SIZE, KERNEL_SIZE)},"
            f" got {field.shape}"
        )
    phases = _polyphase(chw, scale)
    out = np.empty((chw.shape[0], h, w), dtype=np.float32)
    taps = KERNEL_SIZE * KERNEL_SIZE
    # Bands of LR rows keep the accumulator and the band's kernel planes in cache.
    band = max(1, _BAND_PIXELS // w)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        bh = r1 - r0
        # tap-major copy of the band's kernels: plane t = (a, b) is a contiguous (bh, w) array
        planes = np.ascontiguousarray(field[r0:r1].reshape(bh * w, taps).T).reshape(taps, bh, w)
        acc = np.zeros((chw.shape[0], bh, w), dtype=np.float32)
        tmp = np.empty_like(acc)
        for a in range(KERNEL_SIZE):
            for b in range(KERNEL_SIZE):
                ph = phases[a % scale][b % scale]
                ra, rb = a // scale + r0, b // scale
                np.multiply(ph[:, ra : ra + bh, rb : rb + w], planes[a * KERNEL_SIZE + b], out=tmp)
                acc += tmp
        out[:, r0:r1] = acc
    return _from_chw(out, grey)


def blur_bicubic(hr: np.ndarray, sigma_or_kernel: float | np.ndarray, scale: int) -> np.ndarray:
    """IKC-convention degradation without noise: centred blur, then MATLAB bicubic ``1/s`` resize.

    ``sigma_or_kernel``: an isotropic standard deviation (see
    :func:`~engine.degradation.kernels.isotropic_gaussian_kernel`) or a (21, 21) kernel applied by
    correlation centred at tap (10, 10) with reflect-101 padding. The blurred image is cropped to a
    multiple of ``s`` before resizing, so the result is ``(H // s, W // s[, 3])`` float32 (linear,
    not clipped).
    """
    if np.ndim(sigma_or_kernel) == 0:
        k = isotropic_gaussian_kernel(float(sigma_or_kernel))
    else:
        k = np.asarray(sigma_or_kernel, dtype=np.float32)
        if k.shape != (KERNEL_SIZE, KERNEL_SIZE):
            raise ValueError(f"kernel must be ({KERNEL_SIZE}, {KERNEL_SIZE}), got {k.shape}")
    x = np.asarray(hr, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an H x W x C or H x W image, got shape {x.shape}")
    h, w = _lr_size(x.shape[:2], scale)
    r = KERNEL_RADIUS
    # explicit reflect padding then a 'valid' correlation (filter2D's own border handling is
    # undefined for images smaller than the kernel)
    padded = np.pad(x, ((r, r), (r, r)) + ((0, 0),) * (x.ndim - 2), mode="reflect")
    blurred = cv2.filter2D(padded, -1, k, borderType=cv2.BORDER_CONSTANT)[r:-r, r:-r]
    blurred = blurred.reshape(x.shape)
    blurred = blurred[: h * scale, : w * scale]
    return imresize(blurred, 1.0 / scale)


def add_gaussian_noise(img: np.ndarray, sigma_255: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise with std ``sigma_255 / 255`` and clip to [0, 1]; float32 out."""
    x = np.asarray(img, dtype=np.float32)
    if sigma_255 <= 0:
        return x.copy()
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma_255 / 255.0)
    return np.clip(x + noise, 0.0, 1.0)


def quantize_u8(img: np.ndarray) -> np.ndarray:
    """Round to the 256 levels of 8 bits (``round(x * 255) / 255``, clipped); float32 in [0, 1]."""
    x = np.asarray(img, dtype=np.float32)
    return (np.clip(np.rint(x * 255.0), 0.0, 255.0) / 255.0).astype(np.float32)


def to_u8(img: np.ndarray) -> np.ndarray:
    """``rgb_f32`` in [0, 1] (or grey) to uint8 by rounding, clipped."""
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode/decode round trip (OpenCV, ``quality`` 0..100) of an ``rgb_f32`` or grey image.

    The image is rounded to 8 bits first; returns float32 in [0, 1] of the same shape.
    """
    q = int(quality)
    if not 0 <= q <= 100:
        raise ValueError(f"JPEG quality must be in [0, 100], got {quality!r}")
    u8 = to_u8(img)
    rgb = u8.ndim == 3 and u8.shape[2] == 3
    if u8.ndim == 3 and not rgb:
        raise ValueError(f"JPEG needs a grey or 3-channel image, got shape {u8.shape}")
    src = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if rgb else u8
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if rgb else cv2.IMREAD_GRAYSCALE)
    if rgb:
        dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
    return dec.astype(np.float32) / np.float32(255.0)


def _finish(
    lr: np.ndarray, rng: np.random.Generator | None, noise_sigma_255: float, jpeg_quality: int | None
) -> np.ndarray:
    if noise_sigma_255 > 0:
        if rng is None:
            raise ValueError("noise needs an rng (numpy.random.Generator)")
        lr = add_gaussian_noise(lr, noise_sigma_255, rng)
    lr = quantize_u8(lr)
    if jpeg_quality is not None:
        lr = jpeg_compress(lr, jpeg_quality)
    return lr


def degrade_manet(
    hr: np.ndarray,
    kernel_or_field: np.ndarray,
    scale: int,
    rng: np.random.Generator | None,
    noise_sigma_255: float = 0.0,
    jpeg_quality: int | None = None,
) -> np.ndarray:
    """MANet-convention LR image: blur + subsample (+ noise) -> 8-bit rounding (+ JPEG).

    ``kernel_or_field``: one (21, 21) kernel or a field ``(H//s, W//s, 21, 21)``. ``rng`` is only
    used (and required) when ``noise_sigma_255 > 0``. Returns float32 in [0, 1] on 8-bit levels.
    """
    k = np.asarray(kernel_or_field)
    if k.ndim == 2:
        lr = blur_subsample(hr, k, scale)
    elif k.ndim == 4:
        lr = blur_subsample_variant(hr, k, scale)
    else:
        raise ValueError(f"expected a (21, 21) kernel or an (h, w, 21, 21) field, got shape {k.shape}")
    return _finish(lr, rng, noise_sigma_255, jpeg_quality)


def degrade_ikc(
    hr: np.ndarray,
    sigma: float | np.ndarray,
    scale: int,
    rng: np.random.Generator | None,
    noise_sigma_255: float = 0.0,
    jpeg_quality: int | None = None,
) -> np.ndarray:
    """IKC-convention LR image: centred blur + bicubic ``1/s`` (+ noise) -> 8-bit rounding (+ JPEG).

    ``sigma``: isotropic standard deviation (or a (21, 21) kernel). ``rng`` is only used (and
    required) when ``noise_sigma_255 > 0``. Returns float32 in [0, 1] on 8-bit levels.
    """
    lr = blur_bicubic(hr, sigma, scale)
    return _finish(lr, rng, noise_sigma_255, jpeg_quality)
