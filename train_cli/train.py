"""``catviz-train``: train CAT, the baseline or an ablation on COCO, VOC, COCO-format or demo data."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
import yaml
from safetensors import SafetensorError
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

import catviz.models as models  # the models layer (not the catviz package above)
from catviz.models.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    load_weights,
    read_meta,
    save_checkpoint,
    unwrap,
)

from . import snapshots
from . import state as resume_state
from .config import TrainConfig, resolve_config
from .data import DatasetError, MultiLabelSplit, load_splits
from .data.dataset import EpochSampler, MultiLabelDataset, TransformConfig, collate_skipping_broken
from .distributed import DistInfo, gather_rows, init_distributed
from .errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    RunError,
    Terminated,
    UsageError,
    sigterm_as_interrupt,
)
from .losses import asymmetric_loss
from .metrics import multilabel_metrics
from .run_dir import open_run_dir
from .schedule import converged, lr_factor, tail_span

_logger = logging.getLogger("catviz.train")


class TrainingDiverged(RunError):
    pass


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, dict]:
    """The model and the arguments that rebuild it (stored in the checkpoint)."""
    model_args = {k: v for k, v in (("backbone", cfg.backbone), ("fpn_out_conv", cfg.fpn_out_conv),
                                    ("dropout", cfg.dropout)) if v is not None}
    try:
        model = models.create_model(
            cfg.model, num_classes, pretrained=cfg.pretrained and not cfg.pretrained_file,
            pretrained_file=cfg.pretrained_file if cfg.pretrained else None, **model_args,
        )
    except ValueError as err:  # e.g. a timm backbone without feature extraction
        raise RunError(f"could not build {cfg.model!r}: {err}") from err
    except (OSError, RuntimeError) as err:
        raise RunError(
            f"could not build {cfg.model!r} with its pretrained weights ({err}); offline, "
            "pass --pretrained-file FILE or --no-pretrained"
        ) from err
    return model, model_args


def transform_config(cfg: TrainConfig, model: nn.Module) -> TransformConfig:
    """Normalisation from the backbone's pretrained config: one source of truth."""
    data_cfg = timm.data.resolve_data_config({}, model=unwrap(model).backbone)
    return TransformConfig(
        img_size=cfg.img_size, crop=cfg.crop, hflip=cfg.hflip, randaugment=cfg.randaugment, cutout=cfg.cutout,
        mean=tuple(data_cfg["mean"]), std=tuple(data_cfg["std"]),
    )


def param_groups(model: nn.Module, decay_bias_norm: bool = True) -> list[dict]:
    """Optimizer groups: every parameter decays (the paper), or biases and norm weights
    (every parameter with at most one dimension) are exempt with ``decay_bias_norm=False``."""
    if decay_bias_norm:
        return [{"params": list(model.parameters())}]
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_loss(cfg: TrainConfig):
    if cfg.loss == "asl":  # the paper's defaults: gamma- 4, gamma+ 0, clip 0.05
        return asymmetric_loss

    def bce(logits, targets):  # difficult (-1) entries carry no loss
        known = (targets >= 0).float()
        return F.binary_cross_entropy_with_logits(logits, targets.clamp(min=0), weight=known)

    return bce


def autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)


