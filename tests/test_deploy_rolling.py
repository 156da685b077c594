"""Rolling deploys (issue 10) and files swapped under a running process
(issue 11 #3, #7): each process serves the release it loaded, a file opened
to stream is the file indexed, a new version reaching an old process is
found in the store, and no build deletes what a running process serves.

The layout is the README recipe's: releases/<rev>/static, a ``current``
link, and the manifest with its object store in shared/bustware/.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import threading
from pathlib import Path

import pytest
from conftest import make_tree, via_werkzeug

from bustware import Assets, Bustware
from bustware import build as b

IMMUTABLE = "max-age=31536000, immutable"
# Equal sizes: a reproducible build, `touch -d` or `cp -p` also gives equal mtimes.
JS1 = b"console.log('release one');\n" * 20
JS2 = b"console.log('release two');\n" * 20
CSS1 = b"body { background: url(../img/logo.png) } /* one */\n"
CSS2 = b"body { background: url(../img/logo.png) } /* two */\n"
MTIME_NS = 1_700_000_000 * 10**9


def release(base: Path, rev: str, files: dict) -> Path:
    """releases/<rev>/static with ``files``, every mtime the same."""
    static = make_tree(base / "releases" / rev / "static", files)
    for p in static.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(MTIME_NS, MTIME_NS))
    return static


def switch(base: Path, rev: str) -> None:
    """The recipe's atomic `current` switch."""
    tmp = base / "current.new"
    os.symlink(f"releases/{rev}", tmp)
    os.replace(tmp, base / "current")


def manifest(base: Path) -> Path:
    return base / "shared" / "bustware" / "manifest.json"


def build(base: Path, rev: str, **options) -> None:
    b.build(base / "releases" / rev / "static", manifest(base), **options)


def two_releases(base: Path) -> None:
    release(base, "v1", {"js/app.js": JS1, "css/app.css": CSS1, "img/logo.png": b"PNG1"})
    release(base, "v2", {"js/app.js": JS2, "css/app.css": CSS2, "img/logo.png": b"PNG1",
                         "js/new.js": b"new();\n"})


def object_file(base: Path, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return base / "shared" / "bustware" / "objects" / digest[:2] / digest


def bounded(fn, seconds: float = 10.0):
    """Run ``fn`` in a thread; fail (instead of hanging) if it blocks."""
    result: dict = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if "error" in result:
        raise result["error"]
    return t, result


def unblock_fifo(path: Path) -> None:
    # A reader blocked in open() of the FIFO returns once a writer opens it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


# -- issue 10 defect 1: pinned releases ---------------------------------------


def test_a_process_keeps_serving_the_release_it_loaded(tmp_path):
    """The issue's repro: js/app.js differs between releases in content,
    not in size or mtime."""
    two_releases(tmp_path)
    build(tmp_path, "v1")
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path))
    url = app.url("js/app.js")
    build(tmp_path, "v2")
    switch(tmp_path, "v2")
    r = via_werkzeug(app, url)
    assert (r.status, r.header("Cache-Control"), r.body) == (200, IMMUTABLE, JS1)
    assert r.header("ETag") == f'"{hashlib.sha256(JS1).hexdigest()[:24]}"'


def test_a_scanned_index_keeps_serving_the_release_it_loaded(tmp_path):
    two_releases(tmp_path)
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", memory_threshold=0)
    url = app.url("js/app.js")
    switch(tmp_path, "v2")
    r = via_werkzeug(app, url)
    assert (r.status, r.header("Cache-Control"), r.body) == (200, IMMUTABLE, JS1)


@pytest.mark.parametrize("outdated, status", [("serve", 200), ("404", 404)])
def test_a_file_replaced_with_equal_size_and_mtime_never_gets_immutable(tree, outdated,
                                                                        status):
    root = tree({"js/app.js": JS1})
    app = Bustware(None, root, memory_threshold=0, outdated=outdated)
    url = app.url("js/app.js")
    swapped = root / "js" / "app.js.new"
    swapped.write_bytes(JS2)
    st = os.stat(root / "js/app.js")
    os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(swapped, root / "js/app.js")
    r = via_werkzeug(app, url)
    assert r.status == status and r.header("Cache-Control") == "no-store"
    assert r.header("ETag") is None
    if status == 200:
        assert r.body == JS2


