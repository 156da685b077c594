"""Compression without a build step (bustware.livecompress): text files are
sent compressed on their first request, negotiated as precompressed files are."""

from __future__ import annotations

import gzip
import os
import random
import threading
from pathlib import Path

import pytest
from conftest import fallback_app, make_tree, via_werkzeug
from test_http import DECODE, assert_lint_clean

from bustware import Bustware, livecompress
from bustware.compress import CodecUnavailable, compress_bytes, compress_file

AE = "Accept-Encoding"
IMMUTABLE = "max-age=31536000, immutable"


def _css(n: int = 120) -> bytes:
    return "".join(f".c{i} {{ color: #{i * 7919 % 0xFFFFFF:06x}; margin: {i % 17}px }}\n"
                   for i in range(n)).encode()


def _js(lines: int) -> bytes:
    rnd = random.Random(5)
    vocab = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=6)) for _ in range(500)]
    return "".join(f"var {rnd.choice(vocab)} = {rnd.choice(vocab)}({i});\n"
                   for i in range(lines)).encode()


CSS = _css()
JS = _js(3000)  # about 80 KB
FILES = {
    "css/app.css": CSS,
    "js/app.js": JS,
    "img/big.png": b"\x89PNG\r\n\x1a\n" + CSS * 4,  # compressible bytes, but a format that is not
    "tiny.css": b"a{color:red}\n" * 15,  # under MIN_SIZE
    "noise.bin": random.Random(1).randbytes(4096),  # saves nothing
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "static", FILES)


def get(fetch, app, path: str, coding: str | None = None, **headers: str):
    sent = {AE: coding} if coding is not None else {}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    url = app.url(path)
    r = fetch(app, url, "GET", sent)
    assert_lint_clean(r, "GET", url, sent)
    return r


def test_gzip_without_a_build(root, fetch):
    app = Bustware(None, root)
    r = get(fetch, app, "css/app.css", "gzip")
    assert r.status == 200
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Vary") == "Accept-Encoding"
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.header("Content-Type") == "text/css; charset=utf-8"
    # Byte for byte what the build writes, so every worker sends the same.
    assert r.body == compress_bytes(CSS, "gzip")
    assert gzip.decompress(r.body) == CSS
    assert r.header("Content-Length") == str(len(r.body))
    plain = get(fetch, app, "css/app.css")
    assert plain.status == 200 and plain.body == CSS
    assert plain.header("Content-Encoding") is None
    assert plain.header("Vary") == "Accept-Encoding"
    assert plain.header("ETag") != r.header("ETag")
    # Stable: the same ETag again, and from another process's middleware.
    again = get(fetch, app, "css/app.css", "gzip")
    assert again.header("ETag") == r.header("ETag") and again.body == r.body
    other = get(fetch, Bustware(None, root), "css/app.css", "gzip")
    assert other.header("ETag") == r.header("ETag")
    revalidated = get(fetch, app, "css/app.css", "gzip", If_None_Match=r.header("ETag"))
    assert revalidated.status == 304 and revalidated.body == b""
    assert revalidated.header("Vary") == "Accept-Encoding"


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_br_and_zstd_when_installed(root, fetch, coding):
    pytest.importorskip("brotli" if coding == "br" else "zstandard")
    app = Bustware(None, root)
    r = get(fetch, app, "js/app.js", coding)
    assert r.status == 200
    assert r.header("Content-Encoding") == coding
    assert r.body == compress_bytes(JS, coding)
    assert DECODE[coding](r.body) == JS
    # The server's preference among what the client accepts: br first.
    both = get(fetch, app, "js/app.js", "gzip, zstd, br")
    assert both.header("Content-Encoding") == "br"


def test_what_is_not_compressed(root, fetch):
    app = Bustware(None, root)
    for path in ("img/big.png", "tiny.css", "noise.bin"):
        r = get(fetch, app, path, "gzip, br, zstd")
        assert r.status == 200
        assert r.body == FILES[path]
        assert r.header("Content-Encoding") is None, path
        assert r.header("Vary") is None, path


def test_too_big_to_compress_on_a_request(root, fetch, monkeypatch):
    monkeypatch.setattr(livecompress, "MAX_SIZE", len(JS) - 1)
    app = Bustware(None, root)
    r = get(fetch, app, "js/app.js", "gzip")
    assert r.header("Content-Encoding") is None and r.body == JS
    assert get(fetch, app, "css/app.css", "gzip").header("Content-Encoding") == "gzip"


