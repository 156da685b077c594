"""The WSGI middleware: strips the version from a static URL and serves the
file with the cache policy that URL earns.

Every response header list is built once per file, on its first request
(``_Entry.build``); after that a request for a current URL costs one
dictionary lookup, a method check, a look for conditional headers and a list
copy (see ``__call__``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import unquote_to_bytes, urlsplit

from . import assets as _assets
from . import contenttypes, http, respond
from .assets import Assets
from .files import PathLike, _file_key, open_regular
from .records import Asset, Variant, gc_paused
from .respond import FileReply, Opened, Reply

if TYPE_CHECKING:
    from .livecompress import CompressOption

__all__ = ["Bustware", "reload_changed"]

log = logging.getLogger("bustware")

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
HeaderHook = Callable[[Asset], Iterable[tuple[str, str]]]

# What a URL earns. CURRENT: the version in the URL is the version of the
# bytes sent, so they may be cached forever. PLAIN: no version, revalidate.
# OUTDATED: a version that is not the current one (a rolling deploy, an old
# page): nobody may store what we send under that URL.
CURRENT, PLAIN, OUTDATED, QUERY = 0, 1, 2, 3

#: Length of the hex digest prefix used as the ETag (96 bits).
ETAG_LENGTH = 24

# Read size for files sent without the server's file wrapper: 256 KiB reads
# cost a fifth less than 64 KiB ones for a 1 MiB file (benchmarks/README.md).
_BLOCK = 256 * 1024
_OUTDATED_POLICIES = ("serve", "404", "redirect")
_MISSING_POLICIES = ("404", "app")


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
        # What the file opened to stream these bytes must be (_open_file).
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

    def __init__(self, asset: Asset, query: str | None, owner: Bustware) -> None:
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


class Bustware:
    """WSGI middleware serving the files of an :class:`Assets` index under
    versioned URLs, and passing every other request to ``app``.

    ``root`` is a directory, a list of them, or a ready :class:`Assets`; the
    keyword arguments not listed here are passed on to :class:`Assets`.
    """

    def __init__(
        self,
        app: WSGIApp | None,
        root: PathLike | Sequence[PathLike] | Assets,
        prefix: str = "/static/",
        *,
        cache_control: str = "max-age=31536000, immutable",
        plain_cache_control: str = "no-cache",
        mode: str = "serve",
        outdated: str = "serve",
        missing: str | None = None,
        allow_origin: str | None = None,
        add_headers: HeaderHook | None = None,
        content_types: Mapping[str, str] | None = None,
        discover_interval: float | None = 1.0,
        compress: CompressOption = True,
        **assets_options: Any,
    ) -> None:
        if isinstance(root, Assets):
            if assets_options or prefix != "/static/":
                raise ValueError(
                    "bustware: pass prefix and index options to Assets(...) when giving "
                    f"Bustware a ready Assets, not to Bustware (got {sorted(assets_options)}"
                    f"{' and prefix' if prefix != '/static/' else ''})"
                )
            self.assets = root
        else:
            self.assets = Assets(root, prefix, **assets_options)
        if app is not None and not callable(app):
            raise TypeError(f"bustware: app={app!r} is not a WSGI application (not callable)")
        if mode not in ("serve", "rewrite"):
            raise ValueError(
                f"bustware: unknown mode={mode!r}: use 'serve' (bustware sends the files) "
                "or 'rewrite' (strip the version and let the wrapped app send them)"
            )
        if mode == "rewrite" and app is None:
            raise ValueError("bustware: mode='rewrite' needs an app whose static view serves "
                             "the files")
        if outdated not in _OUTDATED_POLICIES:
            raise ValueError(
                f"bustware: unknown outdated={outdated!r}: use 'serve' (current bytes, "
                "no-store), '404' or 'redirect' (307 to the current URL)"
            )
        if missing is not None and missing not in _MISSING_POLICIES:
            raise ValueError(
                f"bustware: unknown missing={missing!r}: use '404' or 'app' "
                "(hand unknown paths under the prefix to the wrapped app)"
            )
        if self.assets.prefix == "/":
            # Every path is under the prefix "/": a 404 for each one that is
            # no file would be a 404 for every page of the application.
            if missing == "404" and app is not None:
                raise ValueError(
                    "bustware: prefix='/' with missing='404' answers 404 for every page of "
                    "the application; leave missing unset (with prefix '/', paths that are "
                    "no file go to the app) or serve the files under a prefix such as "
                    "'/static/'")
            missing = "app"
        elif missing is None:
            missing = "404"
        if add_headers is not None and not callable(add_headers):
            raise TypeError(
                f"bustware: add_headers={add_headers!r} is not callable; pass a function "
                "asset -> [(name, value), ...]")
        if discover_interval is not None and (
                not isinstance(discover_interval, (int, float))
                or isinstance(discover_interval, bool) or not discover_interval >= 0):
            raise ValueError(
                f"bustware: discover_interval={discover_interval!r} must be seconds >= 0 "
                "(how often an unknown version may make the manifest be looked at), "
                "or None to never look")
        for name, value in (("cache_control", cache_control),
                            ("plain_cache_control", plain_cache_control),
                            ("allow_origin", allow_origin)):
            _check_header_value(name, value)
        #: Suffix -> Content-Type, over the built-in table.
        self.content_types = contenttypes.check_content_types(content_types)
        # With no app (``bustware serve``), everything else is a 404.
        self.app: WSGIApp = app if app is not None else _not_found
        self.mode = mode
        self._rewrite = mode == "rewrite"
        self._autorefresh = self.assets.autorefresh
        self._routes_lock = threading.Lock()
        self._entries_lock = threading.Lock()
        self.prefix = self.assets.prefix
        self.cache_control = cache_control
        # The Cache-Control header of each kind of URL, by CURRENT, PLAIN, OUTDATED.
        self._policies = (("Cache-Control", cache_control),
                          ("Cache-Control", plain_cache_control),
                          ("Cache-Control", "no-store"))
        self.plain_cache_control = plain_cache_control
        self.outdated = outdated
        self.missing = missing
        self.allow_origin = allow_origin
        self.add_headers = add_headers
        self._negotiator = http.EncodingNegotiator()
        self._query = self.assets.style.name == "query"
        self._routes: dict[str, tuple[_Entry, int]] = {}
        self._entries: dict[str, _Entry] = {}
        self._generation = -1
        # Version discovery (_discover): only from a manifest, and not in
        # rewrite mode, whose static view has only the current bytes.
        self.discover_interval = discover_interval
        self._discovering = (discover_interval is not None and not self._rewrite
                             and self.assets.manifest_path is not None)
        self._discover_lock = threading.Lock()
        self._discover_reset()
        # Compression without a build step; in rewrite mode the app's view
        # sends the bytes, and what it sends is its own business.
        # Imported here: the codecs and gzip are not needed to import bustware.
        from .livecompress import LiveCompressor, live_codings

        codings = () if self._rewrite else live_codings(compress)
        self._live = LiveCompressor(self.assets, codings) if codings else None
        if self._live is not None and self.add_headers is not None:
            # A file is built at start to check the hook, then again on its
            # first request with its compressed variants: the hook still
            # runs once per file.
            self.add_headers = _once_per_asset(self.add_headers)
        with gc_paused():
            self._build_routes()
        _LIVE.add(self)
        # Templates call url() dozens of times a page: bind the index's own
        # method (59 ns a call instead of 92 through the method below).
        self.url = self.assets.url  # type: ignore[method-assign]

    def url(self, path: str) -> str:
        """The versioned URL of ``path``; see :meth:`Assets.url`."""
        return self.assets.url(path)

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

    # -- everything else ----------------------------------------------------

    def _build_routes(self) -> None:
        """Build the URL -> (entry, kind) table; header lists come later,
        per file, on its first request."""
        # Read before the files: a scan in another thread that lands while
        # we build must leave the generation unmatched, so that the next
        # request builds again (a scan stores its files, then counts up).
        generation = self.assets.generation
        routes: dict[str, tuple[_Entry, int]] = {}
        entries: dict[str, _Entry] = {}
        for asset in self.assets:
            entry = self._entries.get(asset.path)
            if entry is None or entry.asset is not asset:
                entry = self._entry(asset)
            entries[asset.path] = entry
            # A URL with no query in the query style: a file a bundler named
            # with its hash, current at its own name.
            if asset.version is not None and (not self._query or "?" not in asset.url):
                routes[_wsgi_path(asset.url)] = (entry, CURRENT)
        for path, entry in entries.items():
            plain = _wsgi_path(self.assets.plain_url(path))
            kind = QUERY if self._query and entry.asset.version is not None else PLAIN
            shadowed = routes.get(plain)
            if shadowed is not None:
                if shadowed[0] is entry:
                    continue  # named with its hash by a bundler: plain URL is versioned
                # A real file whose name looks versioned is served as itself.
                log.warning("bustware: the file %r shadows the versioned URL of %r",
                            path, shadowed[0].asset.path)
            routes[plain] = (entry, kind)
        # Versions of earlier generations (a manifest built with --keep N):
        # an old URL gets exactly its old bytes, and as the version in the
        # URL names those bytes, the immutable policy too. Never over a
        # route of the current files. Not in rewrite mode: the app's static
        # view only has the current bytes.
        old_entries: dict[tuple[str, str | None], _Entry] = {}
        for asset in () if self._rewrite else self.assets.old_versions:
            entry = self._entry(asset)
            old_entries[(asset.path, asset.version)] = entry
            if not self._query:
                routes.setdefault(_wsgi_path(asset.url), (entry, CURRENT))
        self._old_entries = old_entries
        self._entries = entries
        self._routes = routes
        self._generation = generation

    def _entry(self, asset: Asset) -> _Entry:
        entry = _Entry(asset, asset.url.partition("?")[2] or None, self)
        if self.add_headers is not None:
            # The user's hook runs now, so that its mistakes are found when
            # the middleware is made, not on some file's first request.
            entry.build(compress=False)
            if self._live is not None and self._live.wanted(asset):
                entry.identity = None  # compressed on its first request, not now
        return entry

    def _fill_headers(self, asset: Asset, reps: dict[str, _Rep],
                      offers: tuple[str, ...] | None) -> None:
        # Accept-Ranges tells media players and download resumers they may ask
        # for parts, as nginx does.
        shared = [("Accept-Ranges", "bytes"), ("X-Content-Type-Options", "nosniff")]
        cached = []  # what a 304 repeats (RFC 9110 15.4.5)
        if offers is not None:
            cached.append(("Vary", "Accept-Encoding"))
        if self.allow_origin is not None:
            cached.append(("Access-Control-Allow-Origin", self.allow_origin))
        extra = []
        if self.add_headers is not None:
            for item in self.add_headers(asset):
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
        policies = self._policies
        ctype = asset.content_type
        if self.content_types:
            ctype = contenttypes.custom_type(asset.path, self.assets.charset,
                                             self.content_types) or ctype
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

    def _query_kind(self, entry: _Entry, query: str) -> int:
        if query == entry.query:
            return CURRENT
        parsed = self.assets.style.parse("", query)
        if parsed is None:
            return PLAIN
        return CURRENT if parsed[1] == entry.asset.version else OUTDATED

    def _decide(self, path: str, query: str, method: str,
                headers: Mapping[str, str]) -> respond.Decision:
        """The decision for any request, from its path (as routed: the
        latin-1 reading of the percent-decoded bytes), query string, method
        and headers in CGI names; what the ASGI middleware asks. (The WSGI
        ``__call__`` takes the same steps, with a short cut for the common
        GET of a current URL.)"""
        route = self._routes.get(path)
        if route is None:
            if path.startswith(self.prefix):
                return self._unrouted(headers, method, query, path)
            return respond.TO_APP
        entry, kind = route
        if kind == QUERY:
            kind = self._query_kind(entry, query)
        return self._serve(headers, method, query, entry, kind)

    def _unrouted(self, headers: Mapping[str, str], method: str, query: str,
                  path_info: str) -> respond.Decision:
        try:
            rel = path_info[len(self.prefix):].encode("latin-1").decode("utf-8")
        except UnicodeError:
            rel = ""
        found = self.assets.match(rel, query) if rel else None
        if found is None and self._discovering and rel:
            # Perhaps a file a newer build added (a page of an upgraded host).
            parsed = self.assets.style.parse(rel, query)
            newer = self._discover(*parsed) if parsed is not None else None
            if newer is not None:
                return self._serve(headers, method, query, newer, CURRENT)
        if found is None:
            if self.missing == "app":
                return respond.TO_APP
            return respond.status_reply(method, "404 Not Found")
        entry = self._entries.get(found[0].path)
        if entry is None or entry.asset is not found[0]:
            if self._autorefresh:
                # Another thread's scan changed the index after this
                # request synced its routes.
                self._sync()
                entry = self._entries.get(found[0].path)
            if entry is None:
                if self.missing == "app":
                    return respond.TO_APP
                return respond.status_reply(method, "404 Not Found")
        kind = CURRENT if found[1] == entry.asset.version else OUTDATED
        return self._serve(headers, method, query, entry, kind, found[1])

    def _serve(self, headers: Mapping[str, str], method: str, query: str, entry: _Entry,
               kind: int, version: str | None = None) -> respond.Decision:
        """The general case of ``__call__``: any method, any kind, any mode.
        ``version``: the one in the URL, when the caller parsed it."""
        if method != "GET" and method != "HEAD":
            if self._rewrite:
                return respond.TO_APP
            return respond.status_reply(method, "405 Method Not Allowed",
                                        [("Allow", "GET, HEAD")])
        if kind == OUTDATED and self._query and (self._old_entries or self._discovering):
            # The query style routes by path alone; an old version kept by
            # the manifest is found by the version in the query string.
            parsed = self.assets.style.parse("", query)
            version = parsed[1] if parsed else None
            old = self._old_entries.get((entry.asset.path, version)) if parsed else None
            if old is not None:
                entry, kind = old, CURRENT
        if kind == OUTDATED and self._discovering and version is not None:
            newer = self._discover(entry.asset.path, version)
            if newer is not None:
                entry, kind = newer, CURRENT
        if kind == OUTDATED and self.outdated == "redirect":
            return respond.status_reply(method, "307 Temporary Redirect",
                                        [("Location", _origin_relative(entry.asset.url))])
        if kind == OUTDATED and self.outdated == "404":
            return respond.status_reply(method, "404 Not Found")
        if self._rewrite and not entry.asset.links:
            # Rewrite mode: the wrapped app's static view sends the bytes
            # from the plain path; we only set the cache policy the URL earned.
            if kind == PLAIN:
                return respond.TO_APP
            return respond.ToApp(_wsgi_path(self.assets.plain_url(entry.asset.path)),
                                 self.cache_control if kind == CURRENT else "no-store")
        # (A file whose references bustware rewrote: its version names the
        # rewritten bytes, which only bustware has, so bustware sends them.)
        rep = entry.identity
        if rep is None:  # the file's first request
            rep = entry.build()
        if entry.offers is not None:
            rep = entry.reps[self._negotiator.choose(
                headers.get("HTTP_ACCEPT_ENCODING"), entry.offers)]
        return respond.conditional(headers, method, rep, kind)

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
        if d.path is None:
            return self.app(environ, start_response)
        environ["PATH_INFO"] = d.path
        cache_control = d.cache_control

        def set_policy(status: str, headers: list, exc_info=None):
            if status[:1] == "2" or status[:3] == "304":
                headers = [(k, v) for k, v in headers
                           if k.lower() not in ("cache-control", "expires")]
                headers.append(("Cache-Control", cache_control))
            return start_response(status, headers, exc_info)

        return self.app(environ, set_policy)

    # -- version discovery ----------------------------------------------------

    def _discover_reset(self) -> None:
        #: (path, version) -> record, of the newer manifest last read
        #: (bustware.manifest.stored_versions), and the entries made of them.
        self._newer: dict[tuple[str, str], dict] = {}
        self._newer_entries: dict[tuple[str, str], _Entry | None] = {}
        self._manifest_seen = self.assets.manifest_stat
        self._discover_after = 0.0

    def _discover(self, path: str, version: str) -> _Entry | None:
        """A version this index does not know: a newer build may (a page
        rendered by an upgraded host, sent here by the load balancer). The
        manifest is looked at again at most once per ``discover_interval``,
        one ``stat``, by the request that finds the interval over; the
        others go on without waiting. Served only from the object store,
        whose bytes are named by their digest."""
        key = (path, version)
        entry = self._newer_entries.get(key)
        if entry is not None:
            return entry
        if time.monotonic() >= self._discover_after and \
                self._discover_lock.acquire(blocking=False):
            try:
                self._discover_after = time.monotonic() + self.discover_interval
                self._reread_manifest()
            finally:
                self._discover_lock.release()
        entries = self._newer_entries
        if key in entries:  # made already, or its bytes found missing (None)
            return entries[key]
        rec = self._newer.get(key)
        if rec is None:
            return None
        from .from_manifest import stored_asset
        from .manifest import objects_dir

        asset = stored_asset(self.assets, path, rec, objects_dir(self.assets.manifest_path))
        entry = None if asset is None else self._entry(asset)
        # Two threads may both make it: equal entries, the last one kept.
        entries[key] = entry
        return entry

    def _reread_manifest(self) -> None:
        from . import manifest as mf
        from .from_manifest import _check_settings, stored_versions

        name = self.assets.manifest_path
        try:
            key = _file_key(os.stat(name))
        except OSError:
            return
        if key == self._manifest_seen:
            return
        self._manifest_seen = key
        try:
            data = mf.read(name)
            _check_settings(self.assets, data["settings"], name)
        except mf.ManifestError as exc:
            log.warning("bustware: not looking for newer versions in %r: %s", name, exc)
            return
        self._newer, self._newer_entries = stored_versions(data), {}

    # -- reload after a fork (gunicorn HUP) -------------------------------------

    def reload(self) -> bool:
        """Load the release the roots lead to now, if it changed (see
        :meth:`Assets.reload_if_changed`); for a worker forked from a
        preloading master. True if the index was loaded again."""
        reloaded = self.assets.reload_if_changed()
        self._rebuild_if_reloaded()
        return reloaded

    def _rebuild_if_reloaded(self) -> None:
        if self.assets.generation != self._generation:
            with self._routes_lock, gc_paused():
                self._build_routes()
            self._discover_reset()

    def _sync(self) -> None:
        """Development mode: pick up edited, new and deleted files."""
        self.assets.check()
        if self.assets.generation != self._generation:
            with self._routes_lock, gc_paused():
                if self.assets.generation != self._generation:
                    self._build_routes()

    def _inside_roots(self, abs_path: str, fd: int, store: bool = False) -> bool:
        """Whether the file opened from ``abs_path`` lies inside a root (as
        resolved when the index loaded), or with ``store``, in the object
        store or this index's private directory."""
        try:
            # Linux names the very file opened, whatever happened to the path
            # since (resolving the path again would race with a writer).
            real = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        except OSError:
            real = os.path.realpath(abs_path)
        places = list(self.assets.real_roots)
        if store:
            if self.assets.manifest_path is not None:
                from .manifest import objects_dir

                places.append(os.path.realpath(objects_dir(self.assets.manifest_path)))
            if self.assets._spill_dir is not None:
                places.append(os.path.realpath(self.assets._spill_dir))
        return any(os.path.commonpath([real, place]) == place for place in places)

    def _from_store(self, rep: _Rep):
        """The bytes ``rep`` names, opened from the object store (named by
        their digest, so any file there of the right size is them), or None."""
        if self.assets.manifest_path is None:
            return None
        from .manifest import object_path, objects_dir

        path = object_path(objects_dir(self.assets.manifest_path), rep.digest)
        try:
            f, st = open_regular(path)
        except OSError:
            return None
        if st.st_size != rep.size:
            f.close()
            return None
        return f, st, path

    def _open_file(self, plan: FileReply) -> Opened | Reply:
        """Open the file a decision streams (blocking: the ASGI middleware
        calls this in a thread).

        The file opened must be the one indexed (device, inode, size, mtime)
        before any header goes out: a release switched under a running
        process, a file replaced by another with equal size and mtime, or by
        a symlink leading out of the root, never gets headers that name the
        indexed bytes."""
        rep = plan.rep
        try:
            f, st = open_regular(rep.abs_path)
        except OSError as exc:  # gone, unreadable, or a FIFO put in its place
            log.warning("bustware: cannot open %r: %s", rep.abs_path, exc)
            f = st = None
        if f is not None and (st.st_ino != rep.ino or st.st_dev != rep.dev
                              or st.st_size != rep.size or st.st_mtime_ns != rep.mtime_ns):
            if (rep.ino == 0 and st.st_size == rep.size and st.st_mtime_ns == rep.mtime_ns
                    and self._inside_roots(rep.abs_path, f.fileno(), store=True)):
                # Identity not recorded at load (manifest_check="off"): the
                # first file opened that matches the manifest is the one.
                rep.dev, rep.ino = st.st_dev, st.st_ino
            else:
                return self._open_changed(plan, f, st)
        elif f is None:
            return self._open_changed(plan, None, None)
        return Opened(plan.status, plan.headers, f, st, plan.pieces, rep.abs_path)

    def _open_changed(self, plan: FileReply, f, st) -> Opened | Reply:
        """The file at ``rep.abs_path`` is not (or no longer) the one
        indexed. The indexed bytes from the object store, with the headers
        that name them; else the file as it is now, with ``no-store``, where
        ``outdated="serve"`` allows it and it lies inside the root; else 404."""
        rep = plan.rep
        stored = self._from_store(rep)
        if stored is not None:
            if f is not None:
                f.close()
            return Opened(plan.status, plan.headers, *stored[:2], plan.pieces, stored[2])
        if f is None:
            return respond.status_reply("GET", "404 Not Found")
        try:
            if self.outdated == "404" or not self._inside_roots(rep.abs_path, f.fileno()):
                # Swapped for a symlink that leaves the root since it was
                # indexed: the index would never have taken it.
                f.close()
                return respond.status_reply("GET", "404 Not Found")
        except BaseException:
            f.close()
            raise
        # Changed since it was indexed: these bytes are not the ones the ETag
        # and the version name, so nobody may store them.
        log.warning("bustware: %r changed on disk since it was indexed; serving "
                    "it uncached (reload, or use autorefresh in development)", rep.abs_path)
        headers = [h for h in rep.headers[plan.kind] if h[0] not in _STALE_HEADERS]
        headers += [("Content-Length", str(st.st_size)), ("Cache-Control", "no-store")]
        return Opened("200 OK", headers, f, st, [(0, st.st_size)], rep.abs_path)

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


