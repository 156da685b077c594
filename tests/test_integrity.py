"""Subresource integrity values and the tags that carry them."""

from __future__ import annotations

import base64
import hashlib
import logging
import os

import pytest

from bustware import AssetNotFound, Assets, Bustware
from bustware.integrity import (
    modulepreload_tag,
    script_tag,
    sri,
    sri_from_digest,
    stylesheet_tag,
)

JS = b"console.log('hi');\n"
PNG = b"\x89PNG-fake"


def expected_sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def test_sri_helpers():
    assert sri(JS) == expected_sri(JS)
    assert sri_from_digest(hashlib.sha384(JS).digest()) == expected_sri(JS)
    assert sri(b"") == "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"


def test_integrity_of_a_file(tree):
    assets = Assets(tree({"js/app.js": JS}))
    assert assets.integrity("js/app.js") == expected_sri(JS)


def test_integrity_is_of_the_served_rewritten_bytes(tree, fetch):
    css = b"a { background: url(a.png) }"
    app = Bustware(None, tree({"app.css": css, "a.png": PNG}))
    served = fetch(app, app.url("app.css")).body
    assert served != css
    assert app.assets.integrity("app.css") == expected_sri(served)


def test_integrity_of_a_streamed_file_and_caching(tree):
    big = os.urandom(100_000)
    root = tree({"big.js": big})
    assets = Assets(root, memory_threshold=1000)
    assert assets["big.js"].body is None
    assert assets.integrity("big.js") == expected_sri(big)
    assert assets["big.js"].integrity == expected_sri(big)  # kept with the entry
    # Kept: asking again does not read the file again.
    os.remove(root / "big.js")
    assert assets.integrity("big.js") == expected_sri(big)


def test_integrity_of_a_file_changed_under_a_running_index(tree):
    root = tree({"big.js": b"a" * 5000})
    assets = Assets(root, memory_threshold=10)
    (root / "big.js").write_bytes(b"b" * 6000)
    # The middleware serves what is on disk now (uncached), so that is what
    # the value vouches for; it is not kept, the index being stale.
    assert assets.integrity("big.js") == expected_sri(b"b" * 6000)
    assert assets["big.js"].integrity is None


def test_integrity_of_an_unknown_or_vanished_file(tree):
    root = tree({"big.js": b"a" * 5000})
    assets = Assets(root, memory_threshold=10, strict=False)
    with pytest.raises(AssetNotFound, match=r"nope\.js"):
        assets.integrity("nope.js")
    os.remove(root / "big.js")
    with pytest.raises(AssetNotFound, match="cannot read"):
        assets.integrity("big.js")


def test_integrity_follows_autorefresh(tree):
    root = tree({"app.js": JS})
    assets = Assets(root, autorefresh=True, refresh_interval=0)
    assert assets.integrity("app.js") == expected_sri(JS)
    (root / "app.js").write_bytes(JS + b"more();\n")
    assert assets.integrity("app.js") == expected_sri(JS + b"more();\n")


# -- tags --------------------------------------------------------------------------

def test_script_tag(tree):
    assets = Assets(tree({"js/app.js": JS}))
    assert script_tag(assets, "js/app.js") == (
        f'<script src="/static/js/app.{v(JS)}.js" integrity="{expected_sri(JS)}" '
        'crossorigin="anonymous"></script>')


def test_stylesheet_and_modulepreload_tags(tree):
    css = b"p{}"
    app = Bustware(None, tree({"app.css": css, "m.mjs": JS}))  # a Bustware works too
    assert stylesheet_tag(app, "app.css") == (
        f'<link rel="stylesheet" href="/static/app.{v(css)}.css" '
        f'integrity="{expected_sri(css)}" crossorigin="anonymous">')
    assert modulepreload_tag(app, "m.mjs") == (
        f'<link rel="modulepreload" href="/static/m.{v(JS)}.mjs" '
        f'integrity="{expected_sri(JS)}" crossorigin="anonymous">')


def test_extra_attributes(tree):
    assets = Assets(tree({"a.js": JS, "a.css": b"p{}"}))
    tag = script_tag(assets, "a.js", type="module", defer=True, async_=False, data_entry="main",
                     class_="x")
    assert tag == (f'<script src="/static/a.{v(JS)}.js" integrity="{expected_sri(JS)}" '
                   'crossorigin="anonymous" type="module" defer data-entry="main" '
                   'class="x"></script>')
    tag = stylesheet_tag(assets, "a.css", media="print", crossorigin="use-credentials",
                         integrity=None)
    assert tag == (f'<link rel="stylesheet" href="/static/a.{v(b"p{}")}.css" '
                   'crossorigin="use-credentials" media="print">')


def test_everything_is_html_escaped(tree):
    name = 'a"b<c>&\'.js'
    root = tree({name: JS})
    assets = Assets(root, prefix="/st&atic/")
    tag = script_tag(assets, name, title='"><script>alert(1)</script>')
    url = assets.url(name)
    assert "&" in url and "'" in url  # the prefix, and a character a path segment allows
    src = url.replace("&", "&amp;").replace("'", "&#x27;")
    assert tag == (f'<script src="{src}" integrity="{expected_sri(JS)}" '
                   'crossorigin="anonymous" '
                   'title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"></script>')
    assert "<script>alert" not in tag


@pytest.mark.parametrize("name", ["on click", "a>b", 'x"', "a=b", "", "_"])
def test_bad_attribute_names(tree, name):
    assets = Assets(tree({"a.js": JS}))
    with pytest.raises(ValueError, match="attribute name"):
        script_tag(assets, "a.js", **{name: "x"})


def test_unknown_file(tree, caplog):
    root = tree({"a.js": JS})
    with pytest.raises(AssetNotFound):
        script_tag(Assets(root), "nope.js")
    with caplog.at_level(logging.WARNING, logger="bustware"):
        tag = script_tag(Assets(root, strict=False), "nope.js")
    assert tag == '<script src="/static/nope.js" crossorigin="anonymous"></script>'
    assert any("nope.js" in r.getMessage() for r in caplog.records)


def test_tags_with_a_cdn(tree):
    assets = Assets(tree({"a.js": JS}), base_url="https://cdn.example.com")
    assert script_tag(assets, "a.js").startswith(
        f'<script src="https://cdn.example.com/static/a.{v(JS)}.js" integrity="sha384-')
