"""Model work off the GUI thread: tasks on one pool (:mod:`catviz.qt_tasks`), results back as Qt signals.

The controller watches the state: when an image is selected or a model loaded it
queues decoding and inference for the current image first; the other images are
decoded after, at low priority, each into a bounded cache of display copies. Work the
user no longer wants (another image selected, another label or method chosen, a Cancel)
is cancelled from the GUI thread through a flag the worker polls; every result is
checked on the GUI thread against the model's generation before the state keeps it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from .methods import CAM, DeletionScore, method_info
from .qt_gc import freeze_long_lived
from .qt_import_scan import source_scan_skipped
from .qt_tasks import Task, Workers
from .state import ATTRIBUTION, DELETION_AUC, ROLES, AppState, Event, ImageEntry

if TYPE_CHECKING:
    import torch

    from .inference import LoadedModel

_logger = logging.getLogger(__name__)
# Task priorities: a higher one starts first when the pool has a free thread.
MODEL_SIDE, LOAD_MODEL, DECODE_CURRENT, INFERENCE, ATTRIBUTE, PATH_SHARE, DECODE_OTHER = 6, 5, 4, 3, 2, 1, 0
THUMBNAIL_SIDE = 144  # the list shows 72 px icons; twice that for high-DPI screens


def decode(path: Path, at_least: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A display copy (at most ``MAX_SIDE`` px a side, or ``at_least`` where that is more: a
    model's input size) and a thumbnail, both made off the GUI thread."""
    from catviz.models.preprocess import MAX_SIDE, load_image, shrink

    image = load_image(path, max(MAX_SIDE, at_least))
    return image, shrink(image, THUMBNAIL_SIDE)


def import_model_side(device: str) -> tuple[torch.device, list[str], tuple[type[BaseException], ...]]:
    """In a worker: import torch, timm and the models (seconds; the window is up meanwhile) and
    resolve ``device``. Returns the device, the devices a user can pick and the exception that
    means "stopped on request"."""
    with source_scan_skipped():  # ~0.5 s of the import's 3.3 s here
        from catviz.models.attribution import Cancelled
        from catviz.models.device import available_devices, resolve_device

        from . import inference  # noqa: F401  (its import is the work: torch, timm, the model registry)
    freeze_long_lived()  # torch's modules: out of the GUI thread's periodic collections

    return resolve_device(device), available_devices(), (Cancelled,)


