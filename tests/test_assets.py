"""The index: which files, which versions, which URLs."""

from __future__ import annotations

import hashlib
import logging
import os
from urllib.parse import quote

import pytest

from bustware import AssetNotFound, Assets


def v(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def test_digest_version_and_url(tree):
    root = tree({"css/app.css": b"body{color:red}", "js/app.min.js": b"1;"})
    assets = Assets(root)
    assert assets.url("css/app.css") == f"/static/css/app.{v(b'body{color:red}')}.css"
    assert assets.url("js/app.min.js") == f"/static/js/app.min.{v(b'1;')}.js"
    assert len(assets) == 2 and "css/app.css" in assets


@pytest.mark.parametrize(
    ("style", "template"),
    [("filename", "/s/css/app.{v}.css"), ("segment", "/s/{v}/css/app.css"),
     ("query", "/s/css/app.css?v={v}")],
)
def test_styles_in_urls(tree, style, template):
    root = tree({"css/app.css": b"x"})
    assert Assets(root, "/s/", style=style).url("css/app.css") == template.format(v=v(b"x"))


def test_same_bytes_same_version_whatever_the_mtime(tmp_path):
    roots = []
    for i, mtime in enumerate((1_000_000_000, 1_700_000_000)):
        root = tmp_path / f"replica{i}"
        root.mkdir()
        (root / "app.js").write_bytes(b"let a = 1;")
        os.utime(root / "app.js", (mtime, mtime))
        roots.append(root)
    assert Assets(roots[0]).url("app.js") == Assets(roots[1]).url("app.js")


def test_other_version_sources(tree):
    root = tree({"app.js": b"x", "img/a.png": b"p"})
    os.utime(root / "app.js", (1_600_000_000, 1_600_000_123))
    assert Assets(root, version="mtime").url("app.js") == "/static/app.1600000123.js"
    assert Assets(root, release="r2026-11").url("app.js") == "/static/app.r2026-11.js"
    assert (Assets(root, style="segment", release="abc123").url("img/a.png")
            == "/static/abc123/img/a.png")
    seen = []

    def custom(path, abs_path):
        seen.append((path, abs_path))
        return "c-" + path.replace("/", "_").replace(".", "_")

    assets = Assets(root, version=custom)
    assert assets.url("img/a.png") == "/static/img/a.c-img_a_png.png"
    assert ("app.js", str(root / "app.js")) in seen


def test_callable_returning_a_bad_version_is_named(tree):
    root = tree({"app.js": b"x"})
    with pytest.raises(ValueError) as err:
        Assets(root, version=lambda p, a: "1.0")
    assert "invalid version '1.0' from version callable for 'app.js'" in str(err.value)


def test_extension_filter(tree):
    root = tree({"app.css": b"a", "app.min.js": b"b", "logo.png": b"c", "app.css.map": b"d"})
    assets = Assets(root, extensions=[".css", ".min.js"])
    assert assets.url("app.css") == f"/static/app.{v(b'a')}.css"
    assert assets.url("app.min.js") == f"/static/app.min.{v(b'b')}.js"
    assert assets.url("logo.png") == "/static/logo.png"
    assert assets.url("app.css.map") == "/static/app.css.map"


def test_first_root_wins(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.css").write_bytes(b"from a")
    (tmp_path / "b" / "x.css").write_bytes(b"from b")
    (tmp_path / "b" / "y.css").write_bytes(b"only b")
    assets = Assets([tmp_path / "a", tmp_path / "b"])
    assert assets["x.css"].abs_path == str(tmp_path / "a" / "x.css")
    assert assets.url("x.css") == f"/static/x.{v(b'from a')}.css"
    assert assets.url("y.css") == f"/static/y.{v(b'only b')}.css"


def test_unicode_space_and_percent_names_are_quoted(tree):
    root = tree({"fonts/Ünï côde%.woff2": b"w"})
    url = Assets(root).url("fonts/Ünï côde%.woff2")
    assert url == "/static/fonts/" + quote(f"Ünï côde%.{v(b'w')}.woff2")
    assert " " not in url and "%25" in url


def test_dotfiles_and_dotdirs_are_not_indexed_by_default(tree):
    root = tree({".env": b"SECRET", ".git/config": b"x", "a/.hidden.css": b"h", "ok.css": b"o"})
    assert [a.path for a in Assets(root)] == ["ok.css"]
    assert sorted(a.path for a in Assets(root, include_dotfiles=True)) == [
        ".env", ".git/config", "a/.hidden.css", "ok.css"]


def test_symlinks_inside_are_followed_and_outside_are_not(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    root = tmp_path / "static"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.css").write_bytes(b"a")
    os.symlink(outside, root / "leak.txt")
    os.symlink(tmp_path, root / "up")
    os.symlink(root / "real", root / "alias")
    os.symlink(root, root / "real" / "loop")
    paths = sorted(a.path for a in Assets(root))
    assert paths == ["alias/a.css", "real/a.css"]


def test_variants_belong_to_their_file(tree):
    root = tree({"app.css": b"a" * 100, "app.css.gz": b"g", "app.css.br": b"b",
                 "lone.gz": b"z"})
    assets = Assets(root)
    assert sorted(a.path for a in assets) == ["app.css", "lone.gz"]
    assert sorted(assets["app.css"].variants) == ["br", "gzip"]
    assert assets["app.css"].variants["br"].body == b"b"


def test_strict_url_names_path_and_roots(tree):
    root = tree({"a.css": b"a"})
    assets = Assets(root)
    with pytest.raises(AssetNotFound) as err:
        assets.url("css/missing.css")
    assert "'css/missing.css'" in str(err.value) and str(root) in str(err.value)
    assert "strict=False" in str(err.value)


def test_lenient_url_warns_once(tree, caplog):
    root = tree({"a.css": b"a"})
    assets = Assets(root, strict=False)
    with caplog.at_level(logging.WARNING, logger="bustware"):
        assert assets.url("missing.css") == "/static/missing.css"
        assert assets.url("missing.css") == "/static/missing.css"
    assert [r.getMessage() for r in caplog.records].count(
        "bustware: no file 'missing.css' in the index; using its plain URL") == 1


def test_memory_threshold_and_budget(tree):
    root = tree({"a.css": b"a" * 10, "b.css": b"b" * 10, "c.css": b"c" * 10, "big.js": b"x" * 50})
    assets = Assets(root, memory_threshold=20, memory_budget=25)
    held = {a.path for a in assets if a.body is not None}
    assert "big.js" not in held and len(held) == 2
    assert assets.memory_used == 20 <= assets.memory_budget
    for a in assets:
        if a.body is not None:
            assert a.body == (root / a.path).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "static/"}, "prefix='static/' must start and end with '/'"),
        ({"prefix": "/static"}, "prefix='/static' must start and end with '/'"),
        ({"prefix": "//cdn/"}, "prefix='//cdn/' starts with '//'"),
        ({"style": "hash"}, "unknown style='hash'"),
        ({"version": "sha1"}, "unknown version='sha1'"),
        ({"version": "mtime", "release": "r1"}, "release='r1' and version='mtime' conflict"),
        ({"release": "1.0"}, "invalid version '1.0' from release="),
        ({"extensions": ".css"}, "extensions='.css' must be a list of suffixes"),
        ({"extensions": ["css"]}, "extension 'css' must start with a dot"),
        ({"memory_budget": -1}, "memory_budget=-1 must be byte counts"),
        ({"refresh_interval": -1}, "refresh_interval=-1 must be seconds"),
    ],
)
def test_bad_options_are_named(tree, kwargs, message):
    root = tree({"a.css": b"a"})
    with pytest.raises((ValueError, TypeError)) as err:
        Assets(root, **kwargs)
    assert message in str(err.value)


