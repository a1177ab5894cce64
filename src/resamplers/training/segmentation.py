"""Training the segmentation network: the task-specific part on top of :func:`~resamplers.training.loop.fit`.

The loss is the pixel-wise cross-entropy with the ignore index excluded (the usual
semantic segmentation loss; no auxiliary head), optionally class-weighted: with
background on most pixels, a short budget otherwise learns to predict background and the
most common object class (:func:`inverse_sqrt_frequency_weights`). Samples of a user's folder have any size:
:class:`RandomCrops` turns them into fixed square crops (padding with the ignore index
where an image is smaller), flipped at random, item ``i`` a function of ``(seed, i)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from .._checks import check_int
from ..data.segmentation import IGNORE_INDEX
from ..models.segmentation import SegmentationConfig, SegmentationNet, create_segmentation_model, segmentation_inputs
from .initialisation import initialised_like

__all__ = [
    "segmentation_batch_loss",
    "weighted_segmentation_loss",
    "class_pixel_counts",
    "inverse_sqrt_frequency_weights",
    "initial_segmentation_network",
    "RandomCrops",
]


def segmentation_batch_loss(model: nn.Module, batch: dict[str, Any], class_weights: Tensor | None = None):
    """Cross-entropy of the logits against ``batch["mask"]`` (ignore index excluded), with
    the per-class weights ``class_weights`` (``num_classes``) when given."""
    logits = model(segmentation_inputs(batch["image"])).float()
    weight = None if class_weights is None else class_weights.to(logits.device)
    loss = F.cross_entropy(logits, batch["mask"], weight=weight, ignore_index=IGNORE_INDEX)
    return loss, {}


def weighted_segmentation_loss(class_weights: Tensor | None) -> Callable[[nn.Module, dict[str, Any]], Any]:
    """:func:`segmentation_batch_loss` with fixed class weights, as the training loop calls it."""
    return functools.partial(segmentation_batch_loss, class_weights=class_weights)


def class_pixel_counts(samples: Dataset, num_classes: int, count: int) -> np.ndarray:
    """Pixels per class (ignore index excluded) over the first ``count`` samples' masks.

    A mask value outside ``[0, num_classes)`` that is not the ignore index is an error
    naming the sample and the value."""
    check_int(num_classes, "num_classes", minimum=1)
    check_int(count, "count", minimum=1)
    total = np.zeros(num_classes, dtype=np.int64)
    for index in range(min(count, len(samples))):  # type: ignore[arg-type]
        sample = samples[index]
        mask = np.asarray(sample["mask"]).ravel()
        mask = mask[mask != IGNORE_INDEX]
        if mask.size and (mask.min() < 0 or mask.max() >= num_classes):
            bad = int(mask.max()) if mask.max() >= num_classes else int(mask.min())
            raise ValueError(
                f"sample {sample.get('name', index)!r}: mask value {bad} outside the {num_classes} classes "
                f"(expected 0..{num_classes - 1} or the ignore index {IGNORE_INDEX})"
            )
        total += np.bincount(mask, minlength=num_classes)
    return total


def inverse_sqrt_frequency_weights(counts: np.ndarray) -> Tensor:
    """Class weights ``w_c`` proportional to ``1 / sqrt(f_c)`` (``f_c`` the pixel frequency),
    scaled so that the expected weight of a pixel, ``sum_c f_c w_c``, is 1: the loss keeps
    its scale while rare classes count more.  The square root tempers the inverse
    frequency: full inverse-frequency (or median-frequency) weights over-predict the rare
    classes at the cost of background.  A class with no pixels gets the largest weight of
    the others (its frequency is unknown, not zero)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"argument `counts`: expected non-negative pixel counts per class, not all zero; got {counts}")
    frequency = counts / counts.sum()
    seen = frequency > 0
    weights = np.zeros_like(frequency)
    weights[seen] = 1.0 / np.sqrt(frequency[seen])
    weights /= float((frequency * weights).sum())
    weights[~seen] = weights[seen].max()
    return torch.tensor(weights, dtype=torch.float32)


def initial_segmentation_network(config: SegmentationConfig) -> SegmentationNet:
    """The network of ``config`` from the current random state (with ``init_like``, its
    shared parts start as that pair's network: see
    :func:`~resamplers.training.initialisation.initialised_like`)."""

    def network(pair: str) -> SegmentationNet:
        return create_segmentation_model(
            replace(config, pair=pair, pair_kwargs=config.pair_kwargs if pair == config.pair else {})
        )

    return initialised_like(network, config.pair, config.init_like)  # type: ignore[return-value]


class RandomCrops(Dataset):
    """Square crops of ``size`` from a map-style dataset of ``{"image", "mask"}`` samples.

    Item ``i`` takes sample ``i % len(samples)``, a random window (padding the image with
    zeros and the mask with the ignore index where it is smaller than ``size``) and a
    random horizontal flip, all drawn from ``(seed, i)``.
    """

    def __init__(self, samples: Dataset, size: int, seed: int = 0, length: int = 10**9) -> None:
        self.samples = samples
        self.count = len(samples)  # type: ignore[arg-type]
        if self.count == 0:
            raise ValueError("argument `samples`: the dataset is empty")
        self.size = check_int(size, "size", minimum=8)
        self.seed, self.length = seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, index])
        sample = self.samples[index % self.count]
        image, mask = sample["image"], sample["mask"]
        height, width = mask.shape
        pad_h, pad_w = max(0, self.size - height), max(0, self.size - width)
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        top = int(rng.integers(0, mask.shape[0] - self.size + 1))
        left = int(rng.integers(0, mask.shape[1] - self.size + 1))
        image = image[:, top : top + self.size, left : left + self.size]
        mask = mask[top : top + self.size, left : left + self.size]
        if rng.random() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return {"image": image.contiguous(), "mask": mask.contiguous(), "name": f"{sample['name']}@{index}"}
