"""bustware.flask through Flask's own test client: the url_for calls a
template already has return versioned URLs, and those URLs are answered."""

from __future__ import annotations

import hashlib
import re

import pytest
from flask import Blueprint, Flask, render_template_string, url_for

from bustware import AssetNotFound
from bustware.flask import Bustware

IMMUTABLE = "max-age=31536000, immutable"
CSS = b"body { color: #123 }\n"
JS = b"console.log('flask');\n"
ADMIN_JS = b"console.log('admin');\n"
PAGE = (
    "<link rel=stylesheet href=\"{{ url_for('static', filename='css/app.css') }}\">"
    "<script src=\"{{ url_for('admin.static', filename='js/admin.js') }}\"></script>"
    "<script src=\"{{ static_url('js/app.js') }}\"></script>"
)


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture
def project(tmp_path):
    for rel, data in {"static/css/app.css": CSS, "static/js/app.js": JS,
                      "admin_static/js/admin.js": ADMIN_JS}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def make_app(project, config=None, *, factory=False, bp_after=False, **options):
    app = Flask("flask_test", root_path=str(project), static_folder="static")
    app.config.update(config or {})
    admin = Blueprint("admin", "flask_test", root_path=str(project),
                      static_folder="admin_static", url_prefix="/admin")

    @app.route("/")
    def index():
        return render_template_string(PAGE)

    @app.after_request
    def mark(response):
        # Tells which responses came from Flask (its static view included).
        response.headers["X-Flask"] = "1"
        return response

    if not bp_after:
        app.register_blueprint(admin)
    if factory:
        ext = Bustware(**options)
        ext.init_app(app)
    else:
        ext = Bustware(app, **options)
    if bp_after:
        app.register_blueprint(admin)
    return app, ext


def urls_of(page: bytes) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', page.decode())


@pytest.mark.parametrize("factory", [False, True])
@pytest.mark.parametrize("bp_after", [False, True])
def test_template_url_for_is_versioned_and_served(project, factory, bp_after):
    app, _ = make_app(project, factory=factory, bp_after=bp_after)
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert urls_of(page.data) == [
        f"/static/css/app.{v(CSS)}.css",
        f"/admin/admin_static/js/admin.{v(ADMIN_JS)}.js",
        f"/static/js/app.{v(JS)}.js",
    ]
    for url, body in zip(urls_of(page.data), (CSS, ADMIN_JS, JS)):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.data == body
        assert r.headers["Cache-Control"] == IMMUTABLE
        assert "X-Flask" not in r.headers  # serve mode: bustware answered
        r.close()


def test_rewrite_mode_flask_static_view_sends_the_bytes(project):
    app, _ = make_app(project, {"BUSTWARE_MODE": "rewrite", "SEND_FILE_MAX_AGE_DEFAULT": 60})
    client = app.test_client()
    urls = urls_of(client.get("/").data)
    for url, body in zip(urls, (CSS, ADMIN_JS, JS)):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.data == body
        assert r.headers["X-Flask"] == "1"  # Flask's static view answered
        assert r.headers.getlist("Cache-Control") == [IMMUTABLE]
        assert "Expires" not in r.headers
        r.close()
    r = client.get(f"/static/css/app.{'0' * 12}.css")
    assert r.status_code == 200 and r.data == CSS
    assert r.headers["Cache-Control"] == "no-store"
    r.close()


def test_url_for_in_python_code_and_outside_templates(project):
    app, ext = make_app(project)
    with app.test_request_context("/"):
        assert url_for("static", filename="css/app.css") == f"/static/css/app.{v(CSS)}.css"
        assert url_for("static", filename="css/app.css", _external=True) == (
            f"http://localhost/static/css/app.{v(CSS)}.css")
    with app.app_context():
        assert ext.url("js/app.js") == f"/static/js/app.{v(JS)}.js"
        assert ext.url("js/admin.js", "admin.static") == (
            f"/admin/admin_static/js/admin.{v(ADMIN_JS)}.js")


def test_relative_blueprint_endpoint(project):
    app = Flask("flask_test", root_path=str(project))
    shop = Blueprint("shop", "flask_test", root_path=str(project),
                     static_folder="admin_static", url_prefix="/shop")

    @shop.route("/")
    def index():
        return render_template_string("{{ url_for('.static', filename='js/admin.js') }}")

    app.register_blueprint(shop)
    Bustware(app)
    client = app.test_client()
    url = client.get("/shop/").data.decode()
    assert url == f"/shop/admin_static/js/admin.{v(ADMIN_JS)}.js"
    r = client.get(url)
    assert r.status_code == 200 and r.data == ADMIN_JS
    r.close()


def test_nested_blueprint_static_folder(project):
    app = Flask("flask_test", root_path=str(project))
    parent = Blueprint("parent", "flask_test", url_prefix="/p")
    child = Blueprint("child", "flask_test", root_path=str(project),
                      static_folder="admin_static", url_prefix="/c")
    parent.register_blueprint(child)
    app.register_blueprint(parent)
    Bustware(app)
    client = app.test_client()
    with app.test_request_context("/"):
        url = url_for("parent.child.static", filename="js/admin.js")
    assert url == f"/p/c/admin_static/js/admin.{v(ADMIN_JS)}.js"
    r = client.get(url)
    assert r.status_code == 200 and r.data == ADMIN_JS
    r.close()


