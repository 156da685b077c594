"""The protocol-neutral decisions: what to answer about one representation
of a file, as plain records that the core (bustware.decide) makes and the
WSGI middleware (bustware.middleware) and the ASGI one (bustware.asgi) each
translate to their protocol.

Request headers come as a mapping in CGI names (``HTTP_IF_NONE_MATCH``...):
a WSGI environ is one as it is, and an ASGI request's is built holding only
the headers read here (:func:`cgi_request`), so that bustware.http serves
both unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

from . import http

__all__ = ["ASGI_HEADERS", "BLOCK_SIZE", "NEEDS_REQUEST", "NEEDS_THREAD", "PASS", "TO_APP",
           "Again", "Decision", "FileReply", "Opened", "Reply", "ToApp", "asgi_headers",
           "cgi_request", "conditional", "status_reply"]

Headers = list[tuple[str, str]]
#: Read size for files sent without the server's file wrapper: 256 KiB reads
#: cost a fifth less than 64 KiB ones for a 1 MiB file (benchmarks/README.md).
BLOCK_SIZE = 256 * 1024
#: Byte strings sent as they are and ``(start, stop)`` slices of the file.
Pieces = list[Union[bytes, tuple[int, int]]]
#: The request headers read here and by bustware.http, by their ASGI name
#: (lowercase, as the ASGI spec has servers send them) -> CGI name.
ASGI_HEADERS = {
    b"accept-encoding": "HTTP_ACCEPT_ENCODING",
    b"if-none-match": "HTTP_IF_NONE_MATCH",
    b"if-match": "HTTP_IF_MATCH",
    b"if-modified-since": "HTTP_IF_MODIFIED_SINCE",
    b"if-unmodified-since": "HTTP_IF_UNMODIFIED_SINCE",
    b"range": "HTTP_RANGE",
    b"if-range": "HTTP_IF_RANGE",
    # RFC 9842: names the dictionary a delta may be made against.
    b"available-dictionary": "HTTP_AVAILABLE_DICTIONARY",
}


class Reply:
    """A complete response: status line, header list, body bytes.

    The replies of a file's common requests are made once and shared by
    every request (bustware.entries): whoever sends one sends a copy of
    ``headers``, as servers and outer middleware may append to the list."""

    __slots__ = ("body", "encoded", "headers", "status")

    def __init__(self, status: str, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        #: The status code and ``headers`` as ASGI byte pairs, made on first
        #: use (by bustware.asgi; for the shared replies of the common
        #: requests, by ``Rep.asgi_replies`` in bustware.entries).
        self.encoded: tuple[int, list[tuple[bytes, bytes]]] | None = None


class FileReply:
    """A response whose body is pieces of a file not held in memory. The
    file is opened and checked against the index by bustware.opener
    (``Opener.open``), off the event loop under ASGI; what comes of
    it is an :class:`Opened` or, when the file changed, another decision."""

    __slots__ = ("headers", "kind", "pieces", "rep", "status")

    def __init__(self, status: str, headers: Headers, rep: Any, pieces: Pieces,
                 kind: int) -> None:
        self.status = status
        self.headers = headers
        self.rep = rep
        self.pieces = pieces
        #: The kind of URL (bustware.routes.CURRENT...), for the headers
        #: of the file as it is now, should it have changed.
        self.kind = kind


class Opened:
    """A :class:`FileReply` with its file open (``f``, ``st``), checked to
    be the bytes the headers name. ``path`` is the file opened (the object
    store's copy when the indexed file changed). Whoever gets one closes
    ``f``."""

    __slots__ = ("f", "headers", "path", "pieces", "st", "status")

    def __init__(self, status: str, headers: Headers, f: Any, st: Any, pieces: Pieces,
                 path: str) -> None:
        self.status = status
        self.headers = headers
        self.f = f
        self.st = st
        self.pieces = pieces
        self.path = path

    def whole_file(self) -> bool:
        """One slice to the end of the file: what a server's file sender
        (wsgi.file_wrapper, http.response.pathsend) can take."""
        p = self.pieces
        return len(p) == 1 and not isinstance(p[0], bytes) and p[0][1] == self.st.st_size


class ToApp:
    """Hand the request to the wrapped application; in rewrite mode with
    the path replaced by ``path`` and the Cache-Control of a 2xx or 304
    replaced by ``cache_control``."""

    __slots__ = ("cache_control", "path")

    def __init__(self, path: str | None = None, cache_control: str | None = None) -> None:
        self.path = path
        self.cache_control = cache_control


class Again:
    """Not a decision yet: ask again as ``reason`` says. Only an adapter
    that asks with ``request=None`` or ``block=False`` gets one
    (bustware.decide.Core.decide)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


Decision = Union[Reply, FileReply, ToApp, Again]

#: A request the core has nothing to do with (outside the prefix, no route):
#: the application's, untouched. A WSGI adapter mounted under SCRIPT_NAME
#: tries the whole path first (bustware.middleware).
PASS = ToApp()
#: A request under the prefix handed to the application (missing="app",
#: rewrite mode).
TO_APP = ToApp()
#: Ask again with the request's method, query string and headers.
NEEDS_REQUEST = Again("request")
#: Ask again with block=True, off the event loop: answering reads the disk
#: (a rescan, a file's first request, a lookup, a newer manifest).
NEEDS_THREAD = Again("thread")

_NEGOTIATED = ("Vary", "Access-Control-Allow-Origin")


def cgi_request(scope: Mapping[str, Any]) -> dict[str, str]:
    """What :meth:`bustware.decide.Core.decide` reads of the ASGI request
    ``scope``: method, query string and the headers of :data:`ASGI_HEADERS`
    in CGI names, repeated fields joined with a comma as WSGI servers do;
    one pass, only those fields decoded."""
    query = scope.get("query_string")
    request = {"REQUEST_METHOD": scope["method"],
               "QUERY_STRING": query.decode("latin-1") if query else ""}
    for name, value in scope["headers"]:
        key = ASGI_HEADERS.get(name)
        if key is not None:
            text = value.decode("latin-1")
            request[key] = f"{request[key]},{text}" if key in request else text
    return request


def asgi_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    """``headers`` as ASGI byte pairs."""
    # Lowercase names, as the ASGI spec writes them and HTTP/2 requires.
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def status_reply(method: str, status: str, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """A short text response that no cache may store."""
    body = f"{status}\n".encode()
    return Reply(status, [("Content-Type", "text/plain; charset=utf-8"),
                          ("Content-Length", str(len(body))),
                          ("Cache-Control", "no-store"), *headers],
                 b"" if method == "HEAD" else body)


def negotiated(rep: Any, kind: int) -> Headers:
    """Vary and CORS headers for an error about ``rep`` (412, 416): which
    variant was judged depends on Accept-Encoding, and a cross-origin fetch
    needs the CORS header to read even an error."""
    return [h for h in rep.headers_304[kind] if h[0] in _NEGOTIATED]


def whole(rep: Any, kind: int, method: str) -> Reply | FileReply:
    """The representation's 200 (a HEAD never opens the file)."""
    if rep.body is None and method != "HEAD":
        return FileReply("200 OK", rep.headers[kind], rep, [(0, rep.size)], kind)
    # A copy: servers and outer middleware may append to the list.
    return Reply("200 OK", rep.headers[kind][:], b"" if method == "HEAD" else rep.body)


def conditional(headers: Mapping[str, str], method: str, rep: Any, kind: int
                ) -> Reply | FileReply:
    """Preconditions, then Range, in the order of RFC 9110 section 13.2.2."""
    if (headers.get("HTTP_IF_NONE_MATCH") == rep.quoted_etag
            and "HTTP_IF_MATCH" not in headers and "HTTP_IF_UNMODIFIED_SINCE" not in headers):
        # A browser revalidating: the If-None-Match it sends is exactly
        # our ETag. Steps 1 and 2 of 13.2.2 are absent, step 3 matches:
        # 304 without parsing anything (3.2 us -> 1.1 us).
        return Reply("304 Not Modified", rep.headers_304[kind][:], b"")
    status = http.evaluate_preconditions(headers, rep.etag, rep.mtime)
    if status == 304:
        return Reply("304 Not Modified", rep.headers_304[kind][:], b"")
    if status == 412:
        return status_reply(method, "412 Precondition Failed", negotiated(rep, kind))
    head = method == "HEAD"
    header = headers.get("HTTP_RANGE")
    ranges = None
    if header is not None and not head and http.if_range_allows(headers, rep.etag, rep.mtime):
        ranges = http.resolve_ranges(header, rep.size)
        if ranges == []:
            return status_reply(method, "416 Range Not Satisfiable",
                                [("Content-Range", f"bytes */{rep.size}"),
                                 *negotiated(rep, kind)])
        if ranges is not None and len(ranges) > 1 and rep.encoding != "identity":
            # A Content-Encoding beside multipart/byteranges would say the
            # multipart body itself is encoded, and RFC 9110 defines no
            # per-part coding; the whole variant is always a valid answer.
            ranges = None
    if ranges is None:
        return whole(rep, kind, method)
    return partial(rep, kind, ranges)


def partial(rep: Any, kind: int, ranges: list[tuple[int, int]]) -> Reply | FileReply:
    """A 206 of one range, or of several as multipart/byteranges."""
    base = [h for h in rep.headers[kind] if h[0] not in ("Content-Length", "Content-Type")]
    if len(ranges) == 1:
        start, stop = ranges[0]
        headers = [*base, ("Content-Type", rep.content_type),
                   ("Content-Range", f"bytes {start}-{stop - 1}/{rep.size}"),
                   ("Content-Length", str(stop - start))]
        pieces: Pieces = [(start, stop)]
    else:
        boundary = f"bustware-{rep.etag}"
        pieces = []
        for start, stop in ranges:
            pieces.append((f"\r\n--{boundary}\r\nContent-Type: {rep.content_type}\r\n"
                           f"Content-Range: bytes {start}-{stop - 1}/{rep.size}\r\n\r\n"
                           ).encode("latin-1"))
            pieces.append((start, stop))
        pieces.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
        pieces[0] = pieces[0][2:]  # type: ignore[index]  # no CRLF before the first boundary
        length = sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in pieces)
        headers = [*base, ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
                   ("Content-Length", str(length))]
    if rep.body is None:
        return FileReply("206 Partial Content", headers, rep, pieces, kind)
    body = rep.body
    return Reply("206 Partial Content", headers,
                 b"".join(p if isinstance(p, bytes) else body[p[0]:p[1]] for p in pieces))
