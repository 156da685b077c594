"""Development mode (autorefresh): the production URL scheme, kept fresh
without a restart; checking is cheap and safe under threads."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time

import pytest
from conftest import via_werkzeug
from flask import Flask, render_template_string

import bustware.assets
import bustware.scan
from bustware import AssetNotFound, Assets, Bustware
from bustware.flask import Bustware as FlaskBustware

IMMUTABLE = "max-age=31536000, immutable"
PAGE = "{{ url_for('static', filename=name) }}"


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def edit(path, data: bytes, bump: int = 10) -> None:
    """Write ``data`` and move the mtime on, as an editor save does, so the
    change is seen even within the filesystem's timestamp granularity."""
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def flask_dev_app(root, interval=0.0):
    app = Flask("devmode", static_folder=str(root))
    app.config.update(DEBUG=True, BUSTWARE_REFRESH_INTERVAL=interval)

    @app.route("/url/<path:name>")
    def page(name):
        return render_template_string(PAGE, name=name)

    FlaskBustware(app)
    return app


def test_flask_edited_new_and_deleted_files(tree):
    root = tree({"css/app.css": b"one", "js/app.js": b"js"})
    app = flask_dev_app(root)
    client = app.test_client()

    def page(name):
        return client.get(f"/url/{name}").get_data(as_text=True)

    def fetch(url):
        r = client.get(url)
        try:
            return r.status_code, r.headers.get("Cache-Control"), r.get_data()
        finally:
            r.close()

    first = page("css/app.css")
    assert first == f"/static/css/app.{v(b'one')}.css"
    assert fetch(first) == (200, IMMUTABLE, b"one")

    edit(root / "css" / "app.css", b"two!")
    second = page("css/app.css")
    assert second == f"/static/css/app.{v(b'two!')}.css"
    assert fetch(second) == (200, IMMUTABLE, b"two!")
    # The page rendered before the edit now gets the new bytes, uncacheable.
    assert fetch(first) == (200, "no-store", b"two!")

    (root / "img").mkdir()
    (root / "img" / "new.svg").write_bytes(b"<svg/>")
    new = page("img/new.svg")
    assert new == f"/static/img/new.{v(b'<svg/>')}.svg"
    assert fetch(new) == (200, IMMUTABLE, b"<svg/>")

    gone = page("js/app.js")
    (root / "js" / "app.js").unlink()
    status, cache_control, _ = fetch(gone)
    assert status == 404 and cache_control != IMMUTABLE
    with app.test_request_context("/"), pytest.raises(AssetNotFound):
        render_template_string(PAGE, name="js/app.js")


def test_middleware_alone_new_and_deleted_files(tree):
    root = tree({"a.css": b"a"})
    mw = Bustware(None, root, autorefresh=True, refresh_interval=0)
    (root / "b.css").write_bytes(b"b")
    url = mw.url("b.css")
    r = via_werkzeug(mw, url)
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"b", IMMUTABLE)
    a_url = mw.url("a.css")
    (root / "a.css").unlink()
    r = via_werkzeug(mw, a_url)
    assert r.status == 404
    assert r.header("Cache-Control") == "no-store"


def test_off_by_default(tree):
    root = tree({"a.css": b"a"})
    assets = Assets(root)
    assert assets.autorefresh is False
    url = assets.url("a.css")
    edit(root / "a.css", b"changed")
    assert assets.url("a.css") == url  # production: the index built at start


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def counted(monkeypatch):
    """Counts directory listings, stats and file reads done by the index,
    on a clock the test moves."""
    clock = FakeClock()
    monkeypatch.setattr(bustware.assets, "time", clock)
    counts = {"scandir": 0, "stat": 0, "read": []}
    real_scandir, real_stat, real_read = os.scandir, os.stat, bustware.scan.read_file

    def scandir(path):
        counts["scandir"] += 1
        return real_scandir(path)

    def stat(path, *args, **kwargs):
        counts["stat"] += 1
        return real_stat(path, *args, **kwargs)

    def read(abs_path, memory):
        counts["read"].append(os.path.basename(abs_path))
        return real_read(abs_path, memory)

    monkeypatch.setattr(bustware.assets.os, "scandir", scandir)
    monkeypatch.setattr(bustware.assets.os, "stat", stat)
    monkeypatch.setattr(bustware.scan, "read_file", read)
    return clock, counts


def test_a_check_within_the_interval_does_not_rescan(tree, counted):
    clock, counts = counted
    files = {f"f{i}.css": f"{i}".encode() for i in range(20)}
    root = tree(files)
    assets = Assets(root, autorefresh=True, refresh_interval=1.0)
    assert len(counts["read"]) == 20
    mw = Bustware(None, assets)
    counts.update(scandir=0, stat=0, read=[])
    for _ in range(100):
        assets.url("f3.css")
        via_werkzeug(mw, assets.url("f4.css"))
    assert counts == {"scandir": 0, "stat": 0, "read": []}

    clock.now += 1.5
    assets.url("f3.css")
    # One scan: a listing per directory, about a stat per file, no reads.
    assert counts["scandir"] == 1
    assert counts["stat"] <= 2 * len(files) + 2
    assert counts["read"] == []
    assert assets.url("f3.css") == f"/static/f3.{v(b'3')}.css"


