"""``catviz-eval B C --compare --report DIR`` on a dataset the test writes."""

import json

import pytest

from catviz import eval_cli
from catviz.compare import _signed
from catviz.dataset_report import SUMMARY_KEYS
from tests.catviz.conftest import make_checkpoint
from tests.catviz.dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CATVIZ_CACHE_DIR", str(tmp_path / "cache"))
    return write_boxes_dataset(tmp_path / "data", broken=(3,))


def compare(checkpoints, data_root, report, *more):
    return eval_cli.main([str(checkpoints["baseline"]), str(checkpoints["cat"]), "--compare", "--report", str(report),
                          "--dataset", "coco-format", "--data-root", str(data_root), "--workers", "0", *more])


def test_summary_equals_catviz_eval_and_every_file_is_written(small_checkpoints, data_root, tmp_path, capsys):  # noqa: F811
    plain = tmp_path / "eval.json"
    assert eval_cli.main([str(small_checkpoints["baseline"]), str(small_checkpoints["cat"]), "--dataset", "coco-format",
                          "--data-root", str(data_root), "--workers", "0", "--json", str(plain)]) == 0
    expected = json.loads(plain.read_text())["results"]
    report = tmp_path / "report"
    assert compare(small_checkpoints, data_root, report) == 0
    assert sorted(p.name for p in report.iterdir()) == sorted(
        ["summary.json", "per_class.json", "by_size.json", "images.json", "report.html", "report.json", "scores.npz"])
    summary = json.loads((report / "summary.json").read_text())
    for role, row in zip(("baseline", "cat"), expected, strict=True):
        for key in SUMMARY_KEYS:
            assert summary["models"][role][key] == row[key], (role, key)
    assert summary["scored"] == len(VAL) - 1 and summary["failed"] == 1
    assert "003.png" in next(iter(summary["failed_images"]))
    images = json.loads((report / "images.json").read_text())
    gains = [img["f1_gain"] for img in images]
    assert len(images) == len(VAL) - 1 and gains == sorted(gains, reverse=True)
    per_class = json.loads((report / "per_class.json").read_text())
    assert [r["label"] for r in per_class] == ["cat", "dog", "car", "bus", "tree"]
    by_size = json.loads((report / "by_size.json").read_text())
    assert [r["bucket"] for r in by_size["pixels"]][:3] == ["small", "medium", "large"]
    page = (report / "report.html").read_text()
    for section in ("Summary", "Per class", "By object size", "Largest gains", "Largest losses", "could not be decoded"):
        assert section in page
    better = [i for i in images if i["f1_gain"] > 0 or (i["f1_gain"] == 0 and i["probability_gain"] > 0)]
    worse = [i for i in images if i["f1_gain"] < 0 or (i["f1_gain"] == 0 and i["probability_gain"] < 0)]
    assert f"{len(better)} image" in page and f"{len(worse)} image" in page and "where CAT does worse" in page
    cards = len(better) + len(worse)
    assert page.count("data:image/png;base64,") == 4 * cards  # image, two maps and their colour bar each
    assert page.count('<img class="bar"') == cards
    losses = page[page.index("<h2>Largest losses"):]
    assert all(img["path"].split("/")[-1] in losses for img in worse)
    assert not any(f"<b>{img['path'].split('/')[-1]}</b>" in losses for img in images if img not in worse)
    assert "src=\"http" not in page  # self-contained
    out = capsys.readouterr().out
    assert "baseline: baseline_tiny (baseline)" in out and "cat: cat_tiny (cat)" in out
    assert f"scored on the val split: {len(VAL) - 1} of {len(VAL)} images; 1 could not be decoded (unreadable" in out


def test_an_existing_report_is_not_overwritten(small_checkpoints, data_root, tmp_path, capsys):  # noqa: F811
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.json").write_text("mine")
    assert compare(small_checkpoints, data_root, report) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (report / "summary.json").read_text() == "mine"
    assert compare(small_checkpoints, data_root, report, "--overwrite") == 0
    assert json.loads((report / "summary.json").read_text())["scored"] == len(VAL) - 1


