"""Layering rules: the folders import downward only (models ← train_cli ← catviz) and no
module imports itself back (the import graph, read from the source); no Qt in models/ and train_cli/, the app's state, inference and
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
    code = f"import json, sys; import {module}; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'captum', 'pytorch_grad_cam') or m.startswith('catviz.models'))))"
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


# --- the import graph, read from the source -------------------------------------------------
#: The folders in the repository, the package each installs as, and its layer: a module may
#: import its own layer and those below, never one above.
LAYERS = {"models": ("catviz.models", 0), "train_cli": ("catviz.train_cli", 1), "catviz": ("catviz", 2)}


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [*LAYERS[folder][0].split("."), *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The folder a project module lives in (the longest package prefix), None for others."""
    for folder, (package, _) in sorted(LAYERS.items(), key=lambda item: -len(item[1][0])):
        if module == package or module.startswith(package + "."):
            return folder
    return None


def project_imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules ``path`` imports, anywhere in the file (lazy imports in functions too),
    relative imports resolved; ``from package import name`` counts the submodule when it is one."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != this:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for folder in LAYERS for p in (ROOT / folder).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): project_imports(p, modules) for p in files}


def test_the_graph_sees_the_imports_it_must_check():
    """The reader is not vacuous: known edges of each kind are found (absolute, relative, lazy)."""
    graph = import_graph()
    assert "catviz.models.checkpoint" in graph["catviz.train_cli.train"]  # absolute, across folders
    assert "catviz.state" in graph["catviz.qt_cam_view"]  # relative
    assert "catviz.train_cli.data.demo" in graph["catviz.train_cli.data.readers"]  # lazy, inside a function
    assert "catviz.faithfulness" in graph["catviz.eval_cli"]


def test_folders_import_downward_only():
    """models ← train_cli ← catviz: nothing imports a folder above its own."""
    upward = [f"{module} imports {target}" for module, targets in import_graph().items() for target in targets
              if layer_of(target) and LAYERS[layer_of(target)][1] > LAYERS[layer_of(module)][1]]
    assert not upward, "\n".join(sorted(upward))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found_when_there_are_some():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back():
    """No cycle between modules (a package's __init__ re-exporting its submodules is no cycle
    unless a submodule imports the package back)."""
    assert cycles(import_graph()) == []


def test_lower_folders_never_import_the_catviz_package_itself():
    """``from catviz import models`` in train_cli/ reads as an import of the app's package: lower
    folders name their target module (``import catviz.models as models``)."""
    offenders = [f"{p.relative_to(ROOT)}:{node.lineno}" for folder in ("models", "train_cli")
                 for p in (ROOT / folder).rglob("*.py") for node in ast.walk(ast.parse(p.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "catviz"]
    assert not offenders, offenders
