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

Everything here is numpy (plus Pillow for JPEG): :func:`separable_correlate` for separable kernels
(isotropic Gaussians), an FFT for the others.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from PIL import Image as PILImage
from PIL import JpegImagePlugin

from engine.degradation.kernels import KERNEL_RADIUS, KERNEL_SIZE, isotropic_gaussian_kernel
from engine.degradation.resize import imresize
from engine.imageio.convert import to_u8

_BAND_PIXELS = 2048  # LR pixels per band in blur_subsample_variant (kernel planes ~3.6 MB)
_SEPARABLE_TOLERANCE = 1e-6  # sum |k - rank-1 approximation| below which a kernel counts as separable
_STRIP_BYTES = 1 << 19  # input rows per strip in separable_correlate (fits in a CPU's L2 cache)


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
    # reflect-101 padding (repeated for images smaller than the kernel), then 'valid' correlation
    padded = np.pad(x, ((r, r), (r, r)) + ((0, 0),) * (x.ndim - 2), mode="reflect")
    blurred = correlate_valid(padded, k)
    blurred = blurred[: h * scale, : w * scale]
    return imresize(blurred, 1.0 / scale)


def separable_correlate(x: np.ndarray, taps_y: np.ndarray, taps_x: np.ndarray) -> np.ndarray:
    """'Valid' correlation of the first two axes of ``x`` with ``taps_y`` (down) and ``taps_x`` (across).

    ``out[i, j] = sum_{a, b} taps_y[a] * taps_x[b] * x[i + a, j + b]`` for every trailing index (e.g.
    the channels of an H x W x C image), so the output is ``(H - len(taps_y) + 1, W - len(taps_x) + 1,
    ...)``; pad ``x`` first for a same-size result. Computed in ``x``'s dtype (float32 or float64;
    anything else as float32) by one multiply-add per tap and axis, on strips of rows small enough
    to stay in the CPU cache (3-4x faster than whole-array passes on a 1024 x 1024 RGB image).
    """
    a = np.asarray(x)
    dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    a = a.astype(dtype, copy=False)
    ty = np.asarray(taps_y, dtype=dtype).ravel()
    tx = np.asarray(taps_x, dtype=dtype).ravel()
    h, w = a.shape[0] - len(ty) + 1, a.shape[1] - len(tx) + 1
    if h < 1 or w < 1 or not len(ty) or not len(tx):
        raise ValueError(f"array {a.shape[:2]} is smaller than the taps ({len(ty)}, {len(tx)})")
    strip = min(h, max(1, _STRIP_BYTES // max(1, a[0].size * a.itemsize)))
    out = np.empty((h, w) + a.shape[2:], dtype)
    rows = np.empty((strip,) + a.shape[1:], dtype)  # the strip filtered down, full width
    rows_tmp = np.empty_like(rows)
    out_tmp = np.empty((strip, w) + a.shape[2:], dtype)
    for r0 in range(0, h, strip):
        n = min(strip, h - r0)
        acc, tmp = rows[:n], rows_tmp[:n]
        np.multiply(a[r0 : r0 + n], ty[0], out=acc)
        for i in range(1, len(ty)):
            np.multiply(a[r0 + i : r0 + i + n], ty[i], out=tmp)
            acc += tmp
        dst, tmp = out[r0 : r0 + n], out_tmp[:n]
        np.multiply(acc[:, :w], tx[0], out=dst)
        for j in range(1, len(tx)):
            np.multiply(acc[:, j : j + w], tx[j], out=tmp)
            dst += tmp
    return out


def correlate_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'Valid' 2-D correlation of an H x W (x C) float32 array with a 2-D kernel, float32 out.

    ``out[i, j] = sum_{a, b} kernel[a, b] * x[i + a, j + b]``. A separable kernel (sum of
    ``|kernel - rank-1 approximation|`` below 1e-6, e.g. an isotropic Gaussian) goes through
    :func:`separable_correlate`; any other through a float32 FFT (error about 1e-6 of the data range).
    """
    a = np.asarray(x, dtype=np.float32)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or a.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D kernel and an H x W (x C) array, got {k.shape} and {a.shape}")
    kh, kw = k.shape
    h, w = a.shape[0] - kh + 1, a.shape[1] - kw + 1
    if h < 1 or w < 1:
        raise ValueError(f"array {a.shape[:2]} is smaller than the kernel {k.shape}")
    u, sv, vt = np.linalg.svd(k)
    ty, tx = u[:, 0] * sv[0], vt[0]
    if np.abs(k - np.outer(ty, tx)).sum() <= _SEPARABLE_TOLERANCE:
        return separable_correlate(a, ty, tx)
    # circular convolution with the flipped kernel on a fast FFT size >= the input: the outputs
    # from (kh - 1, kw - 1) on never wrap around and are exactly the 'valid' correlation
    fh, fw = _fft_size(a.shape[0]), _fft_size(a.shape[1])
    flipped = np.zeros((fh, fw), np.float32)
    flipped[:kh, :kw] = k[::-1, ::-1]
    spectrum = np.fft.rfft2(a, s=(fh, fw), axes=(0, 1))
    spectrum *= np.fft.rfft2(flipped).reshape(spectrum.shape[:2] + (1,) * (a.ndim - 2))
    full = np.fft.irfft2(spectrum, s=(fh, fw), axes=(0, 1))
    return np.ascontiguousarray(full[kh - 1 : kh - 1 + h, kw - 1 : kw - 1 + w], dtype=np.float32)


def _fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes pocketfft transforms fastest)."""
    m = max(1, int(n))
    while True:
        rest = m
        for f in (2, 3, 5):
            while rest % f == 0:
                rest //= f
        if rest == 1:
            return m
        m += 1


def add_gaussian_noise(
    img: np.ndarray, sigma_255: float, rng: np.random.Generator, per_channel: bool = True
) -> np.ndarray:
    """Add white Gaussian noise with std ``sigma_255 / 255`` and clip to [0, 1]; float32 out.

    ``per_channel``: independent noise in every channel (colour noise); otherwise one noise plane
    shared by all channels of an H x W x C image (luminance-like noise, as after a camera's
    colour processing).
    """
    x = np.asarray(img, dtype=np.float32)
    if sigma_255 <= 0:
        return x.copy()
    shape = x.shape if per_channel or x.ndim != 3 else x.shape[:2] + (1,)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma_255 / 255.0)
    return np.clip(x + noise, 0.0, 1.0)


def quantize_u8(img: np.ndarray) -> np.ndarray:
    """Round float [0, 1] to the 256 levels of 8 bits: ``to_u8(x) / 255`` (clipped, NaN → 0) as
    float32 in [0, 1]."""
    return to_u8(img) / np.float32(255.0)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode/decode round trip (libjpeg through Pillow, ``quality`` 0..100) of an ``rgb_f32``
    or grey image.

    The image is rounded to 8 bits first; colour is stored with 4:2:0 chroma subsampling and the
    standard tables scaled by ``quality`` (OpenCV's defaults: the bytes are the same). Returns
    float32 in [0, 1] of the same shape.
    """
    q = int(quality)
    if not 0 <= q <= 100:
        raise ValueError(f"JPEG quality must be in [0, 100], got {quality!r}")
    u8 = to_u8(img)
    rgb = u8.ndim == 3 and u8.shape[2] == 3
    if u8.ndim == 3 and not rgb:
        raise ValueError(f"JPEG needs a grey or 3-channel image, got shape {u8.shape}")
    buffer = io.BytesIO()
    PILImage.fromarray(u8, "RGB" if rgb else "L").save(buffer, "JPEG", quality=q, subsampling=2)
    buffer.seek(0)
    with JpegImagePlugin.JpegImageFile(buffer) as decoded:  # no format probing, no bomb warning
        dec = np.asarray(decoded.convert("RGB" if rgb else "L"))
    return dec.astype(np.float32) / np.float32(255.0)


class PhotoCorruption(NamedTuple):
    """What a camera adds after blur and downsampling: Gaussian noise of std ``noise_sigma_255`` on
    the [0, 255] scale (0: none; independent per colour channel or one plane), 8-bit rounding, then
    JPEG at ``jpeg_quality`` (0..100; ``None``: none)."""

    noise_sigma_255: float = 0.0
    jpeg_quality: int | None = None
    noise_per_channel: bool = True

    def apply(self, lr: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """``lr`` (float32 in [0, 1]) noised, rounded to 8-bit levels and JPEG-compressed; ``rng`` is
        used (and required) only when there is noise."""
        if self.noise_sigma_255 > 0:
            if rng is None:
                raise ValueError("noise needs an rng (numpy.random.Generator)")
            lr = add_gaussian_noise(lr, self.noise_sigma_255, rng, per_channel=self.noise_per_channel)
        lr = quantize_u8(lr)
        if self.jpeg_quality is not None:
            lr = jpeg_compress(lr, self.jpeg_quality)
        return lr


def degrade_manet(
    hr: np.ndarray,
    kernel_or_field: np.ndarray,
    scale: int,
    rng: np.random.Generator | None,
    photo: PhotoCorruption = PhotoCorruption(),
) -> np.ndarray:
    """MANet-convention LR image: blur + subsample (+ noise) -> 8-bit rounding (+ JPEG).

    ``kernel_or_field``: one (21, 21) kernel or a field ``(H//s, W//s, 21, 21)``; ``photo``: the
    noise and JPEG (``rng`` is used, and required, only for noise). Returns float32 in [0, 1] on
    8-bit levels.
    """
    k = np.asarray(kernel_or_field)
    if k.ndim == 2:
        lr = blur_subsample(hr, k, scale)
    elif k.ndim == 4:
        lr = blur_subsample_variant(hr, k, scale)
    else:
        raise ValueError(f"expected a (21, 21) kernel or an (h, w, 21, 21) field, got shape {k.shape}")
    return photo.apply(lr, rng)


def degrade_ikc(
    hr: np.ndarray,
    sigma: float | np.ndarray,
    scale: int,
    rng: np.random.Generator | None,
    photo: PhotoCorruption = PhotoCorruption(),
) -> np.ndarray:
    """IKC-convention LR image: centred blur + bicubic ``1/s`` (+ noise) -> 8-bit rounding (+ JPEG).

    ``sigma``: isotropic standard deviation in HR px (or a (21, 21) kernel); ``photo``: the noise
    and JPEG (``rng`` is used, and required, only for noise). Returns float32 in [0, 1] on 8-bit levels.
    """
    lr = blur_bicubic(hr, sigma, scale)
    return photo.apply(lr, rng)
