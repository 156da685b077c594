"""A real Django project (tests/examples/djsite, as startproject writes one
plus the README's Django section) copied to a fresh directory and run with
manage.py: runserver on 127.0.0.1, check, and the project's own tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import django.contrib.admin
import pytest
from conftest import free_port, serving
from examples import readme

from bustware import Assets

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "examples" / "djsite"
ADMIN_STATIC = Path(django.contrib.admin.__file__).resolve().parent / "static"
IMMUTABLE = "max-age=31536000, immutable"


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh checkout: no STATIC_ROOT (never collected), no database."""
    dest = tmp_path / "djsite"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def environ() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), *sys.path])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def manage(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=project, env=environ(),
                          capture_output=True, text=True, timeout=120)


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def test_the_example_settings_are_the_readmes():
    shown = readme.snippets()["django"]["settings.py"]
    assert shown in (EXAMPLE / "djsite" / "settings.py").read_text(encoding="utf-8")


@pytest.mark.server
@pytest.mark.parametrize("extra", [[], ["--nostatic"]], ids=["runserver", "nostatic"])
def test_runserver_serves_the_admin_stylesheets(project, extra):
    port = free_port()
    # --noreload: one process to stop; the reloader only re-runs the same code.
    argv = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}", *extra]
    with serving(argv, port, cwd=project, env=environ()) as server:
        status, _, page = get(server.url + "/admin/login/")
        assert status == 200
        sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.decode())
        # The served bytes of each: the file with its references rewritten
        # to versioned URLs, as bustware computes them from the admin's files.
        admin = Assets(ADMIN_STATIC)
        expected = {admin.url(a.path): a.served_bytes() for a in admin
                    if a.path.startswith("admin/css/")}
        assert admin.url("admin/css/login.css") in sheets
        assert set(sheets) <= set(expected)
        for url in sheets:
            status, headers, body = get(server.url + url)
            assert (status, headers["Cache-Control"]) == (200, IMMUTABLE), url
            assert body == expected[url], url
        login = (ADMIN_STATIC / "admin/css/login.css").read_bytes()
        assert expected[admin.url("admin/css/login.css")] == login  # nothing to rewrite
        status, headers, body = get(server.url + "/static/admin/css/login.css")
        assert (status, headers["Cache-Control"], body) == (200, "no-cache", login)
        assert get(server.url + "/static/admin/css/nope.css")[0] == 404
    assert "bustware.W" not in server.output


def test_staticfiles_listed_first_is_explained_by_a_check(project):
    (project / "djsite" / "settings_late.py").write_text(
        "from .settings import *  # noqa: F403\n"
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'bustware'] + ['bustware']\n"
    )
    r = manage(project, "check", "--settings", "djsite.settings_late")
    assert r.returncode == 0, r.stderr
    assert "(bustware.W002) 'django.contrib.staticfiles' is listed before 'bustware'" in r.stderr
    assert "HINT: List 'bustware' before 'django.contrib.staticfiles'" in r.stderr


@pytest.mark.server
def test_manage_py_test_on_a_fresh_checkout(project):
    """The project's tests (pages/tests.py): a page through the test client,
    and versioned URLs fetched from StaticLiveServerTestCase's server."""
    r = manage(project, "test", "-v", "2", "pages")
    assert r.returncode == 0, r.stderr
    assert re.search(r"test_page_has_versioned_urls .* \.\.\. ok\n", r.stderr), r.stderr
    assert re.search(r"test_versioned_static_urls_are_served .* \.\.\. ok\n", r.stderr), r.stderr
    assert "Ran 2 tests" in r.stderr
    assert not (project / "staticfiles").exists()
