"""The manifest: schema, atomic writes, strict loading, staleness checks,
and an index started from it without reading any file."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
from conftest import via_werkzeug

from bustware import Assets, Bustware
from bustware import manifest as mf
from bustware import scan as scan_module
from bustware.build import build

CSS = b"body { color: red; }\n" * 50
JS = b"console.log('hello');\n"


@pytest.fixture
def built(tree):
    root = tree({"css/app.css": CSS, "js/app.js": JS, "img/logo.svg": "<svg/>"})
    build(root, compress=["gzip"])
    return root


def manifest_of(root) -> str:
    return str(root / ".bustware" / "manifest.json")


def test_records_digest_integrity_size_and_mtime_of_each_file(built):
    data = json.loads(Path(manifest_of(built)).read_bytes())
    assert data["schema"] == mf.SCHEMA and data["schema_version"] == mf.SCHEMA_VERSION
    rec = data["files"]["css/app.css"]
    st = os.stat(built / "css/app.css")
    assert rec["digest"] == hashlib.sha256(CSS).hexdigest()
    assert rec["integrity"] == "sha384-" + base64.b64encode(hashlib.sha384(CSS).digest()).decode()
    assert rec["version"] == rec["digest"][:12]
    assert (rec["size"], rec["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
    assert set(data["files"]) == {"css/app.css", "js/app.js", "img/logo.svg"}


def test_index_from_manifest_matches_a_live_index(built):
    live = Assets(built)
    fast = Assets(built, manifest=manifest_of(built))
    assert {a.path: a.url for a in fast} == {a.path: a.url for a in live}
    assert {a.path: a.digest for a in fast} == {a.path: a.digest for a in live}
    assert fast.url("css/app.css") == live.url("css/app.css")


def test_starting_from_a_manifest_reads_no_file(built, monkeypatch):
    def no_reads(abs_path, memory):
        raise AssertionError(f"read {abs_path}")

    monkeypatch.setattr(scan_module, "read_file", no_reads)
    assets = Assets(built, manifest=manifest_of(built))
    assert all(a.body is None for a in assets)
    assert len(assets) == 3


def test_middleware_streams_files_of_a_manifest_index(built):
    app = Bustware(None, built, manifest=manifest_of(built))
    url = app.url("css/app.css")
    r = via_werkzeug(app, url)
    assert r.status == 200 and r.body == CSS
    assert r.header("Cache-Control") == "max-age=31536000, immutable"
    assert r.header("ETag") == f'"{hashlib.sha256(CSS).hexdigest()[:24]}"'
    gz = via_werkzeug(app, url, headers={"Accept-Encoding": "gzip"})
    assert gz.header("Content-Encoding") == "gzip"
    import gzip

    assert gzip.decompress(gz.body) == CSS
    plain = via_werkzeug(app, "/static/js/app.js")
    assert plain.body == JS and plain.header("Cache-Control") == "no-cache"


def test_options_of_the_index_apply_to_a_manifest(built):
    assets = Assets(built, manifest=manifest_of(built), extensions=[".css"])
    assert assets.url("js/app.js") == "/static/js/app.js"
    assert assets.url("css/app.css").endswith(f".{hashlib.sha256(CSS).hexdigest()[:12]}.css")
    released = Assets(built, manifest=manifest_of(built), release="r42")
    assert released.url("js/app.js") == "/static/js/app.r42.js"


# -- atomic writes -------------------------------------------------------------


def test_a_crash_before_the_rename_leaves_the_old_manifest(built, monkeypatch):
    path = manifest_of(built)
    before = Path(path).read_bytes()
    (built / "css/app.css").write_bytes(b"body{}")

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(mf.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        build(built)
    assert Path(path).read_bytes() == before
    assert [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")] == []


def test_a_crash_in_the_middle_of_writing_leaves_the_old_manifest(built, monkeypatch):
    path = manifest_of(built)
    before = Path(path).read_bytes()
    (built / "css/app.css").write_bytes(b"body{}")
    real_fsync = os.fsync

    def half_written(fd):
        os.ftruncate(fd, 10)  # the process dies with ten bytes on disk
        raise OSError("killed")

    monkeypatch.setattr(mf.os, "fsync", half_written)
    with pytest.raises(OSError, match="killed"):
        build(built)
    monkeypatch.setattr(mf.os, "fsync", real_fsync)
    assert Path(path).read_bytes() == before
    assert mf.read(path)["generation"] == 1  # still a whole manifest


# -- strict loading ------------------------------------------------------------


def test_corrupt_manifest_is_a_clear_error(built):
    path = manifest_of(built)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(mf.ManifestError) as err:
        Assets(built, manifest=path)
    assert path in str(err.value) and "bustware build" in str(err.value)
    assert "not valid JSON" in str(err.value)


def test_foreign_json_is_refused(tree, tmp_path):
    root = tree({"main.js": JS})
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps({"main.js": "main.1234abcd.js"}))
    with pytest.raises(mf.ManifestError, match="is not a bustware manifest") as err:
        Assets(root, manifest=other)
    assert str(other) in str(err.value)


def test_unknown_schema_version_is_refused(built):
    path = manifest_of(built)
    data = json.loads(Path(path).read_text())
    data["schema_version"] = 99
    Path(path).write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match="schema_version 99") as err:
        Assets(built, manifest=path)
    assert "move it aside and build a new one" in str(err.value)
    assert f"&& bustware build {built}`" in str(err.value)


def test_missing_manifest_says_how_to_make_one(tree, tmp_path):
    root = tree({"a.css": "a"})
    with pytest.raises(mf.ManifestError, match="bustware build"):
        Assets(root, manifest=tmp_path / "nope.json")


@pytest.mark.parametrize("bad_path", ["../../etc/passwd", "/etc/passwd", "a/../../b", "a//b",
                                      "a\\..\\b", "./a"])
def test_paths_leaving_the_root_are_refused(built, bad_path):
    path = manifest_of(built)
    data = json.loads(Path(path).read_text())
    data["files"][bad_path] = data["files"]["js/app.js"]
    Path(path).write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match="damaged"):
        Assets(built, manifest=path)


@pytest.mark.parametrize("field, value", [
    ("digest", "abc\r\nSet-Cookie: x"), ("version", "a.b"), ("size", "12"),
    ("mtime_ns", -1), ("root", 3), ("integrity", "md5-xyz"),
])
def test_mistyped_fields_are_refused(built, field, value):
    path = manifest_of(built)
    data = json.loads(Path(path).read_text())
    data["files"]["js/app.js"][field] = value
    Path(path).write_text(json.dumps(data))
    with pytest.raises(mf.ManifestError, match=field):
        Assets(built, manifest=path)


def test_manifest_built_with_other_settings_is_refused(built):
    with pytest.raises(mf.ManifestError, match=r"prefix='/static/'.*prefix='/assets/'"):
        Assets(built, "/assets/", manifest=manifest_of(built))
    with pytest.raises(mf.ManifestError, match="style"):
        Assets(built, manifest=manifest_of(built), style="segment")


def test_manifest_and_autorefresh_conflict(built):
    with pytest.raises(ValueError, match="autorefresh"):
        Assets(built, manifest=manifest_of(built), autorefresh=True)


def test_unknown_check_mode_is_refused(built):
    with pytest.raises(ValueError, match="manifest_check='sometimes'"):
        Assets(built, manifest=manifest_of(built), manifest_check="sometimes")


# -- staleness -----------------------------------------------------------------


def test_stale_manifest_names_the_files(built):
    (built / "css/app.css").write_bytes(CSS + b"/* more */")
    os.remove(built / "js/app.js")
    with pytest.raises(mf.ManifestError) as err:
        Assets(built, manifest=manifest_of(built))
    message = str(err.value)
    assert "css/app.css: changed (size" in message
    assert "js/app.js: missing" in message
    assert "img/logo.svg" not in message
    assert "bustware build" in message


def test_touched_file_is_stale(built):
    st = os.stat(built / "js/app.js")
    os.utime(built / "js/app.js", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(mf.ManifestError, match=r"js/app\.js: changed"):
        Assets(built, manifest=manifest_of(built))


def test_stale_manifest_with_warn_logs_and_drops_missing_files(built, caplog):
    os.remove(built / "js/app.js")
    with caplog.at_level(logging.WARNING, logger="bustware"):
        assets = Assets(built, manifest=manifest_of(built), manifest_check="warn")
    assert "js/app.js: missing" in caplog.text
    assert "js/app.js" not in assets and "css/app.css" in assets


def test_check_off_stats_nothing(built, monkeypatch):
    calls = []

    def counting(real):
        def stat(path, *args, **kwargs):
            # Below the root: not the root's own resolution, nor its checks.
            if str(path).startswith(str(built) + os.sep):
                calls.append(path)
            return real(path, *args, **kwargs)
        return stat

    monkeypatch.setattr(os, "stat", counting(os.stat))
    monkeypatch.setattr(os, "lstat", counting(os.lstat))
    Assets(built, manifest=manifest_of(built), manifest_check="off")
    assert calls == []
    Assets(built, manifest=manifest_of(built))
    assert len(calls) >= 3


def test_changed_file_with_check_off_is_served_uncached(built):
    app = Bustware(None, built, manifest=manifest_of(built), manifest_check="off")
    url = app.url("js/app.js")
    (built / "js/app.js").write_bytes(b"console.log('changed!');\n")
    r = via_werkzeug(app, url)
    assert r.status == 200 and r.body == b"console.log('changed!');\n"
    assert r.header("Cache-Control") == "no-store"


def test_deleted_variant_object_is_reported(built):
    data = json.loads(Path(manifest_of(built)).read_text())
    obj = data["files"]["css/app.css"]["variants"]["gzip"]["object"]
    os.remove(built / ".bustware" / "objects" / obj[:2] / obj)
    with pytest.raises(mf.ManifestError, match=r"css/app\.css: its gzip variant is missing"):
        Assets(built, manifest=manifest_of(built))


def test_copied_objects_with_new_mtimes_still_serve(built):
    data = json.loads(Path(manifest_of(built)).read_text())
    obj = data["files"]["css/app.css"]["variants"]["gzip"]["object"]
    os.utime(built / ".bustware" / "objects" / obj[:2] / obj, ns=(10**18, 10**18))
    app = Bustware(None, built, manifest=manifest_of(built))
    r = via_werkzeug(app, app.url("css/app.css"), headers={"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Cache-Control") == "max-age=31536000, immutable"


def test_manifest_is_readable_json_one_file_per_line(built):
    text = Path(manifest_of(built)).read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith('"css/app.css"')]
    assert len(lines) == 1
    json.loads(text)


# -- validation of all records at once (manifest._unusual) -------------------

PLAIN = "js/app.js"  # a record of the six common fields
OTHER = "img/logo.svg"


def _rename(files: dict, old: str, new: str) -> None:
    items = [(new if k == old else k, v) for k, v in files.items()]
    files.clear()
    files.update(items)


def _set(field, value, path=PLAIN):
    return lambda files: files[path].__setitem__(field, value)


def _edit(field, change, path=PLAIN):
    return lambda files: files[path].__setitem__(field, change(files[path][field]))


HEX = "0123456789abcdef" * 4
VALIDATION_CASES = {
    "unchanged": lambda files: None,
    "size negative": _set("size", -1), "size bool": _set("size", True),
    "size str": _set("size", "12"), "size float": _set("size", 1.0),
    "mtime negative": _set("mtime_ns", -1), "mtime float": _set("mtime_ns", 1.5),
    "root out of range": _set("root", 1), "root negative": _set("root", -1),
    "root bool": _set("root", False),
    "digest upper case": _edit("digest", str.upper),
    "digest short": _edit("digest", lambda d: d[:63]),
    "digest long": _edit("digest", lambda d: d + "0"),
    "digest not hex": _edit("digest", lambda d: "g" + d[1:]),
    "digest not str": _set("digest", 123),
    "digest not ascii": _edit("digest", lambda d: "\u00e9" + d[1:]),
    "digest digits only": _set("digest", "0123456789" * 6 + "0123"),
    "version empty": _set("version", ""), "version of 65": _set("version", "a" * 65),
    "version of 64": _set("version", "a" * 64), "version dot": _set("version", "a.b"),
    "version not ascii": _set("version", "\u00e9t\u00e9"),
    "version other digits": _set("version", "\u0661\u0662\u0663"),
    "integrity other prefix": _edit("integrity", lambda i: "sha256-" + i[7:]),
    "integrity short": _edit("integrity", lambda i: i[:-1]),
    "integrity dash in body": _edit("integrity", lambda i: i[:20] + "-" + i[21:]),
    "integrity shifted": _edit("integrity", lambda i: "X" + i[:-1]),
    "integrity not str": _set("integrity", None),
    "integrity lengths that add up": lambda files: (
        _edit("integrity", lambda i: i + "A")(files),
        _edit("integrity", lambda i: i[:-1], OTHER)(files)),
    "a field missing": lambda files: files[PLAIN].pop("integrity"),
    "an unknown field": _set("note", "kept"),
    "record not an object": lambda files: files.__setitem__(PLAIN, [1, 2]),
    "path absolute": lambda files: _rename(files, PLAIN, "/js/app.js"),
    "path climbing": lambda files: _rename(files, PLAIN, "js/../../app.js"),
    "path double slash": lambda files: _rename(files, PLAIN, "js//app.js"),
    "path backslash": lambda files: _rename(files, PLAIN, "js\\app.js"),
    "path nul": lambda files: _rename(files, PLAIN, "js/app\x00.js"),
    "path empty": lambda files: _rename(files, PLAIN, ""),
    "path trailing slash": lambda files: _rename(files, PLAIN, "js/app/"),
    "path trailing dot": lambda files: _rename(files, PLAIN, "js/app."),
    "path dot segment": lambda files: _rename(files, PLAIN, "./js/app.js"),
    "path with a newline": lambda files: _rename(files, PLAIN, "js\n/app.js"),
    "path of a dot name": lambda files: _rename(files, PLAIN, ".well-known/app.js"),
    "path dot before slash": lambda files: _rename(files, PLAIN, "js./app.js"),
    "served object bad": lambda files: files["css/app.css"]["served"].__setitem__("object", "x"),
    "variant unknown coding": _set("variants", {"lzma": {"object": HEX, "size": 1}}),
    "variant object": _set("variants", {"br": {"object": HEX, "size": 1}}),
    "variant file": _set("variants", {"br": {"file": "js/app.js.br", "size": 1,
                                             "mtime_ns": 1, "digest": HEX}}),
}


@pytest.fixture(scope="module")
def plain_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("plain") / "static"
    for rel, content in {"css/app.css": b"a { background: url(../img/logo.svg) }",
                         PLAIN: JS, OTHER: b"<svg/>", "img/a.png": b"\x89PNG"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    build(root)
    return json.loads(Path(manifest_of(root)).read_bytes())


def _verdict(data) -> str | None:
    try:
        mf.validate(data, "m.json")
    except mf.ManifestError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("case", VALIDATION_CASES)
def test_records_validated_all_at_once_get_the_verdict_of_one_by_one(plain_manifest, case,
                                                                      monkeypatch):
    """validate() checks the common fields of all records at once, column by
    column (_unusual); whatever it lets through without the record-by-record
    checks must be what those accept, and a refusal names what they name."""
    import copy

    # The column checks take the whole unchanged manifest but its one
    # record with rewritten bytes (else this test would compare nothing).
    assert list(mf._unusual(plain_manifest["files"], 1)) == ["css/app.css"]
    data = copy.deepcopy(plain_manifest)
    VALIDATION_CASES[case](data["files"])
    at_once = _verdict(data)
    monkeypatch.setattr(mf, "_unusual", lambda files, roots: files)
    assert at_once == _verdict(data)


def test_a_start_finds_what_check_tree_finds_and_records_identities(tree):
    """The start checks the tree and makes the records in one pass; it must
    name exactly the problems manifest.check_tree names (bustware verify),
    in its order, and give each record the identity of the file it serves."""
    from bustware.from_manifest import _listing

    root = tree({"css/app.css": b"a { background: url(../img/a.png) }\n" * 20,
                 "css/plain.css": b"b { color: red }\n" * 20,
                 "css/plain.css.br": b"not really brotli",
                 "js/app.js": JS * 20, "js/gone.js": JS * 30,
                 "img/a.png": b"\x89PNG a", "img/b.png": b"\x89PNG b",
                 "img/c.png": b"\x89PNG c"})
    build(root, compress=["gzip"])
    m = manifest_of(root)
    data = mf.read(m)
    objects = root / ".bustware" / "objects"

    def object_of(rec):
        return objects / rec[:2] / rec

    os.remove(root / "js/gone.js")
    (root / "img/b.png").write_bytes(b"\x89PNG b, longer")
    os.utime(root / "img/c.png", ns=(10**18, 10**18))
    with open(object_of(data["files"]["css/app.css"]["served"]["object"]), "ab") as f:
        f.write(b"/* more */")
    os.remove(object_of(data["files"]["js/app.js"]["variants"]["gzip"]["object"]))
    (root / "css/plain.css.br").write_bytes(b"not brotli, and longer")

    expected = mf.check_tree(data, [os.path.realpath(root)], m)
    assert len(expected) == 6, expected
    with pytest.raises(mf.ManifestError) as err:
        Assets(root, manifest=m)
    assert f"({len(expected)} problems):\n{_listing(expected)}\n" in str(err.value)

    # "warn" serves what is there: each record with the identity and mtime
    # of the file it serves, but those that changed since the build.
    assets = Assets(root, manifest=m, manifest_check="warn")
    assert "js/gone.js" not in assets and len(assets) == 6
    changed = {str(root / "img/b.png"), str(root / "img/c.png"), str(root / "css/plain.css.br")}
    records = list(assets) + [v for a in assets for v in a.variants.values()]
    assert len(records) == 6 + 4  # gzip of the css and js files, br of css/plain.css
    for record in records:
        if record.abs_path in changed:
            assert (record.dev, record.ino) == (0, 0), record.abs_path
        elif os.path.exists(record.abs_path):
            st = os.stat(record.abs_path)
            assert (record.dev, record.ino) == (st.st_dev, st.st_ino), record.abs_path
            assert record.mtime_ns == st.st_mtime_ns, record.abs_path
        else:  # the gzip object removed
            assert (record.dev, record.ino, record.mtime_ns) == (0, 0, mf.OBJECT_MTIME_NS)


@pytest.mark.parametrize("link", ["a", "a/b"])
def test_a_directory_reached_through_a_symlink_out_of_the_root_is_refused(tree, tmp_path, link):
    """The check lstats each directory's components below the root, and
    resolves only a path through a symlink: one at any depth is found."""
    import shutil

    root = tree({"a/b/c/x.css": b"z{}", "a/y.css": b"y{}", "d/e.css": b"e{}"})
    build(root)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root / link, elsewhere, copy_function=shutil.copy2)
    shutil.rmtree(root / link)
    (root / link).symlink_to(elsewhere)
    with pytest.raises(mf.ManifestError) as err:
        Assets(root, manifest=manifest_of(root))
    assert f"  a/b/c/x.css: reached through a symlink that leads out of the root, to " \
           f"{str(elsewhere / 'c' if link == 'a/b' else elsewhere / 'b' / 'c')!r}" \
           in str(err.value)
    assert ("a/y.css: reached" in str(err.value)) == (link == "a")
    assert "d/e.css" not in str(err.value)