class InferenceController(QObject):
    """The GUI side of model work. No torch at import or construction: the model side is
    imported by the first task (:func:`import_model_side`), so the window shows before it
    loads. ``device`` is the name asked for until then, the resolved ``torch.device`` after."""

    busy_changed = Signal(int)  # tasks pending
    timings_changed = Signal(dict)  # role → seconds for the current image
    devices_found = Signal(list)  # the device names a user can pick, once torch is imported
    loading_changed = Signal(int)  # checkpoint loads under way

    def __init__(self, state: AppState, device: str = "auto", threads: int = 1, held: bool = False):
        """``held``: start no task until ``self.workers.release()`` (the app: once its window has painted)."""
        super().__init__()
        self.state, self.device = state, device
        self.loading = 0  # checkpoint loads under way (the window says so instead of "no models")
        self.workers = Workers(threads)  # models are not run concurrently
        if held:
            self.workers.hold()
        self.pool = self.workers.pool
        self.workers.busy_changed.connect(self.busy_changed)
        self.workers.task_finished.connect(lambda task: self._decode_next_in_background())
        self._backlog: deque[ImageEntry] = deque()  # images still to decode for their thumbnails
        #: Asked when a model's labels differ from the other slot's: returns "clear" (load it
        #: and empty the other slot), "choose" (the same, then pick a partner) or "cancel".
        #: The main window asks the user; without one, such a model is refused.
        self.resolve_label_conflict: Callable[[LoadedModel, LoadedModel], str] | None = None
        self.choose_partner: Callable[[str], None] | None = None
        self.digests: dict[Path, str] = {}  # a loaded checkpoint's SHA-256: the same content is not loaded twice
        self._subscriptions = [
            state.subscribe(Event.SELECTION_CHANGED, self._on_selection_changed),
            state.subscribe(Event.IMAGES_ADDED, self._on_images_added),
            state.subscribe(Event.MODELS_CHANGED, lambda role: self.request_current()),
            state.subscribe(Event.RESULT_READY, lambda path, role: self._request_attributions()),
            state.subscribe(Event.SETTINGS_CHANGED, self._on_settings_changed),
            state.subscribe(Event.CANCEL_REQUESTED, self._on_cancel_requested),
            state.subscribe(Event.DELETION_AUC_REQUESTED, self._submit_deletion_auc),
        ]
        self._submit(lambda task: import_model_side(str(device)), self._model_side_ready, priority=MODEL_SIDE)

    def _model_side_ready(self, found: tuple) -> None:
        device, names, cancel_errors = found
        self.workers.cancel_errors = cancel_errors  # tasks submitted from now on (every model's: models load after)
        if isinstance(self.device, str):  # not changed meanwhile
            self.device = device
        self.devices_found.emit(names)

    # plumbing --------------------------------------------------------------------------
    def _submit(self, fn, on_success, on_failure=None, priority: int = 0, key: tuple | None = None,
                on_progress=None, on_cancel=None) -> Task:
        return self.workers.submit(fn, on_success, on_failure or self.state.report, priority, key,
                                   on_progress, on_cancel)

    @property
    def pending(self) -> int:
        """Tasks queued or running."""
        return self.workers.pending

    @property
    def _tasks(self) -> dict[int, Task]:
        return self.workers.tasks

    def _running(self, key: tuple) -> Task | None:
        return self.workers.running(key)

    def wait(self, msecs: int = 60000) -> bool:
        return self.workers.wait(msecs)

    def shutdown(self, msecs: int = 10000) -> None:
        """Stop hearing the state, drop queued work, ask running work to stop, wait for it;
        start nothing after.

        Without the last part, a task finishing during the wait queued the next background
        decode, which then ran while Python tore the app down ("Signal source has been deleted")."""
        for subscription in self._subscriptions:
            subscription.disconnect()
        self.workers.shutdown(msecs)

    # models ----------------------------------------------------------------------------
    def load_checkpoint(self, path: str | Path, role: str | None = None) -> None:
        """Load one checkpoint in a worker into the slot its metadata names (``role``: the slot
        the user asked for; a model of the other kind goes to its own slot, with a message)."""
        self.load_checkpoints([path], {Path(path): role} if role else None)

    def load_checkpoints(self, paths: list[str | Path], requested: dict[Path, str] | None = None,
                         replace: bool = False) -> None:
        """Load files in a worker and place them as a set: a baseline and a CAT dropped together
        are checked against each other, not against the models they replace. Every file joins
        the loaded models (``state.loaded``, one label set); the first of each kind goes to its
        slot, the others wait in the Models menu. A bad file is reported and the model in its
        slot stays; a file whose content is loaded already is said and not loaded twice.
        ``requested``: the slot the user named for a file (``--baseline``, File ▸ Load CAT
        checkpoint); the file's own metadata decides. ``replace``: a model this load puts out
        of its slot is unloaded too (the Runs tab's snapshots: one epoch at a time)."""
        paths = [Path(p).absolute() for p in paths]  # one file, one name: given relative and absolute it is loaded once
        requested = {Path(p).absolute(): role for p, role in (requested or {}).items()}
        device = str(self.device)

        def load(task: Task):
            from catviz.models.checkpoint import CheckpointError
            from catviz.models.device import resolve_device

            from . import inference

            device_ = resolve_device(device)  # done already, unless this is the first task to run
            from .dataset_results import file_sha256

            loaded, errors = [], []
            for path in paths:
                try:
                    loaded.append((inference.load_model(path, device_), file_sha256(path)))
                except (CheckpointError, OSError, ValueError) as err:
                    errors.append(str(err))
            return loaded, errors

        def placed(result) -> None:
            self._load_ended()  # first: what _place_models reports is said with "no models", not "loading"
            self._place_models(*result, requested or {}, replace)

        self.loading += 1
        self.loading_changed.emit(self.loading)
        self._submit(load, placed, lambda message: (self._load_ended(), self.state.report(message)),
                     priority=LOAD_MODEL, on_cancel=self._load_ended)

    def _load_ended(self) -> None:
        self.loading -= 1
        self.loading_changed.emit(self.loading)

    def _once(self, loaded: list[tuple[LoadedModel, str]]) -> list[LoadedModel]:
        """The models whose content is not loaded under another name (said for each that is);
        a file loaded again under its own name is a reload."""
        seen = {self.digests[m.path]: m.path for m in self.state.loaded if m.path in self.digests}
        kept = []
        for model, digest in loaded:
            twin = seen.get(digest)
            if any(model.path == m.path for m in kept):
                self.state.report(f"{model.path.name} is given twice: loaded once", error=False)
                continue
            if twin is not None and twin != model.path:
                self._refuse(f"{model.path.name} is the same checkpoint as {twin} (sha256 {digest[:12]}…): "
                             "not loaded twice, a model is not compared with itself")
                continue
            seen[digest], self.digests[model.path] = model.path, digest
            kept.append(model)
        return kept

    def _place_models(self, loaded: list[tuple[LoadedModel, str]], errors: list[str], requested: dict[Path, str],
                      replace: bool = False) -> None:
        """On the GUI thread: put freshly loaded models in their slots (see load_checkpoints)."""
        from . import inference  # imported by the first task (import_model_side)

        for error in errors:
            self._refuse(error)
        models = self._once(loaded)
        if not models:
            return
        odd = next((m for m in models if not inference.same_labels(models[0], m)), None)
        if odd is not None:
            first = models[0]
            self._refuse(f"{first.path.name} and {odd.path.name} have different labels "
                         f"({first.meta.num_classes} and {odd.meta.num_classes}): "
                         + ("neither was loaded" if len(models) == 2 else f"none of the {len(models)} was loaded"))
            return
        in_slot = {m.path: role for role, m in self.state.models.items()}  # a reload goes back where it was
        loaded_paths = {m.path for m in self.state.loaded}
        by_role: dict[str, LoadedModel] = {}
        for model in models:
            role = in_slot.get(model.path)
            if role is None and model.path in loaded_paths:
                continue  # reloaded, still in no slot
            asked = requested.get(model.path)
            if role is None and asked is not None and model.role != asked:
                self.state.report(f"{model.path.name} is a {model.role} model ({model.meta.model}): "
                                  f"loaded into the {model.role} slot, not the {asked} slot", error=False)
            role = role or model.role
            if role in by_role:
                self.state.report(f"{by_role[role].path.name} and {model.path.name} are both {role} models: "
                                  f"{by_role[role].path.name} is shown, {model.path.name} is loaded too "
                                  "(Models menu: put it in either panel)", error=False)
                continue
            by_role[role] = model
        if not by_role:
            self.state.add_models(models)
            return
        first = next(iter(by_role.values()))
        others = {r: m for r, m in self.state.models.items() if r not in by_role}
        conflict = next(((r, m) for r, m in others.items() if not inference.same_labels(first, m)), None)
        if conflict is not None:
            other_role, other = conflict
            answer = self.resolve_label_conflict(first, other) if self.resolve_label_conflict else "cancel"
            if answer == "cancel":
                self._refuse(f"{first.path}: its {first.meta.num_classes} labels ({', '.join(first.meta.class_names[:5])} "
                             f"...) differ from those of {other.path} ({other.meta.num_classes}: "
                             f"{', '.join(other.meta.class_names[:5])} ...), loaded already: not loaded")
                return
            self.state.set_model(other_role, None)
            self.state.report(f"{other.path.name} removed from the {other_role} slot: its labels differ "
                              f"from {first.path.name}'s", error=False)
        # The views never see two label sets at once: slots of the old set that this set
        # replaces are emptied first, then filled one by one.
        for role in by_role:
            if role in self.state.models and not inference.same_labels(first, self.state.models[role]):
                self.state.set_model(role, None)
        put_out = [self.state.models[role] for role in by_role if replace and role in self.state.models]
        self.state.add_models(models)
        for role, model in by_role.items():
            self.state.set_model(role, model)
        self.state.remove_models([m for m in put_out if self.state.slot_of(m) is None])
        if conflict is not None and answer == "choose" and self.choose_partner is not None:
            self.choose_partner(conflict[0])

    def _refuse(self, text: str) -> None:
        """A checkpoint not loaded: said in the Messages dock and, for whoever started us from a
        terminal (``catviz --cat bad.safetensors``), logged as one line on stderr."""
        _logger.error("%s", text)
        self.state.report(text)

    def set_device(self, name: str) -> None:
        """Reload every model on another device (in workers; results are recomputed)."""
        from catviz.models.device import resolve_device  # imported: the box lists devices after it

        self.device = resolve_device(name)
        if self.state.loaded:
            self.load_checkpoints([loaded.path for loaded in self.state.loaded])

    # images ----------------------------------------------------------------------------
    def _on_images_added(self, entries: list[ImageEntry]) -> None:
        """The image on screen is decoded first (by the selection); the others one at a time
        when nothing else is pending, for their thumbnails (their copies go to the bounded cache)."""
        self._backlog.extend(entries)
        self._decode_next_in_background()

    def _decode_next_in_background(self) -> None:
        while self.pending == 0 and self._backlog:
            entry = self._backlog.popleft()
            if entry.thumbnail is None and entry.error is None and entry in self.state.images:
                self._decode(entry, DECODE_OTHER)

    def _on_selection_changed(self, entry: ImageEntry | None) -> None:
        for task in list(self._tasks.values()):  # work for another image is not wanted any more
            if task.key is not None and task.key[0] in ("inference", "attribution") \
                    and (entry is None or task.key[1] != entry.path):
                task.cancel()
        self.request_current()

    def _decode(self, entry: ImageEntry, priority: int) -> None:
        path = entry.path
        key = ("decode", path)
        if self._running(key) is not None:
            return
        # Models see the copy resized to their input size: never smaller than that.
        at_least = max([0, *(m.meta.input_size for m in self.state.models.values())])
        self._submit(lambda task: decode(path, at_least),
                     lambda images: self._decoded(path, *images),
                     lambda message: self.state.set_image_data(path, None, message),
                     priority=priority, key=key)

    def _decoded(self, path: Path, image: np.ndarray, thumbnail: np.ndarray) -> None:
        self.state.set_image_data(path, image, None, thumbnail)
        entry = self.state.current_entry
        if entry is not None and entry.path == path:
            self.request_current()

    def request_current(self) -> None:
        entry = self.state.current_entry
        self._report_timings()
        if entry is None or entry.error:
            return
        if entry.image is None:  # not decoded yet, or dropped from the cache: decode it first
            self._decode(entry, DECODE_CURRENT)
            return
        for role in self.state.missing_results(entry):
            self._submit_inference(entry, role)
        self._request_attributions()

    def _submit_inference(self, entry: ImageEntry, role: str) -> None:
        from . import inference  # imported by the first task (import_model_side)

        loaded, image, path = self.state.models[role], entry.image, entry.path
        generation = self.state.generation[role]
        key = ("inference", path, role, generation)
        if self._running(key) is not None:
            return
        self._submit(lambda task: inference.run_model(loaded, image),
                     lambda result: self._result(path, role, generation, result),
                     priority=INFERENCE, key=key)

    def _result(self, path: Path, role: str, generation: int, result) -> None:
        self.state.set_result(path, role, result, generation)
        self._report_timings()

    def _report_timings(self) -> None:
        self.timings_changed.emit(
            {role: r.seconds for role in self.state.models if (r := self.state.result(role)) is not None}
        )

    # figure export -------------------------------------------------------------------------
    def export_figure(self, path: str, entries: list[ImageEntry]) -> None:
        """Render the Fig.-3-style grid of ``entries`` in a worker, drawn as the view draws
        them: the same method, level, colour map, scale and opacity (missing results and
        maps computed there)."""
        from catviz.models.preprocess import ImageLoadError

        from . import figure, inference  # imported by the first task (import_model_side)

        entries = [e for e in entries if e.image is not None or not e.error]
        loaded, s = dict(self.state.models), self.state.settings
        if not entries or not loaded:
            self.state.report("nothing to export: load a model and a readable image first")
            return
        class_names = self.state.class_names
        levels = {role: self.state.attribution_level(role) for role in loaded}
        caption = figure.caption_text({role: (m.meta.model, m.path.name) for role, m in loaded.items()}, None,
                                      s.threshold, method_info(s.cam_method).title,
                                      s.cam_level if s.cam_method == CAM else ", ".join(dict.fromkeys(levels.values())))
        generations = dict(self.state.generation)
        paths = {e.path for e in entries}
        cached = {key: r for key, r in self.state.results.items() if key[0] in paths}
        maps = {key: m for key, m in self.state.attributions.items() if key[0] in paths}

        def attribution(e: ImageEntry, image, role: str, label: int, task: Task):
            key = (e.path, role, class_names[label], levels[role], s.cam_method, generations[role])
            if key in maps:
                return maps[key]
            return inference.run_attribution(loaded[role], image, label, levels[role], s.cam_method,
                                             should_stop=task.should_stop)

        def render(task: Task) -> tuple[str, list[str]]:
            rows, skipped = [], []
            for e in entries:
                try:
                    image = e.image if e.image is not None else decode(e.path)[0]
                except ImageLoadError as err:  # not decoded for the list yet, and unreadable
                    skipped.append(f"{e.path}: {err}")
                    continue
                results = {role: cached.get((e.path, role)) or inference.run_model(m, image) for role, m in loaded.items()}
                row = figure.FigureRow(e.path.name, figure.thumbnail(image), results, e.ground_truth)
                if s.cam_method != CAM:
                    for label in figure.labels_to_show(row, class_names, s.threshold):
                        for role in loaded:
                            row.maps.setdefault(role, {})[label] = attribution(e, image, role, label, task)
                rows.append(row)
            if not rows:
                raise ImageLoadError(f"{path} not written: no selected image could be read ({'; '.join(skipped)})")
            figure.save_figure(path, figure.render_figure(
                rows, class_names, s.threshold, s.opacity, s.colormap, s.cam_method,
                shared_scale=not s.per_panel_scale, positive_only=s.positive_only, caption=caption))
            return path, skipped

        def written(outcome: tuple[str, list[str]]) -> None:
            path, skipped = outcome
            left_out = f"; {len(skipped)} left out, unreadable: {'; '.join(skipped)}" if skipped else ""
            self.state.report(f"figure written to {path}{left_out}", error=bool(skipped))

        self._submit(render, written)

    # attributions (grad-cam methods, IG, Occlusion) -------------------------------------------
    def _on_settings_changed(self, keys: set[str]) -> None:
        if keys & {"cam_method", "label", "label_mode", "cam_level", "cam_depth"}:
            self._request_attributions()

    def _request_attributions(self) -> None:
        entry = self.state.current_entry
        if entry is None or entry.image is None:
            return
        for role in ROLES:
            key = self.state.attribution_key(role)
            self._cancel_unwanted_path_shares(role)
            for task in list(self._tasks.values()):  # another map for this panel is not wanted any more
                if task.key is not None and task.key[0] == "attribution" and task.key[2] == role \
                        and task.key[1:] != key:
                    task.cancel()
            if key is not None and key in self.state.attributions:
                self._request_path_share(role)
            if key is None or key in self.state.attributions or key in self.state.stopped:
                continue
            if self._running(("attribution", *key)) is None:
                self._submit_attribution(entry, role, key)

    def _request_path_share(self, role: str) -> None:
        """The shown complete CAM's path share, after its map (several times the map's cost,
        so it never holds the map back)."""
        from . import inference  # imported by the first task (import_model_side)

        key, entry = self.state.path_share_key(role), self.state.current_entry
        if key is None or entry is None or entry.image is None or key in self.state.path_shares \
                or key in self.state.stopped or self._running(("path_share", *key)) is not None:
            return
        path, role, label_name, method, generation = key
        loaded, image = self.state.models[role], entry.image
        label, depth = loaded.meta.class_names.index(label_name), method.partition("@")[2]

        def failed(message: str) -> None:
            self.state.stopped[key] = message  # not asked for again until the user changes what is shown
            self.state.report(f"path share for the {role} model: {message}")

        self._submit(lambda task: inference.run_path_share(loaded, image, label, depth, task.should_stop),
                     lambda paths: self.state.set_path_share(key, paths), failed,
                     priority=PATH_SHARE, key=("path_share", *key))

    def _cancel_unwanted_path_shares(self, role: str) -> None:
        """Stop a panel's path share that is no longer the shown one's (another image, label,
        depth, method or model): it must not hold back the next map."""
        wanted = self.state.path_share_key(role)
        for task in list(self._tasks.values()):
            if task.key is not None and task.key[0] == "path_share" and task.key[2] == role \
                    and task.key[1:] != wanted:
                task.cancel()

    def _submit_attribution(self, entry: ImageEntry, role: str, key: tuple) -> None:
        from . import inference  # imported by the first task (import_model_side)

        path, role, label_name, level, method, generation = key
        loaded, image = self.state.models[role], entry.image
        label = loaded.meta.class_names.index(label_name)
        started = time.perf_counter()

        name, _, depth = method.partition("@")  # "CAM@<depth>": the complete CAM at that depth

        def compute(task: Task):
            return inference.run_attribution(loaded, image, label, level, name, task.progress, task.should_stop,
                                             depth=depth or None)

        def done(heat) -> None:
            self._end_progress(key, role)
            _logger.info("%s for %s in %.2fs", method, role, time.perf_counter() - started)
            self.state.set_attribution(key, heat)
            if key == self.state.attribution_key(role):
                self._request_path_share(role)

        def failed(message: str) -> None:
            self._end_progress(key, role)
            self.state.stop_attribution(key, message)
            self.state.report(f"{method} for the {role} model: {message}")

        def cancelled() -> None:
            self._end_progress(key, role)
            if key == self.state.attribution_key(role):  # the user pressed Cancel
                self.state.stop_attribution(key, f"{method} cancelled")

        self.state.set_progress(role, ATTRIBUTION, 0.0)
        self._submit(compute, done, failed, priority=ATTRIBUTE, key=("attribution", *key),
                     on_progress=lambda f: self._progress(key, role, f), on_cancel=cancelled)

    def _progress(self, key: tuple, role: str, fraction: float) -> None:
        if key == self.state.attribution_key(role):
            self.state.set_progress(role, ATTRIBUTION, fraction)

    def _end_progress(self, key: tuple, role: str) -> None:
        """Clear the panel's progress unless a newer computation for it is under way."""
        newer = any(t.key is not None and t.key[0] == "attribution" and t.key[2] == role
                    and t.key[1:] != key and not t.should_stop() for t in self._tasks.values())
        if not newer:
            self.state.set_progress(role, ATTRIBUTION, None)

    def _submit_deletion_auc(self, key: tuple, saliency) -> None:
        """The deletion AUC of a displayed map (the view's request), in a worker."""
        from . import inference  # imported by the first task (import_model_side)

        path, role, label_name, what, generation = key
        loaded, entry = self.state.models.get(role), self.state.entry(path)
        if loaded is None or entry is None or entry.image is None or self._running(("deletion_auc", *key)):
            return
        label, image = loaded.meta.class_names.index(label_name), entry.image

        def done(value: DeletionScore) -> None:
            self.state.set_progress(role, DELETION_AUC, None)
            self.state.set_deletion_auc(key, value)

        def failed(message: str) -> None:
            self.state.set_progress(role, DELETION_AUC, None)
            self.state.report(f"deletion AUC of {what} for the {role} model: {message}")

        self.state.set_progress(role, DELETION_AUC, 0.0)
        self._submit(lambda task: inference.run_deletion_auc(loaded, image, label, saliency), done, failed,
                     priority=ATTRIBUTE, key=("deletion_auc", *key))

    def _on_cancel_requested(self, role: str, what: str) -> None:
        if what != ATTRIBUTION:
            return
        for task in list(self._tasks.values()):
            if task.key is not None and task.key[0] in ("attribution", "path_share") and task.key[2] == role:
                task.cancel()
