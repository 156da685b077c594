"""HTTP to the letter (issue 3): preconditions, ranges, negotiated
precompressed variants, headers and methods.

The heart of this file is a table of request -> response cases (``CASES``).
Each case runs through both WSGI test clients and through the ASGI
middleware (``fetch``), and every response is checked three ways: what the
case expects (status, headers, exact body bytes); what holds
for every response of its kind (Content-Length equals the body, Vary on
every answer about a file that has variants, 304 header set, compressed
bodies decompress to the original, HEAD equals GET minus the body); and
httplint, which must have nothing BAD or WARN to say beyond ``LINT_ALLOWED``.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Union

import brotli
import pytest
import zstandard
from conftest import Response, make_tree, via_asgi, via_webob, via_werkzeug
from httplint import HttpRequestLinter, HttpResponseLinter, levels
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.http import http_date

from bustware import Bustware, opener
from bustware.compress import compress_file
from bustware.http import MAX_RANGES, EncodingNegotiator, resolve_ranges


@pytest.fixture(params=["werkzeug", "webob", "asgi"])
def fetch(request):
    """Every request of this file through both test clients of the WSGI
    middleware and through the ASGI middleware deciding with the same
    routes (bustware.asgi), from one table."""
    return {"werkzeug": via_werkzeug, "webob": via_webob, "asgi": via_asgi}[request.param]


# -- the fixture tree ---------------------------------------------------------

#: Small files are held in memory, bigger ones streamed from disk: both paths
#: are under test, so the threshold is low and BIG (and its variants) exceed it.
THRESHOLD = 16 * 1024
MTIME = 1609459200  # Fri, 01 Jan 2021 00:00:00 GMT
IMMUTABLE = "max-age=31536000, immutable"
ORIGIN = "https://app.example"

CSS = "css/app.css"  # variants br, gzip, zstd; in memory
BIG = "js/big.js"  # variants br, gzip, zstd; all streamed
TXT = "notes.txt"  # no variants
EMPTY = "empty.txt"


def _css() -> bytes:
    rules = (f".c{i} {{ color: #{i * 7919 % 0xFFFFFF:06x}; margin: {i % 17}px }}\n"
             for i in range(220))
    return "".join(rules).encode()


def _big_js() -> bytes:
    # Words drawn at random from a large vocabulary: compressible, but not so
    # much that the variants drop under the memory threshold.
    rnd = random.Random(3)
    vocab = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(3, 9)))
             for _ in range(4000)]
    lines = (f"var {rnd.choice(vocab)} = {rnd.choice(vocab)}({rnd.randint(0, 99999)});\n"
             for _ in range(6000))
    return "".join(lines).encode()


FILES: dict[str, bytes] = {
    CSS: _css(),
    BIG: _big_js(),
    TXT: b"Plain notes without precompressed variants.\n" * 40,
    EMPTY: b"",
    "js/app.js": b"export const answer = 42;\n",
    "js/mod.mjs": b"export default function f() { return 1; }\n",
    "js/app.js.map": b'{"version":3,"sources":["app.ts"],"mappings":"AAAA"}',
    "app.wasm": b"\x00asm\x01\x00\x00\x00" + bytes(64),
    "fonts/font.woff2": b"wOF2\x00\x01\x00\x00" + bytes(64),
    "img/pic.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(32),
    "img/pic.webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(32),
    "img/pic.avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(32),
    "img/logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
    "site.webmanifest": b'{"name":"bustware","icons":[]}',
    "data.unknownext": b"\x00\x01\x02\x03 opaque",
}

CONTENT_TYPES = {
    CSS: "text/css; charset=utf-8",
    BIG: "text/javascript; charset=utf-8",
    TXT: "text/plain; charset=utf-8",
    EMPTY: "text/plain; charset=utf-8",
    "js/app.js": "text/javascript; charset=utf-8",
    "js/mod.mjs": "text/javascript; charset=utf-8",
    "js/app.js.map": "application/json",
    "app.wasm": "application/wasm",
    "fonts/font.woff2": "font/woff2",
    "img/pic.png": "image/png",
    "img/pic.webp": "image/webp",
    "img/pic.avif": "image/avif",
    "img/logo.svg": "image/svg+xml; charset=utf-8",
    "site.webmanifest": "application/manifest+json",
    "data.unknownext": "application/octet-stream",
}

WITH_VARIANTS = (CSS, BIG)
SUFFIX = {"br": ".br", "gzip": ".gz", "zstd": ".zst"}
DECODE: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b),
}


def build_tree(root: Path) -> Path:
    make_tree(root, FILES)
    for path in WITH_VARIANTS:
        # The variants are "produced by a function of the library".
        written = compress_file(root / path, ("br", "gzip", "zstd"))
        assert set(written) == {"br", "gzip", "zstd"}, written
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (MTIME, MTIME))
    return root


@dataclass
class Site:
    root: Path
    apps: dict[str, Bustware]
    ctx: dict[str, dict[str, str]] = field(default_factory=dict)

    def rep_bytes(self, path: str, coding: str) -> bytes:
        suffix = "" if coding == "identity" else SUFFIX[coding]
        return (self.root / (path + suffix)).read_bytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    root = build_tree(tmp_path_factory.mktemp("http") / "static")
    # compress=False: this suite is about precompressed files, and TXT stays a
    # file without variants (compression without a build: test_live_compress).
    apps = {
        "default": Bustware(None, root, memory_threshold=THRESHOLD, compress=False),
        "cors": Bustware(None, root, memory_threshold=THRESHOLD, allow_origin=ORIGIN,
                         compress=False),
    }
    assets = apps["default"].assets
    # What the suite relies on: which files are in memory and which streamed.
    assert assets[CSS].body is not None
    assert all(v.body is not None for v in assets[CSS].variants.values())
    assert assets[BIG].body is None
    assert sorted(assets[BIG].variants) == ["br", "gzip", "zstd"]
    assert all(v.body is None for v in assets[BIG].variants.values())
    assert not assets[TXT].variants
    s = Site(root, apps)
    for path in FILES:
        s.ctx[path] = _context(apps["default"], path)
    return s


def _context(app: Bustware, path: str) -> dict[str, str]:
    """Values a case's request headers may refer to as ``{name}``. The ETags
    are the ones the server sends, fetched with a plain request."""
    ctx = {
        "lm": "Fri, 01 Jan 2021 00:00:00 GMT",  # IMF-fixdate
        "lm850": "Friday, 01-Jan-21 00:00:00 GMT",  # RFC 850
        "lmasc": "Fri Jan  1 00:00:00 2021",  # asctime
        "before": "Thu, 31 Dec 2020 23:59:59 GMT",
        "after": "Fri, 01 Jan 2021 01:00:00 GMT",
    }
    assert http_date(MTIME) == ctx["lm"]
    for coding in ("identity", "br", "gzip", "zstd"):
        headers = {} if coding == "identity" else {"Accept-Encoding": coding}
        r = via_werkzeug(app, app.url(path), "HEAD", headers)
        key = "etag" if coding == "identity" else f"etag_{coding}"
        ctx[key] = r.header("ETag") or ""
    return ctx


# -- the table ----------------------------------------------------------------

Body = Union[Callable[[bytes], bytes], None]


def full(d: bytes) -> bytes:
    return d


def part(start: int, stop: int | None = None) -> Callable[[bytes], bytes]:
    return lambda d: d[start:stop]


@dataclass
class Case:
    id: str
    file: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    status: int = 200
    #: The representation the response is about (its ETag, Content-Encoding
    #: and the bytes ``body`` is taken from).
    coding: str = "identity"
    #: Expected body from the representation's bytes; None: no body.
    body: Body = full
    #: Expected header values; None means "must be absent". Callables get
    #: the representation's bytes.
    expect: dict[str, Any] = field(default_factory=dict)
    #: For multipart/byteranges: the (first, last) byte positions of the parts.
    parts: list[tuple[int, int]] | None = None
    url: str | None = None  # a URL other than the file's current one
    app: str = "default"


def content_range(first: int, last: int | None = None) -> Callable[[bytes], str]:
    """``bytes first-last/len``; negative positions count from the end."""

    def value(d: bytes) -> str:
        a = first if first >= 0 else len(d) + first
        b = len(d) - 1 if last is None else (last if last >= 0 else len(d) + last)
        return f"bytes {a}-{b}/{len(d)}"

    return value


CASES: list[Case] = []


def case(*args: Any, **kwargs: Any) -> None:
    c = Case(*args, **kwargs)
    if c.status >= 300 and c.body is full:
        c.body = None
    CASES.append(c)


# Negotiation: Accept-Encoding with q-values, through webob.
AE = "Accept-Encoding"
case("ae-none-identity", CSS)
case("ae-gzip", CSS, {AE: "gzip"}, coding="gzip")
case("ae-br", CSS, {AE: "br"}, coding="br")
case("ae-zstd", CSS, {AE: "zstd"}, coding="zstd")
case("ae-browser-prefers-br", CSS, {AE: "gzip, deflate, br, zstd"}, coding="br")
case("ae-gzip-q0", CSS, {AE: "gzip;q=0"})
case("ae-gzip-q0-star", CSS, {AE: "gzip;q=0, *"}, coding="br")
case("ae-gzip-q0-star-low", CSS, {AE: "br;q=0, *;q=0.1"}, coding="zstd")
case("ae-star", CSS, {AE: "*"}, coding="br")
case("ae-star-q0", CSS, {AE: "*;q=0"})
case("ae-identity-q0-nothing-else", CSS, {AE: "identity;q=0"})
case("ae-case-insensitive", CSS, {AE: "GZIP"}, coding="gzip")
case("ae-case-insensitive-q", CSS, {AE: "Gzip;Q=0.5, BR;q=0.4"}, coding="gzip")
case("ae-q-order", CSS, {AE: "br;q=0.5, gzip;q=0.8, zstd;q=0.1"}, coding="gzip")
case("ae-low-q-beats-unlisted-identity", CSS, {AE: "gzip;q=0.2"}, coding="gzip")
case("ae-identity-preferred", CSS, {AE: "identity, gzip;q=0.5"})
case("ae-unknown-codings", CSS, {AE: "deflate, compress"})
case("ae-malformed", CSS, {AE: "gzip;q=abc"})
case("ae-x-gzip", CSS, {AE: "x-gzip"}, coding="gzip")
case("ae-no-variants-no-vary", TXT, {AE: "gzip, br"}, expect={"Vary": None})
case("ae-streamed-gzip", BIG, {AE: "gzip"}, coding="gzip")
case("ae-streamed-br", BIG, {AE: "br"}, coding="br")
case("ae-streamed-identity", BIG)
# What browsers and tools send, and the corners of RFC 9110 12.5.3 (issue 11).
case("ae-firefox", CSS, {AE: "gzip, deflate, br, zstd"}, coding="br")
case("ae-safari", CSS, {AE: "gzip, deflate, br"}, coding="br")
case("ae-old-chrome", CSS, {AE: "gzip, deflate, sdch, br"}, coding="br")
case("ae-curl", CSS, {AE: "deflate, gzip"}, coding="gzip")
case("ae-whitespace", CSS, {AE: " gzip ;q=0.5 ,\tbr ; q=0.4 "}, coding="gzip")
case("ae-upper-q", CSS, {AE: "BR;Q=0.9, GZIP;Q=1"}, coding="gzip")
case("ae-three-decimals", CSS, {AE: "br;q=0.001, gzip;q=0.002"}, coding="gzip")
case("ae-q-one-point-zero", CSS, {AE: "gzip;q=1.000, br;q=0.999"}, coding="gzip")
case("ae-identity-q0-gzip", CSS, {AE: "identity;q=0, gzip"}, coding="gzip")
case("ae-star-q0-gzip", CSS, {AE: "gzip;q=0.3, *;q=0"}, coding="gzip")
case("ae-star-q0-identity-listed", CSS, {AE: "*;q=0, identity"})
case("ae-star-beats-low", CSS, {AE: "br;q=0.1, *;q=0.5"}, coding="zstd")
case("ae-x-gzip-q", CSS, {AE: "x-gzip;q=0.5, br;q=0.4"}, coding="gzip")
case("ae-x-gzip-q0", CSS, {AE: "x-gzip;q=0, br;q=0.4"}, coding="br")
case("ae-listed-twice-first-counts", CSS, {AE: "gzip;q=0, gzip"})
case("ae-empty", CSS, {AE: ""})
case("ae-empty-elements", CSS, {AE: ", ,gzip,,"}, coding="gzip")
case("ae-q-out-of-range", CSS, {AE: "gzip;q=1.5"})
case("ae-not-a-prefix", CSS, {AE: "gzipx, xbr, br2"})
# Longer than any browser sends (MAX_ACCEPT_ENCODING): read as no header.
case("ae-overlong-identity", CSS, {AE: "br, " + ", ".join(f"c{i}" for i in range(4000))})
case("ae-overlong-streamed", BIG, {AE: "gzip, " + "x" * 8192})

# Headers: Content-Type overrides and the cache policy of each URL kind.
for _path, _ctype in CONTENT_TYPES.items():
    case(f"ctype-{_path}", _path, expect={"Content-Type": _ctype})
case("plain-url-revalidates", CSS, url="/static/css/app.css",
     expect={"Cache-Control": "no-cache"})
case("cors-header", CSS, app="cors", expect={"Access-Control-Allow-Origin": ORIGIN})
case("cors-header-variant", CSS, {AE: "br"}, coding="br", app="cors",
     expect={"Access-Control-Allow-Origin": ORIGIN})

# Methods.
case("head-identity", CSS, method="HEAD", body=None)
case("head-gzip", CSS, {AE: "gzip"}, method="HEAD", coding="gzip", body=None)
case("head-streamed", BIG, method="HEAD", body=None)
case("head-streamed-br", BIG, {AE: "br"}, method="HEAD", coding="br", body=None)
case("head-ignores-range", CSS, {"Range": "bytes=0-9"}, method="HEAD", body=None,
     expect={"Content-Range": None})
case("head-no-variants", TXT, method="HEAD", body=None, expect={"Vary": None})
for _method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
    case(f"method-{_method}", CSS, method=_method, status=405,
         expect={"Allow": "GET, HEAD"})

# Variant files are not served under their own names; 404s stay 404s.
case("variant-own-plain-name", CSS, url="/static/css/app.css.gz", status=404)
case("variant-own-name-br", CSS, url="/static/css/app.css.br", status=404)
case("missing", CSS, url="/static/css/nope.css", status=404)
for _name, _headers in {
    "inm-star": {"If-None-Match": "*"},
    "if-match": {"If-Match": '"x"'},
    "ims": {"If-Modified-Since": "{after}"},
    "ius": {"If-Unmodified-Since": "{before}"},
    "range": {"Range": "bytes=0-0"},
    "if-range": {"Range": "bytes=0-0", "If-Range": "{etag}"},
}.items():
    case(f"missing-stays-404-{_name}", CSS, _headers, url="/static/css/nope.css", status=404)

# If-None-Match: weak comparison, lists, *, per-variant tags.
NOT_MODIFIED = {"status": 304, "body": None}
case("inm-match", CSS, {"If-None-Match": "{etag}"}, **NOT_MODIFIED)
case("inm-list", CSS, {"If-None-Match": '"aaa", {etag}, W/"bbb"'}, **NOT_MODIFIED)
case("inm-weak-matches", CSS, {"If-None-Match": "W/{etag}"}, **NOT_MODIFIED)
case("inm-star", CSS, {"If-None-Match": "*"}, **NOT_MODIFIED)
case("inm-no-match", CSS, {"If-None-Match": '"aaa", W/"bbb"'})
case("inm-variant-tag", CSS, {AE: "gzip", "If-None-Match": "{etag_gzip}"}, coding="gzip",
     **NOT_MODIFIED)
case("inm-gzip-tag-identity-request", CSS, {"If-None-Match": "{etag_gzip}"})
case("inm-identity-tag-br-request", CSS, {AE: "br", "If-None-Match": "{etag}"}, coding="br")
case("inm-head", CSS, {"If-None-Match": "{etag}"}, method="HEAD", **NOT_MODIFIED)
case("inm-streamed", BIG, {"If-None-Match": "{etag}"}, **NOT_MODIFIED)
case("inm-no-variants", TXT, {"If-None-Match": "{etag}"}, **NOT_MODIFIED)
case("inm-plain-url", CSS, {"If-None-Match": "{etag}"}, url="/static/css/app.css",
     expect={"Cache-Control": "no-cache"}, **NOT_MODIFIED)
case("inm-cors", CSS, {AE: "br", "If-None-Match": "{etag_br}"}, coding="br", app="cors",
     expect={"Access-Control-Allow-Origin": ORIGIN}, **NOT_MODIFIED)

# If-Modified-Since: three date forms; ignored with If-None-Match or bad dates.
case("ims-imf-fixdate", CSS, {"If-Modified-Since": "{lm}"}, **NOT_MODIFIED)
case("ims-rfc850", CSS, {"If-Modified-Since": "{lm850}"}, **NOT_MODIFIED)
case("ims-asctime", CSS, {"If-Modified-Since": "{lmasc}"}, **NOT_MODIFIED)
case("ims-later", CSS, {"If-Modified-Since": "{after}"}, **NOT_MODIFIED)
case("ims-earlier", CSS, {"If-Modified-Since": "{before}"})
case("ims-invalid", CSS, {"If-Modified-Since": "yesterday at noon"})
case("ims-two-dates", CSS, {"If-Modified-Since": "{lm}, {lm}"})
case("ims-ignored-with-inm", CSS, {"If-None-Match": '"other"', "If-Modified-Since": "{after}"})
case("ims-streamed-gzip", BIG, {AE: "gzip", "If-Modified-Since": "{lm}"}, coding="gzip",
     **NOT_MODIFIED)

# If-Match (strong comparison) and If-Unmodified-Since: 412.
FAILED = {"status": 412, "body": None}
case("im-match", CSS, {"If-Match": "{etag}"})
case("im-list", CSS, {"If-Match": '"aaa", {etag}'})
case("im-star", CSS, {"If-Match": "*"})
case("im-weak-never-matches", CSS, {"If-Match": "W/{etag}"}, **FAILED)
case("im-no-match", CSS, {"If-Match": '"aaa"'}, **FAILED)
case("im-other-variant", CSS, {AE: "gzip", "If-Match": "{etag}"}, coding="gzip", **FAILED)
case("im-no-match-head", CSS, {"If-Match": '"aaa"'}, method="HEAD", **FAILED)
case("im-no-match-no-variants", TXT, {"If-Match": '"aaa"'}, **FAILED)
case("im-no-match-cors", CSS, {"If-Match": '"aaa"'}, app="cors",
     expect={"Access-Control-Allow-Origin": ORIGIN}, **FAILED)
case("ius-equal", CSS, {"If-Unmodified-Since": "{lm}"})
case("ius-later", CSS, {"If-Unmodified-Since": "{after}"})
case("ius-earlier", CSS, {"If-Unmodified-Since": "{before}"}, **FAILED)
case("ius-invalid", CSS, {"If-Unmodified-Since": "not a date"})

# RFC 9110 13.2.2: the order of evaluation.
case("order-im-before-inm", CSS, {"If-Match": '"aaa"', "If-None-Match": "{etag}"}, **FAILED)
case("order-im-ok-ius-ignored", CSS, {"If-Match": "{etag}", "If-Unmodified-Since": "{before}"})
case("order-ius-before-inm", CSS,
     {"If-Unmodified-Since": "{before}", "If-None-Match": "{etag}"}, **FAILED)
case("order-inm-before-range", CSS, {"If-None-Match": "{etag}", "Range": "bytes=0-9"},
     **NOT_MODIFIED)
case("order-ims-before-range", CSS, {"If-Modified-Since": "{lm}", "Range": "bytes=0-9"},
     **NOT_MODIFIED)
case("order-im-then-range", CSS, {"If-Match": "{etag}", "Range": "bytes=0-9"}, status=206,
     body=part(0, 10), expect={"Content-Range": content_range(0, 9)})

# If-Range: strong ETag or the exact Last-Modified date; otherwise the full 200.
RANGE_0_9 = {"status": 206, "body": part(0, 10), "expect": {"Content-Range": content_range(0, 9)}}
case("if-range-strong-etag", CSS, {"Range": "bytes=0-9", "If-Range": "{etag}"}, **RANGE_0_9)
case("if-range-weak-etag", CSS, {"Range": "bytes=0-9", "If-Range": "W/{etag}"})
case("if-range-other-etag", CSS, {"Range": "bytes=0-9", "If-Range": '"aaa"'})
case("if-range-exact-date", CSS, {"Range": "bytes=0-9", "If-Range": "{lm}"}, **RANGE_0_9)
case("if-range-later-date", CSS, {"Range": "bytes=0-9", "If-Range": "{after}"})
case("if-range-earlier-date", CSS, {"Range": "bytes=0-9", "If-Range": "{before}"})
case("if-range-garbage", CSS, {"Range": "bytes=0-9", "If-Range": "whenever"})
case("if-range-variant-etag", CSS, {AE: "gzip", "Range": "bytes=0-9", "If-Range": "{etag_gzip}"},
     coding="gzip", **RANGE_0_9)
case("if-range-identity-etag-on-variant", CSS,
     {AE: "gzip", "Range": "bytes=0-9", "If-Range": "{etag}"}, coding="gzip")
case("if-range-streamed", BIG, {"Range": "bytes=0-9", "If-Range": "{etag}"}, **RANGE_0_9)

# Ranges, on a file in memory and on a streamed one.
for _f, _tag in ((CSS, "mem"), (BIG, "stream")):
    case(f"range-single-{_tag}", _f, {"Range": "bytes=10-19"}, status=206, body=part(10, 20),
         expect={"Content-Range": content_range(10, 19)})
    case(f"range-first-byte-{_tag}", _f, {"Range": "bytes=0-0"}, status=206, body=part(0, 1),
         expect={"Content-Range": content_range(0, 0)})
    case(f"range-last-byte-{_tag}", _f, {"Range": "bytes=-1"}, status=206, body=part(-1),
         expect={"Content-Range": content_range(-1)})
    case(f"range-suffix-{_tag}", _f, {"Range": "bytes=-500"}, status=206, body=part(-500),
         expect={"Content-Range": content_range(-500)})
    case(f"range-open-{_tag}", _f, {"Range": "bytes=5000-"}, status=206, body=part(5000),
         expect={"Content-Range": content_range(5000)})
    case(f"range-clamped-{_tag}", _f, {"Range": "bytes=100-99999999"}, status=206,
         body=part(100), expect={"Content-Range": content_range(100)})
    case(f"range-suffix-longer-than-file-{_tag}", _f, {"Range": "bytes=-99999999"},
         status=206, expect={"Content-Range": content_range(0)})
    case(f"range-unsatisfiable-{_tag}", _f, {"Range": "bytes=99999999-"}, status=416,
         body=None)
    case(f"range-suffix-zero-{_tag}", _f, {"Range": "bytes=-0"}, status=416, body=None)
    case(f"range-multipart-{_tag}", _f, {"Range": "bytes=0-9,20-29,-5"}, status=206,
         parts=[(0, 9), (20, 29), (-5, -1)])
    case(f"range-touching-coalesced-{_tag}", _f, {"Range": "bytes=0-9,10-19"}, status=206,
         body=part(0, 20), expect={"Content-Range": content_range(0, 19)})
    case(f"range-gzip-variant-{_tag}", _f, {AE: "gzip", "Range": "bytes=0-99"}, status=206,
         coding="gzip", body=part(0, 100), expect={"Content-Range": content_range(0, 99)})
    case(f"range-br-variant-suffix-{_tag}", _f, {AE: "br", "Range": "bytes=-100"},
         status=206, coding="br", body=part(-100), expect={"Content-Range": content_range(-100)})
    case(f"range-variant-unsatisfiable-{_tag}", _f, {AE: "zstd", "Range": "bytes=99999999-"},
         status=416, coding="zstd", body=None)
    case(f"range-variant-multi-is-full-{_tag}", _f, {AE: "gzip", "Range": "bytes=0-9,20-29"},
         coding="gzip")
case("range-overlap-suffix-coalesced", TXT, {"Range": "bytes=0-1599,-300"}, status=206,
     body=part(0), expect={"Content-Range": content_range(0)})
case("range-overlapping-full", CSS, {"Range": "bytes=0-10,5-15"})
case("range-descending-full", CSS, {"Range": "bytes=20-29,0-9"})
case("range-empty-file", EMPTY, {"Range": "bytes=0-"}, status=416, body=None,
     expect={"Content-Range": "bytes */0"})
case("range-empty-file-suffix", EMPTY, {"Range": "bytes=-1"}, status=416, body=None)
case("get-empty-file", EMPTY, expect={"Content-Length": "0"})
case("range-unit-case", CSS, {"Range": "BYTES=0-9"}, **RANGE_0_9)
case("range-other-unit", CSS, {"Range": "items=0-9"}, expect={"Content-Range": None})
case("range-bad-syntax", CSS, {"Range": "bytes=abc"})
case("range-backwards", CSS, {"Range": "bytes=9-0"})
case("range-empty-spec", CSS, {"Range": "bytes="})
case("range-no-variants", TXT, {"Range": "bytes=5-14"}, status=206, body=part(5, 15),
     expect={"Content-Range": content_range(5, 14), "Vary": None})
case("range-16-parts", CSS, {"Range": "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}"
                                                        for i in range(16))},
     status=206, parts=[(i * 10, i * 10 + 1) for i in range(16)])

# Hostile Range headers: bounded work, and never a 500.
case("hostile-17-parts", CSS, {"Range": "bytes=" + ",".join(f"{i * 10}-{i * 10}"
                                                           for i in range(17))})
case("hostile-hundreds", CSS, {"Range": "bytes=" + ",".join(f"{i * 2}-{i * 2}"
                                                           for i in range(400))})
case("hostile-hundreds-overlapping", CSS, {"Range": "bytes=" + ",".join("0-" for _ in range(300))})
case("hostile-many-suffixes", CSS, {"Range": "bytes=" + ",".join("-1" for _ in range(300))})
case("hostile-1000-digit-start", CSS, {"Range": "bytes=" + "9" * 1000 + "-"}, status=416,
     body=None)
case("hostile-1000-digit-end", CSS, {"Range": "bytes=0-" + "9" * 1000}, status=206,
     expect={"Content-Range": content_range(0)})
case("hostile-5000-digits", CSS, {"Range": "bytes=0-" + "9" * 5000})
case("hostile-5000-digit-start", BIG, {"Range": "bytes=" + "1" * 5000 + "-"})


# -- running a case -----------------------------------------------------------

def _fill(value: str, ctx: dict[str, str]) -> str:
    # str.format would choke on the braces of a literal value; only {name}
    # placeholders made of letters and underscores are replaced.
    return re.sub(r"\{([a-z_0-9]+)\}", lambda m: ctx[m.group(1)], value)


def request(site: Site, c: Case, fetch, method: str | None = None,
            drop: tuple[str, ...] = ()) -> tuple[Response, dict[str, str]]:
    app = site.apps[c.app]
    ctx = site.ctx[c.file]
    headers = {k: _fill(v, ctx) for k, v in c.headers.items() if k not in drop}
    url = c.url or app.url(c.file)
    path, _, query = url.partition("?")
    return fetch(app, path, method or c.method, headers, query), headers


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_case(site, c: Case, fetch):
    r, sent = request(site, c, fetch)
    assert r.status == c.status, (r.status, r.headers, r.body[:200])
    data = site.rep_bytes(c.file, c.coding)
    original = FILES[c.file]
    has_variants = c.file in WITH_VARIANTS
    about_file = c.status in (200, 206, 304, 412, 416)

    # What the case asks for.
    for name, want in c.expect.items():
        got = r.header(name)
        want = want(data) if callable(want) else want
        assert got == want, f"{name}: {got!r} != {want!r}"

    # What holds for every response.
    if c.method != "HEAD" and c.status != 304:
        assert r.header("Content-Length") == str(len(r.body))
    if about_file:
        assert r.header("Vary") == ("Accept-Encoding" if has_variants else None)
    if c.app == "cors" and about_file:
        assert r.header("Access-Control-Allow-Origin") == ORIGIN
    if c.status in (200, 206, 304):
        assert r.header("ETag") == site.ctx[c.file]["etag" if c.coding == "identity"
                                                    else f"etag_{c.coding}"]
        assert not r.header("ETag").startswith("W/")
    if c.status in (200, 206):
        assert r.header("Content-Encoding") == (None if c.coding == "identity" else c.coding)
        assert r.header("X-Content-Type-Options") == "nosniff"
        assert r.header("Last-Modified") == http_date(MTIME)
        assert r.header("Accept-Ranges") in (None, "bytes")
        if c.url is None:
            assert r.header("Cache-Control") == IMMUTABLE
    if c.status == 200:
        assert r.header("Content-Type") == CONTENT_TYPES[c.file]
        assert r.header("Content-Range") is None
        if c.method == "GET":
            assert r.body == data
            if c.coding != "identity":
                assert DECODE[c.coding](r.body) == original
    if c.status == 304:
        assert r.body == b""
        names = {"etag", "cache-control"}
        names |= {"vary"} if has_variants else set()
        names |= {"access-control-allow-origin"} if c.app == "cors" else set()
        assert r.names() == names, r.headers
    if c.status in (412, 416, 405, 404):
        assert r.header("Cache-Control") == "no-store"
        assert r.header("ETag") is None
    if c.status == 416:
        assert r.header("Content-Range") == f"bytes */{len(data)}"
    if c.parts is not None:
        assert c.status == 206
        got = parse_byteranges(r, data, CONTENT_TYPES[c.file])
        want = [(a % len(data), b % len(data)) for a, b in c.parts]
        assert got == want
        assert r.header("Content-Range") is None
    elif c.status == 206:
        assert r.header("Content-Type") == CONTENT_TYPES[c.file]
    if c.method == "HEAD":
        assert r.body == b""
        # HEAD answers what GET would, Range aside (ignored for HEAD).
        get, _ = request(site, c, fetch, "GET", drop=("Range",))
        assert r.status == get.status
        assert r.headers == get.headers
    elif c.body is None:
        # Errors carry a one-line text body that starts with the status code.
        assert r.body == b"" or re.fullmatch(rb"%d [A-Za-z ]+\n" % c.status, r.body)
    elif c.parts is None:
        assert r.body == c.body(data)

    assert_lint_clean(r, c.method, c.url or site.apps[c.app].url(c.file), sent)


def parse_byteranges(r: Response, data: bytes, part_type: str) -> list[tuple[int, int]]:
    """Parse a multipart/byteranges body strictly (RFC 9110 14.6, RFC 2046):
    CRLFs, delimiters, exactly Content-Type and Content-Range in each part,
    each part's bytes; returns the (first, last) of each part."""
    m = re.fullmatch(r"multipart/byteranges; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})",
                     r.header("Content-Type") or "")
    assert m, r.header("Content-Type")
    delim = b"--" + m.group(1).encode()
    body = r.body
    assert delim not in data, "the boundary occurs in the content"
    assert body.startswith(delim + b"\r\n")
    pos = len(delim) + 2
    parts = []
    while True:
        end = body.index(b"\r\n\r\n", pos)
        fields = dict(line.split(b": ", 1) for line in body[pos:end].split(b"\r\n"))
        assert set(fields) == {b"Content-Type", b"Content-Range"}, fields
        assert fields[b"Content-Type"] == part_type.encode()
        cr = re.fullmatch(rb"bytes (\d+)-(\d+)/(\d+)", fields[b"Content-Range"])
        assert cr, fields[b"Content-Range"]
        first, last, total = map(int, cr.groups())
        assert total == len(data) and first <= last < total
        pos = end + 4
        assert body[pos:pos + last - first + 1] == data[first:last + 1]
        pos += last - first + 1
        assert body[pos:pos + 2 + len(delim)] == b"\r\n" + delim
        pos += 2 + len(delim)
        parts.append((first, last))
        if body[pos:] == b"--\r\n":
            return parts
        assert body[pos:pos + 2] == b"\r\n", body[pos:pos + 20]
        pos += 2


