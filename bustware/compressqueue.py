"""The build's compression: one job per distinct content and coding, run on
one thread per core, the costliest first.

Compressing is nearly all of a ``bustware build --compress`` (brotli at
quality 11 does about 0.7 MB a second), so its wall time is set by how well
the jobs fill the cores:

- The codecs release the GIL while they work (zlib, brotli's ``Compressor``
  and zstandard all do), so threads are enough: one per core, as more only
  take turns on the same cores.
- A job is one content in one coding, so that a big file's br and gzip run
  on two cores, and two files with the same bytes are compressed once (the
  objects are named by their digest: the result is the same object).
- The waiting jobs are taken costliest first (a cost model of each coding,
  below), so that the last job to finish is a short one; jobs keep coming
  while the build reads files and builds its index, and the costliest
  waiting one is always next.
- Writing an object (``fsync`` included) runs on a few threads of its own,
  so that a compressing thread does not wait for the disk. Creating a file
  costs as much as compressing a small one, and writes left for the end
  keep the build waiting with the cores idle, so the writes are spread
  over the build: a cheap job (a small file in a fast coding) is taken
  instead of the costliest whenever the writers run short of work, and a
  compressing thread writes its object itself when they are behind.

The bytes made do not depend on any of this: each job's output depends on
its input and coding alone, and the caller reads the results by key once
:meth:`CompressQueue.join` returned.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from .compress import MIN_SAVING, compress_bytes, compress_stream
from .files import open_regular

__all__ = ["CompressQueue", "Source", "cores"]

#: Sources up to this size are compressed from memory; larger ones are
#: streamed from their file, in 1 MiB pieces.
WHOLE = 32 * 1024 * 1024

#: Bytes held for jobs still waiting; beyond that a job reads its file again
#: when it starts (from the page cache, checked against its digest).
HELD_BUDGET = 128 * 1024 * 1024

#: Estimated CPU cost of compressing n bytes: (per call, per byte), in
#: microseconds, at the levels of bustware.compress, measured on text. Only
#: the order of jobs depends on it.
_COST = {"br": (2000.0, 1.4), "zstd": (200.0, 0.3), "gzip": (40.0, 0.05)}

#: Jobs estimated below this (microseconds) cost less to compress than to
#: write: "cheap", taken whenever the writers are short of work.
CHEAP = 1000.0

#: Threads writing objects, and how many writes may wait for them before
#: the compressing threads stop feeding them cheap jobs.
WRITERS = 8
_BACKLOG = 8 * WRITERS

_CHUNK = 1 << 20


def cores() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def cost(size: int, encoding: str) -> float:
    per_call, per_byte = _COST.get(encoding, (200.0, 0.3))
    return per_call + per_byte * size


class Source:
    """Bytes to compress, whose SHA-256 is ``digest``: held in ``data``, or
    read from ``path`` when the job starts (and then checked against the
    digest: a file that changed since it was digested must not get the
    variants of other bytes)."""

    __slots__ = ("data", "digest", "path", "size")

    def __init__(self, digest: str, size: int, data: bytes | None = None,
                 path: str | None = None) -> None:
        if data is None and path is None:
            raise ValueError("a Source needs its bytes or the file holding them")
        self.digest = digest
        self.size = size
        self.data = data
        self.path = path

    def read(self) -> bytes:
        data = self.data
        if data is not None:
            return data

        f, _st = open_regular(self.path)
        with f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != self.digest:
            raise _changed(self.path)
        return data


class _Reader:
    """A file object that hashes what is read through it."""

    def __init__(self, f) -> None:
        self.f = f
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.digest.update(data)
        return data


class _Writer:
    """A file object that hashes what is written through it."""

    def __init__(self, f) -> None:
        self.f = f
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.f.write(data)


def _changed(path: str | None) -> Exception:
    from .manifest import ManifestError

    return ManifestError(f"bustware: {path!r} changed while the build read it; "
                         "build again once the files stop changing")


class _Waiter:
    __slots__ = ("done", "left")

    def __init__(self, left: int, done: Callable[[], None]) -> None:
        self.left = left
        self.done = done


class CompressQueue:
    """Compression jobs for the build's object ``store`` (an object with
    ``put(data, digest)`` and ``put_stream(f, digest, size)``, such as
    :class:`bustware.build.TrackedStore`), on ``threads`` threads.

    :meth:`add` queues a source's codings; :meth:`join` waits for all of
    them (raising the first error a job met); :meth:`result` then gives,
    per source digest and coding, ``(object digest, size)``, or ``None``
    when the coding saves less than ``min_saving``. Use it as a context
    manager: leaving it stops the threads, dropping the jobs not started.
    """

    def __init__(self, store: Any, threads: int, *, min_saving: float = MIN_SAVING,
                 held_budget: int | None = None) -> None:
        if type(threads) is not int or threads < 1:
            raise ValueError(f"bustware: threads={threads!r} must be a count >= 1")
        self._store = store
        self._threads_wanted = threads
        self._min_saving = min_saving
        self._budget = HELD_BUDGET if held_budget is None else held_budget
        self._held = 0
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, tuple[str, str]]] = []  # costliest first
        self._cheap: deque[tuple[str, str]] = deque()
        self._unwritten = 0
        self._seq = 0
        #: key -> [source, waiters] while queued or running.
        self._jobs: dict[tuple[str, str], list] = {}
        #: Jobs queued or running per Source: its bytes are held (and
        #: counted in _held) until the last one is done.
        self._users: dict[Source, int] = {}
        self._results: dict[tuple[str, str], tuple[str, int] | None] = {}
        self._running = 0
        self._closed = False
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._writes: list[Future] = []
        self._writer: ThreadPoolExecutor | None = None

    def __enter__(self) -> CompressQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the caller's side ---------------------------------------------------

    def add(self, source: Source, encodings: Iterable[str],
            done: Callable[[], None] | None = None) -> None:
        """Queue ``source`` in each of ``encodings``. ``done`` is called (on
        some thread) once all of them are made, by this call's jobs or by
        jobs of the same content queued before."""
        encodings = list(encodings)
        with self._lock:
            waiter = _Waiter(0, done) if done is not None else None
            for encoding in encodings:
                key = (source.digest, encoding)
                if key in self._results:
                    continue
                job = self._jobs.get(key)
                if job is None:
                    users = self._users.get(source, 0)
                    if users == 0 and source.data is not None:
                        if self._held + source.size > self._budget and source.path is not None:
                            source.data = None  # read again when its job starts
                        else:
                            self._held += source.size
                    self._users[source] = users + 1
                    job = self._jobs[key] = [source, []]
                    estimate = cost(source.size, encoding)
                    if estimate < CHEAP:
                        self._cheap.append(key)
                    else:
                        self._seq += 1
                        heapq.heappush(self._heap, (-estimate, self._seq, key))
                if waiter is not None:
                    job[1].append(waiter)
                    waiter.left += 1
            self._start_threads()
            self._lock.notify_all()
        if waiter is not None and waiter.left == 0:
            done()

    def join(self) -> None:
        """Wait until every job queued has finished and its object is on
        disk; raise the first error of a job."""
        with self._lock:
            while (self._heap or self._cheap or self._running) and self._error is None:
                self._lock.wait()
        for future in self._writes:
            future.result()
        if self._error is not None:
            raise self._error

    def write(self, data: bytes, digest: str) -> None:
        """Store ``data`` (whose SHA-256 is ``digest``) on the writing
        threads; :meth:`join` waits for it too."""
        with self._lock:
            self._start_threads()
            self._unwritten += 1
        write = self._writer.submit(self._store.put, data, digest)
        write.add_done_callback(self._written)
        self._writes.append(write)

    def result(self, digest: str, encoding: str) -> tuple[str, int] | None:
        return self._results[(digest, encoding)]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._heap.clear()
            self._cheap.clear()
            self._lock.notify_all()
        for thread in self._threads:
            thread.join()
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    # -- the threads' side ---------------------------------------------------

    def _start_threads(self) -> None:
        # Started on the first job: a build that compresses nothing starts none.
        if self._threads:
            return
        self._writer = ThreadPoolExecutor(max_workers=WRITERS,
                                          thread_name_prefix="bustware-write")
        for i in range(self._threads_wanted):
            thread = threading.Thread(target=self._work, name=f"bustware-compress-{i}")
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not (self._heap or self._cheap) and not self._closed:
                    self._lock.wait()
                if self._closed or self._error is not None:
                    return
                if self._cheap and (not self._heap or self._unwritten < _BACKLOG):
                    key = self._cheap.popleft()
                else:
                    key = heapq.heappop(self._heap)[2]
                source = self._jobs[key][0]
                self._running += 1
            try:
                made = self._make(source, key[1])
            except BaseException as exc:
                with self._lock:
                    self._running -= 1
                    if self._error is None:
                        self._error = exc
                    self._lock.notify_all()
                return
            finished = []
            with self._lock:
                self._running -= 1
                self._results[key] = made
                _source, waiters = self._jobs.pop(key)
                users = self._users.pop(source) - 1
                if users:
                    self._users[source] = users
                elif source.data is not None:
                    self._held -= source.size
                    source.data = None  # the caller may hold it still; we do not
                for waiter in waiters:
                    waiter.left -= 1
                    if waiter.left == 0:
                        finished.append(waiter.done)
                self._lock.notify_all()
            for done in finished:
                done()

    def _make(self, source: Source, encoding: str) -> tuple[str, int] | None:
        limit = source.size * (1 - self._min_saving)
        if source.data is None and source.size > WHOLE:
            return self._stream(source, encoding, limit)
        packed = compress_bytes(source.read(), encoding)
        if len(packed) > limit:
            return None
        digest = hashlib.sha256(packed).hexdigest()
        with self._lock:
            behind = self._unwritten >= _BACKLOG
        if behind:
            # The writers are behind: write it here, so that the writes do
            # not pile up for the end, when nothing else is left to do.
            self._store.put(packed, digest)
        else:  # the disk's part runs elsewhere: this thread goes on compressing
            self.write(packed, digest)
        return digest, len(packed)

    def _written(self, _future: Future) -> None:
        with self._lock:
            self._unwritten -= 1

    def _stream(self, source: Source, encoding: str, limit: float) -> tuple[str, int] | None:
        # The output's digest, the object's name, is known only at its end:
        # it goes to a temporary file (in TMPDIR) first, then to the store.
        with tempfile.TemporaryFile() as sink:
            f, _st = open_regular(source.path)
            with f:
                reader = _Reader(f)
                writer = _Writer(sink)
                compress_stream(reader, writer, encoding=encoding, size=source.size)
            if reader.digest.hexdigest() != source.digest:
                raise _changed(source.path)
            size = sink.tell()
            if size > limit:
                return None
            digest = writer.digest.hexdigest()
            sink.seek(0)
            self._store.put_stream(sink, digest, size)
            return digest, size
