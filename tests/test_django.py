"""bustware.django against a minimal Django project (tests/examples/
django_project.py): pages through django.test.Client, the wrapped WSGI
application through a WSGI client (django.test.Client calls Django's handler
directly, below any WSGI wrapper)."""

from __future__ import annotations

import hashlib
import re
import sys

import pytest
from conftest import make_tree, via_asgi, via_werkzeug
from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.core.checks import WARNING, CheckMessage, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.template import engines
from django.test import Client, override_settings
from django.test.utils import setup_test_environment, teardown_test_environment
from examples.django_project import configure

import bustware.django
from bustware import AssetNotFound
from bustware.django import BustwareStaticFilesHandler

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


def test_wrapped_asgi_application_serves_them(production):
    from django.core.asgi import get_asgi_application

    from bustware import BustwareASGI

    application = bustware.django.wrap(get_asgi_application())
    assert isinstance(application, BustwareASGI)
    for url, body in zip(page_urls(), (CSS, JS)):
        r = via_asgi(application, url)
        assert (r.status, r.body, r.header("Cache-Control")) == (200, body, IMMUTABLE), url
    r = via_asgi(application, "/hello")
    assert (r.status, r.body) == (200, b"django:hello")
    r = via_asgi(application, f"/static/css/app.{'0' * 12}.css")
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


# -- what a Django user falls into --------------------------------------------


def bustware_checks() -> list[CheckMessage]:
    return [m for m in run_checks() if (m.id or "").startswith("bustware.")]


def staticfiles_backend(backend: str) -> dict:
    return {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": backend}}


class CompressedManifestStorage(ManifestStaticFilesStorage):
    """Stands for WhiteNoise's CompressedManifestStaticFilesStorage."""


MANIFEST_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
BUSTWARE_FIRST = ["bustware", "django.contrib.staticfiles"]


@pytest.mark.parametrize("backend", [MANIFEST_STORAGE, f"{__name__}.CompressedManifestStorage"])
def test_a_hashing_staticfiles_storage_is_a_system_check_warning(backend):
    with override_settings(STORAGES=staticfiles_backend(backend), INSTALLED_APPS=BUSTWARE_FIRST):
        found = bustware_checks()
    assert [(m.id, m.level) for m in found] == [("bustware.W001", WARNING)]
    assert f"The staticfiles storage {backend!r} hashes file names itself" in found[0].msg
    assert found[0].hint.startswith(
        "Set STORAGES['staticfiles'] = {'BACKEND': 'bustware.django.BustwareStorage'}")


def test_no_warning_with_bustware_storage_or_django_s_manifest_given_to_bustware():
    with override_settings(INSTALLED_APPS=BUSTWARE_FIRST):
        assert bustware_checks() == []
        with override_settings(STORAGES=staticfiles_backend(MANIFEST_STORAGE),
                               BUSTWARE={"bundler_manifest": "/srv/static/staticfiles.json"}):
            assert bustware_checks() == []


def test_django_s_manifest_given_to_bustware_serves_its_hashed_names(tmp_path):
    """The other way the W001 hint offers: Django's hashed names, immutable."""
    source = make_tree(tmp_path / "src", {"css/app.css": CSS, "js/app.js": JS})
    root = tmp_path / "public"
    with override_settings(DEBUG=False, STATICFILES_DIRS=[str(source)], STATIC_ROOT=str(root),
                           STORAGES=staticfiles_backend(MANIFEST_STORAGE)):
        call_command("collectstatic", interactive=False, verbosity=0)
        with override_settings(
                BUSTWARE={"bundler_manifest": str(root / "staticfiles.json")}):
            application = bustware.django.wrap(get_wsgi_application())
            url = page_urls()[0]
            assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", url)
            assert (root / url.removeprefix("/static/")).read_bytes() == CSS  # Django's name
            r = via_werkzeug(application, url)
    assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, IMMUTABLE)


def test_staticfiles_runserver_first_is_a_system_check_warning():
    with override_settings(INSTALLED_APPS=["django.contrib.staticfiles", "bustware"]):
        found = bustware_checks()
    assert [(m.id, m.level) for m in found] == [("bustware.W002", WARNING)]
    assert "'django.contrib.staticfiles' is listed before 'bustware'" in found[0].msg
    with override_settings(INSTALLED_APPS=BUSTWARE_FIRST):
        assert bustware_checks() == []
    with override_settings(INSTALLED_APPS=["bustware"]):  # no staticfiles, no static serving
        assert bustware_checks() == []


