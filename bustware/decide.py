"""The protocol-neutral core of the middleware: from a request's path, query string, method and
headers, the decision (bustware.respond) of what to answer: status, header list, and the body as
bytes, file pieces or a hand-over to the application.

:class:`Core` composes the pieces below it, each of which receives what it needs rather than the
Core: the index (bustware.assets), the route table (bustware.routes.build_routes, given the
previous entries and a function making new ones), the entries of the files
(bustware.entries.EntryMaker, given the header options and the compressor), the opener of the
files a decision streams (bustware.opener.Opener) and the discovery of versions a newer build
added (bustware.discover.Discovery). Each adapter asks one method and answers what it says: the
WSGI middleware (bustware.middleware) is a Core with a WSGI ``__call__`` asking
:meth:`Core.decide` with the environ; the ASGI one (bustware.asgi) keeps a Core, asks
:meth:`Core.decide_asgi` with the scope and sends its decisions as ASGI messages.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from . import assets as _assets
from . import contenttypes, http, keywords, respond
from .assets import Assets
from .discover import make_discovery
from .entries import (
    Entry,
    EntryMaker,
    HeaderHook,
    HeaderOptions,
    check_header_value,
    once_per_asset,
)
from .files import PathLike
from .opener import Opener
from .records import gc_paused
from .respond import (
    ASGI_HEADERS,
    NEEDS_REQUEST,
    NEEDS_THREAD,
    PASS,
    FileReply,
    cgi_request,
)
from .routes import CURRENT, OUTDATED, PLAIN, QUERY, Routes, build_routes, wsgi_path

if TYPE_CHECKING:
    from .livecompress import CompressOption

__all__ = ["Core", "reload_changed"]

_OUTDATED_POLICIES = ("serve", "404", "redirect")
_MISSING_POLICIES = ("404", "app")


class Core:
    """What a request for a file of an :class:`Assets` index gets, whatever the protocol it came
    by: the part of the middleware that decides.

    ``root`` is a directory, a list of them, or a ready :class:`Assets`; the keyword arguments
    not listed here are passed on to :class:`Assets`. ``app`` is only checked here (rewrite mode
    needs one); the adapter calls it.

    An adapter asks :meth:`decide` and answers what it says; the files a decision streams are
    opened by :attr:`opener`."""

    #: How the adapter names its kind of application, in the message for
    #: an ``app`` that is not callable.
    _APP = "an application"
    #: What stands for the app when there is none (``bustware serve``).
    _NO_APP: Any = None

    @keywords.checked(Assets.__init__)
    def __init__(
        self,
        app: Callable | None,
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
        dictionaries: bool = True,
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
            raise TypeError(f"bustware: app={app!r} is not {self._APP} (not callable)")
        missing = _check_options(app, self.assets.prefix, mode, outdated, missing, add_headers,
                                 discover_interval, cache_control, plain_cache_control,
                                 allow_origin)
        #: Suffix -> Content-Type, over the built-in table.
        self.content_types = contenttypes.check_content_types(content_types)
        self.app = app if app is not None else self._NO_APP
        self.mode = mode
        self._rewrite = mode == "rewrite"
        self._autorefresh = self.assets.autorefresh
        # decide_asgi's common path: not in rewrite mode (the app's view
        # sends the bytes) nor in development (a rescan comes first).
        self._common = not self._rewrite and not self._autorefresh
        self._routes_lock = threading.Lock()
        self.prefix = self.assets.prefix
        self.cache_control = cache_control
        self.plain_cache_control = plain_cache_control
        self.outdated = outdated
        self.missing = missing
        self.allow_origin = allow_origin
        self._negotiator = http.EncodingNegotiator()
        self._query = self.assets.style.name == "query"
        self._routes: Routes = {}
        self._entries: dict[str, Entry] = {}
        self._old_entries: dict[tuple[str, str | None], Entry] = {}
        self._generation = -1
        # Compression without a build step; in rewrite mode the app's view
        # sends the bytes, and what it sends is its own business.
        # Imported here: the codecs and gzip are not needed to import bustware.
        from .dictionaries import DeltaMaker, offer_for  # delta updates
        from .livecompress import LiveCompressor, live_codings

        codings = () if self._rewrite else live_codings(compress)
        self._live = LiveCompressor(self.assets, codings) if codings else None
        offer = offer_for(self.assets, dictionaries and not self._rewrite)
        if (self._live is not None or offer is not None) and add_headers is not None:
            # A file is built at start to check the hook, then again on its
            # first request with its compressed variants, and each delta
            # of it gets headers: the hook still runs once per file.
            add_headers = once_per_asset(add_headers)
        self.add_headers = add_headers
        self._maker = EntryMaker(HeaderOptions(
            # The Cache-Control header of each kind of URL, by CURRENT, PLAIN, OUTDATED.
            policies=(("Cache-Control", cache_control),
                      ("Cache-Control", plain_cache_control),
                      ("Cache-Control", "no-store")),
            allow_origin=allow_origin, add_headers=add_headers,
            content_types=self.content_types, charset=self.assets.charset,
            dictionary=offer), self._live)
        # A quarter of the memory budget holds the deltas made on request.
        self._deltas = DeltaMaker(self.assets.memory_budget // 4,
                                  self._maker.delta_rep) if offer is not None else None
        #: Opens the files the decisions stream, checked against the index.
        self.opener = Opener(self.assets, outdated)
        # Version discovery: only from a manifest, and not in rewrite mode,
        # whose static view has only the current bytes.
        self.discover_interval = discover_interval
        # With a shared store, the kept generations only it holds too.
        self._discovering = (not self._rewrite and self.assets.manifest_path is not None
                             and (discover_interval is not None
                                  or self.assets.store is not None))
        self._discovery = make_discovery(self.assets, self._maker.entry, discover_interval)
        with gc_paused():
            self._build_routes()
        _LIVE.add(self)
        # Templates call url() dozens of times a page: bind the index's own
        # method (59 ns a call instead of 92 through the method below).
        self.url = self.assets.url  # type: ignore[method-assign]

    def url(self, path: str) -> str:
        """The versioned URL of ``path``; see :meth:`Assets.url`."""
        return self.assets.url(path)

    # -- deciding -----------------------------------------------------------

    def decide(self, path: str, request: Mapping[str, str] | None,
               block: bool = True) -> respond.Decision:
        """What a request gets: a :class:`~bustware.respond.Reply`, a
        :class:`~bustware.respond.FileReply` (open it with :attr:`opener`) or a
        :class:`~bustware.respond.ToApp` (:data:`~bustware.respond.PASS` for a path that is none
        of the core's business).

        ``path`` is the path as routed (the latin-1 reading of the percent-decoded bytes, a WSGI
        ``PATH_INFO``); ``request`` holds ``REQUEST_METHOD``, ``QUERY_STRING`` and the request's
        headers in CGI names (a WSGI environ as it is; for an ASGI scope see
        :meth:`decide_asgi`). With ``request`` None the answer is PASS, or
        :data:`~bustware.respond.NEEDS_REQUEST`. With ``block`` False, answering never touches
        the disk: what would (a rescan, a file's first request, a lookup, a newer manifest) gets
        :data:`~bustware.respond.NEEDS_THREAD`, to ask again off the event loop.

        The common requests (a GET or HEAD of a current or plain URL, a browser's revalidation)
        get replies made once per file; this is every request's path, so each step here is
        counted."""
        if self._autorefresh:
            if not block:
                return NEEDS_THREAD
            self._sync()
        route = self._routes.get(path)
        if route is None:
            if not path.startswith(self.prefix):
                return PASS
            if request is None:
                return NEEDS_REQUEST
            if not block:
                return NEEDS_THREAD
            return self._unrouted(request, path)
        if request is None:
            return NEEDS_REQUEST
        entry, kind = route
        if kind == QUERY:
            kind = self._query_kind(entry, request.get("QUERY_STRING", ""))
        method = request["REQUEST_METHOD"]
        if kind == OUTDATED or self._rewrite or (method != "GET" and method != "HEAD"):
            if not block and (kind == OUTDATED or entry.identity is None):
                return NEEDS_THREAD  # a newer manifest to read, a first build
            return self._serve(request, method, entry, kind)
        rep = entry.identity
        if rep is None:  # the file's first request
            if not block:
                return NEEDS_THREAD
            rep = entry.build()
        if entry.offers is not None:
            ae = request.get("HTTP_ACCEPT_ENCODING")
            rep = entry.chosen.get(ae) or entry.negotiate(ae, self._negotiator)
        # Conditional and Range requests take the long way. A chain of `in`
        # tests, not a loop over the names: this runs on every request.
        if ("HTTP_IF_NONE_MATCH" in request or "HTTP_IF_MODIFIED_SINCE" in request
                or "HTTP_RANGE" in request or "HTTP_IF_MATCH" in request
                or "HTTP_IF_UNMODIFIED_SINCE" in request
                or "HTTP_AVAILABLE_DICTIONARY" in request):
            if kind == CURRENT and self._deltas is not None and (
                    delta := self._deltas.answer(entry.asset, request, method, kind, block)):
                return delta
            if (request.get("HTTP_IF_NONE_MATCH") == rep.quoted_etag
                    and "HTTP_IF_MATCH" not in request
                    and "HTTP_IF_UNMODIFIED_SINCE" not in request):
                # The browser's revalidation, answered as respond.conditional
                # would, by the reply made once.
                return rep.not_modified[kind]  # type: ignore[index]
            return respond.conditional(request, method, rep, kind)
        if method == "HEAD":  # shared; the adapter sends a copy of the list
            head = rep.head
            if head is None:
                head = rep.head_replies()
            return head[kind]
        if rep.ok is None:  # streamed from disk
            return FileReply("200 OK", rep.headers[kind], rep, [(0, rep.size)], kind)
        return rep.ok[kind]

    def decide_asgi(self, path: str, scope: Mapping[str, Any],
                    block: bool = True) -> respond.Decision:
        """:meth:`decide` for a request in its ASGI form: ``scope`` is its HTTP scope, of which
        ``method``, ``query_string`` and ``headers`` are read, and only for a path that is the
        core's business; ``path`` is as for :meth:`decide`, with ``root_path`` in front
        (bustware.asgi).

        A GET or HEAD of a current or plain URL of a built file, and a browser's revalidation,
        read one pass over ``headers`` for the two fields they depend on and get a shared reply
        whose ASGI form is made once (``Rep.asgi_replies``). Any other field :meth:`decide`
        reads, or a repeat of one of the two, and every other request, go to :meth:`decide` with
        the CGI-named mapping it reads (building it for every request cost a third of a hit, 1.6
        -> 2.1 us)."""
        route = self._routes.get(path)
        if route is None:
            if not path.startswith(self.prefix) and not self._autorefresh:
                return PASS
        elif self._common and route[1] <= PLAIN and route[0].identity is not None and (
                (method := scope["method"]) == "GET" or method == "HEAD"):
            ae = inm = None
            for name, value in scope["headers"]:
                if name in ASGI_HEADERS:
                    if name == b"accept-encoding" and ae is None:
                        ae = value
                    elif name == b"if-none-match" and inm is None:
                        inm = value
                    else:
                        break
            else:
                entry, kind = route
                rep = entry.identity
                if entry.offers is not None:
                    text = None if ae is None else ae.decode("latin-1")
                    rep = entry.chosen.get(text) or entry.negotiate(text, self._negotiator)
                replies = rep.asgi  # type: ignore[union-attr]
                if replies is None:
                    replies = rep.asgi_replies()  # type: ignore[union-attr]
                if inm is None:
                    reply = replies.get[kind] if method == "GET" else replies.head[kind]
                    if reply is not None:  # None: streamed from disk
                        return reply
                elif inm == replies.etag:
                    return replies.not_modified[kind]
        return self.decide(path, cgi_request(scope), block)

    def _query_kind(self, entry: Entry, query: str) -> int:
        if query == entry.query:
            return CURRENT
        parsed = self.assets.style.parse("", query)
        if parsed is None:
            return PLAIN
        return CURRENT if parsed[1] == entry.asset.version else OUTDATED

    def _unrouted(self, request: Mapping[str, str], path_info: str) -> respond.Decision:
        method = request["REQUEST_METHOD"]
        query = request.get("QUERY_STRING", "")
        try:
            rel = path_info[len(self.prefix):].encode("latin-1").decode("utf-8")
        except UnicodeError:
            rel = ""
        found = self.assets.match(rel, query) if rel else None
        if found is None and self._discovering and rel:
            # Perhaps a file a newer build added (a page of an upgraded host).
            parsed = self.assets.style.parse(rel, query)
            newer = self._discovery.find(*parsed) if parsed is not None else None
            if newer is not None:
                return self._serve(request, method, newer, CURRENT)
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
        return self._serve(request, method, entry, kind, found[1])

    def _serve(self, request: Mapping[str, str], method: str, entry: Entry, kind: int,
               version: str | None = None) -> respond.Decision:
        """The general case: any method, any kind, any mode. ``version``: the one in the URL, when
        the caller parsed it."""
        if method != "GET" and method != "HEAD":
            if self._rewrite:
                return respond.TO_APP
            return respond.status_reply(method, "405 Method Not Allowed",
                                        [("Allow", "GET, HEAD")])
        if kind == OUTDATED and self._query and (self._old_entries or self._discovering):
            # The query style routes by path alone; an old version kept by
            # the manifest is found by the version in the query string.
            parsed = self.assets.style.parse("", request.get("QUERY_STRING", ""))
            version = parsed[1] if parsed else None
            old = self._old_entries.get((entry.asset.path, version)) if parsed else None
            if old is not None:
                entry, kind = old, CURRENT
        if kind == OUTDATED and self._discovering and version is not None:
            newer = self._discovery.find(entry.asset.path, version)
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
            return respond.ToApp(wsgi_path(self.assets.plain_url(entry.asset.path)),
                                 self.cache_control if kind == CURRENT else "no-store")
        # (A file whose references bustware rewrote: its version names the
        # rewritten bytes, which only bustware has, so bustware sends them.)
        rep = entry.identity
        if rep is None:  # the file's first request
            rep = entry.build()
        if entry.offers is not None:
            ae = request.get("HTTP_ACCEPT_ENCODING")
            rep = entry.chosen.get(ae) or entry.negotiate(ae, self._negotiator)
        if kind == CURRENT and self._deltas is not None:
            rep = self._deltas.for_request(entry.asset, request, True) or rep
        return respond.conditional(request, method, rep, kind)

    # -- the route table, and when the index changes ----------------------------

    def _build_routes(self) -> None:
        """Build the URL -> (entry, kind) table; header lists come later,
        per file, on its first request."""
        # Read before the files: a scan in another thread that lands while
        # we build must leave the generation unmatched, so that the next
        # request builds again (a scan stores its files, then counts up).
        generation = self.assets.generation
        self._old_entries, self._entries, self._routes = build_routes(
            self.assets, self._entries, self._maker.entry, query_style=self._query,
            old_versions=not self._rewrite)
        if self._deltas is not None:
            self._deltas.reset(self._entries.values(), self._old_entries.values())
        self._generation = generation

    def reload(self) -> bool:
        """Load the release the roots lead to now, if it changed (see
        :meth:`Assets.reload_if_changed`); for a worker forked from a preloading master. True if
        the index was loaded again."""
        reloaded = self.assets.reload_if_changed()
        self.rebuild_if_reloaded()
        return reloaded

    def rebuild_if_reloaded(self) -> None:
        """Rebuild the route table if the index was loaded again since it was built (by
        :meth:`reload`, or :func:`reload_changed` for every index of the process)."""
        if self.assets.generation != self._generation:
            with self._routes_lock, gc_paused():
                self._build_routes()
            self._discovery.reset()

    def _sync(self) -> None:
        """Development mode: pick up edited, new and deleted files."""
        self.assets.check()
        if self.assets.generation != self._generation:
            with self._routes_lock, gc_paused():
                if self.assets.generation != self._generation:
                    self._build_routes()


#: Every middleware alive in this process, for reload_changed().
_LIVE: weakref.WeakSet[Core] = weakref.WeakSet()


def reload_changed() -> None:
    """In a process forked from one that loaded the app (a gunicorn worker after ``kill -HUP`` with
    ``preload_app``): load again every index whose manifest changed or whose roots now resolve
    elsewhere, and rebuild the routes of every middleware serving one. An index that does not
    load stays as it was, with a warning."""
    _assets.reload_changed()
    for app in list(_LIVE):
        app.rebuild_if_reloaded()


def _check_options(app: object, prefix: str, mode: str, outdated: str, missing: str | None,
                   add_headers: object, discover_interval: object, cache_control: str,
                   plain_cache_control: str, allow_origin: str | None) -> str:
    """Check the middleware's options; the ``missing`` policy to use."""
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
    if prefix == "/":
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
        check_header_value(name, value)
    return missing


def _origin_relative(url: str) -> str:
    """``url`` without the base_url's scheme and host. A redirect points at
    the path: the client resolves it against the URL it asked for, so a
    request that came through the CDN goes back through the CDN, and one
    made to this origin directly stays here."""
    if url.startswith("/") and not url.startswith("//"):
        return url
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