def test_table_is_big_enough_and_ids_unique():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# -- httplint over every response ---------------------------------------------

def _multipart(r: HttpResponseLinter) -> bool:
    return r.headers.parsed.get("content-type", ("",))[0] == "multipart/byteranges"


#: Notes that do not apply to a middleware or are the linter's own gaps:
#: (note class name, when it applies, why it is allowed).
LINT_ALLOWED: list[tuple[str, Callable[[HttpResponseLinter], bool], str]] = [
    ("DATE_CLOCKLESS", lambda r: True,
     "Date is added by the HTTP server (RFC 9110 6.6.1), not by a WSGI middleware"),
    ("DATE_CLOCKLESS_BAD_HDR", lambda r: True,
     "same: with the server's Date, Last-Modified has its reference clock"),
    ("NO_DATE_304", lambda r: True,
     "same: the server adds Date to the 304 too"),
    ("PARTIAL_WITHOUT_RANGE", _multipart,
     "a multipart/byteranges 206 has Content-Range in each part, none on top (RFC 9110 14.6)"),
    ("BAD_BROTLI", lambda r: r.status_code == 206,
     "a 206 of an encoded variant is a slice of its bytes (RFC 9110 14.1.2), not decodable alone"),
    ("BAD_GZIP", lambda r: r.status_code == 206,
     "same, for a slice of a gzip variant"),
    ("CONTENT_TYPE_MISMATCH",
     lambda r: r.headers.parsed.get("content-type", ("",))[0] == "image/avif",
     "sniffpy, httplint's content sniffer, has no AVIF signature and says undefined/undefined"),
]


