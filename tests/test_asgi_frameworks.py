"""The README's ASGI quick starts (issue 14) run under a real server: FastAPI
with add_middleware, Django under ASGI, Litestar, Quart, and a Starlette app
mounted under a path (a Mount, and uvicorn, hypercorn and granian with a
root path). Each is written out as the README shows it, started on a free
127.0.0.1 port and asked for its page, the versioned URLs the page names
(exact bytes, headers, a 304), a compressed variant and a path the
framework answers; bustware's responses are linted by httplint. (The
Starlette quick start: tests/test_asgi_servers.py.)"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, make_tree, serving
from examples import readme
from test_asgi_servers import IMMUTABLE, command, fetch
from test_http_gunicorn import raw_get

from bustware import Assets

pytestmark = pytest.mark.server

HERE = Path(__file__).resolve().parent
CSS, JS = readme.STATIC["static/css/app.css"], readme.STATIC["static/js/app.js"]
#: Not named by the pages: large enough to be compressed (a gzip variant).
SITE = b"".join(b".s%d { padding: %dpx }\n" % (i, i % 7) for i in range(300))
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
BUSTWARE_404 = b"404 Not Found\n"


def environ(*paths: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), *sys.path])}
    env.pop("PYTHONDEVMODE", None)  # the servers' own sockets are not under test
    for name in ("DEBUG", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    return env


@contextlib.contextmanager
def example(name: str, cwd: Path, target: str = "app:app", server: str = "uvicorn",
            *args: str) -> Iterator[str]:
    """Write README example ``name`` (and a compressible file) under
    ``cwd``, run ``target`` under ``server``; yield its base URL."""
    if importlib.util.find_spec(server) is None:
        pytest.skip(f"{server} is not installed (pip install '.[test]')")
    readme.write(name, cwd)
    make_tree(cwd / "static", {"css/site.css": SITE})
    port = free_port()
    with serving([*command(server, port, target), *args], port, cwd=cwd, env=environ(cwd),
                 timeout=30) as proc:
        yield proc.url


def page_urls(base: str, path: str = "/") -> list[str]:
    status, headers, page = raw_get(base, path)
    assert status == 200, page[:300]
    assert headers["content-type"].startswith("text/html"), headers
    return re.findall(r"""(?:href|src)=["']([^"']+)["']""", page.decode())


def assert_served(base: str, url: str, body: bytes) -> None:
    """A versioned URL: the file, immutable, with an ETag that revalidates."""
    r = fetch(base, url)
    assert (r.status, r.body) == (200, body), url
    assert r.header("Content-Type") == TYPES[os.path.splitext(url)[1]]
    assert r.header("Content-Length") == str(len(body))
    assert r.header("Cache-Control") == IMMUTABLE
    etag = r.header("ETag")
    assert etag and re.fullmatch(r'"[^"]+"', etag), etag
    r = fetch(base, url, {"If-None-Match": etag})
    assert (r.status, r.body) == (304, b"")
    assert r.header("ETag") == etag and r.header("Cache-Control") == IMMUTABLE


def assert_negotiated(base: str, url: str) -> None:
    """A file with a gzip variant: Vary, and the same bytes either way."""
    r = fetch(base, url, {"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.header("Content-Encoding") == "gzip"
    assert r.header("Vary") == "Accept-Encoding" and r.header("Cache-Control") == IMMUTABLE
    assert gzip.decompress(r.body) == SITE
    r = fetch(base, url)
    assert (r.status, r.body, r.header("Vary")) == (200, SITE, "Accept-Encoding")
    assert r.header("Content-Encoding") is None


def assert_framework_404(base: str, path: str, marker: bytes) -> None:
    """A path outside the prefix goes to the framework, which says 404."""
    status, _, body = raw_get(base, path)
    assert status == 404 and marker in body and body != BUSTWARE_404, body[:300]


def assert_readme_site(base: str, cwd: Path, urls: list[str], prefix: str = "/static/") -> None:
    assets = Assets(cwd / "static", prefix)
    assert urls == [assets.url("css/app.css"), assets.url("js/app.js")]
    assert all(re.fullmatch(re.escape(prefix) + r"(css|js)/app\.[0-9a-f]{12}\.(css|js)", u)
               for u in urls), urls
    for url, body in zip(urls, (CSS, JS)):
        assert_served(base, url, body)
    assert_negotiated(base, assets.url("css/site.css"))
    # Under the prefix but no file: bustware's own 404.
    status, _, body = raw_get(base, prefix + "css/nope.css")
    assert (status, body) == (404, BUSTWARE_404)


def test_fastapi_add_middleware(tmp_path):
    pytest.importorskip("fastapi")
    with example("fastapi", tmp_path) as base:
        assert_readme_site(base, tmp_path, page_urls(base))
        assert_framework_404(base, "/nope", b'{"detail":"Not Found"}')


def test_litestar(tmp_path):
    pytest.importorskip("litestar")
    with example("litestar", tmp_path) as base:
        assert_readme_site(base, tmp_path, page_urls(base))
        assert_framework_404(base, "/nope", b'"status_code":404')


def test_quart(tmp_path):
    pytest.importorskip("quart")
    with example("quart", tmp_path) as base:
        # The stylesheet's URL comes from url_for('static', ...).
        assert_readme_site(base, tmp_path, page_urls(base))
        assert_framework_404(base, "/nope", b"Not Found")
        # The plain URL: bustware answers it too, to be revalidated.
        r = fetch(base, "/static/css/app.css")
        assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, "no-cache")


def test_django_under_uvicorn(tmp_path):
    """tests/examples/djsite with the README's asgi.py, under uvicorn: no
    collectstatic (DEBUG: the finders' directories), {% static %} and
    {% bust %} URLs served, the admin's stylesheet too."""
    project = tmp_path / "djsite"
    shutil.copytree(HERE / "examples" / "djsite", project,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shown = readme.snippets()["django"]["asgi.py"]
    asgi_py = shown.replace("mysite.settings", "djsite.settings")
    assert asgi_py == (project / "djsite" / "asgi.py").read_text(encoding="utf-8")
    (project / "djsite" / "asgi.py").write_text(asgi_py, encoding="utf-8")
    port = free_port()
    argv = command("uvicorn", port, "djsite.asgi:application")
    with serving(argv, port, cwd=project, env=environ(project, HERE.parent),
                 timeout=30) as proc:
        import django.contrib.admin

        admin = Path(django.contrib.admin.__file__).resolve().parent / "static"
        pages = project / "pages" / "static"
        assets = Assets([pages, admin])
        urls = page_urls(proc.url)
        assert urls == [assets.url(p) for p in
                        ("admin/css/login.css", "pages/app.css", "pages/app.js")]
        assert_served(proc.url, urls[0], (admin / "admin/css/login.css").read_bytes())
        assert_served(proc.url, urls[1], (pages / "pages/app.css").read_bytes())
        assert_served(proc.url, urls[2], (pages / "pages/app.js").read_bytes())
        # A plain URL: the file, revalidated on every use.
        r = fetch(proc.url, "/static/pages/app.css")
        assert (r.status, r.body) == (200, b"body { color: #234 }\n")
        assert r.header("Cache-Control") == "no-cache"
        assert_framework_404(proc.url, "/nope", b"Page not found")


# -- mounted under a path ------------------------------------------------------

SHOP = "/shop"


def assert_shop(base: str, cwd: Path, urls: list[str], strip: bool = False) -> None:
    """The mount example's URLs carry /shop; ``strip``: fetch them as a
    proxy that removes /shop forwards them."""
    def wire(url: str) -> str:
        return url.removeprefix(SHOP) if strip else url

    assets = Assets(cwd / "static", SHOP + "/static/")
    assert urls == [assets.url("css/app.css"), assets.url("js/app.js")]
    assert all(u.startswith(SHOP + "/static/") for u in urls), urls
    for url, body in zip(urls, (CSS, JS)):
        assert_served(base, wire(url), body)
    assert_negotiated(base, wire(assets.url("css/site.css")))
    status, _, body = raw_get(base, wire(SHOP + "/static/css/nope.css"))
    assert (status, body) == (404, BUSTWARE_404)
    # Outside the prefix: the shop's own Starlette answers.
    status, _, body = raw_get(base, wire(SHOP + "/nope"))
    assert (status, body) == (404, b"Not Found")


def test_mounted_in_starlette(tmp_path):
    pytest.importorskip("starlette")
    with example("mount", tmp_path) as base:
        assert_shop(base, tmp_path, page_urls(base, SHOP + "/"))
        # Outside the mount: the outer app's 404, not the shop's files.
        assets = Assets(tmp_path / "static")
        assert raw_get(base, assets.url("css/app.css"))[0] == 404


def test_uvicorn_root_path(tmp_path):
    """uvicorn --root-path behind a proxy that strips /shop: uvicorn puts
    /shop back in front of the path, as the ASGI spec has it."""
    pytest.importorskip("starlette")
    with example("mount", tmp_path, "app:shop", "uvicorn", "--root-path", SHOP) as base:
        assert_shop(base, tmp_path, page_urls(base, "/"), strip=True)


@pytest.mark.parametrize("server,option", [("hypercorn", "--root-path"),
                                           ("granian", "--url-path-prefix")])
def test_root_path_as_received(tmp_path, server, option):
    """hypercorn and granian pass the path as received, with or without the
    root: both a proxy that keeps /shop and one that strips it work."""
    pytest.importorskip("starlette")
    with example("mount", tmp_path, "app:shop", server, option, SHOP) as base:
        urls = page_urls(base, SHOP + "/")
        assert urls == page_urls(base, "/")
        assert_shop(base, tmp_path, urls)
        assert_shop(base, tmp_path, urls, strip=True)
