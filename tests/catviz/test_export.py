"""``catviz export``: the figure, its checks before any work, roles, formats, memory."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from catviz import figure
from catviz.app import main
from catviz.render import lookup_table
from catviz.results import InferenceResult

from .conftest import CLASSES, make_checkpoint, write_bad_files, write_good_images
from .hostile_images import write_blank_png


def _export(*args, checkpoints=None):
    models = ["--baseline", str(checkpoints["baseline"]), "--cat", str(checkpoints["cat"])] if checkpoints else []
    return main(["export", *map(str, args), *models, "--device", "cpu"])


def _usage_error(capsys, *args, checkpoints=None) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _export(*args, checkpoints=checkpoints)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_export_writes_the_figure_for_good_images_and_reports_bad_ones(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 2)
    bad = write_bad_files(tmp_path / "bad")
    out = tmp_path / "fig.png"
    assert _export(*good, *bad, "--out", out, checkpoints=checkpoints) == 0
    captured = capsys.readouterr()
    for path in bad:
        assert path.name in captured.err
    assert f"wrote {out} (2 images; {len(bad)} skipped, see above)" in captured.out
    drawn = cv2.imread(str(out))[..., ::-1]
    columns = (drawn.shape[1] - figure.BAR) // figure.CELL  # the image + up to 4 labels
    assert (drawn.shape[1] - figure.BAR) % figure.CELL == 0 and 2 <= columns <= 5
    # two images x two models, each a cell and its caption, below the column headers
    assert drawn.shape[0] > figure.HEADER + 4 * figure.CELL


def test_the_figure_has_a_colour_bar_on_the_diverging_scale(tmp_path, checkpoints):
    good = write_good_images(tmp_path / "imgs", 1)
    out = tmp_path / "fig.png"
    assert _export(*good, "--out", out, checkpoints=checkpoints) == 0
    drawn = cv2.imread(str(out))[..., ::-1].astype(int)
    bar = drawn[figure.HEADER:, drawn.shape[1] - figure.BAR + 14]  # a column through the bar
    colours = lookup_table("RdBu (diverging)")
    reddest = np.abs(bar - colours[-1]).max(axis=1).argmin()
    bluest = np.abs(bar - colours[0]).max(axis=1).argmin()
    assert np.abs(bar[reddest] - colours[-1]).max() <= 8 and np.abs(bar[bluest] - colours[0]).max() <= 8
    assert reddest < bluest  # positive on top


def _figure_row(truth: set[str] | None, probabilities: dict[str, list[float]] | None = None) -> figure.FigureRow:
    """One image's row with made-up results: by default "cat" found by both models, "dog" missed."""
    rng = np.random.default_rng(0)
    probabilities = probabilities or {role: [0.9, 0.2, 0.1, 0.05, 0.3] for role in ("baseline", "cat")}
    results = {}
    for role, p in probabilities.items():
        results[role] = InferenceResult(np.array(p, np.float32), {}, {}, {}, rng.normal(size=(len(CLASSES), 8, 8)),
                                        {}, {}, 0.0)
    return figure.FigureRow("a.png", rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), results, truth)


# CLASSES = cat, dog, car, bus, tree. Per case: each model's probabilities, the ground truth,
# and the label columns worked out by hand at threshold 0.5.
_COLUMN_CASES = {
    # the larger of the two models' probabilities: .9 .95 .6 .7 .8, all five predicted;
    # highest first: dog .95, cat .9, tree .8, bus .7 (car .6 is the fifth: left out)
    "five predicted, four shown": ({"baseline": [0.9, 0.2, 0.6, 0.7, 0.8], "cat": [0.1, 0.95, 0.3, 0.55, 0.6]},
                                   None, [1, 0, 4, 3]),
    # only bus (.7 by the CAT) and cat (.6 by the baseline) reach 0.5
    "two predicted": ({"baseline": [0.6, 0.2, 0.1, 0.3, 0.4], "cat": [0.1, 0.2, 0.3, 0.7, 0.4]}, None, [3, 0]),
    # nothing reaches 0.5: the most likely label (tree, .45) is still drawn
    "none predicted": ({"baseline": [0.1, 0.2, 0.3, 0.05, 0.45], "cat": [0.1, 0.2, 0.3, 0.05, 0.4]}, None, [4]),
    # the ground truth, not the predictions, picks the columns: alphabetical, the first four
    # (bus, car, cat, dog; tree left out)
    "five true, four shown": ({"baseline": [0.1] * 5, "cat": [0.1] * 5}, set(CLASSES), [3, 2, 0, 1]),
}