def test_bad_roots_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"root '.*nope' does not exist"):
        Assets(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match=r"root '.*file.txt' is not a directory"):
        Assets(tmp_path / "file.txt")
    with pytest.raises(ValueError, match="root=\\[\\] names no directory"):
        Assets([])


def test_refresh_picks_up_changes_and_reuses_unchanged(tree):
    root = tree({"a.css": b"one", "b.css": b"same"})
    assets = Assets(root)
    before_b = assets["b.css"]
    generation = assets.generation
    (root / "a.css").write_bytes(b"two!")
    (root / "c.css").write_bytes(b"new")
    assets.refresh()
    assert assets.url("a.css") == f"/static/a.{v(b'two!')}.css"
    assert assets["b.css"] is before_b
    assert "c.css" in assets and assets.generation == generation + 1
    assets.refresh()
    assert assets.generation == generation + 1  # nothing changed, nothing bumped


def test_autorefresh_url_sees_edits(tree):
    root = tree({"a.css": b"one"})
    assets = Assets(root, autorefresh=True, refresh_interval=0)
    first = assets.url("a.css")
    (root / "a.css").write_bytes(b"changed")
    assert assets.url("a.css") == f"/static/a.{v(b'changed')}.css" != first
    os.remove(root / "a.css")
    with pytest.raises(AssetNotFound):
        assets.url("a.css")


