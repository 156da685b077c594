"""JavaScript modules in the index: which files are modules, their
specifiers rewritten to versioned URLs (bytes exact), the Merkle versions
over the module graph, the import map and modulepreload helpers, url()
escaping of RFC 3986 segment characters, the segment style's release
check, and 103 Early Hints through a real gunicorn."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from conftest import gunicorn, make_tree, via_asgi, via_werkzeug

from bustware import Assets, Bustware, early_hints

APP = (b'import { a } from "./lib/a.js";\n'
       b"import 'lit';\n"
       b"const b = await import('./lib/b.js');\n"
       b"const c = import(`./lib/${name}.js`);\n"
       b'const u = new URL("../img/logo.png", import.meta.url);\n'
       b'import("./missing.js");\n'
       b'// import "./lib/a.js"\n'
       b'const s = "./lib/a.js"; const t = `import "./lib/a.js"`; const r = /"\\.\\/x"/;\n'
       b"//# sourceMappingURL=app.js.map\n")


@pytest.fixture
def site(tmp_path):
    return make_tree(tmp_path / "static", {
        "js/app.js": APP,
        "js/app.js.map": "{}",
        "js/lib/a.js": 'import { leaf } from "./leaf.js"; export const a = leaf;\n',
        "js/lib/b.js": "export const b = 2;\n",
        "js/lib/leaf.js": "export const leaf = 1;\n",
        "js/lib/other.mjs": 'import "/static/js/lib/b.js";\n',
        "js/classic.js": 'var s = import("./lib/a.js"); var t = "./lib/a.js";\n',
        "js/cjs.cjs": 'const x = require("./lib/a.js"); import("./lib/a.js");\n',
        "img/logo.png": b"\x89PNG",
        "vendor/lit/index.js": 'export * from "./sub/x.js";\nimport "lit-html";\n',
        "vendor/lit/sub/x.js": "export const x = 1;\n",
        "vendor/lit-html/index.js": "export const html = 1;\n",
        "vendor/@lit/re,el;x.js": "export const y = 1;\n",
    })


def test_relative_specifiers_get_versioned_urls_every_other_byte_kept(site, caplog):
    caplog.set_level(logging.WARNING, "bustware")
    assets = Assets(site)
    u = assets.url
    expected = (APP.replace(b'"./lib/a.js";\nimport', f'"{u("js/lib/a.js")}";\nimport'.encode())
                .replace(b"'./lib/b.js'", f"'{u('js/lib/b.js')}'".encode())
                .replace(b'"../img/logo.png"', f'"{u("img/logo.png")}"'.encode())
                .replace(b"=app.js.map", f"={u('js/app.js.map')}".encode()))
    assert assets["js/app.js"].served_bytes() == expected
    # bare "lit", the computed import(), the missing one, the comment, the
    # strings, the template and the regular expression are as written
    assert b"import 'lit';" in expected and b'import("./missing.js")' in expected
    assert assets.broken_references() == [("js/app.js", 6, "./missing.js", "js/missing.js")]
    assert "line 4: import() with a computed argument" in caplog.text
    assert assets["js/lib/other.mjs"].served_bytes() == \
        f'import "{u("js/lib/b.js")}";\n'.encode()


def test_classic_scripts_are_served_byte_identical(site):
    assets = Assets(site)
    for path in ("js/classic.js", "js/cjs.cjs"):
        assert assets[path].served_bytes() == (site / path).read_bytes()


def test_the_modules_option(site):
    off = Assets(site, modules=False)
    assert off["js/app.js"].served_bytes().startswith(b'import { a } from "./lib/a.js"')
    assert off["js/lib/other.mjs"].served_bytes() == (site / "js/lib/other.mjs").read_bytes()
    globbed = Assets(site, modules=["js/classic.js"])
    assert globbed["js/classic.js"].served_bytes().startswith(
        f'var s = import("{globbed.url("js/lib/a.js")}")'.encode())
    assert globbed["js/app.js"].served_bytes().startswith(b'import { a } from "./lib/a.js"')
    with pytest.raises(ValueError, match=r"modules=\[3\]: 3 is not a glob"):
        Assets(site, modules=[3])


def test_a_changed_leaf_changes_exactly_the_modules_that_reach_it(site):
    before = {a.path: a.url for a in Assets(site)}
    (site / "js/lib/leaf.js").write_text("export const leaf = 3;\n")
    after = {a.path: a.url for a in Assets(site)}
    changed = sorted(p for p in before if before[p] != after[p])
    assert changed == ["js/app.js", "js/lib/a.js", "js/lib/leaf.js"]


def test_a_dynamic_import_is_an_edge_and_cycles_share_a_version(site):
    (site / "js/lib/b.js").write_text('export const b = 2; import "./a.js";\n')
    (site / "js/lib/leaf.js").write_text('export const leaf = 1; import("./b.js");\n')
    assets = Assets(site)
    versions = {p: assets[p].version for p in ("js/lib/a.js", "js/lib/b.js", "js/lib/leaf.js")}
    assert len(set(versions.values())) == 1  # one cycle: a -> leaf -> b -> a
    before = {a.path: a.url for a in assets}
    (site / "js/lib/b.js").write_text('export const b = 5; import "./a.js";\n')
    after = {a.path: a.url for a in Assets(site)}
    assert sorted(p for p in before if before[p] != after[p]) == [
        "js/app.js", "js/lib/a.js", "js/lib/b.js", "js/lib/leaf.js", "js/lib/other.mjs"]


PINS = {"lit": "vendor/lit/index.js", "lit/": "vendor/lit/", "lit-html": "vendor/lit-html/index.js"}


def test_importmap_names_versioned_urls_with_integrity(site):
    assets = Assets(site)
    u = assets.url
    m = assets.importmap(PINS)
    assert m["imports"] == {"lit": u("vendor/lit/index.js"),
                            "lit/index.js": u("vendor/lit/index.js"),
                            "lit/sub/x.js": u("vendor/lit/sub/x.js"),
                            "lit-html": u("vendor/lit-html/index.js")}
    assert m["integrity"] == {u(p): assets.integrity(p) for p in
                              ("vendor/lit-html/index.js", "vendor/lit/index.js",
                               "vendor/lit/sub/x.js")}
    assert all(v.startswith("sha384-") for v in m["integrity"].values())
    tag = assets.importmap_tag({"</script><!--x": "vendor/lit/index.js"})
    assert tag.startswith('<script type="importmap">\n') and tag.endswith("\n</script>")
    assert "<" not in tag[len('<script type="importmap">'):-len("</script>")]
    assert json.loads(tag.split("\n", 1)[1].rsplit("\n", 1)[0])["imports"] == \
        {"</script><!--x": u("vendor/lit/index.js")}
    with pytest.raises(LookupError, match=r"no file 'vendor/nope\.js'"):
        assets.importmap({"nope": "vendor/nope.js"})
    with pytest.raises(ValueError, match="a folder pin"):
        assets.importmap({"lit/": "vendor/lit/index.js"})


def test_modulepreload_lists_the_static_graph_through_the_pins(site):
    (site / "js/main.js").write_text('import "./lib/a.js"; import "lit"; import("./lib/b.js");\n')
    assets = Assets(site)
    html = assets.modulepreload("js/main.js", PINS)
    graph = ["js/main.js", "js/lib/a.js", "vendor/lit/index.js", "vendor/lit-html/index.js",
             "vendor/lit/sub/x.js", "js/lib/leaf.js"]
    assert sorted(html.split("\n")) == sorted(
        f'<link rel="modulepreload" href="{assets.url(p)}" integrity="{assets.integrity(p)}" '
        'crossorigin="anonymous">' for p in graph)
    assert "js/lib/b" not in html  # a dynamic import is not preloaded
    assert html.__html__() == html  # inserted as it is by Jinja and Django


def test_url_keeps_segment_characters_and_the_middleware_answers_both_forms(site):
    app = Bustware(None, site)
    url = app.assets.url("vendor/@lit/re,el;x.js")
    assert url.startswith("/static/vendor/@lit/re,el;x.")
    encoded = url.replace("@", "%40").replace(",", "%2C").replace(";", "%3B")
    for path in (url, encoded):
        for via in (via_werkzeug, via_asgi):
            resp = via(app, path)
            assert resp.status == 200, (via, path)
            assert resp.body == b"export const y = 1;\n"
            assert "immutable" in resp.header("Cache-Control")


def test_url_still_escapes_space_hash_question_percent_and_non_ascii(tmp_path):
    root = make_tree(tmp_path / "s", {"a b#c?d%e\u00e9.js": "x"})
    assert Assets(root).url("a b#c?d%e\u00e9.js").startswith("/static/a%20b%23c%3Fd%25e%C3%A9.")


def test_a_release_reused_over_changed_bytes_is_refused(site):
    first = Assets(site, style="segment", release="r1")
    assert first["js/lib/other.mjs"].served_bytes() == b'import "/static/r1/js/lib/b.js";\n'
    Assets(site, style="segment", release="r1")  # the same bytes: fine
    (site / "js/lib/b.js").write_text("export const b = 3;\n")
    with pytest.raises(ValueError, match=r"release='r1' was already served with other bytes "
                                         r"for 'js/lib/b.js'.*Pass a new release="):
        Assets(site, style="segment", release="r1")
    assert Assets(site, style="segment", release="r2").url("js/lib/b.js") == \
        "/static/r2/js/lib/b.js"


def test_early_hints_is_a_no_op_without_the_server_callback(site):
    assert early_hints({}, Assets(site), "js/lib/a.js") is False
    sent = []
    assert early_hints({"wsgi.early_hints": sent.append}, Assets(site), "js/lib/a.js")
    assert next(v for _n, v in sent[0]).endswith("; rel=modulepreload")


GUNICORN_APP = '''
from bustware import Bustware, EarlyHints, early_hints

def page(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "4")])
    return [b"page"]

static = Bustware(page, "static")
application = EarlyHints(static, static, {"/": "js/lib/a.js"})
'''


@pytest.mark.server
def test_a_103_arrives_before_the_200_under_gunicorn(site):
    (site.parent / "hinted.py").write_text(GUNICORN_APP)
    assets = Assets(site)
    with gunicorn("hinted:application", site.parent) as base:
        host, port = base.removeprefix("http://").split(":")
        raw = b""
        deadline = time.monotonic() + 10
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while chunk := sock.recv(65536):
                raw += chunk
                assert time.monotonic() < deadline
    hints, _, final = raw.partition(b"\r\n\r\n")
    assert hints.split(b"\r\n") == [
        b"HTTP/1.1 103 Early Hints",
        f"Link: <{assets.url('js/lib/a.js')}>; rel=modulepreload".encode(),
        f"Link: <{assets.url('js/lib/leaf.js')}>; rel=modulepreload".encode()]
    assert final.startswith(b"HTTP/1.1 200 OK") and final.endswith(b"page")


def test_link_values_percent_encode_comma_and_semicolon(site):
    from bustware.earlyhints import link_values

    (site / "js/m.js").write_text('import "../vendor/@lit/re,el;x.js";\n')
    values = link_values(Assets(site), "js/m.js")
    assert values[1].startswith("</static/vendor/@lit/re%2Cel%3Bx.")


def test_template_helpers_jinja_flask_django(site, tmp_path):
    import jinja2

    from bustware.jinja import install

    assets = Assets(site)
    env = install(jinja2.Environment(autoescape=True), assets)
    out = env.from_string("{{ importmap_tag(pins) }}{{ modulepreload('js/lib/a.js') }}").render(
        pins={"lit": "vendor/lit/index.js"})
    assert out == assets.importmap_tag({"lit": "vendor/lit/index.js"}) + \
        assets.modulepreload("js/lib/a.js")

    flask = pytest.importorskip("flask")
    from bustware.flask import Bustware as FlaskBustware

    app = flask.Flask("t", static_folder=str(site))
    FlaskBustware(app)

    @app.route("/")
    def index():
        return flask.render_template_string(
            "{{ importmap_tag({'lit': 'vendor/lit/index.js'}) }}{{ modulepreload('js/lib/a.js') }}")

    body = app.test_client().get("/").data.decode()
    flask_assets = app.extensions["bustware"].assets_for("static")
    assert body == flask_assets.importmap_tag({"lit": "vendor/lit/index.js"}) + \
        flask_assets.modulepreload("js/lib/a.js")
    assert '<script type="importmap">' in body and 'rel="modulepreload"' in body


def test_modulepreload_from_a_built_manifest(site, tmp_path):
    from bustware.build import build

    (site / "js/main.js").write_text('import "./lib/a.js"; import "lit";\n')
    scanned = Assets(site)
    build(site, tmp_path / "manifest.json")
    loaded = Assets(site, manifest=tmp_path / "manifest.json")
    assert loaded.modulepreload("js/main.js", PINS) == scanned.modulepreload("js/main.js", PINS)
    assert loaded.importmap(PINS) == scanned.importmap(PINS)


def test_early_hints_asgi_where_the_server_lists_the_extension(site):
    import asyncio

    from conftest import asgi_scope

    from bustware import EarlyHintsASGI

    def run_asgi(app, scope):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        return sent

    async def page(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})

    assets = Assets(site)
    app = EarlyHintsASGI(page, assets, {"/": "js/lib/a.js"})
    scope = asgi_scope("/")
    sent = run_asgi(app, {**scope, "extensions": {"http.response.early_hint": {}}})
    assert sent[0] == {"type": "http.response.early_hint", "links": [
        f"<{assets.url(p)}>; rel=modulepreload".encode() for p in ("js/lib/a.js",
                                                                     "js/lib/leaf.js")]}
    assert sent[1]["status"] == 200
    assert run_asgi(app, scope)[0]["type"] == "http.response.start"  # not offered: nothing
    assert run_asgi(app, asgi_scope("/other"))[0]["type"] == "http.response.start"
