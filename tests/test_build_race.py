"""Builds and prunes racing into one store: the manifest is written by
compare-and-swap, and the one that comes second builds on the first one's
manifest, so no generation is lost and no object a kept generation names
is deleted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import make_tree

from bustware import Assets, publish
from bustware import build as b
from bustware import manifest as mf
from bustware.localstore import LocalStore
from bustware.store import ManifestConflict


def release(tmp_path: Path, name: str, css: bytes) -> Path:
    return make_tree(tmp_path / name, {"css/app.css": css, "img/logo.png": b"\x89PNG " + css,
                                       "js/same.js": b"console.log(1)\n"})


class Racing:
    """A store that, just before its first manifest write, lets ``other``
    run to its end (another build writing the same manifest), so that the
    write conflicts exactly once."""

    def __init__(self, store: LocalStore, other=None) -> None:
        self.store = store
        self.other = other
        self.writes = 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def write_manifest(self, payload: bytes, expected: str | None) -> str:
        self.writes += 1
        if self.writes == 1 and self.other is not None:
            self.other()
        return self.store.write_manifest(payload, expected)


def stored_versions(manifest: dict) -> dict[int, str]:
    """generation -> the version of css/app.css it serves."""
    out = {manifest["generation"]: manifest["files"]["css/app.css"]["version"]}
    for gen in manifest["previous"]:
        if "css/app.css" in gen["files"]:
            out[gen["generation"]] = gen["files"]["css/app.css"]["version"]
    return out


def test_a_build_that_loses_the_race_builds_on_the_winner(tmp_path):
    out = tmp_path / "shared" / "manifest.json"
    v1 = release(tmp_path, "v1", b"a { color: red }\n")
    v2 = release(tmp_path, "v2", b"a { color: green }\n")
    v3 = release(tmp_path, "v3", b"a { color: blue }\n")
    b.build(v1, out, keep=2)
    versions = {}

    def build_v2():
        versions[2] = b.build(v2, out, keep=2).generation

    racing = Racing(LocalStore(out), build_v2)
    report = b.build(v3, out, keep=2, store=racing)
    assert racing.writes == 2  # the first write conflicted, the second won
    assert versions == {2: 2} and report.generation == 3 and report.new_generation
    assert report.kept_generations == 2

    data = mf.read(out)
    assert data["generation"] == 3
    assert [g["generation"] for g in data["previous"]] == [2, 1]
    v = {n: Assets(r).url("css/app.css") for n, r in ((1, v1), (2, v2), (3, v3))}
    assert len(set(v.values())) == 3
    assert stored_versions(data) == {n: url.split(".")[-2] for n, url in v.items()}
    # Everything the manifest names is in the store, and serves its bytes.
    assert b.verify(v3, out) == []
    app = Assets(v3, manifest=out)
    assert app.url("css/app.css") == v[3]


def test_two_builds_at_once_keep_both_generations(tmp_path):
    out = tmp_path / "shared" / "manifest.json"
    base = release(tmp_path, "v1", b"a { color: red }\n")
    b.build(base, out, keep=3)
    roots = [release(tmp_path, f"v{i}", b"a { color: #%03d }\n" % i) for i in (2, 3)]
    start = threading.Barrier(2)
    reports, errors = [], []

    def run(root):
        try:
            start.wait(10)
            reports.append(b.build(root, out, keep=3))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in roots]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(reports) == 2
    assert sorted(r.generation for r in reports) == [2, 3]
    data = mf.read(out)
    assert data["generation"] == 3 and [g["generation"] for g in data["previous"]] == [2, 1]
    last = roots[0] if data["files"]["css/app.css"]["version"] == \
        Assets(roots[0]).url("css/app.css").split(".")[-2] else roots[1]
    assert b.verify(last, out) == []


def test_keep_bounds_the_generations_the_race_keeps(tmp_path):
    out = tmp_path / "shared" / "manifest.json"
    v1 = release(tmp_path, "v1", b"a { color: red }\n")
    v2 = release(tmp_path, "v2", b"a { color: green }\n")
    v3 = release(tmp_path, "v3", b"a { color: blue }\n")
    b.build(v1, out, keep=1)
    b.build(v3, out, keep=1,
            store=Racing(LocalStore(out), lambda: b.build(v2, out, keep=1)))
    data = mf.read(out)
    assert data["generation"] == 3 and [g["generation"] for g in data["previous"]] == [2]
    # Generation 1's own bytes went with it; 2's and 3's are there.
    assert b.verify(v3, out) == []


def test_a_conflict_on_every_write_fails_clearly_after_a_bounded_number(tmp_path, capsys):
    out = tmp_path / "m.json"
    root = release(tmp_path, "v1", b"a { color: red }\n")
    b.build(root, out)
    (root / "css/app.css").write_bytes(b"a { color: black }\n")
    before = out.read_bytes()

    class Busy(Racing):
        def write_manifest(self, payload, expected):
            self.writes += 1
            raise ManifestConflict("bustware: someone else wrote it")

    busy = Busy(LocalStore(out))
    with pytest.raises(ManifestConflict, match=r"changed 10 times while this command wrote "
                                               r"it: .* run this again once they finish"):
        b.build(root, out, store=busy)
    assert busy.writes == publish.ATTEMPTS
    assert out.read_bytes() == before


def test_a_prune_that_loses_the_race_keeps_the_new_generation(tmp_path):
    out = tmp_path / "shared" / "manifest.json"
    roots = [release(tmp_path, f"v{i}", b"a { color: #%03d }\n" % i) for i in range(1, 5)]
    for root in roots[:3]:
        b.build(root, out, keep=3)
    assert [g["generation"] for g in mf.read(out)["previous"]] == [2, 1]
    racing = Racing(LocalStore(out), lambda: b.build(roots[3], out, keep=3))
    report = b.prune(out, keep=1, store=racing)
    assert racing.writes == 2
    # Pruned against the manifest the build wrote: generation 4 current,
    # 3 kept, 2 and 1 dropped with the bytes only they used.
    data = mf.read(out)
    assert data["generation"] == 4 and [g["generation"] for g in data["previous"]] == [3]
    assert report.dropped == [2, 1] and report.kept == [3]
    assert report.objects_removed > 0
    assert b.verify(roots[3], out) == []


def test_an_unchanged_rebuild_does_not_write_the_manifest_again(tmp_path):
    out = tmp_path / "m.json"
    root = release(tmp_path, "v1", b"a { color: red }\n")
    b.build(root, out, keep=1)
    store = Racing(LocalStore(out))
    b.build(root, out, store=store)
    assert store.writes == 0


def test_a_large_file_changed_before_it_is_stored_fails_the_build(tmp_path, monkeypatch):
    # A file too big to hold is digested, then streamed into the store,
    # which checks it against that digest: changed in between, the build
    # stops with the file's name and writes no manifest.
    from bustware import compressqueue

    monkeypatch.setattr(compressqueue, "WHOLE", 100)
    root = release(tmp_path, "v1", b"a { color: red }\n" * 20)
    out = tmp_path / "m.json"
    real = LocalStore.put_object

    css = root / "css/app.css"

    def edit_first(self, digest, source, size, **kwargs):
        if not isinstance(source, bytes) and \
                os.fstat(source.fileno()).st_ino == css.stat().st_ino:
            with open(css, "ab") as f:
                f.write(b"/* edited */")
        return real(self, digest, source, size, **kwargs)

    monkeypatch.setattr(LocalStore, "put_object", edit_first)
    with pytest.raises(mf.ManifestError, match=r"app\.css' changed while the build read it"):
        b.build(root, out, keep=1)
    assert not out.exists()
