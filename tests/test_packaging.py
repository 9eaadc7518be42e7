"""The wheel: every package and the demo assets are in it, and an installed wheel runs the demo."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import read_configuration

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "catviz", "models", "train_cli", "assets")


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"])
    for top in ("catviz", "models", "train_cli"):
        for init in (ROOT / top).rglob("__init__.py"):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            assert package in listed, f"{package} is missing from [tool.setuptools] packages"


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so the shared working tree gets no build/ folder."""
    source = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "screenshots"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("catviz-*.whl")
    return wheel


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_export_from_another_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("catviz", "models", "train_cli"):
        for module in (ROOT / top).rglob("*.py"):
            assert module.relative_to(ROOT).as_posix() in names
    for asset in ("demo_baseline.safetensors", "demo_cat.safetensors", "samples/ground_truth.json",
                  "samples/demo_00.png", "samples/photos/china.jpg", "samples/photos/ATTRIBUTION.txt"):
        assert f"catviz_assets/{asset}" in names
    assert not any("screenshots" in n for n in names)

    # A fresh venv; torch & co. come from this environment's site-packages through a .pth
    # line (appended after the venv's own site-packages, so the wheel's catviz wins, and the
    # .pth files there -- the editable install's finder -- are not run).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import catviz.demo as d; print(d.__file__); print(d.ASSETS)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    out = elsewhere / "fig.png"
    done = subprocess.run([str(venv / "bin" / "catviz"), "export", "--demo", "--out", "fig.png", "--device", "cpu"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "10 images" in done.stdout
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
