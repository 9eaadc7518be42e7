"""``catviz runs RUN... --out curves.png``: the curves of training runs as one picture, without a
window (train loss, val mAP raw and EMA, each level's mAP, learning rate; runs overlaid;
``--band``: seeds of one model and recipe as their mean and a band).

``catviz runs RUN --maps-across-epochs IMG... --out maps.png``: the images' maps at each of the
run's snapshots as one figure, a row per epoch (:mod:`catviz.epoch_maps`, the Runs tab's
*Export maps across epochs…*).

Qt-free: the drawing is passed in by ``catviz.app`` (``qt_runs_plot.write_image``, the Runs
tab's own plots); torch is imported only for the maps. Exit status: 0 written; 1 the picture
could not be written (or a map failed); 2 usage error (a folder that holds no run, named; an
existing --out without --overwrite; another suffix than .png/.jpg; for the maps: a run without
snapshots, a missing image, a label or epoch the run lacks), before anything is drawn. A
damaged ``log.jsonl`` line is reported on stderr naming the file and line, and the rest is drawn.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from catviz.train_cli import snapshots as snapshot_files
from catviz.train_cli.errors import ArgumentParser, output_path_problem

from .methods import CAM, DEFAULT_DEPTH, DEPTH_TITLES, METHODS
from .render import COLORMAPS, DIVERGING
from .runs import (
    BAND_KINDS,
    MAX_MAP_EPOCHS,
    MAX_MAP_IMAGES,
    NotARun,
    Run,
    describe_labels,
    open_run,
    thin,
)

SUFFIXES = (".png", ".jpg", ".jpeg")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="catviz runs",
        description="Write the curves of catviz-train runs as one picture: train loss, val mAP (raw and EMA when "
        "the run averages weights), each classifier level's mAP and the learning rate, several runs overlaid "
        "(one colour each). The app's Runs tab draws the same plots.",
        epilog="With --maps-across-epochs IMG... (one RUN): the images' maps at each of the run's snapshots "
        "(catviz-train --snapshot-every K) as one figure, a row per epoch with its val mAP, as the Runs tab's "
        "'Export maps across epochs...' writes it. Exit status: 0 written; 1 the picture could not be written "
        "or a map failed; 2 usage error (a folder that holds no run, an existing --out without --overwrite, a "
        "suffix other than .png/.jpg; for maps: no snapshots, a missing image, a label or epoch the run lacks). "
        "Damaged log lines are reported, naming the file and line, and the rest is drawn.",
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (catviz-train --out)")
    parser.add_argument("--out", type=Path, required=True, help="picture to write (.png or .jpg)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists (else refused)")
    parser.add_argument("--size", default="1400x900", help="curves: picture size, WIDTHxHEIGHT (default 1400x900)")
    parser.add_argument("--band", choices=BAND_KINDS,
                        help="curves: draw runs of one model and recipe (the same other settings) that differ in "
                        "their seed as their mean and a band, min-max or the mean ±1 standard deviation (n - 1), over "
                        "the epochs all of them have; runs without a model or seed in their config.yaml, or with no "
                        "other seed, are drawn on their own (said on stdout)")
    maps = parser.add_argument_group("maps across epochs (instead of the curves; one RUN)")
    maps.add_argument("--maps-across-epochs", nargs="+", type=Path, metavar="IMG",
                      help=f"images (at most {MAX_MAP_IMAGES}): a column each, a row per snapshot epoch")
    maps.add_argument("--label", help="the label every image's maps explain (default: each image's top label at "
                      "the last epoch drawn)")
    maps.add_argument("--epochs", help=f"the snapshot epochs to draw, e.g. 1,2,4 (default: all; more than "
                      f"{MAX_MAP_EPOCHS} are thinned evenly, the first and last kept)")
    maps.add_argument("--method", choices=METHODS, help="map method (default: the complete CAM, in logit units)")
    maps.add_argument("--depth", choices=DEPTH_TITLES,
                      help=f"the complete CAM's depth (default {DEFAULT_DEPTH}; tokens is the cheapest)")
    maps.add_argument("--level", help="combined (default) or a level name of the model, as the CAM tab offers")
    maps.add_argument("--colormap", choices=COLORMAPS, help="colour map (default: diverging, centred on zero)")
    maps.add_argument("--scale", choices=("shared", "each"),
                      help="shared: one zero-centred scale per image across the epochs (default); each: one per map")
    maps.add_argument("--opacity", type=float, help="the most opaque a map gets, in (0, 1] (default 0.75)")
    maps.add_argument("--device", help="auto (default), cpu, cuda ...")
    return parser


#: The maps' flags and their defaults (None in the parser: given or not is told apart).
MAP_DEFAULTS = {"label": None, "epochs": None, "method": CAM, "depth": DEFAULT_DEPTH, "level": "combined",
                "colormap": DIVERGING, "scale": "shared", "opacity": 0.75, "device": "auto"}


def main(argv: list[str], draw: Callable[..., None]) -> int:
    """``draw(runs, out, (width, height), band=None)`` writes the curves (the app passes the Runs tab's)."""
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
    if args.maps_across_epochs is None:
        given = [f"--{name}" for name in MAP_DEFAULTS if getattr(args, name) is not None]
        if given:
            parser.error(f"{', '.join(given)}: read only with --maps-across-epochs")
    elif args.band:
        parser.error("--band draws the curves; not with --maps-across-epochs")
    runs = []
    for folder in args.runs:
        try:
            runs.append(open_run(folder))
        except NotARun as err:
            parser.error(str(err))
    for run in runs:
        for problem in run.problems:
            print(f"catviz runs: {problem}", file=sys.stderr)
    if args.maps_across_epochs is not None:
        return _maps_main(parser, args, runs)
    for run in runs:
        if not run.records:
            print(f"catviz runs: {run.folder}: no epoch logged yet; drawn empty", file=sys.stderr)
    try:
        draw(runs, out, (width, height), band=args.band)
    except OSError as err:
        print(f"catviz runs: cannot write {out} ({err.strerror or err})", file=sys.stderr)
        return 1
    for run in runs:
        print(f"{run.folder}: {len(run.records)} epoch(s), {run.status}")
    if args.band:
        from .runs import group_runs

        groups, alone = group_runs(runs)
        for group in groups:
            print(f"{group.name}: mean and {BAND_KINDS[args.band]} band of seeds "
                  f"{', '.join(map(str, group.seeds))} ({', '.join(str(r.folder) for r in group.runs)}), "
                  f"over {group.coverage()}")
        for run, why in alone:
            print(f"{run.folder}: drawn on its own, {why}")
    print(f"wrote {out}")
    return 0


def _maps_main(parser: argparse.ArgumentParser, args, runs: list[Run]) -> int:
    """``--maps-across-epochs``: every flag and file checked (exit 2) before a model is loaded."""
    options = {name: default if getattr(args, name) is None else getattr(args, name)
               for name, default in MAP_DEFAULTS.items()}
    if len(runs) != 1:
        parser.error(f"--maps-across-epochs draws one run's snapshots; {len(runs)} runs given")
    run = runs[0]
    if not run.snapshots:
        parser.error(f"{run.folder}: no snapshots to draw (train with --snapshot-every K or --snapshot-epochs)")
    if not (math.isfinite(options["opacity"]) and 0 < options["opacity"] <= 1):
        parser.error(f"--opacity must be a number in (0, 1], not {options['opacity']}")
    images = args.maps_across_epochs
    if len(images) > MAX_MAP_IMAGES:
        parser.error(f"--maps-across-epochs: {len(images)} images; at most {MAX_MAP_IMAGES} (a column each)")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        parser.error(f"--maps-across-epochs: no such file: {', '.join(missing)}")
    if options["label"] is not None and run.class_names is not None and options["label"] not in run.class_names:
        parser.error(f"--label {options['label']!r}: the run's snapshots have no such label "
                     f"({describe_labels(run.class_names)})")
    epochs = sorted(run.snapshots)
    if options["epochs"] is not None:
        try:
            wanted = snapshot_files.parse_epochs(options["epochs"])
        except ValueError as err:
            parser.error(f"--epochs {options['epochs']!r}: {err}")
        lacking = [e for e in wanted if e not in run.snapshots]
        if lacking or not wanted:
            parser.error(f"--epochs: {run.folder} has no snapshot of epoch {', '.join(map(str, lacking or ['(none)']))}"
                         f"; it has {', '.join(map(str, epochs))}")
        epochs = wanted
    drawn = thin(epochs)
    if len(drawn) < len(epochs):
        print(f"catviz runs: {len(epochs)} snapshots; {len(drawn)} of them drawn, evenly spaced (--epochs picks)",
              file=sys.stderr)
    from tqdm import tqdm

    from catviz.models.device import resolve_device
    from catviz.models.preprocess import ImageLoadError, load_image

    from . import epoch_maps, figure

    try:
        device = resolve_device(options["device"])
    except (RuntimeError, ValueError) as err:
        parser.error(f"--device {options['device']}: {err}")
    columns = []
    for path in images:
        try:
            columns.append(epoch_maps.EpochImage(path.name, load_image(path), options["label"],
                                                 "--label" if options["label"] else ""))
        except ImageLoadError as err:
            parser.error(f"--maps-across-epochs: {err}")
    bar = tqdm(total=len(drawn) * len(columns), desc="catviz runs", unit="map", file=sys.stderr)
    try:
        maps = epoch_maps.compute({e: run.snapshots[e] for e in drawn}, columns, options["method"], options["depth"],
                                  options["level"], device, run.model, run.class_names, run.name,
                                  progress=lambda value: bar.update(value[0] - bar.n), strict_level=True)
        image = epoch_maps.render(maps, options["opacity"], options["colormap"], options["scale"] == "shared").image
    except (ValueError, OSError, RuntimeError) as err:  # a refused snapshot, a depth it lacks, out of memory
        print(f"catviz runs: {err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    if args.out.exists() and not args.overwrite:  # appeared while we worked: still never replaced
        print(f"catviz runs: {args.out} appeared meanwhile; not replaced (pass --overwrite)", file=sys.stderr)
        return 1
    try:
        figure.save_figure(args.out, image)
    except OSError as err:
        print(f"catviz runs: cannot write {args.out} ({err.strerror or err})", file=sys.stderr)
        return 1
    labels = ", ".join(f"{c.name}: {c.label}" + (f" ({c.label_note})" if c.label_note else "") for c in maps.images)
    print(f"wrote {args.out}: {len(maps.rows)} epochs ({', '.join(str(r.epoch) for r in maps.rows)}) x "
          f"{len(maps.images)} images ({labels})")
    return 0
