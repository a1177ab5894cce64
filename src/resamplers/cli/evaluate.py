"""Evaluate a matting checkpoint: SAD/MSE/Grad/Conn on a test set, per-image CSV, best/worst sheet."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ..console import print_table

METRICS = ("sad", "mse", "grad", "conn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint directory, model.safetensors or run directory")
    parser.add_argument(
        "--testset", type=Path, default=None, help="a test-set folder (default: the source's fixed set)"
    )
    parser.add_argument("--source", default="real", help="real | synthetic | folder:PATH (when --testset is not given)")
    parser.add_argument("--root", type=Path, default=None, help="data cache of `resamplers data fetch`")
    parser.add_argument("--size", type=int, default=256, help="test image side (when --testset is not given)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (0: all)")
    parser.add_argument("--closed-form", action="store_true", help="also evaluate closed-form matting (Levin et al.)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: CHECKPOINT/eval)")


def _test_set(args: argparse.Namespace):
    from ..data import MattingTestSet, open_source, write_test_set

    if args.testset is not None:
        return MattingTestSet(args.testset)
    source = open_source(args.source, args.root)
    part = "all" if args.source.startswith("folder:") else "test"
    return MattingTestSet(write_test_set(source, size=args.size, part=part))


def _summary(rows: list[dict], name: str) -> list[list[str]]:
    out = []
    for subset, keep in (("all", lambda r: True), ("thin", lambda r: r["thin"])):
        chosen = [r for r in rows if keep(r)]
        if chosen:
            out.append([name, subset, str(len(chosen))] + [f"{np.mean([r[m] for r in chosen]):.4f}" for m in METRICS])
    return out


def _sheet(path: Path, samples: dict, rows: list[dict], predictions: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(rows, key=lambda r: r["sad"])
    best = min(3, (len(ranked) + 1) // 2)
    chosen = [("best", r) for r in ranked[:best]] + [("worst", r) for r in ranked[best:][-3:][::-1]]
    columns = ["image", "trimap", "prediction", "ground truth", "|error|"]
    fig, axes = plt.subplots(len(chosen), len(columns), figsize=(2.3 * len(columns), 2.3 * len(chosen)), squeeze=False)
    for r, (label, row) in enumerate(chosen):
        sample, pred = samples[row["name"]], predictions[row["name"]]
        alpha = sample["alpha"][0].numpy()
        pictures = [
            sample["image"].permute(1, 2, 0).numpy(),
            sample["trimap"].numpy() / 255.0,
            pred,
            alpha,
            np.abs(pred - alpha),
        ]
        for c, picture in enumerate(pictures):
            ax = axes[r][c]
            ax.imshow(picture, cmap=None if picture.ndim == 3 else ("magma" if c == 4 else "gray"), vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{label}\n{row['name'][:18]}\nSAD {row['sad']:.3f}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from ..metrics import matting_metrics
    from ..models import load_matting_model, predict_alpha

    if args.limit < 0:
        raise ValueError(f"argument `--limit`: expected an int >= 0, got {args.limit}")
    model = load_matting_model(args.checkpoint)
    test = _test_set(args)
    count = len(test) if args.limit == 0 else min(args.limit, len(test))
    out = args.out or (args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    rows, reference, samples, predictions = [], [], {}, {}
    closed_form = None
    if args.closed_form:
        from ..metrics import closed_form_alpha as closed_form
    for index in _progress(range(count), "evaluating"):
        sample = test[index]
        pred = predict_alpha(model, sample["image"], sample["trimap"]).numpy()
        alpha, trimap = sample["alpha"][0].numpy(), sample["trimap"].numpy()
        rows.append({"name": sample["name"], "thin": bool(sample["thin"]), **matting_metrics(pred, alpha, trimap)})
        samples[sample["name"]], predictions[sample["name"]] = sample, pred
        if closed_form is not None:
            reference.append(
                {
                    "name": sample["name"],
                    "thin": bool(sample["thin"]),
                    **matting_metrics(closed_form(sample["image"], sample["trimap"]), alpha, trimap),
                }
            )
    with (out / "per_image.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["name", "thin", *METRICS])
        writer.writeheader()
        writer.writerows(rows)
    table = _summary(rows, "model") + (_summary(reference, "closed-form") if reference else [])
    print_table(
        f"matting evaluation on {test.root} ({count} images; SAD, Grad, Conn / 1000)",
        ["method", "subset", "images", "SAD", "MSE", "Grad", "Conn"],
        table,
    )
    (out / "summary.json").write_text(json.dumps({"rows": table, "checkpoint": str(args.checkpoint)}, indent=2))
    if rows:
        _sheet(out / "sheet.png", samples, rows, predictions)
    print(f"wrote {out / 'per_image.csv'}, {out / 'summary.json'} and {out / 'sheet.png'}")
    return 0


def _progress(items, label: str):
    try:
        from rich.progress import track
    except ImportError:
        return items
    return track(items, description=label, transient=True)
