"""Evaluation metrics.

``matting_metrics(pred, alpha, trimap)`` gives SAD, MSE, Grad and Conn exactly as the Deep Image
Matting evaluation code (see :mod:`resamplers.metrics.matting` for every convention);
``closed_form_alpha(image, trimap)`` is the classical closed-form matting of Levin et al. (through
``pymatting``), the reference row of an evaluation; ``psnr`` and ``ssim`` score image reconstructions.  Both need the ``data`` extra (scipy, pymatting).
``segmentation_metrics(pred, target, num_classes)`` scores semantic segmentation over a whole test set:
mIoU, pixel accuracy and mean class accuracy as mmsegmentation accumulates them, and Boundary IoU
(Cheng et al., CVPR 2021); see :mod:`resamplers.metrics.segmentation` for the conventions.
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
from .segmentation import segmentation_metrics

__all__ = [
    "closed_form_alpha",
    "connectivity_error",
    "gaussian_gradient_kernels",
    "gradient_error",
    "matting_metrics",
    "mse_error",
    "psnr",
    "sad_error",
    "segmentation_metrics",
    "ssim",
]