@pytest.mark.parametrize("case", list(_COLUMN_CASES))
def test_the_figure_shows_the_image_then_at_most_four_labels(case):
    probabilities, truth, expected = _COLUMN_CASES[case]
    row = _figure_row(truth, probabilities)
    assert figure.labels_to_show(row, CLASSES, 0.5) == expected
    drawn = figure.render_figure([row], CLASSES)
    assert drawn.shape[1] == (1 + len(expected)) * figure.CELL + figure.BAR  # the image column + one per label


def _red(pixels: np.ndarray) -> bool:
    pixels = pixels.astype(int)
    return bool(((pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)).any())


def _legend(drawn: np.ndarray) -> np.ndarray:
    """The strip under the last image's rows (each image block ends in a backdrop-grey line)."""
    separators = np.nonzero((drawn == figure.BACKDROP[0]).all(axis=(1, 2)))[0]
    return drawn[separators[-1] + 1:]


def test_the_red_caption_is_explained_only_when_an_image_has_its_ground_truth():
    without = figure.render_figure([_figure_row(None)], CLASSES)
    with_truth = figure.render_figure([_figure_row({"cat", "dog"})], CLASSES)
    assert not _red(_legend(without))
    assert _red(_legend(with_truth))  # "Red caption: a ground-truth label the model misses"


def test_per_panel_scales_leave_out_the_colour_bar_column_and_its_header():
    row = _figure_row(None)
    shared = figure.render_figure([row], CLASSES)
    own = figure.render_figure([row], CLASSES, shared_scale=False)
    assert shared.shape[1] - own.shape[1] == figure.BAR and own.shape[1] % figure.CELL == 0
    assert figure.header_text(3, "CAM", bar=False) == ["image", figure.header_text(3, "CAM")[1]]
    unsigned = figure.render_figure([row], CLASSES, method="GradCAM", shared_scale=False)  # one 0-1 scale: a bar
    assert unsigned.shape[1] == shared.shape[1]


def test_a_panorama_keeps_its_aspect_ratio(tmp_path, checkpoints):
    path = tmp_path / "panorama.png"
    cv2.imwrite(str(path), np.full((64, 2000, 3), 10, np.uint8))
    out = tmp_path / "fig.png"
    assert _export(path, "--out", out, checkpoints=checkpoints) == 0
    cell = cv2.imread(str(out))[figure.HEADER: figure.HEADER + figure.CELL, : figure.CELL].astype(int)
    dark_rows = np.nonzero((cell < 40).all(axis=(1, 2)))[0]  # the photo's rows, letterboxed
    assert 4 <= len(dark_rows) <= 8  # 192 * 64 / 2000 = 6 rows, not stretched to 192
    assert (cell[: dark_rows[0]] == figure.BACKDROP[0]).all()


def test_long_captions_wrap_instead_of_being_cut():
    name = "a label name far longer than twenty-four characters"
    lines = figure._wrap(f"{name} 0.93", figure.CELL - 8)
    assert len(lines) > 1 and "".join(lines).replace(" ", "") == f"{name}0.93".replace(" ", "")  # nothing cut
    for line in lines:
        assert cv2.getTextSize(line, figure.FONT, figure.FONT_SCALE, 1)[0][0] <= figure.CELL - 8


def test_out_suffix_picks_the_format_and_unknown_ones_are_refused(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 1)
    assert _export(*good, "--out", tmp_path / "x.jpg", checkpoints=checkpoints) == 0
    assert (tmp_path / "x.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    err = _usage_error(capsys, *good, "--out", tmp_path / "x.gif", checkpoints=checkpoints)
    assert "unknown figure format '.gif'" in err


def test_an_existing_figure_is_never_replaced_without_overwrite(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 1)
    out = tmp_path / "fig.png"
    out.write_bytes(b"my precious figure")
    err = _usage_error(capsys, *good, "--out", out, checkpoints=checkpoints)
    assert "exists; pass --overwrite" in err
    assert out.read_bytes() == b"my precious figure"
    assert _export(*good, "--out", out, "--overwrite", checkpoints=checkpoints) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("value", ["nan", "inf", "2", "0", "1", "-0.5"])
def test_threshold_outside_the_open_unit_interval_is_a_usage_error(tmp_path, checkpoints, capsys, value):
    err = _usage_error(capsys, "--out", tmp_path / "f.png", "--threshold", value, checkpoints=checkpoints)
    assert "--threshold must be a number in (0, 1)" in err


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, checkpoints, capsys, monkeypatch):
    from catviz import inference

    monkeypatch.setattr(inference, "load_model", lambda *a: pytest.fail("a model was loaded"))
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    err = _usage_error(capsys, "--out", blocker / "fig.png", checkpoints=checkpoints)
    assert f"cannot write into {blocker} (not a folder)" in err
    missing = tmp_path / "typo" / "figs"
    err = _usage_error(capsys, "--out", missing / "fig.png", checkpoints=checkpoints)
    assert f"cannot write into {missing} (no such folder)" in err and not missing.parent.exists()  # never created


