"""Small generated data for the data tests: a tiny synthetic source, a fake Debian tree, fake apt tools."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np

from resamplers.data import SyntheticSource, listed_files


def tiny_synthetic(**overrides) -> SyntheticSource:
    options = dict(foregrounds=12, backgrounds=16, foreground_size=40, background_size=64)
    options.update(overrides)
    return SyntheticSource(**options)


def write_image(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_fake_tree(tree: Path) -> None:
    """Every listed foreground (a 24 x 20 RGBA disc) and background (a 48 x 40 RGB JPEG) under ``tree``."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:20, :24]
    disc = np.clip((7.5 - np.hypot(yy - 10, xx - 12)) * 128, 0, 255).astype(np.uint8)
    for relative in listed_files("foregrounds"):
        rgba = np.concatenate([rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), disc[..., None]], axis=-1)
        write_image(tree / relative, rgba)
    for relative in listed_files("backgrounds"):
        write_image(tree / relative, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    sound = tree / "usr/share/tuxpaint/stamps/animals/birds/crow.ogg"
    sound.write_bytes(b"OggS")


FAKE_APT_GET = """#!{python}
# fake apt-get: `apt-get download PKG` writes PKG_1.0_all.deb into the working directory
import os, sys
log = open(os.environ["FAKE_LOG"], "a")
assert sys.argv[1] == "download", sys.argv
package = sys.argv[2]
log.write(f"download {{package}}\\n")
if package == os.environ.get("FAKE_FAIL"):
    sys.stderr.write(f"E: Unable to locate package {{package}}\\n")
    sys.exit(100)
open(f"{{package}}_1.0_all.deb", "w").write(package)
"""

FAKE_DPKG_DEB = """#!{python}
# fake dpkg-deb: `dpkg-deb -x DEB DIR` copies the fake tree into DIR
import os, shutil, sys
assert sys.argv[1] == "-x", sys.argv
open(os.environ["FAKE_LOG"], "a").write(f"unpack {{os.path.basename(sys.argv[2])}}\\n")
shutil.copytree(os.environ["FAKE_TREE"], sys.argv[3], dirs_exist_ok=True)
"""


def install_fake_apt(bin_dir: Path) -> None:
    """Write executable fake ``apt-get`` and ``dpkg-deb`` (Python scripts) into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("apt-get", FAKE_APT_GET), ("dpkg-deb", FAKE_DPKG_DEB)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


__all__ = ["install_fake_apt", "log_lines", "tiny_synthetic", "write_fake_tree", "write_image"]
