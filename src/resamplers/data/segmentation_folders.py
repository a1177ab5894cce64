"""Semantic-segmentation datasets in the folder layouts they are distributed in.

Three layouts (:func:`open_segmentation_folder` opens any of them by name):

* ``"voc"``, Pascal VOC 2012 (:class:`VOCSegmentation`): ``ROOT/JPEGImages/<id>.jpg``, masks
  ``ROOT/SegmentationClass/<id>.png`` saved as palette ("P") PNGs whose palette *indices* are the
  labels (0 background, 1-20 the classes of :data:`VOC_CLASSES`, 255 the ignored border), split
  lists ``ROOT/ImageSets/Segmentation/<split>.txt`` (``train``, ``val``, ``trainval``, or any other
  list there) with one id per line.
* ``"ade"``, ADE20K as mmsegmentation lays it out (:class:`ADESegmentation`):
  ``ROOT/images/{training,validation}/<stem>.jpg`` and ``ROOT/annotations/{training,validation}/<stem>.png``;
  split ``"train"`` / ``"val"`` (or ``"training"`` / ``"validation"``).  With ``reduce_zero_label``
  (the default, as mmsegmentation's ADE20K config) label 0 ("other") becomes 255 and every other
  label ``v`` becomes ``v - 1`` (255 stays 255), giving the 150 classes of :data:`ADE20K_CLASSES`.
  A ``ROOT/classes.txt`` (as the generic layout), when present, gives the class names instead
  (other datasets in the mmsegmentation layout).
* ``"generic"`` (:class:`GenericSegmentation`): ``ROOT/images/<stem>.*`` and ``ROOT/masks/<stem>.png``
  (single-channel: grayscale or palette, the values are the class indices) and ``ROOT/classes.txt``
  (one class name per line; the number of lines is ``num_classes``; names after
  ``reduce_zero_label`` when it is used).  When ``ROOT/images`` has sub-folders they are the
  splits (``ROOT/images/<split>`` with ``ROOT/masks/<split>``); otherwise a stem is in ``"val"``
  when ``zlib.crc32(stem.encode("utf-8")) % 100 < 20`` (about 20 %) and in ``"train"`` otherwise, a
  split that depends on the stem alone (it does not move when files are added); ``"all"`` is
  every image.

Every dataset yields dicts ``{"image": float32 3 x H x W in [0, 1], "mask": int64 H x W (class
indices, 255 = ignore), "name": str}`` at the files' native size, and has ``class_names``,
``num_classes``, ``ignore_index`` (255) and ``len()``.

Nothing is dropped silently: opening a dataset checks that every image has its mask and every mask
its image (naming the files without a partner; for VOC, the ids of the split list whose files are
missing), and reading a sample checks that the files decode, that image and mask have one size, and
that the mask holds only ``[0, num_classes)`` and 255 (naming the file and the values).  All of these
raise :class:`~resamplers.data.errors.DataError`.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .folders import _report_missing, list_images
from .images import _PIL_ERRORS, _open, read_rgb
from .samples import _planes
from .segmentation import IGNORE_INDEX
from .sources import in_test_part

__all__ = [
    "ADE20K_CLASSES",
    "LAYOUTS",
    "VOC_CLASSES",
    "ADESegmentation",
    "GenericSegmentation",
    "SegmentationFolder",
    "VOCSegmentation",
    "apply_reduce_zero_label",
    "open_segmentation_folder",
    "read_label_map",
]

LAYOUTS = ("voc", "ade", "generic")
GENERIC_VAL_PERCENT = 20

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

# The 150 classes of the ADE20K SceneParsing benchmark (objectInfo150), in label order 1..150.
ADE20K_CLASSES = tuple(
    name.strip()
    for name in """
    wall, building, sky, floor, tree, ceiling, road, bed, windowpane, grass, cabinet, sidewalk, person,
    earth, door, table, mountain, plant, curtain, chair, car, water, painting, sofa, shelf, house, sea,
    mirror, rug, field, armchair, seat, fence, desk, rock, wardrobe, lamp, bathtub, railing, cushion,
    base, box, column, signboard, chest of drawers, counter, sand, sink, skyscraper, fireplace,
    refrigerator, grandstand, path, stairs, runway, case, pool table, pillow, screen door, stairway,
    river, bridge, bookcase, blind, coffee table, toilet, flower, book, hill, bench, countertop, stove,
    palm, kitchen island, computer, swivel chair, boat, bar, arcade machine, hovel, bus, towel, light,
    truck, tower, chandelier, awning, streetlight, booth, television receiver, airplane, dirt track,
    apparel, pole, land, bannister, escalator, ottoman, bottle, buffet, poster, stage, van, ship,
    fountain, conveyer belt, canopy, washer, plaything, swimming pool, stool, barrel, basket,
    waterfall, tent, bag, minibike, cradle, oven, ball, food, step, tank, trade name, microwave, pot,
    animal, bicycle, lake, dishwasher, screen, blanket, sculpture, hood, sconce, vase, traffic light,
    tray, ashcan, fan, pier, crt screen, plate, monitor, bulletin board, shower, radiator, glass,
    clock, flag
    """.split(",")
)

_LABEL_MODES = ("P", "L", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")
_ADE_SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}


def read_label_map(path: str | os.PathLike, what: str = "mask") -> np.ndarray:
    """The class indices of a single-channel label image as an ``H x W`` integer array.

    A palette ("P") image gives its palette indices (not the colours), a grayscale image its values
    (8 or 16 bits).  A colour image is an error: its colours are not class indices.
    """
    image = _open(path, what)
    with image:
        if image.mode not in _LABEL_MODES:
            raise DataError(
                f"{what} {str(path)!r}: expected a single-channel (palette or grayscale) image of class "
                f"indices, got mode {image.mode}"
            )
        try:
            labels = np.array(image)
        except _PIL_ERRORS as error:
            raise DataError(f"{what} {str(path)!r}: cannot decode it ({type(error).__name__}: {error})") from None
    return labels.astype(np.uint8) if labels.dtype == bool else labels


def apply_reduce_zero_label(labels: np.ndarray) -> np.ndarray:
    """mmsegmentation's ``reduce_zero_label``: 0 -> 255, ``v`` -> ``v - 1`` for ``v`` in 1..254, 255 stays."""
    labels = labels.astype(np.int64)
    return np.where((labels == 0) | (labels == IGNORE_INDEX), IGNORE_INDEX, labels - 1)


