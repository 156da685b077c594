"""Hostile requests, table-driven, through hand-built WSGI environs and through
raw sockets against a real gunicorn.

Why hand-built environs: HTTP clients (werkzeug's Client, webob, requests)
normalise and re-encode paths before sending, so ``/static/../x`` or a NUL
byte never reaches the application and a traversal bug stays hidden. Here
PATH_INFO is exactly what a server hands over: the percent-decoded request
path, its bytes carried as latin-1 (PEP 3333). The socket half sends the
request line byte for byte, so gunicorn's own decoding is part of the test.

Every case checks: the expected status, never a 500, not one byte of the
secret planted outside the root, no CR/LF in any header, and no listing or
redirect for anything that is not a file of the index.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import unicodedata
import uuid
import wsgiref.validate
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

import pytest
from conftest import gunicorn, run_wsgi, server_environ

from bustware import Assets, Bustware

SECRET = f"TOPSECRET-{uuid.uuid4().hex}".encode()
APP_CSS = b"body { color: #123456; margin: 0; padding: 0; }\n/* forty bytes and more */\n"
BIG_JS = b"".join(b"console.log(%06d);\n" % i for i in range(4000))  # > memory_threshold
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg"><title>logo</title></svg>\n'
EVIL_NAME = "evil\r\nSet-Cookie: a=b.css"
THRESHOLD = 4096


# -- the site ----------------------------------------------------------------


def build_site(base: Path) -> Path:
    """A root full of traps, and secrets around it. Returns the root."""
    (base / "secret.txt").write_bytes(SECRET)
    # A sibling whose name starts with the root's: the classic
    # ``startswith(root)`` containment bug lets it through.
    (base / "static-secret").mkdir()
    (base / "static-secret" / "s.css").write_bytes(SECRET)
    (base / "outside").mkdir()
    (base / "outside" / "x.css").write_bytes(SECRET)

    root = base / "static"
    files = {
        "css/app.css": APP_CSS,
        "js/big.js": BIG_JS,
        "img/logo.svg": LOGO,
        "img/logo.svg.gz": gzip.compress(LOGO, mtime=0),
        "é.css": b"e-acute\n",
        "per%2fcent.css": b"percent\n",
        EVIL_NAME: b"evil\n",
        ".env": b"DATABASE_PASSWORD=hunter2\n",
        ".GIT/config": b"[core]\n",
        ".git/config": b"[core]\n",
        "css/.hidden.css": b"hidden\n",
        ".hidden/app.css": b"hidden dir\n",
        "emptydir/.keep": b"",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    links = {
        "leak.css": "../secret.txt",
        "css/leak2.css": "../../secret.txt",
        "sib.css": "../static-secret/s.css",
        "dangling.css": "../nothere.txt",
        "outdir": "../outside",
        "abs.css": str(base / "secret.txt"),
        "loop": ".",
        "loopa": "loopb",
        "loopb": "loopa",
        "self": "self",
        "alias.css": "css/app.css",
        # precompressed variants that leave the root: never sent as a coding
        "css/app.css.gz": "../../secret.txt",
        "js/big.js.br": "../../outside/x.css",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    os.mkfifo(root / "pipe.css")
    os.mkfifo(root / "css" / "app.css.zst")  # a FIFO variant: must not block
    with socket.socket(socket.AF_UNIX) as s:  # the socket file outlives the socket
        s.bind(str(root / "sock.css"))
    return root


@dataclass
class Site:
    root: Path
    base: Path
    apps: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    base = tmp_path_factory.mktemp("adv")
    return Site(root=build_site(base), base=base)


def fallback(environ, start_response):
    body = b"app"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [body]


def make_app(root: Path, style: str, outdated: str = "serve") -> Bustware:
    # compress=False: hostile precompressed files are under test, not the
    # variants bustware makes itself.
    return Bustware(fallback, root, style=style, outdated=outdated,
                    memory_threshold=THRESHOLD, compress=False)


# -- calling the app with a hand-built environ --------------------------------


@dataclass
class Result:
    status: int
    headers: list
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, values
        return values[0] if values else None


def call(app, path: str, query: str = "", method: str = "GET", headers=None,
         validate: bool = True) -> Result:
    """Call ``app`` as a server would; ``path`` is PATH_INFO as given."""
    environ = server_environ(path, method=method, query=query, **{
        "HTTP_" + name.upper().replace("-", "_"): value for name, value in (headers or {}).items()
    })
    # wsgiref's validator checks the WSGI contract on every response: header
    # types, no control characters in values, Content-Type where required.
    wrapped = wsgiref.validate.validator(app) if validate else app
    result = Result(*run_wsgi(wrapped, environ))
    check_invariants(result, method)
    return result


def check_invariants(r: Result, method: str = "GET") -> None:
    assert r.status != 500
    assert SECRET not in r.body
    for name, value in r.headers:
        assert isinstance(name, str) and isinstance(value, str)
        assert not set("\r\n\0") & set(name + value), (name, value)
        value.encode("latin-1")
        assert SECRET.decode() not in value
    if r.status != 307:
        assert r.header("Location") is None  # never a redirect to a "directory"
    if r.status >= 400:
        # Error bodies are fixed text: nothing from the request, no listing.
        reason = {404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed",
                  416: "Range Not Satisfiable"}[r.status]
        assert r.body == (b"" if method == "HEAD" else f"{r.status} {reason}\n".encode())
    if r.status not in (304,) and method != "HEAD":
        assert r.header("Content-Length") == str(len(r.body))


def wsgi_path(url_path: str) -> str:
    """PATH_INFO for a URL path: percent-decoded, bytes as latin-1."""
    return unquote_to_bytes(url_path).decode("latin-1")


def latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


# -- the table -----------------------------------------------------------------
#
# Paths may use placeholders, resolved per app (so one table serves all three
# styles):
#   {U:path}  the PATH_INFO of path's current versioned URL (its query string,
#             in the query style, becomes QUERY_STRING)
#   {O:path}  the same for an outdated version of path
#   {L:path}  ... for an outdated version of the longest valid length (64)
#   {X:path}  ... for a version one character too long to be one
#   {G:path}  the URL bustware *would* give path if it indexed it, with the
#             version an attacker computes from the bytes (dotfiles, symlinks
#             that leave the root)


@dataclass
class Case:
    id: str
    path: str
    status: int = 404
    serves: str | None = None  # logical path whose bytes the body must be
    headers: dict = field(default_factory=dict)
    method: str = "GET"
    #: style -> (status, serves) where a style reads the path differently
    overrides: dict = field(default_factory=dict)


_PLACEHOLDER = re.compile(r"\{([UOLXG]):([^}]*)\}")
_FAKE_VERSIONS = {"O": "0" * 12, "L": "0" * 64, "X": "0" * 65}


def resolve(app: Bustware, site: Site, template: str) -> tuple[str, str]:
    query = ""

    def sub(m: re.Match) -> str:
        nonlocal query
        kind, path = m.groups()
        assets = app.assets
        if kind == "U":
            url = assets.url(path)
        else:
            if kind in _FAKE_VERSIONS:
                version = _FAKE_VERSIONS[kind]
            else:
                data = (site.root / path).resolve().read_bytes()
                version = hashlib.sha256(data).hexdigest()[:12]
            url_path, q = assets.style.build(path, version)
            url = assets.prefix + quote(url_path, safe="/") + (f"?{q}" if q else "")
        url_path, _, query = url.partition("?")
        return wsgi_path(url_path)

    return _PLACEHOLDER.sub(sub, template), query


CASES = [
    # controls: the suite is only meaningful if real files are served
    Case("control current", "{U:css/app.css}", 200, "css/app.css"),
    Case("control plain", "/static/css/app.css", 200, "css/app.css"),
    Case("control outdated", "{O:css/app.css}", 200, "css/app.css"),
    Case("control streamed", "{U:js/big.js}", 200, "js/big.js"),
    Case("control unicode name", "{U:é.css}", 200, "é.css"),
    Case("control percent in name", "{U:per%2fcent.css}", 200, "per%2fcent.css"),
    Case("control symlink inside root", "{U:alias.css}", 200, "alias.css"),
    Case("outside the prefix goes to the app", "/../secret.txt", 200, "<app>"),
    Case("empty PATH_INFO", "", 200, "<app>"),
    Case("prefix without slash", "/static", 200, "<app>"),
    Case("doubled leading slash", "//static/css/app.css", 200, "<app>"),
    # traversal, raw and as it looks after the server decoded once
    Case("dotdot", "/static/../secret.txt"),
    Case("dotdot deep", "/static/css/../../secret.txt"),
    Case("dotdot to sibling", "/static/../static-secret/s.css"),
    Case("dotdot after version", "{U:css/app.css}/../../../secret.txt"),
    Case("dotdot before real file", "/static/css/../css/app.css"),
    Case("dot segment", "/static/./css/app.css"),
    Case("dot segment versioned", "/static/./{U:css/app.css}"),
    Case("double-encoded dotdot", "/static/%2e%2e/secret.txt"),
    Case("double-encoded dot-dot mixed", "/static/.%2e/secret.txt"),
    Case("double-encoded dot-dot mixed 2", "/static/%2e./secret.txt"),
    Case("double-encoded slash", "/static/..%2fsecret.txt"),
    Case("encoded slash in real path", "/static/css%2fapp.css"),
    Case("encoded slashes", "/static/css%2F..%2F..%2Fsecret.txt"),
    Case("triple encoding", "/static/%252e%252e/secret.txt"),
    Case("backslash", "/static/..\\secret.txt"),
    Case("backslash deep", "/static/css\\..\\..\\secret.txt"),
    Case("backslash as separator", "/static/css\\app.css"),
    Case("encoded backslash", "/static/..%5csecret.txt"),
    Case("absolute path join", "/static//etc/passwd"),
    # NUL
    Case("NUL after name", "/static/css/app.css\x00"),
    Case("NUL extension trick", "/static/css/app.css\x00.png"),
    Case("NUL after version", "{U:css/app.css}\x00"),
    Case("NUL segment", "/static/\x00/../secret.txt"),
    Case("encoded NUL", "/static/css/app.css%00"),
    # invalid UTF-8 and overlong sequences (PATH_INFO carries bytes as latin-1)
    Case("invalid utf-8", latin1(b"/static/\xff.css")),
    Case("overlong dot", latin1(b"/static/\xc0\xae\xc0\xae/secret.txt")),
    Case("overlong slash", latin1(b"/static/..\xc0\xafsecret.txt")),
    Case("3-byte overlong dot", latin1(b"/static/\xe0\x80\xae\xe0\x80\xae/secret.txt")),
    Case("encoded surrogate", latin1(b"/static/css/app\xed\xa0\x80.css")),
    Case("overlong as text", "/static/%c0%ae%c0%ae/secret.txt"),
    Case("unicode not as latin-1", "/static/\u2025/secret.txt"),
    Case("NFD form of a real name", "/static/" + latin1(
        unicodedata.normalize("NFD", "é.css").encode())),
    # empty and doubled slashes
    Case("prefix only", "/static/"),
    Case("prefix doubled slash", "/static//"),
    Case("doubled slash before file", "/static//css/app.css"),
    Case("doubled slash inside", "/static/css//app.css"),
    Case("triple slash", "/static///secret.txt"),
    # Windows
    Case("drive letter", "/static/C:/Windows/win.ini"),
    Case("drive letter backslash", "/static/C:\\secret.txt"),
    Case("drive relative", "/static/c:secret.txt"),
    Case("UNC", "/static/\\\\server\\share\\secret.txt"),
    Case("UNC slashes", "/static///server/share/secret.txt"),
    Case("UNC device", "/static/\\\\.\\NUL"),
    Case("UNC long path", "/static/\\\\?\\C:\\secret.txt"),
    Case("device NUL", "/static/NUL"),
    Case("device nul.css", "/static/nul.css"),
    Case("device con.txt", "/static/con.txt"),
    Case("device CON", "/static/CON"),
    Case("device AUX space", "/static/AUX .css"),
    Case("device COM1", "/static/css/COM1"),
    Case("device LPT1.js", "/static/LPT1.js"),
    Case("trailing dot", "/static/css/app.css."),
    Case("trailing space", "/static/css/app.css "),
    Case("trailing dots and spaces", "/static/css/app.css. . "),
    Case("versioned trailing dot", "{U:css/app.css}."),
    Case("versioned trailing space", "{U:css/app.css} "),
    Case("alternate data stream", "{U:css/app.css}::$DATA"),
    Case("alternate data stream plain", "/static/css/app.css::$DATA"),
    # dotfiles and dot-directories, in any case, plain and with a guessed version
    Case("dotenv", "/static/.env"),
    Case("dotenv upper", "/static/.ENV"),
    Case("dotenv mixed", "/static/.Env"),
    Case("dotenv guessed version", "{G:.env}"),
    Case("dot-git", "/static/.git/config"),
    Case("dot-GIT", "/static/.GIT/config"),
    Case("dot-GIT guessed", "{G:.GIT/config}"),
    Case("dot-git dir", "/static/.git/"),
    Case("hidden file in dir", "/static/css/.hidden.css"),
    Case("hidden file guessed", "{G:css/.hidden.css}"),
    Case("hidden dir", "/static/.hidden/app.css"),
    Case("hidden dir guessed", "{G:.hidden/app.css}"),
    # directories: no listing, no redirect
    Case("dir", "/static/css"),
    Case("dir slash", "/static/css/"),
    Case("dir dot", "/static/css/."),
    Case("dir dotdot", "/static/css/.."),
    Case("empty dir", "/static/emptydir"),
    Case("empty dir slash", "/static/emptydir/"),
    Case("version-looking dir", "/static/css.0123456789ab/"),
    # a file used as a directory
    Case("file as dir", "/static/css/app.css/"),
    Case("file as dir child", "/static/css/app.css/x"),
    Case("versioned file as dir", "{U:css/app.css}/"),
    Case("versioned file as dir child", "{U:css/app.css}/x.css"),
    Case("versioned file as dir dotdot", "{U:css/app.css}/.."),
    # very long names
    Case("long name", "/static/" + "a" * 100_000 + ".css"),
    Case("deep path", "/static/" + "a/" * 20_000 + "x.css"),
    Case("max-length version", "{L:css/app.css}", 200, "css/app.css"),
    # (a plain URL with an unrelated query is the plain file)
    Case("over-long version", "{X:css/app.css}", overrides={"query": (200, "css/app.css")}),
    Case("many dots", "/static/" + "." * 10_000),
    Case("many dotdots", "/static/" + "../" * 5_000 + "secret.txt"),
    # symlinks
    Case("symlink out", "/static/leak.css"),
    Case("symlink out guessed", "{G:leak.css}"),
    Case("symlink out deep", "/static/css/leak2.css"),
    Case("absolute symlink out", "/static/abs.css"),
    Case("absolute symlink guessed", "{G:abs.css}"),
    Case("symlink to sibling", "/static/sib.css"),
    Case("symlink to sibling guessed", "{G:sib.css}"),
    Case("dangling symlink", "/static/dangling.css"),
    Case("dir symlink out", "/static/outdir/x.css"),
    Case("dir symlink out guessed", "{G:outdir/x.css}"),
    # (in the segment style "loop" reads as an outdated version of css/app.css)
    Case("loop to root", "/static/loop/css/app.css",
         overrides={"segment": (200, "css/app.css")}),
    Case("loop to root twice", "/static/loop/loop/loop/css/app.css"),
    Case("mutual loop", "/static/loopa"),
    Case("self loop", "/static/self"),
    Case("variant symlink out", "/static/css/app.css.gz"),
    Case("variant symlink out streamed", "/static/js/big.js.br"),
    Case("variant as a file", "/static/img/logo.svg.gz"),
    Case("variant symlink out negotiated", "{U:css/app.css}", 200, "css/app.css",
         {"Accept-Encoding": "gzip, br, zstd"}),
    Case("variant symlink out negotiated streamed", "{U:js/big.js}", 200, "js/big.js",
         {"Accept-Encoding": "br"}),
    Case("FIFO", "/static/pipe.css"),
    Case("FIFO variant", "/static/css/app.css.zst"),
    Case("socket", "/static/sock.css"),
    # methods
    Case("POST on a file", "{U:css/app.css}", 405, method="POST"),
    Case("DELETE traversal", "/static/../secret.txt", 404, method="DELETE"),
    Case("HEAD traversal", "/static/../secret.txt", 404, method="HEAD"),
]


@pytest.fixture(scope="module", params=["filename", "segment", "query"])
def app(request, site) -> Bustware:
    return make_app(site.root, request.param)


def expected_body(site: Site, serves: str) -> bytes:
    return b"app" if serves == "<app>" else (site.root / serves).read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_path(app, site, case):
    path, query = resolve(app, site, case.path)
    status, serves = case.overrides.get(app.assets.style.name, (case.status, case.serves))
    r = call(app, path, query, method=case.method, headers=case.headers)
    assert r.status == status, (path[:200], r.status, r.body[:200])
    if serves is not None:
        assert r.body == expected_body(site, serves)
        if serves != "<app>":
            assert r.header("Content-Encoding") is None


def test_the_index_holds_only_what_it_should(site):
    """The root cause of every 404 above: what the walk refused to index."""
    assets = Assets(site.root)
    assert sorted(a.path for a in assets) == sorted(
        ["alias.css", "css/app.css", "img/logo.svg", "js/big.js", "per%2fcent.css",
         "é.css", EVIL_NAME])
    assert set(assets["css/app.css"].variants) == set()  # .gz leaves the root, .zst is a FIFO
    assert set(assets["img/logo.svg"].variants) == {"gzip"}
    assert set(assets["js/big.js"].variants) == set()
    real_root = os.path.realpath(site.root)
    for asset in assets:
        for p in [asset.abs_path, *(v.abs_path for v in asset.variants.values())]:
            assert os.path.commonpath([os.path.realpath(p), real_root]) == real_root


def test_a_real_variant_is_still_negotiated(site):
    # The control for the symlinked variants: a variant inside the root works.
    app = make_app(site.root, "filename")
    path, _ = resolve(app, site, "{U:img/logo.svg}")
    r = call(app, path, headers={"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == LOGO


# -- no oracle: outside files that exist and that do not look the same ---------

ORACLE_PAIRS = [
    ("/static/../secret.txt", "/static/../nothere.txt"),
    ("/static/css/../../secret.txt", "/static/css/../../nothere.txt"),
    ("/static/../static-secret/s.css", "/static/../static-secret/t.css"),
    ("/static/leak.css", "/static/nolink.css"),
    ("/static/sib.css", "/static/dangling.css"),
    ("/static/outdir/x.css", "/static/outdir/y.css"),
    ("/static/%2e%2e/secret.txt", "/static/%2e%2e/nothere.txt"),
    ("/static/.env", "/static/.nothere"),
    ("/static/.git/config", "/static/.git/nothere"),
    ("/static/css", "/static/nodir"),
    ("/static/css/", "/static/nodir/"),
    ("/static/pipe.css", "/static/nopipe.css"),
]


@pytest.mark.parametrize(("exists", "missing"), ORACLE_PAIRS)
def test_no_existence_oracle(app, site, exists, missing):
    a, b = call(app, exists), call(app, missing)
    assert (a.status, a.headers, a.body) == (b.status, b.headers, b.body)


def test_guessed_versions_give_no_oracle(app, site):
    # An attacker who knows the bytes of an outside file computes the URL it
    # would have: same answer as for bytes that exist nowhere.
    a = call(app, *resolve(app, site, "{G:leak.css}"))
    url_path, q = app.assets.style.build("leak.css", "f" * 12)
    b = call(app, wsgi_path(app.assets.prefix + url_path), q)
    assert (a.status, a.headers, a.body) == (b.status, b.headers, b.body)


# -- FIFOs and sockets: indexing must not hang ---------------------------------


def test_fifo_and_socket_do_not_hang_the_index(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "a.css").write_bytes(b"a")
    os.mkfifo(root / "b.css")
    os.mkfifo(root / "a.css.gz")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "c.css"))
    done: list = []
    worker = threading.Thread(target=lambda: done.append(Assets(root)), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        for fifo in ("b.css", "a.css.gz"):  # unblock the stuck open() so the thread ends
            with open(os.open(root / fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
                pass
        pytest.fail("Assets() blocked on a FIFO")
    assert [a.path for a in done[0]] == ["a.css"]
    assert done[0]["a.css"].variants == {}


# -- hostile Range and If-* headers ------------------------------------------


def _multipart(body: bytes, content_type: str) -> list[tuple[int, int, bytes]]:
    boundary = content_type.split("boundary=")[1].encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        m = re.search(rb"Content-Range: bytes (\d+)-(\d+)/\d+", head)
        parts.append((int(m.group(1)), int(m.group(2)), data[:-2]))  # part ends with CRLF
    return parts


HUGE = "9" * 40
FAR_DATE = "Thu, 01 Jan 99999999999 00:00:00 GMT"
RANGE_CASES = [
    # (id, headers, expected status, expected ranges for a 206, None = whole file)
    ("huge start", {"Range": f"bytes={HUGE}-"}, 416, None),
    ("huge suffix", {"Range": f"bytes=-{HUGE}"}, 206, [(0, -1)]),
    ("huge end", {"Range": f"bytes=0-{HUGE}"}, 206, [(0, -1)]),
    ("huge end past start", {"Range": f"bytes=5-{HUGE}"}, 206, [(5, -1)]),
    ("header too long", {"Range": "bytes=" + "9" * 5000 + "-"}, 200, None),
    ("thousands of ranges", {"Range": "bytes=" + ",".join(["0-0"] * 2000)}, 200, None),
    # Overlapping or unordered ranges may be ignored (RFC 9110 14.2): the
    # whole file once, never the same bytes many times over.
    ("many overlapping ranges", {"Range": "bytes=" + ",".join(["0-"] * 100)}, 200, None),
    ("many identical small", {"Range": "bytes=" + ",".join(["1-1"] * 200)}, 200, None),
    ("17 disjoint ranges", {"Range": "bytes=" + ",".join(f"{2 * i}-{2 * i}"
                                                          for i in range(17))}, 200, None),
    ("16 disjoint ranges", {"Range": "bytes=" + ",".join(f"{2 * i}-{2 * i}"
                                                          for i in range(16))},
     206, [(2 * i, 2 * i) for i in range(16)]),
    ("reversed", {"Range": "bytes=5-3"}, 200, None),
    ("double dash", {"Range": "bytes=--1"}, 200, None),
    ("three numbers", {"Range": "bytes=0-1-2"}, 200, None),
    ("letters", {"Range": "bytes=a-b"}, 200, None),
    ("hex", {"Range": "bytes=0x10-"}, 200, None),
    ("exponent", {"Range": "bytes=1e3-"}, 200, None),
    ("plus sign", {"Range": "bytes=+1-2"}, 200, None),
    ("unicode digits", {"Range": "bytes=\u0663-\u0664"}, 200, None),
    ("NUL", {"Range": "bytes=\x000-1"}, 200, None),
    ("other unit", {"Range": "items=0-1"}, 200, None),
    ("empty set", {"Range": "bytes="}, 200, None),
    ("trailing comma", {"Range": "bytes=0-1,"}, 200, None),
    ("If-Range garbage", {"Range": "bytes=0-1", "If-Range": "garbage"}, 200, None),
    ("If-Range far date", {"Range": "bytes=0-1", "If-Range": FAR_DATE}, 200, None),
    ("If-Range weak", {"Range": "bytes=0-1", "If-Range": 'W/"x"'}, 200, None),
    ("If-None-Match star", {"If-None-Match": "*"}, 304, None),
    ("If-None-Match quotes", {"If-None-Match": '"' * 5001}, 200, None),
    ("If-None-Match commas", {"If-None-Match": "," * 10000}, 200, None),
    ("If-None-Match bare W/", {"If-None-Match": "W/"}, 200, None),
    ("If-None-Match NUL", {"If-None-Match": '"\x00"'}, 200, None),
    ("If-None-Match many tags", {"If-None-Match": ", ".join(f'"{i}"' for i in range(5000))},
     200, None),
    ("If-Match wrong", {"If-Match": '"nope"'}, 412, None),
    ("If-Match star", {"If-Match": "*"}, 200, None),
    ("If-Match garbage", {"If-Match": "\x00\x01"}, 412, None),
    ("If-Modified-Since far future", {"If-Modified-Since": FAR_DATE}, 200, None),
    ("If-Modified-Since garbage", {"If-Modified-Since": "yesterday"}, 200, None),
    ("If-Modified-Since NUL", {"If-Modified-Since": "\x00"}, 200, None),
    ("If-Modified-Since year 0", {"If-Modified-Since": "Sat, 01 Jan 0000 00:00:00 GMT"},
     200, None),
    ("If-Modified-Since bad zone", {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 +9999"},
     200, None),
    ("If-Unmodified-Since far future", {"If-Unmodified-Since": FAR_DATE}, 200, None),
    ("If-Unmodified-Since garbage", {"If-Unmodified-Since": "\xff\xfe"}, 200, None),
    ("Accept-Encoding NaN", {"Accept-Encoding": "gzip;q=nan, br;q=inf"}, 200, None),
    ("Accept-Encoding commas", {"Accept-Encoding": "," * 10000}, 200, None),
    ("Accept-Encoding refuses all", {"Accept-Encoding": "identity;q=0, *;q=0"}, 200, None),
]


@pytest.mark.parametrize("target", ["css/app.css", "js/big.js", "img/logo.svg"])
@pytest.mark.parametrize(("headers", "status", "ranges"),
                         [c[1:] for c in RANGE_CASES], ids=[c[0] for c in RANGE_CASES])
def test_hostile_headers(site, target, headers, status, ranges):
    app = make_app(site.root, "filename")
    content = (site.root / target).read_bytes()
    path, _ = resolve(app, site, "{U:" + target + "}")
    r = call(app, path, headers=headers)
    assert r.status == status, (r.status, r.body[:100])
    coding = r.header("Content-Encoding")
    if coding is not None:  # only a real variant inside the root, never a symlinked one
        assert (target, coding) == ("img/logo.svg", "gzip")
        content = (site.root / "img/logo.svg.gz").read_bytes()
    if status == 200:
        assert r.body == content
    elif status == 304:
        assert r.body == b""
    elif status == 416:
        assert r.header("Content-Range") == f"bytes */{len(content)}"
    elif status == 206:
        want = [(a, len(content) - 1 if b == -1 else b) for a, b in ranges]
        if len(want) == 1:
            a, b = want[0]
            assert r.header("Content-Range") == f"bytes {a}-{b}/{len(content)}"
            assert r.body == content[a:b + 1]
        else:
            parts = _multipart(r.body, r.header("Content-Type"))
            assert [(a, b) for a, b, _ in parts] == want
            for a, b, data in parts:
                assert data == content[a:b + 1]


def test_head_with_hostile_range_sends_no_body(site):
    app = make_app(site.root, "filename")
    path, _ = resolve(app, site, "{U:js/big.js}")
    r = call(app, path, method="HEAD", headers={"Range": f"bytes={HUGE}-"})
    assert r.status == 200 and r.body == b""
    assert r.header("Content-Length") == str(len(BIG_JS))


# -- CR/LF never reaches a header ------------------------------------------------


@pytest.mark.parametrize("style", ["filename", "segment", "query"])
def test_redirect_location_never_carries_crlf(site, style):
    app = make_app(site.root, style, outdated="redirect")
    # The server decoded %0D%0A: PATH_INFO holds a real CR LF.
    path, query = resolve(app, site, "{O:" + EVIL_NAME + "}")
    assert "\r\n" in path + query or style == "query"
    r = call(app, path, query)
    assert r.status == 307
    location = r.header("Location")
    assert location == app.url(EVIL_NAME)
    assert "%0D%0A" in location
    assert not {"set-cookie"} & {k.lower() for k, _ in r.headers}
    # and the current URL of that file is served, with its name only in the URL
    path, query = resolve(app, site, "{U:" + EVIL_NAME + "}")
    assert call(app, path, query).body == b"evil\n"


@pytest.mark.parametrize("value", ["*\r\nSet-Cookie: a=b", "x\nX-Evil: 1", "x\x00"])
def test_request_values_are_never_echoed_into_headers(site, value):
    app = make_app(site.root, "filename", outdated="redirect")
    path, _ = resolve(app, site, "{O:css/app.css}")
    headers = {"Range": value, "If-None-Match": value, "If-Range": value,
               "Accept-Encoding": value, "Host": value}
    r = call(app, path + value, value, headers=headers)
    assert r.status == 404
    r = call(app, path, value, headers=headers)
    assert r.status == 307 and r.header("Location") == app.url("css/app.css")


# -- the same through a real gunicorn, byte for byte on the wire ------------------

GUNICORN_APP = '''\
from bustware import Bustware


def fallback(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"app"]


# /static/ serves outdated versions, /r/ redirects them to the current URL.
# compress=False: the bodies are compared with the files' bytes.
application = Bustware(
    Bustware(fallback, {root!r}, "/r/", outdated="redirect", memory_threshold={threshold},
             compress=False),
    {root!r}, memory_threshold={threshold}, compress=False,
)
'''


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("gunicorn")
    (cwd / "adv_app.py").write_text(
        GUNICORN_APP.format(root=str(site.root), threshold=THRESHOLD))
    with gunicorn("adv_app:application", cwd, "--workers", "1", "--timeout", "10") as url:
        yield url.rsplit(":", 1)[1]


def raw(port: str, target: bytes, headers: bytes = b"", method: bytes = b"GET") -> Result:
    request = (method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               + headers + b"Connection: close\r\n\r\n")
    chunks = []
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(request)
        while data := s.recv(65536):
            chunks.append(data)
    response = b"".join(chunks)
    assert SECRET not in response
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert re.match(r"HTTP/1\.[01] \d\d\d", lines[0]), lines[0]
    hdrs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    return Result(int(lines[0].split()[1]), hdrs, body)


WIRE = [
    # (target, extra header lines, allowed statuses); 400/414 are gunicorn's own
    (b"/static/../secret.txt", b"", {404}),
    (b"/static/%2e%2e/secret.txt", b"", {404}),
    (b"/static/.%2e/secret.txt", b"", {404}),
    (b"/static/%2e%2e%2fsecret.txt", b"", {404}),
    (b"/static/..%2fsecret.txt", b"", {404}),
    (b"/static/..%2Fstatic-secret%2Fs.css", b"", {404}),
    (b"/static/%252e%252e/secret.txt", b"", {404}),
    (b"/static/..%5csecret.txt", b"", {404}),
    (b"/static/..\\secret.txt", b"", {400, 404}),
    (b"/static/%00", b"", {400, 404}),
    (b"/static/css/app.css%00.png", b"", {400, 404}),
    (b"/static/%ff.css", b"", {400, 404}),
    (b"/static/%c0%ae%c0%ae/secret.txt", b"", {400, 404}),
    (b"/static/\xc0\xae\xc0\xae/secret.txt", b"", {400, 404}),
    (b"/static//etc/passwd", b"", {404}),
    (b"/static///server/share", b"", {404}),
    (b"/static/C:%5csecret.txt", b"", {404}),
    (b"/static/%5c%5cserver%5cshare%5csecret.txt", b"", {404}),
    (b"/static/NUL", b"", {404}),
    (b"/static/con.txt", b"", {404}),
    (b"/static/AUX%20.css", b"", {404}),
    (b"/static/css/app.css.", b"", {404}),
    (b"/static/css/app.css%20", b"", {404}),
    (b"/static/.env", b"", {404}),
    (b"/static/.GIT/config", b"", {404}),
    (b"/static/css", b"", {404}),
    (b"/static/css/", b"", {404}),
    (b"/static/css/app.css/x", b"", {404}),
    (b"/static/leak.css", b"", {404}),
    (b"/static/sib.css", b"", {404}),
    (b"/static/outdir/x.css", b"", {404}),
    (b"/static/loop/css/app.css", b"", {404}),
    (b"/static/pipe.css", b"", {404}),
    (b"/static/sock.css", b"", {404}),
    (b"/static/css/app.css.gz", b"", {404}),
    (b"/static/" + b"a" * 8000 + b".css", b"", {400, 404, 414}),
    (b"http://127.0.0.1/static/../secret.txt", b"", {400, 404}),
    (b"../secret.txt", b"", {400, 404}),
    (b"*", b"", {400, 404, 200}),
    (b"/static/css/app.css", b"Range: bytes=" + b"0-0," * 1000 + b"0-0\r\n", {200}),
    (b"/static/css/app.css", b"Range: bytes=" + HUGE.encode() + b"-\r\n", {416}),
    (b"/static/css/app.css", b"If-Modified-Since: " + FAR_DATE.encode() + b"\r\n", {200}),
    (b"/static/css/app.css", b"Accept-Encoding: gzip, br\r\n", {200}),
    (b"/static/js/big.js", b"Accept-Encoding: br\r\n", {200}),
    (b"/static/css/app.css", b"If-None-Match: " + b'"' * 3000 + b"\r\n", {200}),
    (b"/static/css/app.css", b"X-Evil: a\rb\r\n", {200, 400}),
    (b"/static/css/app.css", b"Range: bytes=0-1\n\r\n", {200, 206, 400}),
]


@pytest.mark.server
@pytest.mark.parametrize(("target", "headers", "allowed"), WIRE,
                         ids=[t[0][:60].decode("latin-1") + " " + t[1][:20].decode("latin-1")
                              for t in WIRE])
def test_hostile_request_on_the_wire(server, site, target, headers, allowed):
    r = raw(server, target, headers)
    assert r.status in allowed, (target[:100], r.status, r.body[:200])
    if r.status == 200 and target.startswith(b"/static/css/app.css"):
        assert r.body == APP_CSS
    if r.status == 200 and target.startswith(b"/static/js/big.js"):
        assert r.body == BIG_JS
    if r.status == 404:
        assert r.body == b"404 Not Found\n"
    assert r.header("Location") is None


@pytest.mark.server
def test_wire_redirect_location_carries_no_crlf(server, site):
    url_path, _ = Assets(site.root, "/r/").style.build(EVIL_NAME, "0" * 12)
    target = ("/r/" + quote(url_path, safe="/")).encode()
    assert b"%0D%0A" in target
    r = raw(server, target)
    assert r.status == 307
    assert r.header("Location") == Assets(site.root, "/r/").url(EVIL_NAME)
    assert "set-cookie" not in {k.lower() for k, _ in r.headers}


@pytest.mark.server
def test_wire_no_existence_oracle(server, site):
    for exists, missing in ORACLE_PAIRS:
        a = raw(server, quote(exists, safe="/%").encode())
        b = raw(server, quote(missing, safe="/%").encode())
        drop = {"date", "server"}
        assert (a.status, a.body) == (b.status, b.body)
        assert ([h for h in a.headers if h[0].lower() not in drop]
                == [h for h in b.headers if h[0].lower() not in drop])


# -- a file swapped for a symlink after indexing ---------------------------------


def test_file_replaced_by_symlink_after_indexing_does_not_leak(tmp_path):
    """A streamed file is opened per request; if it became a symlink leaving
    the root since it was indexed, its new target must not be sent."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "static"
    root.mkdir()
    (root / "big.js").write_bytes(BIG_JS)
    app = make_app(root, "filename")
    path, _ = resolve(app, Site(root, tmp_path), "{U:big.js}")
    assert call(app, path).body == BIG_JS
    os.remove(root / "big.js")
    os.symlink("../secret.txt", root / "big.js")
    r = call(app, path)
    assert r.status == 404


