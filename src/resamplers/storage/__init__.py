"""Files the application writes and reads back: checkpoints and JSON records, both atomic."""

from .checkpoint import (
    CheckpointError,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
    save_model,
)
from .files import UnreadableFileError, read_json, write_json_atomic, write_text_atomic

__all__ = [
    "CheckpointError",
    "capture_rng",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "restore_rng",
    "save_checkpoint",
    "save_model",
    "UnreadableFileError",
    "read_json",
    "write_json_atomic",
    "write_text_atomic",
]
