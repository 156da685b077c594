"""Delta updates (issue 24, RFC 9842): Use-As-Dictionary on versioned
responses, ``dcz`` responses against a kept version of the same file, and
the normal response in every other case, under WSGI and ASGI alike."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from conftest import asgi_scope, via_asgi, via_werkzeug

import bustware.build as b
import bustware.manifest as mf
from bustware import Bustware, dictionaries
from bustware.dictionaries import MAGIC, accepts_dcz, dictionary_hash, match_pattern

zstandard = pytest.importorskip("zstandard")

IMMUTABLE = "max-age=31536000, immutable"
V1 = b"".join(b"export function f%d(x) { return x * %d; }\n" % (i, i) for i in range(300))
V2 = V1.replace(b"return x * 7;", b"return x * 8;") + b"export const release = 2;\n"
OTHER = b"export const other = 1;\n" * 40
CHROME_AE = "gzip, deflate, br, zstd, dcb, dcz"

clients = pytest.mark.parametrize("via", [via_werkzeug, via_asgi], ids=["wsgi", "asgi"])


def hash_header(data: bytes) -> str:
    return ":" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def decode(body: bytes, dictionary: bytes) -> bytes:
    assert body[:8] == MAGIC
    assert body[8:40] == hashlib.sha256(dictionary).digest()
    params = zstandard.get_frame_parameters(body[40:])
    assert params.dict_id == 0
    assert params.window_size <= max(8 << 20, len(dictionary) * 5 // 4)
    zdict = zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdDecompressor(dict_data=zdict).decompress(body[40:])


@pytest.fixture(params=[(style, where) for style in ("filename", "segment", "query")
                        for where in ("built", "live")], ids="-".join)
def released(request, tree):
    """Release 1 built, then release 2 with --keep 1: (app, old URL, new URL);
    the deltas made by the build, or on request."""
    style, where = request.param
    root = tree({"js/app.js": V1, "js/other.js": OTHER})
    b.build(root, style=style, keep=1, deltas=where == "built")
    old_url = Bustware(None, root, manifest=root / ".bustware/manifest.json",
                       style=style).url("js/app.js")
    (root / "js/app.js").write_bytes(V2)
    b.build(root, style=style, keep=1, deltas=where == "built")
    app = Bustware(None, root, manifest=root / ".bustware/manifest.json", style=style)
    return app, old_url, app.url("js/app.js")


def get(via, app, url, method="GET", **headers):
    path, _, query = url.partition("?")
    return via(app, path, method=method, headers=headers, query=query)


@clients
def test_a_returning_visitor_gets_the_new_version_as_a_delta(released, via):
    app, old_url, new_url = released
    first = get(via, app, old_url, **{"Accept-Encoding": "identity"})
    assert first.status == 200 and first.body == V1
    assert first.header("Use-As-Dictionary") is not None
    plain = get(via, app, new_url, **{"Accept-Encoding": "identity"})
    resp = get(via, app, new_url, **{"Accept-Encoding": CHROME_AE,
                                     "Available-Dictionary": hash_header(V1)})
    assert resp.status == 200
    assert resp.header("Content-Encoding") == "dcz"
    assert resp.header("Vary") == "Accept-Encoding, Available-Dictionary"
    assert resp.header("Cache-Control") == IMMUTABLE
    assert resp.header("Content-Length") == str(len(resp.body))
    assert resp.header("ETag") not in (plain.header("ETag"), None)
    assert decode(resp.body, V1) == V2
    assert len(resp.body) < len(V2) // 10
    # The delta is also a dictionary for the next release.
    assert resp.header("Use-As-Dictionary") == plain.header("Use-As-Dictionary")
    # HEAD: the same headers, no body.
    head = get(via, app, new_url, "HEAD", **{"Accept-Encoding": CHROME_AE,
                                            "Available-Dictionary": hash_header(V1)})
    assert head.body == b"" and head.headers == resp.headers
    # A revalidation with the delta's ETag: 304, still naming the delta.
    again = get(via, app, new_url, **{"Accept-Encoding": CHROME_AE,
                                      "Available-Dictionary": hash_header(V1),
                                      "If-None-Match": resp.header("ETag")})
    assert again.status == 304 and again.header("ETag") == resp.header("ETag")
    assert again.header("Vary") == "Accept-Encoding, Available-Dictionary"


@pytest.mark.parametrize("headers", [
    pytest.param({"Available-Dictionary": hash_header(b"unknown")}, id="unknown-hash"),
    pytest.param({"Available-Dictionary": ":not base64!:"}, id="malformed"),
    pytest.param({"Available-Dictionary": hash_header(V1)[1:-1]}, id="no-colons"),
    pytest.param({"Available-Dictionary": ":" + base64.b64encode(b"x" * 31).decode() + ":"},
                 id="short-hash"),
    pytest.param({"Available-Dictionary": hash_header(OTHER)}, id="another-file"),
    pytest.param({"Available-Dictionary": hash_header(V2)}, id="its-own-bytes"),
    pytest.param({"Available-Dictionary": hash_header(V1), "Range": "bytes=0-99",
                  "Accept-Encoding": "identity, dcz"}, id="range"),
    pytest.param({"Available-Dictionary": hash_header(V1), "Accept-Encoding": "gzip, dcz;q=0"},
                 id="dcz-q0"),
    pytest.param({"Available-Dictionary": hash_header(V1), "Accept-Encoding": "gzip, br"},
                 id="dcz-absent"),
    pytest.param({"Available-Dictionary": hash_header(V1), "Accept-Encoding": "xdcz, dczz"},
                 id="dcz-lookalikes"),
    pytest.param({"Accept-Encoding": CHROME_AE}, id="no-dictionary"),
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@clients
def test_every_other_request_gets_the_normal_response(released, via, headers, method):
    app, _, new_url = released
    headers = {"Accept-Encoding": CHROME_AE, **headers}
    resp = get(via, app, new_url, method, **headers)
    assert resp.status in (200, 206)
    assert resp.header("Content-Encoding") != "dcz"
    assert "Available-Dictionary" not in (resp.header("Vary") or "")
    normal = get(via, app, new_url, method, **{k: v for k, v in headers.items()
                                               if k != "Available-Dictionary"})
    assert (resp.status, resp.headers, resp.body) == (normal.status, normal.headers,
                                                       normal.body)
    if method == "GET" and resp.status == 206:
        assert resp.body == V2[:100]


@clients
def test_the_delta_etag_without_the_dictionary_gets_the_whole_file(released, via):
    app, _, new_url = released
    delta = get(via, app, new_url, **{"Accept-Encoding": CHROME_AE,
                                      "Available-Dictionary": hash_header(V1)})
    resp = get(via, app, new_url, **{"Accept-Encoding": "identity",
                                     "If-None-Match": delta.header("ETag")})
    assert resp.status == 200 and resp.body == V2


@clients
def test_an_old_url_against_the_current_version_and_outdated_urls(released, via):
    app, old_url, _ = released
    # Any version of the same file may be the dictionary of another.
    resp = get(via, app, old_url, **{"Accept-Encoding": CHROME_AE,
                                     "Available-Dictionary": hash_header(V2)})
    assert resp.header("Content-Encoding") == "dcz" and decode(resp.body, V2) == V1
    # The plain URL may change under the browser: never a dictionary, never a delta.
    plain = app.assets.plain_url("js/app.js")
    resp = get(via, app, plain, **{"Accept-Encoding": CHROME_AE,
                                   "Available-Dictionary": hash_header(V1)})
    assert resp.header("Content-Encoding") == "br"
    assert resp.header("Use-As-Dictionary") is None


def test_the_asgi_common_path_hands_dictionary_requests_to_the_general_path(released):
    app, _, new_url = released
    path, _, query = new_url.partition("?")
    app.decide_asgi(path, asgi_scope(path, query=query))  # built: the common path is open
    scope = asgi_scope(path, query=query, headers={"Accept-Encoding": CHROME_AE,
                                                   "Available-Dictionary": hash_header(V1)})
    from bustware.respond import NEEDS_THREAD
    assert app.decide_asgi(path, scope, block=False) is NEEDS_THREAD  # made off the loop
    reply = app.decide_asgi(path, scope)
    assert ("Content-Encoding", "dcz") in reply.headers
    body = reply.body if hasattr(reply, "body") else Path(reply.rep.abs_path).read_bytes()
    assert decode(body, V1) == V2


@pytest.mark.parametrize(("style", "url", "pattern"), [
    ("filename", "/static/js/app.{}.js", "/static/js/app.:v.js"),
    ("segment", "/static/{}/js/app.js", "/static/:v/js/app.js"),
    ("query", "/static/js/app.js?v={}", "/static/js/app.js?v=*"),
    ("filename", "/static/a(b)/x:y*.{}.css", r"/static/a\(b\)/x\:y\*.:v.css"),
])
def test_the_match_pattern_per_style(style, url, pattern):
    def url_for_version(path, version):
        return url.format(version)

    assert match_pattern(url_for_version, "js/app.js", style) == pattern


def test_use_as_dictionary_only_on_versioned_urls_of_text_files(tree):
    root = tree({"js/app.js": V1, "css/site.css": b"a{color:red}\n" * 40,
                 "tiny.js": b"x", "img/a.png": b"\x89PNG" + bytes(400)})
    app = Bustware(None, root)
    js = via_werkzeug(app, app.url("js/app.js"))
    assert js.header("Use-As-Dictionary") == 'match="/static/js/app.:v.js", match-dest=("script")'
    css = via_werkzeug(app, app.url("css/site.css"))
    assert css.header("Use-As-Dictionary").endswith('match-dest=("style")')
    for path in ("tiny.js", "img/a.png"):
        assert via_werkzeug(app, app.url(path)).header("Use-As-Dictionary") is None
    assert via_werkzeug(app, "/static/js/app.js").header("Use-As-Dictionary") is None
    off = Bustware(None, root, dictionaries=False)
    assert via_werkzeug(off, off.url("js/app.js")).header("Use-As-Dictionary") is None


@pytest.mark.parametrize(("header", "ok"), [
    ("dcz", True), ("gzip, dcz", True), ("dcz;q=0.5", True), ("DCZ ; q=1", True),
    ("dcz;q=0", False), ("dcz;q=0.000", False), ("gzip, br", False), (None, False),
    ("dczz", False), ("dcz;q=x", False), ("dcz;q=2", False),
])
def test_accepts_dcz(header, ok):
    assert accepts_dcz(header) is ok


def test_dictionary_hash():
    digest = hashlib.sha256(V1).hexdigest()
    assert dictionary_hash(hash_header(V1)) == digest
    assert dictionary_hash(" " + hash_header(V1) + " ") == digest
    for bad in ("", ":", "::", hash_header(V1)[:-1], hash_header(V1) + ",x", "é" * 46):
        assert dictionary_hash(bad) is None


def test_the_build_stores_the_deltas_and_the_server_streams_them(tree, monkeypatch):
    root = tree({"js/app.js": V1, "js/other.js": OTHER})
    b.build(root, keep=1)
    (root / "js/app.js").write_bytes(V2)
    report = b.build(root, keep=1)
    assert report.deltas == 1
    data = json.loads((root / ".bustware/manifest.json").read_text())
    rec = data["files"]["js/app.js"]
    delta = rec["deltas"][hashlib.sha256(V1).hexdigest()]
    stored = (root / ".bustware/objects" / delta["object"][:2] / delta["object"]).read_bytes()
    assert decode(stored, V1) == V2 and len(stored) == delta["size"]
    assert "deltas" not in data["files"]["js/other.js"]  # unchanged: no kept version
    assert delta["object"] in mf.referenced_objects(data)
    # Served from the stored object: no compression on the request path.
    monkeypatch.setattr(dictionaries, "encode_dcz", None)
    app = Bustware(None, root, manifest=root / ".bustware/manifest.json")
    for via in (via_werkzeug, via_asgi):
        resp = get(via, app, app.url("js/app.js"), **{"Accept-Encoding": CHROME_AE,
                                                      "Available-Dictionary": hash_header(V1)})
        assert resp.header("Content-Encoding") == "dcz" and resp.body == stored
    # Turned off, and without kept generations: no deltas.
    assert b.build(root, keep=1, deltas=False).deltas == 0
    assert "deltas" not in json.loads((root / ".bustware/manifest.json").read_text()
                                      )["files"]["js/app.js"]


def test_a_manifest_with_a_bad_delta_is_refused(tree):
    root = tree({"js/app.js": V1})
    b.build(root, keep=1)
    (root / "js/app.js").write_bytes(V2)
    b.build(root, keep=1)
    path = root / ".bustware/manifest.json"
    data = json.loads(path.read_text())
    data["files"]["js/app.js"]["deltas"] = {"nothex": {"object": "0" * 64, "size": 1}}
    path.write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match="deltas"):
        Bustware(None, root, manifest=path)


def test_add_headers_runs_once_per_file_and_its_headers_reach_the_delta(released):
    app, _, new_url = released
    calls = []

    def hook(asset):
        calls.append(asset.path)
        return [("X-Frame-Options", "DENY")]

    again = Bustware(None, app.assets, add_headers=hook, compress=False)
    resp = get(via_werkzeug, again, new_url, **{"Accept-Encoding": CHROME_AE,
                                                "Available-Dictionary": hash_header(V1)})
    assert resp.header("Content-Encoding") == "dcz" and resp.header("X-Frame-Options") == "DENY"
    assert calls.count("js/app.js") <= 2  # the current and the kept version's records
    with pytest.raises(ValueError, match="dictionaries=False"):
        Bustware(None, app.assets, add_headers=lambda a: [("Use-As-Dictionary", "x")])


def test_the_command_line_builds_deltas_unless_told_not_to(tree, capsys):
    from bustware.cli import main

    root = tree({"js/app.js": V1})
    assert main(["build", str(root), "--keep", "1", "--quiet"]) == 0
    (root / "js/app.js").write_bytes(V2)
    assert main(["build", str(root), "--quiet"]) == 0
    manifest = root / ".bustware/manifest.json"
    assert "deltas" in json.loads(manifest.read_text())["files"]["js/app.js"]
    assert main(["build", str(root), "--no-deltas", "--quiet"]) == 0
    assert "deltas" not in json.loads(manifest.read_text())["files"]["js/app.js"]
