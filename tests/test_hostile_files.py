"""Hostile files and build artefacts (issue 11, points 4, 5, 8, 9 and the
correctness points found on the way; issue 12, bundler manifests).

Each test builds the tree that triggered the defect and checks the
behaviour stated in the issue: bounded memory, linear work, what is served
or refused, and the exact bytes of what is served.
"""

from __future__ import annotations

import errno
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from conftest import via_werkzeug
from hypothesis import given, settings
from hypothesis import strategies as st

from bustware import Assets, Bustware, cssrefs, scriptrefs
from bustware import manifest as mf
from bustware import references as refs
from bustware.build import verify

# -- point 4: tokenizing a stylesheet holds a small multiple of its size ------


def _peak_indexing(root, name: str) -> tuple[int, Assets]:
    size = (root / name).stat().st_size
    tracemalloc.start()
    try:
        assets = Assets(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / size, assets


@pytest.mark.parametrize("tail", ["", "é", "→", "😀"], ids=["ascii", "latin", "bmp", "astral"])
@pytest.mark.parametrize("mib", [1, 4])
def test_indexing_a_big_stylesheet_peaks_within_3x_its_size(tmp_path, mib, tail):
    # Generated stylesheets are this shape; one non-ASCII character
    # anywhere used to make the whole decoded text 2 or 4 bytes a character.
    unit = b"a{color:red}"
    body = unit * ((mib << 20) // len(unit)) + f"b{{content:'{tail}'}}".encode()
    root = tmp_path / "static"
    root.mkdir()
    (root / "big.css").write_bytes(body)
    ratio, assets = _peak_indexing(root, "big.css")
    assert ratio <= 3, f"peak {ratio:.1f}x the stylesheet's size"
    assert assets["big.css"].digest == __import__("hashlib").sha256(body).hexdigest()


def test_references_after_long_runs_are_found_at_every_offset():
    # The tokenizer skips runs of plain tokens in bounded steps: a reference
    # just after a step boundary must still be one, at its exact offset.
    for k in range(1015, 1030):
        for filler in (b"a{b:c}", b"a ", b"-x "):
            data = filler * k + b'd{e:url(x.png) f:url("y.png")}'
            found = refs.find_references(data, "css")[0]
            assert [(r.url, data[r.start:r.end]) for r in found] == \
                [("x.png", b"x.png"), ("y.png", b"y.png")]


def _decoded_references(data: bytes) -> list[tuple[str, str, int, int]]:
    """What the tokenizer finds in the decoded text (the way every
    stylesheet was read before), offsets converted to bytes."""
    text = data.decode("utf-8", "surrogateescape")
    out = []
    for kind, _ctx, url, start, end in cssrefs.css_references(text):
        bstart = len(text[:start].encode("utf-8", "surrogateescape"))
        out.append((kind, url, bstart, bstart + len(text[start:end].encode(
            "utf-8", "surrogateescape"))))
    return sorted(out, key=lambda f: f[2])


_PIECES = ["url(", "url(\"", "'", '"', ")", "\\", "\\e9 ", "\\1F600", "\n", "\r\n", " ",
           "/*", "*/", "/*# sourceMappingURL=", "@import ", "image-set(", "a", "é", "à",
           "Å", "\u00a0", "\u0085", "\u2028", "😀", "x.png", "{", "}", ";", "\udcff"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_reading_utf8_bytes_as_latin1_finds_the_same_references(pieces):
    data = "".join(pieces).encode("utf-8", "surrogateescape")
    found = refs.find_references(data, "css")[0]
    assert [(r.kind, r.url, r.start, r.end) for r in found] == _decoded_references(data)


# -- point 5: a script's source map comment is found in linear time -----------


class _CountingStr(str):
    """A str that counts the characters its rfind() calls look through."""

    scanned = 0

    def rfind(self, sub, start=None, end=None):  # type: ignore[override]
        lo = 0 if start is None else start
        hi = len(self) if end is None else end
        _CountingStr.scanned += max(0, hi - lo)
        return str.rfind(self, sub, lo, hi)


def test_js_source_map_scan_does_not_rescan_the_code_for_every_blank_line():
    # Only the last lines are looked at: the work is the same whatever the
    # size of the code before them (it used to be lines x file size).
    scanned = []
    for mib in (1, 4):
        s = _CountingStr("x" * (mib << 20) + "\n//# sourceMappingURL=app.js.map" + "\n" * 20000)
        _CountingStr.scanned = 0
        assert [f[2] for f in scriptrefs.script_references(s)] == ["app.js.map"]
        scanned.append(_CountingStr.scanned)
    assert scanned[0] == scanned[1]
    assert scanned[0] <= 300 * 20000  # a bounded look back per blank line


def _naive_lines_backwards(s: str):
    end = len(s)
    while True:
        start = max(s.rfind(c, 0, end) for c in scriptrefs.JS_LINE_BREAKS) + 1
        yield start, end
        if start == 0:
            return
        end = start - 1
        if s[end] == "\n" and end > 0 and s[end - 1] == "\r":
            end -= 1


@pytest.mark.parametrize("s", ["", "a", "\n", "\r\n", "\r\r\n\n", "a\u2028b\u2029c",
                               "x" * 1000 + "\n" + "y" * 300, "\n" * 700, "\r" + "z" * 5000,
                               "a\rb\nc\r\nd\u2028"])
def test_js_lines_backwards_edge_cases(s):
    assert list(scriptrefs.lines_backwards(s)) == list(_naive_lines_backwards(s))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", " ", "\n", "\r", "\u2028", "\u2029", "/"]),
               max_size=2000))
def test_js_lines_backwards_matches_splitting_the_whole_file(s):
    assert list(scriptrefs.lines_backwards(s)) == list(_naive_lines_backwards(s))


@pytest.mark.timeout(10)
def test_big_script_with_blank_lines_after_its_source_map_indexes(tmp_path):
    # 8 MiB of code, the comment, then 60,000 blank lines: 8-22 s before.
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    code = b"var a = 1;\n" * ((8 << 20) // 11)
    (root / "js" / "app.js").write_bytes(code + b"//# sourceMappingURL=app.js.map" + b"\n" * 60000)
    (root / "js" / "app.js.map").write_bytes(b'{"version":3}')
    assets = Assets(root)
    served = assets["js/app.js"].served_bytes()
    assert served == code + b"//# sourceMappingURL=" + \
        assets.url("js/app.js.map").encode() + b"\n" * 60000


# -- points 8 and 9: a manifest serves only what a scan would -----------------


def _built(tmp_path, files: dict, **options):
    from conftest import make_tree

    from bustware.build import build

    root = make_tree(tmp_path / "static", files)
    build(root, **options)
    return root, str(root / ".bustware" / "manifest.json")


def test_manifest_with_dotfiles_is_refused_by_an_index_that_hides_them(tmp_path):
    root, manifest = _built(tmp_path, {".env": "SECRET=1\n", "css/app.css": "a{}",
                                       ".well-known/x.txt": "x"}, include_dotfiles=True)
    with pytest.raises(mf.ManifestError) as err:
        Bustware(None, root, manifest=manifest)
    message = str(err.value)
    assert "  .env: a dot name" in message and "  .well-known/x.txt: a dot name" in message
    assert "include_dotfiles=False" in message and "include_dotfiles=True" in message
    # The index that asks for dot names serves them from the same manifest.
    app = Bustware(None, root, manifest=manifest, include_dotfiles=True)
    r = via_werkzeug(app, app.url(".env"))
    assert (r.status, r.body) == (200, b"SECRET=1\n")
    assert r.header("Cache-Control") == "max-age=31536000, immutable"


def test_manifest_records_include_dotfiles_and_a_mismatch_is_refused(tmp_path):
    root, manifest = _built(tmp_path, {"css/app.css": "a{}"})
    assert json.loads(Path(manifest).read_text())["settings"]["include_dotfiles"] is False
    with pytest.raises(mf.ManifestError, match=r"built with include_dotfiles=False but this "
                                               r"index has include_dotfiles=True"):
        Assets(root, manifest=manifest, include_dotfiles=True)


def test_old_manifest_without_the_setting_loads_as_no_dotfiles(tmp_path):
    root, manifest = _built(tmp_path, {"css/app.css": "a{}", ".env": "S=1"},
                            include_dotfiles=True)
    data = json.loads(Path(manifest).read_text())
    del data["settings"]["include_dotfiles"]
    Path(manifest).write_bytes(mf.dumps(data))
    # Still holds a dot name: refused, though the manifest does not say.
    with pytest.raises(mf.ManifestError, match=r"\.env: a dot name"):
        Assets(root, manifest=manifest)
    del data["files"][".env"]
    Path(manifest).write_bytes(mf.dumps(data))
    assert [a.path for a in Assets(root, manifest=manifest)] == ["css/app.css"]


def test_mistyped_include_dotfiles_is_refused(tmp_path):
    root, manifest = _built(tmp_path, {"css/app.css": "a{}"})
    data = json.loads(Path(manifest).read_text())
    data["settings"]["include_dotfiles"] = "no"
    Path(manifest).write_bytes(mf.dumps(data))
    with pytest.raises(mf.ManifestError, match=r"settings\.include_dotfiles: not a bool"):
        Assets(root, manifest=manifest)


def _swap_for_symlink(path: Path, target: Path) -> None:
    """Replace ``path`` by a symlink to ``target``, which gets ``path``'s
    mtime: the size and mtime a staleness check compares stay the same."""
    st = path.stat()
    path.unlink() if not path.is_dir() else __import__("shutil").rmtree(path)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    path.symlink_to(target)


@pytest.mark.parametrize("check", ["error", "warn"])
def test_manifest_file_swapped_for_a_symlink_out_of_the_root_is_refused(tmp_path, check):
    secret = b"TOPSECRET-0123456789\n"
    root, manifest = _built(tmp_path, {"img/a.txt": b"x" * len(secret), "css/app.css": "a{}"})
    outside = tmp_path / "secret.txt"
    outside.write_bytes(secret)
    _swap_for_symlink(root / "img" / "a.txt", outside)
    with pytest.raises(mf.ManifestError) as err:
        Bustware(None, root, manifest=manifest, manifest_check=check)
    assert "  img/a.txt: reached through a symlink that leads out of the root, to " \
           f"{str(outside)!r}" in str(err.value)


def test_manifest_variant_swapped_for_a_symlink_out_of_the_root_is_refused(tmp_path):
    import gzip

    body = b"body{color:red}\n" * 20
    root, manifest = _built(tmp_path, {"css/app.css": body,
                                       "css/app.css.gz": gzip.compress(body, mtime=0)})
    rec = json.loads(Path(manifest).read_text())["files"]["css/app.css"]
    assert rec["variants"]["gzip"]["file"] == "css/app.css.gz"
    outside = tmp_path / "secret.gz"
    outside.write_bytes(b"S" * (root / "css" / "app.css.gz").stat().st_size)
    _swap_for_symlink(root / "css" / "app.css.gz", outside)
    with pytest.raises(mf.ManifestError, match=r"  css/app\.css: its gzip variant is reached "
                                               r"through a symlink that leads out of the root"):
        Assets(root, manifest=manifest, manifest_check="warn")


def test_manifest_directory_swapped_for_a_symlink_out_of_the_root_is_refused(tmp_path):
    root, manifest = _built(tmp_path, {"shared/x.css": "a{}", "css/app.css": "b{}"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.css").write_bytes(b"z{}")
    os.utime(elsewhere / "x.css", ns=(0, (root / "shared" / "x.css").stat().st_mtime_ns))
    _swap_for_symlink(root / "shared", elsewhere)
    with pytest.raises(mf.ManifestError, match=r"  shared/x\.css: reached through a symlink "
                                               r"that leads out of the root"):
        Assets(root, manifest=manifest)
    # bustware verify says so too.
    problems = verify(root, manifest)
    assert [(p.path, p.unsafe) for p in problems] == [("shared/x.css", True)]


def test_manifest_symlinks_inside_the_root_still_serve(tmp_path):
    root = tmp_path / "static"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.txt").write_bytes(b"A\n")
    (root / "alias").symlink_to(root / "img")
    (root / "b.txt").symlink_to(root / "img" / "a.txt")
    from bustware.build import build

    build(root)
    app = Bustware(None, root, manifest=str(root / ".bustware" / "manifest.json"))
    for path in ("img/a.txt", "alias/a.txt", "b.txt"):
        r = via_werkzeug(app, app.url(path))
        assert (r.status, r.body) == (200, b"A\n")


# -- bundler manifests: base_url, and references to the files they hashed -----

IMMUTABLE = "max-age=31536000, immutable"
CDN = "https://cdn.example.com"


def _vite_tree(tmp_path, css: bytes):
    from conftest import make_tree

    manifest = {
        "src/main.ts": {"file": "assets/main-4889e940.js", "src": "src/main.ts",
                        "isEntry": True, "css": ["assets/main-b82dbe22.css"]},
        "src/logo.svg": {"file": "assets/logo-Dc7pX0_a.svg", "src": "src/logo.svg"},
    }
    return make_tree(tmp_path / "static", {
        "assets/main-4889e940.js": b"console.log('main');\n",
        "assets/main-b82dbe22.css": css,
        "assets/logo-Dc7pX0_a.svg": b"<svg/>",
        "robots.txt": b"User-agent: *\n",
        ".vite/manifest.json": json.dumps(manifest),
    })


def test_bundler_files_get_the_base_url_like_every_other_file(tmp_path):
    root = _vite_tree(tmp_path, b"body{margin:0}\n")
    app = Bustware(None, root, base_url=CDN, bundler_manifest=root / ".vite/manifest.json")
    assert app.url("src/main.ts") == f"{CDN}/static/assets/main-4889e940.js"
    assert app.url("assets/logo-Dc7pX0_a.svg") == f"{CDN}/static/assets/logo-Dc7pX0_a.svg"
    assert app.url("robots.txt").startswith(f"{CDN}/static/robots.")
    # The CDN pulls the path from this process: served, immutable.
    r = via_werkzeug(app, "/static/assets/main-4889e940.js")
    assert (r.status, r.body) == (200, b"console.log('main');\n")
    assert r.header("Cache-Control") == IMMUTABLE


def test_django_hashed_stylesheet_names_the_hashed_image_by_its_own_url(tmp_path):
    # Issue 12's repro: both names in staticfiles.json; the stylesheet used
    # to name /static/img/a.0123456789ab.796120837694.png, answered no-store.
    from conftest import make_tree

    root = make_tree(tmp_path / "static", {
        "css/app.css": b'h1{background:url("../img/a.png")}\n',
        "css/app.abcdefabcdef.css": b'h1{background:url("../img/a.0123456789ab.png")}\n',
        "img/a.png": b"PNG-a",
        "img/a.0123456789ab.png": b"PNG-a",
        "staticfiles.json": json.dumps({"version": "1.1", "hash": "0", "paths": {
            "css/app.css": "css/app.abcdefabcdef.css", "img/a.png": "img/a.0123456789ab.png"}}),
    })
    app = Bustware(None, root, bundler_manifest=root / "staticfiles.json")
    assert app.url("img/a.png") == "/static/img/a.0123456789ab.png"
    css_url = app.url("css/app.css")
    assert css_url == "/static/css/app.abcdefabcdef.css"
    r = via_werkzeug(app, css_url)
    assert r.status == 200 and r.header("Cache-Control") == IMMUTABLE
    assert r.body == b'h1{background:url("/static/img/a.0123456789ab.png")}\n'
    img = via_werkzeug(app, "/static/img/a.0123456789ab.png")
    assert (img.status, img.body, img.header("Cache-Control")) == (200, b"PNG-a", IMMUTABLE)


@pytest.mark.parametrize("base_url", [None, CDN])
def test_vite_stylesheet_names_the_hashed_asset_by_its_own_url(tmp_path, base_url):
    root = _vite_tree(tmp_path, b".logo{background:url(logo-Dc7pX0_a.svg)}\n")
    app = Bustware(None, root, base_url=base_url,
                   bundler_manifest=root / ".vite/manifest.json")
    logo = f"{base_url or ''}/static/assets/logo-Dc7pX0_a.svg"
    assert app.url("src/logo.svg") == logo
    r = via_werkzeug(app, "/static/assets/main-b82dbe22.css")
    assert r.status == 200 and r.header("Cache-Control") == IMMUTABLE
    assert r.body == f".logo{{background:url({logo})}}\n".encode()
    svg = via_werkzeug(app, "/static/assets/logo-Dc7pX0_a.svg")
    assert (svg.status, svg.body, svg.header("Cache-Control")) == (200, b"<svg/>", IMMUTABLE)


# -- a directory deeper than the system's path limit --------------------------


def test_directory_beyond_the_path_limit_is_a_warning_naming_it(tmp_path, caplog):
    import logging
    import shutil

    root = tmp_path / "static"
    root.mkdir()
    (root / "top.txt").write_bytes(b"top")
    names = [f"{i:02d}" + "d" * 250 for i in range(17)]  # > 4096 bytes in all
    fd = os.open(root, os.O_RDONLY)
    try:
        for name in names:  # relative to a directory fd: no long path needed
            os.mkdir(name, dir_fd=fd)
            deeper = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        f = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.close(f)
    finally:
        os.close(fd)
    try:
        with caplog.at_level(logging.WARNING, logger="bustware"):
            assets = Assets(root)
        assert [a.path for a in assets] == ["top.txt"]
        paths = {os.path.join(root, *names[:k]) for k in range(1, len(names) + 1)}
        warned = [r for r in caplog.records if "move it nearer the root" in r.message]
        assert len(warned) == 1 and warned[0].args[0] in paths
        assert warned[0].message == (f"bustware: skipping {warned[0].args[0]!r}: "
                                     f"{os.strerror(errno.ENAMETOOLONG)}; move it nearer "
                                     "the root")
        # Once per path: development mode walks the tree every second.
        caplog.clear()
        assets.refresh()
        assert not [r for r in caplog.records if "move it nearer the root" in r.message]
    finally:
        shutil.rmtree(root)


def _django_tree(tmp_path):
    from conftest import make_tree

    return make_tree(tmp_path / "static", {
        "css/app.abcdefabcdef.css": b'h1{background:url("../img/a.0123456789ab.png")}\n',
        "img/a.0123456789ab.png": b"PNG-a",
        "staticfiles.json": json.dumps({"version": "1.1", "hash": "0", "paths": {
            "css/app.css": "css/app.abcdefabcdef.css", "img/a.png": "img/a.0123456789ab.png"}}),
    })


def test_build_with_a_bundler_manifest_names_hashed_files_by_their_own_urls(tmp_path):
    from bustware.build import build

    root = _django_tree(tmp_path)
    build(root, bundler_manifest=root / "staticfiles.json")
    manifest = root / ".bustware" / "manifest.json"
    app = Bustware(None, root, manifest=manifest, bundler_manifest=root / "staticfiles.json")
    r = via_werkzeug(app, app.url("css/app.css"))
    assert app.url("css/app.css") == "/static/css/app.abcdefabcdef.css"
    assert r.status == 200 and r.header("Cache-Control") == IMMUTABLE
    assert r.body == b'h1{background:url("/static/img/a.0123456789ab.png")}\n'
    # The manifest says it was built with one: an index without it is refused.
    with pytest.raises(mf.ManifestError, match=r"built with bundler_manifest=True but this "
                                               r"index has bundler_manifest=False"):
        Assets(root, manifest=manifest)


def test_cli_build_takes_bundler_manifests(tmp_path):
    from bustware.cli import main

    root = _django_tree(tmp_path)
    assert main(["build", str(root), "--quiet", "--bundler-manifest",
                 str(root / "staticfiles.json")]) == 0
    data = json.loads((root / ".bustware" / "manifest.json").read_text())
    assert data["settings"]["bundler_manifest"] is True
    assert data["files"]["img/a.0123456789ab.png"]["version"] == "0123456789ab"
