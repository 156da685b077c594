"""The README's gunicorn command, with bustware/gunicorn_conf.py, run for
real on 127.0.0.1 with two workers: both answer versioned files over
keep-alive connections, and the index was built once, in the master."""

from __future__ import annotations

import hashlib
import http.client
import shlex
import time
from urllib.parse import urlsplit

import pytest
from conftest import gunicorn, make_tree
from examples import readme

IMMUTABLE = "max-age=31536000, immutable"
CSS = b"body { color: #123 }\n"
BIG = bytes(range(256)) * 1200  # 300 KiB: above the in-memory threshold, sent as a file

WSGI = '''
import os

from bustware import Bustware

# Imported once: with preload_app in the master, before the fork.
IMPORTED_IN = os.getpid()


def pids(environ, start_response):
    body = f"{os.getpid()} {IMPORTED_IN}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


application = Bustware(pids, "static/")
'''


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def readme_args() -> tuple[str, list[str]]:
    """The gunicorn command of the README, without its --bind (the test
    binds 127.0.0.1 on a free port)."""
    tokens = shlex.split(readme.snippets()["gunicorn"]["command.sh"].strip())
    assert tokens[0] == "gunicorn"
    app, args = tokens[-1], tokens[1:-1]
    if "--bind" in args:
        i = args.index("--bind")
        del args[i:i + 2]
    assert args[:2] == ["-c", "python:bustware.gunicorn_conf"]
    return app, args


def get(conn: http.client.HTTPConnection, path: str):
    conn.request("GET", path)
    r = conn.getresponse()
    return r, r.read()


@pytest.mark.server
def test_two_workers_serve_versioned_files(tmp_path):
    make_tree(tmp_path, {"wsgi.py": WSGI, "static/css/app.css": CSS, "static/big.bin": BIG})
    app, args = readme_args()
    assert app == "wsgi:application"
    with gunicorn(app, tmp_path, *args, "--workers", "2") as base:
        host, port = urlsplit(base).hostname, urlsplit(base).port
        workers: set[str] = set()
        importers: set[str] = set()
        deadline = time.monotonic() + 20
        while len(workers) < 2:
            assert time.monotonic() < deadline, f"only worker(s) {workers} answered"
            # Several connections at once, so that both workers accept some.
            conns = [http.client.HTTPConnection(host, port, timeout=5) for _ in range(4)]
            try:
                for conn in conns:
                    r, body = get(conn, "/pid")
                    assert r.status == 200
                    worker, imported_in = body.decode().split()
                    # The same connection (keep-alive: the same worker)
                    # gets the versioned files.
                    r, body = get(conn, f"/static/css/app.{v(CSS)}.css")
                    assert (r.status, body, r.getheader("Cache-Control")) == (
                        200, CSS, IMMUTABLE)
                    assert not r.will_close
                    r, body = get(conn, f"/static/big.{v(BIG)}.bin")
                    assert (r.status, r.getheader("Cache-Control")) == (200, IMMUTABLE)
                    assert body == BIG
                    r, body = get(conn, "/pid")
                    assert body.decode().split()[0] == worker  # still that worker
                    workers.add(worker)
                    importers.add(imported_in)
            finally:
                for conn in conns:
                    conn.close()
        # preload_app: the app (and its index) was imported by the master
        # only, never by a worker.
        assert len(importers) == 1
        assert importers.isdisjoint(workers)
