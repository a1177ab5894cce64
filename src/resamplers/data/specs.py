"""Sources by name, as the command line gives them: ``real``, ``synthetic``, ``folder:PATH``."""

from __future__ import annotations

import os

from .folders import FolderSource
from .sources import DebianSource, Source
from .synthetic import SyntheticSource

__all__ = ["SOURCE_HELP", "open_source"]

SOURCE_HELP = (
    "real (the fetched Debian data), synthetic (procedural, no fetch), or folder:PATH "
    "(a benchmark folder with fg/, alpha/, bg/)"
)


def open_source(spec: str, root: str | os.PathLike | None = None) -> Source:
    """The source named by ``spec``; ``root`` is the data directory of the real source.

    Example:
        >>> open_source("synthetic").id.startswith("synthetic(")
        True
    """
    if spec in ("real", "debian"):
        return DebianSource(root)
    if spec == "synthetic":
        return SyntheticSource()
    if spec.startswith("folder:") and len(spec) > len("folder:"):
        return FolderSource(spec[len("folder:") :])
    raise ValueError(f"argument `--source`: expected {SOURCE_HELP}, got {spec!r}")
