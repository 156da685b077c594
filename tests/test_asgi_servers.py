"""BustwareASGI under real ASGI servers (issue 14): uvicorn, hypercorn and
granian each started on a free 127.0.0.1 port, asked for a versioned file,
a range, a revalidation, a 300 KiB streamed file and a page of the app;
exact bytes on the wire, every response linted by httplint as in
tests/test_http.py."""

from __future__ import annotations

import importlib.util
import os
import random
import re
import sys

import pytest
from conftest import Response, free_port, make_tree, serving
from examples import readme
from test_http import assert_lint_clean
from test_http_gunicorn import raw_get

from bustware import Assets

pytestmark = pytest.mark.server

THRESHOLD = 64 * 1024
CSS = b"".join(b".c%d { margin: %dpx }\n" % (i, i % 9) for i in range(200))
BIG = random.Random(14).randbytes(300 * 1024)  # incompressible: no variants
IMMUTABLE = "max-age=31536000, immutable"

APP = f'''
from bustware import BustwareASGI

pathsends = []


async def page(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    body = f"page {{scope['path']}} pathsends={{len(pathsends)}}".encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"cache-control", b"no-store"),
                            (b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})


static = BustwareASGI(page, "static", memory_threshold={THRESHOLD}, compress=False)


async def app(scope, receive, send):
    async def counting(message):
        if message["type"] == "http.response.pathsend":
            pathsends.append(message["path"])
        await send(message)

    await static(scope, receive, counting)
'''


def command(server: str, port: int, target: str = "asgiapp:app") -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", target]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
                target]
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--no-ws", target]


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn", "granian"])
def served(request, tmp_path_factory):
    server = request.param
    if importlib.util.find_spec(server) is None:
        pytest.skip(f"{server} is not installed (pip install '.[test]')")
    cwd = tmp_path_factory.mktemp(server)
    make_tree(cwd / "static", {"css/app.css": CSS, "big.bin": BIG})
    (cwd / "asgiapp.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    env.pop("PYTHONDEVMODE", None)  # the servers' own sockets are not under test
    port = free_port()
    with serving(command(server, port), port, cwd=cwd, env=env, timeout=30) as proc:
        assets = Assets(cwd / "static", memory_threshold=THRESHOLD)
        yield server, proc.url, {"css": assets.url("css/app.css"), "big": assets.url("big.bin")}


def fetch(base: str, url: str, headers: dict[str, str] | None = None) -> Response:
    status, fields, body = raw_get(base, url, headers)
    # What the server adds itself, and the connection: not the middleware's.
    fields = {k: v for k, v in fields.items()
              if k not in ("date", "server", "connection", "alt-svc")}
    r = Response(status, list(fields.items()), body)
    assert_lint_clean(r, "GET", url, headers or {})
    return r


def test_a_versioned_file(served):
    _, base, urls = served
    r = fetch(base, urls["css"])
    assert r.status == 200 and r.body == CSS
    assert r.header("Content-Type") == "text/css; charset=utf-8"
    assert r.header("Content-Length") == str(len(CSS))
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("ETag").startswith('"')


def test_a_range_and_a_revalidation(served):
    _, base, urls = served
    etag = fetch(base, urls["css"]).header("ETag")
    r = fetch(base, urls["css"], {"Range": "bytes=10-19"})
    assert (r.status, r.body) == (206, CSS[10:20])
    assert r.header("Content-Range") == f"bytes 10-19/{len(CSS)}"
    r = fetch(base, urls["css"], {"If-None-Match": etag})
    assert (r.status, r.body) == (304, b"")
    assert r.header("ETag") == etag and r.header("Cache-Control") == IMMUTABLE
    r = fetch(base, urls["big"], {"Range": "bytes=-5"})
    assert (r.status, r.body) == (206, BIG[-5:])


def test_a_streamed_file(served):
    server, base, urls = served
    r = fetch(base, urls["big"])
    assert r.status == 200 and r.body == BIG
    assert r.header("Content-Length") == str(len(BIG))
    assert r.header("Cache-Control") == IMMUTABLE
    page = fetch(base, "/elsewhere")
    assert page.status == 200 and page.body.startswith(b"page /elsewhere pathsends=")
    # granian offers http.response.pathsend: the whole file goes by it.
    used = int(page.body.rpartition(b"=")[2])
    assert used >= 1 if server == "granian" else used == 0


def test_the_readme_starlette_quick_start_under_uvicorn(tmp_path):
    pytest.importorskip("starlette")
    readme.write("asgi", tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    env.pop("PYTHONDEVMODE", None)
    env.pop("DEBUG", None)
    port = free_port()
    with serving(command("uvicorn", port, "app:app"), port, cwd=tmp_path, env=env,
                 timeout=30) as proc:
        status, _, page = raw_get(proc.url, "/")
        assert status == 200
        urls = re.findall(r'(?:href|src)="([^"]+)"', page.decode())
        assets = Assets(tmp_path / "static")
        assert urls == [assets.url("css/app.css"), assets.url("js/app.js")]
        assert all(re.fullmatch(r"/static/(css|js)/app\.[0-9a-f]{12}\.(css|js)", u)
                   for u in urls)
        for url, rel in zip(urls, ("static/css/app.css", "static/js/app.js")):
            r = fetch(proc.url, url)
            assert (r.status, r.body) == (200, readme.STATIC[rel])
            assert r.header("Cache-Control") == IMMUTABLE
