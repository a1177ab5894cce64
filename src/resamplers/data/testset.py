"""The fixed matting test set: written once to disk, identical everywhere for the same version and seed.

Layout of a test-set folder::

    manifest.json            parameters, and per image: name, fg, bg, flags, pixel md5 of each file
    image/NAME.png           the composite, RGB
    alpha/NAME.png           ground-truth alpha, 8-bit
    trimap/NAME.png          DIM trimap (fixed radius), 0 / 128 / 255
    fg/NAME.png, bg/NAME.png the foreground colour (defined everywhere) and the background

Each test foreground is composited on ``backgrounds_per_foreground`` distinct test backgrounds; the
choice and each composite are seeded by ``(seed, crc32(foreground))`` and ``(seed, crc32(foreground),
crc32(background))``, so an image does not depend on the other files of the source.  The manifest
records a hash of every decoded image (not of the PNG bytes, which depend on the zlib build), so
:meth:`MattingTestSet.verify` checks the pixels on any machine.  The set is written to a temporary
folder and renamed into place when complete; an existing complete set with the same parameters is
reused as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int
from .compositor import Recipe, make_composite
from .errors import DataError
from .fetch import resolve_root
from .images import read_gray, read_rgb, write_png
from .samples import make_sample
from .sources import Source
from .trimap import default_radius, make_trimap

__all__ = ["FORMAT", "FILES", "MattingTestSet", "default_test_set_dir", "pixel_md5", "write_test_set"]

FORMAT = 1  # bump whenever a change of the generation changes the images
FILES = ("image", "alpha", "trimap", "fg", "bg")
MANIFEST = "manifest.json"


def pixel_md5(pixels: np.ndarray) -> str:
    """md5 of a uint8 array's shape and pixels."""
    digest = hashlib.md5(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def _short(name: str) -> str:
    """A readable file-name part for a source item: the last path component that is not just a size."""
    parts = [Path(p).stem for p in name.split("/") if p]
    for part in reversed(parts):
        if not re.fullmatch(r"[0-9x]+", part) and part not in ("images", "contents"):
            return re.sub(r"[^A-Za-z0-9_.-]+", "_", part)
    return "item"


def default_test_set_dir(source: Source, size: int, seed: int, data_root: str | os.PathLike | None = None) -> Path:
    """``ROOT/testsets/<source>-<size>px-seed<seed>-f<FORMAT>`` under the data root (default: the default root)."""
    label = (
        source.id
        if re.fullmatch(r"[A-Za-z0-9_-]+", source.id)
        else (f"{source.id.split('(')[0]}-{zlib.crc32(source.id.encode()):08x}")
    )
    return resolve_root(data_root) / "testsets" / f"{label}-{size}px-seed{seed}-f{FORMAT}"


def _parameters(source: Source, recipe: Recipe, seed: int, per_foreground: int, part: str, radius: float) -> dict:
    parameters = {
        "format": FORMAT,
        "source": source.id,
        "part": part,
        "test_percent": source.test_percent,
        "size": recipe.size,
        "seed": seed,
        "backgrounds_per_foreground": per_foreground,
        "trimap_radius": radius,
        "recipe": asdict(recipe),
    }
    return json.loads(json.dumps(parameters))  # as read back from the manifest (tuples become lists)


def _plan(source: Source, part: str, per_foreground: int, seed: int) -> list[tuple[str, str]]:
    foregrounds, backgrounds = source.foregrounds(part), source.backgrounds(part)
    if not foregrounds or not backgrounds:
        raise DataError(
            f"source {source.id}: its {part!r} part has {len(foregrounds)} foregrounds and "
            f"{len(backgrounds)} backgrounds; both must be non-empty"
        )
    if per_foreground > len(backgrounds):
        raise ValueError(
            f"argument `backgrounds_per_foreground`: at most {len(backgrounds)} (the {part!r} "
            f"backgrounds of {source.id}), got {per_foreground}"
        )
    pairs = []
    for foreground in foregrounds:
        rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(foreground.encode())]))
        for k in sorted(rng.choice(len(backgrounds), per_foreground, replace=False)):
            pairs.append((foreground, backgrounds[k]))
    return pairs


def _read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"test set {str(root)!r}: cannot read {MANIFEST} ({error})") from None


