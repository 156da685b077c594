"""What every :class:`bustware.store.Store` must do, as a test class: a test
module subclasses :class:`StoreContract` and provides a ``store`` fixture
(a fresh, empty store). Written to move into tests/test_store.py's
``STORE_FACTORIES`` parametrization as it is."""

from __future__ import annotations

import hashlib
import io
import json
import threading

import pytest

from bustware.store import ManifestConflict, NoSuchObject, Store, StoreError


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StoreContract:
    """Behaviour tests; ``store`` is a fixture of the subclass's module."""

    def test_is_a_store(self, store):
        assert isinstance(store, Store)
        assert isinstance(store.url, str) and store.url

    def test_an_object_put_comes_back_byte_for_byte(self, store):
        data = b"a{color:red}\n" * 100
        d = digest(data)
        assert not store.has_object(d)
        assert store.put_object(d, data, len(data), content_type="text/css") is True
        assert store.has_object(d)
        assert store.get_object(d) == data
        assert store.object_size(d) == len(data)
        with store.open_object(d) as f:
            assert f.read() == data

    def test_a_second_put_of_the_same_digest_writes_nothing(self, store):
        data = b"same bytes"
        d = digest(data)
        assert store.put_object(d, data, len(data)) is True
        assert store.put_object(d, io.BytesIO(data), len(data)) is False
        assert store.get_object(d) == data

    def test_a_stream_is_stored_whole(self, store):
        data = bytes(range(256)) * (9 * 4096 + 17)  # over 9 MiB, not a round size
        d = digest(data)
        assert store.put_object(d, io.BytesIO(data), len(data)) is True
        assert store.get_object(d) == data

    def test_bytes_that_are_not_the_digests_are_refused_and_not_stored(self, store):
        d = digest(b"what the build hashed")
        with pytest.raises(ValueError, match=d):
            store.put_object(d, b"what the file became", 20)
        assert not store.has_object(d)

    def test_a_source_shorter_than_announced_is_refused(self, store):
        data = b"short"
        with pytest.raises(ValueError, match="5 of the 10 bytes"):
            store.put_object(digest(data), io.BytesIO(data), 10)
        assert not store.has_object(digest(data))

    def test_a_missing_object_is_no_such_object(self, store):
        d = digest(b"never stored")
        with pytest.raises(NoSuchObject):
            store.get_object(d)
        with pytest.raises(KeyError):
            store.open_object(d)
        with pytest.raises(NoSuchObject):
            store.object_size(d)

    @pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "../" + "0" * 61, "g" * 64])
    def test_a_malformed_digest_is_a_value_error(self, store, bad):
        for call in (lambda: store.has_object(bad), lambda: store.get_object(bad),
                     lambda: store.put_object(bad, b"", 0)):
            with pytest.raises(ValueError, match="not an object name"):
                call()

    def test_list_and_delete(self, store):
        blobs = [f"object {i}".encode() for i in range(5)]
        for b in blobs:
            store.put_object(digest(b), b, len(b))
        assert sorted(store.list_objects()) == sorted(digest(b) for b in blobs)
        gone = digest(b"never there")
        assert store.delete_objects([digest(blobs[0]), digest(blobs[1]), gone]) == 2
        assert store.delete_objects([digest(blobs[0])]) == 0
        assert store.delete_objects([]) == 0
        assert sorted(store.list_objects()) == sorted(digest(b) for b in blobs[2:])
        assert not store.has_object(digest(blobs[0]))
        assert store.get_object(digest(blobs[2])) == blobs[2]

    def test_the_manifest_is_written_only_over_the_version_read(self, store):
        assert store.read_manifest() is None
        tag1 = store.write_manifest(b'{"v": 1}', None)
        read = store.read_manifest()
        assert (read.data, read.tag) == (b'{"v": 1}', tag1)
        with pytest.raises(ManifestConflict):
            store.write_manifest(b'{"v": "lost"}', None)  # there is one now
        tag2 = store.write_manifest(b'{"v": 2}', tag1)
        assert tag2 != tag1
        with pytest.raises(ManifestConflict) as err:
            store.write_manifest(b'{"v": "stale"}', tag1)
        assert isinstance(err.value, StoreError)
        assert store.read_manifest().data == b'{"v": 2}'

    def test_racing_writers_one_wins_per_tag_and_merging_loses_nothing(self, store):
        first = store.write_manifest(b"[]", None)
        wins: list[int] = []
        go = threading.Barrier(6)

        def blind(i: int) -> None:
            go.wait()
            try:
                store.write_manifest(json.dumps([i]).encode(), first)
                wins.append(i)
            except ManifestConflict:
                pass

        threads = [threading.Thread(target=blind, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(wins) == 1
        assert json.loads(store.read_manifest().data) == wins

        def merging(i: int) -> None:
            go.wait()
            for _ in range(50):
                read = store.read_manifest()
                try:
                    store.write_manifest(json.dumps([*json.loads(read.data), 10 + i]).encode(),
                                         read.tag)
                    return
                except ManifestConflict:
                    continue

        threads = [threading.Thread(target=merging, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(json.loads(store.read_manifest().data)) == sorted(
            [*wins, 10, 11, 12, 13, 14, 15])
