"""bustware.jinja: the filter and the global in a plain jinja2.Environment."""

from __future__ import annotations

import hashlib

import jinja2
import pytest

from bustware import AssetNotFound, Assets, Bustware
from bustware.jinja import install

CSS = b"body { color: #123 }\n"


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture
def assets(tree):
    return Assets(tree({"css/app.css": CSS}))


def test_filter_and_global(assets):
    env = install(jinja2.Environment(autoescape=True), assets)
    out = env.from_string("{{ 'css/app.css'|bust }} {{ static_url('css/app.css') }}").render()
    url = f"/static/css/app.{v(CSS)}.css"
    assert out == f"{url} {url}"


def test_from_a_middleware_and_from_a_callable(assets, tree):
    mw = Bustware(None, assets)
    env = install(jinja2.Environment(), mw, global_name=None)
    assert env.from_string("{{ 'css/app.css'|bust }}").render() == assets.url("css/app.css")
    assert "static_url" not in env.globals
    env = install(jinja2.Environment(), lambda p: "/x/" + p, filter_name="v")
    assert env.from_string("{{ 'a'|v }}{{ static_url('b') }}").render() == "/x/a/x/b"


def test_from_an_asgi_middleware(assets):
    # Callable too, but with (scope, receive, send): taken as the url
    # callable it would fail only when a template is rendered.
    from bustware import BustwareASGI

    env = install(jinja2.Environment(), BustwareASGI(None, assets))
    out = env.from_string("{{ 'css/app.css'|bust }} {{ static_url('css/app.css') }}").render()
    url = assets.url("css/app.css")
    assert out == f"{url} {url}"


def test_unknown_file_raises_while_rendering(assets):
    env = install(jinja2.Environment(), assets)
    with pytest.raises(AssetNotFound, match="nope"):
        env.from_string("{{ 'nope.css'|bust }}").render()


def test_query_style_is_escaped_correctly(tree):
    assets = Assets(tree({"a.css": CSS}), style="query")
    env = install(jinja2.Environment(autoescape=True), assets)
    assert env.from_string('<link href="{{ "a.css"|bust }}">').render() == (
        f'<link href="/static/a.css?v={v(CSS)}">')


def test_autorefresh_shows_the_new_version_on_the_next_render(tree):
    root = tree({"css/app.css": CSS})
    assets = Assets(root, autorefresh=True, refresh_interval=0)
    env = install(jinja2.Environment(), assets)
    template = env.from_string("{{ 'css/app.css'|bust }}")
    assert template.render() == f"/static/css/app.{v(CSS)}.css"
    new = b"body { color: red }\n"  # another size: seen even within one mtime tick
    (root / "css" / "app.css").write_bytes(new)
    assert template.render() == f"/static/css/app.{v(new)}.css"


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="source"):
        install(jinja2.Environment(), "static/")
    with pytest.raises(TypeError, match=r"jinja2\.Environment"):
        install({}, lambda p: p)