def write_test_set(
    source: Source,
    root: str | os.PathLike | None = None,
    *,
    size: int = 256,
    seed: int = 0,
    backgrounds_per_foreground: int = 5,
    part: str = "test",
    trimap_radius: float | None = None,
    recipe: Recipe | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write the test set of ``source`` to ``root`` (or reuse the complete one there); returns ``root``.

    Args:
        source: where foregrounds and backgrounds come from.
        root: the test-set folder (default: :func:`default_test_set_dir`).
        size: the side of the square images.
        seed: the data seed.
        backgrounds_per_foreground: composites per test foreground (distinct backgrounds).
        part: which part of the source (``"test"``; ``"all"`` for a folder that is a test set).
        trimap_radius: the fixed trimap radius (default :func:`~resamplers.data.trimap.default_radius`).
        recipe: compositing parameters (default: ``Recipe(size=size)``).
        progress: called as ``progress(done, total, name)``.

    Raises:
        DataError: ``root`` holds something else (another test set, or files without a manifest),
            or a source file cannot be read (named in the message).

    Example:
        >>> import tempfile
        >>> from resamplers.data import SyntheticSource
        >>> source = SyntheticSource(foregrounds=8, backgrounds=16, foreground_size=32, background_size=64)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = write_test_set(source, f"{tmp}/set", size=24, backgrounds_per_foreground=1)
        ...     test_set = MattingTestSet(root)
        ...     print(len(test_set), tuple(test_set[0]["image"].shape), test_set.verify())
        2 (3, 24, 24) []
    """
    check_int(size, "size", minimum=8)
    check_int(backgrounds_per_foreground, "backgrounds_per_foreground", minimum=1)
    recipe = recipe if recipe is not None else Recipe(size=size)
    if recipe.size != size:
        raise ValueError(f"argument `recipe`: its size {recipe.size} differs from `size` {size}")
    radius = trimap_radius if trimap_radius is not None else default_radius(size)
    root = Path(root).expanduser() if root is not None else default_test_set_dir(source, size, seed)
    parameters = _parameters(source, recipe, seed, backgrounds_per_foreground, part, radius)
    existing = _read_manifest(root)
    if existing is not None:
        if existing.get("parameters") != parameters:
            raise DataError(
                f"{str(root)!r} holds a test set with other parameters; choose another folder or "
                f"remove it (it has {json.dumps(existing.get('parameters'))[:300]})"
            )
        try:
            MattingTestSet(root)  # raises, naming them, if files are missing
        except DataError as error:
            raise DataError(f"{error}; remove the folder to write the test set again") from None
        return root
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{str(root)!r} exists and is not a test set (no {MANIFEST}); choose an empty or new folder")

    pairs = _plan(source, part, backgrounds_per_foreground, seed)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    entries = []
    try:
        for index, (foreground, background) in enumerate(pairs):
            name = f"{index:04d}-{_short(foreground)}-{_short(background)}"
            composite = make_composite(
                source.load_foreground(foreground),
                source.load_background(background, recipe.background_min_side),
                np.random.SeedSequence([seed, zlib.crc32(foreground.encode()), zlib.crc32(background.encode())]),
                recipe,
            )
            arrays = {
                "image": composite.image,
                "alpha": composite.alpha,
                "trimap": make_trimap(composite.alpha, radius),
                "fg": composite.fg,
                "bg": composite.bg,
            }
            for kind, pixels in arrays.items():
                write_png(staging / kind / f"{name}.png", pixels)
            entries.append(
                {
                    "name": name,
                    "fg": foreground,
                    "bg": background,
                    "thin": composite.thin,
                    "strands": composite.strands,
                    "defocus": composite.defocus,
                    "md5": {kind: pixel_md5(pixels) for kind, pixels in arrays.items()},
                }
            )
            if progress:
                progress(index + 1, len(pairs), name)
        from .. import __version__

        manifest = {"parameters": parameters, "resamplers": __version__, "count": len(entries), "images": entries}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        root.parent.mkdir(parents=True, exist_ok=True)
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


class MattingTestSet(torch.utils.data.Dataset):
    """A test set written by :func:`write_test_set`.

    Yields dicts (:func:`~resamplers.data.samples.make_sample`): ``image`` float ``3 x H x W`` in
    [0, 1], ``alpha`` ``1 x H x W``, ``trimap`` uint8 ``H x W`` (0 / 128 / 255), ``fg``, ``bg``,
    ``name``, ``thin``.  ``entries`` has the manifest's per-image records (``fg``, ``bg``,
    ``strands``, ``defocus``, ...), ``parameters`` its parameters.

    Raises:
        DataError: no manifest, or files missing (all named).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        manifest = _read_manifest(self.root)
        if manifest is None:
            raise DataError(
                f"{str(self.root)!r} is not a test set: no {MANIFEST} (write one with `resamplers data testset`)"
            )
        self.parameters = manifest["parameters"]
        self.entries = manifest["images"]
        missing = [
            f"{kind}/{e['name']}.png"
            for e in self.entries
            for kind in FILES
            if not (self.root / kind / f"{e['name']}.png").is_file()
        ]
        if missing:
            shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            raise DataError(f"test set {str(self.root)!r}: missing {shown}")

    def __len__(self) -> int:
        return len(self.entries)

    def _arrays(self, index: int) -> dict[str, np.ndarray]:
        name = self.entries[index]["name"]
        return {
            kind: (read_rgb if kind in ("image", "fg", "bg") else read_gray)(self.root / kind / f"{name}.png", kind)
            for kind in FILES
        }

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} out of range for a test set of {len(self.entries)} images")
        arrays = self._arrays(index)
        entry = self.entries[index]
        return make_sample(
            entry["name"],
            arrays["image"],
            arrays["alpha"],
            arrays["trimap"],
            fg=arrays["fg"],
            bg=arrays["bg"],
            thin=entry["thin"],
        )

    def verify(self) -> list[str]:
        """Files whose decoded pixels differ from the manifest's md5 (empty when the set is intact)."""
        bad = []
        for index, entry in enumerate(self.entries):
            for kind, pixels in self._arrays(index).items():
                if pixel_md5(pixels) != entry["md5"][kind]:
                    bad.append(f"{kind}/{entry['name']}.png")
        return bad
