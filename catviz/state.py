"""The app's state in plain Python (no Qt, no torch): views observe it, workers fill it.

Which images are loaded (and which failed, with why), which one and which label are
selected, the display settings, the loaded models with the spec each states of itself,
and every result — model outputs and attributions (grad-cam, IG, Occlusion) — cached per
image and model, with the progress of long computations. Changes are announced to
subscribers by :class:`Event`; a setter announces only a real change.

Stale work is recognised on the GUI thread by generation: every model loaded into a
slot gets a new generation number, and a result computed for an older one is dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .dataset_state import DatasetState
from .events import Observable, TypedEvent
from .render import DIVERGING
from .results import InferenceResult
from .roles import ROLES

if TYPE_CHECKING:  # plain-data types only; importing them here would load torch
    from catviz.models.outputs import ModelSpec

    from .inference import LoadedModel
    from .methods import DeletionScore

#: Results kept per (image, model), oldest dropped first (recomputed on demand): at most this
#: many, holding at most MAX_RESULT_BYTES. A full-size CAT result at 448² (80 labels' CAMs,
#: attention) is a few MB; attention over a large input's LRD grid grows with its square.
MAX_CACHED_RESULTS = 128
MAX_RESULT_BYTES = 512 * 2**20
#: Attribution maps kept (each one label's (H, W) float map at the model's input size).
MAX_CACHED_ATTRIBUTIONS = 64
#: Decoded display copies kept in memory (least recently shown dropped first); a dropped
#: copy is decoded again when its image is shown. Display copies are at most 2048 px a side.
MAX_IMAGE_BYTES = 128 * 2**20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}
#: Files loaded as models when dropped or named on the command line (pickles are refused when read).
CHECKPOINT_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".bin"}
#: ``DisplaySettings.label_mode``: follow each image's top prediction (a clicked label holds
#: for the current image only), or keep one fixed label for every image.
LABEL_MODES = ("top", "fixed")
#: What a progress entry describes: ``state.progress[(role, ATTRIBUTION)]``.
ATTRIBUTION = "attribution"
#: ``state.progress[(role, DELETION_AUC)]``: a displayed map's deletion AUC being computed.
DELETION_AUC = "deletion AUC"


@dataclass
class ImageEntry:
    path: Path
    ground_truth: set[str] | None = None  # label names, when known
    image: np.ndarray | None = None  # display copy (≤ 2048 px a side) while cached
    error: str | None = None  # why it cannot be shown
    thumbnail: np.ndarray | None = None  # small RGB copy for the list, kept once made


@dataclass
class DisplaySettings:
    threshold: float = 0.5
    label_mode: str = "top"  # one of LABEL_MODES
    label: str | None = None  # selected label name (None: the top prediction)
    cam_method: str = "CAM"  # "CAM" or an attribution method name
    cam_level: str = "combined"  # "combined" or a level name of the model's spec
    cam_depth: str = "input"  # the complete CAM's depth (catviz.methods.DEPTH_TITLES); "tokens": no backward pass
    colormap: str = DIVERGING  # see catviz.render.COLORMAPS
    positive_only: bool = False  # signed maps: hide negative evidence
    per_panel_scale: bool = False  # signed maps: each panel its own scale instead of one shared
    opacity: float = 0.75  # the most opaque a map gets (signed maps: at the scale's limit)
    small_values: bool = False  # signed maps: draw small non-zero values visibly (catviz.render.SMALL_VALUE_FLOOR)
    cam_difference: bool = False  # the CAM tab's third panel: CAT − baseline on the input pixels
    lrd_layer: int | str = "rollout"  # layer index or "rollout"
    head: int | str = "mean"  # head index or "mean"
    query: tuple[int, int] | None = None  # clicked cell of the LRD level (row, col)


@dataclass(frozen=True)
class Message:
    text: str
    time: float = field(default_factory=time.time)
    error: bool = True


class Event(TypedEvent):
    """Everything the state announces: (name, the arguments subscribers receive, when).

    Subscribe with the member (``state.subscribe(Event.RESULT_READY, callback)``); the
    callback is called with the arguments listed, positionally."""

    IMAGES_ADDED = ("images_added", (("entries", list),), "new ImageEntry objects, in list order")
    IMAGE_LOADED = ("image_loaded", (("entry", ImageEntry),), "decoded, or failed with entry.error")
    SELECTION_CHANGED = ("selection_changed", (("entry", (ImageEntry, type(None))),), "the image now shown")
    MODELS_CHANGED = ("models_changed", (("role", str),), "a slot's model loaded, replaced or cleared")
    LOADED_CHANGED = ("loaded_changed", (("count", int),), "models loaded or unloaded: state.loaded (the slots' choices)")
    RESULT_READY = ("result_ready", (("path", Path), ("role", str)), "a model's outputs for an image")
    ATTRIBUTION_READY = ("attribution_ready", (("key", tuple),),
                         "a map (see attribution_key), or why it stopped (attribution_status)")
    PROGRESS_CHANGED = ("progress_changed", (("role", str), ("what", str)), "state.progress[(role, what)]")
    CANCEL_REQUESTED = ("cancel_requested", (("role", str), ("what", str)), "a view asks the workers to stop")
    DELETION_AUC_REQUESTED = ("deletion_auc_requested", (("key", tuple), ("saliency", np.ndarray)),
                              "a view asks for a displayed map's deletion AUC")
    PATH_SHARE_READY = ("path_share_ready", (("key", tuple),), "state.path_shares[key] (see path_share_key)")
    DELETION_AUC_READY = ("deletion_auc_ready", (("key", tuple),), "state.deletion_aucs[key]")
    SETTINGS_CHANGED = ("settings_changed", (("keys", set),), "the DisplaySettings fields whose value changed")
    MESSAGE = ("message", (("message", Message),), "an error or notice for the user")


@dataclass
class AppState(Observable):
    images: list[ImageEntry] = field(default_factory=list)
    current: int = -1
    _selected_automatically: bool = False  # see select()
    models: dict[str, LoadedModel] = field(default_factory=dict)  # slot → the model its panel shows
    #: Every loaded model, in load order (one label set): what the slots choose from and the Dataset tab compares.
    loaded: list[LoadedModel] = field(default_factory=list)
    results: dict[tuple[Path, str], InferenceResult] = field(default_factory=dict)
    attributions: dict[tuple, np.ndarray] = field(default_factory=dict)
    stopped: dict[tuple, str] = field(default_factory=dict)  # attribution key → why (cancelled, error)
    path_shares: dict[tuple, dict] = field(default_factory=dict)  # path_share_key → the complete CAM's path share
    #: (path, role, label, what the map is, generation) → deletion AUC of that displayed map
    deletion_aucs: dict[tuple, DeletionScore] = field(default_factory=dict)
    progress: dict[tuple[str, str], float] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)  # role → generation of its model
    settings: DisplaySettings = field(default_factory=DisplaySettings)
    messages: list[Message] = field(default_factory=list)
    _decoded: OrderedDict = field(default_factory=OrderedDict, repr=False)  # path → bytes, LRU order
    #: The Dataset tab's split, pass and results (catviz.dataset_state), with events of its own.
    dataset: DatasetState = field(init=False, repr=False)

    events = Event

    def __post_init__(self) -> None:
        Observable.__init__(self, report=self.report)
        self.dataset = DatasetState(report=self.report)

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
            self.emit(Event.IMAGES_ADDED, added)
            if self.current < 0:
                self.select(0, automatic=True)
        return added

    def entry(self, path: Path) -> ImageEntry | None:
        return next((e for e in self.images if e.path == path), None)

    def set_image_data(self, path: Path, image: np.ndarray | None, error: str | None,
                       thumbnail: np.ndarray | None = None) -> None:
        """A decoded display copy (kept within ``MAX_IMAGE_BYTES``) or why it failed."""
        entry = self.entry(path)
        if entry is None:
            return
        entry.image, entry.error = image, error
        if thumbnail is not None:
            entry.thumbnail = thumbnail
        self._decoded.pop(path, None)
        if image is not None:
            self._decoded[path] = image.nbytes
            self._evict()
        if error:
            self.report(error)
        self.emit(Event.IMAGE_LOADED, entry)
        if error and self._selected_automatically and entry is self.current_entry:
            readable = (i for i in range(self.current + 1, len(self.images)) if self.images[i].error is None)
            following = next(readable, None)
            if following is not None:  # its error stays in the list and in Messages
                self.select(following, automatic=True)

    def _evict(self) -> None:
        """Drop the least recently shown display copies beyond the budget (never the current one)."""
        current = self.current_entry
        for path in list(self._decoded):
            if sum(self._decoded.values()) <= MAX_IMAGE_BYTES:
                break
            if current is not None and path == current.path:
                continue
            del self._decoded[path]
            if (entry := self.entry(path)) is not None:
                entry.image = None

    @property
    def decoded_bytes(self) -> int:
        return sum(self._decoded.values())

    def select(self, index: int, automatic: bool = False) -> None:
        """Show image ``index``. ``automatic``: not the user's choice (the first image of a
        first drop), so an unreadable one gives way to the next readable image once decoded."""
        if 0 <= index < len(self.images) and index != self.current:
            self.current, self._selected_automatically = index, automatic
            self.settings.query = None
            self.stopped.clear()
            if self.settings.label_mode == "top":
                self.settings.label = None  # a clicked label holds for its image only
            if self.images[index].path in self._decoded:
                self._decoded.move_to_end(self.images[index].path)
            self.emit(Event.SELECTION_CHANGED, self.current_entry)

    def step(self, delta: int) -> None:
        if self.images:
            self.select(min(max(self.current + delta, 0), len(self.images) - 1))

    @property
    def current_entry(self) -> ImageEntry | None:
        return self.images[self.current] if 0 <= self.current < len(self.images) else None

    # models ------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        for loaded in self.models.values():
            return loaded.meta.class_names
        return []

    def spec(self, role: str) -> ModelSpec | None:
        """What the model in ``role``'s slot says about itself (levels, heads, layers)."""
        loaded = self.models.get(role)
        return loaded.spec if loaded is not None else None

    def set_model(self, role: str, loaded: LoadedModel | None) -> None:
        """Put a model in a slot (``None`` clears it); its old results are dropped. A model
        not loaded yet joins :attr:`loaded` (see :meth:`add_models`)."""
        if role not in ROLES:
            raise ValueError(f"unknown model slot {role!r}; slots: {', '.join(ROLES)}")
        if loaded is None and role not in self.models:
            return
        if loaded is None:
            del self.models[role]
        else:
            self.models[role] = loaded
            if not any(m is loaded for m in self.loaded):
                self.add_models([loaded])
        self.generation[role] = self.generation.get(role, 0) + 1
        self.results = {k: v for k, v in self.results.items() if k[1] != role}
        self.attributions = {k: v for k, v in self.attributions.items() if k[1] != role}
        self.path_shares = {k: v for k, v in self.path_shares.items() if k[1] != role}
        if self.settings.label not in self.class_names:
            self.settings.label = None
        self.emit(Event.MODELS_CHANGED, role)

    def add_models(self, models: list[LoadedModel]) -> None:
        """Models the slots can show, after those loaded (load order). One whose file is
        loaded already replaces that entry where it stands (a reload); loaded models of
        another label set that no slot shows are unloaded, said."""
        changed = False
        for new in models:
            at = next((k for k, m in enumerate(self.loaded) if m.path == new.path), None)
            if at is None:
                self.loaded.append(new)
            elif self.loaded[at] is not new:
                self.loaded[at] = new
            else:
                continue
            changed = True
        if not changed:
            return
        names = models[-1].meta.class_names
        stale = [m for m in self.loaded if m.meta.class_names != names and self.slot_of(m) is None]
        self.loaded = [m for m in self.loaded if not any(m is s for s in stale)]
        if stale:
            self.report(f"unloaded {', '.join(m.path.name for m in stale)}: {'its' if len(stale) == 1 else 'their'} "
                        f"labels differ from {models[-1].path.name}'s", error=False)
        self.emit(Event.LOADED_CHANGED, len(self.loaded))

    def remove_models(self, models: list[LoadedModel]) -> None:
        """Unload models: the slots that show one are cleared."""
        for role, shown in list(self.models.items()):
            if any(shown is m for m in models):
                self.set_model(role, None)
        kept = [m for m in self.loaded if not any(m is gone for gone in models)]
        if len(kept) != len(self.loaded):
            self.loaded = kept
            self.emit(Event.LOADED_CHANGED, len(kept))

    def slot_of(self, loaded: LoadedModel) -> str | None:
        """The slot that shows ``loaded``, if any."""
        return next((role for role, m in self.models.items() if m is loaded), None)

    # results -----------------------------------------------------------------------------
    def set_result(self, path: Path, role: str, result: InferenceResult, generation: int | None = None) -> bool:
        """Cache a result; one computed for a model no longer in its slot is dropped (False)."""
        if generation is not None and generation != self.generation.get(role):
            return False
        self.results.pop((path, role), None)
        self.results[(path, role)] = result  # dicts keep insertion order: oldest first
        while len(self.results) > 1 and (len(self.results) > MAX_CACHED_RESULTS
                                         or sum(_nbytes(r) for r in self.results.values()) > MAX_RESULT_BYTES):
            del self.results[next(iter(self.results))]
        self.emit(Event.RESULT_READY, path, role)
        return True

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

    # attributions (grad-cam, IG, Occlusion) ----------------------------------------------
    def attribution_level(self, role: str) -> str | None:
        """The level an attribution method explains for ``role``: the chosen one when the
        model has it, else its finest level (what "combined" means for a one-layer method)."""
        spec = self.spec(role)
        if spec is None or not spec.levels:
            return None
        names = [level.name for level in spec.levels]
        if self.settings.cam_level in names:
            return self.settings.cam_level
        return min(spec.levels, key=lambda level: level.stride).name

    def attribution_key(self, role: str) -> tuple | None:
        """(path, role, label, level, method, generation) of the map the view wants, if any.

        The complete CAM below the tokens is computed per label too: its method is
        ``"CAM@<depth>"`` and its level None for combined (the baseline's panel: always)."""
        s, entry, label = self.settings, self.current_entry, self.shown_label()
        cam = s.cam_method == "CAM"
        if (cam and s.cam_depth == "tokens") or entry is None or label is None or role not in self.models:
            return None
        if cam:
            spec = self.spec(role)
            level = s.cam_level if role == "cat" and spec is not None and s.cam_level in spec.level_names else None
            return (entry.path, role, label, level, f"CAM@{s.cam_depth}", self.generation[role])
        return (entry.path, role, label, self.attribution_level(role), s.cam_method, self.generation[role])

    def set_attribution(self, key: tuple, heat: np.ndarray) -> bool:
        """Cache a map; one computed for a model no longer in its slot is dropped (False)."""
        return self._keep(self.attributions, key, heat, Event.ATTRIBUTION_READY)

    def _keep(self, cache: dict, key: tuple, value, event: Event) -> bool:
        """``cache[key] = value`` unless the key's generation (its last field) is not its slot's
        model's any more (False); the oldest entries out past MAX_CACHED_ATTRIBUTIONS; ``event``."""
        if key[-1] != self.generation.get(key[1]):
            return False
        cache.pop(key, None)
        cache[key] = value
        while len(cache) > MAX_CACHED_ATTRIBUTIONS:
            del cache[next(iter(cache))]
        self.emit(event, key)
        return True

    def path_share_key(self, role: str) -> tuple | None:
        """(path, role, label, "CAM@<depth>", generation) of the path share the view wants:
        with the complete CAM below the tokens, every level's, for the shown map's label."""
        key = self.attribution_key(role)
        return None if key is None or not key[4].startswith("CAM@") else (*key[:3], *key[4:])

    def set_path_share(self, key: tuple, paths: dict) -> bool:
        """Cache a path share (:func:`catviz.explain.cam_path_share`); one computed for a model
        no longer in its slot is dropped (False)."""
        return self._keep(self.path_shares, key, paths, Event.PATH_SHARE_READY)

    def path_share(self, role: str) -> dict | None:
        """The shown map's path share, once computed."""
        key = self.path_share_key(role)
        return self.path_shares.get(key) if key is not None else None

    def stop_attribution(self, key: tuple, reason: str) -> None:
        """A map that will not come (cancelled, failed): not asked for again until the user
        changes image, label, method or level."""
        self.stopped[key] = reason
        self.emit(Event.ATTRIBUTION_READY, key)

    def attribution_status(self, role: str) -> str | None:
        """Why the wanted map is not there (cancelled, an error), else None."""
        key = self.attribution_key(role)
        return self.stopped.get(key) if key is not None else None

    def attribution(self, role: str) -> np.ndarray | None:
        """The current image's map for the chosen method, label and level, once computed."""
        key = self.attribution_key(role)
        return self.attributions.get(key) if key is not None else None

    def set_progress(self, role: str, what: str, fraction: float | None) -> None:
        """Progress of a long computation in [0, 1]; ``None`` when it ended (or was cancelled)."""
        key = (role, what)
        if self.progress.get(key) == fraction:
            return
        if fraction is None:
            self.progress.pop(key, None)
        else:
            self.progress[key] = fraction
        self.emit(Event.PROGRESS_CHANGED, role, what)

    def request_cancel(self, role: str, what: str = ATTRIBUTION) -> None:
        self.emit(Event.CANCEL_REQUESTED, role, what)

    # faithfulness of a displayed map -------------------------------------------------------
    def request_deletion_auc(self, key: tuple, saliency: np.ndarray) -> None:
        """Ask the workers for the deletion AUC of the map shown under ``key``:
        (path, role, label name, what the map is, generation)."""
        self.emit(Event.DELETION_AUC_REQUESTED, key, saliency)

    def set_deletion_auc(self, key: tuple, value: DeletionScore) -> bool:
        """Keep a map's deletion AUC; one computed for a model no longer in its slot is dropped (False)."""
        if key[4] != self.generation.get(key[1]):
            return False
        self.deletion_aucs[key] = value
        self.emit(Event.DELETION_AUC_READY, key)
        return True

    # settings and messages -------------------------------------------------------------
    def update_settings(self, **changes) -> None:
        """Change display settings; subscribers hear of the keys whose value changed."""
        known = {f.name for f in fields(DisplaySettings)}
        for key in changes:
            if key not in known:
                raise AttributeError(f"no display setting {key!r}")
        if "label_mode" in changes and changes["label_mode"] not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}, not {changes['label_mode']!r}")
        changed = {key for key, value in changes.items() if getattr(self.settings, key) != value}
        for key in changed:
            setattr(self.settings, key, changes[key])
        if changed & {"cam_method", "label", "label_mode", "cam_level", "cam_depth"}:
            self.stopped.clear()
        if changed:
            self.emit(Event.SETTINGS_CHANGED, changed)

    def report(self, text: str, error: bool = True) -> None:
        message = Message(text, error=error)
        self.messages.append(message)
        self.emit(Event.MESSAGE, message)


def _nbytes(result) -> int:
    return getattr(result, "nbytes", 0)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given (any suffix: a bad one gets a clear message later), folders' images sorted."""
    result = []
    for path in map(Path, paths):
        if path.is_dir():
            result.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            result.append(path)
    return result
