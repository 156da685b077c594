"""The route table: every URL path the middleware answers for, as a WSGI
server hands it on (PATH_INFO), -> the file's entry (bustware.entries) and
what that URL earns.

Built when the middleware is made, and again when the index changes (a
rescan in development, a reload after a fork); a request looks its path up
in one dictionary.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit

from .entries import _Entry

if TYPE_CHECKING:
    from .decide import Core

log = logging.getLogger("bustware")

# What a URL earns. CURRENT: the version in the URL is the version of the
# bytes sent, so they may be cached forever. PLAIN: no version, revalidate.
# OUTDATED: a version that is not the current one (a rolling deploy, an old
# page): nobody may store what we send under that URL. QUERY: a plain path
# in the query style, whose query string says which of the others.
CURRENT, PLAIN, OUTDATED, QUERY = 0, 1, 2, 3

Routes = dict[str, tuple[_Entry, int]]


def build_routes(core: Core) -> tuple[dict[tuple[str, str | None], _Entry],
                                      dict[str, _Entry], Routes]:
    """The entries of the versions of earlier generations by (path,
    version), the entries of the current files by path, and the URL ->
    (entry, kind) table, for the index of ``core``. An entry whose record
    did not change is kept, with the header lists it built."""
    assets = core.assets
    query_style = core._query
    routes: Routes = {}
    entries: dict[str, _Entry] = {}
    for asset in assets:
        entry = core._entries.get(asset.path)
        if entry is None or entry.asset is not asset:
            entry = core._entry(asset)
        entries[asset.path] = entry
        # A URL with no query in the query style: a file a bundler named
        # with its hash, current at its own name.
        if asset.version is not None and (not query_style or "?" not in asset.url):
            routes[_wsgi_path(asset.url)] = (entry, CURRENT)
    for path, entry in entries.items():
        plain = _wsgi_path(assets.plain_url(path))
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
    old_entries: dict[tuple[str, str | None], _Entry] = {}
    for asset in () if core._rewrite else assets.old_versions:
        entry = core._entry(asset)
        old_entries[(asset.path, asset.version)] = entry
        if not query_style:
            routes.setdefault(_wsgi_path(asset.url), (entry, CURRENT))
    return old_entries, entries, routes


def _wsgi_path(url: str) -> str:
    """The PATH_INFO a WSGI server hands us for ``url``: percent-decoded
    bytes, as latin-1 (PEP 3333). With a base_url (a CDN), the URL starts
    with a scheme and host that routing ignores."""
    if "%" not in url and url[:1] == "/" and url[:2] != "//":
        return url.partition("?")[0]  # nothing to decode: most URLs, at startup
    if not url.startswith("/") or url.startswith("//"):
        url = urlsplit(url).path
    return unquote_to_bytes(url.partition("?")[0]).decode("latin-1")
