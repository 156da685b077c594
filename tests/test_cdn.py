"""base_url: URLs on a CDN that pulls from bustware as its origin."""

from __future__ import annotations

import hashlib

import pytest
from conftest import fallback_app

from bustware import AssetNotFound, Assets, Bustware

CDN = "https://cdn.example.com"
PNG = b"\x89PNG\r\n\x1a\n-fake-"


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.mark.parametrize(("given", "kept"), [
    ("https://cdn.example.com", "https://cdn.example.com"),
    ("https://cdn.example.com/", "https://cdn.example.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("//cdn.example.com", "//cdn.example.com"),
    ("HTTPS://CDN.example.com", "HTTPS://CDN.example.com"),
    (None, ""),
    ("", ""),
])
def test_valid_base_urls(tree, given, kept):
    root = tree({"a.png": PNG})
    assets = Assets(root, base_url=given)
    assert assets.base_url == kept
    assert assets.url("a.png") == f"{kept}/static/a.{v(PNG)}.png"


@pytest.mark.parametrize(("given", "words"), [
    ("cdn.example.com", "scheme"),
    ("ftp://cdn.example.com", "scheme"),
    ("https://", "scheme"),
    ("https:///path", "scheme"),
    ("https://cdn.example.com/assets", "path"),
    ("https://cdn.example.com//", "path"),
    ("https://cdn.example.com?x=1", "query"),
    ("https://cdn.example.com#top", "fragment"),
    ("https://user:pw@cdn.example.com", "password"),
    ("https://cdn.example.com:99999", "not a valid URL"),
    ("https://bücher.example", "xn--"),
    ("https://cdn example.com", "characters"),
    ("https://cdn.example.com\n", "characters"),
])
def test_invalid_base_urls_are_clear_errors(tree, given, words):
    root = tree({"a.png": PNG})
    with pytest.raises(ValueError) as info:
        Assets(root, base_url=given)
    message = str(info.value)
    assert repr(given) in message and words in message and "https://cdn.example.com" in message


def test_base_url_of_the_wrong_type(tree):
    with pytest.raises(TypeError, match="base_url=42"):
        Assets(tree({"a.png": PNG}), base_url=42)


def test_url_helper_and_plain_urls(tree):
    root = tree({"css/app.css": b"p{}", "LICENSE": b"MIT"})
    assets = Assets(root, base_url=CDN, extensions=[".css"], strict=False)
    assert assets.url("css/app.css") == f"{CDN}/static/css/app.{v(b'p{}')}.css"
    assert assets.url("LICENSE") == f"{CDN}/static/LICENSE"
    assert assets.url("missing.js") == f"{CDN}/static/missing.js"
    assert assets.url_for_version("x y.css", "abc") == f"{CDN}/static/x%20y.abc.css"


def test_rewritten_css_points_at_the_cdn(tree):
    css = b"a { background: url(../img/a.png) }\n@import 'b.css';\n"
    root = tree({"css/app.css": css, "css/b.css": b"b{}", "img/a.png": PNG})
    assets = Assets(root, base_url=CDN)
    served = (css.replace(b"../img/a.png", f"{CDN}/static/img/a.{v(PNG)}.png".encode())
              .replace(b"'b.css'", f"'{CDN}/static/css/b.{v(b'b{}')}.css'".encode()))
    assert assets["css/app.css"].body == served
    assert assets.url("css/app.css") == f"{CDN}/static/css/app.{v(served)}.css"


def test_references_to_the_cdn_itself_are_left_alone(tree):
    css = f"a{{b:url({CDN}/static/img/a.png)}}".encode()
    root = tree({"app.css": css, "img/a.png": PNG})
    assert Assets(root, base_url=CDN)["app.css"].body == css


def test_middleware_routes_the_path_the_cdn_asks_for(tree, fetch):
    root = tree({"css/app.css": b"a{b:url(a.png)}", "css/a.png": PNG})
    app = Bustware(fallback_app, root, base_url=CDN)
    url = app.url("css/app.css")
    assert url.startswith(f"{CDN}/static/css/app.")
    path = url[len(CDN):]
    r = fetch(app, path)
    assert r.status == 200
    assert r.body == f"a{{b:url({CDN}/static/css/a.{v(PNG)}.png)}}".encode()
    assert r.header("Cache-Control") == "max-age=31536000, immutable"
    r = fetch(app, "/static/css/app.css")
    assert r.status == 200 and r.header("Cache-Control") == "no-cache"
    assert fetch(app, "/elsewhere").body == b"app:/elsewhere"


def test_protocol_relative_base_url_routes_too(tree, fetch):
    root = tree({"a.png": PNG})
    app = Bustware(None, root, base_url="//cdn.example.com")
    assert app.url("a.png") == f"//cdn.example.com/static/a.{v(PNG)}.png"
    r = fetch(app, f"/static/a.{v(PNG)}.png")
    assert r.status == 200 and r.body == PNG


def test_redirect_of_an_outdated_url_points_at_the_path(tree, fetch):
    root = tree({"a.png": PNG})
    app = Bustware(None, root, base_url=CDN, outdated="redirect")
    r = fetch(app, "/static/a.000000000000.png")
    assert r.status == 307
    # Relative to what the client asked for: through the CDN it stays on the
    # CDN, straight to the origin it stays on the origin.
    assert r.header("Location") == f"/static/a.{v(PNG)}.png"
    assert r.header("Cache-Control") == "no-store"


def test_redirect_in_the_query_style_keeps_the_query(tree, fetch):
    root = tree({"a.png": PNG})
    app = Bustware(None, root, base_url=CDN, style="query", outdated="redirect")
    r = fetch(app, "/static/a.png", query="v=000000000000")
    assert r.status == 307 and r.header("Location") == f"/static/a.png?v={v(PNG)}"


def test_rewrite_mode_hands_the_app_the_plain_path(tree, fetch):
    root = tree({"a.png": PNG})
    app = Bustware(fallback_app, root, base_url=CDN, mode="rewrite")
    r = fetch(app, f"/static/a.{v(PNG)}.png")
    assert r.body == b"app:/static/a.png"
    assert r.header("Cache-Control") == "max-age=31536000, immutable"


def test_strict_unknown_file_still_raises(tree):
    with pytest.raises(AssetNotFound):
        Assets(tree({"a.png": PNG}), base_url=CDN).url("nope.png")
