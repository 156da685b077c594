"""The first hour of a new user: bad input of each kind gets an error that
names the bad value and says what to do, and advice works when followed
literally (run in a shell, in a fresh directory, with the real paths)."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bustware
from bustware import AssetNotFound, Assets, Bustware, BustwareASGI
from bustware.build import build

REPO = Path(__file__).resolve().parents[1]
CSS = b"body { color: #123 }\n"


@pytest.fixture
def shell(tmp_path):
    """Run a command line in a POSIX shell, in a fresh directory, with
    ``bustware`` on the PATH meaning this checkout's command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "bustware"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m bustware "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "project"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", command], cwd=work, env=env, capture_output=True,
                              text=True, timeout=60)

    run.cwd = work  # type: ignore[attr-defined]
    return run


def _advice(stderr: str) -> str:
    """The command in backquotes a message tells the user to run."""
    commands = re.findall(r"`([^`]*&& bustware build[^`]*)`", stderr)
    assert commands, stderr
    return commands[0]


def _static(work: Path) -> Path:
    (work / "static" / "css").mkdir(parents=True)
    (work / "static" / "css" / "app.css").write_bytes(CSS)
    return work / "static"


@pytest.mark.parametrize("damage", ["truncated", "foreign", "schema", "field"])
@pytest.mark.parametrize("out", [None, "release/manifest.json"])
def test_damaged_manifest_advice_followed_literally(shell, damage, out):
    static = _static(shell.cwd)
    out_args = f" --out {out}" if out else ""
    assert shell(f"bustware build static{out_args} --quiet").returncode == 0
    manifest = shell.cwd / (out or "static/.bustware/manifest.json")
    text = manifest.read_text()
    if damage == "truncated":
        manifest.write_text(text[:100])
    elif damage == "foreign":
        manifest.write_text(json.dumps({"main.js": "main.1234abcd.js"}))
    elif damage == "schema":
        manifest.write_text(text.replace('"schema_version": 1', '"schema_version": 99'))
    else:
        data = json.loads(text)
        del data["settings"]
        manifest.write_text(json.dumps(data))
    damaged_bytes = manifest.read_bytes()
    verify = f"bustware verify static{' --manifest ' + out if out else ''}"
    r = shell(verify)
    assert r.returncode == 2, r
    again = shell(f"bustware build static{out_args}")  # without the advice: still refused
    assert again.returncode == 2 and manifest.read_bytes() == damaged_bytes
    followed = shell(_advice(r.stderr))
    assert followed.returncode == 0, followed.stderr
    assert shell(verify).returncode == 0
    # Nothing lost: the damaged file is beside the new one, as it was.
    assert Path(str(manifest) + ".damaged").read_bytes() == damaged_bytes
    assert (static / "css" / "app.css").read_bytes() == CSS
    # A second damage moves aside to another name, never over the first.
    manifest.write_text("{")
    second = shell(verify)
    assert ".damaged-2" in _advice(second.stderr)
    assert shell(_advice(second.stderr)).returncode == 0
    assert Path(str(manifest) + ".damaged").read_bytes() == damaged_bytes


def _error(make) -> str:
    with pytest.raises(Exception) as info:
        make()
    return str(info.value)


@pytest.mark.parametrize(("call", "named", "meant"), [
    (lambda r: Bustware(None, r, cache_controll="no-cache"), "Bustware()", "cache_control"),
    (lambda r: BustwareASGI(None, r, autorefrsh=True), "BustwareASGI()", "autorefresh"),
    (lambda r: Assets(r, stlye="segment"), "Assets()", "style"),
    (lambda r: Assets(r, Manifest="m.json"), "Assets()", "manifest"),
    (lambda r: Bustware(None, r, outdate="404"), "Bustware()", "outdated"),
])
def test_unknown_keyword_names_the_closest(tmp_path, call, named, meant):
    message = _error(lambda: call(_static(tmp_path)))
    assert message.startswith(f"bustware: {named} got an unexpected keyword argument")
    assert f"did you mean {meant!r}?" in message


