"""Pyramid integration: a cache buster and a tween.

::

    config.include("bustware.pyramid")
    config.add_bustware_static_view("static", "myapp:static")

is the short form of::

    config.add_static_view("static", "myapp:static")
    config.add_cache_buster("myapp:static", BustwareCacheBuster("myapp:static", "/static/"))
    config.add_tween("bustware.pyramid.tween_factory", under=INGRESS)

``request.static_url("myapp:static/css/app.css")`` then returns the
versioned URL, and the tween answers the requests for it: in
``mode="serve"`` (default) bustware sends the bytes; in ``mode="rewrite"`` it
strips the version and Pyramid's own static view sends them, with bustware's
cache policy. In templates, ``request.importmap_tag(pins)`` and
``request.modulepreload("js/app.js", pins)`` give the import map and the
modulepreload links of the static view's index (bustware.importmap). The
tween finds the bustware cache busters registered with
``add_cache_buster``; requests outside their prefixes go straight on.

Options are keyword arguments of :class:`BustwareCacheBuster` or of the
directive; the directive also reads the deployment settings ``bustware.*``
(``bustware.mode = rewrite``, ``bustware.autorefresh = true``, in the .ini
file), keyword arguments winning. ``pyramid.reload_assets = true`` (or
``pyramid.reload_all``) turns ``autorefresh`` on, and any manifest off, unless
``autorefresh`` is set.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from typing import Any, Callable

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ICacheBuster, IRoutesMapper, IStaticURLInfo
from pyramid.path import AssetResolver, caller_package
from pyramid.settings import asbool, aslist
from pyramid.tweens import INGRESS
from zope.interface import implementer

from .assets import Assets
from .files import PathLike
from .keywords import did_you_mean
from .middleware import Bustware

__all__ = ["BustwareCacheBuster", "add_bustware_static_view", "importmap_tag", "includeme",
           "modulepreload", "tween_factory"]

_REQUEST_KEY = "bustware.pyramid.request"


def _keyword_params(*callables) -> dict[str, inspect.Parameter]:
    return {p.name: p for func in callables for p in inspect.signature(func).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


_ASSETS_PARAMS = _keyword_params(Assets)
_MIDDLEWARE_PARAMS = _keyword_params(Bustware)
OPTIONS = (*_ASSETS_PARAMS, *_MIDDLEWARE_PARAMS)


@implementer(ICacheBuster)
class BustwareCacheBuster:
    """Puts the file's bustware version into the URLs ``request.static_url``
    builds. ``root`` is the directory of the static view (a path, an asset
    specification such as ``"myapp:static"``, or a ready :class:`Assets`),
    ``prefix`` the URL path the static view is mounted at. Register it for
    the same directory as the static view."""

    def __init__(self, root: PathLike | Assets, prefix: str = "/static/",
                 **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"bustware: unknown option {', '.join(unknown)}"
                            f"{did_you_mean(unknown, OPTIONS)}; the options are "
                            f"{', '.join(OPTIONS)}")
        assets_options = {k: v for k, v in options.items() if k in _ASSETS_PARAMS}
        options.setdefault("missing", "app")  # the static view answers what we do not know
        self.middleware_options = {k: v for k, v in options.items() if k in _MIDDLEWARE_PARAMS}
        if isinstance(root, Assets):
            if assets_options or prefix != "/static/":
                raise ValueError("bustware: pass prefix and index options to Assets(...) when "
                                 "giving BustwareCacheBuster a ready Assets")
            self.assets = root
        else:
            self.assets = Assets(_resolve(root, caller_package()), prefix, **assets_options)

    def __call__(self, request, subpath: str, kw: dict) -> tuple[str, dict]:
        assets = self.assets
        if assets.autorefresh:
            assets.check()
        asset = assets.get(subpath)
        if asset is None or asset.version is None:
            assets.url(subpath)  # raises AssetNotFound when strict and unknown
            return subpath, kw
        path, query = assets.style.build(subpath, asset.version)
        if query:
            kw["_query"] = _add_query(kw.get("_query"), assets.style.param,  # type: ignore
                                      asset.version)
        return path, kw

    def __repr__(self) -> str:
        return f"<BustwareCacheBuster {self.assets!r}>"


def tween_factory(handler: Callable, registry) -> Callable:
    """Answers the versioned URLs of every :class:`BustwareCacheBuster`
    registered with ``config.add_cache_buster``."""
    info = registry.queryUtility(IStaticURLInfo)
    busters = []
    for spec, buster, _explicit in getattr(info, "cache_busters", ()):
        if isinstance(buster, BustwareCacheBuster) and buster not in busters:
            _check_prefix(registry, info, spec, buster)
            busters.append(buster)
    if not busters:
        return handler

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        # Reached for what bustware hands on: rewrite mode, or a path it
        # does not know. The request is the same object, its environ
        # possibly rewritten.
        response = handler(environ[_REQUEST_KEY])
        return response(environ, start_response)

    # The longest prefix looks first.
    for buster in sorted(busters, key=lambda b: len(b.assets.prefix)):
        app = Bustware(app, buster.assets, **buster.middleware_options)
    prefixes = tuple(b.assets.prefix for b in busters)
    wsgi = app

    def tween(request):
        if not request.path_info.startswith(prefixes):
            return handler(request)
        request.environ[_REQUEST_KEY] = request
        try:
            return request.get_response(wsgi)
        finally:
            request.environ.pop(_REQUEST_KEY, None)

    return tween


def add_bustware_static_view(config, name: str, path: str, *, cache_max_age: int | None = None,
                             **options: Any) -> BustwareCacheBuster:
    """Config directive: ``add_static_view(name, path)`` plus a bustware
    cache buster for it. ``options`` override the ``bustware.*`` settings."""
    if "://" in name:
        raise ConfigurationError(
            f"bustware: add_bustware_static_view({name!r}, ...): name must be a path such as "
            "'static', not a URL (bustware serves what this app mounts)"
        )
    settings = config.registry.settings or {}
    merged = {**_from_settings(settings), **options}
    if "autorefresh" not in merged and _reload_assets(settings):
        # Pyramid's own switch for "assets change under the running app":
        # development mode, which scans the files (a manifest is the
        # production snapshot), as Flask's debug does.
        merged["autorefresh"] = True
        merged.pop("manifest", None)
        merged.pop("store", None)  # the store serves a manifest's other releases
    route_prefix = (config.route_prefix or "").strip("/")
    prefix = "/" + "/".join(p for p in (route_prefix, name.strip("/")) if p) + "/"
    root = AssetResolver(config.package).resolve(path).abspath()
    buster = BustwareCacheBuster(root, prefix, **merged)
    buster.assets.option_advice = _advice  # type: ignore[method-assign]
    config.add_static_view(name, path, cache_max_age=cache_max_age)
    config.add_cache_buster(path, buster)
    return buster


def importmap_tag(request, pins: dict[str, str], prefix: str | None = None) -> str:
    """Request method: ``request.importmap_tag(pins)``, the
    ``<script type="importmap">`` of :meth:`Assets.importmap_tag` for the
    bustware static view at ``prefix`` (``"/static/"``; needed only when
    the app has several)."""
    return busted_assets(request.registry, prefix).importmap_tag(pins)


def modulepreload(request, entry: str, pins: dict[str, str] | None = None,
                  prefix: str | None = None) -> str:
    """Request method: ``request.modulepreload("js/app.js", pins)``, the
    ``<link rel="modulepreload">`` elements of :meth:`Assets.modulepreload`."""
    return busted_assets(request.registry, prefix).modulepreload(entry, pins)


def busted_assets(registry, prefix: str | None = None) -> Assets:
    """The index of the bustware static view at URL path ``prefix``, or of
    the only one when ``prefix`` is None."""
    info = registry.queryUtility(IStaticURLInfo)
    found: list[Assets] = []
    for _spec, buster, _explicit in getattr(info, "cache_busters", ()):
        if isinstance(buster, BustwareCacheBuster) and buster.assets not in found:
            found.append(buster.assets)
    prefixes = [a.prefix for a in found]
    if prefix is None and len(found) == 1:
        return found[0]
    for assets in found:
        if assets.prefix == prefix:
            return assets
    if not found:
        raise ConfigurationError("bustware: no bustware static view; add one with "
                                 "config.add_bustware_static_view('static', 'myapp:static')")
    raise ValueError(f"bustware: prefix={prefix!r} names none of the bustware static views; "
                     f"pass one of {', '.join(repr(p) for p in prefixes)} as prefix=")


def includeme(config) -> None:
    config.add_directive("add_bustware_static_view", add_bustware_static_view)
    # Template helpers, as request.static_url is one.
    config.add_request_method(importmap_tag, "importmap_tag")
    config.add_request_method(modulepreload, "modulepreload")
    config.add_tween("bustware.pyramid.tween_factory", under=INGRESS)


def _reload_assets(settings: dict) -> bool:
    # Pyramid's Settings fold pyramid.reload_all and the PYRAMID_RELOAD_*
    # environment variables into "reload_assets"; a plain dict may not.
    return any(asbool(settings.get(key, False)) for key in (
        "reload_assets", "pyramid.reload_assets", "reload_all", "pyramid.reload_all"))


def _advice(name: str, value: Any) -> str:
    """How error messages name an option in Pyramid: its .ini setting."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return (f"set bustware.{name} = {text} in the app's settings (.ini file), or pass "
            f"{name}={value!r} to add_bustware_static_view")
