"""BustwareASGI mounted under a path: ``scope["root_path"]`` set. The prefix
is the URL path the browser sees (mount included); the path a request is
matched on is ``scope["path"]`` with the root in it, as the ASGI spec has it
(uvicorn --root-path, Starlette's Mount), or with the root put in front when
the server sent the path without it (hypercorn, granian behind a proxy that
strips the mount). The same rules under real servers:
tests/test_asgi_frameworks.py."""

from __future__ import annotations

import logging

import pytest
from conftest import asgi_scope, run_asgi

from bustware import Assets, BustwareASGI

CSS = b"body { color: #345 }\n"


async def app(scope, receive, send):
    """The wrapped application: says which path and root it was given."""
    body = f"app {scope['root_path']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def static(tree):
    return tree({"css/app.css": CSS})


def call(middleware, path: str, root: str, **kw) -> tuple[int, dict[bytes, bytes], bytes, dict]:
    scope = asgi_scope(path, **kw)
    scope["root_path"] = root
    before = dict(scope)
    sent = run_asgi(middleware, scope)
    assert scope == before, "the scope was changed"
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], dict(sent[0]["headers"]), body, scope


@pytest.mark.parametrize("root,wire", [
    ("/shop", "/shop/static/"),   # the root in the path (ASGI spec, uvicorn, Starlette Mount)
    ("/shop", "/static/"),        # left out (hypercorn, granian: a proxy stripped it)
    ("/shop/", "/shop/static/"),  # a root written with its slash
    ("/shop/", "/static/"),
    ("/s", "/static/"),           # the path starts with the root's letters, not its segment
])
def test_a_mounted_app_serves_its_prefix(static, root, wire):
    prefix = root.rstrip("/") + "/static/"
    mw = BustwareASGI(app, static, prefix=prefix)
    url = mw.url("css/app.css")
    assert url.startswith(prefix + "css/app.")
    status, headers, body, _ = call(mw, wire + url.removeprefix(prefix), root)
    assert (status, body) == (200, CSS)
    assert headers[b"cache-control"] == b"max-age=31536000, immutable"
    status, headers, body, _ = call(mw, wire + "css/app.css", root)
    assert (status, body, headers[b"cache-control"]) == (200, CSS, b"no-cache")


@pytest.mark.parametrize("root,path", [
    ("/shop", "/shop/"),
    ("/shop", "/"),                      # a stripped root: still the app's
    ("/shop", "/shop/staticky/x"),
    ("/shop", "/shopping/static/css/app.css"),  # not under /shop: read as /shop/shopping/...
    ("/shop", "/shop"),
])
def test_other_paths_go_to_the_app_untouched(static, root, path):
    mw = BustwareASGI(app, static, prefix="/shop/static/")
    status, _, body, _ = call(mw, path, root)
    assert (status, body) == (200, f"app {root} {path}".encode())


def test_no_root_path_is_the_path_itself(static):
    mw = BustwareASGI(app, static)
    status, _, body, _ = call(mw, mw.url("css/app.css"), "")
    assert (status, body) == (200, CSS)
    # The same prefix behind a mount is out of reach there.
    status, _, body, _ = call(mw, "/shop" + mw.url("css/app.css"), "/shop")
    assert (status, body) == (200, b"app /shop /shop" + mw.url("css/app.css").encode())


def test_rewrite_mode_hands_the_app_the_plain_path_with_its_root(static):
    mw = BustwareASGI(app, static, prefix="/shop/static/", mode="rewrite")
    for wire in ("/shop/static/", "/static/"):
        url = mw.url("css/app.css").removeprefix("/shop/static/")
        status, headers, body, _ = call(mw, wire + url, "/shop")
        assert (status, body) == (200, b"app /shop /shop/static/css/app.css")
        assert headers[b"cache-control"] == b"max-age=31536000, immutable"


def test_a_shared_index_names_the_mount(static):
    assets = Assets(static, "/shop/static/")
    mw = BustwareASGI(app, assets)
    assert mw.url("css/app.css") == assets.url("css/app.css")
    status, _, body, _ = call(mw, assets.url("css/app.css"), "/shop")
    assert (status, body) == (200, CSS)


def test_a_prefix_outside_the_mount_is_warned_about_once(static, caplog):
    mw = BustwareASGI(app, static)  # prefix /static/, mounted at /shop
    with caplog.at_level(logging.WARNING, logger="bustware"):
        for _ in range(3):
            call(mw, "/shop/", "/shop")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "bustware: this application is mounted at root_path '/shop', but prefix='/static/' "
        "is outside it: its files are not served under the mount, and url() gives URLs "
        "outside it; pass prefix='/shop/static/' (the prefix is the URL path the browser sees)"
    ]
    caplog.clear()
    good = BustwareASGI(app, static, prefix="/shop/static/")
    with caplog.at_level(logging.WARNING, logger="bustware"):
        call(good, "/shop/", "/shop")
        call(mw, "/shop/other", "/shop")
    assert caplog.records == []
