"""References rewritten in the index: served bytes, transitive versions,
cycles, development mode, memory and precompressed variants."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os

import brotli
import pytest

from bustware import Assets, Bustware


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def v(data: bytes) -> str:
    return sha(data)[:12]


PNG = b"\x89PNG\r\n\x1a\n-fake-image-"
WOFF = b"wOFF-fake-font-"


def test_served_css_is_the_original_with_each_reference_replaced(tree, fetch):
    css = (b'@import "base.css";\n'
           b"/* background: url(../img/old.png); */\n"
           b"a { background: url(../img/a.png) no-repeat; content: \"url(x.png)\"; }\n"
           b"@font-face { src: url('../fonts/f.woff?v=1') format('woff'); }\n"
           b"b { background: url(data:image/png;base64,AAAA), url(https://e.com/x.png); }\n"
           b"/*# sourceMappingURL=app.css.map */\n")
    base = b"body { background: url(/static/img/a.png); }\n"
    cssmap = b'{"version":3}'
    root = tree({"css/app.css": css, "css/base.css": base, "css/app.css.map": cssmap,
                 "img/a.png": PNG, "fonts/f.woff": WOFF})
    png_url = f"/static/img/a.{v(PNG)}.png"
    base_served = base.replace(b"/static/img/a.png", png_url.encode())
    served = (css.replace(b'"base.css"', f'"/static/css/base.{v(base_served)}.css"'.encode())
              .replace(b"url(../img/a.png)", f"url({png_url})".encode())
              .replace(b"'../fonts/f.woff?v=1'", f"'/static/fonts/f.{v(WOFF)}.woff?v=1'".encode())
              .replace(b"=app.css.map", f"=/static/css/app.css.{v(cssmap)}.map".encode()))
    assert served.count(b"/static/") == 4  # every reference, and nothing else
    app = Bustware(None, root)
    assert app.url("css/base.css") == f"/static/css/base.{v(base_served)}.css"
    assert app.url("css/app.css") == f"/static/css/app.{v(served)}.css"
    r = fetch(app, app.url("css/app.css"))
    assert r.status == 200
    assert r.body == served
    assert r.header("ETag") == f'"{sha(served)[:24]}"'
    assert r.header("Content-Length") == str(len(served))
    assert r.header("Cache-Control") == "max-age=31536000, immutable"
    # The plain URL serves the same rewritten bytes (revalidated).
    r = fetch(app, "/static/css/app.css")
    assert r.body == served and r.header("Cache-Control") == "no-cache"
    # HEAD and ranges are of the served bytes too.
    r = fetch(app, app.url("css/app.css"), headers={"Range": "bytes=0-19"})
    assert r.status == 206 and r.body == served[:20]
    r = fetch(app, app.url("css/app.css"), method="HEAD")
    assert r.body == b"" and r.header("Content-Length") == str(len(served))


def test_transitive_versions(tree, tmp_path):
    files = {
        "fonts/f.woff": WOFF,
        "css/fonts.css": b"@font-face { src: url(../fonts/f.woff); }\n",
        "css/site.css": b'@import "fonts.css";\nbody { margin: 0 }\n',
        "css/other.css": b"p { color: red }\n",
        "img/a.png": PNG,
    }
    root = tree(files)
    before = {a.path: a.url for a in Assets(root)}
    (root / "fonts/f.woff").write_bytes(WOFF + b"v2")
    after = {a.path: a.url for a in Assets(root)}
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {"fonts/f.woff", "css/fonts.css", "css/site.css"}
    # And the served bytes say so, down the chain.
    assets = Assets(root)
    fonts = assets["css/fonts.css"].body
    assert fonts == f"@font-face {{ src: url(/static/fonts/f.{v(WOFF + b'v2')}.woff); }}\n".encode()
    assert assets["css/site.css"].body == (
        f'@import "/static/css/fonts.{v(fonts)}.css";\nbody {{ margin: 0 }}\n'.encode())


def test_deep_chain_needs_no_fixed_number_of_passes(tree):
    n = 60
    files = {f"c{i}.css": f'@import "c{i + 1}.css";\n'.encode() for i in range(n)}
    files[f"c{n}.css"] = b"a{background:url(a.png)}"
    files["a.png"] = PNG
    root = tree(files)
    first = Assets(root).url("c0.css")
    (root / "a.png").write_bytes(PNG + b"2")
    assets = Assets(root)
    assert assets.url("c0.css") != first
    # Each file's version is the digest of its served bytes, which name the next.
    for i in range(n):
        body = assets[f"c{i}.css"].body
        assert body == f'@import "{assets.url(f"c{i + 1}.css")}";\n'.encode()
        assert assets.url(f"c{i}.css") == f"/static/c{i}.{v(body)}.css"


def test_cycle_gets_one_stable_version(tmp_path):
    from conftest import make_tree

    files = {"css/a.css": b'@import "b.css";\na { background: url(../img/x.png) }\n',
             "css/b.css": b'@import url(a.css);\nb { color: red }\n',
             "css/c.css": b'@import "a.css";\n',
             "img/x.png": PNG}
    one = Assets(make_tree(tmp_path / "one", files))
    two = Assets(make_tree(tmp_path / "two", files))
    a, b = one["css/a.css"], one["css/b.css"]
    # Both members share one version, the same for the same files anywhere.
    assert a.version == b.version
    assert (a.url, b.url) == (two["css/a.css"].url, two["css/b.css"].url)
    assert one.url("css/a.css") == f"/static/css/a.{a.version}.css"
    # Each names the other, with that version, and everything else as usual.
    assert a.body == (f'@import "{b.url}";\n'
                      f"a {{ background: url(/static/img/x.{v(PNG)}.png) }}\n").encode()
    assert b.body == f"@import url({a.url});\nb {{ color: red }}\n".encode()
    # The ETag is still the digest of each file's own served bytes.
    assert (a.digest, b.digest) == (sha(a.body), sha(b.body))
    # Outside the cycle, a file is versioned from its served bytes.
    c = one["css/c.css"]
    assert c.body == f'@import "{a.url}";\n'.encode() and c.version == v(c.body)
    # A change outside the cycle that it references: new version for both.
    (tmp_path / "one/img/x.png").write_bytes(PNG + b"2")
    three = Assets(tmp_path / "one")
    assert three["css/a.css"].version == three["css/b.css"].version != a.version
    assert three["css/c.css"].url != c.url
    # A change to one member: new version for both.
    (tmp_path / "two/css/b.css").write_bytes(b'@import url(a.css);\nb { color: blue }\n')
    four = Assets(tmp_path / "two")
    assert four["css/a.css"].version == four["css/b.css"].version != a.version


def test_cycle_is_served_with_immutable_urls(tree, fetch):
    root = tree({"a.css": b'@import "b.css";', "b.css": b'@import "a.css";',
                 "self.css": b'@import "self.css"; a{}'})
    app = Bustware(None, root)
    for path in ("a.css", "b.css", "self.css"):
        r = fetch(app, app.url(path))
        assert r.status == 200
        assert r.body == app.assets[path].body
        assert r.header("Cache-Control") == "max-age=31536000, immutable"
    assert app.assets["self.css"].body == f'@import "{app.url("self.css")}"; a{{}}'.encode()


def test_missing_reference_is_a_warning_with_file_and_line(tree, caplog, fetch):
    css = b"a { color: red }\n\nb { background: url(../img/missing.png) }\n"
    root = tree({"css/app.css": css})
    with caplog.at_level(logging.WARNING, logger="bustware"):
        app = Bustware(None, root)
    messages = [r.getMessage() for r in caplog.records]
    assert any("css/app.css line 3" in m and "../img/missing.png" in m for m in messages)
    r = fetch(app, app.url("css/app.css"))
    assert r.status == 200 and r.body == css  # left as written
    assert app.assets.broken_references() == [
        ("css/app.css", 3, "../img/missing.png", "img/missing.png")]


def test_missing_reference_warned_once_per_content(tree, caplog):
    root = tree({"app.css": b"a{b:url(gone.png)} c{d:url(x.png)}", "x.png": PNG})
    with caplog.at_level(logging.WARNING, logger="bustware"):
        assets = Assets(root, autorefresh=True, refresh_interval=0)
        (root / "x.png").write_bytes(PNG + b"2")  # forces a rewrite of app.css
        assets.check()
    assert sum("gone.png" in r.getMessage() for r in caplog.records) == 1
    assert assets["app.css"].links["x.png"] == assets.url("x.png")


def test_autorefresh_picks_up_changes_of_referenced_files(tree, fetch):
    root = tree({"css/app.css": b"a { background: url(../img/a.png) }\n"
                                b"b { background: url(../img/later.png) }\n",
                 "img/a.png": PNG, "other.txt": b"x"})
    app = Bustware(None, root, autorefresh=True, refresh_interval=0)
    old_url = app.url("css/app.css")
    old_asset = app.assets["css/app.css"]
    generation = app.assets.generation
    # Nothing changed: the very same entries, no new generation.
    app.assets.check()
    assert app.assets["css/app.css"] is old_asset and app.assets.generation == generation
    # The image changes: the stylesheet gets new bytes and a new URL.
    (root / "img/a.png").write_bytes(PNG + b"2")
    new_url = app.url("css/app.css")
    assert new_url != old_url
    body = app.assets["css/app.css"].body
    assert f"url(/static/img/a.{v(PNG + b'2')}.png)".encode() in body
    assert new_url == f"/static/css/app.{v(body)}.css"
    r = fetch(app, new_url)
    assert r.status == 200 and r.body == body
    r = fetch(app, old_url)  # an old version: current bytes, not stored
    assert r.body == body and r.header("Cache-Control") == "no-store"
    # A missing file appears: the reference gets rewritten.
    (root / "img/later.png").write_bytes(b"later")
    app.url("css/app.css")
    assert f"url(/static/img/later.{v(b'later')}.png)".encode() in app.assets["css/app.css"].body
    # And goes away again: left as written.
    os.remove(root / "img/later.png")
    app.url("css/app.css")
    assert b"url(../img/later.png)" in app.assets["css/app.css"].body


def test_autorefresh_edit_of_the_stylesheet_itself(tree):
    root = tree({"app.css": b"a{b:url(x.png)}", "x.png": PNG, "y.png": b"y"})
    assets = Assets(root, autorefresh=True, refresh_interval=0)
    (root / "app.css").write_bytes(b"a{b:url(y.png)}")
    os.utime(root / "app.css", ns=(1, 1))  # a different mtime even on coarse clocks
    url = assets.url("app.css")
    body = f"a{{b:url(/static/y.{v(b'y')}.png)}}".encode()
    assert assets["app.css"].body == body and url == f"/static/app.{v(body)}.css"
    assert assets["app.css"].links == {"y.png": assets.url("y.png")}


def test_rewritten_files_over_the_threshold_are_kept_in_a_private_file(tree, fetch):
    big_png = b"\x89PNG" + b"\0" * 5000
    css = b"a{background:url(big.png)}" + b" " * 5000
    root = tree({"app.css": css, "big.png": big_png, "plain.css": b"p{}" + b" " * 5000})
    app = Bustware(None, root, memory_threshold=100)
    assert app.assets["big.png"].body is None  # streamed, as the policy says
    assert app.assets["plain.css"].body is None  # no references: same policy
    served = css.replace(b"big.png", f"/static/big.{v(big_png)}.png".encode())
    rewritten = app.assets["app.css"]
    assert rewritten.body is None and rewritten.served_path is not None  # the same policy
    assert rewritten.served_bytes() == served
    assert (root / "app.css").read_bytes() == css  # the user's file is untouched
    r = fetch(app, app.url("app.css"))
    assert r.body == served and r.header("Content-Length") == str(len(served))
    assert app.assets.memory_used == 0


def test_large_script_source_map(tree, fetch):
    code = b"var x = 1;\n" * 20000  # > 64 KiB and over the memory threshold
    js = code + b"//# sourceMappingURL=app.js.map\n"
    cssmap = b'{"version":3,"sources":["../src/app.ts"]}'
    root = tree({"js/app.js": js, "js/app.js.map": cssmap, "js/nomap.js": code})
    app = Bustware(None, root, memory_threshold=1024)
    served = code + f"//# sourceMappingURL=/static/js/app.js.{v(cssmap)}.map\n".encode()
    assert app.assets["js/app.js"].served_bytes() == served
    assert app.url("js/app.js") == f"/static/js/app.{v(served)}.js"
    assert app.assets["js/nomap.js"].body is None
    r = fetch(app, app.url("js/app.js"))
    assert r.body == served


def test_stale_precompressed_variants_are_replaced(tree, fetch):
    css = b"a { background: url(a.png) }\n" + b"/* padding padding padding */\n" * 50
    plain = b"p { color: red }\n" * 50
    root = tree({"app.css": css, "app.css.gz": gzip.compress(css),
                 "app.css.br": brotli.compress(css), "a.png": PNG,
                 "plain.css": plain, "plain.css.gz": gzip.compress(plain, mtime=0)})
    app = Bustware(None, root)
    served = app.assets["app.css"].body
    assert served != css
    r = fetch(app, app.url("app.css"), headers={"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == "gzip"
    assert gzip.decompress(r.body) == served
    assert r.header("ETag") != f'"{sha(served)[:24]}"'  # a coding has its own tag
    r = fetch(app, app.url("app.css"), headers={"Accept-Encoding": "br"})
    assert r.header("Content-Encoding") == "br" and brotli.decompress(r.body) == served
    # A file without references keeps the variant found on disk.
    r = fetch(app, app.url("plain.css"), headers={"Accept-Encoding": "gzip"})
    assert r.body == (root / "plain.css.gz").read_bytes()


def test_rewrite_references_off(tree, fetch):
    css = b"a{b:url(a.png)}"
    root = tree({"app.css": css, "a.png": PNG})
    app = Bustware(None, root, rewrite_references=False)
    assert app.url("app.css") == f"/static/app.{v(css)}.css"
    assert fetch(app, app.url("app.css")).body == css


def test_other_styles(tree):
    css = b"a{b:url(a.png?x=1#f)} c{d:url(f.eot?#iefix)}"
    root = tree({"app.css": css, "a.png": PNG, "f.eot": b"eot"})
    q = Assets(root, style="query")
    assert q["app.css"].body == (f"a{{b:url(/static/a.png?v={v(PNG)}&x=1#f)}} "
                                 f"c{{d:url(/static/f.eot?v={v(b'eot')}#iefix)}}").encode()
    assert q.url("app.css") == f"/static/app.css?v={v(q['app.css'].body)}"
    s = Assets(root, style="segment")
    assert s["app.css"].body == (f"a{{b:url(/static/{v(PNG)}/a.png?x=1#f)}} "
                                 f"c{{d:url(/static/{v(b'eot')}/f.eot?#iefix)}}").encode()


def test_query_style_rewritten_url_is_served_current(tree, fetch):
    root = tree({"app.css": b"a{b:url(a.png?x=1)}", "a.png": PNG})
    app = Bustware(None, root, style="query")
    url = f"/static/a.png?v={v(PNG)}&x=1"
    assert url.encode() in app.assets["app.css"].body
    path, _, query = url.partition("?")
    r = fetch(app, path, query=query)
    assert r.body == PNG and r.header("Cache-Control") == "max-age=31536000, immutable"


def test_unbusted_targets_get_their_plain_url(tree):
    root = tree({"css/app.css": b"a{b:url(../img/a.png)}", "img/a.png": PNG})
    assets = Assets(root, extensions=[".css"])
    body = b"a{b:url(/static/img/a.png)}"
    assert assets["css/app.css"].body == body
    assert assets.url("css/app.css") == f"/static/css/app.{v(body)}.css"


def test_mtime_versions_cover_references(tree):
    root = tree({"app.css": b"a{b:url(a.png)}", "a.png": PNG})
    os.utime(root / "app.css", (1_000_000_000, 1_000_000_000))
    os.utime(root / "a.png", (1_500_000_000, 1_500_000_000))
    assets = Assets(root, version="mtime")
    assert assets.url("a.png") == "/static/a.1500000000.png"
    assert assets.url("app.css") == "/static/app.1500000000.css"
    assert assets["app.css"].mtime == 1_500_000_000  # Last-Modified too


def test_release_version_is_unchanged_by_references(tree):
    root = tree({"app.css": b"a{b:url(a.png)}", "a.png": PNG})
    assets = Assets(root, release="r42", style="segment")
    assert assets.url("app.css") == "/static/r42/app.css"
    assert assets["app.css"].body == b"a{b:url(/static/r42/a.png)}"


@pytest.mark.parametrize("body", [b"\xff\xfe\x00garbage url( \x00", b"", b"a{b:url(%zz%ff)}",
                                  "a{b:url(x.png)}".encode("utf-16")])
def test_bad_stylesheets_never_break_the_index(tree, fetch, body):
    root = tree({"bad.css": body, "x.png": PNG})
    app = Bustware(None, root)
    assert fetch(app, app.url("bad.css")).body == body
