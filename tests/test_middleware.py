"""Serving: what each kind of URL gets, through both test clients."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from conftest import asgi_scope, fallback_app, run_asgi, server_environ, via_werkzeug
from werkzeug.http import http_date

from bustware import Assets, Bustware, BustwareASGI
from bustware.entries import EntryMaker

CSS = b"body { color: #123456 }\n"
IMMUTABLE = "max-age=31536000, immutable"


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:24] + '"'


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture
def root(tree):
    return tree({
        "css/app.css": CSS,
        "js/app.js": b"console.log(1)\n",
        "img/big.bin": bytes(range(256)) * 2048,  # 512 KiB: above the memory threshold
        "fonts/Ünï côde%.woff2": b"wOF2 font",
        "app.12345678abcd.css": b"a real file with a versioned-looking name",
        "LICENSE": b"MIT",
    })


@pytest.fixture(params=["filename", "segment", "query"])
def style(request):
    return request.param


def test_current_url_is_immutable_with_exact_bytes(root, style, fetch):
    app = Bustware(fallback_app, root, style=style)
    r = fetch(app, app.url("css/app.css"))
    assert r.status == 200
    assert r.body == CSS
    assert r.header("Content-Type") == "text/css; charset=utf-8"
    assert r.header("Content-Length") == str(len(CSS))
    assert r.header("ETag") == etag_of(CSS)
    mtime = int(os.stat(root / "css/app.css").st_mtime)
    assert r.header("Last-Modified") == http_date(mtime)
    assert r.header("Cache-Control") == IMMUTABLE
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("Accept-Ranges") == "bytes"


def test_plain_url_revalidates(root, style, fetch):
    app = Bustware(fallback_app, root, style=style)
    r = fetch(app, "/static/css/app.css")
    assert (r.status, r.body) == (200, CSS)
    assert r.header("Cache-Control") == "no-cache"
    assert r.header("ETag") == etag_of(CSS)


def outdated_url(style: str) -> tuple[str, str]:
    return {
        "filename": ("/static/css/app.0000deadbeef.css", ""),
        "segment": ("/static/0000deadbeef/css/app.css", ""),
        "query": ("/static/css/app.css", "v=0000deadbeef"),
    }[style]


def test_outdated_version_served_uncached_by_default(root, style, fetch):
    app = Bustware(fallback_app, root, style=style)
    path, query = outdated_url(style)
    r = fetch(app, path, query=query)
    assert (r.status, r.body) == (200, CSS)
    assert r.header("Cache-Control") == "no-store"
    assert "immutable" not in str(r.headers)


def test_outdated_version_404(root, style, fetch):
    app = Bustware(fallback_app, root, style=style, outdated="404")
    path, query = outdated_url(style)
    r = fetch(app, path, query=query)
    assert r.status == 404 and r.header("Cache-Control") == "no-store"
    assert CSS not in r.body


def test_outdated_version_redirects_to_current(root, style, fetch):
    app = Bustware(fallback_app, root, style=style, outdated="redirect")
    path, query = outdated_url(style)
    r = fetch(app, path, query=query)
    assert r.status == 307
    assert r.header("Location").endswith(app.url("css/app.css"))
    assert r.header("Cache-Control") == "no-store"


def test_query_style_without_or_with_other_params(root, fetch):
    app = Bustware(fallback_app, root, style="query")
    v = version_of(CSS)
    r = fetch(app, "/static/css/app.css", query=f"x=1&v={v}")
    assert (r.status, r.header("Cache-Control")) == (200, IMMUTABLE)
    r = fetch(app, "/static/css/app.css", query="x=1")
    assert (r.status, r.header("Cache-Control")) == (200, "no-cache")


def test_unknown_path_under_prefix(root, fetch):
    app = Bustware(fallback_app, root)
    r = fetch(app, "/static/css/nope.css")
    assert r.status == 404 and r.header("Cache-Control") == "no-store"
    app = Bustware(fallback_app, root, missing="app")
    r = fetch(app, "/static/css/nope.css")
    assert (r.status, r.body) == (200, b"app:/static/css/nope.css")


def test_outside_the_prefix_goes_to_the_app_untouched(root, fetch):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return fallback_app(environ, start_response)

    bust = Bustware(app, root)
    r = fetch(bust, "/staticky/css/app.css", query="v=1")
    assert (r.status, r.body) == (200, b"app:/staticky/css/app.css")
    assert seen["PATH_INFO"] == "/staticky/css/app.css" and seen["QUERY_STRING"] == "v=1"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_405(root, fetch, method):
    app = Bustware(fallback_app, root)
    for url in (app.url("css/app.css"), "/static/css/app.css", "/static/css/app.0000deadbeef.css"):
        r = fetch(app, url, method=method)
        assert r.status == 405, url
        assert r.header("Allow") == "GET, HEAD"


def test_head_has_get_headers_and_no_body(root, fetch):
    app = Bustware(fallback_app, root)
    for path in ("css/app.css", "img/big.bin"):
        get = fetch(app, app.url(path))
        head = fetch(app, app.url(path), method="HEAD")
        assert head.status == 200 and head.body == b""
        assert head.headers == get.headers


def test_head_replies_are_shared_but_never_leak_between_responses(root):
    """A HEAD, a GET and a revalidation of one URL share replies made once:
    an outer layer appending to the header list it is handed (WSGI) or to
    the start message's list (ASGI) must not change the next response."""
    app = Bustware(fallback_app, root)
    url = app.url("css/app.css")
    path, _, query = url.partition("?")

    def wsgi(method: str, **extra: str) -> tuple[str, list, bytes]:
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen["reply"] = (status, list(headers))
            headers.append(("X-Outer", "1"))  # what an outer middleware may do

        body = b"".join(app(server_environ(path, method=method, query=query, **extra),
                            start_response))
        return (*seen["reply"], body)

    def asgi(method: str, headers=None) -> tuple[int, list, bytes]:
        async def outer(scope, receive, send):
            async def appending(message):
                if message["type"] == "http.response.start":
                    seen.append([(k.decode(), v.decode()) for k, v in message["headers"]])
                    message["headers"].append((b"x-outer", b"1"))
                await send(message)
            await twin(scope, receive, appending)

        seen: list = []
        sent = run_asgi(outer, asgi_scope(path, method, headers, query))
        return (sent[0]["status"], seen[0], b"".join(m.get("body", b"") for m in sent[1:]))

    twin = BustwareASGI(None, app.assets)
    mtime = int(os.stat(root / "css/app.css").st_mtime)
    expected = [("Content-Type", "text/css; charset=utf-8"), ("Content-Length", str(len(CSS))),
                ("ETag", etag_of(CSS)), ("Last-Modified", http_date(mtime)),
                ("Accept-Ranges", "bytes"), ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", IMMUTABLE)]
    for _ in range(3):
        assert wsgi("HEAD") == ("200 OK", expected, b"")
        assert wsgi("GET") == ("200 OK", expected, CSS)
        assert wsgi("HEAD", HTTP_IF_NONE_MATCH=etag_of(CSS))[::2] == ("304 Not Modified", b"")
        assert asgi("HEAD") == (200, [(k.lower(), v) for k, v in expected], b"")
        assert asgi("GET") == (200, [(k.lower(), v) for k, v in expected], CSS)


def test_large_file_is_streamed_with_exact_bytes(root, fetch):
    app = Bustware(fallback_app, root)
    data = (root / "img/big.bin").read_bytes()
    assert app.assets["img/big.bin"].body is None  # not held in memory
    r = fetch(app, app.url("img/big.bin"))
    assert r.status == 200 and r.body == data
    assert r.header("Content-Length") == str(len(data))
    assert r.header("Content-Type") == "application/octet-stream"
    assert r.header("ETag") == etag_of(data)


def test_large_file_changed_on_disk_is_never_cached_under_its_old_version(root, fetch):
    app = Bustware(fallback_app, root)
    url = app.url("img/big.bin")
    new = b"z" * 300_000
    (root / "img/big.bin").write_bytes(new)
    r = fetch(app, url)
    assert r.status == 200 and r.body == new
    assert r.header("Cache-Control") == "no-store"
    assert r.header("ETag") is None and r.header("Content-Length") == str(len(new))


def test_unicode_names(root, fetch):
    app = Bustware(fallback_app, root)
    r = fetch(app, app.url("fonts/Ünï côde%.woff2"))
    assert (r.status, r.body) == (200, b"wOF2 font")
    assert r.header("Content-Type") == "font/woff2"
    assert r.header("Cache-Control") == IMMUTABLE


def test_real_file_with_versioned_looking_name_is_itself(root, fetch):
    app = Bustware(fallback_app, root)
    r = fetch(app, "/static/app.12345678abcd.css")
    assert (r.status, r.body) == (200, b"a real file with a versioned-looking name")
    assert r.header("Cache-Control") == "no-cache"  # plain URL of that file
    r = fetch(app, app.url("app.12345678abcd.css"))
    assert r.header("Cache-Control") == IMMUTABLE


def test_name_without_suffix(root, fetch):
    app = Bustware(fallback_app, root)
    assert app.url("LICENSE") == f"/static/LICENSE.{version_of(b'MIT')}"
    r = fetch(app, app.url("LICENSE"))
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"MIT", IMMUTABLE)


