"""Imported first by every benchmark: run as ``python bench/X.py``, the ``bench/`` folder is
first on sys.path, where ``bench/models.py`` would shadow the ``models`` package."""

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.modules.pop("models", None)
