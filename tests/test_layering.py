"""Layering rules: no Qt in models/ and train_cli/, the app's state, inference and
rendering modules stay Qt-free too (Qt lives in catviz/qt_*.py and catviz/app.py), and
no view loads torch — not even through what it imports (checked in a fresh interpreter).
The app also never restates a model's shape: level names, head and layer counts come
from each model's spec."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT_FREE = [*ROOT.glob("models/**/*.py"), *ROOT.glob("train_cli/**/*.py"),
           *(p for p in ROOT.glob("catviz/*.py") if not p.name.startswith("qt_") and p.name != "app.py")]
#: Qt modules that are views: they draw the state and never run a model. (qt_workers runs
#: models; qt_main_window wires views to the workers.)
VIEWS = sorted(p.stem for p in ROOT.glob("catviz/qt_*.py") if p.stem not in ("qt_workers", "qt_main_window"))
TORCH_FREE = ["catviz.state", "catviz.results", "catviz.render", *(f"catviz.{v}" for v in VIEWS)]


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


def test_views_exist():
    assert {"qt_cam_view", "qt_attention_view", "qt_predictions"} <= set(VIEWS)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_importing_a_view_does_not_load_torch(module):
    """Transitively: what the module imports, and what those import, never load torch."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'models', 'timm', 'captum', 'pytorch_grad_cam'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": ""}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], f"{module} loads {json.loads(done.stdout)[:5]}"


def test_the_app_never_restates_a_models_shape():
    """No level name as a literal in catviz/ code: views and workers read them from ``model.spec``."""
    names = {"P3", "P4", "P5", "S5", "R5"}
    offenders = [f"catviz/{p.name}:{node.lineno}: {node.value!r}" for p in sorted(ROOT.glob("catviz/*.py"))
                 for node in ast.walk(ast.parse(p.read_text()))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)
                 and (node.value in names or re.fullmatch(r"(clf|lrd)\.(P\d|S\d)", node.value))]
    assert not offenders, "\n".join(offenders)
