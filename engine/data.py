"""Image data: benchmark and training-pool paths, HR loading, a training crop pool, test-set builders.

The images live in the shared data folder (``engine.paths.shared_data_dir()``, ``../shared/data``):
``benchmarks/{Set5,Set14,BSD100}`` (evaluation only) and ``train/{bsds400,t91,sunhays80}``.
Images are ``rgb_f32``: H×W×3 float32, RGB order, values in [0, 1]; grey files come back as RGB.

Test sets (:func:`build_test_set`) follow the published protocols: HR cropped (top-left anchored) to
a multiple of the scale, degraded with a fixed per-image seed, LR rounded to 8 bits, no noise unless
asked. Protocols:

- ``"gaussian8"`` — IKC convention (centred isotropic Gaussian + MATLAB bicubic downsampling), every
  image × each of eight σ: ×4 ``GAUSSIAN8_SIGMAS`` (1.8 … 3.2); ×2 and ×3 use the IKC paper's ranges
  [0.80, 1.60] and [1.35, 2.40] split into eight equal steps (see :data:`GAUSSIAN8_SIGMAS_BY_SCALE`).
- ``"manet9"`` — MANet convention (anisotropic Gaussian, direct subsampling), every image × each of
  ``manet_nine_kernels(scale)``.
- ``"variant1"`` … ``"variant5"`` — MANet spatially variant fields (``manet_mode_field``), one per
  image; mode 5 draws random parameters per block from the image's own seed.
- Photo-like protocols (:data:`PHOTO_PROTOCOLS`, e.g. ``"gaussian8_n15"``, ``"variant1_n5j85"``): a
  clean protocol's blur — the same kernels, fields and seeds — followed by Gaussian noise and/or JPEG.

Randomness is derived per image from ``(seed, benchmark, protocol, scale, image index)`` with
``np.random.default_rng([...])`` (strings enter as CRC-32 values, stable across runs and machines),
so every run sees exactly the same LR images.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import degradation as deg
from engine.degradation.fields import manet_nine_kernel_params
from engine.imageio import read_image, to_u8
from engine.paths import shared_data_dir
from engine.progress import NULL_PROGRESS, Progress

__all__ = [
    "BENCHMARKS",
    "TRAIN_SETS",
    "PROTOCOLS",
    "PHOTO_PROTOCOLS",
    "ALL_PROTOCOLS",
    "PhotoProtocol",
    "base_protocol",
    "GAUSSIAN8_SIGMAS_BY_SCALE",
    "IMAGE_SUFFIXES",
    "benchmark_paths",
    "train_paths",
    "crop_to_multiple",
    "load_hr",
    "TrainPool",
    "TestCase",
    "iter_test_set",
    "build_test_set",
    "case_rng_entropy",
]

BENCHMARKS: tuple[str, ...] = ("Set5", "Set14", "BSD100")
TRAIN_SETS: tuple[str, ...] = ("bsds400", "t91", "sunhays80")
PROTOCOLS: tuple[str, ...] = ("gaussian8", "manet9") + tuple(f"variant{m}" for m in range(1, 6))


@dataclass(frozen=True)
class PhotoProtocol:
    """A clean protocol's blur followed by photo-like degradations (see :func:`engine.degradation.degrade_ikc`).

    Args:
        base: the clean protocol (one of :data:`PROTOCOLS`) whose kernels, fields and per-image seeds
            are reused, so a photo protocol differs from its base only by the noise and the JPEG step.
        noise_sigma_255: std of the additive Gaussian noise on the [0, 255] scale (0: none), added
            after downsampling and before 8-bit rounding.
        jpeg_quality: JPEG quality of the LR image (4:2:0, Pillow), or ``None``: no compression.
        noise_per_channel: independent noise per colour channel (True) or one plane for all.
        label: how the Markdown tables name the added degradation.
    """

    base: str
    noise_sigma_255: float
    jpeg_quality: int | None
    label: str
    noise_per_channel: bool = True


PHOTO_PROTOCOLS: dict[str, PhotoProtocol] = {
    "gaussian8_n5": PhotoProtocol("gaussian8", 5.0, None, "noise σ 5/255"),
    "gaussian8_n15": PhotoProtocol("gaussian8", 15.0, None, "noise σ 15/255"),
    "gaussian8_jpeg75": PhotoProtocol("gaussian8", 0.0, 75, "JPEG q 75"),
    "gaussian8_n10j80": PhotoProtocol("gaussian8", 10.0, 80, "noise σ 10/255 + JPEG q 80"),
    "manet9_n15": PhotoProtocol("manet9", 15.0, None, "noise σ 15/255"),
    **{f"variant{m}_n5j85": PhotoProtocol(f"variant{m}", 5.0, 85, "noise σ 5/255 + JPEG q 85") for m in range(1, 6)},
}
"""Every photo-like evaluation protocol (issue 15): name → its clean base and what is added. The noise
is per channel, drawn from the image's fixed seed (the same draws at every σ, scaled)."""

