"""``catviz runs RUN... --out curves.png``: the curves of training runs as one picture, without a
window (train loss, val mAP raw and EMA, each level's mAP, learning rate; runs overlaid).

Qt-free: the drawing is passed in by ``catviz.app`` (``qt_runs_plot.write_image``, the Runs
tab's own plots). Exit status: 0 written; 1 the picture could not be written; 2 usage error
(a folder that holds no run, named; an existing --out without --overwrite; another suffix
than .png/.jpg), before anything is drawn. A damaged ``log.jsonl`` line is reported on stderr
naming the file and line, and the rest is drawn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from catviz.train_cli.errors import ArgumentParser, output_path_problem

from .runs import NotARun, Run, open_run

SUFFIXES = (".png", ".jpg", ".jpeg")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="catviz runs",
        description="Write the curves of catviz-train runs as one picture: train loss, val mAP (raw and EMA when "
        "the run averages weights), each classifier level's mAP and the learning rate, several runs overlaid "
        "(one colour each). The app's Runs tab draws the same plots.",
        epilog="Exit status: 0 written; 1 the picture could not be written; 2 usage error (a folder that holds no "
        "run, an existing --out without --overwrite, a suffix other than .png/.jpg). Damaged log lines are "
        "reported, naming the file and line, and the rest is drawn.",
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (catviz-train --out)")
    parser.add_argument("--out", type=Path, required=True, help="picture to write (.png or .jpg)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists (else refused)")
    parser.add_argument("--size", default="1400x900", help="picture size, WIDTHxHEIGHT (default 1400x900)")
    return parser


def main(argv: list[str], draw: Callable[[list[Run], Path, tuple[int, int]], None]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out: Path = args.out
    problem = output_path_problem(out)  # a name too long, a missing or unwritable folder: before exists()
    if problem:
        parser.error(f"--out {str(out)[:80]}{'...' if len(str(out)) > 80 else ''}: {problem}")
    if out.suffix.lower() not in SUFFIXES:
        parser.error(f"--out {out}: write a {' or '.join(SUFFIXES[:2])} file")
    if out.exists() and not args.overwrite:
        parser.error(f"--out {out}: the file exists; pass --overwrite to replace it")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
        assert 200 <= width <= 10000 and 200 <= height <= 10000
    except (ValueError, AssertionError):
        parser.error(f"--size must be WIDTHxHEIGHT, each 200-10000 pixels, not {args.size!r}")
    runs = []
    for folder in args.runs:
        try:
            runs.append(open_run(folder))
        except NotARun as err:
            parser.error(str(err))
    for run in runs:
        for problem in run.problems:
            print(f"catviz runs: {problem}", file=sys.stderr)
        if not run.records:
            print(f"catviz runs: {run.folder}: no epoch logged yet; drawn empty", file=sys.stderr)
    try:
        draw(runs, out, (width, height))
    except OSError as err:
        print(f"catviz runs: cannot write {out} ({err.strerror or err})", file=sys.stderr)
        return 1
    for run in runs:
        print(f"{run.folder}: {len(run.records)} epoch(s), {run.status}")
    print(f"wrote {out}")
    return 0