# -- trees that would break the walk ---------------------------------------------


def test_names_that_are_not_utf8_are_skipped(tmp_path):
    root = tmp_path / "static"
    root.mkdir()
    (root / "a.css").write_bytes(b"a")
    raw_root = os.fsencode(root)
    with open(os.path.join(raw_root, b"\xff.css"), "wb") as f:
        f.write(SECRET)
    os.mkdir(os.path.join(raw_root, b"d\xfe"))
    with open(os.path.join(raw_root, b"d\xfe", b"b.css"), "wb") as f:
        f.write(SECRET)
    app = make_app(root, "filename")
    assert [a.path for a in app.assets] == ["a.css"]
    assert call(app, latin1(b"/static/\xff.css")).status == 404
    assert call(app, latin1(b"/static/d\xfe/b.css")).status == 404
    assert call(app, *resolve(app, Site(root, tmp_path), "{U:a.css}")).body == b"a"


def test_symlink_fan_out_does_not_explode(tmp_path):
    """30 directories, each with two links to the next: 2**30 paths to the
    last one. Indexing must still end quickly (in a child process, so that a
    regression is killed rather than left spinning)."""
    root = tmp_path / "static"
    depth = 30
    for i in range(depth + 1):
        (root / f"d{i}").mkdir(parents=True)
    for i in range(depth):
        os.symlink(f"../d{i + 1}", root / f"d{i}" / "a")
        os.symlink(f"../d{i + 1}", root / f"d{i}" / "b")
    (root / f"d{depth}" / "x.css").write_bytes(b"x")
    code = "import sys; from bustware import Assets; print(len(Assets(sys.argv[1])))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                         timeout=30, env=env, check=True)
    assert 1 <= int(out.stdout) <= 64
