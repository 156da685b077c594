"""The command line, the demo, and the middleware behind a real gunicorn."""

from __future__ import annotations

import hashlib
import http.client
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, gunicorn, serving

from bustware import Assets
from bustware.cli import main

DEMO_STATIC = Path(__file__).resolve().parent.parent / "bustware" / "demo" / "static"


def get(base: str, path: str, method: str = "GET", headers=None):
    host, port = base.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_url_command(tree, capsys):
    root = tree({"css/app.css": b"x"})
    assert main(["url", str(root), "css/app.css"]) == 0
    assert capsys.readouterr().out == Assets(root).url("css/app.css") + "\n"
    assert main(["url", str(root), "css/app.css", "--style", "segment", "--prefix", "/a/"]) == 0
    assert capsys.readouterr().out.startswith("/a/" + hashlib.sha256(b"x").hexdigest()[:12])


def test_url_command_errors_are_messages_not_tracebacks(tmp_path):
    for args, message in [
        (["url", str(tmp_path / "nope"), "a.css"], "does not exist"),
        (["url", str(tmp_path), "a.css"], "no file 'a.css'"),
        (["url", str(tmp_path), "a.css", "--prefix", "static"], "must start and end with '/'"),
    ]:
        proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning",
                               "-m", "bustware", *args],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("bustware: ")


def running(args: list[str], port: int):
    """``python -m bustware ARGS --port PORT``, until the test is done."""
    return serving([sys.executable, "-m", "bustware", *args, "--port", str(port)], port)


@pytest.mark.server
def test_demo_serves_a_page_whose_assets_are_immutable():
    port = free_port()
    with running(["demo"], port) as server:
        base = server.url
        status, headers, page = get(base, "/")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.decode())
        assert len(urls) == 3
        for url in urls:
            status, headers, body = get(base, url)
            assert status == 200, url
            assert headers["cache-control"] == "max-age=31536000, immutable"
            logical = re.sub(r"\.[0-9a-f]{12}\.", ".", url[len("/static/"):])
            assert body == (DEMO_STATIC / logical).read_bytes()
    assert f"http://127.0.0.1:{port}/" in server.output


@pytest.mark.server
def test_serve_command_lists_and_serves_a_directory(tree):
    root = tree({"css/app.css": b"body{}", "index.txt": b"hello"})
    assets = Assets(root)
    with running(["serve", str(root)], free_port()) as server:
        base = server.url
        status, _, page = get(base, "/")
        assert status == 200
        assert assets.url("css/app.css").encode() in page
        status, headers, body = get(base, assets.url("index.txt"))
        assert (status, body) == (200, b"hello")
        assert headers["cache-control"] == "max-age=31536000, immutable"


@pytest.mark.server
def test_middleware_behind_gunicorn(tmp_path):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    css = b"body { margin: 0 }\n"
    (static / "css" / "app.css").write_bytes(css)
    big = bytes(range(256)) * 4096  # 1 MiB, streamed through wsgi.file_wrapper
    (static / "big.bin").write_bytes(big)
    (tmp_path / "wsgiapp.py").write_text(
        "from bustware import Bustware\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '2')])\n"
        "    return [b'ok']\n"
        f"application = Bustware(app, {str(static)!r})\n"
    )
    assets = Assets(static)
    with gunicorn("wsgiapp:application", tmp_path, "--worker-class", "gthread") as base:
        status, headers, body = get(base, assets.url("css/app.css"))
        assert (status, body) == (200, css)
        assert headers["cache-control"] == "max-age=31536000, immutable"
        assert headers["etag"] == '"' + hashlib.sha256(css).hexdigest()[:24] + '"'
        status, headers, body = get(base, assets.url("big.bin"))
        assert (status, body) == (200, big) and headers["content-length"] == str(len(big))
        status, headers, body = get(base, "/static/css/app.0123456789ab.css")
        assert (status, body, headers["cache-control"]) == (200, css, "no-store")
        status, headers, body = get(base, "/static/css/app.css")
        assert (status, headers["cache-control"]) == (200, "no-cache")
        assert get(base, "/hello")[2] == b"ok"
        status, headers, body = get(base, assets.url("css/app.css"), "HEAD")
        assert (status, body, headers["content-length"]) == (200, b"", str(len(css)))
