"""The model side is imported without PySide6's per-module source scan (catviz.qt_import_scan)."""

import sys

import PySide6.QtCore  # noqa: F401  (installs the import hook and its scan)

from catviz import qt_import_scan


def _write_module(folder, name: str) -> None:
    (folder / f"{name}.py").write_text('"""Mentions PySide6, as a module that uses it would."""\n')


def test_modules_imported_in_the_block_are_marked_unread_and_the_scan_comes_back(tmp_path, monkeypatch):
    feature = sys.modules[qt_import_scan.SCAN_MODULE]
    scan = getattr(feature, qt_import_scan.SCAN_FUNCTION)
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_module(tmp_path, "catviz_scan_inside")
    _write_module(tmp_path, "catviz_scan_outside")
    read = []
    monkeypatch.setattr(feature, qt_import_scan.SCAN_FUNCTION, lambda module: read.append(module.__name__) or scan(module))
    with qt_import_scan.source_scan_skipped():
        __import__("catviz_scan_inside")  # an import statement: through the hook
    __import__("catviz_scan_outside")
    assert "catviz_scan_inside" not in read and "catviz_scan_outside" in read
    assert feature.pyside_feature_dict["catviz_scan_inside"] == -1  # "ignore": never read
    assert feature.pyside_feature_dict["catviz_scan_outside"] == 0  # read: it says PySide6
    assert getattr(feature, qt_import_scan.SCAN_FUNCTION) is not qt_import_scan._uses_no_pyside


def test_without_the_scan_nothing_changes(monkeypatch):
    monkeypatch.delitem(sys.modules, qt_import_scan.SCAN_MODULE)
    with qt_import_scan.source_scan_skipped():
        __import__("json")
