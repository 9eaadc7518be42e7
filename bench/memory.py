"""Peak memory of ``catviz export`` on hostile files: ``python bench/memory.py``.

Generates, in a temporary folder, 30 photos of 6000x6000 (JPEG), a 249 KB PNG that
declares 16000x16000, and a 3 GB file of zeros named ``.jpg`` (sparse: no disk used),
runs ``catviz export`` on each in a fresh process and reports that process's peak RSS
(``os.wait4``), next to the same export of one small image (the imports and models
alone, the first row; the others also show their peak above it). Targets (issue 11):
30 x 6000² < 1.5 GB, the 16000² PNG < 1 GB. Writes
bench/results/memory.json. Defaults to the bundled demo models.

``--mode many`` (issue 28): a folder of ``--many`` small images (default 2,000 PNGs of
96x96), exported in pages of ``catviz export``'s default ``--per-page``: memory is bounded
by the page, not by the folder (target: < 0.5 GB above the one-image row). Writes
bench/results/memory_many.json. Measured (2 shared CPU cores, demo models, CPU): 2,000
images, 40 figures of 50, exit 0, peak RSS 1.257 GiB against 1.185 GiB for one image
(+0.072 GiB), 34 min; before pages the whole folder was one figure (3.26 GB, then
``_ArrayMemoryError`` under a 6 GB limit, issue 28).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.catviz.hostile_images

from catviz import demo  # noqa: E402
from catviz.train_cli.errors import int_range  # noqa: E402
from tests.catviz.hostile_images import write_blank_png, write_photo_jpeg  # noqa: E402
from tests.fixtures import write_image  # noqa: E402

EXPORT = "import sys; from catviz.app import main; sys.exit(main(sys.argv[1:]))"
GB = 2**30


def peak_rss(args: list[str]) -> tuple[int, float, float, str]:
    """Run ``catviz export ARGS`` in a fresh process: (exit status, peak RSS in GB, seconds, stderr tail)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen([sys.executable, "-c", EXPORT, "export", *args],
                                   stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
    return process.returncode, usage.ru_maxrss / 2**20, time.perf_counter() - start, " ".join(tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=demo.DEMO_CHECKPOINTS["baseline"])
    parser.add_argument("--cat", type=Path, default=demo.DEMO_CHECKPOINTS["cat"])
    parser.add_argument("--photos", type=int_range(1, 1000), default=30,
                        help="number of 6000x6000 photos, in [1, 1000] (default 30)")
    parser.add_argument("--mode", choices=("hostile", "many"), default="hostile",
                        help="hostile: the cases above (default); many: a folder of --many small images")
    parser.add_argument("--many", type=int_range(1, 10_000), default=2000,
                        help="--mode many: number of small images, in [1, 10000] (default 2000)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.mode == "many":
        return many(args)
    models = ["--baseline", str(args.baseline), "--cat", str(args.cat), "--device", args.device]
    with tempfile.TemporaryDirectory(prefix="catviz-memory-") as tmp:
        root = Path(tmp)
        small = write_photo_jpeg(root / "small.jpg", 512)
        photos = root / "photos"
        photos.mkdir()
        first = write_photo_jpeg(photos / "photo_00.jpg", 6000)
        for i in range(1, args.photos):
            shutil.copyfile(first, photos / f"photo_{i:02d}.jpg")
        bomb = write_blank_png(root / "bomb_16000.png", 16000, 16000)
        zeros = root / "zeros_3GB.jpg"
        with open(zeros, "wb") as f:
            f.truncate(3 * GB)
        cases = [
            ("one 512² photo (imports + models)", [small], None),
            (f"{args.photos} photos of 6000² JPEG ({first.stat().st_size / 2**20:.1f} MB each)", [photos], 1.5),
            (f"16000² PNG ({bomb.stat().st_size / 1024:.0f} KB)", [bomb], 1.0),
            ("3 GB of zeros named .jpg (refused)", [zeros, small], None),
        ]
        rows = []
        for name, inputs, target in cases:
            out = root / f"fig{len(rows)}.png"
            code, peak, seconds, tail = peak_rss([*map(str, inputs), "--out", str(out), *models])
            rows.append(dict(case=name, exit=code, peak_rss_gb=round(peak, 3), target_gb=target,
                             meets_target=None if target is None else peak < target, seconds=round(seconds, 1),
                             last_message=tail))
    reference = rows[0]["peak_rss_gb"]
    for r in rows:
        r["above_reference_gb"] = round(r["peak_rss_gb"] - reference, 3)
    print(f"\n{'case':<46} {'exit':>4} {'peak RSS':>9} {'above row 1':>11} {'target':>8} {'s':>6}")
    for r in rows:
        target = f"< {r['target_gb']:g} GB" if r["target_gb"] else ""
        print(f"{r['case']:<46} {r['exit']:>4} {r['peak_rss_gb']:>6.2f} GB {r['above_reference_gb']:>+8.2f} GB "
              f"{target:>8} {r['seconds']:>6.1f}")
    result = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(), device=args.device,
                  baseline=str(args.baseline), cat=str(args.cat), rows=rows)
    write_result(result, "memory.json")


def many(args) -> None:
    """Peak RSS of exporting a folder of ``args.many`` small images, next to one image."""
    models = ["--baseline", str(args.baseline), "--cat", str(args.cat), "--device", args.device]
    with tempfile.TemporaryDirectory(prefix="catviz-memory-") as tmp:
        root = Path(tmp)
        write_image(root / "one" / "0000.png", seed=0, size=96)
        first = (root / "one" / "0000.png").read_bytes()
        folder = root / "many"
        folder.mkdir()
        for i in range(args.many):  # copies: decoding is the same work for each
            (folder / f"{i:04d}.png").write_bytes(first)
        rows = []
        for name, inputs in (("one 96² image (imports + models)", root / "one"),
                             (f"{args.many} images of 96² PNG, default --per-page", folder)):
            out = root / f"fig{len(rows)}.png"
            code, peak, seconds, tail = peak_rss([str(inputs), "--out", str(out), *models])
            pages = sorted(p.name for p in root.glob(f"fig{len(rows)}*.png"))
            rows.append(dict(case=name, exit=code, peak_rss_gb=round(peak, 3), seconds=round(seconds, 1),
                             figures=len(pages), last_message=tail))
    rows[1]["above_reference_gb"] = round(rows[1]["peak_rss_gb"] - rows[0]["peak_rss_gb"], 3)
    for r in rows:
        print(f"{r['case']:<46} exit {r['exit']}  peak RSS {r['peak_rss_gb']:.3f} GB  {r['figures']} figure(s)  "
              f"{r['seconds']:.1f} s")
    write_result(dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(), device=args.device,
                      images=args.many, rows=rows), "memory_many.json")


def write_result(result: dict, name: str) -> None:
    """Atomically (a temporary name, then a rename): a results file is whole or as it was."""
    from catviz.models.checkpoint import atomic_write

    out = Path(__file__).parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