def lint(r: Response, method: str, url: str, sent: dict[str, str]) -> list[str]:
    """httplint's BAD and WARN notes on a response, minus ``LINT_ALLOWED``."""
    now = time.time()
    req = HttpRequestLinter(start_time=now)
    req.process_request_topline(method.encode(), url.encode(), b"1.1")
    req.process_headers([(b"Host", b"static.example"), (b"User-Agent", b"bustware-tests"),
                         *((k.encode(), v.encode()) for k, v in sent.items())])
    req.finish_content(True)
    res = HttpResponseLinter(start_time=now)
    res.request = req
    res.is_head_response = method == "HEAD"
    res.process_response_topline(b"1.1", str(r.status).encode(),
                                 HTTPStatus(r.status).phrase.encode())
    res.process_headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v in r.headers])
    res.feed_content(r.body)
    res.finish_content(True)
    found = []
    pending = list(res.notes)
    while pending:
        note = pending.pop()
        pending.extend(note.subnotes)
        if note.level not in (levels.BAD, levels.WARN):
            continue
        name = type(note).__name__
        if any(name == n and applies(res) for n, applies, _ in LINT_ALLOWED):
            continue
        found.append(f"{note.level.name} {name}: {note.summary}")
    return found


def assert_lint_clean(r: Response, method: str, url: str, sent: dict[str, str]) -> None:
    notes = lint(r, method, url, sent)
    assert not notes, f"httplint on {method} {url} {sent} -> {r.status}:\n" + "\n".join(notes)


