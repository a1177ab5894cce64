"""Training of the matting network: loss, schedule, checkpoints, the resumable loop."""
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from .config import TrainConfig, load_config_file
from .losses import matting_loss
from .trainer import TrainResult, train

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "latest_checkpoint",
    "load_checkpoint",
    "load_config_file",
    "matting_loss",
    "train",
]