ALL_PROTOCOLS: tuple[str, ...] = PROTOCOLS + tuple(PHOTO_PROTOCOLS)


def base_protocol(protocol: str) -> str:
    """The clean protocol whose blur ``protocol`` uses (itself for a clean protocol)."""
    if protocol in PROTOCOLS:
        return protocol
    if protocol in PHOTO_PROTOCOLS:
        return PHOTO_PROTOCOLS[protocol].base
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(ALL_PROTOCOLS)}")


IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

GAUSSIAN8_SIGMAS_BY_SCALE: dict[int, tuple[float, ...]] = {
    2: tuple(round(float(s), 4) for s in np.linspace(0.80, 1.60, 8)),
    3: tuple(round(float(s), 4) for s in np.linspace(1.35, 2.40, 8)),
    4: tuple(float(s) for s in deg.GAUSSIAN8_SIGMAS),
}
"""Gaussian8 kernel widths (σ, standard deviation in HR pixels) per scale (IKC protocol): ×4 is
``GAUSSIAN8_SIGMAS`` (1.8, 2.0, …, 3.2); ×2 and ×3 split the IKC paper's test ranges [0.80, 1.60]
and [1.35, 2.40] into eight evenly spaced widths the same way."""


# --- paths ------------------------------------------------------------------------------------------
def _list_images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{what} folder not found: {folder} (shared data is expected at {shared_data_dir()}; "
            "set KERNELSCOPE_DATA to point elsewhere)"
        )
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"{what} folder holds no images: {folder}")
    return paths


