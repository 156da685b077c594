"""103 Early Hints: ``Link: <...>; rel=modulepreload`` for a page's module
graph, sent before the application has made the page.

Servers that offer it: gunicorn 25 and later give WSGI applications
``environ["wsgi.early_hints"]``, a callable taking ``[(name, value)]``
(ignored after the response started and for HTTP/1.0 clients). Under ASGI
the server lists ``"http.response.early_hint"`` in ``scope["extensions"]``
and takes a ``{"type": "http.response.early_hint", "links": [bytes]}``
message before ``http.response.start`` (Hypercorn, for HTTP/2 and later).
Where the server offers nothing, sending hints is a no-op.

Per request from a view: ``early_hints(environ, assets, "js/app.js",
pins)``; per page path for a whole application: wrap it in
:class:`EarlyHints` (WSGI) or :class:`EarlyHintsASGI`. Neither touches the
static-file path of the middleware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

__all__ = ["EarlyHints", "EarlyHintsASGI", "early_hints", "link_values"]

Pins = Mapping[str, str]


def _index(assets: Any) -> Any:
    """An Assets, or the index of a middleware."""
    return getattr(assets, "assets", assets) if not hasattr(assets, "modulepreload") else assets


def link_values(assets: Any, entry: str, pins: Pins | None = None) -> list[str]:
    """``<URL>; rel=modulepreload`` for each module of ``entry``'s static
    graph. ``,`` and ``;`` (which url() leaves as they are) are
    percent-encoded: in a Link header they would end the link or the URL."""
    index = _index(assets)
    return [f"<{url.replace(',', '%2C').replace(';', '%3B')}>; rel=modulepreload"
            for url, _sri in index.module_graph().preload_links(entry, pins)]


def early_hints(environ: dict, assets: Any, entry: str, pins: Pins | None = None) -> bool:
    """Send a 103 with the Link headers of ``entry``'s module graph, if the
    WSGI server offers ``wsgi.early_hints``; whether it was sent."""
    send = environ.get("wsgi.early_hints")
    if send is None:
        return False
    send([("Link", value) for value in link_values(assets, entry, pins)])
    return True


class EarlyHints:
    """WSGI middleware: for a request whose path is a key of ``pages``,
    send the early hints of that page's entry module before calling
    ``app``. ``pages``: path -> entry module (logical path)."""

    def __init__(self, app: Callable, assets: Any, pages: Mapping[str, str],
                 pins: Pins | None = None) -> None:
        self.app = app
        self.assets = assets
        self.pages = dict(pages)
        self.pins = pins

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        entry = self.pages.get(environ.get("PATH_INFO", ""))
        if entry is not None:
            early_hints(environ, self.assets, entry, self.pins)
        return self.app(environ, start_response)


class EarlyHintsASGI:
    """ASGI middleware: :class:`EarlyHints` for servers that list
    ``http.response.early_hint`` in the scope's extensions."""

    def __init__(self, app: Callable, assets: Any, pages: Mapping[str, str],
                 pins: Pins | None = None) -> None:
        self.app = app
        self.assets = assets
        self.pages = dict(pages)
        self.pins = pins

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and "http.response.early_hint" in (
                scope.get("extensions") or {}):
            entry = self.pages.get(scope.get("path", ""))
            if entry is not None:
                links = [v.encode("latin-1") for v in link_values(self.assets, entry, self.pins)]
                await send({"type": "http.response.early_hint", "links": links})
        await self.app(scope, receive, send)
