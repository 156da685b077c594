"""Jinja2: versioned URLs in any ``jinja2.Environment``.

>>> from bustware.jinja import install
>>> install(env, assets)                                     # doctest: +SKIP

after which templates write ``{{ 'css/app.css'|bust }}`` (the filter the
seed article uses for its query-string version) or
``{{ static_url('css/app.css') }}``; given an index (or a middleware),
also ``{{ importmap_tag(pins) }}`` and ``{{ modulepreload('js/app.js',
pins) }}`` (bustware.importmap). Both return the URL of
:meth:`Assets.url`, so with ``autorefresh=True`` an edited file shows its new
version on the next render.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Union

from jinja2 import Environment, pass_context

from .assets import Assets

if TYPE_CHECKING:
    from .asgi import BustwareASGI
    from .middleware import Bustware

__all__ = ["install"]

UrlSource = Union[Assets, "Bustware", "BustwareASGI", Callable[[str], str]]


def install(
    env: Environment,
    source: UrlSource,
    *,
    filter_name: str | None = "bust",
    global_name: str | None = "static_url",
) -> Environment:
    """Add the ``bust`` filter and the ``static_url`` global to ``env``.

    ``source`` is an :class:`Assets`, a :class:`Bustware` or
    :class:`BustwareASGI` middleware, or any callable ``path -> url``. Pass
    ``None`` as a name to leave that one out. Returns ``env``, so it can wrap the constructor call.
    """
    # A middleware is recognised by the index it holds, not by its class:
    # both are callable, and taken as the url callable they would fail only
    # at render time. (No import of either: jinja users need neither.)
    index: Assets | None = None
    if isinstance(source, Assets) or isinstance(getattr(source, "assets", None), Assets):
        url = source.url
        index = source if isinstance(source, Assets) else source.assets
    elif callable(source):
        url = source
    else:
        raise TypeError(
            f"bustware: install(env, source={source!r}): source must be an Assets, a "
            "Bustware or BustwareASGI middleware, or a callable path -> url"
        )
    if not isinstance(env, Environment):
        raise TypeError(f"bustware: install(env={env!r}, ...): env must be a jinja2.Environment")
    if filter_name is not None:
        # pass_context stops Jinja's compile-time folding of a filter on a
        # constant ('css/app.css'|bust): folded, the URL would be frozen
        # into the compiled template and miss every later edit.
        @pass_context
        def bust(context, path: str) -> str:
            return url(path)

        env.filters[filter_name] = bust
    if global_name is not None:
        env.globals[global_name] = url
    if index is not None:  # JavaScript modules (bustware.importmap)
        env.globals["importmap_tag"] = index.importmap_tag
        env.globals["modulepreload"] = index.modulepreload
    return env
