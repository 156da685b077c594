"""The README's framework snippets are the tested code: each is written out
with a static tree, run, and its page and versioned URLs fetched. (Bottle
and Falcon: tests/test_bottle_falcon.py; the gunicorn command:
tests/test_gunicorn_recipe.py; ASGI: tests/test_asgi_servers.py and
tests/test_asgi_frameworks.py.)"""

from __future__ import annotations

import hashlib
import inspect
import re

import pytest
from conftest import via_werkzeug
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.template.loader import get_template
from django.test import override_settings
from examples import readme
from examples.django_project import configure
from webob import Request

import bustware.gunicorn_conf

IMMUTABLE = "max-age=31536000, immutable"
CSS, JS = readme.STATIC["static/css/app.css"], readme.STATIC["static/js/app.js"]
FRAMEWORKS = {"wsgi", "flask", "django", "pyramid", "jinja", "bottle", "falcon", "gunicorn",
              "asgi", "fastapi", "litestar", "quart", "mount"}


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


EXPECTED = [f"/static/css/app.{v(CSS)}.css", f"/static/js/app.{v(JS)}.js"]


def urls_in(html: str) -> list[str]:
    return re.findall(r"""(?:href|src)=["']([^"']+)["']""", html)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def loaded():
    modules = []

    def load(path):
        module = readme.load(path)
        modules.append(module)
        return module

    yield load
    for module in modules:
        readme.unload(module)


def test_every_framework_has_a_section_with_snippets():
    found = readme.snippets()
    assert set(found) == FRAMEWORKS
    text = readme.README.read_text(encoding="utf-8")
    options = text.index("\n## Options\n")
    for name in FRAMEWORKS:
        assert text.index(f"<!-- snippet: {name} ") < options, name


def test_plain_wsgi(workdir, loaded):
    readme.write("wsgi", workdir)
    app = loaded(workdir / "app.py").application
    r = via_werkzeug(app, "/")
    assert urls_in(r.body.decode()) == EXPECTED
    for url, body in zip(EXPECTED, (CSS, JS)):
        r = via_werkzeug(app, url)
        assert (r.status, r.body, r.header("Cache-Control")) == (200, body, IMMUTABLE)
    other = via_werkzeug(app, "/anything/else")  # outside the prefix: the page app
    assert other.status == 200 and EXPECTED[0].encode() in other.body
    render = loaded(workdir / "render.py")
    assert render.html == f'<script src="{EXPECTED[1]}"></script>'


def test_flask(workdir, loaded):
    readme.write("flask", workdir)
    app = loaded(workdir / "app.py").app
    client = app.test_client()
    urls = urls_in(client.get("/").get_data(as_text=True))
    assert urls == EXPECTED
    for url, body in zip(urls, (CSS, JS)):
        r = client.get(url)
        assert (r.status_code, r.get_data(), r.headers["Cache-Control"]) == (200, body, IMMUTABLE)
        r.close()


def test_django(workdir):
    configure()
    files = readme.write("django", workdir)
    # A project without bustware: the snippet adds the app and the storage.
    namespace = {"INSTALLED_APPS": [a for a in settings.INSTALLED_APPS if a != "bustware"]}
    exec(compile(files["settings.py"], "README settings.py", "exec"), namespace)
    added = {k: v for k, v in namespace.items() if k.isupper()}
    templates = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
                  "DIRS": [str(workdir / "templates")]}]
    with override_settings(**added, TEMPLATES=templates, DEBUG=False,
                           STATIC_ROOT=str(workdir / "static")):
        wsgi: dict = {}
        exec(compile(files["wsgi.py"], "README wsgi.py", "exec"), wsgi)
        application = wsgi["application"]
        assert isinstance(application, bustware.Bustware)
        assert isinstance(get_wsgi_application(), type(application.app))
        urls = urls_in(get_template("index.html").render({}))
        assert urls == EXPECTED
        for url, body in zip(urls, (CSS, JS)):
            r = via_werkzeug(application, url)
            assert (r.status, r.body, r.header("Cache-Control")) == (200, body, IMMUTABLE)


def test_pyramid(workdir, loaded):
    readme.write("pyramid", workdir)
    app = loaded(workdir / "app.py").main({})
    page = Request.blank("/").get_response(app)
    urls = [u.removeprefix("http://localhost") for u in urls_in(page.text)]
    assert urls == EXPECTED[:1]
    r = Request.blank(urls[0]).get_response(app)
    assert (r.status_int, r.body, r.headers["Cache-Control"]) == (200, CSS, IMMUTABLE)


def test_jinja(workdir, loaded):
    readme.write("jinja", workdir)
    module = loaded(workdir / "render.py")
    assert urls_in(module.html) == EXPECTED
    served = bustware.Bustware(None, module.assets)
    for url, body in zip(EXPECTED, (CSS, JS)):
        r = via_werkzeug(served, url)
        assert (r.status, r.body, r.header("Cache-Control")) == (200, body, IMMUTABLE)


def test_gunicorn_recipe_shown_is_the_module():
    shown = readme.snippets()["gunicorn"]["gunicorn_conf.py"]
    source = inspect.getsource(bustware.gunicorn_conf)
    docstring_end = source.index('"""', 3) + 3
    assert shown.strip() == source[docstring_end:].strip()
