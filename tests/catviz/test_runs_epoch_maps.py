"""Maps across epochs: a row per snapshot, each row's maps from that epoch's own weights, drawn as
one figure; from the command line (``catviz runs RUN --maps-across-epochs IMG...``) too."""

import numpy as np
import pytest
import torch

from catviz import app, epoch_maps, runs
from catviz.models.checkpoint import CheckpointError, load_checkpoint
from catviz.models.preprocess import load_image, preprocess
from tests.catviz.conftest import write_good_images
from tests.catviz.runs_fixtures import CLASSES, record, seed_config, write_run, write_snapshot

SCORES = {1: 20.0, 2: 35.5, 3: 41.25}


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory):
    """A run of three epochs, each snapshot a tiny CAT with weights of its own."""
    root = tmp_path_factory.mktemp("maps")
    run = write_run(root / "run", [record(e, 1.0 / e, m) for e, m in SCORES.items()], config=seed_config(0))
    for epoch, score in SCORES.items():
        write_snapshot(run, epoch, seed=100 + epoch, score=score)
    return run, write_good_images(root / "images", 2)


def _expected(snapshot, images, labels):
    """Per image: the tokens-depth complete CAM of its label and the probabilities, computed
    straight from the checkpoint's model (not through catviz.inference)."""
    from catviz.models.cam import class_activation_maps

    model, meta = load_checkpoint(snapshot, torch.device("cpu"))
    out = []
    for image, label in zip(images, labels, strict=True):
        tensor = preprocess(image, meta.input_size, meta.mean, meta.std)
        with torch.no_grad():
            outputs = model.eval()(tensor, return_features=True)
            cams = class_activation_maps(model, tensor, outputs)
        out.append((np.asarray(cams.combined[0][label]), torch.sigmoid(outputs.logits[0]).numpy()))
    return out


def test_one_row_per_snapshot_each_with_its_own_epochs_weights(snapshot_run):
    run_dir, images = snapshot_run
    run = runs.open_run(run_dir)
    columns = [epoch_maps.EpochImage(p.name, load_image(p), label) for p, label in zip(images, ["dog", None], strict=True)]
    seen = []
    maps = epoch_maps.compute(run.snapshots, columns, "CAM", "tokens", "combined", "cpu", run.model,
                              run.class_names, run.name, progress=seen.append)
    assert [row.epoch for row in maps.rows] == [1, 2, 3]
    assert [row.score for row in maps.rows] == ["val mAP 20.0", "val mAP 35.5", "val mAP 41.2"]
    assert seen[-1][:2] == (6, 6) and len(seen) == 6
    # the second image had no label: the last epoch's top label, said
    top = CLASSES[int(np.argmax(_expected(run.snapshots[3], [columns[1].image], [0])[0][1]))]
    assert (maps.images[1].label, maps.images[1].label_note) == (top, "top at epoch 3")
    labels = [CLASSES.index(column.label) for column in maps.images]
    for row in maps.rows:
        expected = _expected(run.snapshots[row.epoch], [c.image for c in maps.images], labels)
        for heat, p, label, (cam, probabilities) in zip(row.maps, row.probabilities, labels, expected, strict=True):
            np.testing.assert_allclose(heat, cam, rtol=1e-4, atol=1e-5)
            assert p == pytest.approx(float(probabilities[label]), abs=1e-5)
    assert not np.allclose(maps.rows[0].maps[0], maps.rows[2].maps[0])  # other weights, another map
    figure = epoch_maps.render(maps)
    assert [epoch for epoch, _, _ in figure.rows] == [1, 2, 3]
    tops = [(top, bottom) for _, top, bottom in figure.rows]
    assert all(b1 == t2 for (_, b1), (t2, _) in zip(tops, tops[1:], strict=False))  # one row after another
    left, right = figure.columns[0]
    cells = [figure.image[top: top + right - left, left:right] for top, _ in tops]
    assert not np.array_equal(cells[0], cells[1]) and not np.array_equal(cells[1], cells[2])
    assert figure.image.shape[1] == epoch_maps.LEFT + 2 * (right - left)


