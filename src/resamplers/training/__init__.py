"""Training of the matting network: loss, schedule, checkpoints, the resumable loop."""
from ..storage import CheckpointError, latest_checkpoint, load_checkpoint
from .config import TrainConfig, load_config_file
from .losses import matting_loss
from .loop import LoopSettings, TrainResult, fit
from .matting import train

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "LoopSettings",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_config_file",
    "matting_loss",
    "train",
]
