"""Write the report of a results folder (merging the runs of every shard)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="the --out folder of resamplers compare")


def run(args: argparse.Namespace) -> int:
    from ..compare.report import write_report

    write_report(args.results_dir)
    return 0
