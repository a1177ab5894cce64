"""Training composites made on the fly (in DataLoader workers), deterministic per sample."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import check_int
from .compositor import Recipe, child_seeds, make_composite
from .errors import DataError
from .samples import make_sample
from .sources import Source
from .trimap import make_trimap, random_radius

__all__ = ["TrainingComposites"]


class TrainingComposites(torch.utils.data.Dataset):
    """Composites of the source's training part, with a random DIM trimap, made when indexed.

    Sample ``i`` of epoch ``e`` is a function of ``(seed, e, i)`` only: it uses foreground
    ``i % F`` (so an epoch pairs each of the ``F`` foregrounds with ``per_foreground`` random
    backgrounds, as Composition-1k's training set pairs each with 100), a background, placement,
    soft layers and trimap radius drawn from that seed.  The result does not depend on the number
    of DataLoader workers or on the order of access.  Call :meth:`set_epoch` before each epoch for
    new composites (with ``persistent_workers=True`` the workers keep the epoch they started with).

    Args:
        source: a :class:`~resamplers.data.sources.Source` (Debian, synthetic, folder).
        size: the side of the square composites.
        part: the source part to draw from (``"train"``; ``"all"`` for a folder that is a training set).
        per_foreground: samples per foreground in one epoch (sets ``len``), unless ``length`` is given.
        length: the epoch length.
        seed: the data seed.
        recipe: compositing parameters (default: :class:`~resamplers.data.compositor.Recipe` at ``size``).
        trimap_radius: a fixed trimap radius, or ``None`` for a random one per sample
            (:func:`~resamplers.data.trimap.random_radius`: 1 .. 15 at 256).

    Yields dicts as :func:`~resamplers.data.samples.make_sample`: ``image``, ``alpha``, ``trimap``,
    ``fg``, ``bg``, ``name``, ``thin``.

    Example:
        >>> from resamplers.data import SyntheticSource
        >>> source = SyntheticSource(foregrounds=8, backgrounds=8, foreground_size=32, background_size=64)
        >>> data = TrainingComposites(source, size=32, per_foreground=2)
        >>> sample = data[0]
        >>> sample["image"].shape, sample["trimap"].shape, len(data) == 2 * len(source.foregrounds("train"))
        (torch.Size([3, 32, 32]), torch.Size([32, 32]), True)
    """

    def __init__(
        self,
        source: Source,
        size: int = 256,
        *,
        part: str = "train",
        per_foreground: int = 100,
        length: int | None = None,
        seed: int = 0,
        recipe: Recipe | None = None,
        trimap_radius: float | None = None,
    ) -> None:
        self.source = source
        self.size = check_int(size, "size", minimum=8)
        self.recipe = recipe if recipe is not None else Recipe(size=size)
        if self.recipe.size != size:
            raise ValueError(f"argument `recipe`: its size {self.recipe.size} differs from `size` {size}")
        self.foregrounds = source.foregrounds(part)
        self.backgrounds = source.backgrounds(part)
        if not self.foregrounds or not self.backgrounds:
            raise DataError(
                f"source {source.id}: its {part!r} part has {len(self.foregrounds)} foregrounds and "
                f"{len(self.backgrounds)} backgrounds; both must be non-empty"
            )
        self.length = (
            check_int(length, "length", minimum=1)
            if length is not None
            else (check_int(per_foreground, "per_foreground", minimum=1) * len(self.foregrounds))
        )
        self.seed = check_int(seed, "seed", minimum=0)
        self.trimap_radius = trimap_radius
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the composites of ``epoch`` (each epoch draws new backgrounds, placements, trimaps)."""
        self.epoch = check_int(epoch, "epoch", minimum=0)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} training composites")
        sample_seed = np.random.SeedSequence([self.seed, self.epoch, index])
        choice_seed, composite_seed, trimap_seed = child_seeds(sample_seed, 3)
        foreground = self.foregrounds[index % len(self.foregrounds)]
        background = self.backgrounds[int(np.random.default_rng(choice_seed).integers(len(self.backgrounds)))]
        composite = make_composite(
            self.source.load_foreground(foreground),
            self.source.load_background(background, self.recipe.background_min_side),
            composite_seed,
            self.recipe,
        )
        radius = self.trimap_radius
        if radius is None:
            radius = random_radius(np.random.default_rng(trimap_seed), self.size)
        return make_sample(
            f"{self.epoch}:{index}",
            composite.image,
            composite.alpha,
            make_trimap(composite.alpha, radius),
            fg=composite.fg,
            bg=composite.bg,
            thin=composite.thin,
        )