def test_fifo_is_skipped_without_hanging(tree):
    root = tree({"a.css": b"a"})
    os.mkfifo(root / "pipe.css")
    assert [a.path for a in Assets(root)] == ["a.css"]


def test_the_fast_record_constructor_sets_every_field_as_the_dataclass_does():
    """The scan and the manifest start make records with new_asset (direct
    slot stores); a field added to Asset but not there would be unset."""
    from dataclasses import fields

    from bustware.records import EMPTY, Asset, new_asset

    given = dict(path="css/a b.css", abs_path="/r/css/a b.css", size=3, mtime=4,
                 mtime_ns=4_000_000_001, digest="d" * 64, version="v1",
                 url="/static/css/a%20b.v1.css", content_type="text/css; charset=utf-8",
                 body=b"abc", variants=EMPTY, integrity="sha384-x", dev=7, ino=8)
    fast = new_asset(**given)
    slow = Asset(**given, links=EMPTY)
    assert type(fast) is Asset
    for f in fields(Asset):
        assert getattr(fast, f.name) == getattr(slow, f.name), f.name


@pytest.mark.parametrize("style", ["filename", "segment", "query"])
@pytest.mark.parametrize("base_url", [None, "https://cdn.example.com"])
def test_urls_made_at_start_are_those_of_url_for_version(tree, style, base_url):
    """The scan and the manifest start build URLs with urls.url_maker, a
    shortcut for the common names; every name gets url_for_version's URL."""
    from bustware.urls import all_plain, url_maker

    assets = Assets(tree({"a.css": b"x"}), "/s/", style=style, base_url=base_url)
    make = url_maker(assets)
    for path in ["css/app.css", "LICENSE", ".well-known/x.json", "a/.hidden", "a/.b.css",
                 "img/l o.png", "\u00e9/\u00fc.js", "a.b.c", "dir.d/file", "x.", "100%.css",
                 "a/b/c.tar.gz", "a/b/", "a~b/c_d-e.js", "q?x.css", "h#x.css"]:
        for version in [None, "abc123", "v-1_2"]:
            assert make(path, version) == assets.url_for_version(path, version), (path, version)
            if all_plain([path]):
                assert url_maker(assets, plain_names=True)(path, version) == \
                    assets.url_for_version(path, version), (path, version)


def test_all_plain_is_the_test_of_quote_path_on_every_name():
    from bustware.styles import PLAIN_PATH
    from bustware.urls import all_plain

    for code in range(0x250):
        name = f"a{chr(code)}b"
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert all_plain(["x/y.css", name]) == bool(PLAIN_PATH.match(name)), repr(name)
    assert all_plain([]) and not all_plain(["a.css", "b c.css"])


