"""Bustware mounted under a path (``SCRIPT_NAME`` set, by werkzeug's
DispatcherMiddleware here; gunicorn's SCRIPT_NAME or a proxy's header do the
same). As under ASGI (tests/test_asgi_mount.py), the prefix may be the URL
path the browser sees, mount included, so that url() names URLs inside the
mount; a prefix relative to the mount (Flask's url_for adds the mount
itself) keeps matching PATH_INFO."""

from __future__ import annotations

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from bustware import Bustware

CSS = b"body { color: #345 }\n"


def app(environ, start_response):
    """The wrapped application: says which SCRIPT_NAME and PATH_INFO it got."""
    body = f"app {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body))),
                              ("Cache-Control", "max-age=60")])
    return [body]


def outer(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"outer"]


@pytest.fixture
def static(tree):
    return tree({"css/app.css": CSS})


def mounted(mw) -> Client:
    return Client(DispatcherMiddleware(outer, {"/shop": mw}))


@pytest.mark.parametrize("prefix", ["/shop/static/", "/static/"])
def test_a_mounted_app_serves_its_files(static, prefix):
    mw = Bustware(app, static, prefix=prefix)
    url = mw.url("css/app.css")
    wire = url if prefix.startswith("/shop/") else "/shop" + url
    r = mounted(mw).get(wire)
    assert (r.status_code, r.get_data()) == (200, CSS)
    assert r.headers["Cache-Control"] == "max-age=31536000, immutable"
    assert r.headers["Content-Type"] == "text/css; charset=utf-8"
    etag = r.headers["ETag"]
    r = mounted(mw).get(wire, headers={"If-None-Match": etag})
    assert (r.status_code, r.get_data()) == (304, b"")
    r = mounted(mw).get(wire.replace(url.rpartition("/")[2], "app.css"))
    assert (r.status_code, r.get_data(), r.headers["Cache-Control"]) == (200, CSS, "no-cache")


@pytest.mark.parametrize("path,seen", [
    ("/shop/", "app /shop /"),
    ("/shop/page", "app /shop /page"),
    ("/shop/staticky/x", "app /shop /staticky/x"),
])
def test_other_paths_reach_the_app_with_their_own_environ(static, path, seen):
    r = mounted(Bustware(app, static, prefix="/shop/static/")).get(path)
    assert (r.status_code, r.get_data()) == (200, seen.encode())
    assert r.headers["Cache-Control"] == "max-age=60"


def test_an_unknown_file_under_the_mounted_prefix_is_a_404(static):
    r = mounted(Bustware(app, static, prefix="/shop/static/")).get("/shop/static/nope.css")
    assert r.status_code == 404
    r = mounted(Bustware(app, static, prefix="/shop/static/", missing="app")).get(
        "/shop/static/nope.css")
    assert (r.status_code, r.get_data()) == (200, b"app /shop /static/nope.css")


def test_rewrite_mode_hands_the_app_the_plain_path_inside_the_mount(static):
    mw = Bustware(app, static, prefix="/shop/static/", mode="rewrite")
    r = mounted(mw).get(mw.url("css/app.css"))
    assert (r.status_code, r.get_data()) == (200, b"app /shop /static/css/app.css")
    assert r.headers["Cache-Control"] == "max-age=31536000, immutable"