_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0", "t", "f",
                         "y", "n"})


def _from_settings(settings: dict) -> dict[str, Any]:
    """``bustware.*`` deployment settings, from strings to the option types."""
    out: dict[str, Any] = {}
    params = {**_ASSETS_PARAMS, **_MIDDLEWARE_PARAMS}
    for key, value in settings.items():
        if not key.startswith("bustware."):
            continue
        name = key[len("bustware."):]
        if name not in params:
            raise ConfigurationError(
                f"bustware: unknown setting {key!r}"
                f"{did_you_mean([key], ['bustware.' + o for o in OPTIONS])}; the settings are "
                f"{', '.join('bustware.' + o for o in OPTIONS)}"
            )
        if isinstance(value, str):
            default = params[name].default
            try:
                if name == "compress" and value.strip().lower() not in _BOOL_WORDS:
                    value = aslist(value)  # codings: "br gzip"
                elif isinstance(default, bool):
                    value = asbool(value)
                elif isinstance(default, int):
                    value = int(value)
                elif isinstance(default, float):
                    value = float(value)
                elif name == "extensions":
                    value = aslist(value)
            except ValueError:
                raise ConfigurationError(
                    f"bustware: setting {key}={value!r} is not a {type(default).__name__}"
                ) from None
        out[name] = value
    return out