def test_a_replaced_file_whose_bytes_the_store_holds_gets_them(tmp_path):
    release(tmp_path, "v1", {"js/app.js": JS1})
    build(tmp_path, "v1", keep=1)
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path))
    url = app.url("js/app.js")
    target = tmp_path / "releases/v1/static/js/app.js"
    swapped = target.with_name("app.js.new")
    swapped.write_bytes(JS2)
    os.utime(swapped, ns=(MTIME_NS, MTIME_NS))
    os.replace(swapped, target)  # another file (inode), equal size and mtime
    for headers, status, body in (({}, 200, JS1), ({"Range": "bytes=0-6"}, 206, JS1[:7])):
        r = via_werkzeug(app, url, headers=headers)
        assert (r.status, r.header("Cache-Control"), r.body) == (status, IMMUTABLE, body)


# -- issue 11 #7: a symlink to outside bytes with equal size and mtime ----------


def swap_for_outside_link(tmp_path: Path, target: Path) -> bytes:
    outside = tmp_path / "outside.txt"
    secret = b"S" * target.stat().st_size
    outside.write_bytes(secret)
    st = target.stat()
    os.utime(outside, ns=(st.st_atime_ns, st.st_mtime_ns))  # touch -r
    target.unlink()
    os.symlink(outside, target)
    return secret


@pytest.mark.parametrize("mode", ["scan", "manifest", "manifest-check-off", "development"])
def test_a_symlink_to_outside_bytes_with_equal_size_and_mtime_is_a_404(tmp_path, tree, mode):
    root = tree({"js/app.js": JS1})
    if mode.startswith("manifest"):
        b.build(root)
        check = "off" if mode.endswith("off") else "error"
        app = Bustware(None, root, manifest=root / ".bustware/manifest.json",
                       manifest_check=check)
    else:
        app = Bustware(None, root, memory_threshold=0, autorefresh=mode == "development",
                       refresh_interval=3600)
    url = app.url("js/app.js")
    secret = swap_for_outside_link(tmp_path, root / "js/app.js")
    for headers in ({}, {"Range": "bytes=0-9"}):
        r = via_werkzeug(app, url, headers=headers)
        assert (r.status, r.header("Cache-Control")) == (404, "no-store"), headers
        assert secret[:10] not in r.body


def test_with_check_off_the_identity_is_taken_at_first_open(tree):
    root = tree({"js/app.js": JS1})
    b.build(root)
    app = Bustware(None, root, manifest=root / ".bustware/manifest.json",
                   manifest_check="off")
    url = app.url("js/app.js")
    assert via_werkzeug(app, url).header("Cache-Control") == IMMUTABLE
    st = os.stat(root / "js/app.js")
    swapped = root / "js" / "app.js.new"
    swapped.write_bytes(JS2)
    os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(swapped, root / "js/app.js")
    r = via_werkzeug(app, url)
    assert (r.status, r.header("Cache-Control"), r.body) == (200, "no-store", JS2)


# -- issue 11 #3: FIFOs ---------------------------------------------------------


@pytest.mark.parametrize("autorefresh", [False, True])
def test_a_file_swapped_for_a_fifo_is_a_404_without_blocking(tree, autorefresh):
    root = tree({"js/app.js": JS1})
    app = Bustware(None, root, memory_threshold=0, autorefresh=autorefresh,
                   refresh_interval=3600)
    url = app.url("js/app.js")
    fifo = root / "js/app.js"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        t, result = bounded(lambda: via_werkzeug(app, url))
        assert not t.is_alive(), "the request blocked on the FIFO"
        r = result["value"]
        assert (r.status, r.header("Cache-Control")) == (404, "no-store")
    finally:
        unblock_fifo(fifo)


def fifo_once_walked(monkeypatch, module, root: Path, rel: str) -> Path:
    """Make ``module``'s walk turn ``root/rel`` into a FIFO right after it
    lists it as a regular file, before anything reads it."""
    real_walk = module.walk
    path = root / rel

    def racing_walk(*args):
        for item in real_walk(*args):
            if item[0] == rel:
                path.unlink()
                os.mkfifo(path)
            yield item

    monkeypatch.setattr(module, "walk", racing_walk)
    return path


def test_a_fifo_swapped_in_while_indexing_is_skipped_with_a_warning(tree, monkeypatch,
                                                                    caplog):
    import bustware.scan as scan_module

    root = tree({"js/app.js": JS1, "css/site.css": b"p{}"})
    fifo = fifo_once_walked(monkeypatch, scan_module, root, "js/app.js")
    try:
        with caplog.at_level(logging.WARNING, logger="bustware"):
            t, result = bounded(lambda: Assets(root))
        assert not t.is_alive(), "indexing blocked on the FIFO"
        assets = result["value"]
        assert "js/app.js" not in assets and "css/site.css" in assets
        assert f"skipping {str(fifo)!r}" in caplog.text
    finally:
        unblock_fifo(fifo)