def test_only_changed_files_are_read_again(tree, counted):
    clock, counts = counted
    root = tree({f"f{i}.css": f"{i}".encode() for i in range(20)})
    assets = Assets(root, autorefresh=True, refresh_interval=1.0)
    counts["read"].clear()
    edit(root / "f7.css", b"seven")
    clock.now += 1.5
    assert assets.url("f7.css") == f"/static/f7.{v(b'seven')}.css"
    assert counts["read"] == ["f7.css"]


def test_threads_rendering_and_fetching_while_files_change(tree):
    """A threaded server in development: several threads render pages and
    fetch what the page names while another thread keeps editing the files.
    No exception, and whenever a response says immutable, its bytes are the
    bytes the version in its URL names."""
    names = [f"css/f{i}.css" for i in range(5)]
    root = tree({name: f"initial {name}".encode() for name in names})
    app = flask_dev_app(root, interval=0.0)
    stop = threading.Event()
    errors: list[BaseException] = []
    checked = [0]
    lock = threading.Lock()

    def reader(seed: int) -> None:
        client = app.test_client()
        i = seed
        try:
            while not stop.is_set():
                name = names[i % len(names)]
                i += 1
                try:
                    url = client.get(f"/url/{name}").get_data(as_text=True)
                except AssetNotFound:
                    continue
                version = re.search(r"\.([0-9a-f]{12})\.css$", url).group(1)
                r = client.get(url)
                body, cache_control = r.get_data(), r.headers.get("Cache-Control")
                r.close()
                assert r.status_code == 200, (url, r.status_code)
                if cache_control == IMMUTABLE:
                    assert v(body) == version, (url, body)
                else:
                    assert cache_control == "no-store", cache_control
                with lock:
                    checked[0] += 1
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        n = 0
        try:
            while not stop.is_set():
                name = names[n % len(names)]
                (root / name).write_bytes(f"edit {n} of {name}".encode() * (1 + n % 3))
                n += 1
                time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors[:3]
    assert checked[0] > 50

    # Afterwards the index settles on what is on disk.
    final = b"final bytes"
    edit(root / names[0], final)
    client = app.test_client()
    url = client.get(f"/url/{names[0]}").get_data(as_text=True)
    assert url == f"/static/css/f0.{v(final)}.css"
    r = client.get(url)
    assert (r.get_data(), r.headers["Cache-Control"]) == (final, IMMUTABLE)
    r.close()


def test_scan_by_another_thread_between_sync_and_lookup(tree):
    """A threaded server: a request syncs its routes, then, before it looks
    its path up, another thread's url() rescans and finds a new file. The
    request for that file's URL must not fail."""
    root = tree({"a.css": b"a"})
    mw = Bustware(None, root, autorefresh=True, refresh_interval=3600)
    (root / "b.css").write_bytes(b"b")
    mw.assets.refresh()  # the other thread's scan
    real_sync, calls = mw._sync, []

    def synced_just_before():  # the request's own sync at its start
        if calls:
            return real_sync()
        calls.append(1)

    mw._sync = synced_just_before
    r = via_werkzeug(mw, mw.url("b.css"))
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"b", IMMUTABLE)


class ScanDuringIteration(Assets):
    """An index whose first iteration after ``arm()`` lets "another thread"
    scan right after the routing table took its snapshot of the files."""

    armed = False

    def __iter__(self):
        snapshot = super().__iter__()
        if self.armed:
            self.armed = False
            (self.new_file).write_bytes(b"new")
            self.refresh()
        return snapshot


def test_scan_during_a_route_rebuild_is_not_lost(tree):
    root = tree({"a.css": b"a"})
    assets = ScanDuringIteration(root, autorefresh=True, refresh_interval=3600)
    mw = Bustware(None, assets)
    assets.new_file = root / "n.css"
    assets.armed = True
    edit(root / "a.css", b"aa")
    assets.refresh()
    # This request rebuilds the routes; during the rebuild n.css appears.
    r = via_werkzeug(mw, mw.url("a.css"))
    assert (r.status, r.body) == (200, b"aa")
    # The next request sees n.css, and the routing table has it again.
    n_url = mw.url("n.css")
    r = via_werkzeug(mw, n_url)
    assert (r.status, r.body, r.header("Cache-Control")) == (200, b"new", IMMUTABLE)
    assert n_url in mw._routes


def test_a_file_rewritten_in_place_while_read_is_held_as_read(tree, monkeypatch):
    """The scan's fstat, then an in-place rewrite (truncate and write: no
    rename), then its read: the bytes read are one state of the file, held
    with their own size and digest, not streamed from disk later under a
    digest of bytes nobody holds (which a rewrite of equal size within one
    timestamp tick would then serve as immutable)."""
    root = tree({"css/a.css": b"before the edit, longer"})
    real_open = bustware.scan.open_fd

    def rewritten_after_fstat(path):
        fd, st = real_open(path)
        with open(path, "wb") as w:  # truncate and write, as write_bytes does
            w.write(b"after")
        return fd, st

    monkeypatch.setattr(bustware.scan, "open_fd", rewritten_after_fstat)
    asset = Assets(root)["css/a.css"]
    assert asset.body == b"after"
    assert asset.size == len(b"after") == os.stat(root / "css/a.css").st_size
    assert asset.digest == hashlib.sha256(b"after").hexdigest()
