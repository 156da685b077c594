"""The ASGI middleware (issue 14) beyond the shared HTTP table
(tests/test_http.py runs its table through it): scopes and paths it leaves
to the app, how it sends files, disconnects, rewrite mode, and the disk kept
off the event loop. Requests go through tests/conftest.py's in-process
driver; tests/test_asgi_servers.py starts real servers."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from conftest import asgi_scope, run_asgi, via_asgi

import bustware
from bustware import Assets, BustwareASGI
from bustware.respond import BLOCK_SIZE as _BLOCK

IMMUTABLE = "max-age=31536000, immutable"
BIG = bytes(range(256)) * 1200  # 300 KiB: more than one read block


def headers_of(message: dict) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]}


class Recorder:
    """An ASGI app that records what it was given and answers who it is."""

    def __init__(self) -> None:
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        body = f"app:{scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"cache-control", b"max-age=60"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def site(tree):
    return tree({"css/app.css": b"body{color:red}", "big.bin": BIG, "caf\u00e9.txt": b"cafe"})


def test_public_constructor_url_and_assets(site):
    mw = BustwareASGI(None, site, memory_threshold=1024)
    assert isinstance(mw.assets, Assets)
    url = mw.url("css/app.css")
    assert url.startswith("/static/css/app.") and url == mw.assets.url("css/app.css")
    r = via_asgi(mw, url)
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"body{color:red}", IMMUTABLE)
    assert r.header("Content-Type") == "text/css; charset=utf-8"


def test_a_ready_assets_is_shared_with_the_wsgi_middleware(site):
    assets = Assets(site, "/s/")
    wsgi, asgi = bustware.Bustware(None, assets), BustwareASGI(None, assets)
    assert asgi.assets is wsgi.assets is assets
    r = via_asgi(asgi, asgi.url("css/app.css"))
    assert r.status == 200 and r.body == b"body{color:red}"
    with pytest.raises(ValueError, match="prefix"):
        BustwareASGI(None, assets, prefix="/x/")


def test_an_app_that_is_not_callable_is_refused(site):
    with pytest.raises(TypeError, match="not an ASGI application"):
        BustwareASGI("main:app", site)


def test_other_scopes_and_paths_go_to_the_app_untouched(site):
    app = Recorder()
    mw = BustwareASGI(app, site)
    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}}
    sent = []

    async def lifespan_receive():
        return {"type": "lifespan.startup"}

    async def collect(message):
        sent.append(message)

    asyncio.run(mw(lifespan, lifespan_receive, collect))
    assert app.scopes[-1] is lifespan and sent == [{"type": "lifespan.startup.complete"}]
    ws = {**asgi_scope("/static/ws"), "type": "websocket"}
    asyncio.run(mw(ws, lifespan_receive, collect))
    assert app.scopes[-1] is ws and sent[-1]["type"] == "websocket.close"
    page = asgi_scope("/page", headers={"Range": "bytes=0-1"})
    sent = run_asgi(mw, page)
    assert app.scopes[-1] is page
    assert sent[1]["body"] == b"app:/page"
    # Under the prefix but no file: 404 by default (missing="404"), the app
    # with missing="app".
    assert via_asgi(mw, "/static/nope.css").status == 404
    r = via_asgi(BustwareASGI(app, site, missing="app"), "/static/nope.css")
    assert (r.status, r.body) == (200, b"app:/static/nope.css")


def test_no_app_answers_404_and_runs_a_lifespan(site):
    mw = BustwareASGI(None, site)
    r = via_asgi(mw, "/elsewhere")
    assert (r.status, r.header("Cache-Control")) == (404, "no-store")
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(mw({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_file_in_memory_goes_in_one_message(site):
    mw = BustwareASGI(None, site)
    sent = run_asgi(mw, asgi_scope(mw.url("css/app.css")))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"body{color:red}" and not sent[1].get("more_body")


def test_a_streamed_file_goes_in_bounded_reads(site):
    mw = BustwareASGI(None, site, memory_threshold=1024, compress=False)
    assert mw.assets["big.bin"].body is None
    sent = run_asgi(mw, asgi_scope(mw.url("big.bin")))
    start, bodies = sent[0], sent[1:]
    assert start["status"] == 200
    assert headers_of(start)["content-length"] == str(len(BIG))
    assert b"".join(m["body"] for m in bodies) == BIG
    assert len(bodies) >= 3 and all(len(m["body"]) <= _BLOCK for m in bodies)
    assert bodies[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    # A range of it, and a multipart one.
    r = via_asgi(mw, mw.url("big.bin"), headers={"Range": "bytes=262140-262149"})
    assert (r.status, r.body) == (206, BIG[262140:262150])
    assert r.header("Content-Range") == f"bytes 262140-262149/{len(BIG)}"
    r = via_asgi(mw, mw.url("big.bin"), headers={"Range": "bytes=0-1,-2"})
    assert r.status == 206 and r.body.count(b"Content-Range: bytes ") == 2
    assert BIG[:2] in r.body and r.body.endswith(BIG[-2:] + r.body[r.body.rindex(b"\r\n--"):])


def test_pathsend_when_the_server_offers_it(site):
    mw = BustwareASGI(None, site, memory_threshold=1024, compress=False)
    offers = {"http.response.pathsend": {}}
    sent = run_asgi(mw, asgi_scope(mw.url("big.bin"), extensions=offers))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert headers_of(sent[0])["content-length"] == str(len(BIG))
    assert sent[1]["path"] == os.path.abspath(site / "big.bin")
    # Not for a range: pathsend sends the whole file.
    sent = run_asgi(mw, asgi_scope(mw.url("big.bin"), headers={"Range": "bytes=5-9"},
                                   extensions=offers))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body",
                                         "http.response.body"]
    assert sent[1]["body"] == BIG[5:10]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_client_that_leaves_stops_the_stream_and_the_file_is_closed(site, monkeypatch):
    mw = BustwareASGI(None, site, memory_threshold=1024, compress=False)
    url = mw.url("big.bin")
    via_asgi(mw, url)  # the file's first request is made, the executor started
    reads = []
    real_pread = os.pread

    def counting_pread(fd, n, at):
        reads.append(at)
        return real_pread(fd, n, at)

    monkeypatch.setattr(os, "pread", counting_pread)
    before = open_fds()
    sent = run_asgi(mw, asgi_scope(url), disconnect_after=1)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert 0 < len(body) < len(BIG) and BIG.startswith(body)
    assert len(reads) < len(BIG) // _BLOCK + 1
    assert open_fds() <= before
    # Can fail: the whole file when the client stays.
    reads.clear()
    sent = run_asgi(mw, asgi_scope(url))
    assert b"".join(m.get("body", b"") for m in sent[1:]) == BIG
    assert len(reads) == len(BIG) // _BLOCK + 1


def test_dev_mode_rescans_and_first_builds_run_off_the_event_loop(site):
    mw = BustwareASGI(None, site, autorefresh=True)
    core = mw._core
    threads: dict[str, list] = {"sync": [], "build": []}
    real_sync = core._sync
    real_fill = core._maker.fill_headers

    def sync():
        threads["sync"].append(threading.current_thread())
        real_sync()

    def fill(*args):
        threads["build"].append(threading.current_thread())
        return real_fill(*args)

    core._sync, core._maker.fill_headers = sync, fill
    (site / "new.css").write_bytes(b"new")
    core.assets.refresh()  # what the next rescan would find
    r = via_asgi(mw, mw.url("new.css"))
    assert (r.status, r.body) == (200, b"new")
    assert threads["sync"] and threads["build"]
    assert threading.main_thread() not in threads["sync"] + threads["build"]


def test_rewrite_mode_lets_the_app_send_with_the_earned_policy(site):
    app = Recorder()
    mw = BustwareASGI(app, site, mode="rewrite")
    r = via_asgi(mw, mw.url("css/app.css"))
    assert (r.status, r.body) == (200, b"app:/static/css/app.css")
    assert r.header("Cache-Control") == IMMUTABLE
    assert app.scopes[-1]["raw_path"] == b"/static/css/app.css"
    r = via_asgi(mw, "/static/css/app.css")  # plain: the app's own policy
    assert (r.body, r.header("Cache-Control")) == (b"app:/static/css/app.css", "max-age=60")


def test_a_non_ascii_path(site):
    mw = BustwareASGI(None, site)
    url = mw.url("caf\u00e9.txt")
    assert "%C3%A9" in url
    r = via_asgi(mw, url)
    assert (r.status, r.body) == (200, b"cafe")


def test_zerocopysend_when_the_server_offers_it(site):
    mw = BustwareASGI(None, site, memory_threshold=1024, compress=False)
    offers = {"http.response.zerocopysend": {}}
    seen = []

    def check(sent):
        # What a server does with each message: sendfile from the open file.
        body = b""
        for m in sent[1:]:
            if m["type"] == "http.response.zerocopysend":
                assert not m["file"].closed
                body += os.pread(m["file"].fileno(), m["count"], m["offset"])
            else:
                body += m["body"]
        return body

    async def server_send(app, scope):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)
            seen.append(check([None, message]) if message["type"] != "http.response.start"
                        else b"")

        await app(scope, receive, send)
        return sent

    sent = asyncio.run(server_send(mw, asgi_scope(mw.url("big.bin"), extensions=offers)))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.zerocopysend"]
    assert sent[1]["more_body"] is False and sent[1]["file"].closed  # closed after
    assert b"".join(seen) == BIG
    seen.clear()
    scope = asgi_scope(mw.url("big.bin"), headers={"Range": "bytes=0-1,-2"}, extensions=offers)
    sent = asyncio.run(server_send(mw, scope))
    kinds = ["http.response.body", "http.response.zerocopysend"] * 2 + ["http.response.body"]
    assert [m["type"] for m in sent[1:]] == kinds
    body = b"".join(seen)
    assert body == via_asgi(mw, mw.url("big.bin"), headers={"Range": "bytes=0-1,-2"}).body


def test_repeated_fields_and_the_common_path_agree(site):
    """The common path reads one value of each field it reads; a repeated
    field must take the path that joins them."""
    (site / "css" / "long.css").write_bytes(b".a { color: red }\n" * 200)
    mw = BustwareASGI(None, site)  # compression without a build: gzip, br...
    url = mw.url("css/long.css")
    run_asgi(mw, asgi_scope(url))  # its first request: built in a thread
    one = run_asgi(mw, asgi_scope(url, headers={"Accept-Encoding": "gzip"}))
    assert headers_of(one[0])["content-encoding"] == "gzip"
    scope = asgi_scope(url)
    scope["headers"] += [(b"cookie", b"a=1"), (b"cookie", b"b=2"),
                         (b"accept-encoding", b"gzip;q=0.9"), (b"accept-encoding", b"br;q=0.1")]
    two = run_asgi(mw, scope)
    assert headers_of(two[0])["content-encoding"] == "gzip"  # the last alone says br
    scope = asgi_scope(url)
    scope["headers"] += [(b"accept-encoding", b"br;q=0.1"), (b"accept-encoding", b"gzip;q=0.9")]
    assert headers_of(run_asgi(mw, scope)[0])["content-encoding"] == "gzip"  # the first: br
    # Our ETag in the second of two If-None-Match fields: the joined list
    # names it (304); the first field alone would not (200).
    etag = headers_of(one[0])["etag"].encode()
    scope = asgi_scope(url, headers={"Accept-Encoding": "gzip"})
    scope["headers"] += [(b"if-none-match", b'"other"'), (b"if-none-match", etag)]
    assert run_asgi(mw, scope)[0]["status"] == 304
    scope = asgi_scope(url, headers={"Accept-Encoding": "gzip"})
    scope["headers"] += [(b"if-none-match", etag), (b"if-none-match", b'"other"')]
    assert run_asgi(mw, scope)[0]["status"] == 304
    # The header list sent is the caller's to change.
    one[0]["headers"].append((b"x-outer", b"1"))
    again = run_asgi(mw, asgi_scope(url, headers={"Accept-Encoding": "gzip"}))
    assert b"x-outer" not in dict(again[0]["headers"])


@pytest.mark.parametrize("compress", [True, False])
def test_the_common_path_answers_as_the_general_path(site, compress):
    """Every request shape the common path of decide_asgi answers (GET and
    HEAD of a current and a plain URL, in memory or streamed, each coding
    asked, revalidations that match or not) gets what the general path
    gives: the same request with an If-Range field, which changes nothing
    without a Range but is a field the common path leaves to decide()."""
    (site / "css" / "long.css").write_bytes(b".a { color: red }\n" * 200)
    mw = BustwareASGI(None, site, compress=compress, memory_threshold=100_000)
    urls = [mw.url("css/long.css"), mw.assets.plain_url("css/long.css"),
            mw.url("big.bin")]  # big.bin: streamed from disk
    etags = set()
    for url in urls:
        for coding in ("gzip", "br", "identity"):
            start = run_asgi(mw, asgi_scope(url, headers={"Accept-Encoding": coding}))[0]
            etags.add(headers_of(start)["etag"])
    assert len(etags) > 2 if compress else len(etags) == 2  # variants, or none
    shared = 0
    for url in urls:
        for method in ("GET", "HEAD"):
            for coding in (None, "gzip", "br", "gzip, br", "identity", ""):
                for inm in (None, '"other"', *sorted(etags)):
                    headers = {k: v for k, v in (("Accept-Encoding", coding),
                                                 ("If-None-Match", inm)) if v is not None}
                    scope = asgi_scope(url, method, headers)
                    general = asgi_scope(url, method, {**headers, "If-Range": '"x"'})
                    assert run_asgi(mw, scope) == run_asgi(mw, general), (url, method, headers)
                    # Answered by a reply shared between requests, or not.
                    decide = mw._core.decide_asgi
                    shared += decide(scope["path"], scope) is decide(scope["path"], scope)
    # The common path answered those without If-None-Match or with the
    # ETag of the coding chosen, but perhaps a GET of streamed bytes.
    assert shared >= len(urls) * 2 * 6 * 2 - 6
