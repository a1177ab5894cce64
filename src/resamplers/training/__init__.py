"""Training of the matting network: loss, schedule, checkpoints, the resumable loop."""

from ..storage import CheckpointError, latest_checkpoint, load_checkpoint
from .config import DataConfig, TrainConfig, load_config_file
from .loop import LoopConfig, TrainingDiverged, TrainingTask, TrainResult, fit
from .losses import matting_loss
from .matting import resumed_config, train

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "LoopConfig",
    "DataConfig",
    "TrainingTask",
    "TrainingDiverged",
    "resumed_config",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "load_config_file",
    "matting_loss",
    "train",
]
