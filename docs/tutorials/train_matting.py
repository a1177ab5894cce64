"""Train the matting network around a pair with `resamplers train`, resume it, evaluate it.

    python docs/tutorials/train_matting.py --smoke                      # a few steps, seconds
    python docs/tutorials/train_matting.py --pair a2u --out runs/a2u    # a longer run

The data is the synthetic source (procedural foregrounds and alpha, no download); use
``--data real`` after ``resamplers data fetch`` for the real composites.  Each step below
is one ``resamplers`` command, printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from resamplers.cli import main as main_cli


def resamplers(*args: str) -> None:
    """Run ``resamplers ARGS`` (the command's own entry point, in this process); stop on failure."""
    print("$ resamplers", " ".join(args), flush=True)
    code = main_cli(list(args))
    if code != 0:
        raise SystemExit(f"resamplers {args[0]} failed with exit status {code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="a2u", help="a registered pair: a2u, indexnet_m2o, carafe, dysample, ...")
    parser.add_argument("--data", default="synthetic", help="synthetic | real")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--smoke", action="store_true", help="a tiny network, 4 + 2 steps, 64 px (seconds)")
    args = parser.parse_args(argv)

    # smoke: a quarter-width network on 64 px crops; otherwise the README's quick-run scale.
    steps, size = (4, 64) if args.smoke else (300, 128)
    network = ["--width", "0.25" if args.smoke else "0.5", "--crop", str(size)]
    with tempfile.TemporaryDirectory() as tmp:
        run = args.out or Path(tmp) / "run"
        common = [*network, "--batch-size", "2" if args.smoke else "8", "--workers", "0", "--no-progress"]
        # 1. Train.  leaky_relu: the head that cannot die when trained from scratch (see the README).
        resamplers(
            *("train", "--out", str(run), "--pair", args.pair, "--data", args.data),
            *("--steps", str(steps), "--checkpoint-every", str(max(steps // 2, 1)), "--log-every", "1"),
            *("--head-activation", "leaky_relu", *common),
        )
        # 2. Resume: every setting comes from the run itself; only --steps (and threads, workers) may change.
        resamplers("train", "--out", str(run), "--resume", "--steps", str(steps + steps // 2), "--no-progress")
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        print(f"trained {log[-1]['step']} steps; last logged loss {log[-1]['loss']:.4f}")
        # 3. A small fixed test set of the same source, then SAD / MSE / Grad / Conn on it.
        testset = Path(tmp) / "testset"
        resamplers(
            *("data", "testset", "--source", args.data, "--size", str(size), "--per-foreground", "1"),
            *("--out", str(testset)),
        )
        resamplers("eval", str(run), "--testset", str(testset), "--limit", "4" if args.smoke else "0")
        where = "" if args.out else " (a temporary folder, removed on exit: pass --out to keep the run)"
        print(f"evaluation: {run / 'eval'}: summary.json, per_image.csv, sheet.png{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
