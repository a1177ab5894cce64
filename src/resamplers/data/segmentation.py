"""Built-in semantic segmentation data: cut-and-paste composites of the matting foregrounds.

Each image pastes 1-4 foregrounds (the hand-cut Tux Paint stamps of the real source, or the
synthetic source's shapes) at random scales and positions on a background photograph, later
ones over earlier ones (occlusion). The label of a pixel is the class of the topmost object
whose alpha exceeds 0.5 there; every other pixel is background (class 0). Classes come from
the stamps' folders (:func:`stamp_class`); foregrounds and backgrounds keep the source's
disjoint train/test split.

Image ``i`` of a set is a function of ``(seed, part, i)`` alone. The test set is written
once (:func:`write_segmentation_test_set`: PNG images and masks with a manifest holding the
md5 of every decoded array, as the matting test set), so it is pixel-identical on every
machine for the same version and seed; training images are made on the fly
(:class:`SegmentationComposites`).

Samples are dicts: ``image`` float32 ``3 x H x W`` in [0, 1], ``mask`` int64 ``H x W`` (class
indices; :data:`IGNORE_INDEX` never occurs here), ``name`` str.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int
from .compositor import Recipe, child_seeds, crop_background, crop_to_alpha, place_foreground
from .errors import DataError
from .images import read_gray, read_rgb, write_png
from .premultiplied import resize_premultiplied
from .sources import Foreground, LRUCache, Source
from .testset import pixel_md5

__all__ = [
    "SEGMENTATION_CLASSES",
    "IGNORE_INDEX",
    "SegmentationRecipe",
    "SegmentationComposites",
    "SegmentationTestSet",
    "stamp_class",
    "class_counts",
    "write_segmentation_test_set",
]

IGNORE_INDEX = 255
FOREGROUND_CACHE = 256  # shrunk cut-outs kept per process: every real stamp at 256 is about 200 MB
FORMAT = 2  # bump whenever a change of the generation changes the images
# Three object classes, coarse enough that each has at least 8 foregrounds in the test part
# (the folders' finer classes left 3-5 test objects to some, too few to score a class on).
SEGMENTATION_CLASSES = ("background", "animal", "plant or food", "man-made")
_FOLDER_CLASSES = {"animals": "animal", "plants": "plant or food", "food": "plant or food"}
# Stamps whose folder says a season, not what they show.
_NAMED_CLASSES = {
    "Christmas_pudding": "plant or food",
    "Mince_Pie": "plant or food",
    "Roast_turkey": "plant or food",
    "Candy_cane_photo_1": "plant or food",
    "Candy_cane_photo_2": "plant or food",
    "Christmas_Tree_photo": "plant or food",
    "daffodil": "plant or food",
}


def stamp_class(name: str) -> int:
    """The class index (in :data:`SEGMENTATION_CLASSES`) of a foreground name.

    Real stamps (``usr/share/tuxpaint/stamps/<folder>/<sub>/...``) are classed by folder, a
    few by name; everything else (vehicles, tools, instruments, people, ...) is ``man-made``. Synthetic foregrounds (``synthetic/fg-K``)
    cycle through the object classes by their number, so every class occurs.
    """
    parts = name.split("/")
    if parts[0] == "synthetic":
        number = (
            int(parts[-1].rsplit("-", 1)[-1]) if parts[-1].rsplit("-", 1)[-1].isdigit() else zlib.crc32(name.encode())
        )
        return 1 + number % (len(SEGMENTATION_CLASSES) - 1)
    stem = Path(name).stem
    if stem in _NAMED_CLASSES:
        return SEGMENTATION_CLASSES.index(_NAMED_CLASSES[stem])
    folders = parts[4:-1] if parts[:4] == ["usr", "share", "tuxpaint", "stamps"] else parts[:-1]
    return SEGMENTATION_CLASSES.index(_FOLDER_CLASSES.get(folders[0] if folders else "", "man-made"))


def class_counts(source: Source) -> dict[str, dict[str, int]]:
    """Foregrounds per class in each part: ``{class: {"train": n, "test": m}}``."""
    counts = {name: {"train": 0, "test": 0} for name in SEGMENTATION_CLASSES[1:]}
    for part in ("train", "test"):
        for name in source.foregrounds(part):
            counts[SEGMENTATION_CLASSES[stamp_class(name)]][part] += 1
    return counts


@dataclass(frozen=True)
class SegmentationRecipe:
    """How an image is made: its side, how many objects (``objects``: low, high inclusive) and
    each object's longer side as a fraction of the image (``scale``)."""

    size: int = 256
    objects: tuple[int, int] = (1, 4)
    scale: tuple[float, float] = (0.25, 0.7)

    def __post_init__(self) -> None:
        check_int(self.size, "size", minimum=8)
        if not 1 <= self.objects[0] <= self.objects[1]:
            raise ValueError(f"argument `objects`: expected 1 <= low <= high, got {self.objects}")
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"argument `scale`: expected 0 < low <= high <= 1, got {self.scale}")

    def placement(self) -> Recipe:
        """The matting compositor's recipe for placing one object (no strands, no defocus)."""
        return replace(Recipe(size=self.size, scale=self.scale, max_upscale=2.0), strands=0.0, defocus=0.0)


