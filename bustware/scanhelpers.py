"""The threads that digest large files while a scan goes on
(``Assets(scan_threads=2)``, the default where more than one CPU may run
this process): bustware.scan hands them the files of a MiB or more.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Callable

__all__ = ["CHUNK", "HELPED", "Helpers", "digest_bytes", "digest_stream"]

#: Bytes read at once when a file is digested without being held.
CHUNK = 1 << 20

#: Bytes from which a helper thread digests a file (scan_threads > 1). Each
#: job hands the GIL to the helper and back: measured on the runner's trees
#: (10,000 files of 10 KB on average, none over 600 KB), helping from 8 or
#: 64 KiB on made the scan slower in wall time and in the scan thread's own
#: CPU time; a MiB takes about 0.7 ms to digest, far more than a handover.
HELPED = 1 << 20


def digest_bytes(data: bytes) -> str:
    """The hex SHA-256 of bytes held in memory."""
    return hashlib.sha256(data).hexdigest()


def digest_stream(fd: int) -> str:
    """bustware.scan.read_file()'s streamed digest of a file too large to hold, for a
    helper thread; closes fd. In reads of CHUNK, as read_file: larger
    ones would mean fewer waits for the GIL (measured: no gain in wall
    time on the runner's trees), but a transient allocation as large."""
    try:
        h = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


class Helpers:
    """Threads that digest large files while the scan goes on. hashlib and
    os.read release the GIL for the bytes they work on, so a second core
    digests while the first reads the next files, finds references and
    makes records (the pure Python part, which one thread at a time can
    run). Jobs go through a SimpleQueue and results into a list by job
    number, cheaper than a Future each."""

    def __init__(self, threads: int) -> None:
        import queue  # on first use: most scans need no helper (no file of a MiB)

        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: list = []
        self._threads: list[threading.Thread] = []
        for _ in range(threads):
            thread = threading.Thread(target=self._work, name="bustware-scan", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # can't start new thread: stop those started
                self.join()
                raise
            self._threads.append(thread)

    def submit(self, fn: Callable[[Any], str], arg: Any) -> int:
        job = len(self._results)
        self._results.append(None)
        self._jobs.put((job, fn, arg))
        return job

    def _work(self) -> None:
        results, get = self._results, self._jobs.get
        while (item := get()) is not None:
            job, fn, arg = item
            try:
                results[job] = fn(arg)
            except BaseException as exc:  # raised in the scan's thread, by result()
                results[job] = _Failed(exc)

    def join(self) -> None:
        """Wait for every job submitted (the threads then stop)."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def result(self, job: int) -> str:
        value = self._results[job]
        if type(value) is _Failed:
            raise value.exc
        return value

    def close(self) -> None:
        """Stop the threads, their jobs done or not (a scan that failed)."""
        self.join()


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
