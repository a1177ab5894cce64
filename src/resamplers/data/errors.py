"""The one error type of the data package: what failed, and with which file."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(RuntimeError):
    """A data file is missing or unreadable, or the data cannot be fetched; the message names it."""
