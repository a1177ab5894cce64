"""Fetch the real matting data: Debian packages downloaded and unpacked into a cache directory.

The foregrounds are the photographic Tux Paint stamps (real cut-outs with hand-made alpha, GPL-2),
the backgrounds real photographs from wallpaper and template packages.  ``fetch`` runs
``apt-get download`` (no root needed, nothing installed into the system) and ``dpkg-deb -x`` into
``ROOT/root``, then checks that every file of the shipped lists (``lists/*.txt``) is there and
readable.  It is idempotent: a package whose ``.deb`` is in ``ROOT/debs`` is not downloaded again,
one unpacked before is not unpacked again (a marker in ``ROOT/.unpacked`` is written after a
complete unpack, and downloads go through a temporary folder, so an interrupted run is redone).

``ROOT`` is, in order: the ``root`` argument (``--root``), the ``RESAMPLERS_DATA`` environment
variable, ``$XDG_CACHE_HOME/resamplers/data``, ``~/.cache/resamplers/data``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import DataError

__all__ = [
    "ENV_ROOT",
    "PACKAGES",
    "FetchReport",
    "check_files",
    "default_root",
    "fetch",
    "listed_files",
    "resolve_root",
]

ENV_ROOT = "RESAMPLERS_DATA"

# Foregrounds: tuxpaint-stamps-default.  Backgrounds: the other five (see lists/backgrounds.txt).
PACKAGES: tuple[str, ...] = (
    "tuxpaint-stamps-default",
    "tuxpaint-data",
    "mate-backgrounds",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "plasma-workspace-wallpapers",
)

NO_APT = (
    "`{tool}` was not found: fetching the real data needs a Debian or Ubuntu system with apt.  "
    "Instead, use the synthetic source, which needs no download (`resamplers data testset --source "
    "synthetic`), or a matting benchmark you have in the Composition-1k folder layout (`--source "
    "folder:PATH`); or run the fetch on a Debian machine and copy its data directory here "
    "(point --root or ${env} at it)."
)

# progress(stage, done, total, item): stage is "download", "unpack" or "check"
Progress = Callable[[str, int, int, str], None]


def default_root() -> Path:
    """``$RESAMPLERS_DATA``, else ``$XDG_CACHE_HOME/resamplers/data``, else ``~/.cache/resamplers/data``."""
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "resamplers" / "data"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else :func:`default_root`."""
    return Path(root).expanduser() if root is not None else default_root()


def listed_files(kind: str) -> list[str]:
    """The shipped list of ``"foregrounds"`` or ``"backgrounds"``: paths relative to ``ROOT/root``."""
    if kind not in ("foregrounds", "backgrounds"):
        raise ValueError(f"argument `kind`: expected 'foregrounds' or 'backgrounds', got {kind!r}")
    text = resources.files(__package__).joinpath("lists", f"{kind}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@dataclass
class FetchReport:
    """What :func:`fetch` did, and which listed files are missing or unreadable (by name)."""

    root: Path
    downloaded: list[str] = field(default_factory=list)
    already_downloaded: list[str] = field(default_factory=list)
    unpacked: list[str] = field(default_factory=list)
    already_unpacked: list[str] = field(default_factory=list)
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unreadable

    def problems(self) -> str:
        lines = [f"missing: {path}" for path in self.missing]
        lines += [f"unreadable: {path} ({reason})" for path, reason in self.unreadable]
        return "\n".join(lines)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DataError(NO_APT.format(tool=name, env=ENV_ROOT))
    return path


def _run(command: Sequence[str], cwd: Path | None = None) -> None:
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        hint = ""
        if command[1:2] == ["download"]:
            hint = (
                " If apt does not know the package, update its lists (`apt-get update`, as root) and retry;"
                " without apt, use the synthetic source or the folder loader."
            )
        raise DataError(f"`{' '.join(command)}` failed (exit {result.returncode}): {tail}.{hint}")


def _deb_for(debs: Path, package: str) -> Path | None:
    found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1] if found else None


def _download(apt_get: str, debs: Path, package: str) -> Path:
    # Into a temporary folder first, so that a killed download leaves no partial .deb behind.
    with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as tmp:
        _run([apt_get, "download", package], cwd=Path(tmp))
        got = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not got:
            raise DataError(f"`apt-get download {package}` produced no {package}_*.deb file")
        target = debs / got[-1].name
        os.replace(got[-1], target)
    return target


def _unpack(dpkg_deb: str, deb: Path, tree: Path, drop_sounds: bool) -> None:
    _run([dpkg_deb, "-x", str(deb), str(tree)])
    if drop_sounds:  # the stamps' spoken descriptions: ~190 MB that nothing here uses
        for sound in (tree / "usr" / "share" / "tuxpaint").rglob("*.ogg"):
            sound.unlink()


def _check_one(path: Path) -> str | None:
    """``None`` if ``path`` decodes as an image, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.format == "JPEG":  # decoding at 1/8 scale still reads every block
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except (OSError, ValueError, SyntaxError) as error:  # PIL raises these for corrupt files
        return f"{type(error).__name__}: {error}"
    return None


def check_files(
    root: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> tuple[int, list[str], list[tuple[str, str]]]:
    """Check every listed file under ``ROOT/root``; returns ``(checked, missing, unreadable)``."""
    tree = resolve_root(root) / "root"
    paths = listed_files("foregrounds") + listed_files("backgrounds")
    missing, unreadable = [], []
    for done, relative in enumerate(paths):
        path = tree / relative
        if not path.is_file():
            missing.append(relative)
        elif (reason := _check_one(path)) is not None:
            unreadable.append((relative, reason))
        if progress:
            progress("check", done + 1, len(paths), relative)
    return len(paths), missing, unreadable


def fetch(
    root: str | os.PathLike | None = None,
    *,
    packages: Sequence[str] = PACKAGES,
    drop_sounds: bool = True,
    progress: Progress | None = None,
) -> FetchReport:
    """Download and unpack the data packages into ``root`` (see the module docstring), then check them.

    Args:
        root: the data directory (default: :func:`default_root`).
        packages: the Debian packages to fetch.
        drop_sounds: delete the Tux Paint ``.ogg`` files after unpacking (saves ~190 MB).
        progress: called as ``progress(stage, done, total, item)``.

    Returns:
        A :class:`FetchReport`; ``report.ok`` is False when a listed file is missing or unreadable.

    Raises:
        DataError: apt-get or dpkg-deb is missing (the message says what to do instead), or one of
            them fails (the message has its output).
    """
    root = resolve_root(root)
    apt_get, dpkg_deb = _tool("apt-get"), _tool("dpkg-deb")
    debs, tree, marks = root / "debs", root / "root", root / ".unpacked"
    for folder in (debs, tree, marks):
        folder.mkdir(parents=True, exist_ok=True)
    report = FetchReport(root=root)
    for done, package in enumerate(packages):
        if _deb_for(debs, package) is not None:
            report.already_downloaded.append(package)
        else:
            _download(apt_get, debs, package)
            report.downloaded.append(package)
        if progress:
            progress("download", done + 1, len(packages), package)
    for done, package in enumerate(packages):
        deb = _deb_for(debs, package)
        mark = marks / f"{deb.name}.done"
        if mark.exists():
            report.already_unpacked.append(package)
        else:
            _unpack(dpkg_deb, deb, tree, drop_sounds)
            mark.write_text(f"{deb.name}\n")
            report.unpacked.append(package)
        if progress:
            progress("unpack", done + 1, len(packages), package)
    report.checked, report.missing, report.unreadable = check_files(root, progress)
    return report
