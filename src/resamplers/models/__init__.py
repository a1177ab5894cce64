"""Networks built from registry names (``create_matting_model``)."""

from .inference import predict_alpha
from .matting import (
    IndexNetMatting,
    MattingConfig,
    convert_official_state_dict,
    create_matting_model,
    load_matting_model,
    load_official_indexnet,
    matting_inputs,
)

__all__ = [
    "IndexNetMatting",
    "MattingConfig",
    "convert_official_state_dict",
    "create_matting_model",
    "load_matting_model",
    "load_official_indexnet",
    "matting_inputs",
    "predict_alpha",
]
