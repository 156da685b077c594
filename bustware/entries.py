"""A file as the middleware serves it: its representations (identity and
precompressed variants), each with its response header lists, one per kind
of URL (bustware.routes).

Every header list is built once per file, on its first request
(``Entry.build``), not when the route table is: a large tree starts in
half the time, and files nobody asks for cost nothing. After that a request
for a current URL costs a dictionary lookup and a list copy.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Callable, Protocol

from . import contenttypes, http
from .records import Asset, Variant
from .respond import Reply, asgi_headers

__all__ = ["ETAG_LENGTH", "AsgiReplies", "Compressor", "Entry", "EntryMaker", "HeaderHook",
           "HeaderOptions", "Rep", "check_header_value", "fill_headers", "once_per_asset"]

HeaderHook = Callable[[Asset], Iterable[tuple[str, str]]]

#: Length of the hex digest prefix used as the ETag (96 bits).
ETAG_LENGTH = 24


class Rep:
    """One representation of a file: identity or a precompressed variant.

    ``headers`` and ``headers_304`` hold a header list per kind of URL
    (bustware.routes: CURRENT, PLAIN, OUTDATED); ``ok`` and
    ``not_modified`` the replies of the common requests (a GET, a browser's
    revalidation) of a CURRENT and a PLAIN URL, made once with them and
    shared (``ok`` is None when the bytes are streamed from disk); ``head``
    the replies of a HEAD of them, made on the first HEAD
    (:meth:`head_replies`). An OUTDATED URL and the rest get replies made
    per request, but under ASGI (:meth:`asgi_replies`)."""

    __slots__ = ("abs_path", "asgi", "body", "content_type", "dev", "digest", "encoding",
                 "etag", "head", "headers", "headers_304", "ino", "mtime", "mtime_ns",
                 "not_modified", "ok", "quoted_etag", "size")

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
        self.ok: tuple[Reply, Reply] | None = None
        self.not_modified: tuple[Reply, Reply] | None = None
        #: What :meth:`head_replies` made; None until the first HEAD.
        self.head: tuple[Reply, Reply] | None = None
        #: What :meth:`asgi_replies` made; None until the first ASGI request.
        self.asgi: AsgiReplies | None = None

    def head_replies(self) -> tuple[Reply, Reply]:
        """The shared replies of a HEAD of a CURRENT and a PLAIN URL: the
        GET's headers (Content-Length of the whole body), no body. Made on
        the first HEAD, as few files are ever asked for by one; a reply
        made per request cost a WSGI HEAD about 120 ns (830 -> 710 ns)."""
        head = self.head
        if head is None:
            head = self.head = (Reply("200 OK", self.headers[0], b""),
                                Reply("200 OK", self.headers[1], b""))
        return head

    def asgi_replies(self) -> AsgiReplies:
        """The shared replies of the common requests with their ASGI form,
        made on the first ASGI request that needs them (a process serving
        only WSGI never makes them)."""
        replies = self.asgi
        if replies is None:
            replies = self.asgi = AsgiReplies(self)
        return replies


class AsgiReplies:
    """The replies of a representation's common requests under ASGI (a GET
    or HEAD of a CURRENT or PLAIN URL, a browser's revalidation), each with
    its ASGI form (``Reply.encoded``) made once: encoding the header list
    per request cost a fifth of an ASGI hit. By kind of URL (CURRENT,
    PLAIN); ``get`` is (None, None) for bytes streamed from disk."""

    __slots__ = ("etag", "get", "head", "not_modified")

    def __init__(self, rep: Rep) -> None:
        #: The quoted ETag as bytes: an If-None-Match field is compared as sent.
        self.etag = rep.quoted_etag.encode("latin-1")
        ok = [asgi_headers(rep.headers[kind]) for kind in (0, 1)]
        head = rep.head_replies()
        self.head = tuple(_encoded(head[kind], 200, ok[kind]) for kind in (0, 1))
        self.get = ((None, None) if rep.ok is None else
                    tuple(_encoded(rep.ok[kind], 200, ok[kind]) for kind in (0, 1)))
        self.not_modified = tuple(
            _encoded(rep.not_modified[kind], 304,  # type: ignore[index]
                     asgi_headers(rep.headers_304[kind])) for kind in (0, 1))


def _encoded(reply: Reply, status: int, headers: list[tuple[bytes, bytes]]) -> Reply:
    reply.encoded = (status, headers)
    return reply


class Compressor(Protocol):
    """What the entries need of the compressor that makes variants without
    a build step (bustware.livecompress.LiveCompressor)."""

    def wanted(self, asset: Asset) -> bool:
        """Whether ``asset`` gets compressed variants."""
        ...

    def variants(self, asset: Asset) -> Mapping[str, Variant]:
        """The variants of ``asset`` by coding, made now if need be."""
        ...


@dataclass(frozen=True)
class HeaderOptions:
    """The middleware's options that go into every file's header lists."""

    #: The Cache-Control header of each kind of URL (CURRENT, PLAIN, OUTDATED).
    policies: tuple[tuple[str, str], tuple[str, str], tuple[str, str]]
    allow_origin: str | None
    add_headers: HeaderHook | None
    #: Suffix -> Content-Type, over the built-in table; empty: none.
    content_types: Mapping[str, str]
    #: The index's charset, for the custom types of text files.
    charset: str | None
    #: The Use-As-Dictionary value of a file's versioned responses, or None
    #: (bustware.dictionaries); None: no file offers itself as one.
    dictionary: Callable[[Asset], str | None] | None = None


class EntryMaker:
    """Makes the entries of one middleware's files and, on each file's
    first request, their representations and header lists: with its header
    options, its compressor (or None) and the lock first requests share."""

    def __init__(self, options: HeaderOptions, live: Compressor | None) -> None:
        self.options = options
        self.live = live
        self.lock = threading.Lock()

    def entry(self, asset: Asset) -> Entry:
        """A new entry for ``asset``; with an ``add_headers`` hook, built
        now, so that the hook's mistakes are found when the middleware is
        made, not on some file's first request."""
        entry = Entry(asset, asset.url.partition("?")[2] or None, self)
        if self.options.add_headers is not None:
            entry.build(compress=False)
            if self.live is not None and self.live.wanted(asset):
                entry.identity = None  # compressed on its first request, not now
        return entry

    def fill_headers(self, asset: Asset, reps: dict[str, Rep],
                     offers: tuple[str, ...] | None) -> None:
        """Fill the header lists of ``reps``, the representations of
        ``asset`` (see :func:`fill_headers`)."""
        fill_headers(self.options, asset, reps, offers)

    def delta_rep(self, asset: Asset, variant: Variant) -> Rep:
        """The representation of a ``dcz`` delta of ``asset``
        (bustware.dictionaries): its own ETag, and a Vary that names the
        request field its bytes depend on (RFC 9842 section 6.2)."""
        rep = Rep(variant.encoding, variant, asset, variant.mtime_ns)
        fill_headers(self.options, asset, {variant.encoding: rep}, (variant.encoding,))
        for headers in (*rep.headers, *rep.headers_304):
            for i, (name, _) in enumerate(headers):
                if name == "Vary":  # in place: the shared replies hold these lists
                    headers[i] = ("Vary", "Accept-Encoding, Available-Dictionary")
        return rep


