"""Rolling deploys: old versions' URLs answered with their old bytes from the
object store, generations kept and pruned, nothing else deleted."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest
from conftest import via_werkzeug

from bustware import Bustware
from bustware import build as b
from bustware import manifest as mf

V1 = b"body { color: red; }\n" * 40
V2 = b"body { color: green; }\n" * 40
V3 = b"body { color: blue; }\n" * 40
IMMUTABLE = "max-age=31536000, immutable"


def manifest(root):
    return root / ".bustware" / "manifest.json"


def app_for(root, **options):
    return Bustware(None, root, manifest=manifest(root), **options)


def deploy(root, content, **options):
    (root / "css/app.css").write_bytes(content)
    b.build(root, **options)
    return app_for(root)


def object_file(root, data: bytes):
    digest = hashlib.sha256(data).hexdigest()
    return root / ".bustware" / "objects" / digest[:2] / digest


def test_old_url_gets_old_bytes_with_the_immutable_header(tree, fetch):
    root = tree({"css/app.css": V1, "js/app.js": "x"})
    v1_url = deploy(root, V1, keep=2).url("css/app.css")
    app = deploy(root, V2)
    assert app.url("css/app.css") != v1_url
    old = fetch(app, v1_url)
    assert old.status == 200 and old.body == V1
    assert old.header("Cache-Control") == IMMUTABLE
    assert old.header("ETag") == f'"{hashlib.sha256(V1).hexdigest()[:24]}"'
    new = fetch(app, app.url("css/app.css"))
    assert new.body == V2 and new.header("Cache-Control") == IMMUTABLE
    assert fetch(app, "/static/css/app.css").body == V2


def test_old_url_gets_its_old_compressed_variant(tree):
    root = tree({"css/app.css": V1})
    v1_url = deploy(root, V1, keep=1, compress=["gzip"]).url("css/app.css")
    app = deploy(root, V2, compress=["gzip"])
    r = via_werkzeug(app, v1_url, headers={"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == V1
    assert r.header("Cache-Control") == IMMUTABLE


def test_old_version_in_the_query_style(tree):
    root = tree({"css/app.css": V1})
    b.build(root, keep=1, style="query")
    v1 = hashlib.sha256(V1).hexdigest()[:12]
    (root / "css/app.css").write_bytes(V2)
    b.build(root, style="query")
    app = app_for(root, style="query")
    old = via_werkzeug(app, "/static/css/app.css", query=f"v={v1}")
    assert old.body == V1 and old.header("Cache-Control") == IMMUTABLE
    unknown = via_werkzeug(app, "/static/css/app.css", query="v=000000000000")
    assert unknown.body == V2 and unknown.header("Cache-Control") == "no-store"


def test_without_keep_old_urls_get_the_outdated_policy(tree):
    root = tree({"css/app.css": V1})
    v1_url = deploy(root, V1).url("css/app.css")
    app = deploy(root, V2)
    r = via_werkzeug(app, v1_url)
    assert r.body == V2 and r.header("Cache-Control") == "no-store"
    assert not object_file(root, V1).exists()


def test_generations_beyond_keep_are_dropped_with_their_bytes(tree):
    root = tree({"css/app.css": V1, "js/same.js": "same"})
    v1_url = deploy(root, V1, keep=1).url("css/app.css")
    v2_url = deploy(root, V2).url("css/app.css")
    app = deploy(root, V3)
    assert json.loads(manifest(root).read_text())["generation"] == 3
    assert via_werkzeug(app, v2_url).body == V2
    r = via_werkzeug(app, v1_url)
    assert r.body == V3 and r.header("Cache-Control") == "no-store"
    # Kept one build longer: a process loaded from generation 2 serves it.
    assert object_file(root, V1).exists()
    report = b.prune(manifest(root), keep=1)
    # V1's bytes, and the dcz delta from V1 to V2 (bustware.builddeltas).
    assert report.dropped == [] and report.retired_released == 2
    assert not object_file(root, V1).exists()
    assert object_file(root, V2).exists() and object_file(root, V3).exists()
    assert object_file(root, b"same").exists()  # every generation uses it


def test_old_version_whose_bytes_are_gone_falls_back(tree, caplog):
    root = tree({"css/app.css": V1})
    v1_url = deploy(root, V1, keep=1).url("css/app.css")
    deploy(root, V2)
    os.remove(object_file(root, V1))
    app = app_for(root)
    assert "stored bytes of 'css/app.css'" in caplog.text
    assert via_werkzeug(app, v1_url).header("Cache-Control") == "no-store"


def test_rewrite_mode_never_serves_an_old_url_as_immutable(tree):
    from conftest import fallback_app

    root = tree({"css/app.css": V1})
    v1_url = deploy(root, V1, keep=1).url("css/app.css")
    deploy(root, V2)
    app = Bustware(fallback_app, root, manifest=manifest(root), mode="rewrite")
    r = via_werkzeug(app, v1_url)
    assert r.header("Cache-Control") == "no-store"


# -- prune ---------------------------------------------------------------------


def three_generations(root):
    for content in (V1, V2, V3):
        (root / "css/app.css").write_bytes(content)
        b.build(root, keep=5, compress=["gzip"])


def test_prune_keep_drops_older_generations_and_only_their_bytes(tree):
    root = tree({"css/app.css": V1, "keep.txt": "mine"})
    three_generations(root)
    stray = root / ".bustware" / "objects" / "notes.txt"  # not ours: never touched
    stray.write_text("user file")
    report = b.prune(manifest(root), keep=1)
    assert report.dropped == [1] and report.kept == [2]
    assert not object_file(root, V1).exists()
    assert object_file(root, V2).exists() and object_file(root, V3).exists()
    assert stray.read_text() == "user file"
    assert (root / "css/app.css").read_bytes() == V3
    assert (root / "keep.txt").read_text() == "mine"
    app = app_for(root)
    gzip_current = app.assets["css/app.css"].variants["gzip"].abs_path
    assert os.path.exists(gzip_current)  # the current generation's variants stay


def test_prune_older_than(tree):
    root = tree({"css/app.css": V1})
    three_generations(root)
    data = json.loads(manifest(root).read_text())
    data["previous"][1]["built_at"] = "2020-01-01T00:00:00Z"  # generation 1
    mf.write(manifest(root), data)
    report = b.prune(manifest(root), older_than=b.parse_age("30d"))
    assert report.dropped == [1] and report.kept == [2]


def test_prune_with_both_drops_only_generations_beyond_n_and_old(tree):
    root = tree({"css/app.css": V1})
    three_generations(root)
    data = json.loads(manifest(root).read_text())
    data["previous"][0]["built_at"] = "2020-01-01T00:00:00Z"  # generation 2: old, within N
    mf.write(manifest(root), data)
    report = b.prune(manifest(root), keep=1, older_than=b.parse_age("1d"))
    assert report.dropped == [] and report.kept == [2, 1]  # generation 1 is recent
    report = b.prune(manifest(root), keep=0, older_than=b.parse_age("1d"))
    assert report.dropped == [2] and report.kept == [1]


def test_prune_needs_a_criterion(tree):
    root = tree({"css/app.css": V1})
    b.build(root)
    with pytest.raises(ValueError, match="--keep N and/or --older-than"):
        b.prune(manifest(root))


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("12h", 43200),
                                           ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)])
def test_ages(text, seconds):
    assert b.parse_age(text) == seconds


def test_bad_age_says_how_to_write_one():
    with pytest.raises(ValueError, match="90s, 30m, 12h, 7d or 2w"):
        b.parse_age("yesterday")
