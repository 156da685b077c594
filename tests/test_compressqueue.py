"""The build's compression queue: costliest first, each content once, the
objects on disk when join() returns, a job's error raised by join()."""

from __future__ import annotations

import hashlib
import threading

import pytest

from bustware import build as b
from bustware import compress
from bustware import manifest as mf
from bustware.compress import compress_bytes
from bustware.compressqueue import CompressQueue, Source
from bustware.localstore import LocalStore

TEXT = b"".join(b".rule-%d { margin: %dpx; }\n" % (i, i) for i in range(400))


def source(data: bytes, path: str | None = None) -> Source:
    return Source(hashlib.sha256(data).hexdigest(), len(data), data, path)


@pytest.fixture
def store(tmp_path):
    return b.TrackedStore(LocalStore(tmp_path / "manifest.json"))


def stored(store, digest: str) -> bytes:
    return store.store.get_object(digest)


def test_the_costliest_waiting_job_goes_first(store, monkeypatch):
    started, release = threading.Event(), threading.Event()
    order = []
    real = compress._compress_stream

    def gated(src, out, *, encoding, size):
        order.append((len(src.getvalue()), encoding))
        if len(order) == 1:  # hold the only thread until every job is queued
            started.set()
            release.wait(30)
        return real(src, out, encoding=encoding, size=size)

    monkeypatch.setattr(compress, "_compress_stream", gated)
    big = TEXT * 3
    with CompressQueue(store, 1) as queue:
        queue.add(source(TEXT[:100]), ["gzip"])
        assert started.wait(30)
        queue.add(source(TEXT[:300]), ["br", "gzip"])
        queue.add(source(big), ["gzip"])
        queue.add(source(TEXT[:500]), ["br"])
        release.set()
        queue.join()
    # A cheap job (gzip of a small file costs less than writing its object)
    # while the writers are idle; then brotli at quality 11, far costlier per
    # byte than gzip, the bigger first; gzip of a big file last.
    assert order == [(100, "gzip"), (300, "gzip"), (500, "br"), (300, "br"), (len(big), "gzip")]


def test_each_content_is_compressed_once_and_stored(store, monkeypatch):
    calls = []
    real = compress._compress_stream

    def counting(src, out, *, encoding, size):
        calls.append(encoding)
        return real(src, out, encoding=encoding, size=size)

    monkeypatch.setattr(compress, "_compress_stream", counting)
    finished = []
    with CompressQueue(store, 2) as queue:
        for name in ("a", "b", "c"):  # three files, one content
            queue.add(source(TEXT), ["gzip", "br"], lambda name=name: finished.append(name))
        queue.add(source(b"tiny"), ["gzip"], lambda: finished.append("tiny"))
        queue.join()
    assert sorted(calls) == ["br", "gzip", "gzip"]
    assert sorted(finished) == ["a", "b", "c", "tiny"]
    digest = hashlib.sha256(TEXT).hexdigest()
    for coding in ("gzip", "br"):
        made, size = queue.result(digest, coding)
        assert stored(store, made) == compress_bytes(TEXT, coding) and size < len(TEXT)
    # gzip makes 4 bytes bigger, not 5% smaller: no variant, nothing stored.
    assert queue.result(hashlib.sha256(b"tiny").hexdigest(), "gzip") is None
    assert len(store.created) == 2


def test_a_source_is_read_again_from_its_file_and_checked(store, tmp_path):
    path = tmp_path / "app.js"
    path.write_bytes(TEXT)
    ok = Source(hashlib.sha256(TEXT).hexdigest(), len(TEXT), None, str(path))
    with CompressQueue(store, 2) as queue:
        queue.add(ok, ["gzip"])
        queue.join()
        made, _size = queue.result(ok.digest, "gzip")
        assert stored(store, made) == compress_bytes(TEXT, "gzip")
        path.write_bytes(TEXT[:-1] + b"!")  # same size, other bytes
        stale = Source(ok.digest, len(TEXT), None, str(path))
        queue.add(stale, ["br"])
        with pytest.raises(mf.ManifestError, match=r"app\.js.*changed while the build read it"):
            queue.join()


def test_threads_must_be_a_count(store):
    with pytest.raises(ValueError, match="threads=0"):
        CompressQueue(store, 0)
