"""Quart: ``url_for('static', filename=...)`` returns versioned URLs, and
the requests for them are answered by a :class:`~bustware.BustwareASGI` in
front of ``app.asgi_app``.

>>> from bustware.quart import install
>>> install(app)                                            # doctest: +SKIP

Quart is built on Flask's request-free core (``flask.sansio``), so the hook
is the one :mod:`bustware.flask` uses: a ``url_defaults`` callback that
replaces ``filename`` by the versioned file name (or adds the query
parameter in the query style). Templates keep their
``url_for('static', filename=...)`` calls and get ``static_url(path)`` too.
The app's own static folder is covered; a blueprint's static folder takes a
:class:`~bustware.BustwareASGI` of its own.
"""

from __future__ import annotations

import weakref
from typing import Any

from quart import Quart

from .asgi import BustwareASGI
from .assets import Assets, PathLike
from .urls import versioned_values

__all__ = ["install"]

_KEY = "bustware"


def install(app: Quart, root: PathLike | Assets | None = None, prefix: str | None = None,
            **options: Any) -> BustwareASGI:
    """Serve ``app``'s static folder under versioned URLs.

    ``root`` defaults to ``app.static_folder`` and ``prefix`` to
    ``app.static_url_path`` (give the mount point too, ``"/shop/static/"``,
    for an app mounted under a ``root_path``); ``root`` may be a ready
    :class:`Assets`. ``options`` are those of :class:`~bustware.Bustware`
    (``autorefresh=app.debug`` for development mode). Replaces
    ``app.asgi_app`` by the middleware, and returns it.
    """
    if _KEY in app.extensions:
        raise RuntimeError(f"bustware: install() was already called for the app {app.name!r}; "
                           "call it once per app")
    if root is None:
        if not app.has_static_folder:
            raise ValueError(f"bustware: the app {app.name!r} has no static folder; pass "
                             "root='path/to/static' (or a ready Assets)")
        root = app.static_folder  # type: ignore[assignment]
    if prefix is None and not isinstance(root, Assets):
        prefix = (app.static_url_path or "").rstrip("/") + "/"
    middleware = BustwareASGI(app.asgi_app, root,  # type: ignore[arg-type]
                              **({} if prefix is None else {"prefix": prefix}), **options)
    app.extensions[_KEY] = middleware
    app.asgi_app = middleware  # type: ignore[method-assign]
    app.add_template_global(middleware.assets.url, "static_url")
    app.add_template_global(middleware.assets.importmap_tag, "importmap_tag")
    app.add_template_global(middleware.assets.modulepreload, "modulepreload")
    app.url_defaults(_VersionedFilename(middleware.assets))
    return middleware


class _VersionedFilename:
    """The ``url_defaults`` callback: ``filename`` of the ``static``
    endpoint becomes the versioned name, in place."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets
        # Asset -> (filename, extra query item): weak, so that the Assets
        # a rescan replaced do not stay alive here.
        self.built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __call__(self, endpoint: str, values: dict[str, Any]) -> None:
        filename = values.get("filename")
        if endpoint != "static" or not isinstance(filename, str):
            return
        versioned_values(self.assets, self.built, filename, values)
