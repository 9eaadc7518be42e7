"""The system libraries Qt's xcb platform plugin lacks, and the ``apt-get`` line that adds them.

A bare Debian/Ubuntu lacks some X11 client libraries that PySide6's wheel does not ship
(``libxcb-icccm4``, ``libxcb-keysyms1``, ``libxcb-cursor0`` ...); Qt then aborts with
"Could not load the Qt platform plugin xcb". ``python -m catviz.system_libs`` (run by
``make run`` before the app) asks ``ldd`` which libraries of the plugin are not found and
prints the command that installs them; it exits 1 then, 0 when nothing is missing or
the check does not apply (not Linux, another Qt platform chosen, no ``ldd``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so``, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def parse_ldd(output: str) -> list[str]:
    """Sonames ``ldd`` reports as ``not found``, sorted, each once."""
    return sorted({m.group(1) for m in re.finditer(r"^\s*(\S+) => not found", output, re.MULTILINE)})


def debian_package(soname: str) -> str:
    """Debian's package name for a shared library: ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``.

    Debian policy 8.1: the soname's name, lower case, then its version, joined by a hyphen
    when the name ends in a digit (``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``).
    """
    name, _, version = soname.partition(".so")
    name, version = name.lower(), version.lstrip(".").split(".")[0]
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def apt_get_line(sonames: list[str]) -> str:
    return "sudo apt-get install -y " + " ".join(sorted({debian_package(s) for s in sonames}))


def missing_libraries(plugin: Path) -> list[str]:
    done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=False)
    return parse_ldd(done.stdout)


def main() -> int:
    platform = os.environ.get("QT_QPA_PLATFORM") or "xcb"
    plugin = xcb_plugin()
    if not sys.platform.startswith("linux") or not platform.startswith("xcb") or plugin is None or not shutil.which("ldd"):
        return 0
    missing = missing_libraries(plugin)
    if not missing:
        return 0
    print(f"catviz: Qt's xcb platform plugin cannot load: {', '.join(missing)} not found.\n"
          f"Install the missing system libraries (Debian/Ubuntu):\n\n    {apt_get_line(missing)}\n\n"
          "or run without a display: QT_QPA_PLATFORM=offscreen, or `catviz export --demo --out fig.png`.",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
