"""The dataset pass of ``catviz-eval --compare`` split over torchrun processes (worker side: torch).

Under ``torchrun --nproc_per_node K`` each process takes one contiguous shard of the split
whose ends fall on whole batches (so in a pass with nothing cached every image is batched
with the same neighbours as in one process), runs the pass over it
(:func:`catviz.dataset_results.run_dataset`, the one results cache: chunk files are named
by time and process id, so the shards' chunks never collide, and every process reads every
chunk, so a pass interrupted under any number of processes resumes under any other) and
reduces its images' explanations (:func:`catviz.explain_study.explain_models`). Rank 0
gathers the probabilities, per-level logits, image sizes, failures and explanation pairs
(:func:`merge_shards`: in the split's order, as one process has them) and alone builds and
writes the report: the numbers are one process's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from catviz.train_cli.data import MultiLabelSplit
from catviz.train_cli.distributed import DistInfo

from .dataset_results import DatasetResults, Model, ModelScores, Progress, run_dataset
from .dataset_source import DatasetSource
from .explain_study import explain_models
from .study import ExplanationPairs

#: How long a process waits at the gather for the slowest shard (one whose images were not
#: cached while another's were can take hours at COCO scale on CPUs). torchrun stops every
#: process when one fails, so this bounds only a true hang.
GATHER_TIMEOUT = timedelta(hours=12)


@dataclass
class ShardSource(DatasetSource):
    """Images ``start:stop`` of a split: the same dataset key (one cache) and description."""

    whole: str = ""  # the whole split's description (the cache's dataset.txt)

    def describe(self) -> str:
        return self.whole


def shard_bounds(n: int, batch_size: int, info: DistInfo) -> tuple[int, int]:
    """This rank's images ``[start, stop)``: the batches of the split dealt out in order,
    as evenly as whole batches allow."""
    batches = -(-n // batch_size)
    first, last = batches * info.rank // info.world_size, batches * (info.rank + 1) // info.world_size
    return min(n, first * batch_size), min(n, last * batch_size)


def shard_source(source: DatasetSource, start: int, stop: int) -> ShardSource:
    split = source.split
    return ShardSource(source.name, source.root,
                       MultiLabelSplit(split.name, split.class_names, split.samples[start:stop], split.unboxed),
                       source.boxes[start:stop], whole=source.describe())


@dataclass
class Shard:
    """One process's part of the pass, as sent to rank 0 (indices into the whole split)."""

    start: int
    stop: int
    scores: dict[str, ModelScores]  # over images start:stop
    sizes: np.ndarray
    failed: dict[int, str]
    complete: bool
    computed: int
    seconds: float
    notes: list[str]
    explained: dict[str, ExplanationPairs] | None  # None: not asked for, or no image scored here


def run_shard(source: DatasetSource, models: Mapping[str, Model], info: DistInfo, batch_size: int = 32,
              workers: int = 0, explain: bool = True, progress: Callable[[Progress], None] | None = None) -> Shard:
    """This rank's shard: the pass over its images, and their explanations when ``explain``."""
    start, stop = shard_bounds(len(source.split.samples), batch_size, info)
    part = shard_source(source, start, stop)
    results = run_dataset(part, models, batch_size, workers, progress=progress)
    scored = np.flatnonzero(results.scored())
    explained = None
    if explain and len(scored):
        explained = {key: _shifted(pairs, start)
                     for key, pairs in explain_models(part, models, scored, results.sizes, batch_size, workers).items()}
    return Shard(start, stop, results.scores, results.sizes, {start + i: why for i, why in results.failed.items()},
                 results.complete, results.computed, results.seconds, results.notes, explained)


def _shifted(pairs: ExplanationPairs, start: int) -> ExplanationPairs:
    pairs.image = pairs.image + start
    return pairs


def merge_shards(source: DatasetSource, shards: list[Shard]) -> tuple[DatasetResults, dict[str, ExplanationPairs] | None]:
    """The whole split's results (as :func:`run_dataset` returns them for one process) and
    explanation pairs (as :func:`explain_models`), from every rank's :class:`Shard`."""
    n, num_labels = len(source.split.samples), len(source.class_names)
    shards = sorted(shards, key=lambda s: s.start)
    results = DatasetResults(source, {}, np.zeros((n, 2), np.int32), {},
                             complete=all(s.complete for s in shards), computed=sum(s.computed for s in shards),
                             seconds=max((s.seconds for s in shards), default=0.0),
                             notes=list(dict.fromkeys(note for s in shards for note in s.notes)))
    for shard in shards:
        results.sizes[shard.start : shard.stop] = shard.sizes
        results.failed |= shard.failed
    for key, first in shards[0].scores.items():
        probabilities = np.full((n, num_labels), np.nan, np.float32)
        levels: dict[str, np.ndarray] = {}
        for shard in shards:
            scores = shard.scores[key]
            probabilities[shard.start : shard.stop] = scores.probabilities
            for level, logits in scores.level_logits.items():
                levels.setdefault(level, np.full((n, num_labels), np.nan, np.float32))[shard.start : shard.stop] = logits
        results.scores[key] = ModelScores(first.checkpoint, first.sha256, first.model, first.input_size, probabilities,
                                          levels, sum(s.scores[key].computed for s in shards))
    parts = [s.explained for s in shards if s.explained is not None]
    if not parts:
        return results, None
    explained = {}
    for key, first in parts[0].items():
        pieces = [part[key] for part in parts]
        explained[key] = ExplanationPairs(
            image=np.concatenate([p.image for p in pieces]), label=np.concatenate([p.label for p in pieces]),
            levels=first.levels, sources=first.sources,
            values={name: np.concatenate([p.values[name] for p in pieces]) for name in first.values},
            chance=np.concatenate([p.chance for p in pieces]))
    return results, explained
