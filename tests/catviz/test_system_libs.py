"""``make run``'s check: which libraries Qt's xcb plugin lacks and the apt-get line for them."""

import pytest

from catviz import system_libs

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007fb0)
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibEGL.so.1 => /lib/x86_64-linux-gnu/libEGL.so.1 (0x00007fb0)
"""


def test_ldd_output_gives_each_missing_library_once():
    assert system_libs.parse_ldd(LDD) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0"]


@pytest.mark.parametrize(("soname", "package"), [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-cursor.so.0", "libxcb-cursor0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"), ("libEGL.so.1", "libegl1"),
    ("libxcb-render-util.so.0.0.0", "libxcb-render-util0"), ("libdbus-1.so.3", "libdbus-1-3"),
])
def test_debian_package_names_follow_the_soname(soname, package):
    assert system_libs.debian_package(soname) == package


def test_missing_libraries_print_the_apt_get_line_and_fail(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(system_libs, "xcb_plugin", lambda: tmp_path / "libqxcb.so")
    monkeypatch.setattr(system_libs, "missing_libraries", lambda plugin: system_libs.parse_ldd(LDD))
    assert system_libs.main() == 1
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0" in capsys.readouterr().err


def test_no_check_when_another_qt_platform_is_chosen(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(system_libs, "missing_libraries", lambda plugin: pytest.fail("ldd run"))
    assert system_libs.main() == 0


def test_the_real_plugin_is_found_and_checked():
    plugin = system_libs.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert all(".so" in name for name in system_libs.missing_libraries(plugin))
