"""The app's state in plain Python (no Qt): views observe it, workers fill it.

Which images are loaded (and which failed, with why), which one and which label are
selected, the display settings, the loaded models and every result, cached per image
and model. Changes are announced to subscribers by event name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .inference import InferenceResult, LoadedModel

ROLES = ("baseline", "cat")
#: Results kept per (image, model), most recent first; older ones are recomputed on demand.
#: A full-size CAT result (80 labels' CAMs, attention) is a few MB.
MAX_CACHED_RESULTS = 128
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}


@dataclass
class ImageEntry:
    path: Path
    ground_truth: set[str] | None = None  # label names, when known
    image: np.ndarray | None = None  # decoded RGB, once a worker has read it
    error: str | None = None  # why it cannot be shown


@dataclass
class DisplaySettings:
    threshold: float = 0.5
    label: str | None = None  # selected label name
    cam_method: str = "CAM"  # "CAM" or a grad-cam method name
    cam_level: str = "combined"  # "combined" or a CAT level (P5, P4, P3)
    colormap: str = "turbo"
    opacity: float = 0.5
    lrd_layer: int | str = "rollout"  # 0, 1 or "rollout"
    head: int | str = "mean"  # head index or "mean"
    query: tuple[int, int] | None = None  # clicked P5 cell (row, col)


class Observable:
    """Minimal publish/subscribe: ``subscribe(event, callback)``, ``emit(event, *args)``."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable]] = defaultdict(list)

    def subscribe(self, event: str, callback: Callable) -> None:
        self._subscribers[event].append(callback)

    def emit(self, event: str, *args) -> None:
        for callback in list(self._subscribers[event]):
            callback(*args)


@dataclass
class AppState(Observable):
    images: list[ImageEntry] = field(default_factory=list)
    current: int = -1
    models: dict[str, LoadedModel] = field(default_factory=dict)
    results: dict[tuple[Path, str], InferenceResult] = field(default_factory=dict)
    settings: DisplaySettings = field(default_factory=DisplaySettings)
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        Observable.__init__(self)

    # images ----------------------------------------------------------------------------
    def add_images(self, paths: list[Path], ground_truth: dict[Path, set[str]] | None = None) -> list[ImageEntry]:
        """Add files (folders are expanded to their image files); skip ones already listed."""
        known = {e.path for e in self.images}
        added = []
        for path in expand_paths(paths):
            if path in known:
                continue
            known.add(path)
            added.append(ImageEntry(path, (ground_truth or {}).get(path)))
        self.images.extend(added)
        if added:
            self.emit("images_added", added)
            if self.current < 0:
                self.select(0)
        return added

    def set_image_data(self, path: Path, image: np.ndarray | None, error: str | None) -> None:
        for entry in self.images:
            if entry.path == path:
                entry.image, entry.error = image, error
                if error:
                    self.report(error)
                self.emit("image_loaded", entry)

    def select(self, index: int) -> None:
        if 0 <= index < len(self.images) and index != self.current:
            self.current = index
            self.settings.query = None
            self.emit("selection_changed", self.current_entry)

    def step(self, delta: int) -> None:
        if self.images:
            self.select(min(max(self.current + delta, 0), len(self.images) - 1))

    @property
    def current_entry(self) -> ImageEntry | None:
        return self.images[self.current] if 0 <= self.current < len(self.images) else None

    # models and results ----------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        for loaded in self.models.values():
            return loaded.meta.class_names
        return []

    def set_model(self, role: str, loaded: LoadedModel) -> None:
        self.models[role] = loaded
        self.results = {k: v for k, v in self.results.items() if k[1] != role}
        if self.settings.label not in loaded.meta.class_names:
            self.settings.label = None
        self.emit("models_changed", role)

    def set_result(self, path: Path, role: str, result: InferenceResult) -> None:
        self.results.pop((path, role), None)
        self.results[(path, role)] = result  # dicts keep insertion order: oldest first
        while len(self.results) > MAX_CACHED_RESULTS:
            del self.results[next(iter(self.results))]
        self.emit("result_ready", path, role)

    def result(self, role: str, entry: ImageEntry | None = None) -> InferenceResult | None:
        entry = entry or self.current_entry
        return self.results.get((entry.path, role)) if entry else None

    def shown_label(self) -> str | None:
        """The selected label, else the one CAT (or the baseline) finds most likely."""
        if self.settings.label in self.class_names:
            return self.settings.label
        result = self.result("cat") or self.result("baseline")
        return self.class_names[int(result.probabilities.argmax())] if result is not None else None

    def missing_results(self, entry: ImageEntry) -> list[str]:
        return [role for role in self.models if (entry.path, role) not in self.results]

    # settings and messages -------------------------------------------------------------
    def update_settings(self, **changes) -> None:
        for key, value in changes.items():
            if not hasattr(self.settings, key):
                raise AttributeError(f"no display setting {key!r}")
            setattr(self.settings, key, value)
        self.emit("settings_changed", set(changes))

    def report(self, message: str) -> None:
        self.messages.append(message)
        self.emit("message", message)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given (any suffix: a bad one gets a clear message later), folders' images sorted."""
    result = []
    for path in map(Path, paths):
        if path.is_dir():
            result.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            result.append(path)
    return result
