"""Layering rules: no Qt in models/ and train_cli/, and the app's state, inference and
rendering modules stay Qt-free too (Qt lives in catviz/qt_*.py and catviz/app.py)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT_FREE = [*ROOT.glob("models/**/*.py"), *ROOT.glob("train_cli/**/*.py"),
           *(p for p in ROOT.glob("catviz/*.py") if not p.name.startswith("qt_") and p.name != "app.py")]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", QT_FREE, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_does_not_import_qt(path):
    assert not imported_modules(path) & {"PySide6", "pyqtgraph", "PyQt5", "PyQt6"}


def test_qt_views_do_not_touch_torch():
    for path in ROOT.glob("catviz/qt_*.py"):
        assert "torch" not in imported_modules(path), path.name
