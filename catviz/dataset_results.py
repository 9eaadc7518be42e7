"""Both models over a whole split, batched, with an on-disk cache (worker side: torch, no Qt).

Per image and model we keep the per-label probabilities and per-level logits (float32,
O(images x labels)); never images or maps. The cache lives in the user's cache folder
(``~/.cache/catviz/results``, or ``$CATVIZ_CACHE_DIR``)::

    results/<dataset key>/<checkpoint sha256>/chunk-*.npz

The dataset key hashes (dataset name, resolved root, split); each checkpoint's folder is
named by the SHA-256 of its file, so a changed checkpoint invalidates only its own part.
Inside, rows are keyed by the image's path relative to the dataset root and stamped with
the file's size and modification time (a changed image is recomputed). Rows are written
every :data:`CHUNK_IMAGES` images, atomically, so an interrupted pass continues where it
stopped.

A cache file is an untrusted input, like a checkpoint: each chunk names the format version,
the checkpoint's SHA-256 and the dataset key it belongs to, and the images of its rows; a
chunk naming another checkpoint or dataset (a file copied between folders) is not used.
Sizes are checked before anything is allocated: the zip's declared sizes (at most
:data:`MAX_CHUNK_BYTES` uncompressed in all, so a compressed bomb is never inflated) and
every member's ``.npy`` header (dtype, shape; at most :data:`MAX_CHUNK_ROWS` rows) are read
first. A chunk that fails any check (or does not load with ``allow_pickle=False``, or whose
keys, dtypes, shapes, labels or values are not what we write) is deleted, said once (logged,
and in :attr:`DatasetResults.notes` for the caller's messages) and its images are computed
again. A cache folder that cannot be written (read-only, or a file where the folder should
be) means running without the cache, said once the same way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from catviz.models.checkpoint import CheckpointError, CheckpointMeta, atomic_write
from catviz.models.preprocess import ImageLoadError, load_image, read_header, resize, to_tensor

from .dataset_report import ReportInput
from .dataset_source import DatasetSource
from .roles import role_of

_logger = logging.getLogger(__name__)

CACHE_FORMAT = 2
#: Rows written per cache file: at most this many images are lost to a hard kill.
CHUNK_IMAGES = 256
#: A chunk holding more rows than this, or declaring more bytes uncompressed, is not ours.
MAX_CHUNK_ROWS = 4096
MAX_CHUNK_BYTES = 64 << 20
MAX_NAME_CHARS = 4096  # an image's relative path, in a chunk's string arrays
_CHUNK_KEYS = {"format", "checkpoint", "dataset", "class_names", "levels", "images", "stamps", "sizes", "errors",
               "probabilities"}
#: Each member's dtype kind and number of dimensions, checked from its header (level_* as probabilities).
_MEMBER_KINDS = {"format": ("i", 1), "checkpoint": ("U", 1), "dataset": ("U", 1), "class_names": ("U", 1),
                 "levels": ("U", 1), "images": ("U", 1), "stamps": ("i", 2), "sizes": ("i", 2), "errors": ("U", 1),
                 "probabilities": ("f", 2)}


class Model(Protocol):
    """What the runner needs of a loaded model (``catviz.inference.LoadedModel`` is one)."""

    path: Path
    model: torch.nn.Module
    meta: CheckpointMeta
    device: torch.device


def default_cache_dir() -> Path:
    if os.environ.get("CATVIZ_CACHE_DIR"):
        return Path(os.environ["CATVIZ_CACHE_DIR"])
    return Path(os.environ.get("CATVIZ_CACHE", Path.home() / ".cache" / "catviz")) / "results"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_labels(meta: CheckpointMeta, path: Path, source: DatasetSource) -> None:
    """Refuse a checkpoint whose labels are not the dataset's, naming the difference."""
    ours, theirs = list(meta.class_names), source.class_names
    if ours == theirs:
        return
    missing = [n for n in theirs if n not in ours]
    extra = [n for n in ours if n not in theirs]

    def names(items: list[str]) -> str:
        return ", ".join(items[:6]) + (f" ... ({len(items)} in all)" if len(items) > 6 else "")

    if missing or extra:
        detail = "; ".join(part for part in (
            f"the dataset's labels {names(missing)} are not in the checkpoint" if missing else "",
            f"the checkpoint's labels {names(extra)} are not in the dataset" if extra else "") if part)
    else:
        detail = "same labels in another order"
    raise CheckpointError(f"{path}: its {len(ours)} labels do not match {source.name}'s {len(theirs)}: {detail}")


