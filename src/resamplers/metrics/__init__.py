"""Evaluation metrics.

``matting_metrics(pred, alpha, trimap)`` gives SAD, MSE, Grad and Conn exactly as the Deep Image
Matting evaluation code (see :mod:`resamplers.metrics.matting` for every convention);
``closed_form_alpha(image, trimap)`` is the classical closed-form matting of Levin et al. (through
``pymatting``), the reference row of an evaluation; ``psnr`` and ``ssim`` score image reconstructions.  Both need the ``data`` extra (scipy, pymatting).
"""

from .closed_form import closed_form_alpha
from .image import psnr, ssim
from .matting import (
    connectivity_error,
    gaussian_gradient_kernels,
    gradient_error,
    matting_metrics,
    mse_error,
    sad_error,
)

__all__ = [
    "closed_form_alpha",
    "connectivity_error",
    "gaussian_gradient_kernels",
    "gradient_error",
    "matting_metrics",
    "mse_error",
    "psnr",
    "sad_error",
    "ssim",
]