def test_a_snapshot_of_another_label_set_is_refused_by_name(snapshot_run, tmp_path):
    run_dir, images = snapshot_run
    other = write_snapshot(tmp_path / "other", 4, seed=1, classes=["x", "y", "z"])
    snapshots = {**runs.open_run(run_dir).snapshots, 4: other}
    columns = [epoch_maps.EpochImage("a", load_image(images[0]), "dog")]
    with pytest.raises(CheckpointError, match=f"{other}: a snapshot of another label set "
                                              r"\(3 labels: x, y, z\), not the run's \(5 labels"):
        epoch_maps.compute(snapshots, columns, "CAM", "tokens", class_names=tuple(CLASSES), device="cpu")
    with pytest.raises(ValueError, match="no label 'zebra' in this snapshot"):
        epoch_maps.compute(runs.open_run(run_dir).snapshots, [epoch_maps.EpochImage("a", columns[0].image, "zebra")],
                           "CAM", "tokens", device="cpu")


def _run_cli(argv, capsys):
    try:
        code = app.main(["runs", *map(str, argv)])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_catviz_runs_maps_across_epochs_writes_the_figure(snapshot_run, tmp_path, capsys):
    import cv2

    run_dir, images = snapshot_run
    out = tmp_path / "maps.png"
    code, printed, err = _run_cli([run_dir, "--maps-across-epochs", *images, "--label", "car", "--depth", "tokens",
                                   "--epochs", "1,3", "--out", out], capsys)
    assert code == 0, err
    assert f"wrote {out}: 2 epochs (1, 3) x 2 images (good0.png: car (--label), good1.png: car (--label))" in printed
    drawn = cv2.imread(str(out))
    assert drawn.shape[1] == epoch_maps.LEFT + 2 * epoch_maps.CELL
    before = out.read_bytes()
    code, _, err = _run_cli([run_dir, "--maps-across-epochs", images[0], "--out", out], capsys)
    assert code == 2 and "the file exists; pass --overwrite" in err and out.read_bytes() == before


@pytest.mark.parametrize("extra, message", [
    (["--label", "zebra"], "--label 'zebra': the run's snapshots have no such label (5 labels: cat, dog, car, bus ...)"),
    (["--epochs", "2,9"], "has no snapshot of epoch 9; it has 1, 2, 3"),
    (["--band", "std"], "--band draws the curves; not with --maps-across-epochs"),
    (["--opacity", "0"], "--opacity must be a number in (0, 1], not 0.0"),
    (["--level", "nowhere", "--depth", "tokens"], "has no level 'nowhere'"),
])
def test_maps_usage_errors_exit_before_drawing(snapshot_run, tmp_path, capsys, extra, message):
    run_dir, images = snapshot_run
    out = tmp_path / "m.png"
    code, _, err = _run_cli([run_dir, "--maps-across-epochs", images[0], *extra, "--out", out], capsys)
    assert code == (1 if "--level" in extra else 2) and message in err and not out.exists()


def test_maps_need_one_run_with_snapshots_and_existing_images(snapshot_run, tmp_path, capsys):
    run_dir, images = snapshot_run
    bare = write_run(tmp_path / "bare", [record(1, 1.0, 40)], config=seed_config(1))
    out = tmp_path / "m.png"
    for argv, message in (([bare, "--maps-across-epochs", images[0]], f"{bare}: no snapshots to draw"),
                          ([run_dir, bare, "--maps-across-epochs", images[0]], "draws one run's snapshots; 2 runs"),
                          ([run_dir, "--maps-across-epochs", tmp_path / "no.png"], "no such file"),
                          ([run_dir, "--label", "dog"], "--label: read only with --maps-across-epochs")):
        code, _, err = _run_cli([*argv, "--out", out], capsys)
        assert code == 2 and message in err, err
