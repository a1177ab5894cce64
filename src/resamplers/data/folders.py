"""Matting benchmarks in their usual folder layouts (Adobe Composition-1k, Distinctions-646, ...).

Two layouts, with folder names matched case-insensitively:

* **Separate layers** (training sets, or a test set to composite): ``fg/`` (also ``FG``,
  ``foreground``) and ``alpha/`` (also ``GT``, ``matte``, ``mask``) with the same file stems, and
  ``bg/`` (also ``BG``, ``background``) with any photographs.  :class:`FolderSource` is a source like
  the others: :class:`~resamplers.data.training.TrainingComposites` composites it on the fly,
  :func:`~resamplers.data.testset.write_test_set` writes a fixed test set from it (use
  ``part="all"`` when the folder is already one split).
* **Merged images** (test sets as distributed): ``merged/`` (also ``image``, ``images``,
  ``composite``), ``alpha/`` and ``trimaps/`` (also ``trimap``).  An image's alpha and trimap have
  its stem, or its stem without a trailing ``_N`` (Composition-1k names composites
  ``<foreground>_<k>`` and keeps one alpha per foreground).  ``fg/`` and ``bg/`` with the image's
  stems are used when present (so a folder written by ``write_test_set`` reads too).
  :class:`MattingFolder` yields the usual sample dicts.

Missing partners and unreadable files are errors that name the files; nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .images import read_gray, read_rgb
from .samples import make_sample
from .sources import Foreground, LRUCache, Source

__all__ = ["FOLDER_NAMES", "FolderSource", "MattingFolder", "open_matting_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_NAMES = {
    "fg": ("fg", "foreground", "foregrounds"),
    "alpha": ("alpha", "gt", "matte", "mattes", "mask", "masks"),
    "bg": ("bg", "background", "backgrounds"),
    "image": ("merged", "image", "images", "composite", "composites"),
    "trimap": ("trimaps", "trimap"),
}


def find_folder(root: Path, kind: str) -> Path | None:
    """The sub-folder of ``root`` for ``kind`` (a key of ``FOLDER_NAMES``), matched case-insensitively."""
    if not root.is_dir():
        return None
    by_name = {child.name.lower(): child for child in sorted(root.iterdir()) if child.is_dir()}
    for alias in FOLDER_NAMES[kind]:
        if alias in by_name:
            return by_name[alias]
    return None


def list_images(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem (sorted); two files with one stem are an error naming both."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in found:
                raise DataError(
                    f"{str(folder)!r}: two images with the stem {path.stem!r}: {found[path.stem].name} and {path.name}"
                )
            found[path.stem] = path
    return found


def _partner(stem: str, files: dict[str, Path]) -> Path | None:
    if stem in files:
        return files[stem]
    base = re.sub(r"_\d+$", "", stem)
    return files.get(base)


def _require(root: Path, kind: str) -> Path:
    folder = find_folder(root, kind)
    if folder is None:
        raise DataError(f"{str(root)!r}: no {kind} folder (expected one of {', '.join(FOLDER_NAMES[kind])})")
    return folder


def _report_missing(what: str, names: list[str]) -> None:
    if names:
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise DataError(f"{what}: {shown}")


class FolderSource(Source):
    """Foregrounds ``fg/`` + ``alpha/`` and backgrounds ``bg/`` of a benchmark folder.

    Args:
        root: the folder holding ``fg``, ``alpha`` and ``bg``.
        cache_backgrounds: decoded backgrounds kept per process.
    """

    def __init__(self, root: str | os.PathLike, cache_backgrounds: int = 64) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{str(self.root)!r}: no such folder")
        self.fg_files = list_images(_require(self.root, "fg"))
        self.alpha_files = list_images(_require(self.root, "alpha"))
        self.bg_files = list_images(_require(self.root, "bg"))
        _report_missing(
            f"{str(self.root)!r}: foregrounds without an alpha of the same stem",
            [self.fg_files[s].name for s in self.fg_files if s not in self.alpha_files],
        )
        if not self.fg_files or not self.bg_files:
            raise DataError(
                f"{str(self.root)!r}: {len(self.fg_files)} foregrounds and {len(self.bg_files)} "
                "backgrounds; both must be non-empty"
            )
        self.id = f"folder({self.root.resolve()})"
        self._cache = LRUCache(cache_backgrounds)

    def foreground_names(self) -> list[str]:
        return list(self.fg_files)

    def background_names(self) -> list[str]:
        return list(self.bg_files)

    def load_foreground(self, name: str) -> Foreground:
        color = read_rgb(self.fg_files[name], "foreground").astype(np.float32) / 255.0
        alpha_path = self.alpha_files[name]
        alpha = read_gray(alpha_path, "alpha").astype(np.float32) / 255.0
        if alpha.shape != color.shape[:2]:
            raise DataError(
                f"alpha {str(alpha_path)!r} is {alpha.shape[1]} x {alpha.shape[0]} but its foreground "
                f"{self.fg_files[name].name} is {color.shape[1]} x {color.shape[0]}"
            )
        return Foreground(name, color, alpha)

    def load_background(self, name: str, min_side: int) -> np.ndarray:
        return self._cache.get((name, min_side), lambda: read_rgb(self.bg_files[name], "background", min_side))


class MattingFolder(torch.utils.data.Dataset):
    """Merged images with ``alpha/`` and ``trimaps/``: yields the usual sample dicts at native size.

    Args:
        root: the folder holding ``merged`` (or ``image``...), ``alpha`` and ``trimaps``.
        snap_trimap: map other trimap values to 0 (< 85), 255 (> 170) or 128 instead of raising.

    Samples have ``image``, ``alpha``, ``trimap``, ``name``, ``thin`` (always False), and ``fg``/``bg``
    when the folder has them.
    """

    def __init__(self, root: str | os.PathLike, snap_trimap: bool = False) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{str(self.root)!r}: no such folder")
        images = list_images(_require(self.root, "image"))
        alphas = list_images(_require(self.root, "alpha"))
        trimaps = list_images(_require(self.root, "trimap"))
        layers = {kind: list_images(folder) for kind in ("fg", "bg") if (folder := find_folder(self.root, kind))}
        self.snap_trimap = snap_trimap
        self.items = []
        missing = []
        for stem, image in images.items():
            item = {"name": stem, "image": image, "alpha": _partner(stem, alphas), "trimap": _partner(stem, trimaps)}
            for kind, files in layers.items():
                item[kind] = files.get(stem)
            missing += [f"{kind} for {image.name}" for kind, path in item.items() if path is None]
            self.items.append(item)
        _report_missing(f"{str(self.root)!r}: missing", missing)
        if not self.items:
            raise DataError(f"{str(self.root)!r}: no images in {_require(self.root, 'image').name}/")

    def __len__(self) -> int:
        return len(self.items)

    def _trimap(self, path: Path) -> np.ndarray:
        trimap = read_gray(path, "trimap")
        if self.snap_trimap:
            return np.where(trimap < 85, 0, np.where(trimap > 170, 255, 128)).astype(np.uint8)
        bad = ~np.isin(trimap, (0, 128, 255))
        if bad.any():
            values = sorted(int(v) for v in np.unique(trimap[bad])[:5])
            raise DataError(
                f"trimap {str(path)!r}: values other than 0 / 128 / 255 ({values}...); "
                "pass snap_trimap=True to snap them"
            )
        return trimap

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.items):
            raise IndexError(f"index {index} out of range for {len(self.items)} images")
        item = self.items[index]
        image = read_rgb(item["image"], "image")
        arrays = {"alpha": read_gray(item["alpha"], "alpha"), "trimap": self._trimap(item["trimap"])}
        for kind in ("fg", "bg"):
            if kind in item:
                arrays[kind] = read_rgb(item[kind], kind)
        for kind, pixels in arrays.items():
            if pixels.shape[:2] != image.shape[:2]:
                raise DataError(
                    f"{kind} {str(item[kind])!r} is {pixels.shape[1]} x {pixels.shape[0]} but image "
                    f"{item['image'].name} is {image.shape[1]} x {image.shape[0]}"
                )
        return make_sample(
            item["name"], image, arrays["alpha"], arrays["trimap"], fg=arrays.get("fg"), bg=arrays.get("bg")
        )


def open_matting_folder(root: str | os.PathLike) -> FolderSource | MattingFolder:
    """:class:`MattingFolder` if ``root`` has merged images, else :class:`FolderSource`."""
    root = Path(root).expanduser()
    if find_folder(root, "image") is not None:
        return MattingFolder(root)
    return FolderSource(root)