def test_the_option(root, fetch):
    off = Bustware(None, root, compress=False)
    r = get(fetch, off, "css/app.css", "gzip, br")
    assert r.header("Content-Encoding") is None and r.body == CSS
    assert r.header("Vary") is None
    only_gzip = Bustware(None, root, compress=["gzip"])
    r = get(fetch, only_gzip, "css/app.css", "br, zstd")
    assert r.header("Content-Encoding") is None and r.body == CSS
    assert r.header("Vary") == "Accept-Encoding"
    assert get(fetch, only_gzip, "css/app.css", "gzip, br").header("Content-Encoding") == "gzip"


def test_bad_option_values_say_what_to_pass(root):
    with pytest.raises(TypeError, match=r"compress='gzip' must be True, False or a list"):
        Bustware(None, root, compress="gzip")
    with pytest.raises(ValueError, match=r"unknown encoding 'deflate'"):
        Bustware(None, root, compress=["deflate"])


def test_a_missing_codec_is_named(root, monkeypatch):
    import bustware.compress as compress_module

    real = compress_module._codec

    def no_brotli(encoding):
        if encoding == "br":
            raise CodecUnavailable("bustware: br compression needs the 'brotli' package")
        return real(encoding)

    monkeypatch.setattr(compress_module, "_codec", no_brotli)
    with pytest.raises(CodecUnavailable, match="brotli"):
        Bustware(None, root, compress=["br", "gzip"])
    # The default takes what is installed.
    assert Bustware(None, root)._live.codings == ("gzip", "zstd")


def test_precompressed_files_win_and_the_rest_is_made(root, fetch):
    pytest.importorskip("brotli")
    compress_file(root / "css/app.css", ["br"])
    on_disk = (root / "css/app.css.br").read_bytes()
    app = Bustware(None, root)
    assert get(fetch, app, "css/app.css", "br").body == on_disk
    r = get(fetch, app, "css/app.css", "gzip")
    assert r.header("Content-Encoding") == "gzip" and gzip.decompress(r.body) == CSS


def test_a_range_of_a_made_variant(root, fetch):
    app = Bustware(None, root)
    whole = compress_bytes(JS, "gzip")
    r = get(fetch, app, "js/app.js", "gzip", Range="bytes=10-29")
    assert r.status == 206
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Content-Range") == f"bytes 10-29/{len(whole)}"
    assert r.body == whole[10:30]


def test_held_within_the_memory_budget_and_spilled_beyond(root, fetch):
    # The files themselves take most of the budget; room for one variant.
    gz_css = len(compress_bytes(CSS, "gzip"))
    app = Bustware(None, root, compress=["gzip"], memory_threshold=1 << 20,
                   memory_budget=sum(map(len, FILES.values())) + gz_css)
    assets, live = app.assets, app._live
    assert all(a.body is not None for a in assets)
    for path, data in (("css/app.css", CSS), ("js/app.js", JS)):
        r = get(fetch, app, path, "gzip")
        assert r.header("Content-Encoding") == "gzip"
        assert r.body == compress_bytes(data, "gzip")
    reps = {path: app._entries[path].reps["gzip"] for path in ("css/app.css", "js/app.js")}
    assert reps["css/app.css"].body is not None  # held
    assert reps["js/app.js"].body is None  # spilled to the private directory
    spilled = reps["js/app.js"].abs_path
    assert os.path.dirname(spilled) == assets.spill_dir
    assert Path(spilled).read_bytes() == compress_bytes(JS, "gzip")
    assert assets.memory_used + live.memory_used <= assets.memory_budget
    assert live.memory_used == gz_css


def test_rewritten_stylesheets_are_compressed_from_their_served_bytes(tmp_path, fetch):
    root = make_tree(tmp_path / "static", {
        "css/site.css": b'@import "base.css";\n' + _css(80),
        "css/base.css": CSS,
    })
    app = Bustware(None, root)
    served = app.assets["css/site.css"].served_bytes()
    assert app.url("css/base.css").encode() in served
    r = get(fetch, app, "css/site.css", "gzip")
    assert r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == served


