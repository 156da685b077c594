"""Flask integration: ``url_for('static', filename=...)`` returns versioned
URLs, and the requests for them are answered.

>>> from bustware.flask import Bustware
>>> Bustware(app)                                            # doctest: +SKIP

or, in an application factory::

    bustware = Bustware()
    def create_app():
        app = Flask(__name__)
        bustware.init_app(app)
        return app

The templates keep their ``url_for('static', filename='css/app.css')``
calls: a ``url_defaults`` callback (Flask's documented hook for changing the
values a URL is built from) replaces ``filename`` by the versioned file name
(or adds the query parameter in the query style). Every static folder is
covered: the app's and those of its blueprints, each under its own URL.

Requests are answered by wrapping ``app.wsgi_app``: in ``mode="serve"``
(default) bustware sends the bytes itself; in ``mode="rewrite"`` it strips
the version and Flask's own static view sends them, with the cache policy set
by bustware.

Options come from keyword arguments or, for those not given, from
``app.config`` keys named ``BUSTWARE_`` + the option in upper case
(``BUSTWARE_MODE``, ``BUSTWARE_STYLE``, ``BUSTWARE_AUTOREFRESH``...). Keyword
arguments win. ``BUSTWARE_AUTOREFRESH`` defaults to ``app.debug`` (as Flask's
``TEMPLATES_AUTO_RELOAD`` follows debug), read again at the first request
because ``app.run(debug=True)`` sets it after ``init_app``; and
``BUSTWARE_MISSING`` to ``"app"``, so that a path bustware does not know is
handed to Flask's static view as before.

Each static folder has its own manifest: ``BUSTWARE_MANIFEST`` is the app's
folder's (or a dict ``{endpoint: path}``), and a folder with none given uses
its ``.bustware/manifest.json`` when it exists and development mode is off.
``BUSTWARE_STORE`` (``"s3://BUCKET/PREFIX"``) is the app's folder's shared
store likewise (or a dict ``{endpoint: url}``), used with its manifest.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from typing import Any

from flask import Flask, current_app, url_for

from .assets import Assets
from .keywords import did_you_mean
from .manifest import default_path
from .middleware import Bustware as _Middleware
from .urls import versioned_values

__all__ = ["Bustware"]

_KEY = "bustware"
_SUFFIX = "<path:filename>"


def _advice(name: str, value: Any) -> str:
    """How error messages name an option in Flask: its config key."""
    return f"set app.config[{'BUSTWARE_' + name.upper()!r}] = {value!r}"


def _keyword_options(*callables) -> tuple[str, ...]:
    names = []
    for func in callables:
        for param in inspect.signature(func).parameters.values():
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                names.append(param.name)
    return tuple(names)


#: Options of the index (one per static folder) and of the middleware.
ASSETS_OPTIONS = _keyword_options(Assets)
MIDDLEWARE_OPTIONS = _keyword_options(_Middleware)
OPTIONS = ASSETS_OPTIONS + MIDDLEWARE_OPTIONS


class _FlaskAssets(Assets):
    # A class attribute, not set after construction: messages raised while
    # loading a manifest name the config key too.
    option_advice = staticmethod(_advice)


class Bustware:
    """The Flask extension. ``Bustware(app, **options)`` or
    ``ext = Bustware(**options); ext.init_app(app)``."""

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        _check_names(options, "keyword argument")
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, **options: Any) -> None:
        _check_names(options, "keyword argument")
        if _KEY in app.extensions:
            raise RuntimeError(
                f"bustware: init_app() was already called for the app {app.name!r}; "
                "call it once per app"
            )
        state = _State(app, _resolve(app, {**self.options, **options}))
        app.extensions[_KEY] = state
        app.url_defaults(state.url_defaults)
        app.add_template_global(static_url, "static_url")
        app.wsgi_app = _Dispatch(state)  # type: ignore[method-assign]
        # Index what exists now (with gunicorn --preload, in the master);
        # blueprints registered later are indexed when first seen.
        state.discover()

    def assets(self, endpoint: str = "static", app: Flask | None = None) -> Assets:
        """The :class:`Assets` index of a static endpoint (``"static"``, or
        ``"<blueprint>.static"``) of ``app`` (default: the current app)."""
        return _state(app).assets_for(endpoint)

    def url(self, filename: str, endpoint: str = "static", app: Flask | None = None) -> str:
        """The versioned URL path of ``filename`` without a request context
        (no ``SCRIPT_NAME``, no host); in templates use ``url_for`` or
        ``static_url``."""
        return self.assets(endpoint, app).url(filename)


def static_url(filename: str, endpoint: str = "static", **values: Any) -> str:
    """Jinja global: ``{{ static_url('css/app.css') }}``, the same URL as
    ``url_for('static', filename='css/app.css')``; with ``BUSTWARE_BASE_URL``
    (a CDN), the URL on the CDN, which ``url_for`` cannot give (Flask builds
    its URLs on the app's own host)."""
    if not values:
        assets = _state(None).assets_for(endpoint)
        if assets.base_url:
            return assets.url(filename)
    return url_for(endpoint, filename=filename, **values)


class _State:
    """What bustware keeps per Flask app (in ``app.extensions['bustware']``)."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.app = app
        self.assets_options = {k: v for k, v in options.items() if k in ASSETS_OPTIONS}
        # app.run(debug=True) sets debug after init_app: unless autorefresh
        # was given, the indexes are remade with app.debug at the first
        # request (see finalize).
        self.follow_debug = self.assets_options.get("autorefresh") is None
        if self.follow_debug:
            self.assets_options["autorefresh"] = app.debug
        # One manifest per static folder: BUSTWARE_MANIFEST is the app's
        # folder's (or a mapping endpoint -> path); a folder without one uses
        # its own .bustware/manifest.json when it exists.
        manifest = self.assets_options.pop("manifest", None)
        # False: no manifest anywhere, not even one found in a folder.
        self.find_manifests = manifest is not False
        if manifest is None or manifest is False or isinstance(manifest, dict):
            self.manifests = dict(manifest or {})
        else:
            self.manifests = {"static": manifest}
        # BUSTWARE_STORE likewise: the app's folder's, or endpoint -> URL;
        # only for a folder served from a manifest (not in debug).
        store = self.assets_options.pop("store", None)
        self.stores = dict(store) if isinstance(store, dict) else (
            {} if store is None else {"static": store})
        self.middleware_options = {k: v for k, v in options.items() if k in MIDDLEWARE_OPTIONS}
        self.by_endpoint: dict[str, Assets] = {}
        # Asset -> (filename value, extra query value): weak, so that the
        # Assets a rescan replaced do not stay alive here.
        self.built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.lock = threading.Lock()
        # After the first request Flask refuses new routes, so one last
        # discovery then is final.
        self.final = False
        self.base = app.wsgi_app
        self.chain = app.wsgi_app

    def assets_for(self, endpoint: str) -> Assets:
        assets = self.by_endpoint.get(endpoint)
        if assets is None:
            self.discover()
            assets = self.by_endpoint.get(endpoint)
            if assets is None:
                raise LookupError(
                    f"bustware: {endpoint!r} is not a static endpoint of the app "
                    f"{self.app.name!r}; known: {sorted(self.by_endpoint)}"
                )
        return assets

    def url_defaults(self, endpoint: str, values: dict[str, Any]) -> None:
        """Flask's url_defaults callback: rewrite ``filename`` in place."""
        assets = self.by_endpoint.get(endpoint)
        if assets is None:
            if self.final or (endpoint != "static" and not endpoint.endswith(".static")):
                return
            self.discover()
            assets = self.by_endpoint.get(endpoint)
            if assets is None:
                return
        filename = values.get("filename")
        if not isinstance(filename, str):
            return
        versioned_values(assets, self.built, filename, values)

    def discover(self) -> None:
        """Index every static folder the app routes to and not yet indexed."""
        with self.lock:
            app = self.app
            added = False
            for rule in app.url_map.iter_rules():
                endpoint = rule.endpoint
                if endpoint in self.by_endpoint or not rule.rule.endswith("/" + _SUFFIX):
                    continue
                # Flask names the static routes "static" and "<blueprint>.static".
                if endpoint == "static":
                    owner: Any = app
                elif endpoint.endswith(".static"):
                    owner = app.blueprints.get(endpoint[: -len(".static")])
                else:
                    continue
                if owner is None or not owner.has_static_folder:
                    continue
                folder = owner.static_folder
                prefix = rule.rule[: -len(_SUFFIX)]
                self.by_endpoint[endpoint] = self._index(endpoint, folder, prefix)
                added = True
            if added:
                self._build_chain()

    def _index(self, endpoint: str, folder: str, prefix: str) -> Assets:
        options = dict(self.assets_options)
        manifest = self.manifests.get(endpoint)
        if options["autorefresh"] and self.follow_debug:
            # Debug decides: development rescans the files; a manifest is
            # the production snapshot.
            manifest = None
        elif manifest is None and not options["autorefresh"] and self.find_manifests:
            found = default_path(folder)
            if os.path.isfile(found):
                manifest = found
        if manifest is not None:
            options["manifest"] = manifest
            if endpoint in self.stores:
                options["store"] = self.stores[endpoint]
        return _FlaskAssets(folder, prefix, **options)

    def _build_chain(self) -> None:
        chain = self.base
        # The longest prefix looks first, so a blueprint's static URL under
        # the app's static prefix is not taken for a file of the app's.
        for assets in sorted(self.by_endpoint.values(), key=lambda a: len(a.prefix)):
            chain = _Middleware(chain, assets, **self.middleware_options)
        self.chain = chain

    def finalize(self) -> None:
        if self.follow_debug and self.assets_options["autorefresh"] != self.app.debug:
            with self.lock:
                self.assets_options["autorefresh"] = self.app.debug
                self.by_endpoint = {}
                self.built = weakref.WeakKeyDictionary()
        self.discover()
        self.final = True


class _Dispatch:
    """Replaces ``app.wsgi_app``: the bustware middlewares, then Flask."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def __call__(self, environ: dict, start_response):
        state = self.state
        if not state.final:
            state.finalize()
        return state.chain(environ, start_response)


def _state(app: Flask | None) -> _State:
    app = app if app is not None else current_app
    try:
        return app.extensions[_KEY]
    except KeyError:
        raise RuntimeError(
            f"bustware: the app {app.name!r} has no bustware; call Bustware(app) or "
            "init_app(app) first"
        ) from None


def _check_names(options: dict[str, Any], what: str) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"bustware: unknown {what} {', '.join(unknown)}{did_you_mean(unknown, OPTIONS)}; "
            f"the options are {', '.join(OPTIONS)} (root and prefix come from the app's "
            "static folders)"
        )


def _resolve(app: Flask, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments, then ``BUSTWARE_*`` keys of ``app.config``."""
    unknown = sorted(
        key for key in app.config
        if key.startswith("BUSTWARE_") and key[len("BUSTWARE_"):].lower() not in OPTIONS
    )
    if unknown:
        raise ValueError(
            f"bustware: unknown config key {', '.join(unknown)} in app.config"
            f"{did_you_mean(unknown, ['BUSTWARE_' + o.upper() for o in OPTIONS])}; the keys are "
            f"{', '.join('BUSTWARE_' + o.upper() for o in OPTIONS)}"
        )
    resolved: dict[str, Any] = {"missing": "app"}
    for name in OPTIONS:
        key = "BUSTWARE_" + name.upper()
        if key in app.config:
            resolved[name] = app.config[key]
    resolved.update(options)
    manifest = resolved.get("manifest")
    if isinstance(manifest, dict):
        bad = sorted(k for k in manifest if k != "static" and not k.endswith(".static"))
        if bad:
            raise ValueError(
                f"bustware: BUSTWARE_MANIFEST keys {bad!r} are not static endpoints; use "
                "'static' for the app's folder and '<blueprint>.static' for a blueprint's"
            )
    return resolved
