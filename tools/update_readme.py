"""Rewrite the operator table in README.md from the registry (`make readme`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from resamplers.cli.ops import HEADERS, operator_rows
from resamplers.console import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- operator-table:start -->", "<!-- operator-table:end -->"


def render(text: str) -> str:
    table = markdown_table(HEADERS, operator_rows())
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} block")
    return pattern.sub(f"{START}\n{table}\n{END}", text)


if __name__ == "__main__":
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)
    print("README.md operator table updated")
