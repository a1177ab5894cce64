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
    from ..data.io import read_rgb, read_trimap, write_alpha
    from ..models import load_matting_model, predict_alpha

    model = load_matting_model(args.checkpoint)
    image = read_rgb(args.image)
    trimap = read_trimap(args.trimap)
    alpha = predict_alpha(model, image, trimap)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_alpha(args.output, alpha)
    print(f"wrote {args.output} ({alpha.shape[1]} x {alpha.shape[0]})")
    return 0
