"""A summary of a map array (its peak, its evidence totals, its faint share) computed once per array.

The CAM view redraws its titles, scales and bars on every result, setting and selection
change; at 1024² pixels a percentile or a masked sum over a map costs milliseconds on the
GUI thread and a refresh needs a dozen, which held the event loop for ~170 ms at a time.
Maps are not changed in place once computed, so a value keyed by the array's identity
stays right; the array is held weakly (an entry dies with its map) and at most ``LIMIT``
entries are kept.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

T = TypeVar("T")
LIMIT = 512

_memo: dict[tuple[int, Hashable], tuple[weakref.ref, object]] = {}
_lock = threading.Lock()


def per_map(array: np.ndarray, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, or its value from the last call with this very ``array`` and ``key``."""
    slot = (id(array), key)
    with _lock:
        entry = _memo.get(slot)
    if entry is not None and entry[0]() is array:
        return entry[1]  # type: ignore[return-value]
    value = compute()
    try:
        ref = weakref.ref(array)
    except TypeError:  # not weakly referable (a list, a scalar): not kept
        return value
    with _lock:
        while len(_memo) >= LIMIT:
            _memo.pop(next(iter(_memo)))
        _memo[slot] = (ref, value)
    return value