def _check_prefix(registry, info, spec: str, buster: BustwareCacheBuster) -> None:
    """The buster's prefix must be where its static view is mounted, or the
    tween would look for its URLs in the wrong place."""
    mapper = registry.queryUtility(IRoutesMapper)
    for url, view_spec, route_name in getattr(info, "registrations", ()):
        if view_spec != spec or url is not None or mapper is None:
            continue
        route = mapper.get_route(route_name)
        if route is None:
            continue
        prefix = "/" + route.pattern.lstrip("/")[: -len("*subpath")]
        if prefix != buster.assets.prefix:
            raise ConfigurationError(
                f"bustware: the static view for {spec!r} is mounted at {prefix!r} but its "
                f"cache buster has prefix={buster.assets.prefix!r}; pass "
                f"BustwareCacheBuster(..., prefix={prefix!r})"
            )


def _resolve(root: PathLike, package) -> str:
    root = os.fspath(root)
    if ":" in root and not os.path.isabs(root) and not os.path.exists(root):
        return AssetResolver(package).resolve(root).abspath()
    return root


def _add_query(query, name: str, value: str):
    if query is None:
        return {name: value}
    if isinstance(query, dict):
        return {**query, name: value}
    if isinstance(query, str):
        return f"{query}&{name}={value}" if query else f"{name}={value}"
    return [*query, (name, value)]
