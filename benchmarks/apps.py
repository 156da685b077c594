"""The WSGI applications under test, built the same way in-process and in
servers.

Every implementation wraps the same bare application (the floor: it returns
the CSS file's bytes as a constant) and serves ``<site>/static`` at
``/static/``. The bare app marks its answers with ``X-Bench-App`` so that a
benchmark can tell "the static layer answered" from "it fell through to the
app".

Servers import this module as ``apps:application`` with ``BENCH_APP`` (an
implementation name) and ``BENCH_SITE`` (the site root) in the environment.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

BARE_MARK = "X-Bench-App"

#: Implementation name -> (module it needs, what to pip install).
IMPLEMENTATIONS = {
    "bare": (None, None),
    "bustware": ("bustware", "bustware"),
    "whitenoise": ("whitenoise", "whitenoise"),
    "servestatic": ("servestatic", "servestatic"),
    "werkzeug": ("werkzeug", "werkzeug"),
    "webob": ("webob", "webob"),
}


def missing(name: str) -> str | None:
    """Why ``name`` cannot run here, or None."""
    module, package = IMPLEMENTATIONS[name]
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{name}: not installed (pip install {package}, or pip install -e '.[bench]')"
    return None


def bare_app(body: bytes, headers: list[tuple[str, str]] | None = None) -> Callable:
    if headers is None:
        headers = [("Content-Type", "text/css; charset=utf-8"),
                   ("Content-Length", str(len(body)))]
    headers = [*headers, (BARE_MARK, "bare")]

    def bare(environ, start_response):
        # A copy, as bustware makes: servers may append to the list.
        start_response("200 OK", headers[:])
        return [body]

    return bare


class _Mount:
    """Hands ``/static/...`` to webob's DirectoryApp (rooted at the site, so
    it sees the full path) and everything else to the app: webob ships a
    static app, not a middleware."""

    def __init__(self, static_app, app, prefix: str) -> None:
        self.static_app = static_app
        self.app = app
        self.prefix = prefix

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(self.prefix):
            return self.static_app(environ, start_response)
        return self.app(environ, start_response)


def build(name: str, site_root: str | os.PathLike, app: Callable | None = None) -> Callable:
    """The implementation ``name`` serving ``<site_root>/static`` at /static/."""
    site_root = Path(site_root)
    static = site_root / "static"
    if app is None:
        app = bare_app((static / "css" / "app.css").read_bytes())
    if name == "bare":
        return app
    if name == "bare-headers":
        # The floor with bustware's header list: servers pay per header, so
        # this separates what the headers cost from what bustware's code does.
        from bustware import Bustware

        bust = Bustware(None, static, compress=False)
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": static_path("bustware", bust, "css/app.css")}
        seen = []
        body = b"".join(bust(env, lambda status, headers, exc_info=None: seen.extend(headers)))
        return bare_app(body, seen)
    if name == "bustware":
        from bustware import Bustware

        # compress=False: the others send the files as they are (the tree has
        # no precompressed files), and the checks compare identity bytes.
        return Bustware(app, static, compress=False)
    if name == "whitenoise":
        from whitenoise import WhiteNoise

        return WhiteNoise(app, root=str(static), prefix="/static/")
    if name == "servestatic":
        from servestatic import ServeStatic

        return ServeStatic(app, root=str(static), prefix="/static/")
    if name == "werkzeug":
        from werkzeug.middleware.shared_data import SharedDataMiddleware

        return SharedDataMiddleware(app, {"/static": str(static)})
    if name == "webob":
        from webob.static import DirectoryApp

        return _Mount(DirectoryApp(str(site_root), index_page=None), app, "/static/")
    raise ValueError(f"unknown implementation {name!r}: use one of {sorted(IMPLEMENTATIONS)}")


def static_path(name: str, app: Callable, logical: str) -> str:
    """The PATH_INFO a browser would request for ``logical`` from ``name``."""
    if name == "bustware":
        return app.url(logical).partition("?")[0]
    return "/static/" + logical


def outdated_path(logical: str) -> str:
    """A versioned URL of ``logical`` whose version is not the current one."""
    head, _, base = logical.rpartition("/")
    stem, _, suffix = base.rpartition(".")
    return f"/static/{head}/{stem}.0123456789ab.{suffix}"


if os.environ.get("BENCH_APP"):
    application = build(os.environ["BENCH_APP"], os.environ["BENCH_SITE"])