def test_configurable_cache_headers(root, fetch):
    app = Bustware(fallback_app, root, cache_control="public, max-age=600",
                   plain_cache_control="max-age=60")
    assert fetch(app, app.url("css/app.css")).header("Cache-Control") == "public, max-age=600"
    assert fetch(app, "/static/css/app.css").header("Cache-Control") == "max-age=60"


def test_outer_middleware_appending_headers_does_not_leak(root, fetch):
    bust = Bustware(fallback_app, root)

    def outer(environ, start_response):
        def sr(status, headers, exc_info=None):
            headers.append(("X-Outer", "1"))
            return start_response(status, headers, exc_info)
        return bust(environ, sr)

    for _ in range(3):
        r = fetch(outer, bust.url("css/app.css"))
        assert [k for k, _ in r.headers].count("X-Outer") == 1


def test_bustware_over_a_ready_assets(root, fetch):
    assets = Assets(root, "/assets/", style="segment")
    app = Bustware(fallback_app, assets)
    assert app.assets is assets and app.url("css/app.css") == assets.url("css/app.css")
    assert fetch(app, app.url("css/app.css")).body == CSS
    with pytest.raises(ValueError, match="pass prefix and index options to Assets"):
        Bustware(fallback_app, assets, style="query")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outdated": "gone"}, "unknown outdated='gone'"),
        ({"missing": "ignore"}, "unknown missing='ignore'"),
        ({"mode": "proxy"}, "unknown mode='proxy'"),
        ({"cache_control": "a\r\nSet-Cookie: x"}, "cache_control='a\\r\\nSet-Cookie: x' is not"),
        ({"prefix": "static"}, "prefix='static' must start and end with '/'"),
    ],
)
def test_bad_middleware_options(root, kwargs, message):
    with pytest.raises(ValueError) as err:
        Bustware(fallback_app, root, **kwargs)
    assert message in str(err.value)


