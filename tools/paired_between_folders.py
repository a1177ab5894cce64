"""Paired difference of each operator between two comparison folders of one task.

Two `resamplers compare` results folders of the same task and test set (for example the
same preset trained in float32 and under `--amp bf16 --channels-last`): for every operator
in both, the mean of the primary metric per test image in the second folder minus the
first, over the seeds both have, with a 95% interval from the paired bootstrap of
`resamplers.compare.stats` (test images and seeds resampled).  An interval that holds zero
says the two folders' settings give results that this test set cannot tell apart.

    python tools/paired_between_folders.py results/q-f32 results/q-fast [--metric sad]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from resamplers.compare.stats import paired_difference
from resamplers.compare.tasks import get_task


def _scores(folder: Path, task: str, op: str, metric: str, seeds: list[int]) -> tuple[list[str], np.ndarray]:
    rows = []
    names: list[str] = []
    for seed in seeds:
        per_image = json.loads((folder / "runs" / task / op / f"seed-{seed}" / "per_image.json").read_text())
        names = [row["name"] for row in per_image]
        rows.append([float(row[metric]) for row in per_image])
    return names, np.asarray(rows)


def _seeds(folder: Path, task: str, op: str) -> set[int]:
    runs = (folder / "runs" / task / op).glob("seed-*/per_image.json")
    return {int(path.parent.name.split("-")[1]) for path in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--metric", default=None, help="metric name (default: the task's primary)")
    args = parser.parse_args()
    specs = [json.loads((folder / "compare.json").read_text()) for folder in (args.first, args.second)]
    if specs[0]["task"] != specs[1]["task"]:
        raise SystemExit(f"the folders hold different tasks: {specs[0]['task']!r} and {specs[1]['task']!r}")
    task = get_task(specs[0]["task"])
    metric = args.metric or task.primary
    known = {m.name: m for m in task.metrics}
    if metric not in known:
        raise SystemExit(f"argument `--metric`: expected one of {sorted(known)}, got {metric!r}")
    print(f"{task.name}: {metric}, {args.second} minus {args.first}; 95% paired bootstrap intervals")
    print(f"| operator | seeds x images | {args.first.name} | {args.second.name} | difference (95% CI) |")
    print("|---|---|---|---|---|")
    for op in [op for op in specs[0]["ops"] if op in specs[1]["ops"]]:
        seeds = sorted(_seeds(args.first, task.name, op) & _seeds(args.second, task.name, op))
        if not seeds:
            continue
        names_a, a = _scores(args.first, task.name, op, metric, seeds)
        names_b, b = _scores(args.second, task.name, op, metric, seeds)
        if names_a != names_b:
            raise SystemExit(f"{op}: the folders scored different test images")
        diff = paired_difference(b, a, higher_is_better=known[metric].higher_is_better)
        print(
            f"| `{op}` | {len(seeds)} x {a.shape[1]} | {a.mean():.3f} | {b.mean():.3f} | "
            f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] |"
        )


if __name__ == "__main__":
    main()