def read_class_names(path: Path) -> tuple[str, ...]:
    """One class name per line (trailing blank lines allowed); a blank line among them is an error."""
    if not path.is_file():
        raise DataError(f"{str(path)!r}: no class-names file (one class name per line)")
    try:
        lines = path.read_text(encoding="utf-8").rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{str(path)!r}: cannot read it ({type(error).__name__}: {error})") from None
    names = tuple(line.strip() for line in lines)
    if not names:
        raise DataError(f"{str(path)!r}: no class names")
    blank = [i + 1 for i, name in enumerate(names) if not name]
    if blank:
        raise DataError(f"{str(path)!r}: blank class names on line(s) {blank[:10]}")
    return names


def pair_by_stem(images: Path, masks: Path) -> list[tuple[str, Path, Path]]:
    """``(stem, image, mask)`` for every stem of ``images``; a file without its partner is an error naming it."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise DataError(f"{str(folder)!r}: no such folder")
    image_files, mask_files = list_images(images), list_images(masks)
    _report_missing(
        f"{str(images)!r}: images without a mask of the same stem in {str(masks)!r}",
        [path.name for stem, path in image_files.items() if stem not in mask_files],
    )
    _report_missing(
        f"{str(masks)!r}: masks without an image of the same stem in {str(images)!r}",
        [path.name for stem, path in mask_files.items() if stem not in image_files],
    )
    return [(stem, path, mask_files[stem]) for stem, path in image_files.items()]


class SegmentationFolder(torch.utils.data.Dataset):
    """Image / mask pairs with class names; the layouts are its subclasses.

    Args:
        items: ``(name, image path, mask path)`` per sample, in order.
        class_names: the names of the classes ``0 .. num_classes - 1``.
        reduce_zero_label: apply mmsegmentation's ``reduce_zero_label`` to the masks.
        where: what to call the dataset in errors (its root folder).
    """

    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        items: list[tuple[str, Path, Path]],
        class_names: tuple[str, ...],
        reduce_zero_label: bool = False,
        where: str = "dataset",
    ) -> None:
        if not items:
            raise DataError(f"{where}: no images")
        self.items = items
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.reduce_zero_label = bool(reduce_zero_label)

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def read_mask(self, path: Path) -> np.ndarray:
        """The checked int64 ``H x W`` class indices of the mask file ``path``."""
        raw = read_label_map(path, "mask")
        labels = apply_reduce_zero_label(raw) if self.reduce_zero_label else raw.astype(np.int64)
        bad = ((labels < 0) | (labels >= self.num_classes)) & (labels != IGNORE_INDEX)
        if bad.any():
            values = sorted(int(v) for v in np.unique(raw[bad]))
            reduced = " (before reduce_zero_label)" if self.reduce_zero_label else ""
            raise DataError(
                f"mask {str(path)!r}: values {values[:10]}{reduced} are not class indices in "
                f"[0, {self.num_classes}) nor the ignore index {IGNORE_INDEX}"
            )
        return labels

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.items):
            raise IndexError(f"index {index} out of range for {len(self.items)} images")
        name, image_path, mask_path = self.items[index]
        image = read_rgb(image_path, "image")
        mask = self.read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"mask {str(mask_path)!r} is {mask.shape[1]} x {mask.shape[0]} but its image "
                f"{str(image_path)!r} is {image.shape[1]} x {image.shape[0]}"
            )
        return {"image": _planes(image), "mask": torch.from_numpy(mask), "name": name}


def _root(root: str | os.PathLike) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{str(path)!r}: no such folder")
    return path


class VOCSegmentation(SegmentationFolder):
    """Pascal VOC: ``JPEGImages/<id>.jpg``, palette masks ``SegmentationClass/<id>.png``, split lists.

    Args:
        root: the folder holding ``JPEGImages``, ``SegmentationClass`` and ``ImageSets/Segmentation``
            (``VOCdevkit/VOC2012``).
        split: the name of a list ``ImageSets/Segmentation/<split>.txt`` (``train``, ``val``, ``trainval``).

    Raises:
        DataError: no such list (the available ones are named), an id listed twice, or ids whose image
            or mask is missing (named).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        self.root = _root(root)
        lists = self.root / "ImageSets" / "Segmentation"
        list_file = lists / f"{split}.txt"
        if not list_file.is_file():
            available = sorted(p.stem for p in lists.glob("*.txt")) if lists.is_dir() else []
            raise DataError(f"{str(list_file)!r}: no split list {split!r} (available: {available or 'none'})")
        ids = [line.strip() for line in list_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        twice = sorted(i for i, count in Counter(ids).items() if count > 1)
        _report_missing(f"{str(list_file)!r}: ids listed more than once", twice)
        items = [(i, self.root / "JPEGImages" / f"{i}.jpg", self.root / "SegmentationClass" / f"{i}.png") for i in ids]
        _report_missing(
            f"{str(list_file)!r}: files missing for the listed ids",
            [f"{path.parent.name}/{path.name}" for _, *paths in items for path in paths if not path.is_file()],
        )
        super().__init__(items, VOC_CLASSES, False, f"{str(list_file)!r}")


class ADESegmentation(SegmentationFolder):
    """The mmsegmentation layout: ``images/{training,validation}`` and ``annotations/{training,validation}``.

    Args:
        root: the folder holding ``images`` and ``annotations`` (``ADEChallengeData2016``).
        split: ``"train"`` / ``"val"`` (or ``"training"`` / ``"validation"``).
        reduce_zero_label: 0 -> 255 and ``v`` -> ``v - 1`` (mmsegmentation's ADE20K setting).

    Class names: ``ROOT/classes.txt`` when present, else :data:`ADE20K_CLASSES` (150 names) with
    ``reduce_zero_label`` and ``("other",) + ADE20K_CLASSES`` without it.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", reduce_zero_label: bool = True) -> None:
        self.root = _root(root)
        if split not in _ADE_SPLITS:
            raise ValueError(f"argument `split`: expected one of {list(_ADE_SPLITS)}, got {split!r}")
        folder = _ADE_SPLITS[split]
        items = pair_by_stem(self.root / "images" / folder, self.root / "annotations" / folder)
        if (self.root / "classes.txt").is_file():
            names = read_class_names(self.root / "classes.txt")
        else:
            names = ADE20K_CLASSES if reduce_zero_label else ("other", *ADE20K_CLASSES)
        super().__init__(items, names, reduce_zero_label, f"{str(self.root / 'images' / folder)!r}")


class GenericSegmentation(SegmentationFolder):
    """``images/`` + ``masks/`` (same stems) + ``classes.txt``; split by sub-folders or by stem hash.

    Args:
        root: the folder holding ``images``, ``masks`` and ``classes.txt``.
        split: a sub-folder name of ``images`` when it has sub-folders; otherwise ``"train"``,
            ``"val"`` (stems with ``crc32(stem) % 100 < val_percent``) or ``"all"``.
        reduce_zero_label: 0 -> 255 and ``v`` -> ``v - 1`` (``classes.txt`` then names the reduced labels).
        val_percent: the share of stems in ``"val"`` for the hash split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        reduce_zero_label: bool = False,
        val_percent: int = GENERIC_VAL_PERCENT,
    ) -> None:
        self.root = _root(root)
        images, masks = self.root / "images", self.root / "masks"
        names = read_class_names(self.root / "classes.txt")
        subfolders = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
        if subfolders:
            if split not in subfolders:
                raise ValueError(
                    f"argument `split`: expected one of {subfolders} (the folders of {str(images)!r}), got {split!r}"
                )
            items = pair_by_stem(images / split, masks / split)
        else:
            if split not in ("train", "val", "all"):
                raise ValueError(f"argument `split`: expected one of ['train', 'val', 'all'], got {split!r}")
            items = pair_by_stem(images, masks)
            if split != "all":
                items = [item for item in items if in_test_part(item[0], val_percent) == (split == "val")]
        super().__init__(items, names, reduce_zero_label, f"{str(images)!r}, split {split!r}")


def open_segmentation_folder(
    root: str | os.PathLike, layout: str, split: str, reduce_zero_label: bool | None = None
) -> SegmentationFolder:
    """The dataset of ``root`` in ``layout`` (``"voc"``, ``"ade"`` or ``"generic"``), its ``split``.

    ``reduce_zero_label=None`` takes the layout's default: True for ADE, False otherwise (VOC's
    label 0 is the background class, so VOC accepts only False).

    Example:
        >>> open_segmentation_folder("data", "cityscapes", "val")
        Traceback (most recent call last):
        ...
        ValueError: argument `--layout`: expected one of 'voc', 'ade', 'generic', got 'cityscapes'
    """
    if layout not in LAYOUTS:
        raise ValueError(f"argument `--layout`: expected one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}")
    if layout == "voc":
        if reduce_zero_label:
            raise ValueError(
                "argument `reduce_zero_label`: VOC label 0 is the background class; expected False or None"
            )
        return VOCSegmentation(root, split)
    if layout == "ade":
        return ADESegmentation(root, split, True if reduce_zero_label is None else reduce_zero_label)
    return GenericSegmentation(root, split, bool(reduce_zero_label))
