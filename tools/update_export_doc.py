"""Rewrite the TensorRT tables of docs/export.md from fresh exports of every registered operator.

Each operator is exported as `resamplers export NAME --dynamic --format onnx` would (its
registry example keywords, onnxslim on), and the written graph is read against TensorRT's
operator support list (resamplers.export.tensorrt).  Takes minutes (the dynamo exporter);
`--check` exits 1 when the page is stale; `--missing` exports only the operators the page
has no row for and keeps the others' rows as they are (after adding an operator).  tests/test_export.py checks the same rows, one
operator at a time, in its slow test.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import torch

from resamplers.export import example_keywords, export_operator
from resamplers.export.pipeline import REGISTRIES
from resamplers.export.tensorrt import render_tensorrt_tables, tensorrt_row

PAGE = Path(__file__).resolve().parents[1] / "docs" / "export.md"
START, END = "<!-- tensorrt-tables:start -->", "<!-- tensorrt-tables:end -->"


def names() -> list[str]:
    """Every registered operator, in the order of the shared test matrix."""
    return [f"{kind}:{name}" for kind, registry in REGISTRIES.items() for name in registry.names()]


def row(name: str, folder: Path) -> tuple[list[str], list[str]]:
    keywords = example_keywords(name)
    channels = keywords.pop("channels")
    torch.manual_seed(0)
    path = folder / f"{name.replace(':', '-')}.onnx"
    export_operator(name, path, format="onnx", channels=channels, options=keywords, dynamic=True)
    return tensorrt_row(path)


def page_rows(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """The per-operator rows the page holds now (its first table)."""
    rows = {}
    for line in text.split(START, 1)[-1].split(END, 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and ":" in cells[0]:
            ops = [op.strip() for op in cells[1].split(",") if op.strip()]
            findings = [] if cells[2] == "supported" else [f.strip() for f in cells[2].split(";")]
            rows[cells[0].strip("`")] = (ops, findings)
    return rows


def render(text: str, rows: dict[str, tuple[list[str], list[str]]]) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE.name} has no {START} ... {END} block")
    return pattern.sub(lambda _: f"{START}\n{render_tensorrt_tables(rows)}\n{END}", text)


def main() -> int:
    torch.set_num_threads(1)
    text = PAGE.read_text()
    kept = page_rows(text) if "--missing" in sys.argv else {}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names():
            if name in kept:
                rows[name] = kept[name]
                continue
            rows[name] = row(name, Path(tmp))
            print(f"{name}: {len(rows[name][0])} op types, {'; '.join(rows[name][1]) or 'supported'}", flush=True)
    new = render(text, rows)
    if "--check" in sys.argv:
        return 0 if new == text else 1
    PAGE.write_text(new)
    print(f"{PAGE} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
