"""Compression without a build step: the codings a file has no
precompressed variant for are made from its served bytes, in memory (or in
the index's private directory beyond the memory budget), on the file's first
request.

On the first request, inline, not in the background: a response sent while
the variants were still being made would be the uncompressed one, with the
immutable policy, and browsers and CDNs would keep it for a year. Made
inline, the first response is already the compressed one. What that costs
is the first request of each file waiting for its compression, once per
process (jQuery, 285 KB: about 20 ms for gzip, 0.4 s for brotli at the
build's quality); ``bustware build --compress`` does it ahead of time.

Lazily, not at start: a large tree starts as fast as without compression
(issue 13), and files nobody asks for cost nothing.

Never making other requests wait: no shared lock is held while a file
compresses (the codecs release the GIL), only concurrent first requests of
the same file wait for that one compression, which each coding gets once per
file content. The levels are the build's and the output deterministic, so
every worker process of a server, and a later ``bustware build --compress``,
make the same bytes with the same ETag.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterable
from typing import Union

from .assets import Assets
from .compress import (
    ENCODINGS,
    MIN_SAVING,
    CodecUnavailable,
    check_encodings,
    compress_stream,
    is_compressible,
)
from .files import open_regular
from .records import Asset, Variant

__all__ = ["MAX_SIZE", "MIN_SIZE", "LiveCompressor", "live_codings"]

log = logging.getLogger("bustware")

#: Files smaller than this are sent as they are: a coding would save fewer
#: bytes than its two header lines (Content-Encoding, Vary) cost. From 256
#: bytes up it pays: the Django admin's 400-byte icons shrink by a third.
MIN_SIZE = 256

#: Larger files are sent as they are unless a build step compressed them: a
#: first request would wait seconds for brotli at the build's quality
#: (about 0.7 MB/s), and the memory budget would hold few of them.
MAX_SIZE = 2 * 1024 * 1024

CompressOption = Union[bool, Iterable[str], None]


def live_codings(compress: CompressOption) -> tuple[str, ...]:
    """The codings the ``compress`` option asks for: ``True`` is gzip and
    whichever of br and zstd have their extra installed; ``False`` or
    ``None`` none; a list those codings, each of which must be installed."""
    if compress is True:
        found = []
        for encoding in ENCODINGS:
            with contextlib.suppress(CodecUnavailable):
                found.append(check_encodings([encoding])[0])
        return tuple(found)
    if compress is False or compress is None:
        return ()
    if isinstance(compress, (str, bytes)) or not isinstance(compress, Iterable):
        raise TypeError(
            f"bustware: compress={compress!r} must be True, False or a list of codings, "
            f"e.g. ['br', 'gzip'] (of {', '.join(ENCODINGS)})"
        )
    return check_encodings(compress)


class _Job:
    """One file content's compression: the thread that made the job runs it,
    the others wait for ``done``."""

    __slots__ = ("done", "variants")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.variants: dict[str, Variant] = {}


class LiveCompressor:
    """Makes and keeps the compressed variants of an index's files."""

    def __init__(self, assets: Assets, codings: tuple[str, ...]) -> None:
        self.assets = assets
        self.codings = codings
        self._lock = threading.Lock()
        #: (path, digest of the served bytes) -> job; one per file content.
        self._jobs: dict[tuple[str, str], _Job] = {}
        #: path -> the digest whose variants are kept (development mode
        #: drops those of a file's previous content).
        self._current: dict[str, str] = {}
        #: Bytes held in memory, counted with the index's within its budget.
        self.memory_used = 0

    def wanted(self, asset: Asset) -> tuple[str, ...]:
        """The codings to make for ``asset``: those it has no precompressed
        file for, if its format compresses and it is not tiny."""
        if not MIN_SIZE <= asset.size <= MAX_SIZE or not is_compressible(asset.path):
            return ()
        return tuple(e for e in self.codings if e not in asset.variants)

    def variants(self, asset: Asset) -> dict[str, Variant]:
        """The variants made for ``asset``, made now if they are not yet."""
        codings = self.wanted(asset)
        if not codings:
            return {}
        key = (asset.path, asset.digest)
        with self._lock:
            job = self._jobs.get(key)
            mine = job is None
            if mine:
                job = self._jobs[key] = _Job()
        if not mine:
            job.done.wait()
            return job.variants
        try:
            job.variants = self._make(asset, codings)
        finally:
            job.done.set()
            self._keep(asset.path, key, job)
        return job.variants

    def _keep(self, path: str, key: tuple[str, str], job: _Job) -> None:
        with self._lock:
            previous = self._current.get(path)
            if previous is not None and previous != key[1] and self.assets.autorefresh:
                # An edited file: its old content is served no more. (Without
                # autorefresh the old versions of a manifest are served too.)
                old = self._jobs.pop((path, previous), None)
                if old is not None:
                    self.memory_used -= sum(len(v.body) for v in old.variants.values()
                                            if v.body is not None)
            self._current[path] = key[1]

    def _make(self, asset: Asset, codings: tuple[str, ...]) -> dict[str, Variant]:
        made: dict[str, Variant] = {}
        for encoding in codings:
            try:
                data = self._compress(asset, encoding)
            except (OSError, ValueError) as exc:
                log.warning("bustware: not compressing %s with %s: %s", asset.path, encoding, exc)
                continue
            if data is None or len(data) > asset.size * (1 - MIN_SAVING):
                continue  # changed under us, or saves too little to be worth decoding
            made[encoding] = self._store(asset, encoding, data)
        return made

    def _compress(self, asset: Asset, encoding: str) -> bytes | None:
        out = io.BytesIO()
        if asset.body is not None:
            compress_stream(io.BytesIO(asset.body), out, encoding=encoding, size=asset.size)
            return out.getvalue()
        path = asset.served_path or asset.abs_path
        # open_regular: a FIFO swapped in must not block the request.
        f, st = open_regular(path)
        with f:
            # Bytes other than the ones the version and the ETag name must not
            # be compressed under them; the identity response says the same
            # thing to the client (bustware.opener), by the same identity.
            if st.st_size != asset.size or (asset.served_path is None and (
                    st.st_mtime_ns != asset.mtime_ns
                    or (asset.ino and (st.st_ino, st.st_dev) != (asset.ino, asset.dev)))):
                log.warning("bustware: %r changed on disk since it was indexed; "
                            "not compressing it", path)
                return None
            compress_stream(f, out, encoding=encoding, size=asset.size)
        return out.getvalue()

    def _store(self, asset: Asset, encoding: str, data: bytes) -> Variant:
        """Hold ``data`` within the index's memory policy, or spill it to
        the index's private directory, as the rewritten bytes are."""
        digest = hashlib.sha256(data).hexdigest()
        assets = self.assets
        size = len(data)
        with self._lock:
            held = (size <= assets.memory_threshold
                    and assets.memory_used + self.memory_used + size <= assets.memory_budget)
            if held:
                self.memory_used += size
        if held:
            return Variant(encoding, asset.abs_path + ENCODINGS[encoding], size, digest,
                           data, asset.mtime_ns)
        spilled = assets.memory.spill(data, digest)
        return Variant(encoding, spilled, size, digest, None, os.stat(spilled).st_mtime_ns)
