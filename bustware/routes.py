"""The route table: every URL path the middleware answers for, as a WSGI
server hands it on (PATH_INFO), -> the file's entry (bustware.entries) and
what that URL earns.

Built when the middleware is made, and again when the index changes (a
rescan in development, a reload after a fork); a request looks its path up
in one dictionary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Callable, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

from .entries import Entry
from .records import Asset

log = logging.getLogger("bustware")

# What a URL earns. CURRENT: the version in the URL is the version of the
# bytes sent, so they may be cached forever. PLAIN: no version, revalidate.
# OUTDATED: a version that is not the current one (a rolling deploy, an old
# page): nobody may store what we send under that URL. QUERY: a plain path
# in the query style, whose query string says which of the others.
CURRENT, PLAIN, OUTDATED, QUERY = 0, 1, 2, 3

__all__ = ["CURRENT", "OUTDATED", "PLAIN", "QUERY", "Index", "Routes", "build_routes",
           "wsgi_path"]

Routes = dict[str, tuple[Entry, int]]


class Index(Protocol):
    """What the route table reads of the index (bustware.assets.Assets)."""

    @property
    def old_versions(self) -> Iterable[Asset]: ...

    def __iter__(self) -> Iterator[Asset]: ...

    def plain_url(self, path: str) -> str: ...


def build_routes(assets: Index, previous: Mapping[str, Entry],
                 make_entry: Callable[[Asset], Entry], *, query_style: bool,
                 old_versions: bool) -> tuple[dict[tuple[str, str | None], Entry],
                                              dict[str, Entry], Routes]:
    """The entries of the versions of earlier generations by (path,
    version), the entries of the current files by path, and the URL ->
    (entry, kind) table, for the files of ``assets``. An entry of
    ``previous`` (the current entries by path) whose record did not change
    is kept, with the header lists it built; ``make_entry`` makes the others.
    ``query_style``: the index puts versions in the query string;
    ``old_versions``: route the versions of earlier generations too."""
    routes: Routes = {}
    entries: dict[str, Entry] = {}
    for asset in assets:
        entry = previous.get(asset.path)
        if entry is None or entry.asset is not asset:
            entry = make_entry(asset)
        entries[asset.path] = entry
        # A URL with no query in the query style: a file a bundler named
        # with its hash, current at its own name.
        if asset.version is not None and (not query_style or "?" not in asset.url):
            routes[wsgi_path(asset.url)] = (entry, CURRENT)
    for path, entry in entries.items():
        plain = wsgi_path(assets.plain_url(path))
        kind = QUERY if query_style and entry.asset.version is not None else PLAIN
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
    old_entries: dict[tuple[str, str | None], Entry] = {}
    for asset in assets.old_versions if old_versions else ():
        entry = make_entry(asset)
        old_entries[(asset.path, asset.version)] = entry
        if not query_style:
            routes.setdefault(wsgi_path(asset.url), (entry, CURRENT))
    return old_entries, entries, routes


def wsgi_path(url: str) -> str:
    """The PATH_INFO a WSGI server hands us for ``url``: percent-decoded
    bytes, as latin-1 (PEP 3333). With a base_url (a CDN), the URL starts
    with a scheme and host that routing ignores."""
    if "%" not in url and url[:1] == "/" and url[:2] != "//":
        return url.partition("?")[0]  # nothing to decode: most URLs, at startup
    if not url.startswith("/") or url.startswith("//"):
        url = urlsplit(url).path
    return unquote_to_bytes(url.partition("?")[0]).decode("latin-1")
