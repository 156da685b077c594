"""HTTP details: preconditions (RFC 9110 section 13), byte ranges (section 14)
and content-coding negotiation.

Parsing is werkzeug's (``parse_etags``, ``parse_date``,
``parse_range_header``), except where its cost grows with a hostile value:
Accept-Encoding is read by one regex pass of our own (``_ELEMENT``), and an
entity-tag list over 1 KiB is searched, not parsed (``_LongETags``); this
module applies the RFC's rules to the results.
None of it runs for a plain request without conditional or Range headers:
the middleware checks for those headers first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Union

__all__ = [
    "ENCODING_PREFERENCE",
    "MAX_ACCEPT_ENCODING",
    "MAX_RANGES",
    "EncodingNegotiator",
    "evaluate_preconditions",
    "resolve_ranges",
]

#: Server preference among equally acceptable codings: smallest first.
ENCODING_PREFERENCE = ("br", "zstd", "gzip")

#: More ranges than this (after coalescing) are answered with the whole file:
#: a multipart body of thousands of tiny parts is the CVE-2011-3192 shape.
MAX_RANGES = 16

#: A Range header longer than this is ignored without parsing it.
MAX_RANGE_HEADER = 1024

#: An If-Match or If-None-Match list longer than this is not parsed: werkzeug's
#: parser loops in Python over its entity tags (0.9 ms for 8 KB of them), so
#: a longer list is searched for our one tag instead (see _LongETags).
MAX_ETAG_LIST = 1024


def _werkzeug():
    """werkzeug.http, imported on first use: importing any werkzeug module
    runs its package __init__, which loads its development server and test
    client (about 40 ms), and only conditional and Range requests need its
    parsers."""
    global _werkzeug_http
    if _werkzeug_http is None:
        import werkzeug.http

        _werkzeug_http = werkzeug.http
    return _werkzeug_http


_werkzeug_http = None

Ranges = list[tuple[int, int]]
RangeResult = Union[Ranges, None]


def evaluate_preconditions(environ: dict, etag: str, mtime: int) -> int | None:
    """Status code that the preconditions call for (304 or 412), or None.

    ``etag`` is the representation's strong entity tag without quotes and
    ``mtime`` its Last-Modified in whole seconds. Order and comparisons are
    those of RFC 9110 section 13.2.2; only GET and HEAD come here.
    """
    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is not None:
        # Strong comparison: a W/ tag never matches.
        if not _etags(if_match).contains(etag):
            return 412
    else:
        since = _date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
        if since is not None and mtime > since:
            return 412
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        # Weak comparison: W/"x" matches "x".
        if _etags(if_none_match).contains_weak(etag):
            return 304
        return None
    since = _date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    if since is not None and mtime <= since:
        return 304
    return None


def _etags(value: str):
    if len(value) > MAX_ETAG_LIST:
        return _LongETags(value)
    # strip(): werkzeug's list parser reads a leading space as part of the
    # first tag.
    return _werkzeug().parse_etags(value.strip())


class _LongETags:
    """An entity-tag list too long to parse, asked about one tag: a search
    for the quoted tag, in C whatever the length. Our tags hold no quote,
    so a quoted match is a list member (in a well-formed list). "*" counts
    only as the whole field, as RFC 9110 13.1.1-2 writes it."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.star = value.strip(" \t") == "*"

    def contains_weak(self, etag: str) -> bool:
        return self.star or f'"{etag}"' in self.value

    def contains(self, etag: str) -> bool:
        # Strong comparison: an occurrence not marked weak (W/) counts.
        if self.star:
            return True
        value, quoted = self.value, f'"{etag}"'
        at = value.find(quoted)
        while at >= 0:
            if value[at - 2:at] not in ("W/", "w/"):
                return True
            at = value.find(quoted, at + len(quoted))
        return False


def if_range_allows(environ: dict, etag: str, mtime: int) -> bool:
    """Whether a Range may be honoured given If-Range (RFC 9110 13.1.5)."""
    value = environ.get("HTTP_IF_RANGE")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        # Strong comparison; a weak validator in If-Range never matches.
        return value == f'"{etag}"'
    if value.startswith("W/"):
        return False
    since = _date(value)
    return since is not None and since == mtime


def _date(value: str | None) -> int | None:
    # Every HTTP-date form has at most one comma, so more means a list, and a
    # list is to be ignored (RFC 9110 13.1.3); werkzeug would read its first
    # member.
    if not value or value.count(",") > 1:
        return None
    try:
        parsed = _werkzeug().parse_date(value)
    except OverflowError:
        # werkzeug catches ValueError only; a year such as 99999999999 makes
        # the stdlib raise OverflowError. An unparsable date is ignored.
        return None
    return None if parsed is None else int(parsed.timestamp())


