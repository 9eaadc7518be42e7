"""A view's subscriptions to the state end with the view: when it is closed or destroyed.

    unsubscribe_on_close(self, [state.subscribe(Event.RESULT_READY, ...), ...])

A view embedded in a window gets no close event of its own when the window closes; the
window calls :func:`release_subscriptions` on itself, which ends those of every view in it.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QWidget

from .events import Subscription


class _Unsubscriber(QObject):
    """Child of the view: ends its subscriptions on the view's Close event, or when it goes."""

    def __init__(self, widget: QWidget, subscriptions: list[Subscription]):
        super().__init__(widget)
        self.subscriptions = subscriptions
        widget.installEventFilter(self)
        # Not a bound method of the view or of this object: both are gone when it is called.
        widget.destroyed.connect(lambda *_: _disconnect(subscriptions))

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            self.release()
        return False

    def release(self) -> None:
        _disconnect(self.subscriptions)


def _disconnect(subscriptions: list[Subscription]) -> None:
    for subscription in subscriptions:
        subscription.disconnect()
    subscriptions.clear()


def unsubscribe_on_close(widget: QWidget, subscriptions: Iterable[Subscription]) -> None:
    """End ``subscriptions`` when ``widget`` is closed or destroyed."""
    _Unsubscriber(widget, list(subscriptions))


def release_subscriptions(root: QWidget) -> None:
    """End the subscriptions of ``root`` and of every view inside it (a closing window)."""
    for unsubscriber in root.findChildren(_Unsubscriber):
        unsubscriber.release()