@pytest.mark.parametrize("argv, message", [
    (["--compare", "--report", "R"], "two or more checkpoints"),
    (["--report", "R"], "need --compare"),
])
def test_usage_errors_come_before_any_work(small_checkpoints, tmp_path, capsys, argv, message):  # noqa: F811
    paths = [str(small_checkpoints["cat"])]
    assert eval_cli.main(paths + [a.replace("R", str(tmp_path / "r")) for a in argv]) == 2 and message in capsys.readouterr().err


def test_roles_come_from_the_metadata_and_labels_must_match(small_checkpoints, data_root, tmp_path, capsys):  # noqa: F811
    swapped = {"baseline": small_checkpoints["cat"], "cat": small_checkpoints["baseline"]}
    assert compare(swapped, data_root, tmp_path / "r1") == 0
    assert "is the CAT model" in capsys.readouterr().err
    other = make_checkpoint(tmp_path / "other.safetensors", "cat_tiny", classes=["a", "b"], input_size=32)
    other_labels = {"baseline": small_checkpoints["baseline"], "cat": other}
    assert compare(other_labels, data_root, tmp_path / "r2") == 1
    assert "labels" in capsys.readouterr().err


def test_help_says_compare_needs_report(capsys):
    with pytest.raises(SystemExit):
        eval_cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "per class, per object size, per level, per image" in out and "needs --report DIR" in out


def test_compare_without_report_is_a_usage_error_naming_the_flag(tmp_path, capsys):
    missing = [str(tmp_path / "b.safetensors"), str(tmp_path / "c.safetensors")]  # never read: no work is done
    assert eval_cli.main(missing + ["--compare"]) == 2 and "--compare needs --report DIR" in capsys.readouterr().err


def test_a_bad_device_is_a_usage_error_before_the_report_folder_is_made(tmp_path, capsys):
    missing = [str(tmp_path / "b.safetensors"), str(tmp_path / "c.safetensors")]
    assert eval_cli.main(missing + ["--compare", "--report", str(tmp_path / "r"), "--device", "tpu9"]) == 2
    err = capsys.readouterr().err
    assert "--device 'tpu9'" in err and "Traceback" not in err and not (tmp_path / "r").exists()


def test_json_with_compare_is_a_usage_error_not_silently_ignored(tmp_path, capsys):
    missing = [str(tmp_path / "b.safetensors"), str(tmp_path / "c.safetensors")]
    argv = missing + ["--compare", "--report", str(tmp_path / "r"), "--json", str(tmp_path / "s.json")]
    assert eval_cli.main(argv) == 2
    assert "--json does not apply to --compare" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("value, text", [(-0.04, "0.0"), (0.04, "0.0"), (-0.0, "0.0"), (1.25, "+1.2"),
                                         (-3.46, "-3.5"), (None, "–"), (float("nan"), "–")])
def test_differences_that_round_to_zero_carry_no_sign(value, text):
    assert _signed(value) == text


def test_a_full_disk_leaves_the_report_folder_as_it_was(small_checkpoints, data_root, tmp_path, monkeypatch, capsys):  # noqa: F811
    """The report is all files or none: a write that fails part-way (here the last, report.html)
    leaves the earlier report byte for byte, and no staging folder behind."""
    report = tmp_path / "report"
    assert compare(small_checkpoints, data_root, report) == 0
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    real_write_text = type(report).write_text

    def disk_full_at_html(self, text, *args, **kwargs):
        if self.name == "report.html":
            real_write_text(self, text[: len(text) // 2], *args, **kwargs)  # half of it made it to disk
            raise OSError(28, "No space left on device")
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(type(report), "write_text", disk_full_at_html)
    assert compare(small_checkpoints, data_root, report, "--overwrite", "--limit-images", "2") == 1
    err = capsys.readouterr().err
    assert f"cannot write the report into {report}" in err and "No space left" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