def test_a_slow_compression_does_not_hold_other_files(root, monkeypatch):
    """While js/app.js is being compressed (blocked here), css/app.css is
    compressed and sent; concurrent first requests of js/app.js compress it
    once per coding."""
    real = livecompress.compress_stream
    entered, release = threading.Event(), threading.Event()
    calls: list[tuple[int, str]] = []

    def slow(src, out, *, encoding, size):
        calls.append((size, encoding))
        if size == len(JS):
            entered.set()
            assert release.wait(10), "never released"
        real(src, out, encoding=encoding, size=size)

    monkeypatch.setattr(livecompress, "compress_stream", slow)
    app = Bustware(None, root, compress=["gzip"])
    results: list = []

    def fetch_js():
        results.append(via_werkzeug(app, app.url("js/app.js"), headers={AE: "gzip"}))

    threads = [threading.Thread(target=fetch_js) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert entered.wait(10)
        r = via_werkzeug(app, app.url("css/app.css"), headers={AE: "gzip"})
        assert r.status == 200 and r.header("Content-Encoding") == "gzip"
        assert gzip.decompress(r.body) == CSS
        assert not results  # still waiting for js/app.js
    finally:
        release.set()
        for t in threads:
            t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert [r.body for r in results] == [compress_bytes(JS, "gzip")] * 3
    assert sorted(calls) == sorted([(len(CSS), "gzip"), (len(JS), "gzip")])


def test_development_mode_compresses_a_changed_file_again(root, fetch):
    app = Bustware(None, root, autorefresh=True, refresh_interval=0, compress=["gzip"])
    first = get(fetch, app, "css/app.css", "gzip")
    assert gzip.decompress(first.body) == CSS
    held = app._live.memory_used
    edited = CSS + b".new { color: blue }\n"
    path = root / "css/app.css"
    path.write_bytes(edited)
    os.utime(path, (1609459200, 1609459200))  # another mtime, in the past
    second = get(fetch, app, "css/app.css", "gzip")
    assert second.header("Content-Encoding") == "gzip"
    assert gzip.decompress(second.body) == edited
    assert second.header("ETag") != first.header("ETag")
    # The old content's variant is dropped, not kept on top.
    assert app._live.memory_used == held - len(first.body) + len(second.body)


def test_rewrite_mode_leaves_the_app_alone(root, fetch):
    def static_view(environ, start_response):
        body = b"from the app's view"
        start_response("200 OK", [("Content-Type", "text/css"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    app = Bustware(static_view, root, mode="rewrite")
    assert app._live is None
    r = fetch(app, app.url("css/app.css"), "GET", {AE: "gzip"})
    assert r.status == 200 and r.body == b"from the app's view"
    assert r.header("Content-Encoding") is None


def test_add_headers_runs_once_per_file_with_compression(root, fetch):
    calls: list[str] = []

    def hook(asset):
        calls.append(asset.path)
        return [("X-Asset", asset.path)]

    app = Bustware(fallback_app, root, add_headers=hook)
    assert sorted(calls) == sorted(FILES)
    for _ in range(2):
        r = get(fetch, app, "css/app.css", "gzip")
        assert r.header("Content-Encoding") == "gzip" and r.header("X-Asset") == "css/app.css"
        assert gzip.decompress(r.body) == CSS
    assert sorted(calls) == sorted(FILES)


def test_a_manifest_built_without_compress_gets_compressed_too(root, fetch):
    from bustware import build as b

    b.build(root)
    app = Bustware(None, root, manifest=root / ".bustware" / "manifest.json")
    assert app.assets["js/app.js"].body is None  # streamed from disk
    r = get(fetch, app, "js/app.js", "gzip")
    assert r.header("Content-Encoding") == "gzip"
    assert r.body == compress_bytes(JS, "gzip")
    r = get(fetch, app, "css/app.css", "gzip", Range="bytes=0-9")
    assert r.status == 206 and r.body == compress_bytes(CSS, "gzip")[:10]


def test_the_pyramid_setting_takes_a_boolean_or_codings():
    from bustware.pyramid import _from_settings

    assert _from_settings({"bustware.compress": "false"}) == {"compress": False}
    assert _from_settings({"bustware.compress": "true"}) == {"compress": True}
    assert _from_settings({"bustware.compress": "br gzip"}) == {"compress": ["br", "gzip"]}