def test_missing_file_error_says_where_the_switch_goes(production):
    switch = "set BUSTWARE = {'strict': False} in settings.py"
    with pytest.raises(AssetNotFound) as caught:
        page = "{% load static %}<link href=\"{% static 'css/nope.css' %}\">"
        engines["django"].from_string(page).render({})
    message = str(caught.value)
    assert message == (
        f"bustware: no static file 'css/nope.css' in STATIC_ROOT {str(production)!r} (run "
        "'manage.py collectstatic' if the file is new). Paths are relative to the static "
        f"directories, with '/' separators (e.g. 'css/app.css'). To get the plain URL "
        f"instead of this error, {switch}."
    )
    with override_settings(DEBUG=True, STATIC_ROOT=None, STATICFILES_DIRS=[str(production)]), \
            pytest.raises(AssetNotFound, match=r"the staticfiles finders' directories") as caught:
        bustware.django.url("css/nope.css")
    assert str(caught.value).endswith(switch + ".")


def test_under_django_s_test_runner_an_uncollected_static_root_uses_the_finders(tmp_path):
    """manage.py test and pytest-django call setup_test_environment(), which
    turns DEBUG off; a fresh checkout has not run collectstatic."""
    dirs = make_tree(tmp_path / "dirs", {"css/app.css": CSS, "js/app.js": JS})
    with override_settings(DEBUG=True, STATICFILES_DIRS=[str(dirs)],
                           STATIC_ROOT=str(tmp_path / "never-collected")):
        setup_test_environment(debug=False)  # as DiscoverRunner does
        try:
            assert settings.DEBUG is False
            assert page_urls() == [f"/static/css/app.{v(CSS)}.css", f"/static/js/app.{v(JS)}.js"]
            assert bustware.django.get_assets().roots == [str(dirs)]
        finally:
            teardown_test_environment()
    # Not under the test runner: production's clear error stays.
    with override_settings(DEBUG=False, STATIC_ROOT=str(tmp_path / "never-collected")), \
            pytest.raises(ImproperlyConfigured, match="collectstatic"):
        bustware.django.get_assets()


def test_development_handler_follows_the_settings_and_leaves_the_rest_to_django(tmp_path):
    """runserver's and StaticLiveServerTestCase's handler."""
    one = make_tree(tmp_path / "one", {"css/app.css": CSS})
    two = make_tree(tmp_path / "two", {"js/app.js": JS})
    with override_settings(DEBUG=True, STATIC_ROOT=None, STATICFILES_DIRS=[str(one)]):
        handler = BustwareStaticFilesHandler(get_wsgi_application())
        r = via_werkzeug(handler, f"/static/css/app.{v(CSS)}.css")
        assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, IMMUTABLE)
        r = via_werkzeug(handler, "/static/css/app.css")
        assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, "no-cache")
        assert via_werkzeug(handler, "/static/css/nope.css").status == 404  # Django's answer
        assert via_werkzeug(handler, "/hello").body == b"django:hello"
        with override_settings(STATICFILES_DIRS=[str(two)]):
            r = via_werkzeug(handler, f"/static/js/app.{v(JS)}.js")
            assert (r.status, r.body, r.header("Cache-Control")) == (200, JS, IMMUTABLE)


def test_importmap_and_modulepreload_tags(tmp_path):
    root = make_tree(tmp_path / "collected", {
        "js/app.js": 'import "./lib.js"; import "lit";\n', "js/lib.js": "export const x = 1;\n",
        "vendor/lit/index.js": "export const y = 2;\n"})
    pins = {"lit": "vendor/lit/index.js"}
    with override_settings(DEBUG=False, STATIC_ROOT=str(root)):
        out = engines["django"].from_string(
            "{% load bustware %}{% importmap_tag pins %}{% modulepreload 'js/app.js' pins %}"
        ).render({"pins": pins})
        assets = bustware.django.get_assets()
        assert out == assets.importmap_tag(pins) + assets.modulepreload("js/app.js", pins)
    assert out.count('rel="modulepreload"') == 3 and '<script type="importmap">' in out
