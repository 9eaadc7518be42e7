"""Training runs as the app and ``catviz runs`` read them: a run folder's ``log.jsonl``,
``config.yaml``, snapshots and whether its trainer is still at work. Qt-free and torch-free.

A run folder is one ``catviz-train --out`` wrote: it holds ``log.jsonl``, ``last.safetensors``,
``best.safetensors`` or ``snapshots/epoch-NNN.safetensors``. Damage never hides the rest of a
run: a line of ``log.jsonl`` that is not JSON, not an epoch record or has a value of the wrong
type is skipped (the value dropped) with a message naming the file and line; a snapshot of
another model, of another label set or with unreadable metadata is left off the slider with a
message naming it.

Runs of one model and recipe that differ only in their seed form a :class:`SeedGroup`
(:func:`group_runs`), drawn as a mean with a band (:data:`BAND_KINDS`) over the epochs all its
runs have. What a run is (model, recipe, seed) comes from its ``config.yaml``, else from the
metadata of its checkpoints, and is validated: a run without a model or a seed, or with values
of the wrong type, stays ungrouped with the reason (:attr:`Run.identity_problem`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from catviz.train_cli import snapshots as snapshot_files

LOG = "log.jsonl"
LOCK = ".lock"
MARKERS = ("log.jsonl", "last.safetensors", "best.safetensors", "config.yaml")  # config.yaml: written first
#: The numbers of a log record that are drawn; ``level_mAP`` is a mapping of them.
NUMBERS = ("train_loss", "lr", "mAP", "mAP_raw")
#: The largest config.yaml read (a run's is about 1 KiB); a larger one is not parsed.
MAX_CONFIG_BYTES = 1 << 20
#: Config keys that say where and how a run was kept, not what it trained: runs that differ only
#: in these (and their seed) are seeds of one recipe. The run's length is among them: a band
#: covers the epochs all its runs have.
BOOKKEEPING = frozenset({
    "seed", "out", "data_root", "resume", "overwrite", "allow_changed_config", "device", "workers", "threads",
    "cache_mib", "tensorboard", "save_every", "snapshot_every", "snapshot_epochs", "epochs", "max_epochs",
    "converge_window", "converge_delta",
})
#: How a band spreads around the mean of a seed group: name → what the legend says.
BAND_KINDS = {"minmax": "min-max", "std": "±1 std"}
#: Maps across epochs (catviz.epoch_maps): the most images (columns) and epochs (rows) one figure
#: draws; a run with more snapshots is thinned evenly (:func:`thin`), the first and last kept.
MAX_MAP_IMAGES, MAX_MAP_EPOCHS = 8, 40


class NotARun(ValueError):
    """A folder that holds no training run; the message names it."""


def is_run(folder: Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and (any((folder / name).is_file() for name in MARKERS) or bool(snapshot_files.find(folder)))


@dataclass
class Run:
    folder: Path
    records: dict[int, dict] = field(default_factory=dict)  # epoch -> its (last) record
    problems: list[str] = field(default_factory=list)
    snapshots: dict[int, Path] = field(default_factory=dict)
    model: str | None = None  # from config.yaml (else a checkpoint's metadata), validated
    planned_epochs: int | None = None
    recipe: str | None = None
    seed: int | None = None
    dataset: str | None = None
    settings: dict = field(default_factory=dict)  # what it trained with: the config less BOOKKEEPING
    identity_source: str = ""  # the file model, recipe and seed were read from
    identity_problem: str = ""  # why it cannot join a seed group ("" when it can)
    class_names: tuple[str, ...] | None = None  # its label set (last/best checkpoint, else most snapshots)
    resolved: Path | None = None  # the folder's real path (read where the run is read)
    status: str = ""  # "training (pid N)", "finished", "stopped after epoch k of N", "died ..."
    live: bool = False  # the trainer is still running
    _log_stamp: tuple = ()
    _log_problems: list[str] = field(default_factory=list)
    _config_read: bool = False
    _headers: dict = field(default_factory=dict)  # path → ((size, mtime), metadata or the error)

    @property
    def name(self) -> str:
        return self.folder.name or str(self.folder)

    @property
    def epochs(self) -> list[int]:
        return sorted(self.records)

    @property
    def has_ema(self) -> bool:
        return any("mAP_raw" in r or r.get("weights") == "ema" for r in self.records.values())

    def series(self) -> dict[str, tuple[list[int], list[float]]]:
        """Curve name → (epochs, values), NaN where an epoch lacks the value. Names: ``train loss``,
        ``lr``, ``val mAP`` (or ``val mAP (EMA)`` and ``val mAP (raw)`` with EMA) and ``mAP <level>``."""
        epochs = self.epochs

        def column(get) -> list[float]:
            values = []
            for epoch in epochs:
                value = get(self.records[epoch])
                values.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan)
            return values

        out = {"train loss": (epochs, column(lambda r: r.get("train_loss"))), "lr": (epochs, column(lambda r: r.get("lr")))}
        if self.has_ema:
            out["val mAP (EMA)"] = (epochs, column(lambda r: r.get("mAP")))
            out["val mAP (raw)"] = (epochs, column(lambda r: r.get("mAP_raw")))
        else:
            out["val mAP"] = (epochs, column(lambda r: r.get("mAP")))
        levels = []
        for record in self.records.values():
            levels += [name for name in record.get("level_mAP", {}) if name not in levels]
        for level in levels:
            out[f"mAP {level}"] = (epochs, column(lambda r, level=level: r.get("level_mAP", {}).get(level)))
        return out


def open_run(folder: Path) -> Run:
    """Read a run folder; :class:`NotARun` if it holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotARun(f"{folder}: no such folder")
    if not is_run(folder):
        raise NotARun(f"{folder}: holds no training run (no {', '.join(MARKERS)} or snapshots/)")
    run = Run(folder, resolved=folder.resolve())
    refresh(run)
    return run