def resolve_ranges(header: str, length: int) -> RangeResult:
    """Byte ranges to send as ``[(start, stop_exclusive), ...]``.

    ``None`` means "ignore the header and send the whole file" (bad syntax, a
    unit other than bytes, too many ranges, or ranges that overlap or go
    backwards, which werkzeug's parser refuses; RFC 9110 14.2 lets a server
    ignore any Range). An empty list means nothing asked for is satisfiable:
    answer 416.
    """
    if len(header) > MAX_RANGE_HEADER:
        return None
    # The suffix range "-0" asks for the last zero bytes: unsatisfiable on
    # its own (RFC 9110 14.1.1). werkzeug reads it as "0-" (3.1.8) or
    # refuses the whole header (3.1.9), so drop such items before parsing.
    unit, _, spec = header.partition("=")
    items = [item.strip() for item in spec.split(",")]
    kept = [i for i in items if not (i[:1] == "-" and i[1:].isdigit() and not i[1:].strip("0"))]
    if len(kept) < len(items) and unit.strip().lower() == "bytes":
        if not kept:
            return []
        header = f"{unit}={', '.join(kept)}"
    parsed = _werkzeug().parse_range_header(header)
    if parsed is None or parsed.units != "bytes":
        return None
    ranges: Ranges = []
    for start, stop in parsed.ranges:
        if start < 0:  # suffix "-N"
            if length == 0:
                continue
            ranges.append((max(0, length + start), length))
        elif start < length:
            ranges.append((start, length if stop is None else min(stop, length)))
    if len(ranges) > 1:
        ranges = _coalesce(ranges)
        if len(ranges) > MAX_RANGES:
            return None
    return ranges


def _coalesce(ranges: Ranges) -> Ranges:
    """Keep the client's order unless ranges overlap, touch or are out of
    order; then merge them into ascending, disjoint ranges (RFC 9110 14.2
    allows this, and it bounds the work a hostile header can cause)."""
    ordered = all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    if ordered:
        return ranges
    merged: Ranges = []
    for start, stop in sorted(ranges):
        if merged and start <= merged[-1][1]:
            if stop > merged[-1][1]:
                merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged


#: An Accept-Encoding value longer than this is not read (the answer is
#: identity, as without the header) and not memoised. Browsers send under
#: 100 characters; reading 256 KiB values (what waitress or werkzeug's
#: server let through) would cost more than the request, and memoising them
#: would keep 128 MiB alive in a memo of 512.
MAX_ACCEPT_ENCODING = 1024

# One element of an Accept-Encoding list (RFC 9110 12.5.3) that names a
# coding we may answer with, with its weight, in a value lowercased and given
# a leading comma. Hand-written rather than webob's parser, for cost: webob
# builds an object per element (0.3 ms for 1 KB of short codings). This is
# one pass of the regex engine in C, and only elements naming one of these
# six codings come back to Python.
# A malformed element is ignored, as if it were not in the list.
_ELEMENT = re.compile(
    r",[ \t]*(br|zstd|gzip|x-gzip|identity|\*)[ \t]*"
    r"(?:;[ \t]*q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)[ \t]*)?(?=,|\Z)"
)


class EncodingNegotiator:
    """Picks a content coding for an Accept-Encoding value.

    The answer depends only on the header value and on which codings the
    file has, and real traffic shows few distinct header values, so answers
    are memoised and the hot path is one dictionary lookup. The memo is
    bounded in count and in bytes: a client sending endless distinct values
    only costs a clear(), and values longer than ``MAX_ACCEPT_ENCODING`` are
    neither read nor kept.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self._memo: dict[tuple[str, tuple[str, ...]], str] = {}
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def choose(self, header: str | None, offers: tuple[str, ...]) -> str:
        """``offers`` are the file's codings in server preference order;
        returns one of them or ``"identity"``."""
        if header is None:
            # No Accept-Encoding: RFC 9110 12.5.3 allows any coding, but
            # clients that send none are scripts and old proxies; identity
            # is what nginx's gzip_static and every CDN send them.
            return "identity"
        key = (header, offers)
        choice = self._memo.get(key)
        if choice is None:
            if len(header) > MAX_ACCEPT_ENCODING:
                # Not from a browser: what a client without the header gets,
                # at no cost (the policy of MAX_RANGE_HEADER too).
                return "identity"
            choice = _negotiate(header, offers)
            with self._lock:
                if len(self._memo) >= self._maxsize:
                    self._memo.clear()
                self._memo[key] = choice
        return choice


def _negotiate(header: str, offers: Iterable[str]) -> str:
    # A coding listed twice counts at its first listing (as webob reads it):
    # dict() keeps the last value of a key, so feed it the matches reversed.
    # This stays in C however many elements match.
    weights = dict(reversed(_ELEMENT.findall("," + header.lower())))
    if not weights:
        return "identity"
    if "x-gzip" in weights and "gzip" not in weights:
        # RFC 9110 8.4.1.3: x-gzip is to be read as gzip.
        weights["gzip"] = weights["x-gzip"]
    star = weights.get("*")
    best, best_q = "identity", 0.0
    for coding in offers:
        # An unlisted coding is acceptable only through "*" (12.5.3).
        q = weights.get(coding, star)
        if q is not None and _q(q) > best_q:
            best, best_q = coding, _q(q)
    # Only an identity the client ranked competes on q-value: an unlisted
    # identity would otherwise make "gzip;q=0.5" mean "no gzip", the
    # opposite of why a client lists a coding. It loses ties: among equals
    # the server prefers the smaller bytes.
    identity = weights.get("identity")
    if identity is not None and _q(identity) > best_q:
        return "identity"
    return best


def _q(weight: str) -> float:
    return 1.0 if weight == "" else float(weight)
