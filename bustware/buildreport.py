"""What ``bustware build`` and ``prune`` tell the user: the progress bar
on a terminal, and the reports whose summaries the command line prints."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

__all__ = ["BuildReport", "Progress", "PruneReport", "Tally", "UploadTally", "wants_progress"]


@dataclass
class BuildReport:
    manifest_path: str
    files: int = 0
    bytes_read: int = 0
    variants: int = 0
    objects_written: int = 0
    objects_removed: int = 0
    #: Objects only the replaced manifest uses, kept for its processes.
    objects_retired: int = 0
    generation: int = 0
    new_generation: bool = False
    kept_generations: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: What a build into a bucket sent there (None for a local build).
    bucket: UploadTally | None = None
    bucket_url: str = ""

    def summary(self) -> str:
        what = "new generation" if self.new_generation else "no version changed; generation"
        return (f"bustware: {self.files} files ({_size(self.bytes_read)}) -> "
                f"{self.manifest_path} in {self.seconds:.2f}s; {what} {self.generation}, "
                f"{self.kept_generations} earlier kept; {self.variants} compressed variants; "
                f"{self.objects_written} objects written, {self.objects_removed} removed"
                + (f", {self.objects_retired} kept for processes of the build before (until "
                   "the next build or `bustware prune`)" if self.objects_retired else "")
                + (f"\n{self.bucket.summary(self.bucket_url)}" if self.bucket is not None
                   else ""))


@dataclass
class UploadTally:
    """What the bucket got from one build."""

    uploaded: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0  # already in the bucket
    keys_written: int = 0  # CDN-origin keys
    keys_skipped: int = 0
    keys_removed: int = 0
    note: str = ""

    def summary(self, url: str) -> str:
        return (f"bustware: {url}: {self.uploaded} objects uploaded "
                f"({_size(self.uploaded_bytes)}), {self.skipped} already there; "
                f"{self.keys_written} CDN-origin keys written, {self.keys_skipped} already there"
                + (f", {self.keys_removed} removed" if self.keys_removed else "")
                + (f"\nbustware: warning: {self.note}" if self.note else ""))


@dataclass
class PruneReport:
    manifest_path: str
    dropped: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    objects_removed: int = 0
    #: Objects only the manifest before the last build used (kept for the
    #: processes that still served it), released by this prune.
    retired_released: int = 0
    #: CDN-origin keys deleted (a bucket store).
    keys_removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        keys = ""
        if self.keys_removed:
            shown = ", ".join(self.keys_removed[:20])
            more = f" and {len(self.keys_removed) - 20} more" if len(self.keys_removed) > 20 \
                else ""
            keys = f"; {len(self.keys_removed)} CDN-origin keys removed: {shown}{more}"
        if not self.dropped and not self.retired_released:
            return f"bustware: nothing to prune in {self.manifest_path}{keys}"
        parts = []
        if self.dropped:
            parts.append(f"dropped generation{'s' if len(self.dropped) > 1 else ''} "
                         f"{', '.join(map(str, self.dropped))}; kept "
                         f"{', '.join(map(str, self.kept)) or 'none'} besides the current one")
        if self.retired_released:
            parts.append(f"released {self.retired_released} objects that only the build "
                         "before the current one used")
        return (f"bustware: {self.manifest_path}: {'; '.join(parts)}; "
                f"{self.objects_removed} stored objects removed{keys}")


class Progress:
    """A one-line progress bar on a terminal (stderr); silent elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.bytes = 0
        self._clock = clock
        self._started = clock()
        self._shown = float("-inf")

    def advance(self, nbytes: int) -> None:
        self.done += 1
        self.bytes += nbytes
        now = self._clock()
        # Redrawing costs a write per file; ten times a second is enough.
        if now - self._shown >= 0.1 or self.done == self.total:
            self._shown = now
            filled = self.width * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = now - self._started
            pace = ""
            if elapsed > 0:
                rate = self.done / elapsed
                left = round((self.total - self.done) / rate)
                shown = f"{rate:.1f}" if rate < 10 else f"{rate:,.0f}"
                pace = f", {shown} files/s, {_duration(left)} left"
            self.stream.write(f"\rbustware: [{bar}] {self.done}/{self.total} files, "
                              f"{_size(self.bytes)}{pace}\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[K")  # erase the bar; the summary follows
        self.stream.flush()


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def wants_progress(stream: TextIO, quiet: bool) -> bool:
    """A bar only for a person at a terminal: not in CI, not with --quiet."""
    if quiet or os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Tally:
    """The progress bar, advanced from any thread: a file counts once it
    is read and its codings are made."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        if self.bar is not None:
            with self._lock:
                self.bar.advance(nbytes)

    def done(self, nbytes: int) -> Callable[[], None]:
        return lambda: self.advance(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()



def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
