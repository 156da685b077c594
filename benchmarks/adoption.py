"""Adoption comparison: bustware against the incumbent of each framework.

    python3 benchmarks/adoption.py            # prints the tables as Markdown
    python3 benchmarks/adoption.py --json out.json

Three figures (see benchmarks/README.md, "Adoption"):

- **bytes on the wire**: the static files of the same five page views (the
  Django admin's own CSS, JavaScript and the images its stylesheets name),
  fetched by a simulated browser that sends ``Accept-Encoding: gzip, deflate,
  br, zstd``, follows ``url()`` in stylesheets and caches as the response
  headers allow (bodies plus header lines; the HTML pages are not counted);
- **static requests across five page views in development** (``DEBUG``):
  how many requests that browser makes, 304s included;
- **time to first response with 2,000 files**: from before the app is made
  (modules imported) to the end of its first static response, in a fresh
  process; the median of three.

Each configuration runs in a child process of its own (Django's settings are
per process). Django pages are rendered by Django with ``{% static %}``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from urllib.parse import urljoin, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_BASE = ["admin/css/base.css", "admin/css/dark_mode.css", "admin/js/theme.js",
         "admin/css/nav_sidebar.css", "admin/js/nav_sidebar.js", "admin/css/responsive.css"]
_ADMIN_JS = ["admin/js/vendor/jquery/jquery.js", "admin/js/jquery.init.js", "admin/js/core.js",
             "admin/js/admin/RelatedObjectLookups.js", "admin/js/actions.js",
             "admin/js/urlify.js", "admin/js/prepopulate.js",
             "admin/js/vendor/xregexp/xregexp.js"]
#: The static files of three admin pages, as Django 5.2's templates name them.
PAGES = {
    "login": [*_BASE, "admin/css/login.css"],
    "changelist": [*_BASE, "admin/css/changelists.css", "admin/css/forms.css", *_ADMIN_JS,
                   "admin/js/filters.js"],
    "change_form": [*_BASE, "admin/css/forms.css", "admin/css/widgets.css", *_ADMIN_JS,
                    "admin/js/calendar.js", "admin/js/admin/DateTimeShortcuts.js",
                    "admin/js/change_form.js", "admin/js/prepopulate_init.js",
                    "admin/js/inlines.js", "admin/js/SelectBox.js",
                    "admin/js/SelectFilter2.js"],
}
#: The five page views of a visit.
VISIT = ["login", "changelist", "change_form", "changelist", "change_form"]
BROWSER = {"Accept-Encoding": "gzip, deflate, br, zstd", "Accept": "*/*"}
_URL_IN_CSS = re.compile(rb"""url\(\s*['"]?([^'")\s]+)""")
_URL_IN_HTML = re.compile(r"""(?:href|src)="([^"]+)\"""")


# -- the simulated browser ---------------------------------------------------

def _decode(body: bytes, coding: str | None) -> bytes:
    if not coding:
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        import brotli

        return brotli.decompress(body)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


def _fresh(headers: dict) -> bool:
    """Whether a cached response may be reused without asking (within the
    few seconds of a visit): immutable, or a max-age of a minute or more."""
    cc = headers.get("cache-control", "").lower()
    if not cc and "expires" not in headers:
        # Heuristic freshness (RFC 9111 4.2.2): browsers keep a response
        # without Cache-Control for a tenth of its Last-Modified age, days
        # for files of a release months old.
        return "last-modified" in headers
    if "no-cache" in cc or "no-store" in cc:
        return False
    if "immutable" in cc:
        return True
    m = re.search(r"max-age=(\d+)", cc)
    return bool(m) and int(m.group(1)) >= 60


class Browser:
    """Fetches a page's static files as a browser does, with a cache."""

    def __init__(self, client) -> None:
        self.client = client
        self.cache: dict[str, dict] = {}
        self.requests = 0
        self.bytes = 0  # bodies and header lines
        self.body_bytes = 0

    def view(self, page_url: str) -> None:
        self.seen: set[str] = set()  # a page load asks for a URL once
        resp = self.client.get(page_url)
        html = resp.get_data(as_text=True)
        resp.close()
        assert resp.status_code == 200, (page_url, resp.status_code, html[:300])
        for url in _URL_IN_HTML.findall(html):
            self.fetch(url)

    def fetch(self, url: str) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        cached = self.cache.get(url)
        if cached is not None and _fresh(cached):
            self._follow(url, cached)
            return
        headers = dict(BROWSER)
        if cached is not None and "etag" in cached:
            headers["If-None-Match"] = cached["etag"]
        elif cached is not None and "last-modified" in cached:
            headers["If-Modified-Since"] = cached["last-modified"]
        parts = urlsplit(url)
        resp = self.client.get(parts.path, query_string=parts.query, headers=headers)
        body = resp.get_data()
        resp.close()
        self.requests += 1
        got = {k.lower(): v for k, v in resp.headers.items()}
        self.body_bytes += len(body)
        self.bytes += len(body) + sum(len(k) + len(v) + 4 for k, v in resp.headers.items())
        if resp.status_code == 304:
            # The cached stylesheet is used, and what it names loaded again.
            got = cached
        else:
            assert resp.status_code == 200, (url, resp.status_code, body[:200])
            if got.get("content-type", "").startswith("text/css"):
                got[" css"] = _decode(body, got.get("content-encoding"))
            self.cache[url] = got
        self._follow(url, got)

    def _follow(self, url: str, cached: dict) -> None:
        """Load what a stylesheet names, as its page load does."""
        for ref in _URL_IN_CSS.findall(cached.get(" css", b"")):
            ref = ref.decode()
            if not ref.startswith(("data:", "#")):
                self.fetch(urljoin(url, ref))


# -- Django: one configuration per child process -----------------------------

DJANGO_CONFIGS = {
    # name: (incumbent?, DEBUG, description)
    "bustware": "bustware, the README's Django section, no build step",
    "bustware-built": "bustware with `bustware build --compress br,gzip` and its manifest",
    "whitenoise": "WhiteNoise, documented setup (CompressedManifestStaticFilesStorage)",
}


def _django_child(config: str, work: Path, debug: bool) -> dict:
    import django
    from django.conf import settings

    whitenoise = config.startswith("whitenoise")
    static_root = work / f"collected-{config}"
    apps = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
            "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles"]
    options: dict = {}
    if whitenoise:
        # whitenoise.runserver_nostatic first, as its documentation says.
        apps.insert(0, "whitenoise.runserver_nostatic")
        storage = "whitenoise.storage.CompressedManifestStaticFilesStorage"
    else:
        apps.append("bustware")
        storage = "bustware.django.BustwareStorage"
        if config == "bustware-built" and not debug:
            options["manifest"] = str(static_root / ".bustware" / "manifest.json")
    urls = types.ModuleType("adoption_urls")
    sys.modules["adoption_urls"] = urls
    settings.configure(
        DEBUG=debug, SECRET_KEY="adoption-benchmark", ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=apps, ROOT_URLCONF="adoption_urls",
        MIDDLEWARE=["whitenoise.middleware.WhiteNoiseMiddleware"] if whitenoise else [],
        STATIC_URL="/static/", STATIC_ROOT=str(static_root),
        STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                  "staticfiles": {"BACKEND": storage}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True}],
        DATABASES={}, BUSTWARE=options, LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpResponse
    from django.template import engines
    from django.urls import path
    from werkzeug.test import Client

    if not debug:  # production: collectstatic (and the build) first
        shutil.rmtree(static_root, ignore_errors=True)
        call_command("collectstatic", interactive=False, verbosity=0)
        if config == "bustware-built":
            subprocess.run([sys.executable, "-m", "bustware", "build", str(static_root),
                            "--compress", "br,gzip", "--quiet"], check=True)
    engine = engines["django"]

    def page(request, name):
        tags = "\n".join(
            (f'<link rel="stylesheet" href="{{% static "{p}" %}}">' if p.endswith(".css")
             else f'<script src="{{% static "{p}" %}}"></script>') for p in PAGES[name])
        return HttpResponse(engine.from_string("{% load static %}\n" + tags).render())

    urls.urlpatterns = [path("page/<str:name>/", page)]
    application = get_wsgi_application()
    if not whitenoise:
        import bustware.django

        application = bustware.django.wrap(application)
    browser = Browser(Client(application))
    per_view = []
    for name in VISIT:
        before = browser.requests
        browser.view(f"/page/{name}/")
        per_view.append(browser.requests - before)
    # Bytes of the first view of each page (an empty cache), the figure the
    # issue compares; requests of the whole visit.
    first = Browser(Client(application))
    for name in PAGES:
        first.view(f"/page/{name}/")
    return {"bytes": first.bytes, "body_bytes": first.body_bytes, "requests": first.requests,
            "visit_requests": per_view, "visit_bytes": browser.bytes}


