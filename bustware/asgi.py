"""The ASGI middleware: the decisions of bustware.respond, sent as ASGI
messages. What to answer is decided by the core
(:meth:`~bustware.decide.Core.decide_asgi`, which reads the request in its
ASGI form and otherwise decides as :meth:`~bustware.decide.Core.decide`
does under WSGI); this module only moves bytes, and keeps the disk off the event loop:
opening, reading, first builds and development rescans run in a thread.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Mapping, MutableMapping, Sequence
from typing import Any, Callable
from urllib.parse import quote_from_bytes, unquote_to_bytes

from . import keywords, respond
from .assets import Assets
from .decide import Core
from .files import PathLike
from .respond import BLOCK_SIZE, NEEDS_THREAD, PASS, FileReply, Opened, Reply, asgi_headers

__all__ = ["BustwareASGI"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

class BustwareASGI:
    """ASGI middleware serving the files of an :class:`Assets` index under
    versioned URLs, and passing every other request, and every scope that
    is not ``http`` (lifespan, websocket), to ``app``.

    Takes the arguments of :class:`~bustware.Bustware`; ``root`` may be a
    ready :class:`Assets`, so that a WSGI and an ASGI application of one
    process share one index.
    """

    @keywords.checked(Core.__init__)
    def __init__(self, app: ASGIApp | None, root: PathLike | Sequence[PathLike] | Assets,
                 prefix: str = "/static/", **options: Any) -> None:
        if app is not None and not callable(app):
            raise TypeError(f"bustware: app={app!r} is not an ASGI application (not callable)")
        # The core's app is only ever checked (rewrite mode needs one),
        # never called: requests for the app go to self._app, as ASGI.
        core = Core(app, root, prefix, **options)
        self._bind(core, app)

    @classmethod
    def _sharing(cls, core: Core, app: ASGIApp | None = None) -> BustwareASGI:
        """An ASGI middleware deciding with ``core``'s very routes and
        options (the test suite runs its HTTP table through both)."""
        self = cls.__new__(cls)
        self._bind(core, app)
        return self

    def _bind(self, core: Core, app: ASGIApp | None) -> None:
        self._core = core
        self._decide = core.decide_asgi
        self._opener = core.opener
        self._app: ASGIApp = app if app is not None else _no_app
        self.assets = core.assets
        self.prefix = core.prefix
        # As on Bustware: the index's own bound method, for templates.
        self.url = core.assets.url  # type: ignore[method-assign]

    def url(self, path: str) -> str:  # replaced per instance by _bind
        """The versioned URL of ``path``; see :meth:`Assets.url`."""
        return self.assets.url(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self._app(scope, receive, send)
        path = scope["path"]
        if not path.isascii():
            # Routes are keyed as WSGI paths: the latin-1 reading of the
            # percent-decoded bytes (bustware.routes.wsgi_path).
            raw = scope.get("raw_path")
            path = (unquote_to_bytes(raw.decode("latin-1")) if raw
                    else path.encode("utf-8", "surrogateescape")).decode("latin-1")
        root = scope.get("root_path")
        if root:
            path = _mounted(path, root)
        d = self._decide(path, scope, False)
        if d is NEEDS_THREAD:
            # A rescan (development), a file's first request (its headers
            # built, perhaps a variant compressed), a path to look up or a
            # version to discover (a manifest read): in a thread.
            d = await asyncio.to_thread(self._decide, path, scope)
        if d is PASS:
            if root:
                _check_mount(self, root)
            return await self._app(scope, receive, send)
        if type(d) is Reply:
            # The common requests' replies are shared, their ASGI form made
            # once (Rep.asgi_replies); a copy of the list is sent, as outer
            # middleware may append to it.
            encoded = d.encoded
            if encoded is None:
                encoded = d.encoded = (int(d.status[:3]), asgi_headers(d.headers))
            await send({"type": "http.response.start", "status": encoded[0],
                        "headers": encoded[1][:]})
            await send({"type": "http.response.body", "body": d.body})
            return
        if type(d) is FileReply:
            opened = await asyncio.to_thread(self._opener.open, d)
            if type(opened) is Reply:
                return await _send_reply(send, opened)
            return await _stream(scope, receive, send, opened)
        if d.path is None:  # type: ignore[union-attr]
            return await self._app(scope, receive, send)
        return await self._rewritten(scope, receive, send, d)  # type: ignore[arg-type]

    async def _rewritten(self, scope: Scope, receive: Receive, send: Send,
                         d: respond.ToApp) -> None:
        """Rewrite mode: the app's static view answers for the plain path;
        a 2xx or 304 of it gets the cache policy the URL earned."""
        raw = d.path.encode("latin-1")  # type: ignore[union-attr]
        scope = {**scope, "path": raw.decode("utf-8", "replace"),
                 "raw_path": quote_from_bytes(raw, safe="/").encode("ascii")}
        policy = (b"cache-control", d.cache_control.encode("latin-1"))  # type: ignore[union-attr]

        async def set_policy(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if 200 <= status < 300 or status == 304:
                    headers = [(k, v) for k, v in message.get("headers", ())
                               if k.lower() not in (b"cache-control", b"expires")]
                    message = {**message, "headers": [*headers, policy]}
            await send(message)

        return await self._app(scope, receive, set_policy)


def _mounted(path: str, root: str) -> str:
    """The path the browser asked for, ``root_path`` included: what the
    prefix and :meth:`Assets.url` name for a mounted application.

    The ASGI spec has ``path`` include ``root_path`` (its WSGI ``PATH_INFO``
    is ``path`` with ``root_path`` stripped), and so do uvicorn
    ``--root-path`` (it puts the root in front of the path received) and
    Starlette's ``Mount``. hypercorn ``--root-path`` and granian
    ``--url-path-prefix`` pass the path received as it is, which lacks the
    root when a proxy stripped it: then the root goes in front, as Starlette
    and Django read such a path.
    """
    if not root.isascii():
        # As the path: the latin-1 reading of the UTF-8 bytes.
        root = root.encode("utf-8", "surrogateescape").decode("latin-1")
    root = root.rstrip("/")
    if path.startswith(root) and path[len(root):len(root) + 1] in ("/", ""):
        return path
    return root + path


def _check_mount(middleware: BustwareASGI, root: str) -> None:
    """Say once when no request under ``root_path`` can reach the prefix:
    the files are not served there, and url() names URLs outside the mount."""
    prefix = middleware.prefix
    if prefix.startswith(root.rstrip("/") + "/") or middleware.__dict__.get("_mount_warned"):
        return
    middleware.__dict__["_mount_warned"] = True
    import logging  # here: only a misconfigured mount ever gets this far

    logging.getLogger("bustware").warning(
        "bustware: this application is mounted at root_path %r, but prefix=%r is outside "
        "it: its files are not served under the mount, and url() gives URLs outside it; "
        "pass prefix=%r (the prefix is the URL path the browser sees)",
        root, prefix, root.rstrip("/") + prefix)


async def _send_reply(send: Send, reply: Reply) -> None:
    # In memory: the whole body in one message.
    await send({"type": "http.response.start", "status": int(reply.status[:3]),
                "headers": asgi_headers(reply.headers)})
    await send({"type": "http.response.body", "body": reply.body})


async def _stream(scope: Scope, receive: Receive, send: Send, o: Opened) -> None:
    """Send an opened file: by the server's ``pathsend`` when it offers it
    and the body is the whole file, else by its ``zerocopysend`` when it
    offers that, else in bounded reads in a thread. A client that
    disconnects stops the reads; the file is always closed."""
    fd = o.f.fileno()
    try:
        start = {"type": "http.response.start", "status": int(o.status[:3]),
                 "headers": asgi_headers(o.headers)}
        extensions = scope.get("extensions") or {}
        if ("http.response.pathsend" in extensions and o.whole_file()
                and o.pieces[0][0] == 0):  # type: ignore[index]
            # The server sends the path itself (granian: from Rust, no
            # Python in the loop). o.path was just checked to be the
            # indexed bytes; a swap in between is the race any
            # path-based sender (nginx, X-Sendfile) has too.
            await send(start)
            await send({"type": "http.response.pathsend", "path": os.path.abspath(o.path)})
            return
        if "http.response.zerocopysend" in extensions:
            # The server sends from our open file (sendfile); it has done so
            # when send() returns, so the file is closed after.
            await send(start)
            last = len(o.pieces) - 1
            for i, piece in enumerate(o.pieces):
                if isinstance(piece, bytes):
                    await send({"type": "http.response.body", "body": piece,
                                "more_body": i < last})
                else:
                    await send({"type": "http.response.zerocopysend", "file": o.f,
                                "offset": piece[0], "count": piece[1] - piece[0],
                                "more_body": i < last})
            return
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send(start)
            loop = asyncio.get_running_loop()
            for piece in o.pieces:
                if isinstance(piece, bytes):
                    await send({"type": "http.response.body", "body": piece,
                                "more_body": True})
                    continue
                at, stop = piece
                while at < stop:
                    if gone.done():
                        return  # the client left: read no more
                    # os.pread: no shared file position, so no seek to race.
                    chunk = await loop.run_in_executor(
                        None, os.pread, fd, min(BLOCK_SIZE, stop - at), at)
                    if not chunk:
                        return  # truncated under us: the server sees a short body
                    at += len(chunk)
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
    finally:
        o.f.close()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (``http.disconnect``)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The app of a BustwareASGI given none: 404 for HTTP, a lifespan that
    starts and stops, websockets refused."""
    kind = scope["type"]
    if kind == "http":
        return await _send_reply(send, respond.status_reply(scope["method"], "404 Not Found"))
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1000})
