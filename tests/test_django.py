"""bustware.django against a minimal Django project (tests/examples/
django_project.py): pages through django.test.Client, the wrapped WSGI
application through a WSGI client (django.test.Client calls Django's handler
directly, below any WSGI wrapper)."""

from __future__ import annotations

import hashlib
import re
import sys

import pytest
from conftest import make_tree, via_werkzeug
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.test import Client, override_settings
from examples.django_project import configure

import bustware.django
from bustware import AssetNotFound

configure()

IMMUTABLE = "max-age=31536000, immutable"
CSS = b"body { color: #123 }\n"
JS = b"console.log('django');\n"


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def page_urls(client: Client | None = None) -> list[str]:
    response = (client or Client()).get("/page/")
    assert response.status_code == 200
    return re.findall(r'(?:href|src)="([^"]+)"', response.content.decode())


@pytest.fixture
def static_root(tmp_path):
    return make_tree(tmp_path / "collected", {"css/app.css": CSS, "js/app.js": JS})


@pytest.fixture
def production(static_root):
    """DEBUG off, files in STATIC_ROOT (as after collectstatic)."""
    with override_settings(DEBUG=False, STATIC_ROOT=str(static_root)):
        yield static_root


def test_static_and_bust_tags_return_versioned_urls(production):
    assert page_urls() == [f"/static/css/app.{v(CSS)}.css", f"/static/js/app.{v(JS)}.js"]


def test_wrapped_wsgi_application_serves_them(production):
    application = bustware.django.wrap(get_wsgi_application())
    for url, body in zip(page_urls(), (CSS, JS)):
        r = via_werkzeug(application, url)
        assert r.status == 200, url
        assert r.body == body
        assert r.header("Cache-Control") == IMMUTABLE
    r = via_werkzeug(application, "/hello")
    assert (r.status, r.body) == (200, b"django:hello")
    r = via_werkzeug(application, f"/static/css/app.{'0' * 12}.css")
    assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, "no-store")


def test_rewrite_mode_from_settings(production):
    with override_settings(BUSTWARE={"mode": "rewrite"}, TEST_STATIC_MAX_AGE=60):
        application = bustware.django.wrap(get_wsgi_application())
        url = page_urls()[0]
        r = via_werkzeug(application, url)
    assert r.status == 200 and r.body == CSS
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.header("Expires") is None
    assert r.header("X-Content-Type-Options") is None  # Django's view sent it, not bustware


def test_wrap_keyword_overrides_settings(production):
    with override_settings(BUSTWARE={"outdated": "serve"}):
        application = bustware.django.wrap(get_wsgi_application(), outdated="404")
        r = via_werkzeug(application, f"/static/css/app.{'0' * 12}.css")
    assert r.status == 404


def test_after_collectstatic(tmp_path):
    source = make_tree(tmp_path / "src", {"css/app.css": CSS, "js/app.js": JS})
    root = tmp_path / "public"
    with override_settings(DEBUG=False, STATICFILES_DIRS=[str(source)], STATIC_ROOT=str(root)):
        call_command("collectstatic", interactive=False, verbosity=0)
        assert (root / "css" / "app.css").read_bytes() == CSS  # plain names on disk
        application = bustware.django.wrap(get_wsgi_application())
        url = page_urls()[0]
        assert url == f"/static/css/app.{v(CSS)}.css"
        r = via_werkzeug(application, url)
    assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, IMMUTABLE)


