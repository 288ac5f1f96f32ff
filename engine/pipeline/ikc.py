"""IKC pipeline: predict one kernel code, super-resolve with SFTMD, correct the code from the result.

Takes ``lr_rgb_f32`` (h×w×3 float32 RGB in [0, 1]) like :mod:`engine.pipeline.blind`, whose tiling
helpers it shares. IKC's predictor and corrector pool over the whole image: images up to
``WHOLE_IMAGE_PIXELS`` go through them in one piece; larger ones are cut into pieces whose outputs
are averaged weighted by area, which is what global average pooling over the whole image computes
up to the pieces' borders (downscaling instead would change the very blur being measured). The
small presets standardise their input image (``engine.archs.ikc.standardize_image``); a piece is
standardised on its own, as the training patches were. :func:`~engine.upscale.upscale` runs IKC's
whole loop on the image's most detailed crop instead (a crop, not a downscale) and SFTMD at full size
only for the iterations shown (``run_ikc(loop_max_pixels=...)``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.degradation.kernels import IKC_SIGMA_RANGE, isotropic_gaussian_kernels
from engine.detail import detail_weight_sum
from engine.modelcards import IKC_CORRECTION_STEPS, ikc_correction_step_from_card, ikc_steps_from_card
from engine.noise import noise_map_255 as estimate_noise_map_255
from engine.pca import KernelPCA
from engine.pipeline.blind import _chw, _clip01, _context_for, _tile_for
from engine.pipeline.models import ModelSet
from engine.progress import NULL_PROGRESS, Progress
from engine.tiling import tiled_apply

KEEP_IKC_IMAGES_MAX_BYTES = 1 << 30  # keep IKC's rendered intermediate images (float16) when they fit in this
WHOLE_IMAGE_PIXELS = 512 * 512  # predictor input (LR px) processed in one piece up to this
CORRECTOR_PIXELS = 1024 * 1024  # corrector input (SR px) processed in one piece up to this
# upscale(): IKC's correction loop runs on a crop of at most this many LR px. On 3 training photographs
# at 256² LR and σ 1.8 / 2.6 / 3.2 (bench/ikc_reduced_loop.py, default 7 steps) the final PSNR-Y was
# 29.20 / 29.20 / 28.90 dB (mean 29.10) with a 96² crop, 29.07 / 29.17 / 28.94 (29.06) with 128², and
# 28.83 / 29.08 / 28.94 (28.95) with the loop on the whole image; the whole run took (loaded machine,
# medians) 32 s, 41 s and 80 s.
IKC_LOOP_PIXELS = 96 * 96


class IkcIteration:
    """One IKC step: its SR image, its 10-d code and the 21×21 kernel reconstructed from the code.

    The SR image is stored as given, or — for intermediate steps of large images — kept as float16
    or not kept at all and rendered from the code when asked for (SFTMD is deterministic), so
    keeping every iteration does not multiply the memory of a large result by t + 1. With
    ``keep_rendered`` an image rendered on request is kept (float32) for the next request.
    """

    def __init__(
        self,
        index: int,
        sr_rgb_f32: np.ndarray | None,
        code: np.ndarray,
        kernel: np.ndarray,
        render: Callable[[], np.ndarray] | None = None,
        *,
        keep_rendered: bool = False,
    ) -> None:
        if sr_rgb_f32 is None and render is None:
            raise ValueError("an IKC iteration needs its image or a way to render it")
        self.index = index
        self.code = code
        self.kernel = kernel
        self._sr = sr_rgb_f32
        self._render = render
        self._keep_rendered = keep_rendered
        self._lock = threading.Lock()

    @property
    def stored(self) -> bool:
        """True when the image is held (reading :attr:`sr_rgb_f32` runs no network)."""
        return self._sr is not None

    @property
    def sr_rgb_f32(self) -> np.ndarray:
        """(s·h, s·w, 3) float32 in [0, 1] (rendered from the code if it is not held: SFTMD runs)."""
        return self._get(self._keep_rendered)

    def render(self) -> np.ndarray:
        """:attr:`sr_rgb_f32`, and hold it from now on (call it off the GUI thread: SFTMD may run)."""
        return self._get(True)

    def _get(self, keep: bool) -> np.ndarray:
        with self._lock:
            sr = self._sr
            if sr is None:
                sr = self._render()
                if keep:
                    self._sr = sr
        return sr if sr.dtype == np.float32 else sr.astype(np.float32)

    def compact(self, keep: bool) -> None:
        """Store the image as float16 (``keep``) or drop it (re-rendered on demand)."""
        with self._lock:
            if self._sr is not None:
                self._sr = self._sr.astype(np.float16) if keep else None

    def __repr__(self) -> str:
        return f"IkcIteration({self.index}, code={np.round(self.code, 3).tolist()}, stored={self.stored})"


@dataclass
class IkcResult:
    """Every IKC iteration, and how the iterations changed.

    ``image_change[i]`` is 255 × mean |SR_i − SR_{i−1}| (8-bit levels, 0 for i = 0) measured on the
    images the correction loop ran on: the whole image, or the crop ``loop_box`` (y0, y1, x0, x1 in
    LR px) when the loop ran on a reduced copy (see :func:`run_ikc`).
    """

    iterations: list[IkcIteration] = field(default_factory=list)
    provider: str = ""
    image_change: np.ndarray | None = None
    loop_box: tuple[int, int, int, int] | None = None
    # the last entry of image_change when it is still to be computed (reduced loop: the crop's last
    # SFTMD run feeds no correction, so it runs only when the change curve is asked for)
    _last_change: Callable[[], float] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def final(self) -> IkcIteration:
        return self.iterations[-1]

    def changes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(image_change, code_change)``, one entry per iteration (entry 0 is 0): the image change
        above and ‖h_i − h_{i−1}‖₂, without rendering any iteration."""
        with self._lock:
            if self._last_change is not None:
                self.image_change[-1] = self._last_change()
                self._last_change = None
        codes = np.stack([np.asarray(it.code, np.float64) for it in self.iterations])
        code_change = np.zeros(len(codes))
        code_change[1:] = np.linalg.norm(np.diff(codes, axis=0), axis=1)
        image_change = self.image_change if self.image_change is not None else np.zeros(len(codes))
        return np.asarray(image_change, np.float64), code_change

    def save_npz(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write every iteration's kernel to a compressed ``.npz`` (atomically; returns the path).

        Arrays: ``codes`` (iterations, d) IKC PCA codes, ``kernels`` (iterations, 21, 21) float32
        (each sums to 1), ``iteration`` (0 = the predictor's estimate, t = after t corrections).
        """
        import io

        from engine.imageio import write_bytes_atomically

        if not self.iterations:
            raise ValueError("an IKC result without iterations has no kernels to save")
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            codes=np.stack([it.code for it in self.iterations]).astype(np.float32),
            kernels=np.stack([it.kernel for it in self.iterations]).astype(np.float32),
            iteration=np.array([it.index for it in self.iterations], np.int32),
            layout=np.array("codes: (iterations, d) IKC PCA codes; kernels: (iterations, 21, 21); "
                            "iteration 0 is the predictor's estimate, t after t corrections"),
        )
        target = Path(path)
        write_bytes_atomically(target, buf.getvalue(), overwrite=overwrite)
        return target


def _pooled(fn, chw_inputs: list[np.ndarray], max_pixels: int,
            weight: Callable[[np.ndarray], float] | None = None) -> np.ndarray:
    """``fn(crops)`` on the whole image, or, if it is large, the mean over pieces weighted by
    ``weight(first crop)`` (default: the piece's area)."""
    h, w = chw_inputs[0].shape[-2:]
    if h * w <= max_pixels:
        return fn(chw_inputs)
    side = int(math.sqrt(max_pixels))
    total = np.zeros(0)
    area = 0
    for y0 in range(0, h, side):
        for x0 in range(0, w, side):
            crops = [a[:, y0 : y0 + side, x0 : x0 + side] for a in chw_inputs]
            ch, cw = crops[0].shape[-2:]
            if ch < 8 or cw < 8:
                continue
            share = ch * cw if weight is None else weight(crops[0])
            value = fn(crops) * share
            total = value if total.size == 0 else total + value
            area += share
    return total / area if area else total


def _sftmd_hwc(lr_chw: np.ndarray, code: np.ndarray, models: ModelSet, tile: int | None,
               progress: Progress, noise_chw: np.ndarray) -> np.ndarray:
    """SFTMD on a (3, h, w) LR array with one (d,) code for the whole image and the (1, h, w) noise
    map of that array (:func:`engine.noise.noise_map_255`): (s·h, s·w, 3), unclipped."""
    sftmd = models.runner("sftmd")
    code = np.ascontiguousarray(np.asarray(code, np.float32).reshape(-1))

    def per_tile(crops):
        return sftmd.run({"lr_rgb": crops[0][None], "kernel_code": code[None],
                          "noise_sigma_255": crops[1][None]})["sr_rgb"][0]

    context = _context_for(models, "sftmd", 16)
    return tiled_apply(
        per_tile, [lr_chw, noise_chw], scale=models.scale, out_channels=3, tile=_tile_for("sftmd", models, tile, context, hw=lr_chw.shape[-2:]),
        context=context, progress=progress, channels_last=True,
    )


def sftmd_sr(
    lr_rgb_f32: np.ndarray,
    code: np.ndarray,
    models: ModelSet,
    *,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
    noise_map_255: np.ndarray | None = None,
) -> np.ndarray:
    """Non-blind SFTMD with one kernel code for the whole image: SR ``rgb_f32`` (s·h, s·w, 3) in [0, 1].

    ``code`` is the (10,) IKC-basis PCA code of the kernel (``models.pca("sftmd").project(kernel)``).
    IKC runs this at every iteration; fed the true kernel's code it is the non-blind oracle.
    ``noise_map_255``: the (h, w) noise std on the 8-bit scale; by default estimated from the LR image
    (:func:`engine.noise.noise_map_255`), as the network was trained.
    """
    sr = _clip01(_sftmd_hwc(_chw(lr_rgb_f32), code, models, tile, progress, _noise_chw(lr_rgb_f32, noise_map_255)))
    progress.set_progress(1.0)
    return sr


def _noise_chw(lr_rgb_f32: np.ndarray, noise_map_255: np.ndarray | None = None) -> np.ndarray:
    """The (1, h, w) float32 noise map SFTMD is conditioned on: ``noise_map_255`` or its estimate."""
    if noise_map_255 is None:
        noise_map_255 = estimate_noise_map_255(np.asarray(lr_rgb_f32, np.float32))
    return np.ascontiguousarray(np.asarray(noise_map_255, np.float32)[None])


@dataclass(frozen=True)
class IsotropicCodeCurve:
    """The codes of the isotropic Gaussians IKC is trained on, σ over ``IKC_SIGMA_RANGE[scale]``.

    In the 10-d code space these kernels form a one-dimensional curve, and SFTMD has only ever been
    conditioned on points of it. :meth:`nearest` maps any code to the closest point of the curve
    (Euclidean distance between codes, which is the L2 distance between the kernels' PCA parts).
    """

    sigmas: np.ndarray  # (n,) float64, increasing
    codes: np.ndarray  # (n, d) float32

    @classmethod
    def for_basis(cls, pca: KernelPCA, scale: int, step: float = 0.001) -> "IsotropicCodeCurve":
        lo, hi = IKC_SIGMA_RANGE[scale]
        sigmas = np.linspace(lo, hi, int(round((hi - lo) / step)) + 1)
        return cls(sigmas, pca.project(isotropic_gaussian_kernels(sigmas)).astype(np.float32))

    def nearest(self, code: np.ndarray) -> tuple[np.ndarray, float]:
        """``(code of the nearest isotropic Gaussian, its σ in HR px)`` for a (d,) code."""
        d2 = np.square(self.codes - np.asarray(code, np.float32).reshape(1, -1)).sum(axis=1)
        i = int(np.argmin(d2))
        return self.codes[i].copy(), float(self.sigmas[i])


def detail_box(lr_chw: np.ndarray, max_pixels: int) -> tuple[int, int, int, int]:
    """The crop ``(y0, y1, x0, x1)`` of at most ``max_pixels`` LR px with the most detail.

    Detail is the mean absolute difference between neighbouring pixels (all channels), summed over
    the window; candidate windows start on a grid of a quarter of their side. A kernel can only be
    read from edges and texture, so that is where IKC's loop looks when it runs on a reduced copy.
    """
    h, w = lr_chw.shape[-2:]
    ch = min(h, math.isqrt(max_pixels))
    cw = min(w, max_pixels // ch)
    g = np.zeros((h, w), np.float64)
    g[:, 1:] += np.abs(np.diff(lr_chw, axis=2)).sum(axis=0)
    g[1:, :] += np.abs(np.diff(lr_chw, axis=1)).sum(axis=0)
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = g.cumsum(0).cumsum(1)
    ys = sorted(set(range(0, h - ch + 1, max(1, ch // 4))) | {h - ch})
    xs = sorted(set(range(0, w - cw + 1, max(1, cw // 4))) | {w - cw})
    y0s, x0s = np.meshgrid(ys, xs, indexing="ij")
    sums = (integral[y0s + ch, x0s + cw] - integral[y0s, x0s + cw] - integral[y0s + ch, x0s] + integral[y0s, x0s])
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    y0, x0 = int(y0s[i, j]), int(x0s[i, j])
    return y0, y0 + ch, x0, x0 + cw


def run_ikc(
    lr_rgb_f32: np.ndarray,
    models: ModelSet,
    *,
    steps: int | None = None,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
    keep_images_max_bytes: int = KEEP_IKC_IMAGES_MAX_BYTES,
    loop_max_pixels: int | None = None,
    render_all: bool = False,
    correction_step: str | None = None,
) -> IkcResult:
    """IKC with every iteration kept: ``h0 = P(LR)``, ``SR_i = F(LR, h_i)``, ``h_i = h_{i-1} + C(SR_{i-1}, h_{i-1})``.

    Every code (the prediction and each corrected one) is replaced by the nearest code of an
    isotropic Gaussian (:class:`IsotropicCodeCurve`), the only kernels SFTMD was trained on. The
    predictor and corrector are trained with an L2 loss on raw codes; their errors lie mostly off that
    curve, where SFTMD was never trained. On 6 training-pool photographs (``bench/ikc_code_projection.py``,
    Gaussian8 σ, PSNR-Y) the raw predictor code gave 28.23 dB and its nearest curve point 28.84 dB,
    against 28.97 dB for the true code. Left unprojected, the smallest PCA components also drifted
    tens of times outside anything SFTMD had seen (a checkerboard in the displayed kernel).

    **Reduced copy** (``loop_max_pixels`` given and the image larger than that): the predictor,
    SFTMD and the corrector loop run on the crop of at most ``loop_max_pixels`` LR px with the most
    detail (:func:`detail_box`; a crop, not a downscale, which would change the blur being
    measured). SFTMD then runs at full size only for the final iteration; the others are rendered
    when their :attr:`IkcIteration.sr_rgb_f32` is first read (kept, float32, when all of them fit in
    ``keep_images_max_bytes``), or all at once with ``render_all``. Rendering is deterministic: a
    lazily rendered iteration is the image an eager run gives.

    **Whole image** (the default): the final image is kept in float32. Earlier images are kept as
    float16 when all of them fit in ``keep_images_max_bytes``; otherwise only their codes are kept and
    :attr:`IkcIteration.sr_rgb_f32` renders them again on demand. At most one full-precision
    intermediate image is alive at a time, so peak memory does not grow with the step count.

    ``steps`` (corrections after the prediction) defaults to the step the evaluation chose, recorded in
    the corrector's model card (:func:`engine.modelcards.ikc_steps_from_card`).

    ``correction_step`` (``full`` or ``harmonic``; default: the corrector card's
    ``ikc_loop.correction_step``, :func:`engine.modelcards.ikc_correction_step_from_card`) is the share
    of the corrector's change applied at correction t: all of it, or 1/t of it
    (``h_t = h_{t-1} + C(SR_{t-1}, h_{t-1}) / t``).
    """
    corrector_card = models.cards.get("ikc_corrector")
    if steps is None:  # the step the evaluation chose, from the corrector's card
        steps = ikc_steps_from_card(corrector_card)
    if correction_step is None:
        correction_step = ikc_correction_step_from_card(corrector_card)
    if correction_step not in IKC_CORRECTION_STEPS:
        raise ValueError(f"correction_step must be one of {', '.join(IKC_CORRECTION_STEPS)}, got {correction_step!r}")
    if steps < 0:
        raise ValueError("steps must be ≥ 0")
    lr_chw = _chw(lr_rgb_f32)
    pca: KernelPCA = models.pca("sftmd")
    predictor, corrector = models.runner("ikc_predictor"), models.runner("ikc_corrector")
    n_stages = steps + 1
    h, w = lr_chw.shape[-2:]
    reduced = loop_max_pixels is not None and h * w > loop_max_pixels
    box = detail_box(lr_chw, loop_max_pixels) if reduced else (0, h, 0, w)
    loop_chw = np.ascontiguousarray(lr_chw[:, box[0] : box[1], box[2] : box[3]]) if reduced else lr_chw
    noise_chw = _noise_chw(lr_rgb_f32)  # of the whole image; the loop's crop takes its part of it
    loop_noise = np.ascontiguousarray(noise_chw[:, box[0] : box[1], box[2] : box[3]]) if reduced else noise_chw

    def predict(crops):
        return predictor.run({"lr_rgb": crops[0][None]})["kernel_code"][0]

    sr_bytes = h * w * models.scale**2 * 3
    keep_f16 = n_stages * sr_bytes * 2 <= keep_images_max_bytes
    keep_f32 = n_stages * sr_bytes * 4 <= keep_images_max_bytes

    def renderer(code: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: _clip01(_sftmd_hwc(lr_chw, code, models, tile, NULL_PROGRESS, noise_chw))

    result = IkcResult(provider=models.provider, image_change=np.zeros(n_stages), loop_box=box if reduced else None)
    curve = _code_curve(pca, models.scale)

    def on_curve(code: np.ndarray) -> np.ndarray:
        return curve.nearest(code)[0]

    loop_share = 0.5 if reduced else 1.0
    progress.set_progress(0.0, f"IKC step 0 of {steps} · predicting the kernel")
    code = on_curve(_pooled(predict, [loop_chw], WHOLE_IMAGE_PIXELS))
    prev_sr: np.ndarray | None = None
    for i in range(n_stages):
        progress.check_cancelled()
        stage = progress.sub_progress(loop_share * i / n_stages, loop_share / n_stages, f"IKC step {i} of {steps}")
        if i > 0:
            stage.set_progress(0.0, "correcting the kernel")
            prev_sr_chw = prev_sr.transpose(2, 0, 1)  # a view; pieces are copied

            def correct(crops, code=code):
                return corrector.run({"sr_rgb": crops[0][None], "kernel_code": code[None]})["code_delta"][0]

            # pieces of a large image count by their detail, as locations do inside a detail-pooled corrector
            share = 1.0 if correction_step == "full" else 1.0 / i
            code = on_curve(code + share * _pooled(correct, [prev_sr_chw], CORRECTOR_PIXELS, weight=detail_weight_sum))
            if not reduced:
                result.iterations[-1].compact(keep_f16)  # the previous image is no longer needed in full
        last = i == n_stages - 1
        if reduced and last:  # the crop's last image feeds no correction: only the change curve needs it
            sr = None
            if prev_sr is not None:
                def last_change(prev=prev_sr, code=code.copy()) -> float:
                    crop_sr = _clip01(_sftmd_hwc(loop_chw, code, models, tile, NULL_PROGRESS, loop_noise))
                    return 255.0 * float(np.mean(np.abs(crop_sr - prev)))

                result._last_change = last_change
        else:
            sr = _clip01(_sftmd_hwc(loop_chw, code, models, tile, stage.sub_progress(0.0, 1.0, "super-resolving"),
                                   loop_noise))
            if prev_sr is not None:
                result.image_change[i] = 255.0 * float(np.mean(np.abs(sr - prev_sr)))
        kernel = pca.reconstruct(code, normalise=True)
        shown = sr
        if reduced:  # the chosen (final) iteration at full size now, the others when asked for
            final_stage = progress.sub_progress(loop_share, 1 - loop_share, "super-resolving the chosen iteration")
            shown = None if not last else _clip01(_sftmd_hwc(lr_chw, code, models, tile, final_stage, noise_chw))
        result.iterations.append(IkcIteration(i, shown, code.copy(), kernel, render=renderer(code.copy()),
                                              keep_rendered=reduced and keep_f32))
        prev_sr = sr
    if reduced and render_all:
        for it in result.iterations[:-1]:
            progress.check_cancelled()
            it.render()
    progress.set_progress(1.0)
    return result


_CURVES: dict[tuple[int, int], tuple[KernelPCA, IsotropicCodeCurve]] = {}
_CURVES_LOCK = threading.Lock()


def _code_curve(pca: KernelPCA, scale: int) -> IsotropicCodeCurve:
    """:meth:`IsotropicCodeCurve.for_basis`, computed once per basis object and scale."""
    key = (id(pca), scale)
    with _CURVES_LOCK:
        hit = _CURVES.get(key)
        if hit is None or hit[0] is not pca:  # the basis is held, so its id is not reused while cached
            if len(_CURVES) >= 8:
                _CURVES.clear()
            hit = _CURVES[key] = (pca, IsotropicCodeCurve.for_basis(pca, scale))
    return hit[1]
