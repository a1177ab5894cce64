"""Reading a results folder: the spec, the finished runs, the reference rows, and the
per-image scores the paired statistics rest on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..storage import read_json
from .stats import RatioScores, Scores
from .tasks.base import Task

__all__ = ["collect", "score_tables", "reference_tables", "image_names", "run_dir"]


def run_dir(out: Path, task: str, op: str, seed: int) -> Path:
    return Path(out) / "runs" / task / op / f"seed-{seed}"


def collect(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The comparison spec, every finished run's record, and the reference rows."""
    out = Path(out)
    spec_path = out / "compare.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"argument `RESULTS_DIR`: {out} has no compare.json (not a results folder)")
    spec = read_json(spec_path)
    records = []
    for path in sorted((out / "runs" / spec["task"]).glob("*/seed-*/result.json")):
        try:
            records.append(read_json(path))
        except (OSError, ValueError) as error:
            raise ValueError(f"argument `RESULTS_DIR`: unreadable run result {path}: {error}") from error
    reference_path = out / "shared" / spec["task"] / "reference.json"
    references = read_json(reference_path) if reference_path.is_file() else []
    return spec, records, references


def score_tables(out: Path, task: Task, records: list[dict[str, Any]]) -> tuple[dict[str, Scores], list[str]]:
    """Per operator, its primary metric as ``seeds x images`` from the runs' ``per_image.json``
    (operators whose runs lack the file, or scored other images, are left out), and the
    names of the images in column order."""
    by_op: dict[str, list[list[dict[str, Any]]]] = {}
    for record in sorted(records, key=lambda r: (r["op"], r["seed"])):
        path = run_dir(out, task.name, record["op"], record["seed"]) / "per_image.json"
        if "failed" not in record and path.is_file():
            by_op.setdefault(record["op"], []).append(read_json(path))
    if not by_op:
        return {}, []
    names = image_names(next(iter(by_op.values()))[0])
    tables = {
        op: primary_scores(task, runs) for op, runs in by_op.items() if all(image_names(run) == names for run in runs)
    }
    return tables, names


def primary_scores(task: Task, runs: list[list[dict[str, Any]]]) -> Scores:
    """The primary metric of ``runs`` (each a ``per_image.json``) as ``seeds x images``: a
    :class:`RatioScores` when every row holds the metric's additive parts
    (``<metric>_parts``: per-class numerators and denominators), else the per-image values."""
    per_image = np.array([[row[task.primary] for row in run] for run in runs], dtype=np.float64)
    key = f"{task.primary}_parts"
    if not all(key in row for run in runs for row in run):
        return per_image
    parts = np.array([[row[key] for row in run] for run in runs], dtype=np.float64)  # seeds x images x 2 x classes
    return RatioScores(100.0 * parts[:, :, 0], parts[:, :, 1], per_image)


def image_names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


def reference_tables(task: Task, references: list[dict[str, Any]], names: list[str]) -> dict[str, Scores]:
    """Per reference row with per-image scores on exactly ``names``, its primary metric as
    a ``1 x images`` table (keyed by the row's short label)."""
    tables = {}
    for ref in references:
        rows = ref.get("per_image")
        if rows and image_names(rows) == names:
            tables[ref.get("label", ref["name"])] = primary_scores(task, [rows])
    return tables