def test_development_uses_the_finders_first_match_wins(tmp_path, monkeypatch):
    dirs = make_tree(tmp_path / "dirs", {"css/app.css": CSS})
    make_tree(tmp_path / "apps" / "bwtestapp", {
        "__init__.py": b"",
        "static/css/app.css": b"shadowed by STATICFILES_DIRS",
        "static/js/app.js": JS,
    })
    monkeypatch.syspath_prepend(str(tmp_path / "apps"))
    try:
        with override_settings(DEBUG=True, STATIC_ROOT=None, STATICFILES_DIRS=[str(dirs)],
                               INSTALLED_APPS=["django.contrib.staticfiles", "bustware",
                                               "bwtestapp"]):
            assert page_urls() == [f"/static/css/app.{v(CSS)}.css",
                                   f"/static/js/app.{v(JS)}.js"]
            assets = bustware.django.get_assets()
            assert assets.autorefresh is True  # follows DEBUG
            application = bustware.django.wrap(get_wsgi_application())
            for url, body in zip(page_urls(), (CSS, JS)):
                r = via_werkzeug(application, url)
                assert (r.status, r.body) == (200, body)
    finally:
        sys.modules.pop("bwtestapp", None)


def test_prefix_comes_from_static_url(production):
    with override_settings(STATIC_URL="/assets/"):
        application = bustware.django.wrap(get_wsgi_application())
        url = page_urls()[0]
        assert url == f"/assets/css/app.{v(CSS)}.css"
        r = via_werkzeug(application, url)
    assert (r.status, r.body) == (200, CSS)


def test_static_url_on_a_cdn(production):
    with override_settings(STATIC_URL="https://cdn.example.com/static/"):
        application = bustware.django.wrap(get_wsgi_application())
        url = page_urls()[0]
        assert url == f"https://cdn.example.com/static/css/app.{v(CSS)}.css"
        # The CDN pulls the path from this app.
        r = via_werkzeug(application, url[len("https://cdn.example.com"):])
    assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, IMMUTABLE)


def test_index_options_from_settings(production):
    with override_settings(BUSTWARE={"style": "segment", "release": "r7"}):
        assert page_urls() == ["/static/r7/css/app.css", "/static/r7/js/app.js"]


def test_missing_file_raises_in_the_tag(production):
    with override_settings(BUSTWARE={"strict": True}), \
            pytest.raises(AssetNotFound, match="nope"):
        bustware.django.url("nope.css")
    with override_settings(BUSTWARE={"strict": False}):
        assert bustware.django.url("nope.css") == "/static/nope.css"


def test_missing_file_error_names_the_django_setting(production):
    with override_settings(BUSTWARE={}), pytest.raises(AssetNotFound) as err:
        bustware.django.url("nope.css")
    assert 'set BUSTWARE = {"strict": False} in settings.py' in str(err.value)


def test_static_root_not_collected_is_a_clear_error(tmp_path):
    with override_settings(DEBUG=False, STATIC_ROOT=str(tmp_path / "never")), \
            pytest.raises(ImproperlyConfigured, match="collectstatic"):
        bustware.django.get_assets()
    with override_settings(DEBUG=False, STATIC_ROOT=None), \
            pytest.raises(ImproperlyConfigured, match="STATIC_ROOT is not set"):
        bustware.django.get_assets()


def test_unknown_setting_key_is_a_clear_error(production):
    with override_settings(BUSTWARE={"autorefersh": True}), \
            pytest.raises(ImproperlyConfigured, match="autorefersh"):
        bustware.django.get_assets()


def test_wrap_unknown_option_is_refused(production):
    with pytest.raises(TypeError, match="stlye"):
        bustware.django.wrap(get_wsgi_application(), stlye="segment")


def test_prefixed_staticfiles_dirs_entry_is_refused(tmp_path):
    src = make_tree(tmp_path / "src", {"a.css": b"a"})
    with override_settings(DEBUG=True, STATIC_ROOT=None,
                           STATICFILES_DIRS=[("downloads", str(src))]), \
            pytest.raises(ImproperlyConfigured, match="downloads"):
        bustware.django.get_assets()


def test_root_setting_overrides_the_directories(tmp_path):
    other = make_tree(tmp_path / "other", {"css/app.css": b"other"})
    with override_settings(DEBUG=False, STATIC_ROOT=None, BUSTWARE={"root": str(other)}):
        assert bustware.django.url("css/app.css") == f"/static/css/app.{v(b'other')}.css"
