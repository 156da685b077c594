"""Property-based fuzzing of the middleware and of the index.

Every response to any PATH_INFO, QUERY_STRING, Range, Accept-Encoding and
If-* header must be one a user can rely on: a status from a small set,
Content-Length equal to the body, and a body that is exactly the bytes (or
the right slice of the bytes) of the representation its ETag names, an
empty body, or a fixed error text. The ETag oracle is computed from the files
themselves: an ETag is a prefix of the SHA-256 of the bytes it stands for.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

import brotli
import pytest
from conftest import run_wsgi, server_environ
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.http import http_date

from bustware import Assets, Bustware

THRESHOLD = 2048
PREFIX = "/static/"
FILES = {
    "css/app.css": b"body { color: red }\n" * 20,
    "js/big.js": b"".join(b"let v%05d = %05d;\n" % (i, i) for i in range(400)),  # streamed
    "img/dot.png": bytes(range(256)) * 3,
    "empty.txt": b"",
    "LICENSE": b"MIT\n",
    "fonts/é x.woff2": b"\x00\x01woff2\xff" * 5,
    "one.txt": b"1",
}
VARIANTS = {
    "css/app.css.gz": gzip.compress(FILES["css/app.css"], mtime=0),
    "css/app.css.br": brotli.compress(FILES["css/app.css"]),
    "js/big.js.gz": gzip.compress(FILES["js/big.js"], mtime=0),
}
ALLOWED = {200, 206, 304, 307, 404, 405, 412, 416}
REASONS = {404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed",
           416: "Range Not Satisfiable", 307: "Temporary Redirect"}
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "static"
    for rel, data in {**FILES, **VARIANTS}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


# every representation on disk, by its full SHA-256
BY_DIGEST = {hashlib.sha256(data).hexdigest(): data
             for data in [*FILES.values(), *VARIANTS.values()]}
SIZES = {len(data) for data in BY_DIGEST.values()}


def fallback(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"app"]


CONFIGS = [
    {"style": "filename", "outdated": "serve"},
    {"style": "segment", "outdated": "redirect"},
    {"style": "query", "outdated": "404"},
    {"style": "filename", "outdated": "redirect", "release": "r1"},
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "-".join(c.values()))
def app(request, root) -> Bustware:
    # compress=False: every representation must be one of the files on disk
    # (BY_DIGEST); the variants bustware makes itself: test_live_compress.
    return Bustware(fallback, root, memory_threshold=THRESHOLD, compress=False,
                    **request.param)


def wsgi_path(url: str) -> tuple[str, str]:
    path, _, query = url.partition("?")
    return unquote_to_bytes(path).decode("latin-1"), query


def known_urls(app: Bustware) -> list[tuple[str, str]]:
    """Current, plain and outdated URLs of every file, as (PATH_INFO, QUERY)."""
    urls = []
    for asset in app.assets:
        urls.append(wsgi_path(asset.url))
        urls.append(wsgi_path(app.assets.plain_url(asset.path)))
        url_path, query = app.assets.style.build(asset.path, "old0")
        urls.append(wsgi_path(PREFIX + quote(url_path, safe="/") + (f"?{query}" if query else "")))
    return urls


# -- strategies -------------------------------------------------------------

latin1_text = st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
numbers = st.one_of(st.integers(0, 2000), st.integers(0, 2000), st.integers(0, 10**30),
                    st.just(""))
range_item = st.one_of(
    st.tuples(numbers, numbers).map(lambda t: f"{t[0]}-{t[1]}"),
    numbers.map(lambda n: f"-{n}"),
    latin1_text,
)
offset = st.one_of(st.integers(0, 10), st.integers(0, 2100))
good_range = st.one_of(
    st.tuples(offset, offset).map(lambda t: f"{t[0]}-{t[0] + t[1]}"),
    offset.map(lambda n: f"{n}-"),
    offset.map(lambda n: f"-{n}"),
)
range_header = st.one_of(
    st.lists(good_range, min_size=1, max_size=4).map(lambda xs: "bytes=" + ",".join(xs)),
    st.lists(good_range, min_size=1, max_size=4).map(lambda xs: "bytes=" + ", ".join(xs)),
    st.lists(range_item, min_size=1, max_size=20).map(lambda xs: "bytes=" + ",".join(xs)),
    st.sampled_from(["bytes=0-0", "bytes=-1", "bytes=0-", "bytes=-0", "items=0-1", ""]),
    latin1_text,
)
coding = st.sampled_from(["gzip", "br", "zstd", "identity", "*", "x-gzip", "deflate",
                          "GZIP", "compress", ""])
qvalue = st.one_of(st.just(""), st.sampled_from([";q=0", ";q=1", ";q=0.5", ";q=0.001",
                                                 ";q=1.0", ";q=2", ";q=-1", ";q=nan", ";q="]))
accept_encoding = st.one_of(
    st.lists(st.sampled_from(["gzip", "br", "zstd", "deflate", "identity"]), max_size=4,
             unique=True).map(", ".join),
    st.lists(st.tuples(coding, qvalue).map("".join), max_size=6).map(", ".join),
    latin1_text,
)


@st.composite
def etag_header(draw, app):
    digest = draw(st.sampled_from(sorted(BY_DIGEST)))
    tag = draw(st.one_of(st.just(digest[:24]), st.just(digest[:draw(st.integers(0, 64))]),
                         latin1_text))
    form = draw(st.sampled_from(['"{}"', 'W/"{}"', "{}", '"{}", "x"', "*", '"{}" ,W/"{}"']))
    return draw(st.one_of(st.just(form.format(tag, tag)), latin1_text))


@st.composite
def date_header(draw, app):
    mtimes = sorted({a.mtime for a in app.assets})
    when = draw(st.sampled_from(mtimes)) + draw(st.sampled_from([-86400, -1, 0, 1, 86400]))
    return draw(st.one_of(st.just(http_date(when)), latin1_text,
                          st.just("Thu, 01 Jan 99999999999 00:00:00 GMT")))


@st.composite
def requests(draw, app):
    urls = known_urls(app)
    path, query = draw(st.sampled_from(urls))
    mutate = draw(st.sampled_from(["none"] * 4 + ["append", "insert", "random", "query"]))
    if mutate == "append":
        path += draw(latin1_text)
    elif mutate == "insert":
        cut = draw(st.integers(0, len(path)))
        path = path[:cut] + draw(st.sampled_from(["/../", "..", "/", "\\", "\x00", ".",
                                                  "%2e", "%2f", "\xff"])) + path[cut:]
    elif mutate == "random":
        path = draw(st.sampled_from(["", "/", PREFIX])) + draw(latin1_text)
    elif mutate == "query":
        query = draw(latin1_text)
    headers = {}
    # (header, strategy, odds N: one chance in N + 1): the If-* headers are rarer, or
    # most answers would be 412s and 304s
    for name, strategy, odds in (
            ("HTTP_RANGE", range_header, 1),
            ("HTTP_ACCEPT_ENCODING", accept_encoding, 1),
            ("HTTP_IF_NONE_MATCH", etag_header(app), 5),
            ("HTTP_IF_MATCH", etag_header(app), 6),
            ("HTTP_IF_MODIFIED_SINCE", date_header(app), 5),
            ("HTTP_IF_UNMODIFIED_SINCE", date_header(app), 6),
            ("HTTP_IF_RANGE", st.one_of(etag_header(app), date_header(app)), 4)):
        if draw(st.integers(0, odds)) == 0:
            headers[name] = draw(strategy)
    method = draw(st.sampled_from(["GET"] * 5 + ["HEAD", "POST", "OPTIONS"]))
    wrapper = draw(st.booleans())
    return path, query, headers, method, wrapper


@st.composite
def good_requests(draw, app):
    """Well-formed requests for current URLs: where ranges and codings are
    actually honoured, which hostile requests rarely reach."""
    asset = draw(st.sampled_from(sorted(app.assets, key=lambda a: a.path)))
    path, query = wsgi_path(asset.url)
    # ascending, disjoint ranges, mostly inside the file: those are honoured
    items, end = [], -1
    for _ in range(draw(st.integers(1, 4))):
        start = end + 1 + draw(st.integers(0, max(1, asset.size // 3)))
        end = start + draw(st.integers(0, max(1, asset.size // 3)))
        items.append(f"{start}-{end}")
    if draw(st.integers(0, 3)) == 0:
        items = [draw(good_range)]
    headers = {"HTTP_RANGE": "bytes=" + ",".join(items)}
    if draw(st.booleans()):
        headers["HTTP_ACCEPT_ENCODING"] = draw(accept_encoding)
    if draw(st.integers(0, 3)) == 0:
        headers["HTTP_IF_RANGE"] = draw(st.one_of(etag_header(app), date_header(app)))
    return path, query, headers, draw(st.sampled_from(["GET", "HEAD"])), draw(st.booleans())


# -- calling and checking -----------------------------------------------------


def call(app, path, query, headers, method, wrapper):
    return run_wsgi(app, server_environ(path, method=method, query=query,
                                        file_wrapper=wrapper, **headers))


def one(headers, name):
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) <= 1, (name, values)
    return values[0] if values else None


def representation(etag: str) -> bytes:
    tag = etag.strip('"')
    found = [data for digest, data in BY_DIGEST.items() if digest.startswith(tag)]
    assert len(found) == 1, f"ETag {etag} names no file's bytes"
    return found[0]


def multipart(body: bytes, content_type: str) -> list[tuple[int, int, int, bytes]]:
    boundary = content_type.split("boundary=", 1)[1].encode()
    chunks = body.split(b"--" + boundary)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        m = re.search(rb"\r\nContent-Range: bytes (\d+)-(\d+)/(\d+)\r?\n?", head + b"\r\n")
        assert data.endswith(b"\r\n")
        parts.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), data[:-2]))
    return parts


def check(app, status, headers, body, method, request_headers):
    assert status in ALLOWED, status
    for name, value in headers:
        assert not set("\r\n\0") & set(name + value)
        value.encode("latin-1")
    length = one(headers, "Content-Length")
    if method == "HEAD":
        assert body == b""
    elif status != 304:
        assert length == str(len(body))
    etag = one(headers, "ETag")
    if status in REASONS:
        assert etag is None
        if method != "HEAD":
            assert body == f"{status} {REASONS[status]}\n".encode()
        if status == 307:
            assert one(headers, "Location") in {a.url for a in app.assets}
        if status == 416:
            m = re.fullmatch(r"bytes \*/(\d+)", one(headers, "Content-Range"))
            assert int(m.group(1)) in SIZES
        return
    if status == 200 and etag is None:
        assert body in (b"app", b"")  # the wrapped app answered
        return
    rep = representation(etag)
    if status == 304:
        assert body == b""
        return  # a 304 need not repeat Content-Encoding (RFC 9110 15.4.5)
    if status == 200:
        assert method == "HEAD" or body == rep
        if method == "HEAD":
            assert length == str(len(rep))
    elif status == 206 and method != "HEAD":
        content_type = one(headers, "Content-Type")
        if content_type.startswith("multipart/byteranges"):
            parts = multipart(body, content_type)
            assert len(parts) >= 2
            for start, end, size, data in parts:
                assert size == len(rep) and data == rep[start:end + 1]
        else:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", one(headers, "Content-Range"))
            start, end, size = map(int, m.groups())
            assert size == len(rep) and start <= end < size
            assert body == rep[start:end + 1]
    coding = one(headers, "Content-Encoding")
    if coding is not None:
        # only a coding the client named, and the ETag is that variant's
        assert "HTTP_ACCEPT_ENCODING" in request_headers
        suffix = {"gzip": ".gz", "br": ".br"}[coding]
        assert rep in [v for k, v in VARIANTS.items() if k.endswith(suffix)]
    else:
        assert rep in FILES.values()


@pytest.mark.parametrize("kind", ["hostile", "well-formed"])
@given(data=st.data())
@SETTINGS
def test_every_response_is_sound(app, kind, data):
    strategy = requests(app) if kind == "hostile" else good_requests(app)
    path, query, headers, method, wrapper = data.draw(strategy)
    status, response_headers, body = call(app, path, query, headers, method, wrapper)
    # --hypothesis-show-statistics shows how often each kind of answer came up
    served = "file" if one(response_headers, "ETag") else "other"
    event(f"{method} {status} {served} {one(response_headers, 'Content-Encoding')}")
    check(app, status, response_headers, body, method, headers)


# -- ranges against an independent reading of RFC 9110 14.1 --------------------


@given(name=st.sampled_from(sorted(FILES)), first=st.integers(0, 2000),
       length=st.one_of(st.none(), st.integers(0, 2000)), suffix=st.booleans(),
       wrapper=st.booleans())
@SETTINGS
def test_single_range_is_the_right_slice(plain_app, name, first, length, suffix, wrapper):
    app = plain_app
    content = FILES[name]
    size = len(content)
    if size == 0:
        # nothing of an empty representation can be satisfied
        header, want = f"bytes={first}-", None
    elif suffix:
        header, want = f"bytes=-{first}", (max(0, size - first), size) if first else None
    elif length is None:
        header, want = f"bytes={first}-", (first, size) if first < size else None
    else:
        header = f"bytes={first}-{first + length}"
        want = (first, min(first + length + 1, size)) if first < size else None
    path, query = wsgi_path(app.url(name))
    status, headers, body = call(app, path, query, {"HTTP_RANGE": header}, "GET", wrapper)
    if want is None:
        assert status == 416, header
        assert one(headers, "Content-Range") == f"bytes */{size}"
    else:
        assert status == 206, header
        assert one(headers, "Content-Range") == f"bytes {want[0]}-{want[1] - 1}/{size}"
        assert body == content[want[0]:want[1]]
    check(app, status, headers, body, "GET", {})


@pytest.fixture(scope="module")
def plain_app(root) -> Bustware:
    return Bustware(fallback, root, memory_threshold=THRESHOLD)


# -- the index never leaves its root --------------------------------------------

SEGMENTS = ["a", "b", ".h", "c.css", "c.css.gz", "d.js", "é"]
MARK = b"OUTSIDE-THE-ROOT"


@st.composite
def trees(draw):
    """A list of (relative path, kind, target) to create under the root."""
    entries = []
    for _ in range(draw(st.integers(1, 12))):
        rel = "/".join(draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3)))
        kind = draw(st.sampled_from(["file", "dir", "link", "link", "abslink"]))
        target = "/".join(draw(st.lists(st.sampled_from([*SEGMENTS, "..", ".", "out",
                                                          "secret.css"]),
                                        min_size=1, max_size=5)))
        entries.append((rel, kind, target))
    return entries


def _plant(base: Path, entries) -> Path:
    root = base / "root"
    root.mkdir()
    (base / "out").mkdir()
    (base / "secret.css").write_bytes(MARK)
    (base / "out" / "c.css").write_bytes(MARK)
    (base / "out" / "c.css.gz").write_bytes(MARK)
    (base / "rootsib").mkdir()  # shares the root's name as a prefix
    (base / "rootsib" / "c.css").write_bytes(MARK)
    for rel, kind, target in entries:
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "file":
                path.write_bytes(f"inside {rel}".encode())
            elif kind == "dir":
                path.mkdir()
            elif kind == "link":
                os.symlink(target, path)
            else:
                os.symlink(str(base / target), path)
        except OSError:
            pass  # a clash with an earlier entry (a file where a dir is wanted, ...)
    return root


@given(entries=trees(), dotfiles=st.booleans())
@settings(max_examples=150, deadline=None)
def test_index_never_leaves_the_root(entries, dotfiles):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = _plant(base, entries)
        assets = Assets(root, include_dotfiles=dotfiles)
        real_root = os.path.realpath(root)
        for asset in assets:
            for item in [asset, *asset.variants.values()]:
                real = os.path.realpath(item.abs_path)
                assert os.path.commonpath([real, real_root]) == real_root, item.abs_path
                with open(real, "rb") as f:
                    data = f.read()
                assert MARK not in data
                assert item.digest == hashlib.sha256(data).hexdigest()
            if not dotfiles:
                assert not any(part.startswith(".") for part in asset.path.split("/"))
        # and nothing plain is missed: every regular file reached without a
        # symlink, dotfile or variant suffix is in the index
        for dirpath, _dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            if not dotfiles and any(p.startswith(".") for p in Path(rel_dir).parts):
                continue
            for name in filenames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full) or (name.startswith(".") and not dotfiles):
                    continue
                if name.endswith((".gz", ".br", ".zst")):
                    continue
                rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
                assert rel in assets, rel
