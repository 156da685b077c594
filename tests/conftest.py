"""Shared test helpers: fixture trees and a real gunicorn process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import webob
from werkzeug.test import Client


def make_tree(root: Path, files: Mapping[str, bytes | str]) -> Path:
    """Write ``{relative path: content}`` under ``root`` and return it."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@pytest.fixture
def tree(tmp_path: Path):
    """``tree({...})`` makes a static root under tmp_path/static."""

    def make(files: Mapping[str, bytes | str]) -> Path:
        return make_tree(tmp_path / "static", files)

    return make


def fallback_app(environ, start_response):
    """The wrapped application in tests: says who answered."""
    body = f"app:{environ.get('PATH_INFO', '')}".encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Response:
    """What both test clients agree on: status code, headers, body bytes."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None

    def names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


def via_werkzeug(app, path: str, method: str = "GET", headers=None, query: str = "") -> Response:
    resp = Client(app).open(path, method=method, headers=headers or {},
                            query_string=query or None)
    try:
        body = resp.get_data()
        return Response(resp.status_code, list(resp.headers.items()), body)
    finally:
        resp.close()


def via_webob(app, path: str, method: str = "GET", headers=None, query: str = "") -> Response:
    req = webob.Request.blank(path + (f"?{query}" if query else ""), method=method)
    for k, v in (headers or {}).items():
        req.headers[k] = v
    resp = req.get_response(app)
    return Response(resp.status_code, list(resp.headerlist), resp.body)


@pytest.fixture(params=["werkzeug", "webob"])
def fetch(request):
    """Calls the app through werkzeug's test Client or webob.Request."""
    return via_werkzeug if request.param == "werkzeug" else via_webob


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app: str, cwd: Path, *args: str, timeout: float = 20.0) -> Iterator[str]:
    """Run ``gunicorn app`` from ``cwd`` on 127.0.0.1; yield its base URL.

    The process is always stopped, and a start that takes longer than
    ``timeout`` seconds fails the test.
    """
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    env.pop("PYTHONDEVMODE", None)  # gunicorn's own sockets are not under test
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
         "--chdir", str(cwd), "--graceful-timeout", "2", *args, app],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"gunicorn exited with {proc.returncode}:\n{out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not listen on port {port} in {timeout}s")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