class Entry:
    """A file as the middleware serves it: its representations (identity and
    precompressed variants) with their header lists, one per kind of URL.

    The representations are built on the file's first request (``build``),
    not when the routing table is: a large tree starts in half the time, and
    files nobody asks for cost nothing. Until then ``identity`` is None,
    which the request path tests (a plain slot and an ``is None``: a
    ``__getattr__`` hook instead would slow every attribute read of the class).
    """

    __slots__ = ("asset", "chosen", "identity", "maker", "offers", "query", "reps")

    def __init__(self, asset: Asset, query: str | None, maker: EntryMaker) -> None:
        self.asset = asset
        # The query string of the current URL, in the query style.
        self.query = query
        self.maker = maker
        self.identity: Rep | None = None
        #: The codings to negotiate among; None when there are none.
        self.offers: tuple[str, ...] | None = None
        self.reps: dict[str, Rep] = {}
        #: Accept-Encoding value -> the representation it gets, for the few
        #: values browsers send: a C lookup on the request path instead of
        #: a call of the negotiator (bustware.http.EncodingNegotiator).
        self.chosen: dict[str | None, Rep] = {}

    def negotiate(self, header: str | None, negotiator: http.EncodingNegotiator) -> Rep:
        """The representation for the Accept-Encoding value ``header``
        (None: absent), remembered in :attr:`chosen` while it holds few."""
        rep = self.reps[negotiator.choose(header, self.offers)]  # type: ignore[arg-type]
        if len(self.chosen) < _CHOSEN and (header is None
                                           or len(header) <= http.MAX_ACCEPT_ENCODING):
            self.chosen[header] = rep
        return rep

    def build(self, compress: bool = True) -> Rep:
        """Build the representations and their headers; return identity.
        With ``compress``, first make the compressed variants the file has
        no precompressed file for (bustware.livecompress): outside the
        shared lock, so that no other file's first request waits for it."""
        maker = self.maker
        live = maker.live if compress else None
        made = live.variants(self.asset) if live is not None else {}
        with maker.lock:
            if self.identity is not None:  # another thread was first
                return self.identity
            asset = self.asset
            if asset.served_path is None:
                identity = Rep("identity", asset, asset, asset.mtime_ns)
            else:  # rewritten bytes kept in a private file: stream that one
                st = os.stat(asset.served_path)
                identity = Rep("identity", asset, asset, st.st_mtime_ns)
                identity.abs_path = asset.served_path
                identity.dev, identity.ino = st.st_dev, st.st_ino
            reps = {"identity": identity}
            for variant in (*asset.variants.values(), *made.values()):
                reps[variant.encoding] = Rep(variant.encoding, variant, asset,
                                             variant.mtime_ns)
            offers = tuple(e for e in http.ENCODING_PREFERENCE if e in reps) or None
            maker.fill_headers(asset, reps, offers)
            # Published complete, identity last: a thread that finds it set
            # finds the rest set too.
            self.reps = reps
            self.offers = offers
            self.chosen = {}
            self.identity = identity
        return identity


