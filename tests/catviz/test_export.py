import cv2

from catviz.app import main

from .conftest import CLASSES, write_bad_files, write_good_images


def test_export_writes_the_figure_for_good_images_and_reports_bad_ones(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 2)
    bad = write_bad_files(tmp_path / "bad")
    out = tmp_path / "fig.png"
    code = main(["export", *map(str, good), *map(str, bad), "--baseline", str(checkpoints["baseline"]),
                 "--cat", str(checkpoints["cat"]), "--out", str(out), "--device", "cpu"])
    assert code == 0
    err = capsys.readouterr().err
    for path in bad:
        assert path.name in err
    figure = cv2.imread(str(out))
    # two images x two models rows of 192 + 22 px; width: image + up to 4 label cells
    assert figure.shape[0] == 4 * (192 + 22)
    assert figure.shape[1] % 192 == 0 and 2 * 192 <= figure.shape[1] <= 5 * 192
    assert len(CLASSES) == 5


def test_export_fails_only_when_nothing_could_be_drawn(tmp_path, checkpoints, capsys):
    write_bad_files(tmp_path / "bad")
    code = main(["export", str(tmp_path / "bad"), "--cat", str(checkpoints["cat"]), "--out", str(tmp_path / "f.png")])
    assert code == 1
    assert "nothing drawn" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_export_refuses_models_with_different_labels(tmp_path, checkpoints, capsys):
    from .conftest import make_checkpoint

    other = make_checkpoint(tmp_path / "other.safetensors", "baseline_tiny", classes=["a", "b"])
    good = write_good_images(tmp_path / "imgs", 1)
    code = main(["export", str(good[0]), "--baseline", str(other), "--cat", str(checkpoints["cat"]),
                 "--out", str(tmp_path / "f.png")])
    assert code == 2
    assert "differ from the other model" in capsys.readouterr().err