def test_lint_catches_a_broken_response():
    """The linter is not blind: a 206 with a wrong Content-Length, a 304 with a
    body and a Content-Type are reported."""
    bad = Response(206, [("Content-Type", "text/css"), ("Content-Length", "99"),
                         ("Content-Range", "bytes 0-9/100")], b"0123456789")
    assert any("CL_INCORRECT" in n for n in lint(bad, "GET", "/x.css", {"Range": "bytes=0-9"}))
    bad_304 = Response(304, [("Content-Type", "text/css"), ("ETag", '"a"')], b"body")
    notes = lint(bad_304, "GET", "/x.css", {"If-None-Match": '"a"'})
    assert any("CONTENT_NOT_ALLOWED" in n for n in notes), notes
    assert any("HEADER_SHOULD_NOT_BE_IN_304" in n for n in notes), notes


def test_lint_allowlist_reasons_are_one_line():
    for name, _, reason in LINT_ALLOWED:
        assert reason and "\n" not in reason, name


# -- behaviour outside the table ----------------------------------------------

def test_each_variant_has_its_own_strong_etag(site):
    for path in WITH_VARIANTS:
        ctx = site.ctx[path]
        tags = [ctx["etag"], ctx["etag_br"], ctx["etag_gzip"], ctx["etag_zstd"]]
        assert len(set(tags)) == 4, tags
        assert all(re.fullmatch(r'"[\x21\x23-\x7e]+"', t) for t in tags), tags


