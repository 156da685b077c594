"""The WSGI middleware: strips the version from a static URL and serves the
file with the cache policy that URL earns.

What to answer is decided by the protocol-neutral core (bustware.decide),
which :class:`Bustware` is: ``__call__`` asks :meth:`Core.decide` with the
environ as it is and sends what it says. The replies of the common requests
are made once per file, so a static hit costs a dictionary lookup, a method
check, a look for conditional headers and a copy of a header list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Callable

from . import respond
from .decide import Core, reload_changed
from .respond import BLOCK_SIZE, PASS, FileReply, Opened, Reply

__all__ = ["Bustware", "not_found", "reload_changed"]

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


def not_found(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """A WSGI application answering 404 to everything (no-store): what
    :class:`Bustware` hands requests to when it wraps no app."""
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
    _NO_APP = staticmethod(not_found)
    app: WSGIApp

    # -- the request path ---------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        d = self.decide(environ.get("PATH_INFO", ""), environ)
        if d is PASS:
            if environ.get("SCRIPT_NAME"):
                return self._mounted(environ, start_response)
            return self.app(environ, start_response)
        if type(d) is Reply:
            # A copy: the reply may be shared, and servers and outer
            # middleware may append to the list.
            start_response(d.status, d.headers[:])
            return [d.body] if d.body else []
        if type(d) is FileReply:
            opened = self.opener.open(d)
            if type(opened) is Reply:
                start_response(opened.status, opened.headers[:])
                return [opened.body] if opened.body else []
            return self._stream(environ, start_response, opened)
        return self._to_app(environ, start_response, d)  # type: ignore[arg-type]

    def _to_app(self, environ: dict, start_response: Callable, d: respond.ToApp):
        """Hand the request to the wrapped app, as ``d`` says."""
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
        if self.decide(path, None) is PASS:  # not ours either
            return self.app(environ, start_response)
        # Decided on the whole path; _to_app gives a wrapped app its own
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
                return wrapper(f, BLOCK_SIZE)
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
                chunk = f.read(min(BLOCK_SIZE, remaining))
                if not chunk:
                    return  # truncated under us; the server sees a short body
                remaining -= len(chunk)
                yield chunk

    def close(self) -> None:
        self._f.close()
