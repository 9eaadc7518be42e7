"""Torch datasets and loaders over :class:`MultiLabelSplit` (the paper's transforms).

Augmentation randomness is a pure function of (seed, epoch, index), so a resumed run,
any number of workers and any number of ranks see exactly the same crops and flips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from catviz.models.preprocess import ImageLoadError, load_image, resize, to_tensor

from .readers import MultiLabelSplit
from .transforms import multi_scale_crop

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformConfig:
    img_size: int = 448
    crop: str = "multiscale"  # ML-GCN's multi-scale crop (transforms.py) or "plain"
    resize_ratio: float = 512 / 448  # plain crop: resize to 512, random crop 448
    hflip: bool = True
    randaugment: bool = False
    cutout: float = 0.0
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)


class MultiLabelDataset(Dataset):
    """(image tensor, target) pairs; an undecodable image gives ``None`` (skipped).

    ``cache_bytes`` > 0 keeps decoded images (before any crop or flip) in memory, read-only,
    until they would take more than that many bytes: on a small set such as the demo,
    decoding is ~60% of the data cost of every epoch. DataLoader workers are new processes
    each epoch: what they cache dies with them, so :meth:`fill_cache` fills it in the parent
    first and the workers inherit it (copy-on-write).
    """

    def __init__(self, split: MultiLabelSplit, transform: TransformConfig, train: bool, seed: int = 0,
                 cache_bytes: int = 0):
        self.split = split
        self.transform = transform
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.cache_bytes = cache_bytes
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, index: int):
        sample = self.split.samples[index]
        try:
            image = self._load(index)
        except ImageLoadError as err:
            _logger.warning("skipping image: %s", err)
            return None
        cfg = self.transform
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            if cfg.crop == "multiscale":
                image = multi_scale_crop(image, cfg.img_size, rng)
            else:
                big = round(cfg.img_size * cfg.resize_ratio)
                image = resize(image, big)
                y, x = rng.integers(0, big - cfg.img_size + 1, 2)
                image = image[y : y + cfg.img_size, x : x + cfg.img_size]
            if cfg.hflip and rng.random() < 0.5:
                image = image[:, ::-1]
            if cfg.randaugment or cfg.cutout:
                return self._augment(image, int(rng.integers(2**31))), self._target(sample)
        else:
            image = resize(image, cfg.img_size)
        return to_tensor(image, cfg.mean, cfg.std), self._target(sample)

    def fill_cache(self) -> None:
        """Decode images into the cache, in order, until the budget is full (unreadable ones are left out)."""
        for index in range(len(self)):
            try:
                self._load(index)
            except ImageLoadError:
                continue
            if index not in self._cache:
                return

    def _load(self, index: int) -> np.ndarray:
        """The decoded image, from the cache, or decoded and cached while within the budget."""
        image = self._cache.get(index)
        if image is None:
            image = load_image(self.split.samples[index].path)
            if self._cached_bytes + image.nbytes <= self.cache_bytes:
                image.setflags(write=False)  # the transforms only read it
                self._cache[index] = image
                self._cached_bytes += image.nbytes
        return image

    @staticmethod
    def _target(sample) -> torch.Tensor:
        return torch.from_numpy(sample.target.astype(np.float32))

    def _augment(self, image: np.ndarray, seed: int) -> torch.Tensor:
        """torchvision's RandAugment / RandomErasing, on a per-sample seeded RNG."""
        from torchvision.transforms import v2

        cfg = self.transform
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            if cfg.randaugment:
                tensor = v2.RandAugment()(tensor)
            tensor = to_tensor(tensor.permute(1, 2, 0).numpy(), cfg.mean, cfg.std)
            if cfg.cutout:
                tensor = v2.RandomErasing(p=cfg.cutout)(tensor)
        return tensor


def collate_skipping_broken(batch):
    """Default collation of the samples that decoded; ``None`` for an all-broken batch."""
    batch = [item for item in batch if item is not None]
    if not batch:
        return None
    return torch.utils.data.default_collate(batch)


class EpochSampler(Sampler[int]):
    """Shuffled (or ordered) indices for one rank: seeded per epoch, resumable mid-epoch.

    Like ``DistributedSampler`` (pads to a multiple of the world size, rank r takes
    every world_size-th index), plus ``skip``: the number of this rank's samples the
    interrupted run already consumed this epoch.
    """

    def __init__(self, size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
            indices = order.tolist()
        else:
            indices = list(range(self.size))
        padded = -(-self.size // self.world_size) * self.world_size
        indices += indices[: padded - self.size]
        return indices[self.rank :: self.world_size][self.skip :]

    def __iter__(self):
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())