def test_unknown_keyword_of_the_integrations(tmp_path):
    pytest.importorskip("flask")
    import flask

    import bustware.flask
    import bustware.quart
    from bustware.pyramid import BustwareCacheBuster

    static = _static(tmp_path)
    assert "did you mean 'cache_control'?" in _error(
        lambda: bustware.flask.Bustware(cache_contol="x"))
    app = flask.Flask("first_hour", static_folder=str(static))
    app.config["BUSTWARE_AUTOREFESH"] = True
    with pytest.raises(ValueError, match="did you mean 'BUSTWARE_AUTOREFRESH'"):
        bustware.flask.Bustware(app)
    assert "did you mean 'style'?" in _error(lambda: BustwareCacheBuster(static, styel="x"))
    quart = pytest.importorskip("quart")
    message = _error(lambda: bustware.quart.install(quart.Quart("q", static_folder=str(static)),
                                                    autorefesh=True))
    assert "did you mean 'autorefresh'?" in message


def test_unknown_key_in_django_settings():
    pytest.importorskip("django")
    from django.test import override_settings
    from examples.django_project import configure

    import bustware.django

    configure()
    with override_settings(BUSTWARE={"stirct": False}):
        message = _error(bustware.django.options)
    assert "'stirct'" in message and "did you mean 'strict'?" in message
    assert "did you mean 'outdated'?" in _error(lambda: bustware.django.wrap(
        lambda e, s: [], outdate="404"))


def test_a_relative_root_that_does_not_exist(shell):
    _static(shell.cwd)
    r = shell("bustware url statics css/app.css")
    assert r.returncode == 2
    assert f"looked for {shell.cwd / 'statics'}" in r.stderr
    assert f"current directory ({shell.cwd})" in r.stderr
    assert "pass an absolute path" in r.stderr
    r = shell("cd static && bustware url static css/app.css")  # started one level too deep
    assert f"looked for {shell.cwd / 'static' / 'static'}" in r.stderr


def test_url_near_misses(tmp_path):
    static = _static(tmp_path)
    (static / "js").mkdir()
    (static / "js" / "App.js").write_bytes(b"1;\n")
    assets = Assets(static)
    current = assets.url("css/app.css")
    # Unambiguous: no logical path starts with "/".
    assert assets.url("/css/app.css") == current
    assert assets.url("/static/css/app.css") == current
    for given, meant in [("static/css/app.css", "css/app.css"), ("CSS/app.css", "css/app.css"),
                         ("js/app.js", "js/App.js"), ("app.css", "css/app.css")]:
        with pytest.raises(AssetNotFound) as info:
            assets.url(given)
        assert f"no file {given!r}" in str(info.value)
        assert f"Did you mean {meant!r}?" in str(info.value)
    with pytest.raises(AssetNotFound, match="relative to the root") as info:
        assets.url("css/gone.css")
    assert "Did you mean" not in str(info.value)


def test_url_never_guesses_between_two_files(tmp_path):
    static = _static(tmp_path)
    (static / "static" / "css").mkdir(parents=True)
    (static / "static" / "css" / "app.css").write_bytes(b"a{}\n")
    assets = Assets(static)
    # "/static/css/app.css" is css/app.css at the prefix, or static/css/app.css.
    with pytest.raises(AssetNotFound) as info:
        assets.url("/static/css/app.css")
    assert "'css/app.css' or 'static/css/app.css'" in str(info.value)
    assert assets.url("static/css/app.css").startswith("/static/static/css/app.")