def fill_headers(options: HeaderOptions, asset: Asset, reps: dict[str, Rep],
                 offers: tuple[str, ...] | None) -> None:
    """Fill the header lists of ``reps``, the representations of ``asset``,
    and their shared replies, with ``options``."""
    # Accept-Ranges tells media players and download resumers they may ask
    # for parts, as nginx does.
    shared = [("Accept-Ranges", "bytes"), ("X-Content-Type-Options", "nosniff")]
    cached = []  # what a 304 repeats (RFC 9110 15.4.5)
    if offers is not None:
        cached.append(("Vary", "Accept-Encoding"))
    if options.allow_origin is not None:
        cached.append(("Access-Control-Allow-Origin", options.allow_origin))
    extra = []
    if options.add_headers is not None:
        for item in options.add_headers(asset):
            if not (isinstance(item, (tuple, list)) and len(item) == 2
                    and isinstance(item[0], str) and _TOKEN.fullmatch(item[0])):
                raise ValueError(
                    f"bustware: add_headers({asset.path!r}) gave {item!r}; it must "
                    "give (name, value) pairs, e.g. [('X-Frame-Options', 'DENY')]")
            name, value = item
            check_header_value(f"add_headers({asset.path!r}) {name}", value)
            if name.lower() in _OWN_HEADERS:
                raise ValueError(
                    f"bustware: add_headers({asset.path!r}) gave {name!r}, a header "
                    f"bustware sends itself (a response may carry it once); "
                    f"{_OWN_HEADERS[name.lower()]}")
            extra.append((name, value))
    last_modified = ("Last-Modified", _http_date(asset.mtime))
    tail = shared + cached + extra
    policies = options.policies
    ctype = asset.content_type
    if options.content_types:
        ctype = contenttypes.custom_type(asset.path, options.charset,
                                         options.content_types) or ctype
    stored_as = contenttypes.content_encoding(asset.path)
    # Only a versioned URL's bytes may stand as a dictionary for its next
    # versions: a plain or outdated URL's may change under it.
    offer = options.dictionary(asset) if options.dictionary is not None else None
    versioned = [policies[0], ("Use-As-Dictionary", offer)] if offer else [policies[0]]
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
        rep.headers = ([*full, *versioned], [*full, policies[1]], [*full, policies[2]])
        short = [etag, *cached]
        rep.headers_304 = ([*short, policies[0]], [*short, policies[1]],
                           [*short, policies[2]])
        # The replies of the common requests, made once: a hit then costs
        # a lookup and a copy of the header list (bustware.decide). Only
        # for the kinds that get them (CURRENT, PLAIN): about 300 bytes a
        # representation, and only for files that were asked for.
        if rep.body is not None:
            rep.ok = (Reply("200 OK", rep.headers[0], rep.body),
                      Reply("200 OK", rep.headers[1], rep.body))
        rep.not_modified = (Reply("304 Not Modified", rep.headers_304[0], b""),
                            Reply("304 Not Modified", rep.headers_304[1], b""))
        rep.head = None  # made again from these lists on the next HEAD


#: How many Accept-Encoding values an entry remembers the choice of
#: (Entry.chosen): a client sending endless distinct values is answered by
#: the negotiator's bounded memo instead.
_CHOSEN = 8

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
    "use-as-dictionary": "bustware sends it on versioned text files; pass dictionaries=False "
                         "to Bustware to leave it out",
}


def once_per_asset(hook: HeaderHook) -> HeaderHook:
    """``hook``, called once per file record: with live compression a file
    is built at start to check the hook, then again on its first request."""
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


def check_header_value(name: str, value: str | None) -> None:
    """Refuse a header value ``name`` that a WSGI server would fail on."""
    # WSGI servers encode header values as latin-1 and fail the request on
    # anything else: refuse it here, when the mistake is made.
    if value is not None and (not isinstance(value, str) or
                              any(c in "\r\n\0" or c > "\xff" for c in value)):
        raise ValueError(
            f"bustware: {name}={value!r} is not a valid header value "
            "(a string of latin-1 characters without CR, LF or NUL)"
        )