def test_variants_made_by_compress_file_are_what_is_served(site, fetch):
    app = site.apps["default"]
    for coding in ("br", "gzip", "zstd"):
        r = fetch(app, app.url(CSS), "GET", {AE: coding})
        assert_lint_clean(r, "GET", app.url(CSS), {AE: coding})
        assert r.header("Content-Encoding") == coding
        assert r.body == site.rep_bytes(CSS, coding)
        assert DECODE[coding](r.body) == FILES[CSS]


def copy_tree(site: Site, tmp_path: Path) -> Path:
    """A private copy of the site's files (with their variants and mtimes),
    for a test that changes them or its own app."""
    return Path(shutil.copytree(site.root, tmp_path / "static"))


def test_add_headers_hook_runs_once_per_file(site, tmp_path, fetch):
    root = copy_tree(site, tmp_path)
    calls: list[str] = []

    def hook(asset):
        calls.append(asset.path)
        return [("Timing-Allow-Origin", "*"), ("X-Asset", asset.path.replace("/", "-"))]

    app = Bustware(None, root, memory_threshold=THRESHOLD, add_headers=hook)
    assert sorted(calls) == sorted(FILES)  # once per file (variants are not files)
    for path in (CSS, BIG, TXT):
        for method, headers in [("GET", {}), ("GET", {AE: "br"}), ("HEAD", {}),
                                ("GET", {"Range": "bytes=0-3"}), ("GET", {AE: "gzip"})] * 3:
            r = fetch(app, app.url(path), method, headers)
            assert r.status in (200, 206)
            assert r.header("X-Asset") == path.replace("/", "-")
            assert r.header("Timing-Allow-Origin") == "*"
            assert_lint_clean(r, method, app.url(path), headers)
    assert sorted(calls) == sorted(FILES)


