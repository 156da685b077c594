"""Shared test helpers: fixture trees and a real gunicorn process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote
from wsgiref.util import FileWrapper

import pytest
import webob
from werkzeug.test import Client


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory):
    """Digest caches (autorefresh=True turns one on) go to a directory of the
    test run, never to the user's ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


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


def run_asgi(app, scope: dict, *, disconnect_after: int | None = None) -> list[dict]:
    """What an ASGI server does with an app for one request: call it with
    the scope, hand it an empty request body, collect what it sends. With
    ``disconnect_after``, the client leaves once that many body messages
    have come. Checks the order of the messages (start, body..., last)."""
    sent: list[dict] = []
    bodies = asyncio.Event()

    async def receive():
        if not getattr(receive, "asked", False):
            receive.asked = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"", "more_body": False}
        if disconnect_after is None:
            await asyncio.Event().wait()  # the client stays until cancelled
        await bodies.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        assert not sent or sent[-1].get("more_body", False) or \
            sent[-1]["type"] == "http.response.start", f"{message} after the end"
        sent.append(message)
        if disconnect_after is not None and \
                sum(m["type"] == "http.response.body" for m in sent) >= disconnect_after:
            bodies.set()
        await asyncio.sleep(0)  # a server yields to the loop on each write

    asyncio.run(app(scope, receive, send))
    return sent


def asgi_scope(path: str, method: str = "GET", headers=None, query: str = "",
               extensions: dict | None = None) -> dict:
    """The scope of an HTTP request as an ASGI server builds it (header
    names lowercased, path percent-decoded)."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": method, "scheme": "http",
        "path": unquote(path), "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"), "root_path": "",
        "headers": [(b"host", b"testserver"),
                    *((k.lower().encode("latin-1"), v.encode("latin-1"))
                      for k, v in (headers or {}).items())],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        "extensions": extensions or {},
    }


_ASGI_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def via_asgi(app, path: str, method: str = "GET", headers=None, query: str = "") -> Response:
    """Calls a BustwareASGI; given a Bustware, the ASGI middleware that
    decides with that Bustware's very routes and options (so that one test
    table runs through both protocols)."""
    from bustware import Bustware, BustwareASGI

    if isinstance(app, Bustware):
        twin = _ASGI_TWINS.get(app)
        if twin is None:
            twin = _ASGI_TWINS[app] = BustwareASGI._sharing(app)
        app = twin
    sent = run_asgi(app, asgi_scope(path, method, headers, query))
    start, bodies = sent[0], sent[1:]
    assert start["type"] == "http.response.start", sent
    assert bodies and all(m["type"] == "http.response.body" for m in bodies), sent
    assert not bodies[-1].get("more_body", False), "the response never ended"
    return Response(start["status"],
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
                    b"".join(m.get("body", b"") for m in bodies))


@pytest.fixture(params=["werkzeug", "webob"])
def fetch(request):
    """Calls the app through werkzeug's test Client or webob.Request."""
    return via_werkzeug if request.param == "werkzeug" else via_webob


def server_environ(path: str, *, method: str = "GET", query: str = "",
                   file_wrapper: bool = False, **extra: object) -> dict:
    """A complete environ as a WSGI server builds it, with PATH_INFO exactly
    as given (HTTP clients normalise paths, which can hide bugs)."""
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
        "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if file_wrapper:
        environ["wsgi.file_wrapper"] = FileWrapper
    environ.update(extra)
    return environ


def run_wsgi(app, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a server does with an app: call it, iterate, close."""
    seen: dict = {}

    def write(data: bytes) -> None:
        raise AssertionError("bustware never uses the write() callable")

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers
        return write

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        if hasattr(iterable, "close"):
            iterable.close()
    return int(seen["status"][:3]), seen["headers"], body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process a test started: its base URL, and what it printed
    (filled in when it has stopped)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.output = ""


@contextlib.contextmanager
def serving(argv: list[str], port: int, *, cwd: Path | None = None, env=None,
            timeout: float = 20.0, log: Path | None = None) -> Iterator[Server]:
    """Run ``argv`` until it listens on 127.0.0.1:``port``; yield it; stop it.

    The process is always stopped (terminate, then kill), and a start that
    takes longer than ``timeout`` seconds fails the test. Its output is kept
    in ``server.output``, or appended to ``log`` for a server that writes a
    line per request (a pipe nobody reads meanwhile would fill and stall it).
    """
    if log is None:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    else:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                out = (proc.stdout.read().decode(errors="replace") if proc.stdout
                       else log.read_text(errors="replace")[-3000:] if log else "")
                pytest.fail(f"{argv[:3]} exited with {proc.returncode}:\n{out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{argv[:3]} did not listen on port {port} in {timeout}s")
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            server.output = proc.stdout.read().decode(errors="replace")
            proc.stdout.close()


@contextlib.contextmanager
def gunicorn(app: str, cwd: Path, *args: str, timeout: float = 20.0) -> Iterator[str]:
    """Run ``gunicorn app`` from ``cwd`` on 127.0.0.1; yield its base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    env.pop("PYTHONDEVMODE", None)  # gunicorn's own sockets are not under test
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--chdir", str(cwd), "--graceful-timeout", "2", *args, app]
    with serving(argv, port, cwd=cwd, env=env, timeout=timeout) as server:
        yield server.url


# -- one S3 server (moto's, over HTTP) for the whole session ------------------


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    from s3server import moto_server

    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def s3_admin(s3_endpoint):
    """A client of the test's own, for what bustware's store does not do
    (creating buckets, looking at raw keys and headers)."""
    from s3server import admin_client

    return admin_client(s3_endpoint)


@pytest.fixture
def s3_bucket(s3_endpoint, s3_admin, monkeypatch) -> str:
    """A fresh bucket, with the environment pointing the standard AWS
    chain at the test server."""
    from s3server import aws_env, new_bucket, use_env

    use_env(monkeypatch, aws_env(s3_endpoint))
    return new_bucket(s3_admin)