def test_roles_come_from_the_checkpoints_metadata(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 1)
    swapped = {"baseline": checkpoints["cat"], "cat": checkpoints["baseline"]}
    assert _export(*good, "--out", tmp_path / "f.png", checkpoints=swapped) == 2
    err = capsys.readouterr().err
    assert f"{checkpoints['cat']} holds a cat model (cat_tiny) but was given as --baseline; pass it as --cat" in err
    assert not (tmp_path / "f.png").exists()


def test_export_fails_only_when_nothing_could_be_drawn(tmp_path, checkpoints, capsys):
    write_bad_files(tmp_path / "bad")
    code = main(["export", str(tmp_path / "bad"), "--cat", str(checkpoints["cat"]), "--out", str(tmp_path / "f.png")])
    assert code == 1
    assert "nothing drawn" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_no_image_to_draw_is_a_usage_error_before_any_model_loads(tmp_path, checkpoints, capsys, monkeypatch):
    from catviz import inference

    monkeypatch.setattr(inference, "load_model", lambda *a: pytest.fail("a model was loaded"))
    (tmp_path / "empty").mkdir()
    err = _usage_error(capsys, tmp_path / "empty", "--out", tmp_path / "f.png", checkpoints=checkpoints)
    assert f"no image to draw: {tmp_path / 'empty'} holds no image files" in err
    err = _usage_error(capsys, "--out", tmp_path / "f.png", checkpoints=checkpoints)
    assert "no image to draw: give image files or folders (or --demo for the sample images)" in err
    err = _usage_error(capsys, tmp_path / "gone.png", "--out", tmp_path / "f.png", checkpoints=checkpoints)
    assert f"no such file or folder: {tmp_path / 'gone.png'}" in err


def test_export_refuses_models_with_different_labels(tmp_path, checkpoints, capsys):
    other = make_checkpoint(tmp_path / "other.safetensors", "baseline_tiny", classes=["a", "b"])
    good = write_good_images(tmp_path / "imgs", 1)
    code = _export(*good, "--out", tmp_path / "f.png", checkpoints={"baseline": other, "cat": checkpoints["cat"]})
    assert code == 2
    assert "the models' labels differ (2 vs 5)" in capsys.readouterr().err


def test_a_bad_checkpoint_is_a_message_not_a_traceback(tmp_path, checkpoints, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    good = write_good_images(tmp_path / "imgs", 1)
    assert main(["export", str(good[0]), "--cat", str(bad), "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.safetensors: not a catviz checkpoint" in err and "Traceback" not in err


@pytest.mark.slow
def test_other_methods_and_colour_maps_as_in_the_app(tmp_path, checkpoints):
    good = write_good_images(tmp_path / "imgs", 1)
    out = tmp_path / "gradcam.png"
    assert main(["export", str(good[0]), "--cat", str(checkpoints["cat"]), "--out", str(out), "--device", "cpu",
                 "--method", "GradCAM", "--colormap", "turbo"]) == 0
    assert cv2.imread(str(out)) is not None


#: Runs ``catviz export`` in a fresh process whose address space may grow by only the
#: given budget once the app is imported; prints the peak RSS growth (MB).
_BOUNDED_EXPORT = """
import json, resource, sys
import catviz.app, catviz.inference, catviz.figure
vm = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[1]), resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = catviz.app.main(["export", *sys.argv[2:]])
print(json.dumps({"code": code, "grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


@pytest.mark.slow
def test_exporting_a_16000px_png_succeeds_under_a_memory_limit(tmp_path, checkpoints):
    """Issue 11: a 249 KB PNG declaring 16000x16000 made export use 8.4 GB and crash."""
    path = write_blank_png(tmp_path / "bomb.png", 16000, 16000)
    out = tmp_path / "fig.png"
    budget = 1024 * 2**20  # the 256 MB decode, the models and their threads; 768 MB RGB copies would not fit
    done = subprocess.run(
        [sys.executable, "-c", _BOUNDED_EXPORT, str(budget), str(path), "--out", str(out), "--device", "cpu",
         "--baseline", str(checkpoints["baseline"]), "--cat", str(checkpoints["cat"])],
        capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
                                                          "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and out.exists()
    assert result["grew_mb"] < 600


@pytest.mark.parametrize("columns", [2, 5])
def test_the_header_names_no_label_and_fits_over_the_maps(columns):
    # "CAM, label 1" over a map of label 4 read as the label named 1: no column is numbered
    image, maps, scale = figure.header_text(columns, "GradCAM++")
    assert image == "image" and scale == "scale" and maps.startswith("GradCAM++")
    assert not any(ch.isdigit() for ch in maps.replace("GradCAM++", ""))
    assert len(figure._wrap(maps, (columns - 1) * figure.CELL - 8)) == 1  # one line, nothing cut