# -- Flask and Pyramid ---------------------------------------------------------

def _pages_html(url_for) -> dict[str, str]:
    return {name: "\n".join(f'<link href="{url_for(p)}">' if p.endswith(".css")
                            else f'<script src="{url_for(p)}"></script>' for p in paths)
            for name, paths in PAGES.items()}


def _flask_child(config: str, work: Path, debug: bool) -> dict:
    from flask import Flask, url_for
    from werkzeug.test import Client

    static = work / "flask-static"
    if not static.exists():
        shutil.copytree(_admin_static_parent(), static)
    app = Flask(__name__, static_folder=str(static), static_url_path="/static")
    app.debug = debug
    if config == "bustware":
        from bustware.flask import Bustware

        ext = Bustware(app)
        link = ext.url
    elif config == "flask-static-digest":
        from flask_static_digest import FlaskStaticDigest

        if not debug:  # its build step: flask digest compile
            subprocess.run(["flask", "--app", "adoption:_fsd_app", "digest", "compile"],
                           check=True, cwd=HERE, capture_output=True,
                           env={**os.environ, "ADOPTION_STATIC": str(static)})
        digest = FlaskStaticDigest(app)

        def link(p: str) -> str:
            return digest.static_url_for("static", filename=p)
    else:
        def link(p: str) -> str:
            return url_for("static", filename=p)

    @app.route("/page/<name>/")
    def page(name):
        return _pages_html(link)[name]

    return _visit(Client(app))


