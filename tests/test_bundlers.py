"""Manifests of Vite, webpack-manifest-plugin and Django: hashed files served
as current (immutable) under their own names, logical names resolved."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import via_werkzeug

from bustware import Assets, Bustware
from bustware.build import build
from bustware.bundlers import BundlerManifestError, hash_of

IMMUTABLE = "max-age=31536000, immutable"
MAIN_JS = b"import './shared.js'; console.log('main');\n"
MAIN_CSS = b"body { margin: 0 }\n"


@pytest.fixture
def vite(tree):
    manifest = {
        "src/main.ts": {"file": "assets/main-4889e940.js", "name": "main",
                        "src": "src/main.ts", "isEntry": True,
                        "imports": ["_shared-B7PI925R.js"],
                        "css": ["assets/main-b82dbe22.css"]},
        "_shared-B7PI925R.js": {"file": "assets/shared-B7PI925R.js", "name": "shared"},
        "src/logo.svg": {"file": "assets/logo-Dc7pX0_a.svg", "src": "src/logo.svg"},
    }
    return tree({
        "assets/main-4889e940.js": MAIN_JS,
        "assets/shared-B7PI925R.js": b"export {}\n",
        "assets/main-b82dbe22.css": MAIN_CSS,
        "assets/logo-Dc7pX0_a.svg": b"<svg/>",
        "robots.txt": b"User-agent: *\n",
        ".vite/manifest.json": json.dumps(manifest),
    })


def test_vite_entry_resolves_to_its_hashed_file(vite):
    assets = Assets(vite, bundler_manifest=vite / ".vite/manifest.json")
    assert assets.url("src/main.ts") == "/static/assets/main-4889e940.js"
    assert assets.url("src/logo.svg") == "/static/assets/logo-Dc7pX0_a.svg"
    assert assets.url("assets/main-b82dbe22.css") == "/static/assets/main-b82dbe22.css"
    assert assets["assets/main-4889e940.js"].version == "4889e940"
    assert assets["assets/shared-B7PI925R.js"].version == "B7PI925R"
    assert assets.aliases["src/main.ts"] == "assets/main-4889e940.js"
    # files no bundler named keep bustware's own versions
    assert assets.url("robots.txt") != "/static/robots.txt"


def test_vite_hashed_files_are_served_immutable(vite, fetch):
    app = Bustware(None, vite, bundler_manifest=vite / ".vite/manifest.json")
    r = fetch(app, app.url("src/main.ts"))
    assert r.status == 200 and r.body == MAIN_JS
    assert r.header("Cache-Control") == IMMUTABLE
    css = fetch(app, "/static/assets/main-b82dbe22.css")
    assert css.body == MAIN_CSS and css.header("Cache-Control") == IMMUTABLE
    plain = fetch(app, "/static/robots.txt")
    assert plain.header("Cache-Control") == "no-cache"


def test_vite_files_are_current_in_the_query_style(vite):
    app = Bustware(None, vite, bundler_manifest=vite / ".vite/manifest.json", style="query")
    r = via_werkzeug(app, app.url("src/main.ts"))
    assert app.url("src/main.ts") == "/static/assets/main-4889e940.js"
    assert r.body == MAIN_JS and r.header("Cache-Control") == IMMUTABLE


def test_webpack_manifest_with_public_path(tree, tmp_path):
    root = tree({"js/main.4f3b2a1c.js": MAIN_JS, "css/main.9e8d7c6b.css": MAIN_CSS,
                 "img/logo.png": b"\x89PNG"})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({
        "main.js": "/static/js/main.4f3b2a1c.js",
        "main.css": "auto/css/main.9e8d7c6b.css",
        "logo.png": "https://cdn.example.com/assets/img/logo.png",
    }))
    app = Bustware(None, root, bundler_manifest=manifest)
    assert app.url("main.js") == "/static/js/main.4f3b2a1c.js"
    assert app.url("main.css") == "/static/css/main.9e8d7c6b.css"
    r = via_werkzeug(app, app.url("main.css"))
    assert r.body == MAIN_CSS and r.header("Cache-Control") == IMMUTABLE
    # not hashed by webpack: an alias to bustware's own versioned URL
    assert app.url("logo.png") == app.url("img/logo.png") != "/static/img/logo.png"


def test_django_staticfiles_json(tree, fetch):
    root = tree({"css/app.css": MAIN_CSS, "css/app.3f2a1b9c04d1.css": MAIN_CSS,
                 "staticfiles.json": json.dumps({
                     "paths": {"css/app.css": "css/app.3f2a1b9c04d1.css"},
                     "version": "1.1", "hash": "0123456789ab"})})
    app = Bustware(None, root, bundler_manifest=root / "staticfiles.json")
    assert app.url("css/app.css") == "/static/css/app.3f2a1b9c04d1.css"
    r = fetch(app, "/static/css/app.3f2a1b9c04d1.css")
    assert r.body == MAIN_CSS and r.header("Cache-Control") == IMMUTABLE
    assert app.assets["css/app.3f2a1b9c04d1.css"].version == "3f2a1b9c04d1"
    assert fetch(app, "/static/css/app.css").header("Cache-Control") == "no-cache"


def test_bundler_manifest_with_a_build_manifest(vite):
    build(vite)
    app = Bustware(None, vite, manifest=vite / ".bustware/manifest.json",
                   bundler_manifest=vite / ".vite/manifest.json")
    r = via_werkzeug(app, app.url("src/main.ts"))
    assert app.url("src/main.ts") == "/static/assets/main-4889e940.js"
    assert r.body == MAIN_JS and r.header("Cache-Control") == IMMUTABLE


def test_several_bundler_manifests(vite, tmp_path):
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps({"robots.txt": "robots.txt"}))
    assets = Assets(vite, bundler_manifest=[vite / ".vite/manifest.json", other])
    assert assets.url("src/main.ts") == "/static/assets/main-4889e940.js"


def test_a_named_file_that_is_missing_is_a_warning(tree, tmp_path, caplog):
    root = tree({"js/main.4f3b2a1c.js": MAIN_JS})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"main.js": "js/main.4f3b2a1c.js",
                                    "gone.js": "js/gone.12345678.js"}))
    with caplog.at_level(logging.WARNING, logger="bustware"):
        assets = Assets(root, bundler_manifest=manifest)
    assert "js/gone.12345678.js" in caplog.text and "gone.js" in caplog.text
    assert assets.url("main.js") == "/static/js/main.4f3b2a1c.js"
    assert "gone.js" not in assets.aliases
    assert assets.get("gone.js") is None


def test_unknown_format_names_the_file(tree, tmp_path):
    root = tree({"a.js": "a"})
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(BundlerManifestError, match="is not a manifest of Vite") as err:
        Assets(root, bundler_manifest=odd)
    assert str(odd) in str(err.value)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(BundlerManifestError, match="not valid JSON"):
        Assets(root, bundler_manifest=broken)
    with pytest.raises(BundlerManifestError, match="cannot read"):
        Assets(root, bundler_manifest=tmp_path / "missing.json")


def test_own_manifest_passed_as_bundler_manifest(tree):
    root = tree({"a.js": "a"})
    build(root)
    with pytest.raises(BundlerManifestError, match="pass it as manifest="):
        Assets(root, bundler_manifest=root / ".bustware/manifest.json")


def test_autorefresh_picks_up_a_new_bundler_build(vite):
    app = Bustware(None, vite, bundler_manifest=vite / ".vite/manifest.json",
                   autorefresh=True, refresh_interval=0)
    assert app.url("src/main.ts") == "/static/assets/main-4889e940.js"
    (vite / "assets/main-0a1b2c3d.js").write_bytes(b"console.log('v2');\n")
    data = json.loads((vite / ".vite/manifest.json").read_text())
    data["src/main.ts"]["file"] = "assets/main-0a1b2c3d.js"
    (vite / ".vite/manifest.json").write_text(json.dumps(data, indent=1))
    assert app.url("src/main.ts") == "/static/assets/main-0a1b2c3d.js"
    r = via_werkzeug(app, "/static/assets/main-0a1b2c3d.js")
    assert r.body == b"console.log('v2');\n" and r.header("Cache-Control") == IMMUTABLE


@pytest.mark.parametrize("logical, file, expected", [
    ("css/app.css", "css/app.3f2a1b9c04d1.css", "3f2a1b9c04d1"),  # Django
    ("main.js", "main-B7PI-25R.js", "B7PI-25R"),  # Vite: base64url may hold '-'
    ("mods/alpha.js", "mods/alpha.1234567890.js", "1234567890"),  # webpack
    ("src/main.ts", "assets/index-BSa2n0sW.js", "BSa2n0sW"),  # Vite, another name
    ("", "assets/main-5UjPuW_k.css", "5UjPuW_k"),
    ("", "js/chunk.4f3b2a1c.js", "4f3b2a1c"),
    ("logo.png", "img/logo.png", None),  # same name: no hash
    ("jquery.js", "jquery.min.js", None),  # a name, not a hash
    ("app.js", "app-preview.js", None),
    ("LICENSE", "LICENSE.a1b2c3d4e5f6", "a1b2c3d4e5f6"),
])
def test_hash_of(logical, file, expected):
    assert hash_of(logical, file) == expected