def make_loader(split: MultiLabelSplit, transform, train: bool, cfg: TrainConfig, dist: DistInfo):
    dataset = MultiLabelDataset(split, transform, train=train, seed=cfg.seed, cache_bytes=cfg.cache_mib * 2**20)
    if cfg.cache_mib and cfg.workers:  # workers start afresh each epoch: they inherit the parent's cache
        dataset.fill_cache()
    if train:
        sampler = EpochSampler(len(dataset), True, cfg.seed, dist.rank, dist.world_size)
    else:  # every image exactly once across ranks
        sampler = list(range(dist.rank, len(dataset), dist.world_size))
    return DataLoader(
        dataset, batch_size=max(1, cfg.batch_size // dist.world_size), sampler=sampler,
        num_workers=cfg.workers, collate_fn=collate_skipping_broken, drop_last=train,
        generator=torch.Generator(),  # keeps the global RNG (dropout) untouched by iteration
        pin_memory=torch.cuda.is_available(),
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device, cfg: TrainConfig, dist: DistInfo, desc="eval",
             progress: bool = True, levels: bool = False):
    """(probabilities, targets, metrics) over the whole split, gathered across ranks; ``progress``:
    a tqdm bar on the main rank; ``levels``: also ``metrics["level_mAP"]``, the mAP of each
    classifier level's logits alone (``{"P5": .., "P4": .., "P3": ..}``; NaN as None)."""
    model.eval()
    num_classes = len(loader.dataset.split.class_names)
    scores, targets, level_scores = [], [], {}
    for batch in tqdm(loader, desc=desc, disable=not (dist.is_main and progress), leave=False):
        if batch is None:
            continue
        images, target = batch
        images = images.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(cfg, device):
            output = model(images)
            logits = output.logits
        scores.append(torch.sigmoid(logits.float()).cpu())
        for name, level in output.level_logits.items() if levels else ():
            level_scores.setdefault(name, []).append(torch.sigmoid(level.float()).cpu())
        targets.append(target)
    scores = gather_rows(torch.cat(scores) if scores else torch.zeros(0, num_classes), dist)
    targets = gather_rows(torch.cat(targets) if targets else torch.zeros(0, num_classes), dist)
    if len(scores) == 0:
        raise DatasetError(f"no image of the {loader.dataset.split.name!r} split could be read "
                           f"({len(loader.dataset)} failed to decode, see the warnings above); nothing to score")
    metrics = multilabel_metrics(scores.numpy(), targets.numpy())
    if levels:
        level_map = {name: multilabel_metrics(gather_rows(torch.cat(parts), dist).numpy(), targets.numpy())["mAP"]
                     for name, parts in level_scores.items()}
        metrics["level_mAP"] = {name: value if math.isfinite(value) else None for name, value in level_map.items()}
    return scores, targets, metrics


class Trainer:
    """Holds the run's objects; ``train_one_epoch`` and ``save_last`` read them."""

    def __init__(self, cfg: TrainConfig, dist: DistInfo, device: torch.device, argv_config: dict):
        self.cfg, self.dist, self.device = cfg, dist, device
        self.run_dir = cfg.run_dir()
        train_split, val_split = load_splits(cfg.dataset, cfg.data_root, cfg.keep_unannotated)
        if cfg.limit_images:
            train_split = dataclasses.replace(train_split, samples=train_split.samples[: cfg.limit_images])
            val_split = dataclasses.replace(val_split, samples=val_split.samples[: cfg.limit_images])
        self.class_names = train_split.class_names
        if dist.is_main:
            _logger.info("%s: %d train / %d val images, %d labels", cfg.dataset,
                         len(train_split.samples), len(val_split.samples), len(self.class_names))
        self.model, self.model_args = build_model(cfg, len(self.class_names))
        self.model.to(device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.transform = transform_config(cfg, self.model)
        self.train_loader = make_loader(train_split, self.transform, True, cfg, dist)
        self.val_loader = make_loader(val_split, self.transform, False, cfg, dist)
        if len(self.train_loader) == 0:
            raise DatasetError(f"training split has fewer images than one batch ({cfg.batch_size})")
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_factor(step / len(self.train_loader), cfg.epochs, cfg.schedule,
                                   cfg.lr_step, cfg.lr_gamma, cfg.warmup_epochs),
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.ema = ModelEmaV3(self.model, decay=cfg.ema) if cfg.ema > 0 else None
        self.loss_fn = make_loss(cfg)
        self.epoch, self.step_in_epoch, self.best_map, self.metrics = 0, 0, -1.0, {}
        self.map_history: list[float] = []  # val mAP after each epoch (NaN where undefined)
        # (sum, count) of this epoch's step losses so far: saved with a mid-epoch checkpoint so that
        # a resumed epoch logs the same mean train_loss as an uninterrupted one
        self.epoch_loss: tuple[float, int] = (0.0, 0)
        self.saved_at: tuple[int, int] | None = None  # (epoch, step) of the last good last.safetensors
        self.config_dict = argv_config
        if cfg.resume:
            self._resume()
        self.ddp = (
            nn.parallel.DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
            if dist.enabled else self.model
        )

    def _optimizer(self) -> torch.optim.Optimizer:
        groups = param_groups(self.model, self.cfg.decay_bias_norm)
        if self.cfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return torch.optim.SGD(groups, lr=self.cfg.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay)

    # --- checkpoints -------------------------------------------------------------------
    def meta(self) -> CheckpointMeta:
        return CheckpointMeta(
            model=self.cfg.model, class_names=self.class_names, model_args=self.model_args,
            mean=self.transform.mean, std=self.transform.std, input_size=self.cfg.img_size,
            dataset=self.cfg.dataset, epoch=self.epoch, metrics=self.metrics, config=self.config_dict,
        )

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def save_last(self) -> None:
        if not self.dist.is_main:
            return
        state = {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "best_map": self.best_map, "torch_rng": torch.get_rng_state(),
            "model": unwrap(self.model).state_dict() if self.ema is not None else None,
            "map_history": [m if math.isfinite(m) else None for m in self.map_history],
            "epoch_loss": list(self.epoch_loss),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        tensors, skeleton = resume_state.pack(state)
        self._write(self.run_dir / "last.safetensors", self.eval_model(), self.meta(), tensors, skeleton)
        self.saved_at = (self.epoch, self.step_in_epoch)

    def _write(self, path, *args) -> None:
        """save_checkpoint; a full disk or an I/O error names the file and what is still safe."""
        try:
            save_checkpoint(path, *args)
        except (OSError, SafetensorError) as err:
            raise RunError(f"could not write {path} ({err}); {self.last_good()}") from err

    def last_good(self) -> str:
        """Where the run can be resumed from, for error messages."""
        if self.saved_at is None:
            return "no checkpoint of this run has been written yet"
        epoch, step = self.saved_at
        return (f"the last good checkpoint is {self.run_dir / 'last.safetensors'} "
                f"({epoch} epoch(s) and {step} step(s) done; continue with --resume)")

    def _resume(self) -> None:
        """Load the run's state; its config was compared with ours before (state.check_resume_config)."""
        path = self.run_dir / "last.safetensors"
        meta = read_meta(path)
        if meta.class_names != self.class_names:
            raise CheckpointError(f"{path}: trained on other labels ({len(meta.class_names)}: "
                                  f"{', '.join(meta.class_names[:4])} ...) than this dataset's; cannot resume")
        state, weights = resume_state.read_state(path, len(self.train_loader))
        try:
            load_weights(self.model, state["model"] or weights, path)
            if self.ema is not None:
                load_weights(self.ema.module, weights, path)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError) as err:
            raise CheckpointError(f"{path}: resume state does not fit this run ({type(err).__name__}: {err})") from err
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.saved_at = (self.epoch, self.step_in_epoch)
        self.best_map, self.metrics = state["best_map"], meta.metrics
        self.map_history = resume_state.map_history(state, self.run_dir / "log.jsonl")
        self.epoch_loss = resume_state.epoch_loss(state, path)
        if self.dist.is_main:
            _logger.info("resumed %s: %d epoch(s) and %d step(s) done; continuing in epoch %d", path, self.epoch,
                         self.step_in_epoch, self.epoch + 1)

    # --- training ----------------------------------------------------------------------
    def keep_training(self) -> bool:
        """Up to --epochs; past it, until converged or --max-epochs."""
        cfg = self.cfg
        if self.epoch < cfg.epochs:
            return True
        return self.epoch < cfg.max_epochs and not converged(self.map_history, cfg.converge_window, cfg.converge_delta)

    def stop_reason(self) -> str:
        """Why the run ended, for the final line."""
        cfg = self.cfg
        if not cfg.max_epochs:
            return f"{self.epoch} epochs"
        span = tail_span(self.map_history, cfg.converge_window)
        if not math.isfinite(span):
            return f"NOT converged at --max-epochs {cfg.max_epochs} (fewer than {cfg.converge_window} epochs to judge)"
        moved = f"the last {cfg.converge_window} epochs' mAP spans {span:.2f}"
        if converged(self.map_history, cfg.converge_window, cfg.converge_delta):
            return f"converged after {self.epoch} epochs ({moved} < {cfg.converge_delta})"
        return f"NOT converged at --max-epochs {cfg.max_epochs} ({moved}, not < {cfg.converge_delta})"

    def train_one_epoch(self) -> float:
        cfg, loader = self.cfg, self.train_loader
        self.ddp.train()
        per_rank_batch = loader.batch_size
        loader.sampler.set_epoch(self.epoch, skip=self.step_in_epoch * per_rank_batch)
        loader.dataset.set_epoch(self.epoch)
        total = len(loader) + self.step_in_epoch
        of = f"{cfg.epochs}" if self.epoch < cfg.epochs or not cfg.max_epochs else f"{cfg.max_epochs} at most"
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{of}", initial=self.step_in_epoch,
                   total=total, disable=not self.dist.is_main)
        losses, seen, batches, start = [], 0, 0, time.perf_counter()
        for batch in bar:
            batches += 1
            if batch is not None:
                loss = self._step(*batch)
                losses.append(loss)
                self.epoch_loss = (self.epoch_loss[0] + loss, self.epoch_loss[1] + 1)
                seen += batch[0].shape[0] * self.dist.world_size
            self.step_in_epoch += 1
            bar.set_postfix(loss=f"{losses[-1]:.4f}" if losses else "-",
                            img_s=f"{seen / (time.perf_counter() - start):.1f}")
            if cfg.save_every and self.scheduler.last_epoch % cfg.save_every == 0:
                self.save_last()
        if batches and not losses:
            raise DatasetError(
                f"no training image could be read in epoch {self.epoch + 1} (all of them failed to decode, "
                f"see the warnings above); stopping before saving an untrained model"
            )
        self.images_per_s = seen / (time.perf_counter() - start)
        total_loss, steps = self.epoch_loss
        return total_loss / max(steps, 1)

    def _step(self, images: torch.Tensor, targets: torch.Tensor) -> float:
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(self.cfg, self.device):
            logits = self.ddp(images).logits
        loss = self.loss_fn(logits.float(), targets)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}; "
                f"stopping; {self.last_good()}. Try a lower --lr or --amp bf16 instead of fp16"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.item()

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise RunError(f"--tensorboard: cannot import tensorboard ({err}); pip install tensorboard") from err
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def fit(self) -> dict:
        cfg = self.cfg
        board = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(self.config_dict, sort_keys=False))
            board = self._tensorboard() if cfg.tensorboard else None
        while self.keep_training():
            epoch_start = time.perf_counter()
            train_loss = self.train_one_epoch()
            _, _, metrics = evaluate(self.eval_model(), self.val_loader, self.device, cfg, self.dist, levels=True)
            # with --ema the averaged weights are the ones scored, selected as best and saved; the raw
            # weights are scored too (mAP_raw) so that the curves show what averaging gains
            metrics["weights"] = "ema" if self.ema is not None else "model"
            if self.ema is not None:
                _, _, raw = evaluate(self.model, self.val_loader, self.device, cfg, self.dist, desc="eval raw")
                metrics["mAP_raw"] = raw["mAP"]
            self.metrics = {k: v for k, v in metrics.items() if k != "AP"} | {"AP": metrics["AP"]}
            self.epoch, self.step_in_epoch, self.epoch_loss = self.epoch + 1, 0, (0.0, 0)
            scored = math.isfinite(metrics["mAP"])
            if not scored and self.dist.is_main:
                _logger.warning("epoch %d: mAP undefined (no validation image has a positive label); "
                                "best.safetensors is not updated", self.epoch)
            improved = scored and metrics["mAP"] > self.best_map
            self.best_map = max(self.best_map, metrics["mAP"]) if scored else self.best_map
            self.map_history.append(metrics["mAP"] if scored else math.nan)
            # best.safetensors and the log line first, last.safetensors (the resume point) after: a run
            # killed in between redoes the epoch on --resume and writes them again (the log's last
            # record of an epoch counts), where the other order lost them for good
            if self.dist.is_main:
                if improved:
                    self._write(self.run_dir / "best.safetensors", self.eval_model(), self.meta())
                record = {
                    "epoch": self.epoch, "train_loss": train_loss, "lr": self.optimizer.param_groups[0]["lr"],
                    "images_per_s": self.images_per_s, "seconds": time.perf_counter() - epoch_start,
                    **{k: metrics[k] for k in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")},
                    **({"mAP_raw": metrics["mAP_raw"]} if "mAP_raw" in metrics else {}),
                    "weights": metrics["weights"], "level_mAP": metrics["level_mAP"],
                }
                record = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in record.items()}
                with open(self.run_dir / "log.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                if board is not None:
                    scalars = {k: v for k, v in record.items() if isinstance(v, int | float) or v is None}
                    scalars |= {f"level_mAP/{k}": v for k, v in record["level_mAP"].items()}
                    for key, value in scalars.items():
                        board.add_scalar(key, value, self.epoch)
                    board.flush()
                if snapshots.due(self.epoch, cfg.snapshot_every, cfg.snapshot_epochs):
                    # before last.safetensors: a run killed in between redoes this epoch and writes it again
                    self._write(snapshots.path(self.run_dir, self.epoch), self.eval_model(), self.meta())
                tqdm.write(
                    f"epoch {self.epoch}: loss {train_loss:.4f}  mAP {metrics['mAP']:.2f}  "
                    f"CF1 {metrics['CF1']:.2f}  OF1 {metrics['OF1']:.2f}  (best {self.best_map:.2f})"
                )
            self.save_last()
        return self.metrics


def crash_report(folder: Path | None) -> Path:
    """Write the current exception's traceback to ``<run>/crash.log`` (or a temporary file)."""
    text = traceback.format_exc()
    if folder is not None:
        try:
            (folder / "crash.log").write_text(text)
            return folder / "crash.log"
        except OSError:
            pass
    fd, path = tempfile.mkstemp(prefix="catviz-train-crash-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 failed (the message names the file), 2 usage error (before any work),
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with sigterm_as_interrupt():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    dist, lock, trainer, threads = DistInfo(), None, None, torch.get_num_threads()
    try:
        cfg = resolve_config(argv)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = models.resolve_device(cfg.device)
        dist = init_distributed(device)
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        if dist.is_main:  # one writer: rank 0 owns the run folder
            lock = open_run_dir(cfg.run_dir(), cfg.resume, cfg.overwrite)
        if cfg.resume:
            last = cfg.run_dir() / "last.safetensors"
            cfg = resolve_config(argv, read_meta(last).config)  # the run's own length, unless given
            resume_state.check_resume_config(cfg, last)
        torch.manual_seed(cfg.seed + dist.rank)  # DDP broadcasts rank 0's initial weights
        trainer = Trainer(cfg, dist, device, dataclasses.asdict(cfg))
        if dist.is_main:
            _logger.info("model %s on %s; run folder %s", cfg.model, device, trainer.run_dir)
        metrics = trainer.fit()
        if dist.enabled:  # rank 0 may still be writing; leave together (gloo aborts otherwise)
            torch.distributed.barrier()
    except UsageError as err:
        print(f"catviz-train: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (DatasetError, RunError, CheckpointError, OSError) as err:
        print(f"catviz-train: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as stop:
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(f"catviz-train: {how}; {trainer.last_good() if trainer else 'nothing was written'}", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except Exception as err:  # a bug: one line for the user, the traceback kept in a file
        report = crash_report(lock.folder if lock is not None else None)
        print(f"catviz-train: internal error ({type(err).__name__}: {err}); the traceback is in {report}; "
              f"{trainer.last_good() if trainer else 'nothing was written'}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        torch.set_num_threads(threads)  # --threads is this run's, not the calling process's
        if lock is not None:
            lock.release()
        if dist.enabled:
            torch.distributed.destroy_process_group()
    if dist.is_main and not math.isnan(metrics.get("mAP", float("nan"))):
        print(f"done: {trainer.stop_reason()}; best mAP {trainer.best_map:.2f}; checkpoints in {trainer.run_dir}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
