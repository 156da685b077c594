"""Bottle and Falcon: the README examples, run as written. Falcon through
its own test client (falcon.testing); Bottle has none, so through webob."""

from __future__ import annotations

import hashlib
import re

import falcon.testing
import pytest
from examples import readme
from webob import Request

IMMUTABLE = "max-age=31536000, immutable"
CSS = readme.STATIC["static/css/app.css"]


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


CSS_URL = f"/static/css/app.{v(CSS)}.css"


@pytest.fixture
def example(tmp_path, monkeypatch):
    """Write the README example ``name`` into tmp_path and import it there."""
    monkeypatch.chdir(tmp_path)
    modules = []

    def load(name: str):
        readme.write(name, tmp_path)
        module = readme.load(tmp_path / "app.py")
        modules.append(module)
        return module

    yield load
    for module in modules:
        readme.unload(module)


def href(html: str) -> str:
    return re.search(r"""href=["']([^"']+)["']""", html).group(1)


def test_bottle(example):
    application = example("bottle").application

    def get(url: str, method: str = "GET", **headers):
        r = Request.blank(url, method=method, headers=headers).get_response(application)
        return r.status_int, r.headers, r.body

    status, _, body = get("/")
    assert status == 200
    assert href(body.decode()) == CSS_URL
    status, headers, body = get(CSS_URL)
    assert (status, body, headers["Cache-Control"]) == (200, CSS, IMMUTABLE)
    status, headers, body = get(CSS_URL, "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(CSS)))
    status, headers, _ = get(CSS_URL, **{"If-None-Match": headers["ETag"]})
    assert (status, headers["Cache-Control"]) == (304, IMMUTABLE)
    status, headers, body = get(f"/static/css/app.{'0' * 12}.css")
    assert (status, body, headers["Cache-Control"]) == (200, CSS, "no-store")
    assert get("/nowhere")[0] == 404  # Bottle's own 404


def test_falcon(example):
    module = example("falcon")
    client = falcon.testing.TestClient(module.application)
    page = client.simulate_get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert href(page.text) == CSS_URL
    r = client.simulate_get(CSS_URL)
    assert (r.status_code, r.content, r.headers["Cache-Control"]) == (200, CSS, IMMUTABLE)
    r = client.simulate_get(CSS_URL, headers={"If-None-Match": r.headers["ETag"]})
    assert (r.status_code, r.headers["Cache-Control"]) == (304, IMMUTABLE)
    r = client.simulate_get("/static/css/app.css")
    assert (r.status_code, r.content, r.headers["Cache-Control"]) == (200, CSS, "no-cache")
    assert client.simulate_get("/nowhere").status_code == 404  # Falcon's own 404
    # The Falcon app alone knows no static files: bustware answered above.
    bare = falcon.testing.TestClient(module.app)
    assert bare.simulate_get(CSS_URL).status_code == 404


@pytest.mark.parametrize("name", ["bottle", "falcon"])
def test_readme_development_switch(example, monkeypatch, tmp_path, name):
    """The README's DEBUG=1: an edited stylesheet gets a new URL and is
    served fresh, without a restart; without it, development mode is off."""
    monkeypatch.delenv("DEBUG", raising=False)
    assert example(name).application.assets.autorefresh is False
    monkeypatch.setenv("DEBUG", "1")
    application = example(name).application
    assert application.assets.autorefresh is True
    new = b"body { color: #456; margin: 0 }\n"
    (tmp_path / "static" / "css" / "app.css").write_bytes(new)
    # Past refresh_interval, without sleeping through it.
    application.assets._checked_at -= application.assets.refresh_interval + 1
    r = Request.blank("/").get_response(application)
    new_url = f"/static/css/app.{v(new)}.css"
    assert href(r.text) == new_url
    r = Request.blank(new_url).get_response(application)
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, new, IMMUTABLE)
