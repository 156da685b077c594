"""Packaging: the wheel holds every file the package needs (the demo's
static files, py.typed, the Django template tags and commands), building it
warns about nothing, and a required dependency is one the package imports."""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "bustware"


def _config() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _imported_top_level() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_required_dependency_is_imported_by_the_package():
    required = [line.split(">")[0].split("=")[0].strip().lower()
                for line in _config()["options"]["install_requires"].split("\n") if line.strip()]
    assert required == ["werkzeug"]
    assert set(required) <= _imported_top_level()
    assert "webob" not in _imported_top_level()  # the tests and benchmarks use it: extras
    extras = _config()["options.extras_require"]
    assert "webob" in extras["test"] and "webob" in extras["bench"]


def test_every_folder_with_files_is_a_declared_package():
    from setuptools import find_namespace_packages

    found = set(find_namespace_packages(str(REPO), include=["bustware", "bustware.*"],
                                        exclude=["*.__pycache__"]))
    folders = {".".join(p.relative_to(REPO).parts) for p in PACKAGE.rglob("*")
               if p.is_dir() and p.name != "__pycache__" and any(
                   f.is_file() for f in p.iterdir())}
    assert folders <= found
    data = _config()["options.package_data"]
    for folder in folders:
        files = [f for f in (REPO / folder.replace(".", "/")).iterdir()
                 if f.is_file() and f.suffix not in (".py", ".pyc")]
        if files:  # data files: each such folder says which ship
            assert folder in data, folder


@pytest.mark.slow
def test_the_wheel_builds_without_warnings_and_holds_the_data(tmp_path):
    pytest.importorskip("build", reason="python3 -m pip install build")
    src = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    for rel in listed:
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((REPO / rel).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    r = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"),
                        str(src)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "warning" not in out.lower(), [ln for ln in out.splitlines() if "arn" in ln]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["bustware/py.typed", "bustware/demo/static/css/site.css",
                   "bustware/demo/static/js/app.js", "bustware/demo/static/img/logo.svg",
                   "bustware/templatetags/bustware.py",
                   "bustware/management/commands/runserver.py"]:
        assert needed in names