def test_script_name_prefix(project):
    app, _ = make_app(project)
    client = app.test_client()
    page = client.get("/", base_url="http://localhost/mounted/")
    css = urls_of(page.data)[0]
    assert css == f"/mounted/static/css/app.{v(CSS)}.css"
    r = client.get(css[len("/mounted"):], base_url="http://localhost/mounted/")
    assert r.status_code == 200 and r.data == CSS
    assert r.headers["Cache-Control"] == IMMUTABLE
    r.close()


@pytest.mark.parametrize(("style", "expected"), [
    ("segment", "/static/{v}/css/app.css"),
    ("query", "/static/css/app.css?v={v}"),
])
def test_style_from_config(project, style, expected):
    app, _ = make_app(project, {"BUSTWARE_STYLE": style})
    client = app.test_client()
    css = urls_of(client.get("/").data)[0]
    assert css == expected.format(v=v(CSS))
    r = client.get(css)
    assert r.status_code == 200 and r.data == CSS
    assert r.headers["Cache-Control"] == IMMUTABLE
    r.close()


def test_keyword_arguments_win_over_config(project):
    app, _ = make_app(project, {"BUSTWARE_STYLE": "query"}, style="segment")
    with app.test_request_context("/"):
        assert url_for("static", filename="css/app.css") == f"/static/{v(CSS)}/css/app.css"


def test_release_option_from_config(project):
    app, _ = make_app(project, {"BUSTWARE_RELEASE": "r42", "BUSTWARE_STYLE": "segment"})
    with app.test_request_context("/"):
        assert url_for("static", filename="js/app.js") == "/static/r42/js/app.js"


def test_unknown_config_key_is_refused(project):
    with pytest.raises(ValueError, match="BUSTWARE_AUTOREFERSH"):
        make_app(project, {"BUSTWARE_AUTOREFERSH": True})


def test_unknown_keyword_is_refused(project):
    with pytest.raises(TypeError, match="autorefersh"):
        make_app(project, autorefersh=True)


def test_bad_option_value_names_it(project):
    with pytest.raises(ValueError, match="mode='rewrit'"):
        make_app(project, {"BUSTWARE_MODE": "rewrit"})


def test_init_app_twice_is_refused(project):
    app, ext = make_app(project)
    with pytest.raises(RuntimeError, match="already"):
        ext.init_app(app)


def test_autorefresh_follows_debug_unless_set(project):
    app, ext = make_app(project, {"DEBUG": True})
    with app.app_context():
        assert ext.assets().autorefresh is True
    app, ext = make_app(project, {"DEBUG": True, "BUSTWARE_AUTOREFRESH": False})
    with app.app_context():
        assert ext.assets().autorefresh is False
    app, ext = make_app(project)
    with app.app_context():
        assert ext.assets().autorefresh is False


def test_unknown_file_raises_when_strict(project):
    app, _ = make_app(project)
    with app.test_request_context("/"), pytest.raises(AssetNotFound, match=r"nope\.css"):
        url_for("static", filename="nope.css")


def test_unknown_file_gets_plain_url_when_not_strict(project):
    app, _ = make_app(project, {"BUSTWARE_STRICT": False})
    with app.test_request_context("/"):
        assert url_for("static", filename="nope.css") == "/static/nope.css"


def test_file_added_later_is_served_by_flask_at_its_plain_url(project):
    """missing='app' (the Flask default): what bustware does not know, Flask's
    static view serves as before."""
    app, _ = make_app(project)
    client = app.test_client()
    (project / "static" / "late.txt").write_bytes(b"late")
    r = client.get("/static/late.txt")
    assert r.status_code == 200 and r.data == b"late"
    assert r.headers["X-Flask"] == "1"
    r.close()


def test_plain_and_outdated_urls(project):
    app, _ = make_app(project)
    client = app.test_client()
    r = client.get("/static/css/app.css")
    assert r.status_code == 200 and r.data == CSS
    assert r.headers["Cache-Control"] == "no-cache"
    r.close()
    r = client.get(f"/static/css/app.{'f' * 12}.css")
    assert r.status_code == 200 and r.data == CSS
    assert r.headers["Cache-Control"] == "no-store"
    r.close()


def test_non_static_urls_untouched(project):
    app, _ = make_app(project)
    with app.test_request_context("/"):
        assert url_for("index") == "/"
        assert url_for("index", filename="x.css") == "/?filename=x.css"


def test_base_url_static_url_is_on_the_cdn_url_for_stays_on_the_app(project):
    app, _ = make_app(project, {"BUSTWARE_BASE_URL": "https://cdn.example.com"})
    client = app.test_client()
    css, _, js = urls_of(client.get("/").data)
    assert css == f"/static/css/app.{v(CSS)}.css"  # url_for: this app's host
    assert js == f"https://cdn.example.com/static/js/app.{v(JS)}.js"  # static_url: the CDN
    # The CDN pulls the same path from the app.
    r = client.get(js.removeprefix("https://cdn.example.com"))
    assert (r.status_code, r.data, r.headers["Cache-Control"]) == (200, JS, IMMUTABLE)
    r.close()


