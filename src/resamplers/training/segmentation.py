"""Training the segmentation network: the task-specific part on top of :func:`~resamplers.training.loop.fit`.

The loss is the pixel-wise cross-entropy with the ignore index excluded (the usual
semantic segmentation loss; no auxiliary head). Samples of a user's folder have any size:
:class:`RandomCrops` turns them into fixed square crops (padding with the ignore index
where an image is smaller), flipped at random, item ``i`` a function of ``(seed, i)``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .._checks import check_int
from ..data.segmentation import IGNORE_INDEX
from ..models.segmentation import SegmentationConfig, SegmentationNet, create_segmentation_model, segmentation_inputs
from .initialisation import initialised_like

__all__ = ["segmentation_batch_loss", "initial_segmentation_network", "RandomCrops"]


def segmentation_batch_loss(model: nn.Module, batch: dict[str, Any]):
    """Cross-entropy of the logits against ``batch["mask"]`` (ignore index excluded)."""
    logits = model(segmentation_inputs(batch["image"])).float()
    loss = F.cross_entropy(logits, batch["mask"], ignore_index=IGNORE_INDEX)
    return loss, {}


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
