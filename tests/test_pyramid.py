"""bustware.pyramid: request.static_url returns versioned URLs through the
cache buster, and the tween answers them. Requests go through webob (the
request library Pyramid is built on) against the real Pyramid app."""

from __future__ import annotations

import hashlib
import sys

import pytest
from conftest import make_tree
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.response import Response
from pyramid.tweens import INGRESS
from webob import Request

from bustware import AssetNotFound
from bustware.pyramid import BustwareCacheBuster

IMMUTABLE = "max-age=31536000, immutable"
CSS = b"body { color: #123 }\n"
JS = b"console.log('pyramid');\n"


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture
def root(tmp_path):
    return make_tree(tmp_path / "static", {"css/app.css": CSS, "js/app.js": JS})


def add_page(config, spec_prefix: str) -> None:
    def page(request):
        urls = [request.static_url(spec_prefix + p) for p in ("css/app.css", "js/app.js")]
        return Response("\n".join(urls), content_type="text/plain")

    def hello(request):
        return Response("pyramid:hello", content_type="text/plain")

    config.add_route("page", "/page")
    config.add_view(page, route_name="page")
    config.add_route("hello", "/hello")
    config.add_view(hello, route_name="hello")


def make_app(root, settings=None, **options):
    with Configurator(settings=settings or {}) as config:
        config.include("bustware.pyramid")
        config.add_bustware_static_view("static", str(root), cache_max_age=3600, **options)
        add_page(config, f"{root}/")
        return config.make_wsgi_app()


def get(app, url: str, **headers):
    response = Request.blank(url, headers=headers).get_response(app)
    response.body  # noqa: B018 (reading the body closes the app_iter, and its file)
    return response


def page_urls(app) -> list[str]:
    r = get(app, "/page")
    assert r.status_int == 200
    # static_url makes absolute URLs; the path is what matters here.
    return [u.removeprefix("http://localhost") for u in r.text.split("\n")]


def test_static_url_is_versioned_and_served(root):
    app = make_app(root)
    urls = page_urls(app)
    assert urls == [f"/static/css/app.{v(CSS)}.css", f"/static/js/app.{v(JS)}.js"]
    for url, body in zip(urls, (CSS, JS)):
        r = get(app, url)
        assert r.status_int == 200, url
        assert r.body == body
        assert r.headers.getall("Cache-Control") == [IMMUTABLE]
        assert "Expires" not in r.headers
    r = get(app, "/hello")
    assert (r.status_int, r.body) == (200, b"pyramid:hello")


def test_outdated_and_plain(root):
    app = make_app(root)
    r = get(app, f"/static/css/app.{'0' * 12}.css")
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, CSS, "no-store")
    r = get(app, "/static/css/app.css")
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, CSS, "no-cache")


def test_rewrite_mode_pyramid_static_view_sends_the_bytes(root):
    app = make_app(root, {"bustware.mode": "rewrite"})
    url = page_urls(app)[0]
    r = get(app, url)
    assert r.status_int == 200 and r.body == CSS
    assert r.headers.getall("Cache-Control") == [IMMUTABLE]
    assert "Expires" not in r.headers  # Pyramid's cache_max_age=3600 sent one
    assert "X-Content-Type-Options" not in r.headers  # bustware did not send it
    # Conditional request answered by Pyramid's view, still immutable.
    r2 = get(app, url, **{"If-Modified-Since": r.headers["Last-Modified"]})
    assert r2.status_int == 304
    assert r2.headers["Cache-Control"] == IMMUTABLE
    # Without bustware, Pyramid's view sends its own max-age and Expires.
    plain = get(app, "/static/css/app.css")
    assert "max-age=3600" in plain.headers["Cache-Control"] and "Expires" in plain.headers


def test_settings_are_coerced_from_ini_strings(root):
    app = make_app(root, {"bustware.style": "query", "bustware.autorefresh": "true",
                          "bustware.refresh_interval": "0.5", "bustware.strict": "false"})
    urls = page_urls(app)
    assert urls[0] == f"/static/css/app.css?v={v(CSS)}"
    r = get(app, urls[0])
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, CSS, IMMUTABLE)


def test_unknown_setting_is_refused(root):
    with pytest.raises(ConfigurationError, match=r"bustware\.autorefersh"):
        make_app(root, {"bustware.autorefersh": "true"})


def test_keyword_arguments_win_over_settings(root):
    app = make_app(root, {"bustware.style": "query"}, style="segment")
    assert page_urls(app)[0] == f"/static/{v(CSS)}/css/app.css"


def test_the_long_form_add_cache_buster(root):
    with Configurator() as config:
        config.add_static_view("static", str(root))
        config.add_cache_buster(str(root), BustwareCacheBuster(str(root), "/static/"))
        config.add_tween("bustware.pyramid.tween_factory", under=INGRESS)
        add_page(config, f"{root}/")
        app = config.make_wsgi_app()
    url = page_urls(app)[1]
    assert url == f"/static/js/app.{v(JS)}.js"
    r = get(app, url)
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, JS, IMMUTABLE)


def test_prefix_that_does_not_match_the_static_view_is_refused(root):
    with Configurator() as config:
        config.add_static_view("assets", str(root))
        config.add_cache_buster(str(root), BustwareCacheBuster(str(root), "/static/"))
        config.add_tween("bustware.pyramid.tween_factory")
        with pytest.raises(ConfigurationError, match="prefix='/assets/'"):
            config.make_wsgi_app()