def _fsd_app():
    """The app ``flask digest compile`` loads."""
    from flask import Flask
    from flask_static_digest import FlaskStaticDigest

    app = Flask(__name__, static_folder=os.environ["ADOPTION_STATIC"], static_url_path="/static")
    FlaskStaticDigest(app)
    return app


def _pyramid_child(config: str, work: Path, debug: bool) -> dict:
    from pyramid.config import Configurator
    from pyramid.response import Response
    from werkzeug.test import Client

    static = str(_admin_static_parent())
    with Configurator(settings={"bustware.autorefresh": str(debug).lower(),
                                "pyramid.reload_assets": str(debug).lower()}) as config_:
        if config == "bustware":
            config_.include("bustware.pyramid")
            config_.add_bustware_static_view("static", static)
        else:
            from pyramid.static import QueryStringConstantCacheBuster

            # The cache buster Pyramid documents for a start: one token per
            # process start, with the view's default cache_max_age (3600 s).
            config_.add_static_view("static", static)
            config_.add_cache_buster(static, QueryStringConstantCacheBuster(str(int(time.time()))))

        def page(request):
            html = _pages_html(lambda p: request.static_path(f"{static}/{p}"))
            return Response(html[request.matchdict["name"]])

        config_.add_route("page", "/page/{name}/")
        config_.add_view(page, route_name="page")
        app = config_.make_wsgi_app()
    return _visit(Client(app))


def _visit(client) -> dict:
    browser = Browser(client)
    per_view = []
    for name in VISIT:
        before = browser.requests
        browser.view(f"/page/{name}/")
        per_view.append(browser.requests - before)
    first = Browser(client)
    for name in PAGES:
        first.view(f"/page/{name}/")
    return {"bytes": first.bytes, "body_bytes": first.body_bytes, "requests": first.requests,
            "visit_requests": per_view, "visit_bytes": browser.bytes}


def _admin_static_parent() -> Path:
    import django

    return Path(django.__file__).parent / "contrib" / "admin" / "static"


# -- time to first response with 2,000 files ---------------------------------

FIRST_RESPONSE = {
    "bustware": "bustware `Bustware(app, root)`",
    "whitenoise": "WhiteNoise `WhiteNoise(app, root=root)` (the Django incumbent)",
    "flask": "Flask's static view (the Flask incumbent: Flask-Static-Digest adds a build step)",
    "pyramid": "Pyramid `add_static_view` with a `QueryStringConstantCacheBuster`",
}