def thin(epochs, most: int = MAX_MAP_EPOCHS) -> list[int]:
    """At most ``most`` of ``epochs`` (sorted), evenly spaced, the first and the last kept."""
    epochs = sorted(epochs)
    if len(epochs) <= most:
        return epochs
    step = (len(epochs) - 1) / (most - 1)
    return [epochs[i] for i in dict.fromkeys(round(k * step) for k in range(most))]


def refreshed(run: Run) -> tuple[Run, bool]:
    """A re-read copy of ``run`` and whether anything changed; ``run`` itself is left as it was,
    so a worker can read while the GUI thread draws the old one."""
    copied = copy.copy(run)
    copied._headers = dict(run._headers)
    return copied, refresh(copied)


def refresh(run: Run) -> bool:
    """Re-read what may have changed; whether anything did (cheap when nothing did: a stat)."""
    before = (run.epochs, list(run.snapshots), run.status, len(run.problems), run.class_names)
    _read_config(run)
    log = run.folder / LOG
    try:
        stat = log.stat()
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    except OSError:
        stamp = ()
    live_before = run.live
    run.status, run.live = _status(run)
    if stamp != run._log_stamp or live_before != run.live:
        run._log_stamp = stamp
        run.records, run._log_problems = (_read_log(log, run.live) if stamp else
                                          ({}, [f"{log}: no such file (no epoch logged yet)"]))
    run.snapshots, bad = _read_snapshots(run)
    run.problems = run._log_problems + bad
    run.status, run.live = _status(run)
    return before != (run.epochs, list(run.snapshots), run.status, len(run.problems), run.class_names)