def test_head_does_not_open_a_streamed_file(site, tmp_path, fetch, monkeypatch):
    root = copy_tree(site, tmp_path)
    app = Bustware(None, root, memory_threshold=THRESHOLD)
    url = app.url(BIG)
    size = len(FILES[BIG])
    assert app.assets[BIG].body is None
    # The file disappears and opening anything from the middleware fails:
    # a HEAD that touched the file would now be a 404 or a 500.
    (root / BIG).unlink()
    opened = []

    def no_open(*args, **kwargs):
        opened.append(args)
        raise OSError("HEAD must not open the file")

    monkeypatch.setattr(opener, "open_regular", no_open)
    for headers in ({}, {"Range": "bytes=0-9"}, {"If-Modified-Since": "Thu, 01 Jan 1970 "
                                                                     "00:00:00 GMT"},
                    {"If-Match": "*"}):
        r = fetch(app, url, "HEAD", headers)
        assert r.status == 200, headers
        assert r.header("Content-Length") == str(size)
        assert r.body == b""
        assert_lint_clean(r, "HEAD", url, headers)
    assert opened == []
    # The proof can fail: a GET does open the file, and finds it gone.
    assert fetch(app, url, "GET").status == 404
    assert opened


def test_negotiation_memo_is_bounded():
    neg = EncodingNegotiator(maxsize=8)
    offers = ("br", "gzip")
    for i in range(100):
        assert neg.choose(f"gzip;q=0.{i % 9 + 1}, x-{i}", offers) == "gzip"
    assert len(neg._memo) <= 8
    assert neg.choose("br", offers) == "br"
    assert neg.choose(None, offers) == "identity"