def shrunk_foreground(source: Source, name: str, size: int) -> Foreground:
    """The cut-out cropped to its alpha and shrunk (premultiplied) to fit ``size x size``:
    every placement downscales it further, so nothing is lost and the cache stays small."""
    fg = crop_to_alpha(source.load_foreground(name))
    height, width = fg.alpha.shape
    if max(height, width) <= size:
        return fg
    scale = size / max(height, width)
    color, alpha = resize_premultiplied(
        fg.color, fg.alpha, (max(1, round(height * scale)), max(1, round(width * scale)))
    )
    return Foreground(name, color, alpha)


def _compose(
    source: Source,
    foregrounds: list[str],
    backgrounds: list[str],
    seed: np.random.SeedSequence,
    recipe: SegmentationRecipe,
    load: Callable[[str], Foreground],
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """One image: uint8 ``H x W x 3``, uint8 label map, the foregrounds used (bottom first), the background."""
    choose, background_rng, *object_seeds = child_seeds(seed, 2 + recipe.objects[1])
    pick = np.random.default_rng(choose)
    count = int(pick.integers(recipe.objects[0], recipe.objects[1] + 1))
    chosen = [foregrounds[int(i)] for i in pick.integers(0, len(foregrounds), size=count)]
    background = backgrounds[int(pick.integers(0, len(backgrounds)))]
    placement = recipe.placement()
    canvas = (
        crop_background(
            source.load_background(background, placement.background_min_side),
            np.random.default_rng(background_rng),
            placement,
        ).astype(np.float32)
        / 255.0
    )
    labels = np.zeros((recipe.size, recipe.size), np.uint8)
    for name, object_seed in zip(chosen, object_seeds):
        color, alpha = place_foreground(load(name), np.random.default_rng(object_seed), placement)
        canvas = alpha[..., None] * color + (1.0 - alpha[..., None]) * canvas
        labels[alpha > 0.5] = stamp_class(name)
    image = np.rint(np.clip(canvas, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image, labels, chosen, background


def _sample(image: np.ndarray, labels: np.ndarray, name: str) -> dict:
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0,
        "mask": torch.from_numpy(labels.astype(np.int64)),
        "name": name,
    }


def _parts(source: Source, part: str) -> tuple[list[str], list[str]]:
    foregrounds, backgrounds = source.foregrounds(part), source.backgrounds(part)
    if not foregrounds or not backgrounds:
        raise DataError(
            f"source {source.id}: its {part!r} part has {len(foregrounds)} foregrounds and {len(backgrounds)} "
            "backgrounds; both must be non-empty"
        )
    return foregrounds, backgrounds


class SegmentationComposites(torch.utils.data.Dataset):
    """Training images made when indexed; image ``i`` depends only on ``(seed, part, i)``.

    Args:
        source: a matting :class:`~resamplers.data.sources.Source` (real or synthetic).
        size: the image side.
        part: ``"train"`` or ``"test"`` (the source's split of foregrounds and backgrounds).
        length: the number of images (the loop's sampler indexes beyond it modulo nothing:
            any ``i >= 0`` is a valid image).
        seed: the data seed.
        recipe: objects per image and their scale (default :class:`SegmentationRecipe` at ``size``).

    Example:
        >>> from resamplers.data import SyntheticSource
        >>> source = SyntheticSource(foregrounds=8, backgrounds=8, foreground_size=32, background_size=64)
        >>> sample = SegmentationComposites(source, size=32)[3]
        >>> sample["image"].shape, sample["mask"].dtype, int(sample["mask"].max()) < len(SEGMENTATION_CLASSES)
        (torch.Size([3, 32, 32]), torch.int64, True)
    """

    num_classes = len(SEGMENTATION_CLASSES)
    class_names = SEGMENTATION_CLASSES
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        source: Source,
        size: int = 256,
        *,
        part: str = "train",
        length: int = 10**9,
        seed: int = 0,
        recipe: SegmentationRecipe | None = None,
    ) -> None:
        self.source = source
        self.recipe = recipe if recipe is not None else SegmentationRecipe(size=check_int(size, "size", minimum=8))
        if self.recipe.size != size:
            raise ValueError(f"argument `recipe`: its size {self.recipe.size} differs from `size` {size}")
        self.part = part
        self.foregrounds, self.backgrounds = _parts(source, part)
        self.length = check_int(length, "length", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)
        self._foreground_cache = LRUCache(FOREGROUND_CACHE)

    def _foreground(self, name: str) -> Foreground:
        return self._foreground_cache.get(name, lambda: shrunk_foreground(self.source, name, self.recipe.size))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        seed = np.random.SeedSequence([self.seed, zlib.crc32(self.part.encode()), int(index)])
        image, labels, _, _ = _compose(
            self.source, self.foregrounds, self.backgrounds, seed, self.recipe, self._foreground
        )
        return _sample(image, labels, f"{self.part}-{index:07d}")


MANIFEST = "manifest.json"


def _parameters(source: Source, recipe: SegmentationRecipe, seed: int, count: int, part: str) -> dict:
    return {
        "format": FORMAT,
        "source": source.id,
        "part": part,
        "seed": seed,
        "count": count,
        "size": recipe.size,
        "objects": list(recipe.objects),
        "scale": list(recipe.scale),
        "classes": list(SEGMENTATION_CLASSES),
    }


def write_segmentation_test_set(
    source: Source, root: str | os.PathLike, *, size: int = 256, count: int = 200, seed: int = 0, part: str = "test"
) -> Path:
    """Write ``count`` images of the source's ``part`` to ``root`` once (reused when complete
    with the same parameters); returns ``root``. Layout: ``image/NAME.png``,
    ``mask/NAME.png`` (class indices) and ``manifest.json`` (parameters and per image the
    objects, the background and the md5 of each decoded array).

    Raises:
        DataError: ``root`` holds another set or files that are not a set, or a source file
            cannot be read (named).
    """
    check_int(count, "count", minimum=1)
    recipe = SegmentationRecipe(size=check_int(size, "size", minimum=8))
    root = Path(root).expanduser()
    parameters = _parameters(source, recipe, seed, count, part)
    manifest = root / MANIFEST
    if manifest.is_file():
        existing = json.loads(manifest.read_text())
        if existing.get("parameters") != parameters:
            raise DataError(f"{str(root)!r} holds a segmentation test set with other parameters; choose another folder")
        SegmentationTestSet(root)  # raises, naming them, when files are missing
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(
            f"{str(root)!r} exists and is not a segmentation test set (no {MANIFEST}); choose another folder"
        )
    foregrounds, backgrounds = _parts(source, part)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    entries = []
    try:
        for index in range(count):
            seed_sequence = np.random.SeedSequence([seed, zlib.crc32(f"segmentation-{part}".encode()), index])
            image, labels, objects, background = _compose(
                source, foregrounds, backgrounds, seed_sequence, recipe, lambda n: shrunk_foreground(source, n, size)
            )
            name = f"{index:04d}"
            write_png(staging / "image" / f"{name}.png", image)
            write_png(staging / "mask" / f"{name}.png", labels)
            entries.append(
                {
                    "name": name,
                    "objects": objects,
                    "background": background,
                    "md5": {"image": pixel_md5(image), "mask": pixel_md5(labels)},
                }
            )
        from .. import __version__

        document = {"parameters": parameters, "resamplers": __version__, "images": entries}
        (staging / MANIFEST).write_text(json.dumps(document, indent=1))
        root.parent.mkdir(parents=True, exist_ok=True)
        if root.exists():
            root.rmdir()
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


class SegmentationTestSet(torch.utils.data.Dataset):
    """A set written by :func:`write_segmentation_test_set`; samples as the module says.

    Raises:
        DataError: no manifest, or files missing (all named).
    """

    num_classes = len(SEGMENTATION_CLASSES)
    class_names = SEGMENTATION_CLASSES
    ignore_index = IGNORE_INDEX

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise DataError(f"{str(self.root)!r} is not a segmentation test set: no {MANIFEST}")
        document = json.loads(manifest.read_text())
        self.parameters = document["parameters"]
        self.entries = document["images"]
        missing = [
            f"{kind}/{e['name']}.png"
            for e in self.entries
            for kind in ("image", "mask")
            if not (self.root / kind / f"{e['name']}.png").is_file()
        ]
        if missing:
            raise DataError(f"segmentation test set {str(self.root)!r} lacks {', '.join(missing[:20])}")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        image = read_rgb(self.root / "image" / f"{entry['name']}.png", "image")
        labels = read_gray(self.root / "mask" / f"{entry['name']}.png", "mask")
        return _sample(image, labels, entry["name"])

    def verify(self) -> list[str]:
        """Names of images whose decoded pixels differ from the manifest (empty: all match)."""
        wrong = []
        for entry in self.entries:
            image = read_rgb(self.root / "image" / f"{entry['name']}.png", "image")
            labels = read_gray(self.root / "mask" / f"{entry['name']}.png", "mask")
            if pixel_md5(image) != entry["md5"]["image"] or pixel_md5(labels) != entry["md5"]["mask"]:
                wrong.append(entry["name"])
        return wrong