#: Every middleware alive in this process, for reload_changed().
_LIVE: weakref.WeakSet[Bustware] = weakref.WeakSet()


def reload_changed() -> None:
    """In a process forked from one that loaded the app (a gunicorn worker
    after ``kill -HUP`` with ``preload_app``): load again every index whose
    manifest changed or whose roots now resolve elsewhere, and rebuild the
    routes of every middleware serving one. An index that does not load
    stays as it was, with a warning."""
    _assets.reload_changed()
    for app in list(_LIVE):
        app._rebuild_if_reloaded()


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
_STALE_HEADERS = frozenset({"ETag", "Last-Modified", "Cache-Control", "Content-Length"})


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


def _once_per_asset(hook: HeaderHook) -> HeaderHook:
    results: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def once(asset: Asset) -> list:
        found = results.get(asset)
        if found is None:
            found = results[asset] = list(hook(asset))
        return found

    return once


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


@functools.lru_cache(maxsize=1024)
def _http_date(mtime: int) -> str:
    # Files of one deploy share a handful of mtimes; formatting each date
    # once keeps the startup of a large tree short. The standard library's
    # IMF-fixdate (RFC 9110 5.6.7, English names whatever the locale),
    # imported here: werkzeug's http_date would load all of werkzeug (about
    # 40 ms) on the first request of any file.
    from email.utils import formatdate

    return formatdate(mtime, usegmt=True)


