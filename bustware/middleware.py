"""The WSGI middleware: strips the version from a static URL and serves the
file with the cache policy that URL earns.

What to answer is decided by the protocol-neutral core (bustware.decide),
which :class:`Bustware` is; this module answers the common request itself,
from header lists built once per file (a dictionary lookup, a method check,
a look for conditional headers and a list copy), and translates the
core's other decisions to WSGI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Callable

from . import respond
from .decide import Core, reload_changed
from .respond import _BLOCK, FileReply, Opened, Reply
from .routes import OUTDATED, QUERY

__all__ = ["Bustware", "reload_changed"]

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

#: The environ key holding SCRIPT_NAME while a mounted request is decided on
#: its whole path (Bustware._mounted).
_MOUNT = "bustware.mount"


def _status(environ: dict, start_response: Callable, status: str,
            headers: Sequence[tuple[str, str]] = ()):
    """A short text response that no cache may store."""
    body = f"{status}\n".encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *headers])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _not_found(environ: dict, start_response: Callable) -> Iterable[bytes]:
    return _status(environ, start_response, "404 Not Found")


class Bustware(Core):
    """WSGI middleware serving the files of an :class:`~bustware.Assets`
    index under versioned URLs, and passing every other request to ``app``.

    ``root`` is a directory, a list of them, or a ready
    :class:`~bustware.Assets`; the keyword arguments not listed here are
    passed on to :class:`~bustware.Assets`.
    """

    _APP = "a WSGI application"
    #: With no app (``bustware serve``), everything else is a 404.
    _NO_APP = staticmethod(_not_found)
    app: WSGIApp

    # -- the hot path -------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self._autorefresh:
            self._sync()
        path_info = environ.get("PATH_INFO", "")
        route = self._routes.get(path_info)
        if route is None:
            if path_info.startswith(self.prefix):
                return self._wsgi(environ, start_response, self._unrouted(
                    environ, environ["REQUEST_METHOD"], environ.get("QUERY_STRING", ""),
                    path_info))
            if environ.get("SCRIPT_NAME"):
                return self._mounted(environ, start_response)
            return self.app(environ, start_response)
        entry, kind = route
        if kind == QUERY:
            kind = self._query_kind(entry, environ.get("QUERY_STRING", ""))
        method = environ["REQUEST_METHOD"]
        if kind == OUTDATED or self._rewrite or (method != "GET" and method != "HEAD"):
            return self._wsgi(environ, start_response,
                              self._serve(environ, method, environ.get("QUERY_STRING", ""),
                                          entry, kind))
        rep = entry.identity
        if rep is None:  # the file's first request
            rep = entry.build()
        if entry.offers is not None:
            rep = entry.reps[self._negotiator.choose(
                environ.get("HTTP_ACCEPT_ENCODING"), entry.offers)]
        # Conditional and Range requests take the long way. A chain of `in`
        # tests, not a loop over the names: this runs on every request.
        if ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ
                or "HTTP_RANGE" in environ or "HTTP_IF_MATCH" in environ
                or "HTTP_IF_UNMODIFIED_SINCE" in environ):
            if (environ.get("HTTP_IF_NONE_MATCH") == rep.quoted_etag
                    and "HTTP_IF_MATCH" not in environ
                    and "HTTP_IF_UNMODIFIED_SINCE" not in environ):
                # The browser's revalidation, answered here as
                # respond.conditional would: going through a Reply record
                # costs a 304 half as much again (0.73 -> 1.08 us).
                start_response("304 Not Modified", rep.headers_304[kind][:])
                return []
            return self._wsgi(environ, start_response,
                              respond.conditional(environ, method, rep, kind))
        if method == "HEAD":
            start_response("200 OK", rep.headers[kind][:])
            return []
        if rep.body is None:
            return self._wsgi(environ, start_response,
                              FileReply("200 OK", rep.headers[kind], rep, [(0, rep.size)],
                                        kind))
        # A copy: servers and outer middleware may append to the list.
        start_response("200 OK", rep.headers[kind][:])
        return [rep.body]

    def _wsgi(self, environ: dict, start_response: Callable, d: respond.Decision):
        """A decision, as WSGI."""
        if type(d) is Reply:
            start_response(d.status, d.headers)
            return [d.body] if d.body else []
        if type(d) is FileReply:
            opened = self._open_file(d)
            if type(opened) is Reply:
                start_response(opened.status, opened.headers)
                return [opened.body] if opened.body else []
            return self._stream(environ, start_response, opened)
        mount = environ.pop(_MOUNT, None)
        if mount is not None:  # back to the mounted app's own view of the path
            environ["SCRIPT_NAME"] = mount
            if d.path is None:
                environ["PATH_INFO"] = environ["PATH_INFO"][len(mount):]
        if d.path is None:
            return self.app(environ, start_response)
        environ["PATH_INFO"] = (d.path[len(mount):] if mount and d.path.startswith(mount)
                                else d.path)
        cache_control = d.cache_control

        def set_policy(status: str, headers: list, exc_info=None):
            if status[:1] == "2" or status[:3] == "304":
                headers = [(k, v) for k, v in headers
                           if k.lower() not in ("cache-control", "expires")]
                headers.append(("Cache-Control", cache_control))
            return start_response(status, headers, exc_info)

        return self.app(environ, set_policy)

    def _mounted(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """A request to an app mounted under ``SCRIPT_NAME`` whose path is not
        under the prefix: the prefix may name the path the browser sees,
        mount included, as under ASGI (``root_path``; bustware.asgi), so
        that :meth:`url` gives URLs inside the mount. Only tried after the
        path itself: a prefix relative to the mount (what Flask's
        ``url_for`` gives, mount added) keeps matching ``PATH_INFO``."""
        mount = environ["SCRIPT_NAME"]
        path = mount + environ.get("PATH_INFO", "")
        if path not in self._routes and not path.startswith(self.prefix):
            return self.app(environ, start_response)
        # Decided on the whole path; _wsgi gives a wrapped app its own
        # SCRIPT_NAME and PATH_INFO back.
        return self(dict(environ, SCRIPT_NAME="", PATH_INFO=path, **{_MOUNT: mount}),
                    start_response)

    def _stream(self, environ, start_response, o: Opened):
        f = o.f
        try:
            start_response(o.status, o.headers[:])
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None and o.whole_file():
                # Only a slice that runs to the end of the file may go to the
                # server's wrapper: wrappers send until EOF (gunicorn's uses
                # sendfile with the offset we seek to).
                f.seek(o.pieces[0][0])
                return wrapper(f, _BLOCK)
            return _FileSlices(f, o.pieces)
        except BaseException:
            f.close()
            raise


class _FileSlices:
    """Iterates pieces of an open file (and literal byte strings between
    them) and closes the file when the server closes the iterable."""

    def __init__(self, f, pieces: list) -> None:
        self._f = f
        self._pieces = pieces

    def __iter__(self):
        f = self._f
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            start, stop = piece
            f.seek(start)
            remaining = stop - start
            while remaining > 0:
                chunk = f.read(min(_BLOCK, remaining))
                if not chunk:
                    return  # truncated under us; the server sees a short body
                remaining -= len(chunk)
                yield chunk

    def close(self) -> None:
        self._f.close()
