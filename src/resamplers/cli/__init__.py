"""The ``resamplers`` command.  Each sub-command lives in its own module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..data.errors import DataError
from . import bench, compare, data, evaluate, export, ops, predict, profile, report, train

# name -> module with add_arguments(parser) and run(args) -> int
COMMANDS = {
    "bench": bench,
    "ops": ops,
    "data": data,
    "train": train,
    "eval": evaluate,
    "predict": predict,
    "compare": compare,
    "report": report,
    "export": export,
    "profile": profile,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resamplers",
        description="Pooling and upsampling operators for dense prediction: benchmark, compare, train.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        module.add_arguments(sub.add_parser(name, help=doc, description=module.__doc__))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command].run(args) or 0)
    except (ValueError, FileNotFoundError, DataError) as error:
        print(f"resamplers {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
