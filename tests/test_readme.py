"""The README's framework snippets are the tested code: each is written out
with a static tree, run, and its page and versioned URLs fetched. (Bottle
and Falcon: tests/test_bottle_falcon.py; the gunicorn command:
tests/test_gunicorn_recipe.py; ASGI: tests/test_asgi_servers.py and
tests/test_asgi_frameworks.py.)"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import json
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


#: The quick starts: snippet name -> the heading of its section.
QUICK_STARTS = {"wsgi": "WSGI", "flask": "Flask", "django": "Django", "fastapi": "FastAPI",
                "asgi": "Starlette", "pyramid": "Pyramid", "bottle": "Bottle",
                "falcon": "Falcon", "litestar": "Litestar", "quart": "Quart", "jinja": "Jinja2"}


def test_every_framework_has_a_section_with_snippets():
    found = readme.snippets()
    assert set(found) == FRAMEWORKS
    text = readme.README.read_text(encoding="utf-8")
    for name, title in QUICK_STARTS.items():
        start = text.index(f"\n## {title}\n")
        end = text.index("\n## ", start + 1)
        for file in found[name]:
            if (name, file) == ("django", "asgi.py"):  # Django in depth
                continue
            marker = text.index(f"<!-- snippet: {name} {file} -->")
            assert start < marker < end, (name, file)
        # From pip install to a page: each quick start installs, then runs.
        assert {"install.sh", "run.sh"} <= set(found[name]), name


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
    namespace = {"INSTALLED_APPS": [a for a in settings.INSTALLED_APPS if a != "bustware"],
                 "BASE_DIR": workdir,
                 "TEMPLATES": [{"BACKEND": "django.template.backends.django.DjangoTemplates",
                                "DIRS": []}]}
    exec(compile(files["settings.py"], "README settings.py", "exec"), namespace)
    added = {k: v for k, v in namespace.items() if k.isupper()}
    assert added["TEMPLATES"][0]["DIRS"] == [workdir / "templates"]
    assert added["STATICFILES_DIRS"] == [workdir / "static"]
    added["STATIC_ROOT"] = str(workdir / "static")  # as if collected
    with override_settings(**added, DEBUG=False):
        wsgi: dict = {}
        exec(compile(files["mysite/wsgi.py"], "README wsgi.py", "exec"), wsgi)
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


# -- every code block and option value as shown ------------------------------

def _text(errors: bool = True) -> str:
    """The README (without the section that shows mistakes on purpose,
    unless ``errors``)."""
    text = readme.README.read_text(encoding="utf-8")
    assert text.count("\n```") % 2 == 0, "a code block is not closed"
    if not errors:
        start = text.index("\n## Errors\n")
        text = text[:start] + text[text.index("\n## ", start + 1):]
    return text


def _text_outside_code(errors: bool = True) -> str:
    return re.sub(r"(?ms)^```.*?^```", "", _text(errors))


def _blocks(lang: str) -> list[str]:
    text = readme.README.read_text(encoding="utf-8")
    return re.findall(rf"(?ms)^```{lang}\n(.*?)^```", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_inside_the_readme_leads_to_a_heading():
    text = _text_outside_code()
    anchors = {_slug(h) for h in re.findall(r"(?m)^#{1,6} (.*)$", text)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, sorted(links - anchors)


def test_the_front_door_comes_first():
    """What it is, the contents, the two commands, install, the quick starts,
    deployment, then the reference, in that order."""
    text = _text_outside_code()
    order = ["## Contents", "## Try it", "## Install", *(f"## {t}" for t in QUICK_STARTS.values()),
             "## Gunicorn without a proxy", "## Rolling deploys", "## Containers and PaaS",
             "## CDN", "## Options", "## Command line", "## Inside bustware"]
    places = [text.index(f"\n{h}\n") for h in order]
    assert places == sorted(places)
    toc = text[text.index("## Contents"):text.index("## Try it")]
    for heading in re.findall(r"(?m)^## (.*)$", text):
        if heading != "Contents":
            assert f"(#{_slug(heading)})" in toc, heading


def test_every_python_block_is_python():
    for block in _blocks("python"):
        ast.parse(block)


def _option_examples() -> list[tuple[str, object]]:
    """Every ``name=value`` the README shows for an option, with a literal
    value: in backquotes in the text and tables, and as keyword arguments in
    its Python blocks."""
    names = set(inspect.signature(bustware.Bustware).parameters) | set(
        inspect.signature(bustware.Assets).parameters)
    found = []
    for name, value in re.findall(r"`(\w+)=([^`]+)`", _text_outside_code(errors=False)):
        if name in names:
            with contextlib.suppress(ValueError, SyntaxError):
                found.append((name, ast.literal_eval(value)))
    for block in _blocks("python"):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg in names:
                        with contextlib.suppress(ValueError):
                            found.append((kw.arg, ast.literal_eval(kw.value)))
    # The Options table: each default, as written.
    for name, default in re.findall(r"(?m)^\| `(\w+)` \| `([^`]*)` \|", _text_outside_code()):
        if name in names:
            with contextlib.suppress(ValueError, SyntaxError):
                found.append((name, ast.literal_eval(default)))
    return found


#: Values that need a file the example names, or another option with them
#: (store= needs manifest=).
NEEDS_CONTEXT = {"manifest", "bundler_manifest", "root", "prefix", "app", "store"}


def test_every_option_value_shown_is_accepted(tmp_path):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.css").write_bytes(CSS)
    examples = _option_examples()
    shown = {name for name, _ in examples}
    assert {"release", "version", "style", "outdated", "missing", "compress",
            "extensions", "cache_control"} <= shown, shown
    for name, value in examples:
        if name in NEEDS_CONTEXT:
            continue
        try:
            bustware.Bustware(lambda environ, start_response: [], static, **{name: value})
        except Exception as exc:
            pytest.fail(f"the README shows {name}={value!r}, which is refused: {exc}")


def test_every_setting_name_shown_exists():
    """The option names as each integration spells them: Flask's
    ``BUSTWARE_*`` keys, Django's ``BUSTWARE`` dict, Pyramid's ``bustware.*``
    settings."""
    import bustware.django
    import bustware.flask
    import bustware.pyramid

    text = _text(errors=False)
    flask_keys = set(re.findall(r"\bBUSTWARE_([A-Z_]+)\b", text)) - {"THREADS"}
    assert flask_keys and {k.lower() for k in flask_keys} <= set(bustware.flask.OPTIONS)
    django_keys = set(re.findall(r"BUSTWARE(?: =|\[)\s*\{?\"(\w+)\"", text))
    assert django_keys and django_keys <= set(bustware.django.OPTIONS)
    pyramid_keys = set(re.findall(r"`bustware\.(\w+) =", text))
    assert pyramid_keys and pyramid_keys <= set(bustware.pyramid.OPTIONS)


def _reference_blocks() -> list[str]:
    """The Python blocks of the reference that are no quick start's file."""
    text = readme.README.read_text(encoding="utf-8")
    return [m[2] for m in re.finditer(r"(?ms)(<!-- snippet: [^>]*-->\n)?^```python\n(.*?)^```",
                                      text)
            if not m[1] and not m[2].startswith("# wsgi.py")]  # the recipe: its own test


