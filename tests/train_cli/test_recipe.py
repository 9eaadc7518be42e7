"""--recipe paper (the default, unchanged) and --recipe modern (ASL's train.py: ASL, EMA, RandAugment + Cutout, AdamW, OneCycle)."""

import dataclasses

from catviz.train_cli.config import TrainConfig, build_parser, resolve_config

MODERN = dict(loss="asl", ema=0.9997, randaugment=True, cutout=0.5, optimizer="adamw", lr=1e-4,
              weight_decay=1e-4, decay_bias_norm=False, schedule="onecycle")


def test_the_paper_recipe_is_the_default_and_changes_nothing():
    default = resolve_config(["--data-root", "x"])
    assert default == resolve_config(["--data-root", "x", "--recipe", "paper"]) == dataclasses.replace(
        TrainConfig(), data_root="x")
    assert (default.loss, default.ema, default.optimizer, default.schedule, default.lr) == ("bce", 0.0, "sgd", "step", 0.01)
    demo = resolve_config(["--dataset", "demo"])
    assert demo == resolve_config(["--dataset", "demo", "--recipe", "paper"]) and demo.max_epochs == 24


def test_the_modern_recipe_sets_the_repositories_training_and_flags_still_win(tmp_path):
    cfg = resolve_config(["--data-root", "x", "--recipe", "modern"])
    assert {k: getattr(cfg, k) for k in MODERN} == MODERN and cfg.recipe == "modern"
    assert dataclasses.asdict(cfg)["recipe"] == "modern"  # in the resolved config saved as config.yaml
    # over the demo preset: its fixed-length schedule drops the preset's "on until converged"
    demo = resolve_config(["--dataset", "demo", "--recipe", "modern"])
    assert (demo.schedule, demo.max_epochs, demo.model, demo.img_size, demo.lr) == ("onecycle", 0, "cat_tiny", 128, 1e-4)
    # the EMA averages over the same share of the demo's 2,400 steps as ASL's 0.9997 of its COCO run
    assert demo.ema == 0.997 and 0.997 ** 2400 < 1e-3 < 0.9997 ** 2400
    assert resolve_config(["--dataset", "demo", "--recipe", "modern", "--ema", "0.9997"]).ema == 0.9997
    assert resolve_config(["--data-root", "x", "--recipe", "modern", "--ema", "0.99"]).ema == 0.99
    config = tmp_path / "c.yaml"
    config.write_text("recipe: modern\nlr: 0.0002\n")
    from_file = resolve_config(["--data-root", "x", "--config", str(config)])
    assert (from_file.recipe, from_file.loss, from_file.lr) == ("modern", "asl", 0.0002)


def test_help_names_both_recipes_and_what_modern_sets():
    text = " ".join(build_parser().format_help().split())
    assert "--recipe {paper,modern}" in text
    for flag in ("--loss asl", "--ema 0.9997", "--randaugment True", "--cutout 0.5", "--optimizer adamw",
                 "--schedule onecycle", "--lr 0.0001"):
        assert flag in text, flag