def test_app_must_be_callable(root):
    with pytest.raises(TypeError, match="is not a WSGI application"):
        Bustware("myapp:app", root)


def test_no_app_means_404_outside_the_prefix(root, fetch):
    app = Bustware(None, root)
    assert fetch(app, "/").status == 404
    assert fetch(app, app.url("css/app.css")).status == 200


def test_development_mode_serves_the_edit_at_its_new_url(root, fetch):
    app = Bustware(fallback_app, root, autorefresh=True, refresh_interval=0)
    old = app.url("css/app.css")
    (root / "css/app.css").write_bytes(b"body { color: red }")
    new = app.url("css/app.css")
    assert new != old
    r = fetch(app, new)
    assert (r.body, r.header("Cache-Control")) == (b"body { color: red }", IMMUTABLE)
    r = fetch(app, old)
    assert (r.body, r.header("Cache-Control")) == (b"body { color: red }", "no-store")


def test_header_lists_are_built_on_a_files_first_request_once(root, monkeypatch):
    calls = []
    real = EntryMaker.fill_headers

    def counting(self, asset, reps, offers):
        calls.append(asset.path)
        return real(self, asset, reps, offers)

    monkeypatch.setattr(EntryMaker, "fill_headers", counting)
    app = Bustware(fallback_app, root)
    assert calls == []  # nothing built at startup: a large tree starts fast
    barrier = threading.Barrier(8)
    results = []

    def first_request():
        barrier.wait()
        results.append(via_werkzeug(app, app.url("css/app.css")))

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert calls == ["css/app.css"]  # once, whichever thread came first
    assert len(results) == 8
    for r in results:
        assert (r.status, r.body, r.header("Cache-Control")) == (200, CSS, IMMUTABLE)
        assert r.header("ETag") == etag_of(CSS)


def test_add_headers_mistakes_are_found_at_startup(root):
    with pytest.raises(ValueError, match="add_headers"):
        Bustware(fallback_app, root, add_headers=lambda asset: [("Bad Name", "x")])


def test_each_accept_encoding_value_gets_its_coding_however_many_there_are(tmp_path, fetch):
    # The representation chosen for an Accept-Encoding value is remembered
    # per file for a few values only (Entry.chosen): a client sending a new
    # value each time still gets the coding that value asks for.
    (tmp_path / "big.css").write_bytes(b"body { color: #123456 }\n" * 200)
    app = Bustware(fallback_app, tmp_path, compress=["gzip"])
    url = app.url("big.css")
    for i in range(40):
        wants_gzip = i % 2 == 0
        value = f"x-{i}, gzip;q={'1' if wants_gzip else '0'}"
        r = fetch(app, url, "GET", {"Accept-Encoding": value})
        assert r.status == 200
        assert r.header("Content-Encoding") == ("gzip" if wants_gzip else None), value
        assert r.header("Vary") == "Accept-Encoding"
    assert len(app._entries["big.css"].chosen) <= 8