def _same_shape(shown: str, got: str) -> bool:
    """Equal, but for bustware's 12-hex versions and the base64 of an
    integrity value, which depend on the bytes."""
    def shape(s: str) -> str:
        s = re.sub(r"sha384-(?:[A-Za-z0-9+/=]{64}|<64 base64 characters>|\.\.\.)", "sha384-X", s)
        return re.sub(r"\.[0-9a-f]{12}\.", ".V.", s)
    return shape(shown) == shape(got)


def test_the_reference_blocks_run_and_give_what_they_show(workdir):
    """Run as shown, in a directory with the files they name (the bundler
    manifests with the hashed names the examples show); each ``# -> value``
    comment is what the line gives, and each ``# <tag ...>`` comment the
    tag the line before makes."""
    files = {**readme.STATIC, "static/js/module.mjs": b"export default 1;\n",
             "static/assets/main-4889e940.js": b"1;\n", "static/js/main.4f3b2a1c.js": b"2;\n",
             "collected/css/app.3f2a1b9c04d1.css": b"a{}\n", "collected/css/app.css": b"a{}\n"}
    for rel, data in files.items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_bytes(data)
    (workdir / "static/.vite").mkdir()
    (workdir / "static/.vite/manifest.json").write_text(json.dumps(
        {"src/main.ts": {"file": "assets/main-4889e940.js", "src": "src/main.ts",
                         "isEntry": True}}))
    (workdir / "static/manifest.json").write_text(json.dumps({"main.js": "js/main.4f3b2a1c.js"}))
    (workdir / "collected/staticfiles.json").write_text(json.dumps(
        {"paths": {"css/app.css": "css/app.3f2a1b9c04d1.css"}, "version": "1.1",
         "hash": "0123456789ab"}))
    from bustware.build import build

    build(workdir / "static")
    blocks = _reference_blocks()
    assert len(blocks) >= 4
    checked = 0
    for block in blocks:
        namespace = {"app": lambda environ, start_response: [], "Bustware": bustware.Bustware,
                     "Assets": bustware.Assets, "assets": bustware.Assets("static/"),
                     "STATIC_ROOT": str(workdir / "collected")}
        last = None
        for statement in ast.parse(block).body:
            source = ast.get_source_segment(block, statement)
            line = block.splitlines()[statement.end_lineno - 1]
            if isinstance(statement, ast.Expr):
                last = eval(compile(ast.Expression(statement.value), "README", "eval"),
                            namespace)
            else:
                exec(compile(source, "README", "exec"), namespace)
            shown = re.search(r"# -> '([^']*)'$", line)
            if shown:
                assert _same_shape(shown[1], last), (source, last)
                checked += 1
            following = block.splitlines()[statement.end_lineno:statement.end_lineno + 1]
            if following and following[0].startswith("# <"):
                assert _same_shape(following[0][2:], str(last)), (source, last)
                checked += 1
    assert checked >= 8
