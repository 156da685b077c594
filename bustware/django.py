"""Django integration.

``wsgi.py`` (or ``asgi.py``, with ``get_asgi_application()``)::

    application = bustware.django.wrap(get_wsgi_application())

``settings.py``::

    INSTALLED_APPS += ["bustware"]      # the {% load bustware %} tag library
    STORAGES = {..., "staticfiles": {"BACKEND": "bustware.django.BustwareStorage"}}
    BUSTWARE = {"mode": "serve"}        # optional: any bustware option

What is indexed: ``STATIC_ROOT`` (fill it with ``collectstatic``), or, when
``use_finders`` is true (default: ``DEBUG``), the directories Django's
staticfiles finders search: ``STATICFILES_DIRS`` in order, then each
installed app's ``static/`` directory in ``INSTALLED_APPS`` order, the first
match winning as with ``findstatic``. The URL prefix is the path of
``STATIC_URL``; when ``STATIC_URL`` names a host (a CDN pulling from this
app), the URLs carry that host and the middleware serves the path.

``BUSTWARE`` is a dict of the keyword arguments of :class:`bustware.Bustware`
and :class:`bustware.Assets` (``mode``, ``style``, ``autorefresh``...), plus
``root`` (a directory or list: overrides the choice above) and
``use_finders``. ``autorefresh`` defaults to ``DEBUG``. Under Django's test
runner (``manage.py test``, pytest-django), which turns ``DEBUG`` off,
``use_finders`` is also true while ``STATIC_ROOT`` is unset or missing: tests
run on a fresh checkout, before any ``collectstatic``.

One index serves the whole process: the middleware, the template tag, the
storage and the development handler (:class:`BustwareStaticFilesHandler`,
used by ``manage.py runserver`` and ``StaticLiveServerTestCase`` once
``"bustware"`` is in ``INSTALLED_APPS``) all ask :func:`get_assets`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import threading
from typing import Any, Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.contrib.staticfiles.storage import StaticFilesStorage
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .assets import AssetNotFound, Assets
from .keywords import did_you_mean
from .middleware import Bustware

__all__ = ["BustwareStaticFilesHandler", "BustwareStorage", "get_assets", "options", "url",
           "wrap"]

log = logging.getLogger("bustware")


def _keyword_options(*callables) -> tuple[str, ...]:
    return tuple(
        p.name for func in callables for p in inspect.signature(func).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    )


ASSETS_OPTIONS = _keyword_options(Assets)
MIDDLEWARE_OPTIONS = _keyword_options(Bustware)
#: The keys of the ``BUSTWARE`` setting.
OPTIONS = ("root", "use_finders", *ASSETS_OPTIONS, *MIDDLEWARE_OPTIONS)

# Settings whose change (under override_settings in tests) invalidates the index.
_WATCHED = frozenset({"BUSTWARE", "DEBUG", "STATIC_ROOT", "STATIC_URL", "STATICFILES_DIRS",
                      "STATICFILES_FINDERS", "INSTALLED_APPS"})

_lock = threading.Lock()
_assets: Assets | None = None


def options() -> dict[str, Any]:
    """The ``BUSTWARE`` setting, checked, with the Django defaults filled in."""
    given = getattr(settings, "BUSTWARE", {})
    if not isinstance(given, dict):
        raise ImproperlyConfigured(
            f"bustware: settings.BUSTWARE={given!r} must be a dict of options, "
            "e.g. {'mode': 'serve'}"
        )
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ImproperlyConfigured(
            f"bustware: unknown key {', '.join(map(repr, unknown))} in settings.BUSTWARE"
            f"{did_you_mean(unknown, OPTIONS)}; "
            f"the keys are {', '.join(OPTIONS)}"
        )
    resolved = dict(given)
    if resolved.get("autorefresh") is None:
        resolved["autorefresh"] = settings.DEBUG
    if resolved.get("use_finders") is None:
        resolved["use_finders"] = settings.DEBUG or (
            _under_test_runner() and not _static_root_exists())
    return resolved


def get_assets() -> Assets:
    """The process-wide index, built on first use from the settings."""
    global _assets
    assets = _assets
    if assets is not None:
        return assets
    with _lock:
        if _assets is None:
            opts = options()
            origin, prefix = _static_url()
            assets_options = {k: v for k, v in opts.items() if k in ASSETS_OPTIONS}
            if origin:
                if opts.get("base_url"):
                    raise ImproperlyConfigured(
                        f"bustware: STATIC_URL={settings.STATIC_URL!r} already names a "
                        "host; drop BUSTWARE['base_url'] (or make STATIC_URL a path)"
                    )
                assets_options["base_url"] = origin
            assets = Assets(_roots(opts), prefix, **assets_options)
            # Error messages name the Django setting, not a keyword argument.
            assets.option_advice = lambda name, value: (  # type: ignore[method-assign]
                f"set BUSTWARE = {{{name!r}: {value!r}}} in settings.py")
            _assets = assets
        return _assets


def url(path: str) -> str:
    """The versioned URL of ``path`` (relative to the static roots)."""
    try:
        return get_assets().url(path)
    except AssetNotFound:
        # The index's message names a Python argument; a Django user needs
        # the setting, and where the files were looked for.
        raise AssetNotFound(_missing_message(path)) from None


def wrap(application: Callable, **overrides: Any) -> Any:
    """Wrap Django's WSGI application (a :class:`Bustware`) or its ASGI one
    (``get_asgi_application()``: a :class:`bustware.BustwareASGI`):
    versioned URLs under ``STATIC_URL`` are answered by bustware
    (``mode="serve"``), or stripped of their version and passed to Django's
    static view (``mode="rewrite"``). ``overrides`` win over
    ``settings.BUSTWARE``."""
    unknown = sorted(set(overrides) - set(MIDDLEWARE_OPTIONS))
    if unknown:
        raise TypeError(
            f"bustware: wrap() got unknown option {', '.join(unknown)}"
            f"{did_you_mean(unknown, MIDDLEWARE_OPTIONS)}; it takes "
            f"{', '.join(MIDDLEWARE_OPTIONS)} (index options go in settings.BUSTWARE)"
        )
    opts = {k: v for k, v in options().items() if k in MIDDLEWARE_OPTIONS}
    opts.update(overrides)
    if _is_asgi(application):
        from .asgi import BustwareASGI

        return BustwareASGI(application, get_assets(), **opts)
    return Bustware(application, get_assets(), **opts)


def _is_asgi(application: Callable) -> bool:
    # Django's ASGIHandler is an object with an async __call__; a WSGI
    # application never is a coroutine function.
    import inspect

    return (inspect.iscoroutinefunction(application)
            or inspect.iscoroutinefunction(type(application).__call__))


class BustwareStorage(StaticFilesStorage):
    """A staticfiles storage whose ``url()`` is the bustware URL, so that the
    built-in ``{% static %}`` tag returns versioned URLs. Saving and
    ``collectstatic`` behave as :class:`StaticFilesStorage` (plain names
    in ``STATIC_ROOT``: the version is in the URL only)."""

    def url(self, name: str | None) -> str:
        if name is None:
            return super().url(name)
        return url(name)


class BustwareStaticFilesHandler(StaticFilesHandler):
    """Django's development static handler with bustware in front: versioned
    URLs (and plain ones) of the indexed files are answered as in production
    (``wrap()``, so ``settings.BUSTWARE`` applies), and any other path under
    ``STATIC_URL`` goes on to Django's handler (the finders), as without
    bustware. bustware's ``runserver`` command and, once the app is ready,
    ``StaticLiveServerTestCase`` use it."""

    def __init__(self, application: Callable) -> None:
        super().__init__(application)
        self._served: tuple[Assets, Bustware] | None = None
        self._bustware()  # bad settings fail at start, not on a request

    def _bustware(self) -> Bustware:
        # The index is rebuilt when override_settings changes what it
        # depends on (a live server outlives a test's settings): follow it.
        assets = get_assets()
        served = self._served
        if served is None or served[0] is not assets:
            # Django's handler for what bustware does not index.
            django_handler = functools.partial(StaticFilesHandler.__call__, self)
            served = (assets, wrap(django_handler, missing="app"))
            self._served = served
        return served[1]

    def __call__(self, environ: dict, start_response: Callable):
        return self._bustware()(environ, start_response)


def _missing_message(path: str) -> str:
    opts = options()
    assets = get_assets()
    roots = [os.fspath(r) for r in assets.roots]
    if opts.get("root") is not None:
        where = f"BUSTWARE['root'] {roots!r}"
    elif opts["use_finders"]:
        where = f"the staticfiles finders' directories {roots!r}"
    else:
        where = (f"STATIC_ROOT {roots[0]!r} (run 'manage.py collectstatic' if the file "
                 "is new)")
    return (
        f"bustware: no static file {path!r} in {where}. Paths are relative to the "
        "static directories, with '/' separators (e.g. 'css/app.css'). To get the "
        f"plain URL instead of this error, {assets.option_advice('strict', False)}."
    )


def _under_test_runner() -> bool:
    """Whether Django's setup_test_environment() is in effect (manage.py
    test, pytest-django). Django keeps what it will restore on the private
    _TestState, and offers no public way to ask; sys.modules, as this is
    asked without importing django.test."""
    utils = sys.modules.get("django.test.utils")
    return utils is not None and hasattr(getattr(utils, "_TestState", None), "saved_data")


def _static_root_exists() -> bool:
    return bool(settings.STATIC_ROOT) and os.path.isdir(settings.STATIC_ROOT)


def _static_url() -> tuple[str, str]:
    static_url = settings.STATIC_URL
    if not static_url:
        raise ImproperlyConfigured(
            "bustware: settings.STATIC_URL is not set; set it to the URL prefix of the "
            "static files, e.g. 'static/'"
        )
    parts = urlsplit(static_url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    if parts.netloc and not parts.scheme:
        origin = f"//{parts.netloc}"
    return origin, path


def _roots(opts: dict[str, Any]) -> list[str]:
    root = opts.get("root")
    if root is not None:
        return [root] if isinstance(root, (str, os.PathLike)) else list(root)
    if opts["use_finders"]:
        roots = _finder_roots()
        if not roots:
            raise ImproperlyConfigured(
                "bustware: the staticfiles finders name no existing directory "
                "(STATICFILES_DIRS, or a static/ directory in an installed app); "
                "add one, or set BUSTWARE['root']"
            )
        return roots
    static_root = settings.STATIC_ROOT
    if not static_root:
        raise ImproperlyConfigured(
            "bustware: settings.STATIC_ROOT is not set; set it and run "
            "'manage.py collectstatic', or set BUSTWARE['use_finders'] = True to index "
            "STATICFILES_DIRS and the apps' static/ directories (development)"
        )
    if not os.path.isdir(static_root):
        raise ImproperlyConfigured(
            f"bustware: STATIC_ROOT {os.fspath(static_root)!r} does not exist; run "
            "'manage.py collectstatic' first"
        )
    return [static_root]


def _finder_roots() -> list[str]:
    from django.contrib.staticfiles.finders import (
        AppDirectoriesFinder,
        FileSystemFinder,
        get_finders,
    )

    roots: list[str] = []
    for finder in get_finders():
        if isinstance(finder, FileSystemFinder):
            for prefix, root in finder.locations:
                if prefix:
                    raise ImproperlyConfigured(
                        f"bustware: STATICFILES_DIRS entry ({prefix!r}, {root!r}) has a "
                        "prefix, which bustware cannot index in place; run collectstatic "
                        "and serve STATIC_ROOT (use_finders=False), or drop the prefix"
                    )
                if os.path.isdir(root):
                    roots.append(os.fspath(root))
        elif isinstance(finder, AppDirectoriesFinder):
            for app in finder.apps:
                location = finder.storages[app].location
                if os.path.isdir(location):
                    roots.append(location)
        else:
            log.warning("bustware: the staticfiles finder %s is not indexed; run "
                        "collectstatic and serve STATIC_ROOT to include its files",
                        type(finder).__name__)
    return roots


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _assets
    if setting in _WATCHED:
        with _lock:
            _assets = None


setting_changed.connect(_reset)