def test_a_fifo_swapped_in_while_building_is_a_warning(tree, monkeypatch):
    import bustware.build as build_module

    root = tree({"js/app.js": JS1, "css/site.css": b"p{}"})
    fifo = fifo_once_walked(monkeypatch, build_module, root, "js/app.js")
    try:
        t, result = bounded(lambda: b.build(root))
        assert not t.is_alive(), "the build blocked on the FIFO"
        report = result["value"]
        assert report.files == 1
        assert any("not a regular file" in w and "app.js" in w for w in report.warnings)
    finally:
        unblock_fifo(fifo)


# -- issue 10 defect 2: version discovery --------------------------------------


def old_replica(tmp_path: Path, **options) -> Bustware:
    """A process started on v1, still running after v2 was built (step 1)."""
    two_releases(tmp_path)
    build(tmp_path, "v1", keep=3, compress=["gzip"])
    switch(tmp_path, "v1")
    return Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path),
                    **options)


def new_urls(tmp_path: Path) -> Assets:
    """What an upgraded host's pages name."""
    return Assets(tmp_path / "releases/v2/static", manifest=manifest(tmp_path))


def test_a_new_version_reaching_an_old_process_gets_its_own_bytes(tmp_path):
    app = old_replica(tmp_path)  # the default interval: the first unknown URL looks
    old_css, old_js = app.url("css/app.css"), app.url("js/app.js")
    build(tmp_path, "v2", keep=3, compress=["gzip"])
    new = new_urls(tmp_path)
    css2 = new.get("css/app.css").served_bytes()
    for url, body in ((new.url("js/app.js"), JS2), (new.url("css/app.css"), css2),
                      (new.url("js/new.js"), b"new();\n")):
        r = via_werkzeug(app, url)
        assert (r.status, r.header("Cache-Control"), r.body) == (200, IMMUTABLE, body), url
        assert r.header("ETag") == f'"{hashlib.sha256(body).hexdigest()[:24]}"'
    r = via_werkzeug(app, new.url("js/app.js"), headers={"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == "gzip" and gzip.decompress(r.body) == JS2
    assert r.header("Cache-Control") == IMMUTABLE
    # Its own release is unchanged, and an unknown version still gets the policy.
    assert via_werkzeug(app, old_js).body == JS1
    assert via_werkzeug(app, old_css).header("Cache-Control") == IMMUTABLE
    r = via_werkzeug(app, "/static/js/app.000000000000.js")
    assert (r.status, r.header("Cache-Control"), r.body) == (200, "no-store", JS1)


def test_discovery_in_the_query_style(tmp_path):
    two_releases(tmp_path)
    b.build(tmp_path / "releases/v1/static", manifest(tmp_path), keep=1, style="query")
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path),
                   style="query")
    b.build(tmp_path / "releases/v2/static", manifest(tmp_path), style="query")
    v2 = hashlib.sha256(JS2).hexdigest()[:12]
    r = via_werkzeug(app, "/static/js/app.js", query=f"v={v2}")
    assert (r.status, r.header("Cache-Control"), r.body) == (200, IMMUTABLE, JS2)


def test_without_stored_bytes_a_new_version_gets_the_outdated_policy(tmp_path):
    two_releases(tmp_path)
    build(tmp_path, "v1")  # no --keep: the build stores no copy of the files
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path),
                   discover_interval=0)
    build(tmp_path, "v2")
    r = via_werkzeug(app, new_urls(tmp_path).url("js/app.js"))
    assert (r.status, r.header("Cache-Control"), r.body) == (200, "no-store", JS1)


def test_the_manifest_is_looked_at_once_per_interval(tmp_path, monkeypatch):
    app = old_replica(tmp_path, discover_interval=3600)
    name = str(manifest(tmp_path))
    stats = []
    real_stat = os.stat

    def counting(path, *args, **kwargs):
        if os.fspath(path) == name:
            stats.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    for _ in range(3):  # unknown versions: the first one looks, once
        assert via_werkzeug(app, "/static/js/app.000000000000.js").status == 200
    assert len(stats) == 1
    build(tmp_path, "v2", keep=3)
    stats[1:] = []  # the build's own
    # Within the interval nothing is looked at: the outdated policy.
    r = via_werkzeug(app, new_urls(tmp_path).url("js/app.js"))
    assert (r.header("Cache-Control"), r.body) == ("no-store", JS1)
    assert len(stats) == 1
    app._discovery.after = 0.0  # the interval is over
    r = via_werkzeug(app, new_urls(tmp_path).url("js/app.js"))
    assert (r.header("Cache-Control"), r.body) == (IMMUTABLE, JS2)
    assert len(stats) == 2


