"""Reading and writing image files (Pillow), with errors that name the file.

Arrays are numpy, ``H x W x C`` (or ``H x W``), uint8 on disk and float32 in [0, 1] in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["read_gray", "read_rgb", "read_rgba", "resize_float", "write_png"]

_PIL_ERRORS = (OSError, ValueError, SyntaxError)  # what Pillow raises for missing / corrupt files


def _open(path: str | os.PathLike, what: str):
    from PIL import Image

    try:
        image = Image.open(path)
        return image
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r}: file not found") from None
    except _PIL_ERRORS as error:
        raise DataError(f"{what} {str(path)!r}: cannot read it ({type(error).__name__}: {error})") from None


def _load(image, path, what: str, mode: str) -> np.ndarray:
    try:
        with image:
            return np.asarray(image.convert(mode))
    except _PIL_ERRORS as error:
        raise DataError(f"{what} {str(path)!r}: cannot decode it ({type(error).__name__}: {error})") from None


def read_rgba(path: str | os.PathLike, what: str = "foreground") -> tuple[np.ndarray, np.ndarray]:
    """A cut-out with straight (not premultiplied) alpha: ``(color H x W x 3, alpha H x W)``, float32.

    An image without an alpha channel gets alpha 1 everywhere.
    """
    pixels = _load(_open(path, what), path, what, "RGBA").astype(np.float32) / 255.0
    return np.ascontiguousarray(pixels[..., :3]), np.ascontiguousarray(pixels[..., 3])


def read_rgb(path: str | os.PathLike, what: str = "image", min_side: int | None = None) -> np.ndarray:
    """An RGB image as uint8 ``H x W x 3``.

    With ``min_side``, a large image is shrunk on decode (JPEG DCT scaling by 1/2, 1/4, 1/8) and then
    resized so that its short side is ``min_side`` (never enlarged): cheap random crops of big
    photographs.
    """
    image = _open(path, what)
    if min_side is not None:
        from PIL import Image

        short = min(image.size)
        if image.format == "JPEG" and short > min_side:
            reduce = 1
            while short // (reduce * 2) >= min_side and reduce < 8:
                reduce *= 2
            image.draft("RGB", (image.width // reduce, image.height // reduce))
        pixels = _load(image, path, what, "RGB")
        short = min(pixels.shape[:2])
        if short > min_side:
            h, w = pixels.shape[:2]
            size = (max(1, round(w * min_side / short)), max(1, round(h * min_side / short)))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
        return pixels
    return _load(image, path, what, "RGB")


def read_gray(path: str | os.PathLike, what: str = "alpha") -> np.ndarray:
    """A single-channel image (alpha matte, trimap) as uint8 ``H x W``.

    A colour file gives its first channel (mattes are often saved as RGB with equal channels, and the
    DIM evaluation reads channel 1); a 16-bit file is scaled to 8 bits.
    """
    image = _open(path, what)
    if image.mode in ("L", "1"):
        return _load(image, path, what, "L")
    if image.mode.startswith("I"):  # 16-bit grayscale PNG
        with image:
            try:
                pixels = np.asarray(image).astype(np.float64)
            except _PIL_ERRORS as error:
                raise DataError(f"{what} {str(path)!r}: cannot decode it ({type(error).__name__}: {error})") from None
        return np.clip(np.rint(pixels / 257.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(_load(image, path, what, "RGB")[..., 0])


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write a uint8 ``H x W`` or ``H x W x 3`` array as PNG (parent folders are created)."""
    from PIL import Image

    if pixels.dtype != np.uint8:
        raise ValueError(f"argument `pixels`: expected uint8, got {pixels.dtype}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG")


def resize_float(channels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of a float32 ``H x W x C`` array to ``size = (height, width)``, per channel."""
    from PIL import Image

    height, width = size
    out = np.empty((height, width, channels.shape[2]), np.float32)
    for c in range(channels.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(channels[..., c], dtype=np.float32))
        out[..., c] = np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS))
    return out
