"""Rewrite mode against the real static views of Flask and Django: the
framework sends the bytes, bustware only decides the cache policy."""

from __future__ import annotations

import hashlib

import flask
import pytest
from conftest import via_werkzeug
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from examples.django_project import configure

from bustware import Bustware

IMMUTABLE = "max-age=31536000, immutable"
CSS = b"body { color: #123 }\n"
JS = b"console.log('rewrite');\n"


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture
def static_root(tree):
    return tree({"css/app.css": CSS, "js/app.js": JS})


def flask_app(static_root, max_age=60):
    app = flask.Flask("rewrite_test", static_folder=str(static_root))
    # Flask's static view then sends Cache-Control max-age=60 and Expires:
    # the headers bustware must replace on a current versioned URL.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = max_age

    @app.route("/hello")
    def hello():
        return "flask:hello"

    return app


def django_app(static_root, max_age=60):
    configure()
    overrides = override_settings(STATIC_ROOT=str(static_root), TEST_STATIC_MAX_AGE=max_age)
    overrides.enable()
    return get_wsgi_application(), overrides


@pytest.fixture(params=["flask", "django"])
def framework(request, static_root):
    """(the framework's WSGI app, with its own static view at /static/)."""
    if request.param == "flask":
        yield flask_app(static_root)
        return
    app, overrides = django_app(static_root)
    try:
        yield app
    finally:
        overrides.disable()


def test_versioned_url_is_sent_by_the_framework_with_immutable(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    url = mw.url("css/app.css")
    assert url == f"/static/css/app.{version_of(CSS)}.css"
    r = via_werkzeug(mw, url)
    assert r.status == 200
    assert r.body == CSS
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.header("Expires") is None
    # The framework's own validators came through: it sent the response.
    assert r.header("Last-Modified") is not None


def test_the_framework_alone_sends_its_own_cache_headers(framework, static_root):
    """The control for the test above: without bustware the same view sends
    max-age=60 and Expires, so their absence above is bustware's doing."""
    r = via_werkzeug(framework, "/static/css/app.css")
    assert r.status == 200 and r.body == CSS
    assert "max-age=60" in r.header("Cache-Control")
    assert r.header("Expires") is not None


def test_plain_url_keeps_the_framework_policy(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    r = via_werkzeug(mw, "/static/js/app.js")
    assert r.status == 200 and r.body == JS
    assert "max-age=60" in r.header("Cache-Control")
    assert "immutable" not in r.header("Cache-Control")


def test_conditional_request_gets_304_with_immutable(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    url = mw.url("css/app.css")
    first = via_werkzeug(mw, url)
    validator = (("If-None-Match", first.header("ETag")) if first.header("ETag")
                 else ("If-Modified-Since", first.header("Last-Modified")))
    r = via_werkzeug(mw, url, headers=dict([validator]))
    assert r.status == 304
    assert r.body == b""
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.header("Expires") is None


def test_head_of_versioned_url(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    r = via_werkzeug(mw, mw.url("js/app.js"), method="HEAD")
    assert r.status == 200
    # (Django leaves dropping a HEAD body to the server; the headers matter.)
    assert r.header("Content-Length") == str(len(JS))
    assert r.header("Cache-Control") == IMMUTABLE


def test_outdated_version_serve_policy_is_no_store(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    r = via_werkzeug(mw, "/static/css/app.0123456789ab.css")
    assert r.status == 200
    assert r.body == CSS  # what the framework has now
    assert r.header("Cache-Control") == "no-store"
    assert r.header("Expires") is None


def test_outdated_version_404_policy(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite", outdated="404")
    r = via_werkzeug(mw, "/static/css/app.0123456789ab.css")
    assert r.status == 404
    assert r.header("Cache-Control") == "no-store"


def test_outdated_version_redirect_policy(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite", outdated="redirect")
    r = via_werkzeug(mw, "/static/css/app.0123456789ab.css")
    assert r.status == 307
    assert r.header("Location") == mw.url("css/app.css")
    assert r.header("Cache-Control") == "no-store"


def test_file_gone_from_disk_is_the_framework_404_without_immutable(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    url = mw.url("js/app.js")
    (static_root / "js" / "app.js").unlink()
    r = via_werkzeug(mw, url)
    assert r.status == 404
    assert "immutable" not in (r.header("Cache-Control") or "")


def test_other_routes_are_untouched(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    r = via_werkzeug(mw, "/hello")
    assert r.status == 200
    assert r.body in (b"flask:hello", b"django:hello")


def test_post_to_versioned_url_goes_to_the_framework(framework, static_root):
    mw = Bustware(framework, static_root, mode="rewrite")
    r = via_werkzeug(mw, mw.url("css/app.css"), method="POST")
    # Both static views refuse or ignore POST their own way; bustware never
    # labels that answer immutable.
    assert "immutable" not in (r.header("Cache-Control") or "")


@pytest.mark.parametrize("style", ["segment", "query"])
def test_other_styles(style, static_root):
    app = flask_app(static_root)
    mw = Bustware(app, static_root, mode="rewrite", style=style)
    url = mw.url("css/app.css")
    path, _, query = url.partition("?")
    r = via_werkzeug(mw, path, query=query)
    assert r.status == 200 and r.body == CSS
    assert r.header("Cache-Control") == IMMUTABLE


def test_a_file_whose_references_bustware_rewrote_is_sent_by_bustware(tree):
    """A stylesheet's url() references are rewritten to versioned URLs, so
    its version names the rewritten bytes, which the framework's static view
    does not have: bustware sends those itself, in rewrite mode too."""
    root = tree({"css/app.css": b"body{background:url(../img/a.svg)}\n",
                 "img/a.svg": b"<svg/>"})
    app = flask_app(root)
    mw = Bustware(app, root, mode="rewrite")
    url = mw.url("css/app.css")
    r = via_werkzeug(mw, url)
    assert r.status == 200
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.body == f"body{{background:url({mw.url('img/a.svg')})}}\n".encode()
    assert url == f"/static/css/app.{version_of(r.body)}.css"
    # A file without references is still sent by Flask's view.
    r = via_werkzeug(mw, mw.url("img/a.svg"))
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"<svg/>", IMMUTABLE)
    assert r.header("X-Content-Type-Options") is None
