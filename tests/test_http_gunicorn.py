"""Streamed files through a real gunicorn: the bytes on the wire are exactly
Content-Length and exactly the file's, on the sendfile path (the server's
wsgi.file_wrapper) and on the slice path.

Responses are read from a raw socket until the server closes it, so a server
that sent more than Content-Length (a wrapper sending to EOF for a middle
range) fails the test instead of being cut off by a client's framing.
"""

from __future__ import annotations

import gzip
import random
import re
import socket
import time

import pytest
from conftest import gunicorn, make_tree

from bustware import Assets

pytestmark = pytest.mark.server

THRESHOLD = 64 * 1024
SIZE = 3 * THRESHOLD + 1234

APP = f'''
from bustware import Bustware

wrapped = []


def counter(environ, start_response):
    body = str(len(wrapped)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


static = Bustware(counter, "static", memory_threshold={THRESHOLD})


counting = {{}}


def application(environ, start_response):
    # Count uses of the server's file wrapper (the sendfile path). gunicorn
    # tests isinstance(result, environ["wsgi.file_wrapper"]) before using
    # sendfile, so the counter is a subclass of its wrapper class.
    real = environ["wsgi.file_wrapper"]
    if real not in counting:
        class Counting(real):
            def __init__(self, filelike, blksize=8192):
                wrapped.append(blksize)
                super().__init__(filelike, blksize)
        counting[real] = Counting
    environ["wsgi.file_wrapper"] = counting[real]
    return static(environ, start_response)
'''


def raw_get(base: str, path: str, headers: dict[str, str] | None = None,
            timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    host, port = base.removeprefix("http://").split(":")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    raw = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while chunk := sock.recv(1 << 16):
            raw += chunk
            assert time.monotonic() < deadline, "response took too long"
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw[:200]
    status_line, *fields = head.decode("latin-1").split("\r\n")
    parsed: dict[str, str] = {}
    for line in fields:
        name, _, value = line.partition(":")
        assert name.lower() not in parsed, f"{name} sent twice"
        parsed[name.lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("gunicorn")
    data = random.Random(7).randbytes(SIZE)  # incompressible: no variants
    text = b"".join(b"line %d of a big stylesheet\n" % i for i in range(40000))
    make_tree(cwd / "static", {"big.bin": data, "big.css": text,
                               "big.css.gz": gzip.compress(text, mtime=0)})
    assert len(text) > THRESHOLD and len(gzip.compress(text)) > THRESHOLD
    (cwd / "wsgiapp.py").write_text(APP)
    with gunicorn("wsgiapp:application", cwd, "--workers", "1", timeout=20) as base:
        assets = Assets(cwd / "static", memory_threshold=THRESHOLD)
        yield base, {"bin": assets.url("big.bin"), "css": assets.url("big.css")}, data, text


def wrapper_calls(base: str) -> int:
    status, _, body = raw_get(base, "/count")
    assert status == 200
    return int(body)


@pytest.mark.parametrize(
    ("name", "headers", "status", "piece", "sendfile"),
    [
        ("full", {}, 200, slice(None), True),
        ("open-ended", {"Range": "bytes=1000-"}, 206, slice(1000, None), True),
        ("suffix", {"Range": "bytes=-4096"}, 206, slice(-4096, None), True),
        ("middle", {"Range": "bytes=100-70099"}, 206, slice(100, 70100), False),
        ("first-byte", {"Range": "bytes=0-0"}, 206, slice(0, 1), False),
    ],
)
def test_streamed_file_bytes_equal_content_length(served, name, headers, status, piece,
                                                  sendfile):
    base, urls, data, _ = served
    before = wrapper_calls(base)
    code, fields, body = raw_get(base, urls["bin"], headers)
    assert code == status
    assert fields["content-length"] == str(len(body))
    assert body == data[piece]
    assert "transfer-encoding" not in fields
    if status == 206:
        sent = range(SIZE)[piece]
        assert fields["content-range"] == f"bytes {sent.start}-{sent.stop - 1}/{SIZE}"
    # A slice that runs to the end of the file goes to the server's wrapper
    # (sendfile); any other is read by bustware, never handed to the wrapper.
    assert wrapper_calls(base) - before == (1 if sendfile else 0)


def test_streamed_multipart_through_gunicorn(served):
    base, urls, data, _ = served
    code, fields, body = raw_get(base, urls["bin"], {"Range": "bytes=0-9,-10"})
    assert code == 206
    assert fields["content-length"] == str(len(body))
    boundary = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", fields["content-type"])
    assert boundary
    delim = b"--" + boundary.group(1).encode()
    assert body == (
        delim + b"\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Range: bytes 0-9/{SIZE}\r\n\r\n".encode() + data[:10] + b"\r\n"
        + delim + b"\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Range: bytes {SIZE - 10}-{SIZE - 1}/{SIZE}\r\n\r\n".encode() + data[-10:]
        + b"\r\n" + delim + b"--\r\n"
    )


def test_streamed_gzip_variant_through_gunicorn(served):
    base, urls, _, text = served
    code, fields, body = raw_get(base, urls["css"], {"Accept-Encoding": "gzip"})
    assert code == 200
    assert fields["content-encoding"] == "gzip"
    assert fields["vary"] == "Accept-Encoding"
    assert fields["content-length"] == str(len(body))
    assert gzip.decompress(body) == text
    code, fields, body = raw_get(base, urls["css"], {"Accept-Encoding": "gzip",
                                                     "Range": "bytes=-100"})
    assert code == 206
    assert fields["content-length"] == str(len(body)) == "100"
    assert body == gzip.compress(text, mtime=0)[-100:]
