"""Hostile HTTP input and operator mistakes (issue 11): Accept-Encoding cost
and memo size, long entity-tag lists, ``prefix="/"``, headers from
``add_headers`` that bustware sets itself, ``content_types=``, ``.svgz`` and
``.zstd`` files.

Cost is never timed here: it is counted as function calls, which grow with
the number of list elements when a parser loops over them, and stay
constant when one regex pass or substring search does the work in C.
"""

from __future__ import annotations

import functools
import gc
import gzip
import sys
import tracemalloc

import pytest
from conftest import fallback_app, via_werkzeug
from hypothesis import given, settings
from hypothesis import strategies as st

from bustware import Bustware, http
from bustware.http import MAX_ACCEPT_ENCODING, EncodingNegotiator

OFFERS = ("br", "zstd", "gzip")


def calls(fn) -> int:
    """How many function calls, Python and C, ``fn()`` makes, itself
    included (pass a functools.partial: a lambda would count too). A parser
    that loops over list elements makes some per element, Python code or a
    C regex method alike."""
    count = 0

    def profiler(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def hostile(length: int, coding: str = "c") -> str:
    """An Accept-Encoding list of short codings, cut to ``length``."""
    value = ", ".join(f"{coding}{i}" for i in range(length // 3))
    return value[:length]


@pytest.mark.parametrize("value", [
    hostile(MAX_ACCEPT_ENCODING),  # about 200 codings: read
    "br;q=0.5, " * 100 + "gzip",  # 100 elements naming a coding we offer
    ",\t" * 500,  # every character a separator
    hostile(8192),  # an 8 KB value as in the issue: not read
    "gzip, " + "x" * (256 * 1024),
], ids=["1KB-200-codings", "100-offered", "separators", "8KB-1300-codings", "256KiB"])
def test_accept_encoding_cost_does_not_grow_with_the_value(value):
    # A fresh negotiator each time: the memo must not be what keeps it cheap.
    n = calls(functools.partial(EncodingNegotiator().choose, value, OFFERS))
    # webob made thousands of calls for 300 codings; the regex pass makes
    # a handful whatever the length.
    assert n <= 25, (n, len(value))


def test_a_browser_value_is_still_one_lookup_once_seen():
    neg = EncodingNegotiator()
    assert neg.choose("gzip, deflate, br, zstd", OFFERS) == "br"
    # choose(), one dictionary lookup, and sys.setprofile(None) itself.
    assert calls(functools.partial(neg.choose, "gzip, deflate, br, zstd", OFFERS)) == 3


def test_overlong_values_are_not_read_and_answer_identity(monkeypatch):
    read = []
    monkeypatch.setattr(http, "_negotiate", lambda h, o: read.append(h) or "gzip")
    neg = EncodingNegotiator()
    assert neg.choose("gzip" + " " * (MAX_ACCEPT_ENCODING - 4), OFFERS) == "gzip"
    assert neg.choose("gzip" + " " * (MAX_ACCEPT_ENCODING - 3), OFFERS) == "identity"
    assert len(read) == 1
    assert neg.choose(hostile(8192), OFFERS) == "identity"
    assert len(read) == 1


def test_memo_does_not_keep_long_values_alive():
    """1,000 distinct 256 KiB values (waitress and werkzeug's server let them
    through) used to keep 512 of them, 128 MiB, in the memo."""
    neg = EncodingNegotiator()
    neg.choose("gzip", OFFERS)  # the memo's own table exists before we measure
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            value = f"gzip;q=0.{i % 9 + 1}, x{i}-" + "y" * (256 * 1024)
            assert neg.choose(value, OFFERS) == "identity"
            del value
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1024 * 1024, f"{kept / 2**20:.1f} MiB kept"
    # And by inspection: whatever it holds is bounded by count times length.
    for i in range(2000):
        neg.choose(f"gzip;q=0.{i % 9 + 1}, x{i}-" + "y" * (MAX_ACCEPT_ENCODING - 30), OFFERS)
    assert len(neg._memo) <= neg._maxsize
    assert sum(len(header) for header, _ in neg._memo) <= neg._maxsize * MAX_ACCEPT_ENCODING


# -- prefix="/" ------------------------------------------------------------------

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n'


def test_prefix_root_hands_every_path_that_is_no_file_to_the_app(tree, fetch):
    root = tree({"favicon.ico": b"\x00\x00\x01\x00icon", "css/app.css": b"a{}"})
    app = Bustware(fallback_app, root, prefix="/")
    assert app.missing == "app"
    for path in ("/", "/about", "/users/7/edit", "/css/nope.css", "/favicon.ico.bak"):
        r = fetch(app, path)
        assert (r.status, r.body) == (200, f"app:{path}".encode()), path
    r = fetch(app, app.url("css/app.css"))
    assert (r.status, r.body) == (200, b"a{}")
    assert r.header("Cache-Control") == "max-age=31536000, immutable"
    r = fetch(app, "/favicon.ico")
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"\x00\x00\x01\x00icon",
                                                             "no-cache")


def test_prefix_root_with_missing_404_is_refused(tree):
    root = tree({"a.css": b"a{}"})
    with pytest.raises(ValueError, match=r"prefix='/' with missing='404'.*leave missing unset"):
        Bustware(fallback_app, root, prefix="/", missing="404")
    # Without an app there are no pages to lose: every other path is a 404.
    assert via_werkzeug(Bustware(None, root, prefix="/"), "/about").status == 404


def test_other_prefixes_keep_404_by_default(tree):
    app = Bustware(fallback_app, tree({"a.css": b"a{}"}))
    assert app.missing == "404"
    assert via_werkzeug(app, "/static/nope.css").status == 404
    assert via_werkzeug(app, "/about").body == b"app:/about"


# -- add_headers and content_types ------------------------------------------------

@pytest.mark.parametrize(("name", "option"), [
    ("Content-Type", "content_types="),
    ("content-type", "content_types="),
    ("Cache-Control", "cache_control="),
    ("CACHE-CONTROL", "plain_cache_control="),
    ("Access-Control-Allow-Origin", "allow_origin="),
    ("Content-Length", "computes it"),
    ("ETag", "computes it"),
    ("Content-Encoding", "computes it"),
    ("x-content-type-options", "nosniff"),
])
def test_add_headers_may_not_send_a_header_bustware_sends(tree, name, option):
    root = tree({"a.css": b"a{}", "data.foo": b"\x00"})
    with pytest.raises(ValueError, match=rf"add_headers\('a.css'\) gave '{name}'.*{option}"):
        Bustware(None, root, add_headers=lambda asset: [(name, "x")])


def test_add_headers_other_names_still_pass(tree):
    root = tree({"a.css": b"a{}"})
    app = Bustware(None, root, add_headers=lambda a: [("X-Frame-Options", "DENY"),
                                                      ("Vary", "Origin")])
    r = via_werkzeug(app, app.url("a.css"))
    assert r.status == 200 and r.body == b"a{}"
    assert r.header("X-Frame-Options") == "DENY"
    assert [v for k, v in r.headers if k == "Content-Type"] == ["text/css; charset=utf-8"]


def test_content_types_gives_the_type_of_a_suffix(tree, fetch):
    root = tree({"data.foo": b"0123456789", "page.tpl": b"{{ x }}", "a.css": b"a{}",
                 "UPPER.FOO": b"up"})
    app = Bustware(None, root, content_types={".FOO": "application/x-foo",
                                              ".tpl": "text/x-template",
                                              ".css": "text/css; charset=latin-1"})
    cases = {"data.foo": "application/x-foo", "UPPER.FOO": "application/x-foo",
             "page.tpl": "text/x-template; charset=utf-8", "a.css": "text/css; charset=latin-1"}
    for path, ctype in cases.items():
        r = fetch(app, app.url(path))
        assert r.status == 200 and r.body == (root / path).read_bytes()
        assert [v for k, v in r.headers if k == "Content-Type"] == [ctype], path
    r = fetch(app, app.url("data.foo"), headers={"Range": "bytes=2-4"})
    assert (r.status, r.body, r.header("Content-Type")) == (206, b"234", "application/x-foo")
    r = fetch(app, app.url("data.foo"), headers={"Range": "bytes=0-0,5-5"})
    assert r.status == 206 and b"Content-Type: application/x-foo\r\n" in r.body


@pytest.mark.parametrize(("value", "error", "message"), [
    (["x"], TypeError, r"content_types=\['x'\] must map file suffixes"),
    ({"foo": "a/b"}, ValueError, r"key 'foo' is not a file suffix"),
    ({".a.b": "a/b"}, ValueError, r"key '.a.b' is not a file suffix"),
    ({".foo": "foo"}, ValueError, r"content_types\['.foo'\] = 'foo' is not a media type"),
    ({".foo": "a/b\r\nSet-Cookie: x"}, ValueError, r"is not a media type"),
    ({".foo": None}, ValueError, r"content_types\['.foo'\] = None is not a media type"),
])
def test_content_types_is_checked(tree, value, error, message):
    with pytest.raises(error, match=message):
        Bustware(None, tree({"a.css": b"a{}"}), content_types=value)


# -- .svgz and .zstd ------------------------------------------------------------

def test_svgz_is_served_as_gzip_encoded_svg_without_negotiation(tree, fetch):
    svgz = gzip.compress(SVG, mtime=0)
    root = tree({"img/logo.svgz": svgz, "img/logo.svgz.br": b"not served"})
    app = Bustware(None, root)
    assert app.assets["img/logo.svgz"].variants == {}
    url = app.url("img/logo.svgz")
    for accept in (None, "gzip", "br", "identity"):
        r = fetch(app, url, headers={"Accept-Encoding": accept} if accept else {})
        assert r.status == 200 and r.body == svgz, accept
        assert r.header("Content-Type") == "image/svg+xml; charset=utf-8"
        assert r.header("Content-Encoding") == "gzip"
        assert r.header("Content-Length") == str(len(svgz))
        assert r.header("Vary") is None
    assert gzip.decompress(r.body) == SVG
    # Several ranges of encoded bytes: the whole file, not a multipart.
    r = fetch(app, url, headers={"Range": "bytes=0-1,4-5"})
    assert (r.status, r.body, r.header("Content-Encoding")) == (200, svgz, "gzip")
    r = fetch(app, url, headers={"Range": "bytes=0-1"})
    assert (r.status, r.body, r.header("Content-Encoding")) == (206, svgz[:2], "gzip")


def test_zstd_suffix_is_a_variant_and_zst_wins_over_it(tree, fetch):
    zstandard = pytest.importorskip("zstandard")
    css = b".a { color: red }\n" * 200
    one = zstandard.ZstdCompressor(level=3).compress(css)
    two = zstandard.ZstdCompressor(level=19).compress(css)
    root = tree({"a.css": css, "a.css.zstd": one, "b.css": css, "b.css.zstd": one,
                 "b.css.zst": two})
    app = Bustware(None, root)
    for path, body in (("a.css", one), ("b.css", two)):
        r = fetch(app, app.url(path), headers={"Accept-Encoding": "zstd"})
        assert r.status == 200 and r.body == body, path
        assert r.header("Content-Encoding") == "zstd"
        assert r.header("Vary") == "Accept-Encoding"
    assert fetch(app, "/static/a.css.zstd").status == 404  # not a file of its own
    r = fetch(app, app.url("a.css"))
    assert (r.body, r.header("Content-Encoding")) == (css, None)


def test_build_still_writes_zst():
    from bustware import build

    assert build._SUFFIXES == {"br": ".br", "zstd": ".zst", "gzip": ".gz"}


# -- long entity-tag lists --------------------------------------------------------

def etag_list(count: int, extra: str = "") -> str:
    return ", ".join([f'"{i:024x}"' for i in range(count)] + ([extra] if extra else []))


def test_long_etag_lists_cost_does_not_grow_with_the_list():
    from bustware.http import evaluate_preconditions

    for name in ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH"):
        environ = {name: etag_list(280)}  # about 8 KB, what gunicorn lets through
        assert len(environ[name]) > 7800
        n = calls(functools.partial(evaluate_preconditions, environ, "f" * 24, 0))
        # werkzeug's parser made hundreds of calls; the search a handful.
        assert n <= 20, (name, n)


@pytest.mark.parametrize(("headers", "status"), [
    ({"If-None-Match": etag_list(280, "{etag}")}, 304),
    ({"If-None-Match": etag_list(280, "W/{etag}")}, 304),
    ({"If-None-Match": etag_list(280)}, 200),
    ({"If-None-Match": " " * 2000 + "*"}, 304),
    ({"If-Match": etag_list(280, "{etag}")}, 200),
    ({"If-Match": etag_list(280, "W/{etag}")}, 412),
    ({"If-Match": etag_list(280, "W/{etag}, {etag}")}, 200),
    ({"If-Match": etag_list(280)}, 412),
    ({"If-Match": "*" + " " * 2000}, 200),
], ids=["inm-match", "inm-weak", "inm-none", "inm-star", "im-match", "im-weak", "im-weak-then",
        "im-none", "im-star"])
def test_long_etag_lists_are_still_evaluated(tree, fetch, headers, status):
    root = tree({"a.css": b"a{}" * 100})
    app = Bustware(None, root)
    url = app.url("a.css")
    etag = fetch(app, url).header("ETag")
    r = fetch(app, url, headers={k: v.replace("{etag}", etag) for k, v in headers.items()})
    assert r.status == status
    if status == 200:
        assert r.body == b"a{}" * 100
    elif status == 304:
        assert (r.body, r.header("ETag")) == (b"", etag)


# -- the new reading agrees with the webob-based one on well-formed values ---------

def webob_choice(header: str, offers: tuple[str, ...]) -> str:
    """bustware 0.1's negotiation (webob's parser), as the oracle."""
    from webob.acceptparse import AcceptEncodingValidHeader, create_accept_encoding_header

    accept = create_accept_encoding_header(header.strip())
    if not isinstance(accept, AcceptEncodingValidHeader):
        return "identity"
    named = {coding.lower() for coding, _ in accept.parsed}
    candidates = list(offers)
    if "x-gzip" in named and "gzip" not in named and "gzip" in candidates:
        candidates.insert(candidates.index("gzip") + 1, "x-gzip")
    if "identity" in named:
        candidates.append("identity")
    acceptable = accept.acceptable_offers(candidates)
    if not acceptable:
        return "identity"
    return "gzip" if acceptable[0][0] == "x-gzip" else acceptable[0][0]


_CODING = st.sampled_from(["gzip", "br", "zstd", "identity", "*", "x-gzip", "deflate",
                           "compress", "sdch", "GZip", "BR", "Zstd", "IDENTITY", "X-GZIP"])
_QVALUE = st.sampled_from(["", ";q=0", ";q=1", ";q=0.5", ";q=0.001", ";q=0.999", ";q=1.0",
                           ";q=1.000", ";q=0.", ";Q=0.8", " ; q=0.3", ";\tq=0.7"])
_SEPARATOR = st.sampled_from([",", ", ", " , ", ",\t", ",  "])


@st.composite
def accept_encoding(draw) -> str:
    elements = draw(st.lists(st.tuples(_CODING, _QVALUE).map("".join), max_size=7))
    lowered = [e.lower() for e in elements]
    if any(e.startswith("x-gzip") for e in lowered) and any(e.startswith("*") for e in lowered):
        # The one deliberate difference: x-gzip now stands for gzip even
        # when "*" ranks an unlisted gzip higher.
        elements = [e for e in elements if not e.startswith("*")]
    text = ""
    for i, element in enumerate(elements):
        text += (draw(_SEPARATOR) if i else "") + element
    return draw(st.sampled_from(["", " "])) + text + draw(st.sampled_from(["", " ", ","]))


@given(header=accept_encoding(),
       offers=st.sampled_from([("br", "zstd", "gzip"), ("br", "gzip"), ("gzip",), ("zstd",)]))
@settings(max_examples=200, deadline=None)
def test_negotiation_agrees_with_webob_on_well_formed_values(header, offers):
    assert http._negotiate(header, offers) == webob_choice(header, offers), header


def test_svgz_from_a_manifest_built_with_compression(tree, fetch):
    from bustware import build

    svgz = gzip.compress(SVG * 50, mtime=0)
    root = tree({"img/logo.svgz": svgz, "app.css": b".a { color: red }\n" * 200})
    build.build(root, compress=["gzip", "br"])
    app = Bustware(None, root, manifest=root / ".bustware" / "manifest.json")
    assert app.assets["img/logo.svgz"].variants == {}
    assert set(app.assets["app.css"].variants) == {"gzip", "br"}
    r = fetch(app, app.url("img/logo.svgz"), headers={"Accept-Encoding": "br, gzip"})
    assert (r.status, r.body) == (200, svgz)
    assert r.header("Content-Encoding") == "gzip" and r.header("Vary") is None
    assert r.header("Content-Type") == "image/svg+xml; charset=utf-8"