def test_asset_specification_and_route_prefix(tmp_path):
    make_tree(tmp_path / "pkgs" / "bwpyrapp", {"__init__.py": b"", "static/css/app.css": CSS,
                                                "static/js/app.js": JS})
    sys.path.insert(0, str(tmp_path / "pkgs"))
    try:
        with Configurator() as config:
            config.include("bustware.pyramid")
            with config.route_prefix_context("shop"):
                config.add_bustware_static_view("static", "bwpyrapp:static")
            add_page(config, "bwpyrapp:static/")
            app = config.make_wsgi_app()
        urls = page_urls(app)
        assert urls[0] == f"/shop/static/css/app.{v(CSS)}.css"
        r = get(app, urls[0])
        assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, CSS, IMMUTABLE)
        # The long form takes the asset specification too.
        buster = BustwareCacheBuster("bwpyrapp:static")
        assert buster.assets.roots == [str(tmp_path / "pkgs" / "bwpyrapp" / "static")]
        assert buster(None, "js/app.js", {}) == (f"js/app.{v(JS)}.js", {})
    finally:
        sys.path.remove(str(tmp_path / "pkgs"))
        sys.modules.pop("bwpyrapp", None)


def test_unknown_file_raises_when_strict(root):
    buster = BustwareCacheBuster(str(root))
    with pytest.raises(AssetNotFound, match="nope"):
        buster(Request.blank("/page"), "nope.css", {})
    assert BustwareCacheBuster(str(root), strict=False)(None, "nope.css", {}) == ("nope.css", {})


def test_reload_assets_turns_development_mode_on(root):
    """pyramid.reload_assets = true alone: an edited stylesheet gets a new
    URL on the next page and is served fresh."""
    app = make_app(root, {"pyramid.reload_assets": "true", "bustware.refresh_interval": "0"})
    assert get(app, page_urls(app)[0]).body == CSS
    new = b"body { color: #456; margin: 0 }\n"
    (root / "css" / "app.css").write_bytes(new)
    url = page_urls(app)[0]
    assert url == f"/static/css/app.{v(new)}.css"
    r = get(app, url)
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, new, IMMUTABLE)


def test_reload_assets_wins_over_a_manifest(root, tmp_path):
    from bustware.build import build

    build(root, tmp_path / "m.json")
    with Configurator(settings={"pyramid.reload_assets": "true",
                                "bustware.manifest": str(tmp_path / "m.json")}) as config:
        config.include("bustware.pyramid")
        buster = config.add_bustware_static_view("static", str(root))
    assert buster.assets.autorefresh is True and buster.assets.manifest_path is None


def test_bustware_autorefresh_false_wins_over_reload_assets(root):
    app = make_app(root, {"pyramid.reload_assets": "true", "bustware.autorefresh": "false",
                          "bustware.refresh_interval": "0"})
    page_urls(app)
    (root / "css" / "app.css").write_bytes(b"body { color: #456; margin: 0 }\n")
    assert page_urls(app)[0] == f"/static/css/app.{v(CSS)}.css"


def test_missing_file_error_names_the_pyramid_setting(root):
    with Configurator(settings={}) as config:
        config.include("bustware.pyramid")
        buster = config.add_bustware_static_view("static", str(root))
    with pytest.raises(AssetNotFound) as err:
        buster(Request.blank("/page"), "nope.css", {})
    assert "set bustware.strict = false in the app's settings (.ini file)" in str(err.value)


MODULES = {"js/app.js": 'import { a } from "./lib/a.js";\nimport "lit";\n',
           "js/lib/a.js": "export const a = 1;\n", "vendor/lit/index.js": "export const x = 1;\n"}
PINS = {"lit": "vendor/lit/index.js"}


def test_importmap_and_modulepreload_request_methods_in_a_template(tmp_path):
    import jinja2

    root = make_tree(tmp_path / "static", MODULES)
    template = jinja2.Template("{{ request.importmap_tag(pins) }}|"
                               "{{ request.modulepreload('js/app.js', pins) }}")

    def page(request):
        return Response(template.render(request=request, pins=PINS), content_type="text/html")

    with Configurator() as config:
        config.include("bustware.pyramid")
        buster = config.add_bustware_static_view("static", str(root))
        config.add_route("page", "/page")
        config.add_view(page, route_name="page")
        app = config.make_wsgi_app()
    assets = buster.assets
    r = get(app, "/page")
    assert r.status_int == 200
    assert r.text == assets.importmap_tag(PINS) + "|" + assets.modulepreload("js/app.js", PINS)
    assert r.text.count('rel="modulepreload"') == 3


def test_the_helpers_name_the_static_view_when_there_are_several(tmp_path):
    from bustware.pyramid import busted_assets

    one = make_tree(tmp_path / "one", MODULES)
    two = make_tree(tmp_path / "two", {"js/x.js": "export const x = 2;\n"})
    with Configurator() as config:
        config.include("bustware.pyramid")
        config.add_bustware_static_view("one", str(one))
        b2 = config.add_bustware_static_view("two", str(two))
        config.commit()
        assert busted_assets(config.registry, "/two/") is b2.assets
        with pytest.raises(ValueError, match=r"pass one of '/one/', '/two/' as prefix="):
            busted_assets(config.registry)
