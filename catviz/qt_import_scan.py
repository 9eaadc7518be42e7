"""Importing the model side without PySide6's per-module source scan.

Once PySide6 is imported, every later import in the process runs
``shibokensupport.feature.feature_imported``, which reads the new module's source
(``inspect.getsource``) to decide whether it may use ``from __feature__ import ...``
(PYSIDE-2029; napari/napari#8584). torch, timm and torchvision are some 1,500 modules:
on this 2-core CPU the scan adds ~0.5 s to the model side's 2.8 s import, all of it on the
app's start-up path. catviz never selects a ``__feature__`` (snake_case, true_property),
so a module imported meanwhile loses nothing by being marked "ignore" (-1) unread.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

SCAN_MODULE = "shibokensupport.feature"
SCAN_FUNCTION = "_mod_uses_pyside"


def _uses_no_pyside(module) -> bool:
    return False


@contextmanager
def source_scan_skipped() -> Iterator[None]:
    """Within the block, PySide6 marks newly imported modules as not using it without
    reading their source. Nothing changes where PySide6 is not imported or works otherwise."""
    feature = sys.modules.get(SCAN_MODULE)
    scan = getattr(feature, SCAN_FUNCTION, None)
    if scan is None:
        yield
        return
    setattr(feature, SCAN_FUNCTION, _uses_no_pyside)
    try:
        yield
    finally:
        setattr(feature, SCAN_FUNCTION, scan)