@dataclass
class Progress:
    done: int  # images computed in this pass so far
    total: int  # images this pass computes (the cached ones are not counted)
    cached: int  # images read from the cache
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.images_per_second
        return (self.total - self.done) / rate if rate > 0 else None


@dataclass
class ModelScores:
    """One model's outputs over the split; rows not computed are NaN."""

    checkpoint: Path
    sha256: str
    model: str
    input_size: int
    probabilities: np.ndarray  # (N, L) float32
    level_logits: dict[str, np.ndarray]  # level → (N, L) float32
    computed: int = 0  # rows computed in this pass (the others came from the cache)


@dataclass
class DatasetResults:
    source: DatasetSource
    scores: dict[str, ModelScores]  # role → scores
    sizes: np.ndarray  # (N, 2) int32: each image file's full (height, width); 0 if unknown
    failed: dict[int, str]  # sample index → why it could not be decoded
    complete: bool = True  # False after a cancel
    computed: int = 0  # images computed in this pass (not read from the cache)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the caller should tell the user (the cache's troubles)

    def scored(self) -> np.ndarray:
        """(N,) bool: decoded and scored by every model (what the report uses)."""
        mask = np.ones(len(self.source.split.samples), bool)
        for scores in self.scores.values():
            mask &= np.isfinite(scores.probabilities).all(1)
        mask[list(self.failed)] = False
        return mask


# cache ---------------------------------------------------------------------------------
@dataclass
class _Row:
    stamp: tuple[int, int]
    size: tuple[int, int]
    error: str
    probabilities: np.ndarray
    level_logits: dict[str, np.ndarray]


class CacheChunkError(ValueError):
    """A chunk file that is not one this checkpoint and dataset wrote."""


@dataclass
class ResultCache:
    """One checkpoint's rows on one dataset: a folder of chunk files. ``folder`` None: no
    cache (nothing read, nothing written)."""

    folder: Path | None
    class_names: list[str]
    checkpoint: str = ""  # the checkpoint's SHA-256, named in every chunk
    dataset: str = ""  # the dataset key, named in every chunk
    pending: list[tuple[str, _Row]] = field(default_factory=list)
    say: Callable[[str], None] = _logger.warning

    def load(self) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        if self.folder is None:
            return rows
        for path in sorted(self.folder.glob("chunk-*.npz")):
            try:
                rows.update(self._read(path))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as err:
                self.say(f"results cache: discarded {path} ({err}); its images are computed again")
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass
        return rows

    def _read(self, path: Path) -> dict[str, _Row]:
        arrays = read_chunk(path, len(self.class_names))
        levels = arrays.get("levels", np.zeros(0, "<U1"))
        expected = _CHUNK_KEYS | {f"level_{name}" for name in levels.tolist()}
        if set(arrays) != expected:
            raise CacheChunkError(f"keys {sorted(arrays)} are not {sorted(expected)}")
        n, num_labels = len(arrays["images"]), len(self.class_names)
        if arrays["format"].shape != (1,) or int(arrays["format"][0]) != CACHE_FORMAT:
            raise CacheChunkError(f"format {arrays['format'].tolist()}, not {CACHE_FORMAT}")
        if arrays["checkpoint"].tolist() != [self.checkpoint]:
            raise CacheChunkError(f"written for another checkpoint (sha256 {arrays['checkpoint'].tolist()})")
        if arrays["dataset"].tolist() != [self.dataset]:
            raise CacheChunkError(f"written for another dataset (key {arrays['dataset'].tolist()})")
        checks = [
            (arrays["class_names"].tolist() == self.class_names, "labels"),
            (levels.ndim == 1, "levels"),
            (arrays["images"].ndim == 1 and len(set(arrays["images"].tolist())) == n, "images"),
            (arrays["errors"].shape == (n,), "errors"),
            (arrays["stamps"].dtype == np.int64 and arrays["stamps"].shape == (n, 2), "stamps"),
            (arrays["sizes"].dtype == np.int32 and arrays["sizes"].shape == (n, 2), "sizes"),
        ]
        for name in ["probabilities", *(f"level_{lv}" for lv in levels.tolist())]:
            checks.append((arrays[name].dtype == np.float32 and arrays[name].shape == (n, num_labels), name))
        bad = [name for ok, name in checks if not ok]
        if bad:
            raise CacheChunkError(f"unexpected {', '.join(bad)}")
        decoded = arrays["errors"] == ""
        probs = arrays["probabilities"][decoded]
        if not (np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()):
            raise CacheChunkError("probabilities outside [0, 1]")
        if not all(np.isfinite(arrays[f"level_{lv}"][decoded]).all() for lv in levels.tolist()):
            raise CacheChunkError("non-finite logits")
        return {
            image: _Row(tuple(arrays["stamps"][i].tolist()), tuple(arrays["sizes"][i].tolist()), str(arrays["errors"][i]),
                        arrays["probabilities"][i], {lv: arrays[f"level_{lv}"][i] for lv in levels.tolist()})
            for i, image in enumerate(arrays["images"].tolist())
        }

    def add(self, image: str, row: _Row) -> None:
        if self.folder is None:
            return
        self.pending.append((image, row))
        if len(self.pending) >= CHUNK_IMAGES:
            self.flush()

    def flush(self) -> None:
        if not self.pending or self.folder is None:
            self.pending = []
            return
        rows, self.pending = self.pending, []
        levels = sorted({lv for _, r in rows for lv in r.level_logits})
        num_labels = len(self.class_names)

        def stack(get) -> np.ndarray:
            return np.stack([get(r) for _, r in rows]).astype(np.float32).reshape(len(rows), num_labels)

        nan = np.full(num_labels, np.nan, np.float32)
        arrays = {
            "format": np.array([CACHE_FORMAT], np.int64),
            "checkpoint": np.array([self.checkpoint], dtype=str),
            "dataset": np.array([self.dataset], dtype=str),
            "class_names": np.array(self.class_names, dtype=str),
            "levels": np.array(levels, dtype=str).reshape(-1),
            "images": np.array([image for image, _ in rows], dtype=str),
            "stamps": np.array([r.stamp for _, r in rows], np.int64).reshape(-1, 2),
            "sizes": np.array([r.size for _, r in rows], np.int32).reshape(-1, 2),
            "errors": np.array([r.error for _, r in rows], dtype=str),
            "probabilities": stack(lambda r: r.probabilities),
        } | {f"level_{lv}": stack(lambda r, lv=lv: r.level_logits.get(lv, nan)) for lv in levels}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        name = f"chunk-{time.time_ns():x}-{os.getpid()}.npz"
        try:
            atomic_write(self.folder / name, write)
        except OSError as err:  # e.g. a full disk: the pass goes on without the cache
            self.say(f"results cache: cannot write into {self.folder} ({err.strerror or err}); "
                     "going on without the cache")
            self.folder = None