def test_one_version_everywhere(tmp_path, shell):
    r = shell("bustware --version")
    assert r.returncode == 0 and r.stdout.strip() == f"bustware {bustware.__version__}"
    assert bustware.__version__ == "0.2.0"
    static = _static(tmp_path)
    build(static)
    data = json.loads((static / ".bustware" / "manifest.json").read_text())
    assert data["generator"] == f"bustware {bustware.__version__}"
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["metadata"]["version"] == "attr: bustware.about.__version__"
    shown = re.search(r"bustware --version +# bustware (\S+)", (REPO / "README.md").read_text())
    assert shown and shown[1] == bustware.__version__


def test_a_missing_system_program_skips_locally_and_fails_in_ci(tmp_path):
    """tests/system_tools.py, as the deploy test uses it, run by pytest in
    a child with a PATH that lacks haproxy."""
    (tmp_path / "test_needs.py").write_text(
        "import system_tools\n\n"
        "def test_needs():\n"
        "    system_tools.require({'no-such-haproxy': 'haproxy', 'sh': 'dash'})\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO)])
    argv = [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "-c", os.devnull,
            str(tmp_path / "test_needs.py")]
    local = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    assert "sudo apt-get install -y haproxy;" in local.stdout
    ci = subprocess.run(argv, cwd=tmp_path, env={**env, "CI": "true"}, capture_output=True,
                        text=True, timeout=120)
    assert ci.returncode == 1 and "1 failed" in ci.stdout, ci.stdout
    assert "sudo apt-get install -y haproxy;" in ci.stdout


def test_a_damaged_manifest_met_by_the_index_gives_advice_that_works(shell):
    """The process starting from a manifest at --out says which roots to
    build, not a ROOT placeholder."""
    static = _static(shell.cwd)
    assert shell("bustware build static --out shared/manifest.json --quiet").returncode == 0
    manifest = shell.cwd / "shared" / "manifest.json"
    manifest.write_text("{")
    with pytest.raises(ValueError) as info:
        Assets(static, manifest=manifest)
    assert "ROOT" not in str(info.value)
    assert shell(_advice(str(info.value))).returncode == 0
    assert Assets(static, manifest=manifest).url("css/app.css").startswith("/static/css/app.")


def test_flask_url_for_near_misses(tmp_path):
    flask = pytest.importorskip("flask")
    import bustware.flask

    static = _static(tmp_path)
    app = flask.Flask("near_misses", static_folder=str(static))
    bustware.flask.Bustware(app)
    with app.test_request_context():
        current = flask.url_for("static", filename="css/app.css")
        assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", current)
        assert flask.url_for("static", filename="/css/app.css") == current
        with pytest.raises(AssetNotFound, match=re.escape("Did you mean 'css/app.css'")):
            flask.url_for("static", filename="static/css/app.css")


def _readme_commands() -> list[str]:
    """The README's concrete ``bustware`` command lines (not the synopsis
    of the Command line section, nor the deploy recipes, which
    tests/test_rolling_deploy.py runs on its own hosts and
    tests/test_container_rollout.py against its own bucket)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"(?ms)^```sh\n(.*?)^```", text):
        for line in block.replace("\\\n", " ").splitlines():
            if (line.startswith("bustware ") and "[" not in line and "/srv/app" not in line
                    and "s3://" not in line):
                lines.append(line.split("  #")[0].strip())
    return lines


def test_every_bustware_command_shown_runs(shell):
    for tree in ("static", "myapp/static", "myapp/admin/static"):
        (shell.cwd / tree / "css").mkdir(parents=True)
        (shell.cwd / tree / "css" / "app.css").write_bytes(CSS * 20)
    commands = _readme_commands()
    # Builds first: prune and verify need a manifest.
    commands.sort(key=lambda c: not c.startswith("bustware build"))
    assert len(commands) >= 7, commands
    for command in commands:
        r = shell(command)
        assert r.returncode == 0, f"{command}\n{r.stderr}"
    # As its comment says: "writes static/.bustware/manifest.json".
    assert (shell.cwd / "static" / ".bustware" / "manifest.json").is_file()
    assert (shell.cwd / "myapp" / "admin" / "static" / ".bustware" / "manifest.json").is_file()