def test_debug_set_after_init_app_turns_development_mode_on(project):
    """app.run(debug=True) sets app.debug after init_app, before the first
    request: an edited stylesheet must then be served fresh."""
    app, _ = make_app(project, {"BUSTWARE_REFRESH_INTERVAL": 0})
    app.debug = True  # what app.run(debug=True) does
    client = app.test_client()
    css_url = urls_of(client.get("/").data)[0]
    r = client.get(css_url)
    assert r.data == CSS
    r.close()
    new = b"body { color: #456; margin: 0 }\n"
    (project / "static" / "css" / "app.css").write_bytes(new)
    css_url = urls_of(client.get("/").data)[0]
    assert css_url == f"/static/css/app.{v(new)}.css"
    r = client.get(css_url)
    assert r.status_code == 200 and r.data == new
    assert r.headers["Cache-Control"] == IMMUTABLE
    r.close()


def test_explicit_autorefresh_false_is_kept_when_debug_turns_on(project):
    app, ext = make_app(project, {"BUSTWARE_AUTOREFRESH": False})
    app.debug = True
    app.test_client().get("/").close()
    with app.app_context():
        assert ext.assets().autorefresh is False


def test_each_static_folder_uses_its_own_manifest(project):
    from bustware.build import build

    build(project / "static")  # static/.bustware/manifest.json, prefix /static/
    build(project / "admin_static", prefix="/admin/admin_static/")
    app, ext = make_app(project)
    with app.app_context():
        assert ext.assets().manifest_path == str(
            project / "static" / ".bustware" / "manifest.json")
        assert ext.assets("admin.static").manifest_path == str(
            project / "admin_static" / ".bustware" / "manifest.json")
    client = app.test_client()
    urls = urls_of(client.get("/").data)
    assert urls[:2] == [f"/static/css/app.{v(CSS)}.css",
                        f"/admin/admin_static/js/admin.{v(ADMIN_JS)}.js"]
    for url, data in zip(urls, (CSS, ADMIN_JS, JS)):
        r = client.get(url)
        assert r.status_code == 200 and r.data == data, url
        assert r.headers["Cache-Control"] == IMMUTABLE
        r.close()


def test_bustware_manifest_is_the_app_folders_with_a_blueprint_folder(project, tmp_path):
    """BUSTWARE_MANIFEST names the app's folder's manifest; the blueprint's
    folder is not made to load it (it was refused for its prefix)."""
    from bustware.build import build

    out = tmp_path / "build" / "manifest.json"
    build(project / "static", out)
    app, ext = make_app(project, {"BUSTWARE_MANIFEST": str(out)})
    with app.app_context():
        assert ext.assets().manifest_path == str(out)
        assert ext.assets("admin.static").manifest_path is None
    r = app.test_client().get(f"/static/css/app.{v(CSS)}.css")
    assert r.status_code == 200 and r.data == CSS
    r.close()
    # A mapping names the manifest of each endpoint.
    build(project / "admin_static", tmp_path / "admin" / "m.json",
          prefix="/admin/admin_static/")
    app, ext = make_app(project, {"BUSTWARE_MANIFEST": {
        "static": str(out), "admin.static": str(tmp_path / "admin" / "m.json")}})
    with app.app_context():
        assert ext.assets("admin.static").manifest_path == str(tmp_path / "admin" / "m.json")
    with pytest.raises(ValueError, match="'admin'"):
        make_app(project, {"BUSTWARE_MANIFEST": {"admin": str(out)}})
    # Debug: development mode, which scans the files.
    app, ext = make_app(project, {"BUSTWARE_MANIFEST": str(out), "DEBUG": True})
    with app.app_context():
        assert ext.assets().manifest_path is None and ext.assets().autorefresh is True
    # False: none, not even the folder's own.
    build(project / "static")
    app, ext = make_app(project, {"BUSTWARE_MANIFEST": False})
    with app.app_context():
        assert ext.assets().manifest_path is None


def test_missing_file_error_names_the_flask_config_key(project):
    app, _ = make_app(project)
    with app.test_request_context("/"), pytest.raises(AssetNotFound) as err:
        url_for("static", filename="nope.css")
    assert "app.config['BUSTWARE_STRICT'] = False" in str(err.value)
    assert "strict=False" not in str(err.value)


def test_stale_manifest_error_names_the_flask_config_key(project):
    from bustware.build import build
    from bustware.manifest import ManifestError

    build(project / "static")
    (project / "static" / "css" / "app.css").write_bytes(CSS + b"/* edited */")
    with pytest.raises(ManifestError) as err:
        make_app(project)
    assert "set app.config['BUSTWARE_MANIFEST_CHECK'] = 'warn'" in str(err.value)
    assert f"`bustware build {project / 'static'}`" in str(err.value)
