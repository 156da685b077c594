"""A file as the middleware serves it: its representations (identity and
precompressed variants), each with its response header lists, one per kind
of URL (bustware.routes).

Every header list is built once per file, on its first request
(``_Entry.build``), not when the route table is: a large tree starts in
half the time, and files nobody asks for cost nothing. After that a request
for a current URL costs a dictionary lookup and a list copy.
"""

from __future__ import annotations

import functools
import os
import re
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

from . import contenttypes, http
from .records import Asset, Variant

if TYPE_CHECKING:
    from .decide import Core

HeaderHook = Callable[[Asset], Iterable[tuple[str, str]]]

#: Length of the hex digest prefix used as the ETag (96 bits).
ETAG_LENGTH = 24


class _Rep:
    """One representation of a file: identity or a precompressed variant."""

    __slots__ = ("abs_path", "asgi", "body", "content_type", "dev", "digest", "encoding",
                 "etag", "headers", "headers_304", "ino", "mtime", "mtime_ns", "quoted_etag",
                 "size")

    def __init__(self, encoding: str, src: Asset | Variant, asset: Asset, mtime_ns: int) -> None:
        self.encoding = encoding
        self.abs_path = src.abs_path
        self.body = src.body
        self.size = src.size
        # What the file opened to stream these bytes must be (bustware.opener).
        self.dev = src.dev
        self.ino = src.ino
        self.digest = src.digest
        self.etag = src.digest[:ETAG_LENGTH]
        self.quoted_etag = f'"{self.etag}"'
        self.content_type = asset.content_type
        # Last-Modified is the source file's, for every coding of it.
        self.mtime = asset.mtime
        self.mtime_ns = mtime_ns
        self.headers: tuple[list, list, list] = ([], [], [])
        self.headers_304: tuple[list, list, list] = ([], [], [])
        #: headers and headers_304 as ASGI byte pairs, made by bustware.asgi
        #: on first use.
        self.asgi: tuple | None = None


class _Entry:
    """A file as the middleware serves it: its representations (identity and
    precompressed variants) with their header lists, one per kind of URL.

    The representations are built on the file's first request (``build``),
    not when the routing table is: a large tree starts in half the time, and
    files nobody asks for cost nothing. Until then ``identity`` is None,
    which the request path tests (a plain slot and an ``is None``: a
    ``__getattr__`` hook instead would slow every attribute read of the class).
    """

    __slots__ = ("asset", "identity", "offers", "owner", "query", "reps")

    def __init__(self, asset: Asset, query: str | None, owner: Core) -> None:
        self.asset = asset
        # The query string of the current URL, in the query style.
        self.query = query
        self.owner = owner
        self.identity: _Rep | None = None
        #: The codings to negotiate among; None when there are none.
        self.offers: tuple[str, ...] | None = None
        self.reps: dict[str, _Rep] = {}

    def build(self, compress: bool = True) -> _Rep:
        """Build the representations and their headers; return identity.
        With ``compress``, first make the compressed variants the file has
        no precompressed file for (bustware.livecompress): outside the
        shared lock, so that no other file's first request waits for it."""
        live = self.owner._live if compress else None
        made = live.variants(self.asset) if live is not None else {}
        with self.owner._entries_lock:
            if self.identity is not None:  # another thread was first
                return self.identity
            asset = self.asset
            if asset.served_path is None:
                identity = _Rep("identity", asset, asset, asset.mtime_ns)
            else:  # rewritten bytes kept in a private file: stream that one
                st = os.stat(asset.served_path)
                identity = _Rep("identity", asset, asset, st.st_mtime_ns)
                identity.abs_path = asset.served_path
                identity.dev, identity.ino = st.st_dev, st.st_ino
            reps = {"identity": identity}
            for variant in (*asset.variants.values(), *made.values()):
                reps[variant.encoding] = _Rep(variant.encoding, variant, asset,
                                              variant.mtime_ns)
            offers = tuple(e for e in http.ENCODING_PREFERENCE if e in reps) or None
            self.owner._fill_headers(asset, reps, offers)
            # Published complete, identity last: a thread that finds it set
            # finds the rest set too.
            self.reps = reps
            self.offers = offers
            self.identity = identity
        return identity


