"""Each framework's quick start in the README, followed as written: its
``pip install`` line installs what its files import and its command runs,
the files it shows are written beside a ``static/`` tree, the command it
shows is run (on a free port, in a fresh directory), and the page it serves
names versioned URLs that are answered with the file's bytes and the
immutable header."""

from __future__ import annotations

import ast
import configparser
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from conftest import free_port, serving
from examples import readme
from test_http_gunicorn import raw_get
from test_readme import QUICK_STARTS

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[1]
IMMUTABLE = "max-age=31536000, immutable"
CSS, JS = readme.STATIC["static/css/app.css"], readme.STATIC["static/js/app.js"]
BODIES = {".css": CSS, ".js": JS}

#: Distribution -> what it brings along that a quick start relies on.
BRINGS = {"bustware": {"werkzeug"}, "flask": {"jinja2", "werkzeug"}, "quart": {"jinja2"},
          "fastapi": {"starlette"}, "django": set(), "pyramid": {"webob"}}
#: A module a quick start imports -> its distribution.
DISTRIBUTION = {"jinja2": "jinja2", "flask": "flask", "django": "django", "pyramid": "pyramid",
                "fastapi": "fastapi", "starlette": "starlette", "litestar": "litestar",
                "quart": "quart", "bottle": "bottle", "falcon": "falcon",
                "bustware": "bustware"}
#: The program a command starts -> its distribution.
PROGRAM = {"gunicorn": "gunicorn", "uvicorn": "uvicorn", "flask": "flask",
           "django-admin": "django", "python3": None}


def _extras() -> dict[str, set[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return {name: {re.split(r"[<>=\[; ]", line.strip())[0].lower()
                   for line in value.splitlines() if line.strip()}
            for name, value in cfg["options.extras_require"].items()}


def _installed_by(install: str) -> set[str]:
    """The distributions the quick start's ``pip install`` line brings."""
    lines = [shlex.split(line) for line in install.strip().splitlines()]
    pip = [w for w in lines if w[:4] == ["python3", "-m", "pip", "install"]]
    assert len(pip) == 1, install
    extras = _extras()
    found: set[str] = set()
    for requirement in pip[0][4:]:
        m = re.fullmatch(r"([\w-]+)(?:\[([\w,]+)\])?", requirement)
        assert m, requirement
        found.add(m[1].lower())
        for extra in (m[2] or "").split(","):
            if extra:
                assert extra in extras, f"no extra {extra!r} in setup.cfg"
                found |= extras[extra]
    for name in list(found):
        found |= BRINGS.get(name, set())
    return found


def _needed_by(files: dict[str, str], commands: list[str]) -> set[str]:
    needed = set()
    for name, source in files.items():
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(source)):
                modules = []
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module or ""]
                for module in modules:
                    top = module.split(".")[0]
                    if top in DISTRIBUTION:
                        needed.add(DISTRIBUTION[top])
            if "Jinja2Templates" in source or "JinjaTemplateEngine" in source:
                needed.add("jinja2")  # the frameworks' Jinja support needs Jinja2
    for command in commands:
        program = shlex.split(command)[0]
        assert program in PROGRAM, command
        if PROGRAM[program]:
            needed.add(PROGRAM[program])
    return needed


def _commands(block: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", sorted(QUICK_STARTS))
def test_the_install_line_brings_what_the_quick_start_uses(name):
    shown = readme.snippets()[name]
    commands = [c for c in _commands(shown["install.sh"]) if "pip install" not in c]
    commands += _commands(shown["run.sh"])
    missing = _needed_by(shown, commands) - _installed_by(shown["install.sh"])
    assert not missing, f"the {name} quick start uses {missing} but does not install them"


def _environ(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDEVMODE", "DEBUG", "DJANGO_SETTINGS_MODULE", "CI")}
    # `python3` and the servers' commands: those of the interpreter running
    # the tests (its bin directory, where pip put them).
    env["PATH"] = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable),
                                   env.get("PATH", "")])
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "python3"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    return _environ(bin_dir)


def _on_port(command: str, port: int) -> str:
    """The command as shown, told which port to listen on."""
    program = shlex.split(command)[0]
    if program == "gunicorn":
        return f"{command} --bind 127.0.0.1:{port} --workers 1"
    if program in ("uvicorn", "flask"):
        return f"{command} --port {port}"
    raise AssertionError(f"no port option known for {command!r}")


def _run(command: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(["sh", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


def _check_page(base: str) -> None:
    status, headers, page = raw_get(base, "/")
    assert status == 200, page[:500]
    urls = re.findall(r"""(?:href|src)=["']([^"']+)["']""", page.decode())
    assert urls, page[:500]
    for url in urls:
        path = urllib.parse.urlsplit(url).path  # Pyramid's URLs carry the host
        assert re.fullmatch(r"/static/(css/app|js/app)\.[0-9a-f]{12}\.(css|js)", path), url
        status, headers, body = raw_get(base, path)
        assert (status, body) == (200, BODIES[os.path.splitext(path)[1]]), url
        assert headers["cache-control"] == IMMUTABLE, url


@pytest.mark.parametrize("name", sorted(set(QUICK_STARTS) - {"jinja"}))
def test_the_quick_start_runs_as_written(name, tmp_path, env):
    shown = readme.snippets()[name]
    work = tmp_path / "project"
    work.mkdir()
    for command in _commands(shown["install.sh"]):
        if "pip install" not in command:  # the packages are those of this test run
            _run(command, work, env)
    for rel, content in [*readme.STATIC.items(), *shown.items()]:
        if rel.endswith(".sh") or (name, rel) == ("django", "asgi.py"):
            continue
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == "settings.py":  # "Add to the end of mysite/settings.py"
            path = work / "mysite" / "settings.py"
            with open(path, "a", encoding="utf-8") as f:
                f.write("\n" + content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    *before, serve = _commands(shown["run.sh"])
    for command in before:
        _run(command, work, env)
    port = free_port()
    with serving(["sh", "-c", "exec " + _on_port(serve, port)], port, cwd=work, env=env,
                 timeout=60) as server:
        _check_page(server.url)


def test_the_jinja_quick_start_prints_the_page(tmp_path, env):
    shown = readme.snippets()["jinja"]
    readme.write("jinja", tmp_path)
    (command,) = _commands(shown["run.sh"])
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    urls = re.findall(r"""(?:href|src)=["']([^"']+)["']""", done.stdout)
    assert [re.sub(r"\.[0-9a-f]{12}\.", ".V.", u) for u in urls] == [
        "/static/css/app.V.css", "/static/js/app.V.js"]