def read_chunk(path: Path, num_labels: int) -> dict[str, np.ndarray]:
    """A chunk's arrays, every size checked before it is allocated: the zip's declared
    uncompressed sizes (:data:`MAX_CHUNK_BYTES` in all), then each member's ``.npy`` header
    (version 1 or 2, a plain dtype of the kind we write, at most :data:`MAX_CHUNK_ROWS` rows,
    ``num_labels`` or 2 columns, and no more bytes than the member holds). Raises
    :class:`CacheChunkError` (or the zip's own errors) otherwise."""
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > 64:
            raise CacheChunkError(f"{len(members)} members")
        total = sum(m.file_size for m in members)
        if total > MAX_CHUNK_BYTES:
            raise CacheChunkError(f"declares {total} bytes uncompressed, more than the {MAX_CHUNK_BYTES} a chunk may hold")
        arrays = {}
        for member in members:
            key = member.filename.removesuffix(".npy")
            kind, ndim = _MEMBER_KINDS["probabilities" if key.startswith("level_") else key] \
                if key in _MEMBER_KINDS or key.startswith("level_") else (None, None)
            if kind is None or key in arrays:
                raise CacheChunkError(f"unexpected member {member.filename!r}")
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise CacheChunkError(f"{key}: .npy version {version}")
                if dtype.hasobject or dtype.kind != kind or len(shape) != ndim or fortran:
                    raise CacheChunkError(f"{key}: {dtype} {shape} is not what a chunk holds")
                if shape[0] > MAX_CHUNK_ROWS or (ndim == 2 and shape[1] not in (2, num_labels)):
                    raise CacheChunkError(f"{key}: shape {shape}, more than a chunk holds")
                if kind == "U" and dtype.itemsize > 4 * MAX_NAME_CHARS:
                    raise CacheChunkError(f"{key}: strings of {dtype.itemsize // 4} characters")
                nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
                if nbytes > member.file_size:
                    raise CacheChunkError(f"{key}: its header declares shape {shape} ({nbytes} bytes) "
                                          f"in a {member.file_size}-byte member")
                data = f.read(nbytes)
                if len(data) != nbytes:
                    raise CacheChunkError(f"{key}: truncated")
            arrays[key] = np.frombuffer(data, dtype).reshape(shape)
    return arrays


