"""Blur kernels, degradations (MANet and IKC conventions), bicubic resizing and kernel fields.

Modules: :mod:`~engine.degradation.kernels` (kernels, sampling, moment fit),
:mod:`~engine.degradation.degrade` (blur + subsample, bicubic, noise, JPEG, 8-bit rounding),
:mod:`~engine.degradation.resize` (MATLAB-compatible bicubic ``imresize``) and
:mod:`~engine.degradation.fields` (spatially variant kernel fields on the LR grid). The
conventions (value ranges, kernel centre, alignment) are documented in each module's docstring.
"""

from engine.degradation.degrade import (
    PhotoCorruption,
    add_gaussian_noise,
    blur_bicubic,
    blur_subsample,
    blur_subsample_variant,
    degrade_ikc,
    degrade_manet,
    jpeg_compress,
    quantize_u8,
)
from engine.degradation.fields import manet_mode_field, manet_nine_kernels, region_field
from engine.degradation.kernels import (
    GAUSSIAN8_SIGMAS,
    IKC_SIGMA_RANGE,
    KERNEL_SIZE,
    MANET_VARIANCE_RANGE,
    anisotropic_gaussian_kernel,
    anisotropic_gaussian_kernels,
    fit_gaussian,
    isotropic_gaussian_kernel,
    kernel_center,
    sample_anisotropic_params,
    sample_isotropic_sigma,
)
from engine.degradation.resize import bicubic_upsample, imresize

__all__ = [
    "GAUSSIAN8_SIGMAS",
    "IKC_SIGMA_RANGE",
    "KERNEL_SIZE",
    "MANET_VARIANCE_RANGE",
    "PhotoCorruption",
    "add_gaussian_noise",
    "anisotropic_gaussian_kernel",
    "anisotropic_gaussian_kernels",
    "bicubic_upsample",
    "blur_bicubic",
    "blur_subsample",
    "blur_subsample_variant",
    "degrade_ikc",
    "degrade_manet",
    "fit_gaussian",
    "imresize",
    "isotropic_gaussian_kernel",
    "jpeg_compress",
    "kernel_center",
    "manet_mode_field",
    "manet_nine_kernels",
    "quantize_u8",
    "region_field",
    "sample_anisotropic_params",
    "sample_isotropic_sigma",
]