def _read_config(run: Run) -> None:
    """Model, recipe, seed and settings from config.yaml (written first by the trainer), else
    from the ``config`` in a checkpoint's metadata; every value is checked before it is used."""
    if run._config_read:
        return
    config, source = None, "config.yaml"
    path = run.folder / "config.yaml"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) <= MAX_CONFIG_BYTES:
            config = yaml.safe_load(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        config = None
    if not isinstance(config, dict):
        files = [run.folder / "last.safetensors", run.folder / "best.safetensors",
                 *snapshot_files.find(run.folder).values()]
        for file in files:
            meta = _header(run, file, quiet=True)
            if isinstance(meta, dict) and isinstance(meta.get("config"), dict):
                config, source = meta["config"], f"the metadata of {file.relative_to(run.folder)}"
                break
    if not isinstance(config, dict):
        run.identity_problem = "no readable config.yaml or checkpoint metadata: model and seed unknown"
        return
    run._config_read = True
    run.identity_source = source
    run.model = _name(config.get("model"))
    run.dataset = _name(config.get("dataset"))
    recipe = config.get("recipe", "paper")  # configs from before --recipe: the paper's, then the only one
    run.recipe = _name(recipe)
    run.seed = _integer(config.get("seed"), 0, 2**64 - 1)
    run.planned_epochs = _integer(config.get("epochs"), 1, 10**9)
    run.settings = {str(key)[:100]: _setting(key, value) for key, value in list(config.items())[:500]
                    if str(key) not in BOOKKEEPING}
    problems = []
    if run.model is None:
        problems.append("no model" if config.get("model") is None else
                        f"model {_shown(config.get('model'))} is not a model name")
    if run.seed is None:
        problems.append("no seed" if config.get("seed") is None else
                        f"seed {_shown(config.get('seed'))} is not an integer >= 0")
    if run.recipe is None:
        problems.append(f"recipe {_shown(recipe)} is not a recipe name")
    run.identity_problem = f"{source}: {'; '.join(problems)}" if problems else ""


def _name(value) -> str | None:
    """A short printable name (a model, recipe or dataset), else None."""
    return value if isinstance(value, str) and 0 < len(value) <= 100 and value.isprintable() else None


def _integer(value, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def _setting(key, value):
    """A setting as grouping compares it: scalars as they are (text cut short), anything else by
    its type (the trainer writes none; a hand-made nest of aliases is never walked); the
    backbone weights file by its name (the same trunk sits in another folder on another machine)."""
    if key == "pretrained_file" and isinstance(value, str):
        return Path(value).name
    if isinstance(value, str):
        return value[:200]
    if value is None or isinstance(value, bool | int | float):
        return value
    return f"<a {type(value).__name__}>"


def _shown(value) -> str:
    """A value in a message: scalars as written (cut short), anything else by its type."""
    if not (value is None or isinstance(value, bool | int | float | str)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _read_log(path: Path, live: bool) -> tuple[dict[int, dict], list[str]]:
    records, problems = {}, []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        return {}, [f"{path}: cannot be read ({err.strerror or err})"]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif live and lines:  # the trainer is writing this line now
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            problems.append(f"{path}, line {number}: not a JSON record ({err}); skipped")
            continue
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            problems.append(f"{path}, line {number}: no epoch number (an integer >= 1); skipped")
            continue
        for key in NUMBERS:
            value = record.get(key)
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                problems.append(f"{path}, line {number}: {key} is {value!r}, not a number; left out")
                record.pop(key)
        levels = record.get("level_mAP", {})
        if not isinstance(levels, dict):
            problems.append(f"{path}, line {number}: level_mAP is not a mapping; left out")
            levels = {}
        record["level_mAP"] = {str(k): v for k, v in levels.items()
                               if isinstance(v, int | float) and not isinstance(v, bool)}
        records[epoch] = record  # a redone epoch (after --resume): its last record counts
    return dict(sorted(records.items())), problems


def snapshot_header(path: Path) -> dict:
    """The catviz metadata of a safetensors file, read from its header alone (no torch)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        if size > 100_000_000:
            raise ValueError("header too large")
        header = json.loads(f.read(size))
    return json.loads(header.get("__metadata__", {}).get("catviz", "null")) or {}


def _header(run: Run, path: Path, quiet: bool = False):
    """``path``'s catviz metadata, read again only when the file changed; the error (an
    exception) when it cannot be read; None (``quiet``) when the file is not there."""
    try:
        stat = path.stat()
    except OSError as err:
        return None if quiet else err
    stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = run._headers.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        meta = snapshot_header(path)
    except (OSError, ValueError, struct.error, AttributeError, TypeError, RecursionError) as err:
        meta = err
    run._headers[path] = (stamp, meta)
    return meta


def label_set(meta) -> tuple[str, ...] | None:
    """A checkpoint's class names, when they are a list of short strings."""
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if isinstance(names, list) and 0 < len(names) <= 100_000 \
            and all(isinstance(n, str) and len(n) <= 200 for n in names):
        return tuple(names)
    return None


def describe_labels(names: tuple[str, ...] | list[str]) -> str:
    """``10 labels: 0, 1, 2, 3 ...``"""
    shown = ", ".join(_shown(n).strip("'") for n in names[:4])
    return f"{len(names)} label{'s' * (len(names) != 1)}: {shown}{' ...' if len(names) > 4 else ''}"


def _read_snapshots(run: Run) -> tuple[dict[int, Path], list[str]]:
    found, problems, labels = {}, [], {}
    for epoch, path in snapshot_files.find(run.folder).items():
        meta = _header(run, path)
        if isinstance(meta, BaseException):
            reason = meta.strerror if isinstance(meta, OSError) and meta.strerror else meta
            problems.append(f"{path}: not a readable catviz checkpoint ({reason}); left off the slider")
            continue
        if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not meta.get("model"):
            problems.append(f"{path}: not a catviz checkpoint (no catviz metadata); left off the slider")
            continue
        if run.model and meta["model"] != run.model:
            problems.append(f"{path}: a snapshot of {_shown(meta['model'])}, not of this run's {run.model!r}; "
                            "left off the slider")
            continue
        labels[epoch] = label_set(meta)
        if labels[epoch] is None:
            problems.append(f"{path}: its class names are missing or not a list of names; left off the slider")
            continue
        found[epoch] = path
    run.class_names = _run_labels(run, [names for epoch, names in labels.items() if epoch in found])
    for epoch in list(found):
        if labels[epoch] != run.class_names:
            problems.append(f"{found.pop(epoch)}: a snapshot of another label set ({describe_labels(labels[epoch])}), "
                            f"not this run's ({describe_labels(run.class_names)}); left off the slider")
    return found, problems


def _run_labels(run: Run, snapshot_labels: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The run's label set: its last (or best) checkpoint's, else the one most snapshots have."""
    for name in ("last.safetensors", "best.safetensors"):
        meta = _header(run, run.folder / name, quiet=True)
        names = label_set(meta)
        if names is not None and (not run.model or meta.get("model") == run.model):
            return names
    counts = Counter(snapshot_labels)
    return max(counts, key=lambda names: (counts[names], -snapshot_labels.index(names))) if counts else None


def _status(run: Run) -> tuple[str, bool]:
    """(what the run is doing, whether its trainer is alive), from its lock file and files."""
    lock = run.folder / LOCK
    done = max(run.records, default=0)
    planned = run.planned_epochs
    if lock.is_file() and not lock.is_symlink():
        try:
            pid = int(lock.read_text()[:20].strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and _alive(pid):
            return f"training (pid {pid}), epoch {done}" + (f" of {planned}" if planned else ""), True
        if pid:
            return f"died: its trainer (pid {pid}) is gone, after epoch {done}", False
    crash = run.folder / "crash.log"
    log = run.folder / LOG
    if crash.is_file() and (not log.is_file() or crash.stat().st_mtime >= log.stat().st_mtime):
        return f"died after epoch {done} (see {crash})", False
    if planned and done < planned:
        return f"stopped after epoch {done} of {planned}", False
    return f"finished ({done} epochs)", False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# seed groups ---------------------------------------------------------------------------------
@dataclass
class Band:
    """One curve of a seed group: over ``epochs`` (consecutive; NaN where not all runs have a
    value), the mean of its runs and the band's edges."""

    epochs: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]


@dataclass
class SeedGroup:
    """Runs of one model and recipe (and the same other settings) that differ in their seed."""

    runs: list[Run]
    name: str = ""  # "cat_tiny · paper", with what tells it from a like-named group

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def common_epochs(self) -> list[int]:
        """The logged epochs every run of the group has."""
        return sorted(set.intersection(*(set(run.records) for run in self.runs)))

    def coverage(self) -> str:
        """Which epochs the bands cover, and which runs go on past them."""
        common = self.common_epochs
        if not common:
            return "no epoch that all its runs have logged"
        span = f"epoch{'s' * (len(common) > 1)} {common[0]}" + (f"-{common[-1]}" if len(common) > 1 else "")
        longer = [f"{run.name} (seed {run.seed}) goes on to {run.epochs[-1]}" for run in self.runs
                  if run.epochs and run.epochs[-1] > common[-1]]
        gaps = len(common) != common[-1] - common[0] + 1
        if not longer and not gaps:
            return span
        return f"{span}, those all {len(self.runs)} runs have" + ("; " + ", ".join(longer) if longer else "")

    def bands(self, kind: str) -> dict[str, Band]:
        """Curve name (as :meth:`Run.series`) → its :class:`Band` of ``kind`` (a :data:`BAND_KINDS`
        key): min-max, or the mean ± one standard deviation of the runs (n - 1 in the divisor)."""
        if kind not in BAND_KINDS:
            raise ValueError(f"band kind must be one of {', '.join(BAND_KINDS)}, not {kind!r}")
        every = [run.series() for run in self.runs]
        names = [name for name in every[0] if all(name in series for series in every[1:])]
        out = {}
        for name in names:
            values = [dict(zip(*series[name], strict=True)) for series in every]
            common = sorted(set.intersection(*({e for e, v in by_epoch.items() if math.isfinite(v)}
                                                for by_epoch in values)))
            if not common:
                continue
            epochs = list(range(common[0], common[-1] + 1))
            band = Band(epochs, [], [], [])
            for epoch in epochs:
                if epoch not in common:
                    for column in (band.mean, band.low, band.high):
                        column.append(math.nan)
                    continue
                xs = [by_epoch[epoch] for by_epoch in values]
                mean = sum(xs) / len(xs)
                if kind == "minmax":
                    low, high = min(xs), max(xs)
                else:
                    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
                    low, high = mean - std, mean + std
                band.mean.append(mean)
                band.low.append(low)
                band.high.append(high)
            out[name] = band
        return out


def group_runs(runs: list[Run]) -> tuple[list[SeedGroup], list[tuple[Run, str]]]:
    """Seed groups of two or more runs, and the runs left ungrouped with why, in the order given.

    Runs group when their dataset, model, recipe and every other setting agree (the config less
    :data:`BOOKKEEPING`) and their seeds differ; a second run of a seed already in its group
    stays out (a copy or a rerun would count twice)."""
    keyed: dict[tuple, list[Run]] = {}
    ungrouped: list[tuple[Run, str]] = []
    for run in runs:
        if run.identity_problem or run.model is None or run.seed is None:
            ungrouped.append((run, run.identity_problem or "model and seed not known (config.yaml not read yet)"))
            continue
        key = (run.dataset, run.model, run.recipe, tuple(sorted(run.settings.items(), key=lambda kv: kv[0])))
        members = keyed.setdefault(key, [])
        twin = next((other for other in members if other.seed == run.seed), None)
        if twin is not None:
            ungrouped.append((run, f"seed {run.seed} again: {twin.name} has it already"))
            continue
        members.append(run)
    groups = []
    for members in keyed.values():
        if len(members) > 1:
            groups.append(SeedGroup(members))
        else:
            run = members[0]
            ungrouped.append((run, f"the only run of {run.model} · {run.recipe} (seed {run.seed}) with its settings"))
    order = {id(run): i for i, run in enumerate(runs)}
    groups.sort(key=lambda g: order[id(g.runs[0])])
    ungrouped.sort(key=lambda item: order[id(item[0])])
    _name_groups(groups)
    return groups, ungrouped


def _name_groups(groups: list[SeedGroup]) -> None:
    """``model · recipe``; the dataset when groups of several datasets are shown; and the
    settings that tell apart groups of the same model and recipe."""
    datasets = {g.runs[0].dataset for g in groups}
    for group in groups:
        first = group.runs[0]
        group.name = f"{first.model} · {first.recipe}" + (f" · {first.dataset}" if len(datasets) > 1 else "")
    bases = [g.name for g in groups]
    for group, base in zip(groups, bases, strict=True):
        alike = [g for g, other in zip(groups, bases, strict=True) if other == base]
        if len(alike) > 1:
            mine = group.runs[0].settings
            differing = [k for k in sorted(set().union(*(g.runs[0].settings for g in alike)))
                         if any(g.runs[0].settings.get(k) != mine.get(k) for g in alike)]
            group.name += " (" + ", ".join(f"{k} {mine.get(k, '-')}" for k in differing[:3]) + ")"
