"""train_cli/demo_models.py: shipping a finished pair (--from-runs), refusing a missing one or replacing files."""

import hashlib

import pytest
import torch

from catviz import models
from catviz.models.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from catviz.train_cli import demo_models


def test_a_missing_run_is_a_usage_error_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo_models.main(["--from-runs", str(tmp_path / "seed9"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert f"no finished run: {tmp_path / 'seed9' / 'baseline_tiny' / 'last.safetensors'}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ship_copies_the_final_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    model = models.create_model("cat_tiny", 10)
    run = tmp_path / "run"
    run.mkdir()
    meta = CheckpointMeta(model="cat_tiny", class_names=[str(d) for d in range(10)], input_size=128,
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), dataset="demo", metrics={"mAP": 91.5})
    save_checkpoint(run / "last.safetensors", model, meta)
    shipped = demo_models.ship(run, tmp_path, "cat")
    assert shipped.metrics["mAP"] == 91.5 and read_meta(tmp_path / "demo_cat.safetensors").model == "cat_tiny"
    reloaded, _ = load_checkpoint(tmp_path / "demo_cat.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(), strict=True))


def test_a_half_trained_run_is_not_shipped(tmp_path, capsys):
    for name in demo_models.ROLES.values():
        (tmp_path / "seed0" / name).mkdir(parents=True)
        save_checkpoint(tmp_path / "seed0" / name / "last.safetensors", models.create_model(name, 10),
                        CheckpointMeta(model=name, class_names=[str(d) for d in range(10)], input_size=128,
                                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), dataset="demo", epoch=3,
                                       config={"epochs": 16}))
    with pytest.raises(SystemExit) as exit_info:
        demo_models.main(["--from-runs", str(tmp_path / "seed0"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "stopped at epoch 3 of 16" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_files_already_in_out_are_not_replaced_without_overwrite(tmp_path, capsys):
    out = tmp_path / "assets"
    out.mkdir()
    (out / "demo_cat.safetensors").write_bytes(b"a user's model")
    (out / demo_models.TRUNK).write_bytes(b"a user's trunk")
    with pytest.raises(SystemExit) as exit_info:
        demo_models.main(["--out", str(out), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--overwrite" in err
    assert str(out / "demo_cat.safetensors") in err and str(out / demo_models.TRUNK) in err
    assert (out / "demo_cat.safetensors").read_bytes() == b"a user's model"
    assert not (tmp_path / "runs").exists()


def _hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_runs_already_in_runs_are_not_replaced_without_overwrite(tmp_path, monkeypatch, capsys):
    """A re-run over finished runs refuses before any work (the trainer used to get --overwrite)."""
    runs = tmp_path / "runs"
    for model in demo_models.ROLES.values():
        (runs / model).mkdir(parents=True)
        for name in ("last.safetensors", "best.safetensors", "log.jsonl"):
            (runs / model / name).write_bytes(f"{model} {name}".encode())
    (runs / demo_models.TRUNK).write_bytes(b"a trunk")
    before = _hashes(runs)
    started = []
    monkeypatch.setattr(demo_models, "run_jobs", lambda jobs, *a, **k: started.extend(jobs) or 4)
    with pytest.raises(SystemExit) as exit_info:
        demo_models.main(["--out", str(tmp_path / "out"), "--runs", str(runs), "--data-root", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--overwrite" in err and str(runs / "cat_tiny") in err
    assert _hashes(runs) == before and not started and not (tmp_path / "out").exists()
    # with --overwrite the jobs (the trunk's here: its failure stops there) are told to replace
    assert demo_models.main(["--out", str(tmp_path / "out"), "--runs", str(runs), "--data-root",
                             str(tmp_path / "demo"), "--overwrite"]) == 4
    assert [job.name for job in started] == ["trunk"] and "--overwrite" in started[0].argv


def test_new_runs_are_started_without_overwrite(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(demo_models, "run_jobs", lambda jobs, *a, **k: started.extend(jobs) or 3)
    assert demo_models.main(["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"),
                             "--data-root", str(tmp_path / "demo")]) == 3
    assert [job.name for job in started] == ["trunk"] and "--overwrite" not in started[0].argv


@pytest.mark.slow
def test_the_pair_trains_side_by_side_on_one_thread_each_and_one_after_the_other_gives_the_same_weights(
        tmp_path, monkeypatch, capsys):
    from catviz.train_cli.config import DEMO_THREADS, DEMO_TRUNK

    # The real recipe, cut to a smoke run: one epoch on 16 images.
    monkeypatch.setattr(demo_models, "recipe_flags",
                        lambda recipe, trunk: ["--pretrained-file", str(trunk), "--epochs", "1", "--limit-images", "16",
                                               "--batch-size", "8"])
    weights = {}
    for jobs in (2, 1):
        out, runs = tmp_path / f"out{jobs}", tmp_path / f"runs{jobs}"
        assert demo_models.main(["--out", str(out), "--runs", str(runs), "--data-root", str(tmp_path / "demo"),
                                 "--trunk", DEMO_TRUNK, "--jobs", str(jobs)]) == 0
        printed = capsys.readouterr().out
        for role, model in demo_models.ROLES.items():
            meta = read_meta(out / f"demo_{role}.safetensors")
            assert (meta.config["threads"], meta.config["channels_last"]) == (DEMO_THREADS, True)
            weights[jobs, role] = load_checkpoint(out / f"demo_{role}.safetensors")[0].state_dict()
            # Side by side, each run's console goes to its log and its epochs are echoed here.
            assert (runs / f"{model}.log").is_file() == (jobs == 2)
            assert (f"{model}: epoch 1, train loss" in printed) == (jobs == 2)
        assert "pair" in printed.splitlines()[-1]
    for role in demo_models.ROLES:
        assert all(torch.equal(a, b) for a, b in zip(weights[2, role].values(), weights[1, role].values(), strict=True))


def test_the_trunk_pretrains_in_a_child_on_the_pinned_instruction_set_and_a_failure_stops_there(tmp_path, monkeypatch, capsys):
    from catviz.train_cli.config import DEMO_CPU_ISA, DEMO_PRETRAIN_THREADS
    from catviz.train_cli.side_by_side import isa_env

    started = []

    def fake_run_jobs(jobs, at_once, done=None, stop_on_failure=False):
        started.append(jobs)
        return 7  # the pretraining failed

    monkeypatch.setattr(demo_models, "run_jobs", fake_run_jobs)
    out, runs = tmp_path / "out", tmp_path / "runs"
    assert demo_models.main(["--out", str(out), "--runs", str(runs), "--data-root", str(tmp_path / "demo")]) == 7
    assert len(started) == 1 and len(started[0]) == 1  # the pair never started
    trunk = started[0][0]
    assert trunk.module == "catviz.train_cli.pretrain" and trunk.env == isa_env(DEMO_CPU_ISA)
    assert trunk.argv[trunk.argv.index("--threads") + 1] == str(DEMO_PRETRAIN_THREADS)
    assert trunk.argv[trunk.argv.index("--out") + 1] == str(runs / demo_models.TRUNK)  # shipped only with the pair
    assert not out.exists()


def test_the_pair_trains_on_the_pinned_instruction_set(tmp_path, monkeypatch):
    from catviz.train_cli.config import DEMO_CPU_ISA, DEMO_TRUNK
    from catviz.train_cli.side_by_side import isa_env

    started = []
    monkeypatch.setattr(demo_models, "run_jobs", lambda jobs, *args, **kwargs: started.extend(jobs) or 5)
    assert demo_models.main(["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), "--trunk", DEMO_TRUNK,
                             "--data-root", str(tmp_path / "demo")]) == 5
    assert [job.name for job in started] == list(demo_models.ROLES.values())
    assert all(job.env == isa_env(DEMO_CPU_ISA) and job.module == "catviz.train_cli.train" for job in started)
