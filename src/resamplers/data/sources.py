"""Where foregrounds and backgrounds come from, and their disjoint train/test split.

A :class:`Source` names its foreground cut-outs and background photographs and loads them.  The
split is a property of the names alone: an item is in the test part when ``crc32(name) % 100`` is
below ``test_percent`` (25 by default), so it is the same on every machine and does not move when
other items are added or removed.  Names are paths relative to the source root (unique; several
files share a basename, e.g. the Plasma wallpapers are all ``2560x1600.jpg``).
"""

from __future__ import annotations

import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .fetch import ENV_ROOT, listed_files, resolve_root
from .images import read_rgb, read_rgba

__all__ = ["PARTS", "DebianSource", "Foreground", "LRUCache", "Source", "in_test_part", "split_names"]

PARTS = ("train", "test", "all")


@dataclass(frozen=True)
class Foreground:
    """A cut-out: ``color`` ``H x W x 3`` straight (not premultiplied) and ``alpha`` ``H x W``, float32 in [0, 1]."""

    name: str
    color: np.ndarray
    alpha: np.ndarray


def in_test_part(name: str, test_percent: int = 25) -> bool:
    """Whether ``name`` falls in the test part: ``crc32(name) % 100 < test_percent``."""
    return zlib.crc32(name.encode("utf-8")) % 100 < test_percent


def split_names(names: list[str], part: str, test_percent: int = 25) -> list[str]:
    """The ``part`` (``"train"``, ``"test"`` or ``"all"``) of ``names``, in their order."""
    if part not in PARTS:
        raise ValueError(f"argument `part`: expected one of {list(PARTS)}, got {part!r}")
    if part == "all":
        return list(names)
    want_test = part == "test"
    return [name for name in names if in_test_part(name, test_percent) == want_test]


class Source:
    """Foregrounds and backgrounds by name.  Subclasses set ``id`` and implement the four methods.

    ``id`` identifies the source and its parameters in test-set manifests.
    """

    id: str = "source"
    test_percent: int = 25

    def foreground_names(self) -> list[str]:
        raise NotImplementedError

    def background_names(self) -> list[str]:
        raise NotImplementedError

    def load_foreground(self, name: str) -> Foreground:
        raise NotImplementedError

    def load_background(self, name: str, min_side: int) -> np.ndarray:
        """The background as uint8 ``H x W x 3``, its short side reduced to ``min_side`` if larger."""
        raise NotImplementedError

    def foregrounds(self, part: str = "all") -> list[str]:
        return split_names(self.foreground_names(), part, self.test_percent)

    def backgrounds(self, part: str = "all") -> list[str]:
        return split_names(self.background_names(), part, self.test_percent)


class LRUCache:
    """A small per-process LRU of decoded images (each DataLoader worker has its own)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()

    def get(self, key, load):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = load()
        if self.capacity > 0:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def __getstate__(self):  # pickled into DataLoader workers (spawn): they start empty
        return {"capacity": self.capacity}

    def __setstate__(self, state):
        self.__init__(state["capacity"])


class DebianSource(Source):
    """The fetched Debian data (:func:`resamplers.data.fetch`): Tux Paint stamps on real photographs.

    Args:
        root: the data directory given to ``fetch`` (default: the same default).
        cache_backgrounds: how many decoded backgrounds each process keeps in memory.
        cache_foregrounds: how many decoded foregrounds each process keeps (read-only).  The
            training composites cycle through the foregrounds in order, so a cache smaller
            than their number never hits; the default holds all of the fetched stamps
            (about 1 MB each as float32, 160 MiB for the 153 of the training part).
    """

    id = "debian"

    def __init__(
        self, root: str | os.PathLike | None = None, cache_backgrounds: int = 64, cache_foregrounds: int = 256
    ) -> None:
        self.root = resolve_root(root)
        self.tree = self.root / "root"
        if not self.tree.is_dir():
            raise DataError(
                f"the real data is not under {str(self.root)!r}: run `resamplers data fetch` (with the same --root "
                f"or ${ENV_ROOT}), or use the synthetic source"
            )
        self._foregrounds = listed_files("foregrounds")
        self._backgrounds = listed_files("backgrounds")
        self._cache = LRUCache(cache_backgrounds)
        self._foreground_cache = LRUCache(cache_foregrounds)

    def foreground_names(self) -> list[str]:
        return list(self._foregrounds)

    def background_names(self) -> list[str]:
        return list(self._backgrounds)

    def path(self, name: str) -> Path:
        return self.tree / name

    def load_foreground(self, name: str) -> Foreground:
        return self._foreground_cache.get(name, lambda: self._read_foreground(name))

    def _read_foreground(self, name: str) -> Foreground:
        color, alpha = read_rgba(self.path(name), "foreground")
        color.setflags(write=False)  # shared by every composite made from the cache
        alpha.setflags(write=False)
        return Foreground(name, color, alpha)

    def load_background(self, name: str, min_side: int) -> np.ndarray:
        return self._cache.get((name, min_side), lambda: read_rgb(self.path(name), "background", min_side))