# The property behind the hostile cases: any header, any length, bounded answer.
range_item = st.one_of(
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)).map(lambda t: f"{t[0]}-{t[1]}"),
    st.integers(0, 10**6).map(lambda n: f"{n}-"),
    st.integers(0, 10**6).map(lambda n: f"-{n}"),
    st.text(alphabet="0123456789-, =", max_size=8),
)
range_header = st.tuples(
    st.sampled_from(["bytes", "BYTES", "items", ""]),
    st.lists(range_item, max_size=40),
).map(lambda t: f"{t[0]}={','.join(t[1])}")


@settings(max_examples=200, deadline=None)
@given(header=range_header, length=st.integers(0, 2000))
def test_resolve_ranges_is_bounded_and_sane(header, length):
    ranges = resolve_ranges(header, length)
    if ranges is None:
        return
    assert len(ranges) <= MAX_RANGES
    for start, stop in ranges:
        assert 0 <= start < stop <= length
    if len(ranges) > 1:
        assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


@settings(max_examples=200, deadline=None)
@given(first=st.integers(0, 3000), last=st.integers(0, 3000), length=st.integers(0, 2000))
def test_single_range_matches_the_rfc(first, last, length):
    got = resolve_ranges(f"bytes={first}-{last}", length)
    if first > last:
        assert got is None  # invalid: ignored
    elif first >= length:
        assert got == []  # unsatisfiable: 416
    else:
        assert got == [(first, min(last + 1, length))]


def test_zero_length_suffix_items_are_unsatisfiable_whatever_the_werkzeug_version():
    # werkzeug 3.1.8 reads "-0" as "0-", 3.1.9 refuses the whole header.
    assert resolve_ranges("bytes=-0", 100) == []
    assert resolve_ranges("bytes=-0, -000", 100) == []
    assert resolve_ranges("bytes=0-0,-0", 100) == [(0, 1)]
    assert resolve_ranges("bytes=-0, 5-9", 100) == [(5, 10)]
    assert resolve_ranges("items=-0", 100) is None
