"""The import map and modulepreload helpers in the templates of the
integrations without a helper module of their own (Bottle, Falcon,
Starlette/FastAPI, Litestar), installed the one-line way the README shows:
the rendered page holds exactly what the index's methods give."""

from __future__ import annotations

import bottle
import falcon
import falcon.testing
import pytest
from conftest import make_tree
from starlette.templating import Jinja2Templates

from bustware import Assets, Bustware
from bustware.jinja import install

MODULES = {"js/app.js": 'import { a } from "./lib/a.js";\nimport "lit";\n',
           "js/lib/a.js": "export const a = 1;\n", "vendor/lit/index.js": "export const x = 1;\n"}
PINS = {"lit": "vendor/lit/index.js"}


@pytest.fixture
def assets(tmp_path):
    return Assets(make_tree(tmp_path / "static", MODULES))


def expected(assets: Assets) -> str:
    out = assets.importmap_tag(PINS) + "|" + assets.modulepreload("js/app.js", PINS)
    assert out.count('rel="modulepreload"') == 3 and '<script type="importmap">' in out
    return out


def test_bottle_simpletemplate_defaults(assets, monkeypatch):
    application = Bustware(bottle.Bottle(), assets)
    monkeypatch.setitem(bottle.SimpleTemplate.defaults, "importmap_tag",
                        application.assets.importmap_tag)
    monkeypatch.setitem(bottle.SimpleTemplate.defaults, "modulepreload",
                        application.assets.modulepreload)
    html = bottle.template("{{!importmap_tag(pins)}}|{{!modulepreload('js/app.js', pins)}}",
                           pins=PINS)
    assert html == expected(assets)


def test_falcon_page(assets):
    class Home:
        def on_get(self, req, resp):
            resp.content_type = falcon.MEDIA_HTML
            resp.text = (f"{application.assets.importmap_tag(PINS)}|"
                         f"{application.assets.modulepreload('js/app.js', PINS)}")

    app = falcon.App()
    app.add_route("/", Home())
    application = Bustware(app, assets)
    r = falcon.testing.TestClient(application).simulate_get("/")
    assert r.status_code == 200 and r.text == expected(assets)


def test_starlette_and_fastapi_jinja2templates_globals(assets, tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/index.html").write_text(
        "{{ importmap_tag(pins) }}|{{ modulepreload('js/app.js', pins) }}")
    templates = Jinja2Templates(directory=str(tmp_path / "templates"))
    templates.env.globals["importmap_tag"] = assets.importmap_tag
    templates.env.globals["modulepreload"] = assets.modulepreload
    # .html templates autoescape: the helpers' markup comes through as is.
    assert templates.get_template("index.html").render(pins=PINS) == expected(assets)


def test_litestar_jinja_install(assets, tmp_path):
    from litestar.plugins.jinja import JinjaTemplateEngine

    (tmp_path / "index.html").write_text(
        "{{ importmap_tag(pins) }}|{{ modulepreload('js/app.js', pins) }}")
    engine = JinjaTemplateEngine(directory=tmp_path)
    install(engine.engine, assets)
    assert engine.get_template("index.html").render(pins=PINS) == expected(assets)
