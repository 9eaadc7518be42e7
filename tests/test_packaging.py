"""The wheel: one top-level package, ``catviz``, holding every module and the demo assets; an
installed wheel runs the demo, and a user's own ``models``/``train_cli``/``utils`` packages on
the path change nothing catviz imports."""

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
#: Repository folder → the package it installs as.
INSTALLED_AS = {"catviz": "catviz", "models": "catviz.models", "train_cli": "catviz.train_cli"}
#: A user's own packages with catviz's former top-level names, first on the path: importing
#: any of them fails loudly, so catviz touching one shows as an error.
SHADOWS = ("models", "train_cli", "utils", "catviz_assets")


def write_shadowing_packages(folder: Path) -> Path:
    for name in SHADOWS:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} package was imported')\n")
    return folder


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"])
    for top, installed in INSTALLED_AS.items():
        for init in (ROOT / top).rglob("__init__.py"):
            package = ".".join([installed, *init.parent.relative_to(ROOT / top).parts])
            assert package in listed, f"{package} is missing from [tool.setuptools] packages"
    assert {name.split(".")[0] for name in listed} == {"catviz"}


def test_a_users_own_models_package_first_on_the_path_changes_nothing(tmp_path):
    """The source checkout (editable install): catviz's export runs with the user's packages first."""
    shadows = write_shadowing_packages(tmp_path / "project")
    env = {**os.environ, "PYTHONPATH": str(shadows), "QT_QPA_PLATFORM": "offscreen"}
    code = ("import sys, catviz.eval_cli, catviz.train_cli.train, catviz.app; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {SHADOWS!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=shadows, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    done = subprocess.run([sys.executable, "-m", "catviz", "export", "--demo", "--out", "fig.png", "--device", "cpu"],
                          cwd=shadows, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (shadows / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    for top, installed in INSTALLED_AS.items():
        for module in (ROOT / top).rglob("*.py"):
            assert "/".join([*installed.split("."), *module.relative_to(ROOT / top).parts]) in names
    for asset in ("demo_baseline.safetensors", "demo_cat.safetensors", "samples/ground_truth.json",
                  "samples/demo_00.png", "samples/photos/china.jpg", "samples/photos/ATTRIBUTION.txt"):
        assert f"catviz/assets/{asset}" in names
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"catviz"}
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

    elsewhere = write_shadowing_packages(tmp_path / "elsewhere")  # a user's project with its own packages
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(elsewhere)
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
