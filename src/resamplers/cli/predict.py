"""Predict an alpha matte for one image and trimap with a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint directory, model.safetensors or run directory")
    parser.add_argument("image", type=Path, help="RGB image (any size)")
    parser.add_argument("trimap", type=Path, help="trimap of the same size with values 0/128/255")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the alpha PNG")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..data.images import read_gray, read_rgb, write_png
    from ..models import load_matting_model, predict_alpha

    model = load_matting_model(args.checkpoint)
    image = torch.from_numpy(read_rgb(args.image, "image").transpose(2, 0, 1).astype(np.float32) / 255.0)
    trimap = torch.from_numpy(read_gray(args.trimap, "trimap").copy())
    alpha = predict_alpha(model, image, trimap)
    write_png(args.output, (alpha.numpy() * 255.0).round().astype(np.uint8))
    print(f"wrote {args.output} ({alpha.shape[1]} x {alpha.shape[0]})")
    return 0
