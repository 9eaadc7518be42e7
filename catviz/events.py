"""Publish/subscribe for the app's plain-Python state (no Qt, no torch), like napari's events.

* Event names are members of one enum per observable (``catviz.state.Event``,
  ``catviz.dataset_state.DatasetEvent``); a string, or another observable's enum, raises
  ``TypeError``.
* Each member declares its payload: the names and types of the arguments subscribers
  receive (``Event.RESULT_READY.payload``), checked when the event is emitted.
* ``subscribe`` returns a :class:`Subscription`; ``unsubscribe`` (or the handle's
  ``disconnect``) ends it. Views unsubscribe when they close (``catviz.qt_events``).
* A subscriber that raises is logged with its traceback and reported (the observable's
  ``report``, a message the app shows); the subscribers after it still hear the event.
"""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_logger = logging.getLogger(__name__)


class TypedEvent(enum.Enum):
    """An event name with its payload: ``MEMBER = ("name", (("arg", type), ...), "what it means")``.

    ``type`` may be a tuple of types (``(ImageEntry, type(None))``) or ``object`` for "anything"."""

    def __new__(cls, name: str, payload: tuple = (), doc: str = ""):
        member = object.__new__(cls)
        member._value_ = name
        member.payload = tuple(payload)
        member.doc = doc
        return member

    def check(self, args: tuple) -> None:
        """Raise TypeError unless ``args`` match this event's declared payload."""
        if len(args) != len(self.payload):
            names = ", ".join(name for name, _ in self.payload)
            raise TypeError(f"{self} carries ({names}), not {len(args)} argument{'s' * (len(args) != 1)}")
        for value, (name, kind) in zip(args, self.payload, strict=True):
            if not isinstance(value, kind):
                raise TypeError(f"{self}: {name} must be {_type_names(kind)}, not {type(value).__name__}")


def _type_names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)


@dataclass(frozen=True, eq=False)
class Subscription:
    """A handle on one subscription; ``disconnect()`` ends it (again: nothing happens)."""

    source: Observable
    event: enum.Enum
    callback: Callable

    def disconnect(self) -> None:
        self.source.unsubscribe(self)


class Observable:
    """Publish/subscribe over the members of ``events`` (a :class:`TypedEvent` enum).

    ``report(text)``: where a failing subscriber is reported besides the log (the app's
    Messages); a failure while reporting one is only logged.
    """

    events: type[TypedEvent]

    def __init__(self, report: Callable[[str], Any] | None = None) -> None:
        self._subscriptions: dict[enum.Enum, list[Subscription]] = defaultdict(list)
        self._report_failure = report
        self._reporting = False

    def _event(self, event) -> TypedEvent:
        if not isinstance(event, self.events):
            hint = ""
            if isinstance(event, str):
                match = next((e for e in self.events if e.value == event), None)
                hint = f" (use {self.events.__name__}.{match.name})" if match is not None else ""
            raise TypeError(f"events of {type(self).__name__} are {self.events.__name__} members, "
                            f"not {event!r}{hint}")
        return event

    def subscribe(self, event: TypedEvent, callback: Callable) -> Subscription:
        subscription = Subscription(self, self._event(event), callback)
        self._subscriptions[subscription.event].append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        listeners = self._subscriptions.get(subscription.event, [])
        if subscription in listeners:
            listeners.remove(subscription)

    def subscribers(self, event: TypedEvent) -> int:
        return len(self._subscriptions.get(self._event(event), []))

    def emit(self, event: TypedEvent, *args) -> None:
        """Call every subscriber of ``event`` in subscription order, each whatever the others do."""
        event = self._event(event)
        event.check(args)
        for subscription in list(self._subscriptions.get(event, [])):
            if subscription not in self._subscriptions[event]:  # unsubscribed by an earlier one
                continue
            try:
                subscription.callback(*args)
            except Exception as err:  # one failing view must not keep the state from the others
                self._failed(event, subscription.callback, err)

    def _failed(self, event: TypedEvent, callback: Callable, err: Exception) -> None:
        name = getattr(callback, "__qualname__", repr(callback))
        _logger.exception("a subscriber of %s failed: %s", event, name)
        if self._report_failure is None or self._reporting:
            return
        self._reporting = True
        try:
            self._report_failure(f"internal error in {name} (on {event.name.lower()}): {type(err).__name__}: {err}")
        except Exception:
            _logger.exception("reporting the failure of %s failed", name)
        finally:
            self._reporting = False