def benchmark_paths(name: str) -> list[Path]:
    """Sorted image paths of a benchmark (one of :data:`BENCHMARKS`) in the shared data folder."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return _list_images(shared_data_dir() / "benchmarks" / name, f"benchmark {name}")


def train_paths(sets: Sequence[str] = TRAIN_SETS) -> list[Path]:
    """Image paths of the training pool (the given :data:`TRAIN_SETS`), sorted within each set."""
    if isinstance(sets, str):
        sets = (sets,)
    out: list[Path] = []
    for name in sets:
        if name not in TRAIN_SETS:
            raise ValueError(f"unknown training set {name!r}; choose from {', '.join(TRAIN_SETS)}")
        out.extend(_list_images(shared_data_dir() / "train" / name, f"training set {name}"))
    return out


def holdout_split(paths: Sequence[Path], every: int) -> tuple[list[Path], list[Path]]:
    """``(kept, held_out)``: every ``every``-th path (indices 0, every, 2·every, …) held out of training,
    so a network can be checked on pool photographs it never saw; ``every`` 0 holds none out."""
    if every == 0:
        return list(paths), []
    if every < 2:
        raise ValueError(f"holdout_every must be 0 (none) or at least 2, got {every}")
    return [p for i, p in enumerate(paths) if i % every], list(paths[::every])


def training_centre_crops(images: int, crop_hr_px: int, multiple: int, sets: Sequence[str] = TRAIN_SETS,
                          *, paths: Sequence[Path] | None = None) -> list[np.ndarray]:
    """Centre crops (``rgb_f32`` HWC in [0, 1]) of ``images`` training photographs spread evenly over
    the pool of ``sets`` (or over ``paths``): squares of side ``crop_hr_px`` (at most the photo's
    shorter side), rounded down to a multiple of ``multiple`` (the scale, or what a network's input
    must divide by)."""
    pool = train_paths(sets) if paths is None else list(paths)
    crops = []
    for path in pool[:: max(1, len(pool) // images)][:images]:
        rgb = read_image(path).rgb_f32
        h, w = rgb.shape[:2]
        side = min(crop_hr_px, h, w) // multiple * multiple
        y0, x0 = (h - side) // 2, (w - side) // 2
        crops.append(np.ascontiguousarray(rgb[y0 : y0 + side, x0 : x0 + side]))
    return crops


# --- HR loading -------------------------------------------------------------------------------------
def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an H×W(×C) image, top-left anchored, to ``(H - H % scale, W - W % scale)`` (a view)."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    h, w = img.shape[:2]
    hh, ww = h - h % scale, w - w % scale
    if hh == 0 or ww == 0:
        raise ValueError(f"image {w}×{h} px is smaller than the scale ×{scale}")
    return img[:hh, :ww]


def load_hr(path: str | Path, scale: int) -> np.ndarray:
    """Read an image as ``rgb_f32`` (H×W×3 float32 RGB in [0, 1]) cropped to a multiple of ``scale``.

    Grey images come back as RGB (three equal channels); alpha is ignored. Raises
    ``engine.imageio.ImageReadError`` for unreadable files.
    """
    rgb = read_image(Path(path)).rgb_f32
    return np.ascontiguousarray(crop_to_multiple(rgb, scale), dtype=np.float32)


# --- training pool ----------------------------------------------------------------------------------
class TrainPool:
    """Training images decoded once into memory as uint8 H×W×3 RGB, with random augmented crops.

    Args:
        paths: image files (default: :func:`train_paths` of all :data:`TRAIN_SETS`).
        max_images: keep at most this many images (the first ones in ``paths`` order).
        min_size: skip images whose shorter side is below this many pixels.
        progress: reports decoding progress; cancellation is checked between images.
    """

    def __init__(
        self,
        paths: Sequence[str | Path] | None = None,
        *,
        max_images: int | None = None,
        min_size: int = 0,
        progress: Progress = NULL_PROGRESS,
    ) -> None:
        paths = list(train_paths() if paths is None else paths)
        if max_images is not None:
            paths = paths[: max(0, int(max_images))]
        self.images: list[np.ndarray] = []
        self.paths: list[Path] = []
        for i, p in enumerate(paths):
            progress.check_cancelled()
            rgb = read_image(Path(p)).rgb_f32
            if min(rgb.shape[:2]) >= min_size:
                self.images.append(to_u8(rgb))
                self.paths.append(Path(p))
            progress.set_progress((i + 1) / len(paths), f"decoded {i + 1}/{len(paths)} training images")
        if not self.images:
            raise ValueError(f"no training image of at least {min_size} px among {len(paths)} files")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        """Memory held by the decoded images, in bytes."""
        return sum(im.nbytes for im in self.images)

    def random_crop(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A random ``size``×``size`` crop as ``rgb_f32`` (float32 RGB in [0, 1]).

        The image is drawn uniformly among those at least ``size`` px on both sides, the crop
        position uniformly, then one of the 8 flips/90° rotations uniformly.
        """
        fits = [i for i, im in enumerate(self.images) if im.shape[0] >= size and im.shape[1] >= size]
        if not fits:
            raise ValueError(f"no image in the pool is at least {size}×{size} px")
        img = self.images[fits[int(rng.integers(len(fits)))]]
        y = int(rng.integers(img.shape[0] - size + 1))
        x = int(rng.integers(img.shape[1] - size + 1))
        crop = img[y : y + size, x : x + size]
        if rng.integers(2):
            crop = crop[:, ::-1]
        crop = np.rot90(crop, k=int(rng.integers(4)))
        return crop.astype(np.float32) / np.float32(255.0)

    def random_crops(self, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
        """``n`` crops from :meth:`random_crop` stacked as an n×size×size×3 float32 array in [0, 1]."""
        return np.stack([self.random_crop(rng, size) for _ in range(n)])


# --- test sets --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TestCase:
    """One evaluation case: an HR image, its degraded LR image and the truth about the blur.

    ``hr_rgb_f32`` (H×W×3, [0, 1], H and W multiples of the scale; read-only, shared between the
    cases of one image) and ``lr_rgb_f32`` (H/s × W/s × 3, [0, 1], 8-bit levels). ``kernel_info``
    holds ``benchmark``, ``image``, ``image_index``, ``scale``, ``seed``, ``rng_entropy``,
    ``convention`` ("ikc" or "manet") and either ``kernel`` (21×21, spatially invariant) with its
    params (``sigma`` or ``var1``/``var2``/``theta``), or for variant fields ``mode``, ``lr_hw`` and
    ``field_entropy`` from which :meth:`true_kernels` regenerates the (h, w, 21, 21) field.
    """

    __test__ = False  # not a pytest test class

    name: str
    hr_rgb_f32: np.ndarray
    lr_rgb_f32: np.ndarray
    protocol: str
    kernel_info: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return int(self.kernel_info["scale"])

    @property
    def spatially_variant(self) -> bool:
        return "kernel" not in self.kernel_info

    @property
    def noisy(self) -> bool:
        """True when noise or JPEG was added after the blur (a photo-like protocol)."""
        return bool(self.kernel_info.get("noise_sigma_255")) or self.kernel_info.get("jpeg_quality") is not None

    def noise_free_lr(self) -> np.ndarray:
        """The LR image without the noise and JPEG steps (blur, downsampling, 8-bit rounding only).

        ``lr_rgb_f32`` itself for a clean case; otherwise regenerated from the true kernels.
        """
        if not self.noisy:
            return self.lr_rgb_f32
        info = self.kernel_info
        if info["convention"] == "ikc":
            return deg.degrade_ikc(self.hr_rgb_f32, info["sigma"], self.scale, None)
        return deg.degrade_manet(self.hr_rgb_f32, self.true_kernels(), self.scale, None)

    def true_kernels(self) -> np.ndarray:
        """The true kernel: (21, 21) for invariant protocols, else the (h, w, 21, 21) LR-grid field.

        Fields are regenerated on each call (about h·w·441·4 bytes; don't keep them all).
        """
        info = self.kernel_info
        if "kernel" in info:
            return info["kernel"]
        rng = np.random.default_rng(info["field_entropy"])
        return deg.manet_mode_field(info["mode"], tuple(info["lr_hw"]), info["scale"], rng=rng)


def _stable_id(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def case_rng_entropy(seed: int, benchmark: str, protocol: str, scale: int, image_index: int) -> list[int]:
    """The entropy list that seeds every random draw for one image of a test set."""
    return [int(seed), _stable_id(benchmark), _stable_id(protocol), int(scale), int(image_index)]


def _sigma_tag(sigma: float, table: Sequence[float]) -> str:
    """σ for case names: one decimal when the whole table needs only one ("1.8"), else two ("1.35")."""
    one_decimal = all(abs(round(t, 1) - t) < 1e-9 for t in table)
    return f"{sigma:.1f}" if one_decimal else f"{sigma:.2f}"


def iter_test_set(
    benchmark: str,
    protocol: str,
    scale: int,
    seed: int = 0,
    *,
    max_images: int | None = None,
    noise_sigma_255: float = 0.0,
    jpeg_quality: int | None = None,
) -> Iterator[TestCase]:
    """Deterministic evaluation cases for ``benchmark`` (see :data:`BENCHMARKS`) under ``protocol``,
    one at a time (lazy: each LR image is made when its case is reached).

    Args:
        benchmark: "Set5", "Set14" or "BSD100".
        protocol: "gaussian8", "manet9", "variant1" … "variant5", or a photo-like protocol of
            :data:`PHOTO_PROTOCOLS` (see the module docstring).
        scale: the SR factor (2, 3 or 4).
        seed: the evaluation seed, recorded in every case's ``kernel_info["seed"]``.
        max_images: use only the first images of the benchmark (quick previews, tests).
        noise_sigma_255: Gaussian noise σ on the [0, 255] scale added before 8-bit rounding (0: none);
            not with a photo-like protocol, which fixes its own.
        jpeg_quality: JPEG-compress the LR image at this quality (None: no compression).

    Yields:
        The cases in image order, then kernel order (names like ``baby_sig1.8``, ``baby_k3``,
        ``baby_variant2``). Two calls with the same arguments give identical LR arrays.
    """
    base = base_protocol(protocol)
    noise_per_channel = True
    if protocol in PHOTO_PROTOCOLS:
        if noise_sigma_255 or jpeg_quality is not None:
            raise ValueError(f"protocol {protocol} fixes its own noise and JPEG; do not pass noise_sigma_255 "
                             "or jpeg_quality with it")
        photo = PHOTO_PROTOCOLS[protocol]
        noise_sigma_255, jpeg_quality = photo.noise_sigma_255, photo.jpeg_quality
        noise_per_channel = photo.noise_per_channel
    if base == "gaussian8" and scale not in GAUSSIAN8_SIGMAS_BY_SCALE:
        raise ValueError(f"gaussian8 is defined for ×2, ×3 and ×4, not ×{scale}")
    paths = benchmark_paths(benchmark)
    if max_images is not None:
        paths = paths[: max(0, int(max_images))]
    for index, path in enumerate(paths):
        hr = load_hr(path, scale)
        hr.setflags(write=False)
        entropy = case_rng_entropy(seed, benchmark, base, scale, index)  # photo protocols: the base's blur
        meta = {
            "benchmark": benchmark,
            "image": path.stem,
            "image_index": index,
            "scale": scale,
            "seed": seed,
            "rng_entropy": entropy,
            "noise_sigma_255": noise_sigma_255,
            "jpeg_quality": jpeg_quality,
            "noise_per_channel": noise_per_channel,
        }
        corruption = deg.PhotoCorruption(noise_sigma_255, jpeg_quality, noise_per_channel)

        def noise_rng(k: int) -> np.random.Generator:
            return np.random.default_rng(entropy + [1, k])

        if base == "gaussian8":
            table = GAUSSIAN8_SIGMAS_BY_SCALE[scale]
            for k, sigma in enumerate(table):
                lr = deg.degrade_ikc(hr, sigma, scale, noise_rng(k), corruption)
                info = dict(meta, convention="ikc", sigma=sigma, kernel=deg.isotropic_gaussian_kernel(sigma))
                yield TestCase(f"{path.stem}_sig{_sigma_tag(sigma, table)}", hr, lr, protocol, info)
        elif base == "manet9":
            for k, (var1, var2, theta) in enumerate(manet_nine_kernel_params(scale)):
                kernel = deg.anisotropic_gaussian_kernels(var1, var2, theta, scale)
                lr = deg.degrade_manet(hr, kernel, scale, noise_rng(k), corruption)
                info = dict(meta, convention="manet", var1=var1, var2=var2, theta=theta, kernel=kernel,
                            kernel_index=k)
                yield TestCase(f"{path.stem}_k{k + 1}", hr, lr, protocol, info)
        else:
            mode = int(base.removeprefix("variant"))
            lr_hw = (hr.shape[0] // scale, hr.shape[1] // scale)
            field_entropy = entropy + [0]
            kfield = deg.manet_mode_field(mode, lr_hw, scale, rng=np.random.default_rng(field_entropy))
            lr = deg.degrade_manet(hr, kfield, scale, noise_rng(0), corruption)
            del kfield
            info = dict(meta, convention="manet", mode=mode, lr_hw=lr_hw, field_entropy=field_entropy)
            yield TestCase(f"{path.stem}_{protocol}", hr, lr, protocol, info)


def build_test_set(*args: Any, **kwargs: Any) -> list[TestCase]:
    """The cases of :func:`iter_test_set` (same arguments) as a list, made eagerly."""
    return list(iter_test_set(*args, **kwargs))
