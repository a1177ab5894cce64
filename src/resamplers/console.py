"""Terminal output helpers: rich tables when rich is installed, plain text otherwise."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> None:
    """Print a table; ``width`` caps its columns (default: the terminal's, 160 in a pipe)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # the `cli` extra is not installed
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        return
    console = Console()
    if width is not None:
        console = Console(width=min(console.width, width) if console.is_terminal else width)
    elif not console.is_terminal:  # pipes and logs: do not squeeze the table into 80 columns
        console = Console(width=max(console.width, 160))
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
