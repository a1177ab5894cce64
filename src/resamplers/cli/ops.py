"""List the registered operators (the README's operator table is this command's output)."""

from __future__ import annotations

import argparse

from ..bench.runner import REGISTRIES, build_operator
from ..complexity import count_parameters
from ..console import markdown_table, print_table

HEADERS = ["kind", "name", "parameters at C=256, scale 2", "summary"]


def operator_rows(channels: int = 256, scale_factor: int = 2) -> list[list[str]]:
    """One row per registered operator, with its parameter count at ``channels``."""
    rows = []
    for kind, registry in REGISTRIES.items():
        for entry in registry:
            module = build_operator(kind, entry.name, channels, scale_factor)
            rows.append([kind, f"`{entry.name}`", f"{count_parameters(module):,}", entry.summary])
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (as in the README)")


def run(args: argparse.Namespace) -> int:
    rows = operator_rows()
    if args.markdown:
        print(markdown_table(HEADERS, rows))
    else:
        print_table("Registered operators", HEADERS, [[c.strip("`") for c in row] for row in rows])
    return 0