def _first_child(kind: str, root: Path) -> dict:
    from werkzeug.test import Client

    target = sorted(str(p.relative_to(root)) for p in root.rglob("*.css"))[0]

    def bare(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    if kind == "bustware":
        from bustware import Bustware

        start = time.perf_counter()
        app = Bustware(bare, root)
        url = app.url(target)
    elif kind == "whitenoise":
        from whitenoise import WhiteNoise

        start = time.perf_counter()
        app = WhiteNoise(bare, root=str(root), prefix="/static/")
        url = f"/static/{target}"
    elif kind == "flask":
        from flask import Flask, url_for

        start = time.perf_counter()
        app = Flask(__name__, static_folder=str(root), static_url_path="/static")
        with app.test_request_context():
            url = url_for("static", filename=target)
    else:
        from pyramid.config import Configurator
        from pyramid.request import Request
        from pyramid.static import QueryStringConstantCacheBuster

        start = time.perf_counter()
        with Configurator() as config:
            config.add_static_view("static", str(root))
            config.add_cache_buster(str(root), QueryStringConstantCacheBuster("1"))
            app = config.make_wsgi_app()
        req = Request.blank("/")
        req.registry = app.registry
        url = req.static_path(f"{root}/{target}")
    parts = urlsplit(url)
    resp = Client(app).get(parts.path, query_string=parts.query, headers=BROWSER)
    body = resp.get_data()
    resp.close()
    elapsed = time.perf_counter() - start
    assert resp.status_code == 200 and body, (kind, url, resp.status_code)
    return {"seconds": elapsed}


def first_response(work: Path, files: int, rounds: int, skipped: list[str]) -> dict:
    sys.path.insert(0, str(HERE))
    import tree

    # 2,000 files of 20 MB, made as the startup benchmark's tree.
    root = tree.startup_tree(work, files, files * 0.01).root
    out = {}
    for kind in FIRST_RESPONSE:
        try:
            times = [_run_child("first", kind, root, False)["seconds"] for _ in range(rounds)]
        except RuntimeError as exc:
            skipped.append(f"adoption first response {kind}: "
                           f"{str(exc).strip().splitlines()[-1]}")
            continue
        out[kind] = statistics.median(times)
    return out


# -- running the children ------------------------------------------------------

def _run_child(framework: str, config: str, work: Path, debug: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT),
                                                         os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTHONDEVMODE", None)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", framework, config,
         str(work), "1" if debug else "0"],
        capture_output=True, text=True, env=env, cwd=work, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{framework} {config}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(work: Path, files: int = 2000, rounds: int = 3) -> dict:
    """Every row; a configuration that cannot run (a package missing) is
    left out with a line in ``skipped``."""
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"django": {}, "flask": {}, "pyramid": {}, "skipped": []}
    runs = [("django", c, False) for c in DJANGO_CONFIGS]
    runs += [("django", c, True) for c in ("bustware", "whitenoise")]
    runs += [(f, c, d) for f, configs in (("flask", ("bustware", "flask-static-digest", "flask")),
                                          ("pyramid", ("bustware", "pyramid")))
             for c in configs for d in (False, True)]
    for framework, config, debug in runs:
        try:
            results[framework][config + ("-dev" if debug else "")] = \
                _run_child(framework, config, work, debug)
        except RuntimeError as exc:
            last = str(exc).strip().splitlines()[-1]
            results["skipped"].append(f"adoption {framework} {config}: {last}")
    results["first_response"] = first_response(work, files, rounds, results["skipped"])
    results["files"] = files
    results["rounds"] = rounds
    return results


def markdown(results: dict) -> str:
    rows = ["| framework | setup | KB on the wire, 3 pages | of which bodies "
            "| static requests, 5 views in development |", "| --- | --- | --: | --: | --: |"]
    labels = {"bustware": "bustware, no build step",
              "bustware-built": "bustware, `bustware build --compress br,gzip`",
              "whitenoise": "WhiteNoise, `CompressedManifestStaticFilesStorage`",
              "flask-static-digest": "Flask-Static-Digest (`flask digest compile`)",
              "flask": "Flask's static view", "pyramid": "Pyramid, query-string cache buster"}
    for framework in ("django", "flask", "pyramid"):
        table = results[framework]
        for config, row in table.items():
            if config.endswith("-dev"):
                continue
            dev = table.get(f"{config}-dev")
            views = dev["visit_requests"] if dev else None
            requests = f"{sum(views)} ({'+'.join(map(str, views))})" if views else "-"
            rows.append(f"| {framework.title()} | {labels[config]} | {row['bytes'] / 1000:,.1f}"
                        f" | {row['body_bytes'] / 1000:,.1f} | {requests} |")
    rows += ["", f"Time to first response, {results['files']:,} files (median of "
             f"{results['rounds']} processes):",
             "", "| server | seconds |", "| --- | --: |"]
    for kind, seconds in results["first_response"].items():
        rows.append(f"| {FIRST_RESPONSE[kind]} | {seconds:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        framework, config, work, debug = argv[1], argv[2], Path(argv[3]), argv[4] == "1"
        child = {"django": _django_child, "flask": _flask_child,
                 "pyramid": _pyramid_child, "first": _first_child}[framework]
        result = child(config, work) if framework == "first" else child(config, work, debug)
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=HERE / ".work" / "adoption")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = measure(args.work.resolve(), args.files, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    for line in results["skipped"]:
        print(f"skipped: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
