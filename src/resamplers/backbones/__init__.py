"""Backbones built on the library's blocks (``create_block``): multi-resolution features."""

from .hrnet import HRNET_CONFIGS, HRNet, HRNetStage, hrnet_config

__all__ = ["HRNET_CONFIGS", "HRNet", "HRNetStage", "hrnet_config"]