def _usable_cache(folder: Path, describe: str | None, say: Callable[[str], None]) -> Path | None:
    """``folder`` created if need be and probed with a real write (``access()`` says yes to
    root on read-only mounts); None, said once, when it cannot be used: the pass then runs
    without the cache. ``describe``: written to ``dataset.txt`` there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if describe is not None:
            atomic_write(folder / "dataset.txt", lambda tmp: Path(tmp).write_text(describe + "\n"))
        else:
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as err:
        say(f"results cache: cannot write into {folder} ({err.strerror or err}); running without the cache "
            "(nothing is read from it or written to it)")
        return None
    return folder


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


# data ----------------------------------------------------------------------------------
class EvalImages(Dataset):
    """The test-time transform of ``train_cli``'s ``MultiLabelDataset`` (resize to the
    input size, normalise), keeping why an image failed to decode instead of only logging it.

    Items: ``(sample index, tensor or None, (height, width), error)``.
    """

    def __init__(self, source: DatasetSource, indices: list[int], size: int, mean, std):
        self.samples, self.indices = source.split.samples, indices
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        path = self.samples[index].path
        try:
            header = read_header(path)
            image = load_image(path)  # large images are decoded reduced (at most MAX_SIDE a side)
        except ImageLoadError as err:
            return index, None, (0, 0), str(err)
        return index, to_tensor(resize(image, self.size), self.mean, self.std), _file_size(header, image), ""


def _file_size(header, image: np.ndarray) -> tuple[int, int]:
    """The file's full (height, width) — the frame its boxes are given in — turned as the
    decoded image is (EXIF orientation may swap the sides)."""
    size = (header.height, header.width)
    rotated = (image.shape[0] > image.shape[1]) != (size[0] > size[1]) and size[0] != size[1]
    return size[::-1] if rotated else size


def _collate(items):
    decoded = [item for item in items if item[1] is not None]
    images = torch.stack([item[1] for item in decoded]) if decoded else None
    return images, [item[0] for item in decoded], [item[2] for item in decoded], \
        [(item[0], item[3]) for item in items if item[1] is None]


def make_loader(source: DatasetSource, indices: list[int], meta: CheckpointMeta, batch_size: int,
                workers: int) -> DataLoader:
    """Ordered, batched, with the checkpoint's own input size and normalisation."""
    dataset = EvalImages(source, indices, meta.input_size, meta.mean, meta.std)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate,
                      pin_memory=torch.cuda.is_available())


