"""The Store contract (bustware.store), for every implementation: each
factory in STORE_FACTORIES makes a fresh, empty store; every test here runs
against each of them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bustware.layout import OBJECT_MTIME_NS
from bustware.localstore import LocalStore
from bustware.store import (
    DigestMismatch,
    ManifestConflict,
    NoSuchObject,
    Store,
    StoredManifest,
)


def local_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    tmp_path = request.getfixturevalue("tmp_path")
    yield LocalStore(tmp_path / "store" / ".bustware" / "manifest.json")


#: (id, factory): a factory is a generator function given pytest's
#: ``request`` (for the fixtures it needs: ``request.getfixturevalue``); it
#: yields a fresh, empty store and cleans up after the yield. Another
#: implementation adds itself here.
def s3_store(prefix: str) -> Callable[[pytest.FixtureRequest], Iterator[Store]]:
    """A fresh bucket on the session's moto server, under ``prefix``."""

    def factory(request: pytest.FixtureRequest) -> Iterator[Store]:
        from bustware.s3store import S3Store

        bucket = request.getfixturevalue("s3_bucket")
        yield S3Store(f"s3://{bucket}/{prefix}")

    return factory


STORE_FACTORIES: list[tuple[str, Callable[[pytest.FixtureRequest], Iterator[Store]]]] = [
    ("local", local_store),
    ("s3-prefix", s3_store("site/static")),
    ("s3-bucket-root", s3_store("")),
]


@pytest.fixture(params=[f for _, f in STORE_FACTORIES], ids=[i for i, _ in STORE_FACTORIES])
def store(request) -> Iterator[Store]:
    factory = request.param(request)
    yield next(factory)
    with pytest.raises(StopIteration):
        next(factory)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


A = b"body { color: red }\n" * 50
B = b"\x89PNG not really" * 10


class Counting(io.BytesIO):
    """A stream that records how much was read at once."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest = 0
        self.reads = 0

    def read(self, n: int | None = -1) -> bytes:
        chunk = super().read(n)
        self.reads += 1
        self.largest = max(self.largest, len(chunk))
        return chunk


class Pattern(io.RawIOBase):
    """``size`` bytes of a repeating pattern, made as they are read: a
    large object that never exists whole."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.largest = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        self.largest = max(self.largest, n)
        start = self.pos
        self.pos += n
        return bytes((start + i) % 251 for i in range(n)) if n < 4096 else \
            _pattern_bytes(start, n)


def _pattern_bytes(start: int, n: int) -> bytes:
    period = bytes(i % 251 for i in range(251))
    offset = start % 251
    reps = (offset + n) // 251 + 1
    return (period * reps)[offset:offset + n]


def test_a_store_is_a_store(store):
    assert isinstance(store, Store)
    assert isinstance(store.url, str) and store.url


def test_put_bytes_then_read_it_back(store):
    d = digest(A)
    assert not store.has_object(d)
    assert store.put_object(d, A, len(A), content_type="text/css",
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})
    assert store.has_object(d)
    assert store.get_object(d) == A
    assert store.object_size(d) == len(A)
    with store.open_object(d) as f:
        assert f.read() == A


def test_put_a_stream(store):
    d = digest(B)
    assert store.put_object(d, io.BytesIO(B), len(B))
    assert store.get_object(d) == B


def test_a_large_stream_is_not_read_whole(store):
    size = 24 * 1024 * 1024 + 7
    d = digest(_pattern_bytes(0, size))
    source = Pattern(size)
    assert store.put_object(d, source, size)
    assert source.largest <= 8 * 1024 * 1024
    assert store.object_size(d) == size
    h = hashlib.sha256()
    with store.open_object(d) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == d


def test_a_second_put_is_a_no_op_that_reads_nothing(store):
    d = digest(A)
    assert store.put_object(d, A, len(A)) is True
    assert store.put_object(d, A, len(A)) is False
    again = Counting(A)
    assert store.put_object(d, again, len(A)) is False
    assert again.reads == 0
    assert store.get_object(d) == A
    assert list(store.list_objects()) == [d]


def test_a_stream_of_other_bytes_is_refused_and_nothing_stored(store):
    d = digest(A)
    with pytest.raises(DigestMismatch):
        store.put_object(d, io.BytesIO(B), len(B))
    with pytest.raises(DigestMismatch):  # the right bytes but one short
        store.put_object(d, io.BytesIO(A[:-1]), len(A))
    with pytest.raises(DigestMismatch):  # the right bytes and one more
        store.put_object(d, io.BytesIO(A + b"!"), len(A))
    with pytest.raises(ValueError):  # a DigestMismatch is a ValueError too
        store.put_object(d, io.BytesIO(B), len(B))
    assert not store.has_object(d)
    assert list(store.list_objects()) == []


def test_a_missing_object(store):
    d = digest(b"never stored")
    assert not store.has_object(d)
    with pytest.raises(NoSuchObject):
        store.open_object(d)
    with pytest.raises(NoSuchObject):
        store.get_object(d)
    with pytest.raises(NoSuchObject):
        store.object_size(d)
    with pytest.raises(KeyError):  # NoSuchObject is a KeyError too
        store.get_object(d)


def test_list_and_delete(store):
    blobs = [A, B, b"", b"x" * 1000]
    for blob in blobs:
        store.put_object(digest(blob), blob, len(blob))
    assert sorted(store.list_objects()) == sorted(map(digest, blobs))
    gone = [digest(A), digest(b"")]
    assert store.delete_objects(gone) == 2
    assert store.delete_objects(gone) == 0  # already gone: skipped
    assert store.delete_objects(iter([digest(B), digest(b"never")])) == 1
    assert sorted(store.list_objects()) == [digest(b"x" * 1000)]
    assert not store.has_object(digest(A))
    assert store.get_object(digest(b"x" * 1000)) == b"x" * 1000


