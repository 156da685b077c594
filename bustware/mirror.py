"""Where a build into a bucket puts its objects: into the local store beside
the ``--out`` manifest (the container image carries everything its own
release serves) and into the bucket (every replica and the CDN share it).

The local copy is written first, synchronously, as a local build writes it;
the bucket's copy is then sent from that local file on a thread pool of its
own (uploads wait on the network, not on a core), so the build's readers and
compressors never wait on an upload. An object the bucket's listing already
named is not sent again: a build learns what the bucket holds from the
bucket itself, once, not from a local manifest a fresh CI runner lacks;
the listing runs while the build reads the tree, and each upload waits for
it before deciding whether to send.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import BinaryIO

from .buildreport import UploadTally
from .localstore import LocalStore
from .store import Store, StoredManifest

__all__ = ["UPLOADERS", "MirrorStore"]

#: Threads sending objects to the bucket at once (boto3's client is
#: thread-safe; each thread holds at most one part of 8 MiB).
UPLOADERS = 16
#: Objects up to this size are read from the local copy whole and sent in
#: one conditional PUT; larger ones are streamed from it.
_WHOLE = 8 << 20


class MirrorStore:
    """The object side of a :class:`~bustware.store.Store` that writes to
    ``local`` and, in the background, to ``remote``; reads come from the
    local copy. The manifest is not its business (the build writes the
    bucket's by compare-and-swap, then the local one): its manifest methods
    are the remote's, so code that reads a manifest through it sees the
    bucket's. Call :meth:`finish` before writing any manifest."""

    def __init__(self, local: LocalStore, remote: Store, present: Future[set[str]],
                 workers: int = UPLOADERS) -> None:
        self.local = local
        self.remote = remote
        self.url = remote.url
        self.tally = UploadTally()
        #: The objects this build sent (the only ones it may delete again).
        self.created: set[str] = set()
        self._present = present
        self._sent: dict[str, Future[bool | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bustware-up")

    # -- objects: written here, sent there -------------------------------

    def put_object(self, digest: str, source: bytes | BinaryIO, size: int, *,
                   content_type: str | None = None,
                   headers: Mapping[str, str] | None = None) -> bool:
        """Write the object locally (checked against its digest there), and
        queue it for the bucket, where it is sent unless the listing names
        it. False: whether this build adds it is known after :meth:`finish`
        (see :attr:`created`)."""
        self.local.put_object(digest, source, size, content_type=content_type,
                              headers=headers)
        with self._lock:
            if digest not in self._sent:
                self._sent[digest] = self._pool.submit(self._send, digest, size)
        return False

    def _send(self, digest: str, size: int) -> bool | None:
        """True if sent, False if another build sent it meanwhile, None if
        the listing named it."""
        if digest in self._present.result():
            return None
        if size <= _WHOLE:
            return self.remote.put_object(digest, self.local.get_object(digest), size)
        with self.local.open_object(digest) as f:
            return self.remote.put_object(digest, f, size)

    def finish(self, progress: Callable[[int], object] | None = None) -> None:
        """Wait until every queued object is in the bucket; the first
        failure is raised (the others are waited for: nothing is left
        half-sent behind the caller's back)."""
        with self._lock:
            pending = dict(self._sent)
        bar = progress(len(pending)) if progress is not None and pending else None
        first: BaseException | None = None
        futures = {f: d for d, f in pending.items()}
        for future in as_completed(futures):
            try:
                sent = future.result()
            except BaseException as exc:
                first = first or exc
                continue
            size = self.local.object_size(futures[future])
            if sent:
                self.tally.uploaded += 1
                self.tally.uploaded_bytes += size
                self.created.add(futures[future])
            else:
                self.tally.skipped += 1  # there, or another build sent it meanwhile
            if bar is not None:
                bar.advance(size)  # type: ignore[attr-defined]
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
        if first is not None:
            raise first

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def has_object(self, digest: str) -> bool:
        return self.local.has_object(digest)

    def object_size(self, digest: str) -> int:
        return self.local.object_size(digest)

    def open_object(self, digest: str) -> BinaryIO:
        return self.local.open_object(digest)

    def get_object(self, digest: str) -> bytes:
        return self.local.get_object(digest)

    def list_objects(self) -> Iterator[str]:
        return self.local.list_objects()

    def delete_objects(self, digests: Iterable[str]) -> int:
        """Delete from the bucket (the count) and from the local copy."""
        digests = set(digests)
        self.local.delete_objects(digests)
        return self.remote.delete_objects(digests)

    # -- the manifest: the bucket's ----------------------------------------

    def read_manifest(self) -> StoredManifest | None:
        return self.remote.read_manifest()

    def write_manifest(self, payload: bytes, expected: str | None) -> str:
        return self.remote.write_manifest(payload, expected)