def fill_headers(core: Core, asset: Asset, reps: dict[str, _Rep],
                 offers: tuple[str, ...] | None) -> None:
    """Fill the header lists of ``reps``, the representations of ``asset``,
    with the options of ``core``. ``Core._fill_headers`` is this function."""
    # Accept-Ranges tells media players and download resumers they may ask
    # for parts, as nginx does.
    shared = [("Accept-Ranges", "bytes"), ("X-Content-Type-Options", "nosniff")]
    cached = []  # what a 304 repeats (RFC 9110 15.4.5)
    if offers is not None:
        cached.append(("Vary", "Accept-Encoding"))
    if core.allow_origin is not None:
        cached.append(("Access-Control-Allow-Origin", core.allow_origin))
    extra = []
    if core.add_headers is not None:
        for item in core.add_headers(asset):
            if not (isinstance(item, (tuple, list)) and len(item) == 2
                    and isinstance(item[0], str) and _TOKEN.fullmatch(item[0])):
                raise ValueError(
                    f"bustware: add_headers({asset.path!r}) gave {item!r}; it must "
                    "give (name, value) pairs, e.g. [('X-Frame-Options', 'DENY')]")
            name, value = item
            _check_header_value(f"add_headers({asset.path!r}) {name}", value)
            if name.lower() in _OWN_HEADERS:
                raise ValueError(
                    f"bustware: add_headers({asset.path!r}) gave {name!r}, a header "
                    f"bustware sends itself (a response may carry it once); "
                    f"{_OWN_HEADERS[name.lower()]}")
            extra.append((name, value))
    last_modified = ("Last-Modified", _http_date(asset.mtime))
    tail = shared + cached + extra
    policies = core._policies
    ctype = asset.content_type
    if core.content_types:
        ctype = contenttypes.custom_type(asset.path, core.assets.charset,
                                         core.content_types) or ctype
    stored_as = contenttypes.content_encoding(asset.path)
    for rep in reps.values():
        rep.content_type = ctype  # also what a 206 names
        if stored_as is not None and rep.encoding == "identity":
            # A .svgz file is gzip bytes: served as such, never as a
            # multipart of ranges (see respond.conditional), never negotiated.
            rep.encoding = stored_as
        etag = ("ETag", rep.quoted_etag)
        full = [("Content-Type", ctype), ("Content-Length", str(rep.size)),
                etag, last_modified]
        if rep.encoding != "identity":
            full.append(("Content-Encoding", rep.encoding))
        full += tail
        rep.headers = ([*full, policies[0]], [*full, policies[1]], [*full, policies[2]])
        short = [etag, *cached]
        rep.headers_304 = ([*short, policies[0]], [*short, policies[1]],
                           [*short, policies[2]])


#: A header field name (RFC 9110 5.1).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SET_PER_RESPONSE = "bustware computes it for each file and response"
#: Headers bustware sends, lowercased -> what to use instead of add_headers.
_OWN_HEADERS = {
    "cache-control": "pass cache_control= (current versioned URLs) or plain_cache_control= "
                     "(plain URLs) to Bustware",
    "content-type": "pass content_types={'.foo': 'application/x-foo'} to Bustware to give "
                    "the type of a suffix",
    "access-control-allow-origin": "pass allow_origin= to Bustware",
    "content-length": _SET_PER_RESPONSE,
    "content-range": _SET_PER_RESPONSE,
    "content-encoding": _SET_PER_RESPONSE,
    "etag": _SET_PER_RESPONSE,
    "last-modified": _SET_PER_RESPONSE,
    "accept-ranges": _SET_PER_RESPONSE,
    "x-content-type-options": "bustware always sends nosniff",
}


def _once_per_asset(hook: HeaderHook) -> HeaderHook:
    results: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def once(asset: Asset) -> list:
        found = results.get(asset)
        if found is None:
            found = results[asset] = list(hook(asset))
        return found

    return once


@functools.lru_cache(maxsize=1024)
def _http_date(mtime: int) -> str:
    # Files of one deploy share a handful of mtimes; formatting each date
    # once keeps the startup of a large tree short. The standard library's
    # IMF-fixdate (RFC 9110 5.6.7, English names whatever the locale),
    # imported here: werkzeug's http_date would load all of werkzeug (about
    # 40 ms) on the first request of any file.
    from email.utils import formatdate

    return formatdate(mtime, usegmt=True)


def _check_header_value(name: str, value: str | None) -> None:
    # WSGI servers encode header values as latin-1 and fail the request on
    # anything else: refuse it here, when the mistake is made.
    if value is not None and (not isinstance(value, str) or
                              any(c in "\r\n\0" or c > "\xff" for c in value)):
        raise ValueError(
            f"bustware: {name}={value!r} is not a valid header value "
            "(a string of latin-1 characters without CR, LF or NUL)"
        )