def test_a_subclass_building_urls_its_own_way_is_asked(tree):
    from bustware.urls import url_maker

    class Shouting(Assets):
        def url_for_version(self, path, version):
            return super().url_for_version(path, version).upper()

    assets = Shouting(tree({"a.css": b"x"}))
    assert assets.url("a.css") == f"/STATIC/A.{v(b'x').upper()}.CSS"
    assert url_maker(assets)("b.js", "v1") == "/STATIC/B.V1.JS"


def _records(assets: Assets) -> list[tuple]:
    """Every field of every record and variant, in the index's order (each
    index writes what it cannot hold to a private directory of its own)."""
    from dataclasses import fields

    def value(x):
        if isinstance(x, str) and assets.spill_dir and x.startswith(assets.spill_dir):
            return "<private>" + x[len(assets.spill_dir):]
        return x

    def row(record):
        private = value(record.abs_path) != record.abs_path  # its own file's stat
        return tuple(None if private and f.name in ("mtime_ns", "dev", "ino") else
                     value(getattr(record, f.name)) for f in fields(record)
                     if f.name != "variants")

    return [(row(a), [(e, row(var)) for e, var in a.variants.items()]) for a in assets]


@pytest.fixture
def varied(tree):
    """Files of every size class of the scan: digested where read, by a
    helper thread (a MiB and more), streamed (over memory_threshold)."""
    import random

    rng = random.Random(13)
    files = {}
    for i in range(60):
        size = rng.choice([10, 900, 5000, 9000, 40_000, 200_000, 300_000, 1_500_000])
        files[f"d{i % 4}/f{i:02d}.{rng.choice(['png', 'js', 'woff2', 'txt'])}"] = \
            rng.randbytes(size)
    files["img/logo.png"] = b"\x89PNG" * 5000
    files["css/app.css"] = b"a { background: url(../img/logo.png) }\n" * 400
    files["css/app.css.gz"] = b"stale gzip bytes"
    files["d1/\u00e9t\u00e9 page.svg"] = b"<svg/>" * 3000
    files["d2/big.bin"] = b"\x00" * 2_000_000
    files["d2/big.bin.br"] = b"br bytes"
    return tree(files)


@pytest.mark.parametrize("budget", [64 * 1024 * 1024, 0, 5_000_000])
def test_a_two_thread_scan_makes_the_records_of_a_one_thread_scan(varied, budget, monkeypatch):
    import bustware.scan

    jobs = []
    submit = bustware.scan.Helpers.submit
    monkeypatch.setattr(bustware.scan.Helpers, "submit",
                        lambda self, fn, arg: jobs.append(fn) or submit(self, fn, arg))
    options = dict(memory_budget=budget, memory_threshold=1_600_000)
    one = Assets(varied, scan_threads=1, **options)
    assert jobs == []
    two = Assets(varied, scan_threads=2, **options)
    # Digests of held bytes and streams (of a MiB and more): both went to
    # the helper.
    assert bustware.scan.digest_stream in jobs
    assert (bustware.scan.digest_bytes in jobs) == (budget > 0)
    assert _records(two) == _records(one)
    assert two.memory_used == one.memory_used
    assert len(two) == 64


def test_files_rewritten_in_place_while_read_give_the_same_records_with_two_threads(
        varied, monkeypatch):
    """As in test_devmode's test of an in-place rewrite between the fstat
    and the read: a file held, one digested by the helper, one streamed."""
    import bustware.scan

    real_open = bustware.scan.open_fd
    edits = {"f00": b"short now", "f05": b"y" * 50_000, "big": b"z" * 600_000}

    def rewritten_after_fstat(path):
        fd, st = real_open(path)
        name, _, suffix = os.path.basename(path).partition(".")
        if name in edits and "." not in suffix:  # the file, not a variant beside it
            with open(path, "wb") as w:  # truncate and write, as write_bytes does
                w.write(edits[name])
            os.utime(path, ns=(10**18, 10**18))  # the same new stat in both scans
        return fd, st

    originals = {p: (p.read_bytes(), p.stat().st_mtime_ns)
                 for p in varied.rglob("*") if p.is_file()}
    records = []
    for threads in (1, 2):
        for p, (data, mtime_ns) in originals.items():  # the same files each time
            p.write_bytes(data)
            os.utime(p, ns=(mtime_ns, mtime_ns))
        monkeypatch.setattr(bustware.scan, "open_fd", rewritten_after_fstat)
        records.append(_records(Assets(varied, scan_threads=threads)))
        monkeypatch.undo()
    assert records[0] == records[1]
    # The rewrites happened: the streamed file's digest is of its new bytes.
    assert any(r[0][0] == "d2/big.bin" and r[0][5] == hashlib.sha256(b"z" * 600_000).hexdigest()
               for r in records[1])


