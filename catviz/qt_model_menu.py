"""Models ▸ Left panel / Right panel / Unload: any loaded model in either slot.

The image view keeps its two panels (the slots of :mod:`catviz.roles`); every loaded model
(``AppState.loaded``) is offered for each. Choosing the model the other panel shows swaps
the two panels, so a model is never compared with itself.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from .qt_events import unsubscribe_on_close
from .roles import ROLE_TITLES, ROLES, model_names
from .state import AppState, Event

#: The panels, left to right, as the menu names them.
PANELS = dict(zip(ROLES, ("Left panel", "Right panel"), strict=True))


class QtModelsMenu(QMenu):
    """Rebuilt when a model is loaded or unloaded (from the event loop: never under the action
    being triggered); its checks follow the slots. ``slot_actions[role]``: one checkable
    action per loaded model, in load order (the checked one is shown in that panel)."""

    def __init__(self, state: AppState, parent=None):
        super().__init__("&Models", parent)
        self.state = state
        self.panels = {role: self.addMenu(f"{PANELS[role]} ({ROLE_TITLES[role]} slot)") for role in ROLES}
        self.unload = self.addMenu("&Unload")
        self.addSeparator()
        self.count = self.addAction("")
        self.count.setEnabled(False)
        self.slot_actions: dict[str, list[QAction]] = {}
        self.unload_actions: list[QAction] = []
        self._shown: list = []  # the models the actions stand for, in order
        self.rebuild()
        unsubscribe_on_close(self, [
            state.subscribe(Event.LOADED_CHANGED, lambda count: QTimer.singleShot(0, self, self.rebuild)),
            state.subscribe(Event.MODELS_CHANGED, lambda role: self._check_shown())])

    def rebuild(self) -> None:
        loaded = list(self.state.loaded)
        names = model_names(loaded) if loaded else []
        self._shown = loaded
        for role, menu in self.panels.items():
            menu.clear()
            group = QActionGroup(menu)
            group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)  # an empty slot: none
            self.slot_actions[role] = []
            for model, name in zip(loaded, names, strict=True):
                action = QAction(name, menu, checkable=True)
                action.setToolTip(str(model.path))
                action.triggered.connect(lambda checked=False, r=role, m=model: self.show_in(r, m))
                group.addAction(action)
                menu.addAction(action)
                self.slot_actions[role].append(action)
            menu.setEnabled(bool(loaded))
        self.unload.clear()
        self.unload_actions = []
        for model, name in zip(loaded, names, strict=True):
            action = self.unload.addAction(name)
            action.triggered.connect(lambda checked=False, m=model: self.state.remove_models([m]))
            self.unload_actions.append(action)
        self.unload.setEnabled(bool(loaded))
        self.count.setText(f"{len(loaded)} model{'s' * (len(loaded) != 1)} loaded (one label set); "
                           "the Dataset tab compares them all")
        self._check_shown()

    def _check_shown(self) -> None:
        for role, actions in self.slot_actions.items():
            for model, action in zip(self._shown, actions, strict=True):
                action.setChecked(self.state.models.get(role) is model)

    def show_in(self, role: str, model) -> None:
        """Show ``model`` in ``role``'s panel; if the other panel shows it, the panels swap."""
        if self.state.models.get(role) is model:
            return
        other = next(r for r in ROLES if r != role)
        if self.state.models.get(other) is model:
            self.state.set_model(other, self.state.models.get(role))
        self.state.set_model(role, model)
