"""Issue 10 defect 4: `kill -HUP` under bustware.gunicorn_conf (which
preloads the app) deploys the new release, following the README recipe:
build into the shared manifest, switch `current` atomically, HUP. Run for
real: one gunicorn on 127.0.0.1, stopped by the test."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import gunicorn, make_tree

from bustware import build as b

IMMUTABLE = "max-age=31536000, immutable"
CSS = {"v1": b"body { color: red }\n", "v2": b"body { color: blue }\n"}

WSGI = '''
from bustware import Bustware

BASE = {base!r}


def page(environ, start_response):
    body = application.url("css/app.css").encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = Bustware(page, BASE + "/current/static",
                       manifest=BASE + "/shared/bustware/manifest.json")
'''


def url_of(data: bytes) -> str:
    return f"/static/css/app.{hashlib.sha256(data).hexdigest()[:12]}.css"


def deploy_step_1(base: Path, rev: str) -> None:
    """The recipe's step 1: the release lands, the shared manifest is built."""
    make_tree(base / "releases" / rev, {"wsgi.py": WSGI.format(base=str(base)),
                                        "static/css/app.css": CSS[rev]})
    b.build(base / "releases" / rev / "static", base / "shared/bustware/manifest.json",
            compress=["gzip"], keep=3)


def switch(base: Path, rev: str) -> None:
    os.symlink(f"releases/{rev}", base / "current.new")
    os.replace(base / "current.new", base / "current")


def get(base_url: str, path: str):
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Cache-Control"), r.read()
    finally:
        conn.close()


@pytest.mark.server
def test_kill_hup_serves_the_new_release(tmp_path):
    base = tmp_path
    deploy_step_1(base, "v1")
    switch(base, "v1")
    pidfile = base / "gunicorn.pid"
    with gunicorn("wsgi:application", base / "current", "-c", "python:bustware.gunicorn_conf",
                  "--workers", "1", "--pid", str(pidfile)) as server:
        assert get(server, "/")[2].decode() == url_of(CSS["v1"])
        assert get(server, url_of(CSS["v1"])) == (200, IMMUTABLE, CSS["v1"])
        deploy_step_1(base, "v2")
        switch(base, "v2")
        os.kill(int(pidfile.read_text()), signal.SIGHUP)
        deadline = time.monotonic() + 20
        while get(server, "/")[2].decode() != url_of(CSS["v2"]):
            assert time.monotonic() < deadline, "the reloaded workers kept the old release"
            time.sleep(0.1)
        assert get(server, url_of(CSS["v2"])) == (200, IMMUTABLE, CSS["v2"])
        # Pages of the release before still get their own bytes.
        assert get(server, url_of(CSS["v1"])) == (200, IMMUTABLE, CSS["v1"])