def test_a_failed_helper_job_fails_the_scan_and_leaves_no_thread(varied, monkeypatch):
    import threading

    import bustware.scan

    def broken(fd):
        os.close(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(bustware.scan, "digest_stream", broken)
    with pytest.raises(OSError, match="Input/output error"):
        Assets(varied, memory_budget=0, scan_threads=2)
    assert not [t for t in threading.enumerate() if t.name == "bustware-scan"]
    monkeypatch.undo()
    Assets(varied, scan_threads=2)
    assert not [t for t in threading.enumerate() if t.name == "bustware-scan"]


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_scan_threads_is_named(tree, value):
    with pytest.raises(ValueError, match=f"scan_threads={value!r} must be"):
        Assets(tree({"a.css": b"x"}), scan_threads=value)


@pytest.mark.parametrize("now", [b"", b"short", b"x" * 100, b"y" * 200_000])
def test_a_file_read_whole_gives_its_bytes_with_their_own_fstat(tmp_path, now):
    """files.read_whole reads to the end in one read when the file has the
    size its fstat gave; grown or shrunk since, it reads on until the end
    and gives the fstat of what it read."""
    from bustware.files import open_fd, read_whole

    path = tmp_path / "f.css"
    path.write_bytes(b"z" * 100)
    fd, st = open_fd(str(path))
    try:
        with open(path, "wb") as w:  # rewritten in place after the fstat
            w.write(now)
        data, st = read_whole(fd, st)
    finally:
        os.close(fd)
    assert data == now and st.st_size == len(now)


@pytest.mark.parametrize("expected", [0, 10, 99, 100, 101, 5000])
def test_read_to_end_reads_to_the_end_whatever_size_was_expected(tmp_path, expected):
    from bustware.files import open_fd, read_to_end

    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(100)))
    fd, _st = open_fd(str(path))
    try:
        assert read_to_end(fd, expected) == bytes(range(100))
    finally:
        os.close(fd)


def test_a_scan_where_no_thread_can_be_started_digests_alone(varied, monkeypatch):
    import threading

    def refused(self):
        raise RuntimeError("can't start new thread")

    one = _records(Assets(varied, scan_threads=1))
    monkeypatch.setattr(threading.Thread, "start", refused)
    assert _records(Assets(varied, scan_threads=2)) == one


def test_a_reader_given_to_the_index_reads_every_file_of_its_scans(tree, caplog):
    # The build's seam: Assets(reader=...) instead of a subclass.
    from bustware.scan import read_file

    root = tree({"css/app.css": b"a{background:url(../img/gone.png)}", "js/app.js": b"x"})
    read = []

    def reader(abs_path, memory):
        read.append(os.path.basename(abs_path))
        return read_file(abs_path, memory)

    with caplog.at_level(logging.WARNING, logger="bustware"):
        assets = Assets(root, reader=reader, log_missing_references=False)
    assert sorted(read) == ["app.css", "app.js"]
    assert assets["js/app.js"].digest == hashlib.sha256(b"x").hexdigest()
    assert "gone.png" not in caplog.text  # not logged; still reported here:
    assert assets.broken_references() == [("css/app.css", 1, "../img/gone.png", "img/gone.png")]
    with caplog.at_level(logging.WARNING, logger="bustware"):
        Assets(root)
    assert "gone.png" in caplog.text