@pytest.mark.parametrize("bad", ["", "ABC", "g" * 64, "A" * 64, "a" * 63, "a" * 65,
                                 "../" + "a" * 61, "a" * 64 + "\n", None])
def test_a_malformed_digest_is_a_value_error(store, bad):
    for call in (lambda: store.put_object(bad, A, len(A)),
                 lambda: store.has_object(bad),
                 lambda: store.open_object(bad),
                 lambda: store.get_object(bad),
                 lambda: store.object_size(bad),
                 lambda: store.delete_objects([bad])):
        with pytest.raises(ValueError, match="not an object name"):
            call()


def test_the_manifest_is_written_by_compare_and_swap(store):
    assert store.read_manifest() is None
    tag1 = store.write_manifest(b'{"one": 1}', None)
    got = store.read_manifest()
    assert isinstance(got, StoredManifest)
    assert got == StoredManifest(b'{"one": 1}', tag1)
    tag2 = store.write_manifest(b'{"two": 2}', tag1)
    assert tag2 != tag1
    assert store.read_manifest() == StoredManifest(b'{"two": 2}', tag2)

    with pytest.raises(ManifestConflict):  # a stale tag
        store.write_manifest(b'{"three": 3}', tag1)
    with pytest.raises(ManifestConflict):  # "none yet", but there is one
        store.write_manifest(b'{"three": 3}', None)
    assert store.read_manifest() == StoredManifest(b'{"two": 2}', tag2)


def test_of_racing_writers_with_one_tag_exactly_one_wins(store):
    tag = store.write_manifest(b"0", None)
    barrier = threading.Barrier(4)
    won, lost = [], []

    def write(i: int) -> None:
        barrier.wait(10)
        try:
            won.append((i, store.write_manifest(str(i + 1).encode(), tag)))
        except ManifestConflict:
            lost.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1 and len(lost) == 3
    i, new_tag = won[0]
    assert store.read_manifest() == StoredManifest(str(i + 1).encode(), new_tag)


def test_merging_writers_lose_nothing(store):
    """Writers that read again and merge on a conflict, as publish.update
    does: every one's addition is in the manifest at the end."""
    store.write_manifest(b"[]", None)
    barrier = threading.Barrier(4)

    def merge(i: int) -> None:
        barrier.wait(10)
        for _ in range(50):
            read = store.read_manifest()
            try:
                store.write_manifest(json.dumps([*json.loads(read.data), i]).encode(), read.tag)
                return
            except ManifestConflict:
                continue

    threads = [threading.Thread(target=merge, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(json.loads(store.read_manifest().data)) == [0, 1, 2, 3]


# -- the local store's own promises -----------------------------------------------


def test_local_objects_are_files_in_the_known_layout(tmp_path):
    store = LocalStore(tmp_path / "m.json")
    d = digest(A)
    store.put_object(d, A, len(A))
    path = tmp_path / "objects" / d[:2] / d
    assert store.object_path(d) == str(path)
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_mtime_ns == OBJECT_MTIME_NS
    with store.open_object(d) as f:
        assert os.fstat(f.fileno()).st_ino == st.st_ino  # a real file, for sendfile
    store.write_manifest(b"{}", None)
    assert (tmp_path / "m.json").read_bytes() == b"{}"
    assert os.listdir(tmp_path / "objects" / d[:2]) == [d]  # no temporary file left
    store.delete_objects([d])
    assert not (tmp_path / "objects" / d[:2]).exists()  # the empty fan-out goes too


def refuse_writing(monkeypatch, path: Path) -> list[int]:
    """Make opening ``path`` for writing fail as in a directory or file this
    user may not write (tests run as root, for whom chmod changes nothing)."""
    real_open = os.open
    flags_seen = []

    def guarded(name, flags, *args, **kwargs):
        if os.fspath(name) == str(path):
            flags_seen.append(flags)
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)
    return flags_seen


def test_local_manifest_lock_file_of_another_user_still_locks(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "m.json")
    tag = store.write_manifest(b"1", None)
    lock = tmp_path / ".m.json.lock"
    assert lock.exists()
    seen = refuse_writing(monkeypatch, lock)
    # Opened read-only, which flock accepts: the lock still excludes others.
    assert store.write_manifest(b"2", tag)
    assert seen[-1] & (os.O_WRONLY | os.O_RDWR) == 0
    assert (tmp_path / "m.json").read_bytes() == b"2"


def test_local_manifest_in_a_read_only_directory_is_a_clear_error(tmp_path, monkeypatch):
    from bustware.store import StoreError

    store = LocalStore(tmp_path / "m.json")
    refuse_writing(monkeypatch, tmp_path / ".m.json.lock")  # and it does not exist
    with pytest.raises(StoreError, match=r"cannot open the lock file .*\.m\.json\.lock.* "
                                         r"make the directory .* writable for this user"):
        store.write_manifest(b"1", None)
    assert not (tmp_path / "m.json").exists()


def test_local_manifest_without_fcntl_still_compares_and_swaps(tmp_path, monkeypatch):
    # A platform without fcntl (and without msvcrt) has no lock between
    # processes: threads of one process still exclude each other, and the
    # tag comparison still refuses a writer that read an older version.
    from bustware import localstore

    monkeypatch.setattr(localstore, "fcntl", None)
    monkeypatch.setitem(__import__("sys").modules, "msvcrt", None)
    store = LocalStore(tmp_path / "m.json")
    tag = store.write_manifest(b"1", None)
    assert store.write_manifest(b"2", tag)
    with pytest.raises(ManifestConflict):
        store.write_manifest(b"3", tag)
    assert (tmp_path / "m.json").read_bytes() == b"2"