# the pass ------------------------------------------------------------------------------
def run_dataset(
    source: DatasetSource,
    models: Mapping[str, Model],
    batch_size: int = 32,
    workers: int = 0,
    cache_dir: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> DatasetResults:
    """Every model's probabilities and per-level logits for every image of ``source``.

    Cached rows are read first; only the missing (image, model) pairs are computed, in
    order, batched. ``progress`` is called after each batch; ``cancelled`` is polled
    between batches, and a cancelled pass writes what it computed and returns with
    ``complete=False``. Raises :class:`CheckpointError` when a model's labels differ
    from the dataset's.
    """
    start = time.perf_counter()
    samples = source.split.samples
    n, num_labels = len(samples), len(source.class_names)
    folder = (cache_dir or default_cache_dir()) / source.key
    images = [source.relative(s.path) for s in samples]
    stamps = [_stamp(s.path) for s in samples]
    results = DatasetResults(source, {}, np.zeros((n, 2), np.int32), {})

    def say(message: str) -> None:  # once: logged, and kept for the caller's messages
        _logger.warning("%s", message)
        results.notes.append(message)

    for loaded in models.values():
        check_labels(loaded.meta, loaded.path, source)
    usable = _usable_cache(folder, source.describe(), say)
    caches, todo = {}, {}
    for role, loaded in models.items():
        sha = file_sha256(loaded.path)
        cache = caches[role] = ResultCache(_usable_cache(folder / sha, None, say) if usable else None,
                                           source.class_names, sha, source.key, say=say)
        scores = results.scores[role] = ModelScores(
            loaded.path, sha, loaded.meta.model, loaded.meta.input_size,
            np.full((n, num_labels), np.nan, np.float32), {})
        todo[role] = []
        rows = cache.load()
        for index, (image, stamp) in enumerate(zip(images, stamps, strict=True)):
            row = rows.get(image)
            if row is None or row.stamp != stamp:
                todo[role].append(index)
            else:
                _fill(results, scores, index, row)
    # Models that share input size and normalisation share one loader (one decode per image).
    groups: dict[tuple, list[str]] = {}
    for role, loaded in models.items():
        m = loaded.meta
        groups.setdefault((m.input_size, tuple(m.mean), tuple(m.std)), []).append(role)
    plans = [(roles, sorted(set().union(*(todo[r] for r in roles)))) for roles in groups.values()]
    total = sum(len(indices) for _, indices in plans)
    cached = n - len(set().union(*todo.values())) if todo else n
    done = 0
    for roles, indices in plans:
        if not indices or not results.complete:
            continue
        wanted = {role: set(todo[role]) for role in roles}
        loader = make_loader(source, indices, models[roles[0]].meta, batch_size, workers)
        for batch, batch_indices, sizes, failures in loader:
            for index, error in failures:
                results.failed[index] = error
                for role in roles:
                    if index in wanted[role]:
                        caches[role].add(images[index], _Row(stamps[index], (0, 0), error,
                                                             np.full(num_labels, np.nan, np.float32), {}))
            for index, size in zip(batch_indices, sizes, strict=True):
                results.sizes[index] = size
            for role in roles if batch is not None else ():
                rows = [k for k, index in enumerate(batch_indices) if index in wanted[role]]
                if rows:
                    _forward(models[role], batch if len(rows) == len(batch_indices) else batch[rows],
                             [batch_indices[k] for k in rows], results, role, caches[role], images, stamps)
            done += len(batch_indices) + len(failures)
            results.computed = done
            if progress is not None:
                progress(Progress(done, total, cached, time.perf_counter() - start))
            if cancelled():
                results.complete = False
                break
    for cache in caches.values():
        cache.flush()
    for role, scores in results.scores.items():
        scores.level_logits = _in_model_order(models[role], scores.level_logits)
    results.seconds = time.perf_counter() - start
    return results


def _in_model_order(loaded: Model, level_logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The levels in the model's own order (coarse to fine: P5, P4, P3), whether they were
    computed or read from the cache (which stores them sorted by name)."""
    spec = getattr(loaded.model, "spec", None)
    order = [level.name for level in spec.levels] if spec is not None else []
    rank = {name: k for k, name in enumerate(order)}
    return {name: level_logits[name] for name in sorted(level_logits, key=lambda name: rank.get(name, len(rank)))}


def _forward(loaded: Model, batch: torch.Tensor, indices: list[int], results: DatasetResults, role: str,
             cache: ResultCache, images: list[str], stamps: list[tuple[int, int]]) -> None:
    lock = getattr(loaded, "lock", None)  # the app's interactive inference shares the model
    with torch.no_grad():
        if lock is not None:
            lock.acquire()
        try:
            out = loaded.model(batch.to(loaded.device, non_blocking=True))
        finally:
            if lock is not None:
                lock.release()
        probabilities = torch.sigmoid(out.logits.float()).cpu().numpy()
        levels = {k: v.float().cpu().numpy() for k, v in out.level_logits.items()}
    scores = results.scores[role]
    scores.computed += len(indices)
    for k, index in enumerate(indices):
        row = _Row(stamps[index], tuple(int(v) for v in results.sizes[index]), "", probabilities[k],
                   {lv: v[k] for lv, v in levels.items()})
        _fill(results, scores, index, row)
        cache.add(images[index], row)


def _fill(results: DatasetResults, scores: ModelScores, index: int, row: _Row) -> None:
    if row.error:
        results.failed[index] = row.error
        return
    scores.probabilities[index] = row.probabilities
    for level, logits in row.level_logits.items():
        if level not in scores.level_logits:
            scores.level_logits[level] = np.full_like(scores.probabilities, np.nan)
        scores.level_logits[level][index] = logits
    if row.size != (0, 0):
        results.sizes[index] = row.size


def report_input(results: DatasetResults) -> ReportInput:
    """What :func:`catviz.dataset_report.build_report` reads, from a finished (or cancelled) pass."""
    source = results.source
    sizes = [s.input_size for s in results.scores.values() if role_of(s) == "cat"] or \
        [s.input_size for s in results.scores.values()]  # a CAT model's input, as catviz-eval --compare
    return ReportInput(
        class_names=source.class_names,
        paths=[s.path for s in source.split.samples],
        targets=source.split.targets(),
        probabilities={role: s.probabilities for role, s in results.scores.items()},
        level_logits={role: s.level_logits for role, s in results.scores.items()},
        boxes=source.boxes,
        sizes=results.sizes,
        input_size=sizes[0],
        failed=results.failed,
        scored=results.scored(),
    )
