"""``bustware.build.build``: one read per file, parallel, deterministic,
compressed variants by the 5% rule, generations."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sys

import pytest

from bustware import Assets, compress, compressqueue
from bustware import build as b
from bustware import manifest as mf
from bustware.compress import CodecUnavailable

TEXT = b"".join(b".rule-%d { margin: %dpx; }\n" % (i, i) for i in range(400))


def objects(root):
    base = root / ".bustware" / "objects"
    return {p.name: p.read_bytes() for p in base.rglob("*") if p.is_file()} \
        if base.exists() else {}


def load(root):
    return json.loads((root / ".bustware" / "manifest.json").read_text())


def test_every_file_is_read_once(tree, monkeypatch):
    root = tree({"a.css": TEXT, "b/c.js": b"x" * 10, "b/d.txt": b"d"})
    opened = []

    def counting(real_open):
        def counting_open(path, *args, **kwargs):
            if str(path).startswith(str(root)) and ".bustware" not in str(path):
                opened.append(str(path))
            return real_open(path, *args, **kwargs)
        return counting_open

    # open(), and os.open() for bustware's opens that never block on a FIFO.
    monkeypatch.setattr("builtins.open", counting(open))
    monkeypatch.setattr(os, "open", counting(os.open))
    b.build(root, compress=["gzip"])
    assert sorted(opened) == sorted(str(root / p) for p in ("a.css", "b/c.js", "b/d.txt"))


def count_compressions(monkeypatch) -> list[tuple[str, str]]:
    """(SHA-256 of the input, coding) of every codec call from now on: each
    one, whatever module makes it, goes through compress._compress_stream."""
    calls = []
    real = compress._compress_stream

    def counting(src, out, *, encoding, size):
        assert isinstance(src, io.BytesIO), "small files are compressed from memory"
        calls.append((hashlib.sha256(src.getvalue()).hexdigest(), encoding))
        return real(src, out, encoding=encoding, size=size)

    monkeypatch.setattr(compress, "_compress_stream", counting)
    return calls


def test_every_byte_is_compressed_once(tree, monkeypatch):
    # A stylesheet whose references are rewritten is compressed from its
    # served bytes only, never also from its source; files with the same
    # bytes share their variants; a first build into an empty store removes
    # nothing.
    png = b"\x89PNG" + bytes(range(256)) * 4
    root = tree({"css/app.css": TEXT + b"a{background:url(../img/a.png)}\n",
                 "css/plain.css": TEXT, "css/copy.css": TEXT,
                 "js/app.js": TEXT.replace(b".rule", b"var r"),
                 "data/a.json": TEXT * 2, "data/b.json": TEXT * 2, "img/a.png": png})
    calls = count_compressions(monkeypatch)
    report = b.build(root, compress=["gzip", "br"])
    assert report.objects_removed == 0
    files = load(root)["files"]
    served = {files[p]["digest"] for p in ("css/app.css", "css/plain.css", "css/copy.css",
                                           "js/app.js", "data/a.json", "data/b.json")}
    assert len(served) == 4
    assert sorted(calls) == sorted((d, e) for d in served for e in ("gzip", "br"))
    assert files["css/copy.css"]["variants"] == files["css/plain.css"]["variants"]
    assert files["data/a.json"]["variants"] == files["data/b.json"]["variants"]
    assert gzip.decompress(objects(root)[files["data/b.json"]["variants"]["gzip"]["object"]]) \
        == TEXT * 2
    rewritten = objects(root)[files["css/app.css"]["served"]["object"]]
    assert b"/static/img/a." in rewritten
    gz = files["css/app.css"]["variants"]["gzip"]["object"]
    assert gzip.decompress(objects(root)[gz]) == rewritten
    assert set(objects(root)) == mf.referenced_objects(load(root))


def test_rebuilding_an_unchanged_tree_writes_the_same_manifest(tree):
    root = tree({"a.css": TEXT, "js/app.js": TEXT * 2, "img/x.png": b"\x89PNG" + bytes(300)})
    b.build(root, compress=["gzip", "br", "zstd"], keep=1)
    first = (root / ".bustware/manifest.json").read_bytes()
    first_objects = objects(root)
    report = b.build(root, compress=["gzip", "br", "zstd"], keep=1)
    assert (root / ".bustware/manifest.json").read_bytes() == first
    assert objects(root) == first_objects
    assert not report.new_generation and report.objects_written == 0


def test_two_builds_of_equal_trees_are_byte_identical(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one = tree({"a.css": TEXT, "sub/b.js": TEXT[:500]})
    two = tmp_path / "copy"
    shutil.copytree(one, two)  # copy2 keeps the mtimes
    b.build(one, compress=["gzip", "br", "zstd"])
    b.build(two, compress=["gzip", "br", "zstd"], workers=1)
    assert (one / ".bustware/manifest.json").read_bytes() == \
        (two / ".bustware/manifest.json").read_bytes()
    assert objects(one) == objects(two)
    assert load(one)["built_at"] == "2023-11-14T22:13:20Z"


def test_variants_decode_to_the_file_and_are_named_by_their_digest(tree):
    import brotli
    import zstandard

    root = tree({"app.css": TEXT})
    b.build(root, compress=["br", "gzip", "zstd"])
    variants = load(root)["files"]["app.css"]["variants"]
    blobs = objects(root)
    decode = {"br": brotli.decompress, "gzip": gzip.decompress,
              "zstd": lambda d: zstandard.ZstdDecompressor().decompress(d)}
    assert set(variants) == {"br", "gzip", "zstd"}
    for encoding, var in variants.items():
        blob = blobs[var["object"]]
        assert hashlib.sha256(blob).hexdigest() == var["object"]
        assert len(blob) == var["size"]
        assert decode[encoding](blob) == TEXT


def test_variants_only_when_they_save_five_percent_and_not_for_compressed_formats(tree):
    root = tree({"noise.txt": os.urandom(4000), "small.txt": b"ab", "pic.png": TEXT,
                 "font.woff2": TEXT, "app.css": TEXT})
    b.build(root, compress=["gzip"])
    files = load(root)["files"]
    assert "variants" not in files["noise.txt"]
    assert "variants" not in files["small.txt"]
    assert "variants" not in files["pic.png"]  # compressible bytes, but a png
    assert "variants" not in files["font.woff2"]
    assert set(files["app.css"]["variants"]) == {"gzip"}


def test_variants_beside_the_file_are_recorded_not_remade(tree):
    packed = gzip.compress(TEXT, mtime=0)
    root = tree({"app.css": TEXT, "app.css.gz": packed})
    b.build(root, compress=["gzip"])
    var = load(root)["files"]["app.css"]["variants"]["gzip"]
    assert var["file"] == "app.css.gz"
    assert var["digest"] == hashlib.sha256(packed).hexdigest()
    assert "app.css.gz" not in load(root)["files"]
    assert objects(root) == {}


def test_a_missing_extra_is_a_clear_error_before_any_work(tree, monkeypatch):
    root = tree({"app.css": TEXT})
    monkeypatch.setitem(sys.modules, "brotli", None)
    with pytest.raises(CodecUnavailable, match=r"pip install 'bustware\[brotli\]'"):
        b.build(root, compress=["br"])
    assert not (root / ".bustware").exists()


def test_new_generation_only_when_a_version_changes(tree):
    root = tree({"a.css": "a", "b.css": "b"})
    assert b.build(root).generation == 1
    os.utime(root / "a.css", ns=(1, 10**18))  # touched, same bytes
    report = b.build(root)
    assert (report.generation, report.new_generation) == (1, False)
    assert load(root)["files"]["a.css"]["mtime_ns"] == 10**18  # the record follows the file
    (root / "b.css").write_text("bb")
    assert b.build(root).generation == 2


def test_keep_defaults_to_what_the_manifest_keeps(tree):
    root = tree({"a.css": "a"})
    b.build(root, keep=3)
    (root / "a.css").write_text("a2")
    b.build(root)
    data = load(root)
    assert data["keep"] == 3 and len(data["previous"]) == 1


def test_parallel_and_serial_builds_agree(tree, tmp_path):
    files = {f"d{i % 7}/f{i}.css": TEXT[: 100 + i * 37] for i in range(60)}
    root = tree(files)
    b.build(root, compress=["gzip"], workers=1, out=tmp_path / "one/manifest.json")
    b.build(root, compress=["gzip"], workers=8, out=tmp_path / "eight/manifest.json")
    one = json.loads((tmp_path / "one/manifest.json").read_text())["files"]
    eight = json.loads((tmp_path / "eight/manifest.json").read_text())["files"]
    strip = lambda files: {p: {k: v for k, v in r.items() if k != "variants"}
                           for p, r in files.items()}
    assert strip(one) == strip(eight)
    assert {p: r["variants"]["gzip"]["object"] for p, r in one.items() if "variants" in r} == \
        {p: r["variants"]["gzip"]["object"] for p, r in eight.items() if "variants" in r}
    assert len(one) == 60


def test_out_elsewhere_keeps_the_tree_clean(tree, tmp_path):
    root = tree({"app.css": TEXT})
    out = tmp_path / "build" / "static.json"
    b.build(root, out=out, compress=["gzip"])
    assert not (root / ".bustware").exists()
    assert (tmp_path / "build" / "objects").is_dir()
    assets = Assets(root, manifest=out)
    assert assets["app.css"].variants["gzip"].abs_path.startswith(str(tmp_path / "build"))


@pytest.mark.parametrize("where", ["parent", "root"])
def test_a_manifest_beside_or_above_the_files_still_lists_them_all(tree, tmp_path, where):
    # The manifest's own directory used to be skipped whole: with --out in
    # the root's parent (or in the root) the build listed no file at all.
    root = tree({"app.css": TEXT, "js/app.js": b"let a = 1;\n"})
    out = (tmp_path if where == "parent" else root) / "manifest.json"
    b.build(root, out=out)
    listed = json.loads(out.read_text())["files"]
    assert sorted(listed) == ["app.css", "js/app.js"]
    assert b.build(root, out=out).new_generation is False  # not its own manifest or store
    assets = Assets(root, manifest=out)
    assert sorted(a.path for a in assets) == ["app.css", "js/app.js"]


def test_refuses_to_overwrite_a_file_that_is_not_a_bustware_manifest(tree, tmp_path):
    root = tree({"app.css": TEXT})
    foreign = tmp_path / "manifest.json"
    foreign.write_text('{"main.js": "main.abc123.js"}')
    with pytest.raises(mf.ManifestError, match="will not overwrite"):
        b.build(root, out=foreign)
    assert foreign.read_text() == '{"main.js": "main.abc123.js"}'


def test_any_number_of_threads_writes_the_same_bytes(tree, tmp_path, monkeypatch):
    # Every kind of job at once: rewritten stylesheets and scripts (made
    # once the index knows them), files compressed as they are read, equal
    # contents, a variant found beside its file, a file streamed because it
    # is big, incompressible bytes, and the stored copies of --keep.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(compressqueue, "WHOLE", 20_000)
    files = {f"css/s{i}.css": TEXT[: 300 + 97 * i] + b"a{background:url(../img/a.png)}\n"
             for i in range(12)}
    files.update({f"js/m{i}.js": TEXT[: 200 + 131 * i].replace(b".rule", b"var r")
                  for i in range(12)})
    files.update({f"svg/i{i}.svg": b"<svg>" + TEXT[: 150 + 61 * i] + b"</svg>"
                  for i in range(20)})
    files.update({"svg/same.svg": files["svg/i3.svg"], "big.txt": TEXT * 3,
                  "img/a.png": b"\x89PNG" + os.urandom(3000),
                  "pre.css": TEXT[:999], "pre.css.gz": gzip.compress(TEXT[:999], mtime=0)})
    root = tree(files)
    built = {}
    for workers in (1, 2, 7):
        out = tmp_path / f"out{workers}"
        report = b.build(root, out=out / "manifest.json", compress=["gzip", "br", "zstd"],
                         keep=1, workers=workers)
        assert report.files == len(files) - 1 and not report.warnings
        built[workers] = {str(p.relative_to(out)): p.read_bytes()
                          for p in out.rglob("*") if p.is_file()}
    assert built[1] == built[2] == built[7]
    data = json.loads(built[1]["manifest.json"])
    assert "zstd" in data["files"]["big.txt"]["variants"]
    assert data["files"]["pre.css"]["variants"]["gzip"]["file"] == "pre.css.gz"
    assert "variants" not in data["files"]["img/a.png"]


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_a_bad_number_of_workers_is_refused(tree, workers):
    root = tree({"a.css": "a"})
    with pytest.raises(ValueError, match=f"workers={workers!r} must be a number of threads"):
        b.build(root, workers=workers)
    assert not (root / ".bustware").exists()


def test_the_bar_reaches_its_total_when_the_last_coding_is_made(tree, monkeypatch):
    root = tree({"css/app.css": TEXT + b"a{background:url(../img/a.png)}\n",
                 "js/app.js": TEXT.replace(b".rule", b"var r"), "a.svg": TEXT[:3000],
                 "img/a.png": b"\x89PNG" + bytes(300), "b.css": TEXT, "b.css.gz": b"x"})
    events = []
    real = compress._compress_stream

    def compressing(*args, **kwargs):
        result = real(*args, **kwargs)
        events.append("compressed")
        return result

    monkeypatch.setattr(compress, "_compress_stream", compressing)

    class Bar(b.Progress):
        def advance(self, nbytes):
            events.append("advanced")
            super().advance(nbytes)

    bars = []
    b.build(root, compress=["gzip", "br"],
            progress=lambda total: bars.append(Bar(total, io.StringIO())) or bars[-1])
    assert bars[0].total == bars[0].done == 6
    # br and gzip of three files, br of the one with its .gz beside it
    assert events.count("compressed") == 7 and events[-1] == "advanced"


def test_a_file_changed_before_its_compression_fails_the_build(tree, monkeypatch):
    # A file too big to keep in memory is read again for its variants; if
    # its bytes changed since they were digested, the variants would be of
    # other bytes than the version says: the build stops, writing no manifest.
    monkeypatch.setattr(compressqueue, "HELD_BUDGET", 0)
    root = tree({"data.json": TEXT, "b.json": TEXT * 2})
    real = b._digest_file

    def then_edit(abs_path, *args):
        result = real(abs_path, *args)
        with open(abs_path, "ab") as f:
            f.write(b"edited")
        return result

    monkeypatch.setattr(b, "_digest_file", then_edit)
    with pytest.raises(mf.ManifestError, match="changed while the build read it"):
        b.build(root, compress=["gzip"])
    assert not (root / ".bustware/manifest.json").exists()


def test_large_files_are_streamed_and_still_compressed(tree, monkeypatch):
    monkeypatch.setattr(compressqueue, "WHOLE", 1000)
    root = tree({"big.css": TEXT})
    b.build(root, compress=["gzip"], keep=1)
    rec = load(root)["files"]["big.css"]
    assert rec["digest"] == hashlib.sha256(TEXT).hexdigest()
    blobs = objects(root)
    assert blobs[rec["digest"]] == TEXT
    assert gzip.decompress(blobs[rec["variants"]["gzip"]["object"]]) == TEXT


def test_progress_bar_draws_on_a_terminal_only(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    assert b.wants_progress(Tty(), quiet=False)
    assert not b.wants_progress(Tty(), quiet=True)
    assert not b.wants_progress(io.StringIO(), quiet=False)
    monkeypatch.setenv("CI", "true")
    assert not b.wants_progress(Tty(), quiet=False)
    out = Tty()
    bar = b.Progress(2, out, width=10)
    bar.advance(1500)
    bar.advance(500)
    bar.close()
    assert "[##########] 2/2 files, 2.0 KB" in out.getvalue()
    assert out.getvalue().endswith("\r\x1b[K")


def test_progress_bar_shows_files_per_second_and_time_left():
    now = [100.0]
    out = io.StringIO()
    bar = b.Progress(1000, out, width=4, clock=lambda: now[0])
    now[0] = 102.0
    bar.advance(2048)  # 1 file in 2 s: 0.5 files/s, 999 files left
    now[0] = 102.05
    for _ in range(398):
        bar.advance(1)  # under a tenth of a second since the last draw: not drawn
    now[0] = 110.0
    bar.advance(1)  # 400 files in 10 s: 40 files/s, 600 left: 15 s
    assert out.getvalue() == (
        "\rbustware: [----] 1/1000 files, 2.0 KB, 0.5 files/s, 33m18s left\x1b[K"
        "\rbustware: [#---] 400/1000 files, 2.4 KB, 40 files/s, 15s left\x1b[K")


def test_build_uses_the_progress_factory(tree):
    root = tree({"a.css": "a", "b.css": "b"})
    out = io.StringIO()
    bars = []

    def factory(total):
        bars.append(b.Progress(total, out))
        return bars[-1]

    b.build(root, progress=factory)
    assert bars[0].total == 2 and bars[0].done == 2


def test_bad_keep_is_refused(tree):
    root = tree({"a.css": "a"})
    with pytest.raises(ValueError, match="keep=-1"):
        b.build(root, keep=-1)


def test_rewritten_stylesheets_are_served_from_a_manifest_as_live(tree):
    from conftest import via_werkzeug

    from bustware import Bustware

    css = b".logo { background: url(../img/logo.png); }\n" * 40
    root = tree({"css/app.css": css, "img/logo.png": b"\x89PNG" + bytes(64)})
    live = Assets(root)
    report = b.build(root, compress=["gzip"])
    assert report.warnings == []
    rec = load(root)["files"]["css/app.css"]
    assert rec["size"] == len(css)  # the file on disk, for the staleness check
    assert rec["digest"] == live["css/app.css"].digest != hashlib.sha256(css).hexdigest()
    assert rec["integrity"] == live.integrity("css/app.css")
    app = Bustware(None, root, manifest=root / ".bustware/manifest.json")
    assert app.url("css/app.css") == live.url("css/app.css")
    r = via_werkzeug(app, app.url("css/app.css"))
    assert r.body == live["css/app.css"].body
    assert live.url("img/logo.png").encode() in r.body
    assert r.header("Cache-Control") == "max-age=31536000, immutable"
    gz = via_werkzeug(app, app.url("css/app.css"), headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.body) == live["css/app.css"].body
    assert app.assets.integrity("css/app.css") == rec["integrity"]


def test_broken_references_are_recorded_and_reported(tree):
    root = tree({"css/app.css": b"a { background: url(../img/gone.png); }\n"})
    report = b.build(root)
    assert report.warnings == [
        "css/app.css line 1: '../img/gone.png' names 'img/gone.png', which is not in the "
        "index; left as written"]
    assert load(root)["broken_references"] == [["css/app.css", 1, "../img/gone.png",
                                                "img/gone.png"]]
    problems = b.verify(root, root / ".bustware/manifest.json")
    assert [str(p) for p in problems] == [
        "css/app.css: line 1: '../img/gone.png' names 'img/gone.png', which is no file "
        "of the index"]


def test_dotfiles_build_never_indexes_its_own_store(tree, tmp_path):
    real = tree({".well-known/security.txt": "contact", "app.css": TEXT})
    link = tmp_path / "link"
    link.symlink_to(real)
    b.build(link, compress=["gzip"], include_dotfiles=True)
    b.build(link, compress=["gzip"], include_dotfiles=True)
    assert sorted(load(real)["files"]) == [".well-known/security.txt", "app.css"]
