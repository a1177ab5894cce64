"""Matting data: fetch the real data (Debian packages), write the fixed test set, show what is there.

resamplers data fetch [--root DIR]                  download and unpack, then check every file
resamplers data testset [--source real|synthetic|folder:PATH] [--size 256] [--seed 0] [--out DIR]
resamplers data info [--root DIR]                    data root, fetched or not, split sizes, segmentation classes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..console import print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    root_help = "data directory (default: $RESAMPLERS_DATA, else $XDG_CACHE_HOME or ~/.cache, /resamplers/data)"

    fetch = actions.add_parser("fetch", help="download and unpack the real foregrounds and backgrounds")
    fetch.add_argument("--root", type=Path, default=None, help=root_help)
    fetch.add_argument("--keep-sounds", action="store_true", help="keep the Tux Paint .ogg files (~190 MB)")

    testset = actions.add_parser("testset", help="write the fixed test set (reused when it exists)")
    testset.add_argument("--source", default="real", help="real, synthetic, or folder:PATH (fg/, alpha/, bg/)")
    testset.add_argument("--root", type=Path, default=None, help=root_help)
    testset.add_argument("--out", type=Path, default=None, help="test-set folder (default: ROOT/testsets/...)")
    testset.add_argument("--size", type=int, default=256, help="image side (default 256)")
    testset.add_argument("--seed", type=int, default=0)
    testset.add_argument("--per-foreground", type=int, default=5, help="backgrounds per test foreground")
    testset.add_argument(
        "--part",
        default=None,
        choices=["test", "train", "all"],
        help="source part (default: test; all for folder sources)",
    )
    testset.add_argument("--trimap-radius", type=float, default=None, help="default: 7 at 256, proportional")
    testset.add_argument("--verify", action="store_true", help="check every pixel against the manifest")

    info = actions.add_parser("info", help="where the data is, and how the sources split")
    info.add_argument("--root", type=Path, default=None, help=root_help)


class _Bars:
    """One rich progress bar per stage; nothing when rich is missing."""

    def __init__(self) -> None:
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            self._progress = None
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[item]}"),
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> _Bars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, stage: str, done: int, total: int, item: str) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total, item="")
        self._progress.update(self._tasks[stage], completed=done, item=item[-40:])


def _fetch(args: argparse.Namespace) -> int:
    from ..data import DataError, fetch

    started = time.perf_counter()
    try:
        with _Bars() as bars:
            report = fetch(args.root, drop_sounds=not args.keep_sounds, progress=bars)
    except DataError as error:
        print(f"resamplers data fetch: error: {error}", file=sys.stderr)
        return 1
    print_table(
        f"resamplers data fetch: {report.root} ({time.perf_counter() - started:.1f} s)",
        ["step", "done", "already there"],
        [
            ["download", ", ".join(report.downloaded) or "-", str(len(report.already_downloaded))],
            ["unpack", ", ".join(report.unpacked) or "-", str(len(report.already_unpacked))],
            ["check", f"{report.checked} files", f"{len(report.missing)} missing, {len(report.unreadable)} unreadable"],
        ],
    )
    if not report.ok:
        print(report.problems())
        return 1
    print("all listed foregrounds and backgrounds are present and readable")
    return 0


def _testset(args: argparse.Namespace) -> int:
    from ..data import DataError, MattingTestSet, default_test_set_dir, open_source, write_test_set

    for name in ("size", "per_foreground"):
        if getattr(args, name) < 1:
            raise ValueError(f"argument `--{name.replace('_', '-')}`: expected an int >= 1, got {getattr(args, name)}")
    part = args.part or ("all" if args.source.startswith("folder:") else "test")
    started = time.perf_counter()
    try:
        source = open_source(args.source, args.root)
        out = args.out or default_test_set_dir(source, args.size, args.seed, data_root=args.root)
        with _Bars() as bars:
            root = write_test_set(
                source,
                out,
                size=args.size,
                seed=args.seed,
                backgrounds_per_foreground=args.per_foreground,
                part=part,
                trimap_radius=args.trimap_radius,
                progress=lambda done, total, name: bars("compositing", done, total, name),
            )
        test_set = MattingTestSet(root)
        bad = test_set.verify() if args.verify else []
    except DataError as error:
        print(f"resamplers data testset: error: {error}", file=sys.stderr)
        return 1
    thin = sum(entry["thin"] for entry in test_set.entries)
    print(
        f"test set: {root}\n{len(test_set)} images of {args.size} x {args.size} ({thin} with procedural soft "
        f"layers), trimap radius {test_set.parameters['trimap_radius']}, {time.perf_counter() - started:.1f} s"
    )
    if args.verify:
        print("pixels match the manifest" if not bad else "pixels differ from the manifest: " + ", ".join(bad))
    return 1 if bad else 0


def _info(args: argparse.Namespace) -> int:
    from ..data import SEGMENTATION_CLASSES, DataError, DebianSource, SyntheticSource, check_files, class_counts
    from ..data.fetch import resolve_root

    root = resolve_root(args.root)
    rows = []
    sources = {"synthetic": SyntheticSource()}
    try:
        real = DebianSource(root)
        checked, missing, unreadable = check_files(root)
        state = f"fetched; {checked - len(missing) - len(unreadable)}/{checked} listed files readable"
        rows.append(["real", state, *_split_counts(real)])
        sources = {"real": real, **sources}
    except DataError:
        rows.append(["real", "not fetched (resamplers data fetch)", "-", "-"])
    rows.append(["synthetic", "procedural, always available", *_split_counts(SyntheticSource())])
    print_table(
        f"resamplers data: root {root}", ["source", "state", "foregrounds train/test", "backgrounds train/test"], rows
    )
    counts = {name: class_counts(source) for name, source in sources.items()}
    print_table(
        "segmentation classes: foregrounds train/test",
        ["class", *counts],
        [[c, *(f"{counts[s][c]['train']}/{counts[s][c]['test']}" for s in counts)] for c in SEGMENTATION_CLASSES[1:]],
    )
    return 0


def _split_counts(source) -> list[str]:
    return [
        f"{len(source.foregrounds('train'))}/{len(source.foregrounds('test'))}",
        f"{len(source.backgrounds('train'))}/{len(source.backgrounds('test'))}",
    ]


def run(args: argparse.Namespace) -> int:
    return {"fetch": _fetch, "testset": _testset, "info": _info}[args.action](args)
