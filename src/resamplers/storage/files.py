"""Files that a reader never sees half-written, and JSON that names the file it fails on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_text_atomic", "write_json_atomic", "read_json", "UnreadableFileError"]


class UnreadableFileError(ValueError):
    """A file exists but cannot be parsed; the message names the file and what was wrong."""


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` under a temporary name in the same folder, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=2))


def read_json(path: Path) -> Any:
    """Parse a JSON file; a malformed file raises :class:`UnreadableFileError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UnreadableFileError(f"{path} is not valid JSON ({error}); delete or repair it") from error
