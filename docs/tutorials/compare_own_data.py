"""Which upsampler wins on my segmentation data?  `resamplers compare` on a folder.

Your data in the generic layout (``images/`` + ``masks/`` + ``classes.txt``; ``voc`` and
``ade`` are the other layouts):

    DATA/classes.txt            one class name per line; mask value k is line k
    DATA/images/train/*.png     RGB images (any format Pillow reads)
    DATA/masks/train/*.png      single-channel masks of the same stems and sizes; 255 = ignore
    DATA/images/val/... DATA/masks/val/...

Without sub-folders, a stem's split is fixed by a hash of its name (about 20 % val).

    python docs/tutorials/compare_own_data.py --data DATA --out results/my-compare
    python docs/tutorials/compare_own_data.py --smoke      # a tiny generated folder, seconds

Without ``--data`` the script writes a tiny folder of its own (textured backgrounds with a
square and a disc, three classes) and compares on that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from resamplers.cli import main as main_cli

CLASSES = ("background", "square", "disc")


def make_folder(root: Path, train: int = 8, val: int = 4, size: int = 80, seed: int = 0) -> Path:
    """A generic-layout folder: noise backgrounds, one square (class 1) and one disc (class 2) per image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            image = rng.integers(40, 120, (size, size, 3)).astype(np.uint8)
            mask = np.zeros((size, size), np.uint8)
            y, x, side = *rng.integers(0, size // 2, 2), int(rng.integers(size // 5, size // 2))
            mask[y : y + side, x : x + side] = 1
            cy, cx, r = *rng.integers(size // 4, 3 * size // 4, 2), int(rng.integers(size // 8, size // 4))
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2  # the disc occludes the square
            image[mask == 1] = rng.integers(150, 256, 3)
            image[mask == 2] = rng.integers(150, 256, 3)
            Image.fromarray(image).save(root / "images" / split / f"{split}_{k:03d}.png")
            Image.fromarray(mask).save(root / "masks" / split / f"{split}_{k:03d}.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a generic-layout folder (default: a generated one)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: a temporary one)")
    parser.add_argument("--ops", default="bilinear,carafe,dysample", help="comma-separated pair names")
    parser.add_argument("--smoke", action="store_true", help="the smoke preset on a tiny folder (seconds)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_folder(Path(tmp) / "data")
        out = args.out or Path(tmp) / "compare"
        command = [
            *("resamplers", "compare", "--task", "segmentation"),
            *("--preset", "smoke" if args.smoke else "quick"),
            *("--ops", "bilinear,nearest" if args.smoke else args.ops),
            *("--data", f"folder:{data}", "--layout", "generic"),
            *("--out", str(out), "--no-progress"),
        ]
        print("$", " ".join(command), flush=True)
        code = main_cli(command[1:])  # the `resamplers` command's entry point, in this process
        if code != 0:
            return code
        where = "" if args.out else " (a temporary folder, removed on exit: pass --out to keep it)"
        print(f"report: {out / 'report.md'} and report.html, with the plots{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