def _wsgi_path(url: str) -> str:
    """The PATH_INFO a WSGI server hands us for ``url``: percent-decoded
    bytes, as latin-1 (PEP 3333). With a base_url (a CDN), the URL starts
    with a scheme and host that routing ignores."""
    if "%" not in url and url[:1] == "/" and url[:2] != "//":
        return url.partition("?")[0]  # nothing to decode: most URLs, at startup
    if not url.startswith("/") or url.startswith("//"):
        url = urlsplit(url).path
    return unquote_to_bytes(url.partition("?")[0]).decode("latin-1")


def _origin_relative(url: str) -> str:
    """``url`` without the base_url's scheme and host. A redirect points at
    the path: the client resolves it against the URL it asked for, so a
    request that came through the CDN goes back through the CDN, and one
    made to this origin directly stays here."""
    if url.startswith("/") and not url.startswith("//"):
        return url
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _check_header_value(name: str, value: str | None) -> None:
    # WSGI servers encode header values as latin-1 and fail the request on
    # anything else: refuse it here, when the mistake is made.
    if value is not None and (not isinstance(value, str) or
                              any(c in "\r\n\0" or c > "\xff" for c in value)):
        raise ValueError(
            f"bustware: {name}={value!r} is not a valid header value "
            "(a string of latin-1 characters without CR, LF or NUL)"
        )