def test_a_request_never_waits_for_another_ones_look_at_the_manifest(tmp_path):
    app = old_replica(tmp_path, discover_interval=0)
    build(tmp_path, "v2", keep=3)
    url = new_urls(tmp_path).url("js/app.js")
    with app._discovery.lock:  # another request is reading the manifest
        t, result = bounded(lambda: via_werkzeug(app, url))
        assert not t.is_alive()
    assert result["value"].header("Cache-Control") == "no-store"
    assert via_werkzeug(app, url).body == JS2  # the next one looks


def test_discovery_is_off_in_rewrite_mode_and_when_asked(tmp_path):
    from conftest import fallback_app

    app = old_replica(tmp_path, discover_interval=None)
    rewrite = Bustware(fallback_app, tmp_path / "current" / "static", mode="rewrite",
                       manifest=manifest(tmp_path), discover_interval=0)
    build(tmp_path, "v2", keep=3)
    url = new_urls(tmp_path).url("js/app.js")
    assert via_werkzeug(app, url).header("Cache-Control") == "no-store"
    assert via_werkzeug(rewrite, url).header("Cache-Control") == "no-store"


@pytest.mark.parametrize("value", [-1, "1", True])
def test_bad_discover_interval_is_refused(tree, value):
    root = tree({"a.css": "a"})
    with pytest.raises(ValueError, match="discover_interval"):
        Bustware(None, root, discover_interval=value)


# -- issue 10 defect 3: retention -----------------------------------------------


def test_a_build_without_keep_leaves_what_the_running_process_serves(tmp_path):
    release(tmp_path, "v1", {"js/app.js": JS1, "css/app.css": CSS1, "img/logo.png": b"P"})
    build(tmp_path, "v1", compress=["gzip"])
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path))
    css_url, js_url = app.url("css/app.css"), app.url("js/app.js")
    css1 = app.assets["css/app.css"].served_bytes()
    release(tmp_path, "v2", {"js/app.js": JS2, "css/app.css": CSS2, "img/logo.png": b"P"})
    build(tmp_path, "v2", compress=["gzip"])
    # Its own stylesheet (rewritten bytes, an object) and a build-made variant.
    r = via_werkzeug(app, css_url)
    assert (r.status, r.header("Cache-Control"), r.body) == (200, IMMUTABLE, css1)
    r = via_werkzeug(app, js_url, headers={"Accept-Encoding": "gzip"})
    assert (r.status, r.header("Cache-Control")) == (200, IMMUTABLE)
    assert gzip.decompress(r.body) == JS1
    # The build after the next one deletes them, if nothing uses them then.
    gen1 = object_file(tmp_path, css1)
    release(tmp_path, "v3", {"js/app.js": b"three", "css/app.css": b"p{}",
                             "img/logo.png": b"P"})
    gen2_css = Assets(tmp_path / "releases/v2/static",
                      manifest=manifest(tmp_path))["css/app.css"].abs_path
    build(tmp_path, "v3", compress=["gzip"])
    assert not gen1.exists()
    assert os.path.exists(gen2_css)  # generation 2's processes may still run


def v1_served_then_v2_built(tmp_path: Path) -> bytes:
    """v1 built and current, v2 built beside it (step 1 of a deploy, no
    --keep): the bytes v1's processes serve for its rewritten stylesheet."""
    release(tmp_path, "v1", {"css/app.css": CSS1, "img/logo.png": b"P"})
    release(tmp_path, "v2", {"css/app.css": CSS2, "img/logo.png": b"P"})
    build(tmp_path, "v1")
    switch(tmp_path, "v1")
    css1 = Assets(tmp_path / "current/static",
                  manifest=manifest(tmp_path))["css/app.css"].served_bytes()
    build(tmp_path, "v2")
    return css1


