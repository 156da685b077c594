"""Coverage-guided fuzzing of bustware's parsers with atheris (libFuzzer).

Not part of CI and not collected by pytest (the name does not start with
``test_``). Run it, from the repository root, with one command::

    pip install atheris && python tests/fuzz/atheris_parsers.py -atheris_runs=100000

Any libFuzzer flag works (``-max_total_time=600``, ``-jobs=2``, a corpus
directory as the last argument). A crash prints the exception and writes the
input to ``crash-<sha1>``; replay it with
``python tests/fuzz/atheris_parsers.py crash-<sha1>``.

Each input picks one target and is split into the strings that target takes:

0. ``http.resolve_ranges(header, length)``: ``None``, or ranges inside the
   file, each non-empty, ascending and disjoint when there are several, and
   no more than ``MAX_RANGES``.
1. ``http.evaluate_preconditions`` and ``http.if_range_allows`` over fuzzed
   If-* headers: 304, 412 or None; a bool.
2. ``http.EncodingNegotiator.choose``: one of the offers or ``"identity"``,
   the same answer twice (the memo), and never a coding offered with q=0.
3. the styles' ``parse``: ``None`` or a path and a valid version, and
   building that pair back gives a URL that parses to the same pair.
4. the middleware, with a fuzzed environ (PATH_INFO as a server gives it,
   bytes as latin-1): a status from a small set, Content-Length equal to the
   body, no byte of the secret planted beside the root, and a body that is
   the file (or a slice of it) its ETag names.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import re
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from bustware import Bustware, http
    from bustware.styles import FilenameStyle, QueryStyle, SegmentStyle
    from bustware.versions import VERSION_RE

SECRET = b"ATHERIS-SECRET-OUTSIDE-THE-ROOT"
FILES = {
    "css/app.css": b"body { color: red }\n" * 10,
    "js/big.js": b"let x = 1;\n" * 500,  # above memory_threshold: streamed
    "empty.txt": b"",
    "LICENSE": b"MIT\n",
}
ALLOWED = {200, 206, 304, 307, 404, 405, 412, 416}
STYLES = [FilenameStyle(), SegmentStyle(), QueryStyle("v")]
CODINGS = ("br", "zstd", "gzip")


def _make_site() -> tuple[list[Bustware], dict[str, bytes]]:
    base = Path(tempfile.mkdtemp(prefix="bustware-atheris-"))
    atexit.register(shutil.rmtree, base, True)
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "static"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "css/app.css.gz").write_bytes(b"pretend-gzip")
    (root / "leak.css").symlink_to("../secret.txt")

    def fallback(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"app"]

    apps = [Bustware(fallback, root, style=style, outdated=outdated, memory_threshold=1024)
            for style, outdated in (("filename", "serve"), ("segment", "redirect"),
                                    ("query", "404"))]
    by_digest = {hashlib.sha256(p.read_bytes()).hexdigest(): p.read_bytes()
                 for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
    return apps, by_digest


APPS, BY_DIGEST = _make_site()


def _text(fdp: atheris.FuzzedDataProvider, limit: int = 64) -> str:
    """A header or path value as WSGI carries it: bytes as latin-1."""
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, limit)).decode("latin-1")


def fuzz_ranges(fdp: atheris.FuzzedDataProvider) -> None:
    length = fdp.ConsumeIntInRange(0, 1 << 40)
    header = "bytes=" + _text(fdp, 128) if fdp.ConsumeBool() else _text(fdp, 128)
    ranges = http.resolve_ranges(header, length)
    if ranges is None:
        return
    assert len(ranges) <= http.MAX_RANGES, (header, ranges)
    for start, stop in ranges:
        assert 0 <= start < stop <= length, (header, length, ranges)
    if len(ranges) > 1:
        for (_, stop), (start, _) in zip(ranges, ranges[1:]):
            assert stop < start, (header, ranges)


def fuzz_preconditions(fdp: atheris.FuzzedDataProvider) -> None:
    environ = {}
    for key in ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                "HTTP_IF_UNMODIFIED_SINCE", "HTTP_IF_RANGE"):
        if fdp.ConsumeBool():
            environ[key] = _text(fdp)
    etag = fdp.ConsumeBytes(24).hex()
    mtime = fdp.ConsumeIntInRange(0, 1 << 34)
    assert http.evaluate_preconditions(environ, etag, mtime) in (None, 304, 412)
    assert http.if_range_allows(environ, etag, mtime) in (True, False)


NEGOTIATOR = http.EncodingNegotiator(maxsize=64)


def fuzz_negotiation(fdp: atheris.FuzzedDataProvider) -> None:
    offers = tuple(c for c in CODINGS if fdp.ConsumeBool())
    header = _text(fdp, 96)
    choice = NEGOTIATOR.choose(header, offers)
    assert choice in (*offers, "identity"), (header, offers, choice)
    assert NEGOTIATOR.choose(header, offers) == choice
    refused = re.search(rf"(?:^|,)\s*{choice}\s*;\s*q\s*=\s*0(?:\.0*)?\s*(?:,|$)", header, re.I)
    assert choice == "identity" or not refused, (header, offers, choice)


def fuzz_styles(fdp: atheris.FuzzedDataProvider) -> None:
    style = STYLES[fdp.ConsumeIntInRange(0, len(STYLES) - 1)]
    url_path = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    query = _text(fdp)
    parsed = style.parse(url_path, query)
    if parsed is None:
        return
    path, version = parsed
    assert VERSION_RE.match(version), (url_path, query, parsed)
    assert style.parse(*style.build(path, version)) == (path, version), (url_path, parsed)


def fuzz_middleware(fdp: atheris.FuzzedDataProvider) -> None:
    app = APPS[fdp.ConsumeIntInRange(0, len(APPS) - 1)]
    asset = sorted(app.assets, key=lambda a: a.path)[fdp.ConsumeIntInRange(0, len(app.assets) - 1)]
    url = asset.url if fdp.ConsumeBool() else app.prefix
    path = url.partition("?")[0] + _text(fdp, 32) if fdp.ConsumeBool() else _text(fdp, 96)
    method = ["GET", "HEAD", "POST", _text(fdp, 8)][fdp.ConsumeIntInRange(0, 3)]
    environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
               "QUERY_STRING": url.partition("?")[2] if fdp.ConsumeBool() else _text(fdp),
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
    for key in ("HTTP_RANGE", "HTTP_ACCEPT_ENCODING", "HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH",
                "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE", "HTTP_IF_RANGE"):
        if fdp.ConsumeBool():
            environ[key] = _text(fdp)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    iterable = app(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        if hasattr(iterable, "close"):
            iterable.close()
    status = int(seen["status"][:3])
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert status in ALLOWED, (environ, seen["status"])
    assert SECRET not in body
    for name, value in seen["headers"]:
        assert not set("\r\n\0") & set(name + value), (name, value)
    if method == "HEAD" or status == 304:
        assert body == b"", (environ, status)
    else:
        assert headers.get("content-length") == str(len(body)), (environ, status)
    etag = headers.get("etag")
    if etag is None or method == "HEAD":
        return
    found = [data for digest, data in BY_DIGEST.items() if digest.startswith(etag.strip('"'))]
    assert len(found) == 1, (environ, etag)
    if status == 200:
        assert body == found[0], environ
    elif status == 206 and "content-range" in headers:
        start, end = map(int, re.match(r"bytes (\d+)-(\d+)/", headers["content-range"]).groups())
        assert body == found[0][start:end + 1], environ


TARGETS = [fuzz_ranges, fuzz_preconditions, fuzz_negotiation, fuzz_styles, fuzz_middleware]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
