"""The persistent digest cache (bustware.digestcache): a development restart
reads no unchanged file, and never trusts an entry whose file changed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_wsgi, server_environ

import bustware.digestcache
import bustware.scan
from bustware import Assets, Bustware

ROOT = Path(__file__).resolve().parent.parent


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture
def settled(monkeypatch):
    """Every file counts as settled (older than the racy window), so that
    a test need not wait two seconds after writing its files."""
    monkeypatch.setattr(bustware.digestcache, "SETTLE_NS", -10**15)


@pytest.fixture
def opened(monkeypatch):
    """Paths the index opens (every file it reads goes through
    bustware.scan.open_fd)."""
    paths: list[str] = []
    real = bustware.scan.open_fd

    def counting_open(path):
        paths.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(bustware.scan, "open_fd", counting_open)
    return paths


def cache_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_a_restart_reads_no_unchanged_file(tree, tmp_path, settled, opened):
    root = tree({"js/app.js": b"console.log(1)\n", "img/a.png": b"\x89PNG" + b"x" * 300,
                 "css/app.css": b"body{color:red}\n"})
    cache = tmp_path / "cache"
    first = Assets(root, digest_cache=cache)
    assert sorted(opened) == ["a.png", "app.css", "app.js"]
    assert len(cache_files(cache)) == 1
    opened.clear()
    second = Assets(root, digest_cache=cache)
    assert opened == []
    assert {a.path: a.url for a in second} == {a.path: a.url for a in first}
    assert second.url("js/app.js") == f"/static/js/app.{v(b'console.log(1)' + bytes([10]))}.js"
    # Served from disk: the same status, headers and bytes as after a full read
    for path in ("img/a.png", "css/app.css"):
        environ = server_environ(second.url(path))
        assert run_wsgi(Bustware(None, second), dict(environ)) == \
            run_wsgi(Bustware(None, first), dict(environ))
    status, _headers, body = run_wsgi(Bustware(None, second),
                                      server_environ(second.url("img/a.png")))
    assert (status, body) == (200, b"\x89PNG" + b"x" * 300)


def test_same_size_and_mtime_but_new_ctime_is_read_again(tree, tmp_path, settled, opened):
    root = tree({"app.js": b"AAAA"})
    cache = tmp_path / "cache"
    assert Assets(root, digest_cache=cache).url("app.js") == f"/static/app.{v(b'AAAA')}.js"
    path = root / "app.js"
    st = os.stat(path)
    # Wait for the clock to move on (until a metadata change shows a new
    # ctime), then rewrite in place: same inode, size and mtime.
    while os.stat(path).st_ctime_ns == st.st_ctime_ns:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with open(path, "r+b") as f:
        f.write(b"BBBB")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    opened.clear()
    assert Assets(root, digest_cache=cache).url("app.js") == f"/static/app.{v(b'BBBB')}.js"
    assert opened == ["app.js"]


def test_a_replaced_file_with_equal_size_and_times_is_read_again(tree, tmp_path, settled):
    root = tree({"app.js": b"AAAA"})
    cache = tmp_path / "cache"
    Assets(root, digest_cache=cache)
    path = root / "app.js"
    st = os.stat(path)
    new = root / "new.tmp"
    new.write_bytes(b"CCCC")
    with open(path, "rb"):  # held open: the new file cannot get the old inode
        os.replace(new, path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.stat(path).st_ino != st.st_ino
        assert Assets(root, digest_cache=cache).url("app.js") == f"/static/app.{v(b'CCCC')}.js"


def test_fresh_files_are_not_cached(tree, tmp_path, opened):
    # Written just now: a second write within the same timestamp tick would
    # not show, so they are read again at the next start.
    root = tree({"app.js": b"A"})
    cache = tmp_path / "cache"
    Assets(root, digest_cache=cache)
    opened.clear()
    Assets(root, digest_cache=cache)
    assert opened == ["app.js"]


def test_stylesheets_with_references_are_rewritten_on_restart(tree, tmp_path, settled):
    root = tree({"css/app.css": b"a{background:url(../img/a.png)}", "img/a.png": b"PNG1"})
    cache = tmp_path / "cache"
    first = Assets(root, digest_cache=cache)
    second = Assets(root, digest_cache=cache)
    png = f"/static/img/a.{v(b'PNG1')}.png"
    expected = f"a{{background:url({png})}}".encode()
    assert second["css/app.css"].served_bytes() == expected
    assert second.url("css/app.css") == first.url("css/app.css")
    status, _headers, body = run_wsgi(Bustware(None, second),
                                      server_environ(second.url("css/app.css")))
    assert (status, body) == (200, expected)


def test_a_restart_with_nothing_changed_leaves_the_cache_file_as_it_is(tree, tmp_path,
                                                                       settled):
    """Stylesheets with references are read again at every start (to be
    rewritten); finding what the cache says of them is no change to write."""
    root = tree({"css/app.css": b"a{background:url(../img/a.png)}", "img/a.png": b"PNG1",
                 "js/app.js": b"1;"})
    cache = tmp_path / "cache"
    Assets(root, digest_cache=cache)
    (written,) = cache.iterdir()
    before = os.stat(written)
    second = Assets(root, digest_cache=cache)
    after = os.stat(written)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert second["css/app.css"].links == {"img/a.png": second.url("img/a.png")}
    (root / "js/app.js").write_bytes(b"2;")  # a change is written
    Assets(root, digest_cache=cache)
    assert os.stat(written).st_ino != before.st_ino


def test_off_where_the_user_says_so(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    root = tree({"app.js": b"A"})
    Assets(root)  # default: off without autorefresh
    Assets(root, autorefresh=True, digest_cache=False)
    assert not (tmp_path / "home-cache").exists()
    os.utime(root / "app.js", ns=(0, 0))
    cache = tmp_path / "home-cache" / "bustware"
    monkeypatch.setattr(bustware.digestcache, "SETTLE_NS", -10**15)
    Assets(root, autorefresh=True)  # development: on, in the user's cache directory
    assert len(cache_files(cache)) == 1
    with pytest.raises(TypeError, match="digest_cache=3"):
        Assets(root, digest_cache=3)


def test_a_damaged_cache_is_ignored_and_replaced(tree, tmp_path, settled, opened):
    root = tree({"app.js": b"AAAA"})
    cache = tmp_path / "cache"
    Assets(root, digest_cache=cache)
    (name,) = cache_files(cache)
    for damage in (b"{not json", b"[]", b'{"format": 1}', b""):
        (cache / name).write_bytes(damage)
        opened.clear()
        assert Assets(root, digest_cache=cache).url("app.js") == f"/static/app.{v(b'AAAA')}.js"
        assert opened == ["app.js"]
        assert json.loads((cache / name).read_bytes())["files"]  # rewritten whole


def test_written_atomically(tree, tmp_path, settled, monkeypatch):
    root = tree({"a.js": b"A", "b.js": b"B"})
    cache = tmp_path / "cache"
    Assets(root, digest_cache=cache)
    (name,) = cache_files(cache)
    before = (cache / name).read_bytes()
    inode = os.stat(cache / name).st_ino
    (root / "c.js").write_bytes(b"C")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bustware.digestcache.os, "replace", failing_replace)
    assets = Assets(root, digest_cache=cache)  # a cache that cannot be written is skipped
    assert assets.url("c.js") == f"/static/c.{v(b'C')}.js"
    assert cache_files(cache) == [name]  # no temporary file left behind
    assert (cache / name).read_bytes() == before
    monkeypatch.undo()
    monkeypatch.setattr(bustware.digestcache, "SETTLE_NS", -10**15)
    Assets(root, digest_cache=cache)
    assert cache_files(cache) == [name]
    assert os.stat(cache / name).st_ino != inode  # a new file renamed over the old one
    assert set(json.loads((cache / name).read_bytes())["files"]) == {"a.js", "b.js", "c.js"}


def test_processes_starting_together(tree, tmp_path):
    root = tree({f"d{i % 7}/f{i}.js": f"file {i}".encode() for i in range(300)})
    for p in root.rglob("*.js"):
        os.utime(p, ns=(0, 0))
    cache = tmp_path / "cache"
    script = (
        "import sys, bustware.digestcache as d\n"
        "d.SETTLE_NS = -10**15\n"
        "from bustware import Assets\n"
        "for _ in range(5):\n"
        f"    a = Assets({str(root)!r}, digest_cache={str(cache)!r})\n"
        "    assert len(a) == 300, len(a)\n"
        "print(sorted(a.url(p.path) for p in a) == sorted(a._urls.values()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(6)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [(p.returncode, out.strip(), err) for p, (out, err) in zip(procs, outs)] == \
        [(0, b"True", b"")] * 6
    (name,) = cache_files(cache)  # one complete file, no temporary left
    files = json.loads((cache / name).read_bytes())["files"]
    assert len(files) == 300
    fresh = Assets(root, digest_cache=False)
    cached = Assets(root, digest_cache=cache)
    assert {a.path: a.url for a in cached} == {a.path: a.url for a in fresh}


def test_references_found_at_an_earlier_start_are_not_searched_again(tree, tmp_path, settled,
                                                                      monkeypatch):
    import bustware.references as refs

    root = tree({"css/app.css": b"a{background:url(../img/a.png)}", "img/a.png": b"PNG1"})
    cache = tmp_path / "cache"
    Assets(root, digest_cache=cache)
    searched = []
    real = refs.find_links

    def counting(data, path, prefix):
        searched.append(path)
        return real(data, path, prefix)

    monkeypatch.setattr(refs, "find_links", counting)
    (root / "img/a.png").write_bytes(b"PNG2")  # the stylesheet is unchanged, its image not
    assets = Assets(root, digest_cache=cache)
    assert searched == []
    png = f"/static/img/a.{v(b'PNG2')}.png"
    assert assets["css/app.css"].served_bytes() == f"a{{background:url({png})}}".encode()


def test_a_file_of_an_earlier_root_shadowing_a_cached_one_is_read(tmp_path, settled):
    """Entries are keyed by logical path: the same path found under another
    root is another file (its identity differs), read and cached anew."""
    first, second = tmp_path / "one", tmp_path / "two"
    second.mkdir()
    first.mkdir()
    (second / "app.js").write_bytes(b"from two")
    cache = tmp_path / "cache"
    assert Assets([first, second], digest_cache=cache).url("app.js") == \
        f"/static/app.{v(b'from two')}.js"
    (first / "app.js").write_bytes(b"from one")
    restarted = Assets([first, second], digest_cache=cache)
    assert restarted.url("app.js") == f"/static/app.{v(b'from one')}.js"
    assert restarted["app.js"].abs_path == str(first / "app.js")