def test_prune_releases_the_replaced_builds_bytes_and_says_so(tmp_path):
    css1 = v1_served_then_v2_built(tmp_path)
    assert object_file(tmp_path, css1).exists()
    report = b.prune(manifest(tmp_path), keep=0)
    assert report.retired_released == 1 and report.objects_removed == 1
    assert "released 1 objects that only the build before the current one used" in \
        report.summary()
    assert not object_file(tmp_path, css1).exists()
    assert b.prune(manifest(tmp_path), keep=0).summary().startswith("bustware: nothing")


def test_rebuilding_the_same_release_keeps_the_promise(tmp_path):
    """Several hosts sharing a store build the same release one after the
    other: the second build changes nothing, and deletes nothing the first
    one kept for the processes of the release before."""
    css1 = v1_served_then_v2_built(tmp_path)
    build(tmp_path, "v2")
    assert object_file(tmp_path, css1).exists()


# -- issue 10 defect 4: reload after a fork (see also test_deploy_reload.py) ----


def test_reload_loads_the_switched_release_and_rebuilds_the_routes(tmp_path):
    from bustware.middleware import reload_changed

    two_releases(tmp_path)
    build(tmp_path, "v1", keep=3)
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path))
    scanned = Bustware(None, tmp_path / "current" / "static", memory_threshold=0)
    url1 = app.url("js/app.js")
    reload_changed()  # nothing changed: nothing reloaded
    assert app.url("js/app.js") == url1
    build(tmp_path, "v2", keep=3)
    # A worker forked now (the manifest built, `current` not switched yet)
    # keeps what it has: the manifest describes files the root does not hold.
    reload_changed()
    assert app.url("js/app.js") == url1
    assert via_werkzeug(app, url1).body == JS1
    switch(tmp_path, "v2")
    reload_changed()
    url2 = app.url("js/app.js")
    assert url2 != url1 and scanned.url("js/app.js") == url2
    for served in (app, scanned):
        r = via_werkzeug(served, url2)
        assert (r.status, r.header("Cache-Control"), r.body) == (200, IMMUTABLE, JS2)
    assert via_werkzeug(app, url1).body == JS1  # kept by --keep
    assert via_werkzeug(app, app.url("js/new.js")).status == 200


def test_a_fifo_found_by_the_scan_is_skipped_with_a_warning(tree, caplog):
    root = tree({"js/app.js": JS1})
    os.mkfifo(root / "js/pipe.js")
    with caplog.at_level(logging.WARNING, logger="bustware"):
        t, result = bounded(lambda: Assets(root))
    assert not t.is_alive()
    assert "js/pipe.js" not in result["value"] and "js/app.js" in result["value"]
    assert f"skipping {str(root / 'js/pipe.js')!r}: not a regular file" in caplog.text


def test_the_build_says_what_it_keeps_for_the_processes_of_the_build_before(tmp_path):
    release(tmp_path, "v1", {"css/app.css": CSS1, "img/logo.png": b"P"})
    release(tmp_path, "v2", {"css/app.css": CSS2, "img/logo.png": b"P"})
    build(tmp_path, "v1")
    report = b.build(tmp_path / "releases/v2/static", manifest(tmp_path))
    assert report.objects_retired == 1 and report.objects_removed == 0
    assert "1 kept for processes of the build before" in report.summary()


def test_a_changed_file_of_the_pinned_release_is_inside_the_root(tmp_path):
    """After the switch, the loaded release is still this process's root: a
    file of it that changed is served uncached, not taken for one outside."""
    two_releases(tmp_path)
    build(tmp_path, "v1")
    switch(tmp_path, "v1")
    app = Bustware(None, tmp_path / "current" / "static", manifest=manifest(tmp_path))
    url = app.url("js/app.js")
    switch(tmp_path, "v2")
    (tmp_path / "releases/v1/static/js/app.js").write_bytes(b"changed")
    r = via_werkzeug(app, url)
    assert (r.status, r.header("Cache-Control"), r.body) == (200, "no-store", b"changed")


def test_concurrent_requests_for_a_new_version_never_get_wrong_immutable_bytes(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    app = old_replica(tmp_path, discover_interval=0)
    build(tmp_path, "v2", keep=3)
    url = new_urls(tmp_path).url("js/app.js")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: via_werkzeug(app, url), range(200)))
    seen = {(r.status, r.header("Cache-Control"), r.body) for r in answers}
    # While one request reads the manifest, the others get the policy.
    assert seen <= {(200, IMMUTABLE, JS2), (200, "no-store", JS1)}
    assert (200, IMMUTABLE, JS2) in seen
