"""The scan: walks an index's roots and makes a record for every file.

It reads each file once to digest it, keeps the small ones in memory (the
index's memory policy), finds the references of stylesheets and scripts,
hands them to the reference linker (bustware.linker), and records the
precompressed variants found beside each file. A rescan (development mode,
``Assets.refresh``) keeps the records of files that did not change, and a
digest cache (bustware.digestcache) spares the reads of files unchanged
since an earlier start.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Protocol

from .contenttypes import content_type
from .files import NotRegularFile, open_fd, read_to_end, read_whole, walk
from .memory import MemoryPolicy
from .records import EMPTY, Asset, Variant, held_bytes, new_asset, unchanged
from .scanhelpers import CHUNK, HELPED, Helpers, digest_bytes, digest_stream
from .urls import UrlScheme, all_plain, url_maker
from .versions import DIGEST_LENGTH, is_digest_source

if TYPE_CHECKING:
    from .digestcache import DigestCache
    from .jsmodules import ModuleRule
    from .references import Links

__all__ = ["FileReader", "Linker", "Scan", "ScanSettings", "read_file"]

log = logging.getLogger("bustware")

#: Scripts up to this size are read whole when they may name a source map
#: (one open); larger ones are streamed, keeping their last _TAIL bytes.
_WHOLE_SCRIPT = 8 << 20
_TAIL = 65536


class FileReader(Protocol):
    """Reads and digests one file for a scan: ``(bytes held or None, hex
    SHA-256, fstat)``, holding the bytes only where ``memory`` allows (and
    counting them on it). :func:`read_file` reads from disk; the build
    gives the bytes of its own parallel pass."""

    def __call__(self, abs_path: str, memory: MemoryPolicy
                 ) -> tuple[bytes | None, str, os.stat_result]: ...


#: Rewrites the references between the records of a scan (bustware.linker,
#: as the index calls it): ``(records, fresh links, variant paths)``,
#: replacing in place the records whose served bytes change.
Linker = Callable[[dict[str, Asset], "dict[str, Links]", dict[str, dict[str, str]]], None]


@dataclass(frozen=True)
class ScanSettings:
    """The options of an index that say what a scan records."""

    #: The roots, symlinks resolved: files are opened under these.
    roots: list[str]
    include_dotfiles: bool
    #: Suffixes that get a version (None: all).
    extensions: tuple[str, ...] | None
    charset: str | None
    #: The URL prefix references are resolved under.
    prefix: str
    #: The version source (bustware.versions.make_version_source).
    version: Callable[[str, str, str, float], str]
    #: Threads that read and digest files (1: this one only).
    threads: int = 1
    #: Which scripts are JavaScript modules (bustware.jsmodules.ModuleRule;
    #: None: none is).
    modules: ModuleRule | None = None


class Scan:
    """One scan of ``settings.roots``, counting the bytes it holds on
    ``memory``.

    ``previous``: the records of the last scan, kept for files that did not
    change. ``urls``: how the index makes URLs. ``types``: the index's
    content types by suffix, filled as new suffixes are met. ``cache``, a
    DigestCache, gives the digests of files unchanged since an earlier
    start, which are then not read. ``read``: how files are read (default
    :func:`read_file`). ``link``: with references to rewrite, what rewrites
    them once every file has its record. :meth:`run` returns the records;
    the index installs them."""

    def __init__(self, settings: ScanSettings, memory: MemoryPolicy, *,
                 previous: dict[str, Asset], urls: UrlScheme, types: dict[str, str],
                 cache: DigestCache | None = None, read: FileReader | None = None,
                 link: Linker | None = None) -> None:
        self.settings = settings
        self.memory = memory
        self.previous = previous
        self.urls = urls
        self.types = types
        self.cache = cache
        self.link = link
        self._read: FileReader = read if read is not None else read_file
        # read_file itself (not one a test put in its place): its reads may
        # be shared with helper threads, and read_source may read for it.
        self._reads_from_disk = self._read is _read_file
        #: References found in the files this scan read: path -> Links,
        #: filled by index_file, used by the linker.
        self.fresh: dict[str, Links] = {}
        # What index_file asks of the index for every file, looked up once.
        self._kind_of = None
        if link is not None:  # the reference finders, loaded when first needed
            from . import references

            self._refs = references
            self._kind_of = references.kind_of
        self._url = url_maker(urls)
        self._digest_versions = is_digest_source(settings.version)
        #: With more than one thread, the other threads digest for this one
        #: (Helpers), started on first use.
        self._helpers: Helpers | None = None
        self._helper_threads = settings.threads - 1 if self._reads_from_disk else 0
        #: Files whose digest a helper computes: (path, abs_path, st, body,
        #: job), made into records once the helpers are done (_finish).
        self._later: list[tuple[str, str, os.stat_result, bytes | None, int]] = []

    def run(self) -> dict[str, Asset]:
        """The records of every file under the roots, by logical path,
        reusing those of ``previous`` for files that did not change. Counts
        ``memory.used`` anew."""
        settings, cache, memory = self.settings, self.cache, self.memory
        previous = self.previous
        # First decide what can be kept as it is, so that the memory budget
        # counts the bytes that stay held before new files claim any.
        found: list[tuple[str, str, os.stat_result, dict, Asset | None]] = []
        seen: set[str] = set()
        memory.used = 0
        # A file's stat is needed only to compare it with what is known of
        # it; a first scan without a cache takes it from the read (fstat).
        stat_files = bool(previous) or cache is not None
        for root in settings.roots:
            for path, abs_path, st, variant_paths in walk(root, settings.include_dotfiles,
                                                          stat_files):
                if path in seen:
                    continue  # an earlier root wins
                seen.add(path)
                old = previous.get(path)
                if old is not None and (old.abs_path != abs_path or not unchanged(old, st)):
                    old = None
                if old is not None:
                    if cache is not None:
                        cache.keep(path)
                    # Counted whole, variants included; if a variant turns
                    # out changed, the count is high until the next scan,
                    # never low.
                    memory.used += held_bytes(old) + sum(map(held_bytes, old.variants.values()))
                found.append((path, abs_path, st, variant_paths, old))
        self._url = url_maker(self.urls, all_plain([f[0] for f in found]))
        assets: dict[str, Asset] = {}
        try:
            for path, abs_path, st, _variant_paths, old in found:
                try:
                    # None holds the file's place (the records' order is the
                    # walk's) until a helper has its digest (_finish).
                    assets[path] = old if old is not None else self.index_file(path, abs_path,
                                                                               st)
                except FileNotFoundError:
                    continue  # deleted since the walk listed it (an editor's temp file)
                except NotRegularFile:
                    log.warning("bustware: skipping %r: no longer a regular file (a FIFO, "
                                "socket or device was put in its place)", abs_path)
                    continue
            if self._helpers is not None:
                self._finish(assets)
        finally:
            if self._helpers is not None:
                self._helpers.close()
                self._helpers = None
        if self.link is not None:
            fresh, self.fresh = self.fresh, {}
            self.link(assets, fresh, {path: v for path, _a, _s, v, _o in found})
        for path, _abs_path, _st, variant_paths, old in found:
            asset = assets.get(path)
            if asset is None or asset.links:
                continue  # gone since the walk, or variants made from its served bytes
            if not variant_paths and not asset.variants:
                continue  # none found, none recorded: most files
            variants = self.index_variants(variant_paths, old)
            if variants != asset.variants:  # Variant compares by identity
                if asset is old:  # never mutate an Asset a request may hold
                    asset = replace(asset)
                asset.variants = variants
            assets[path] = asset
        return assets

    def index_file(self, path: str, abs_path: str, st: os.stat_result | None) -> Asset:
        # The size and mtime recorded are those of the file we read (fstat),
        # so a file replaced between the scan and the read is never recorded
        # with another file's validators. ``st`` is the walk's stat, or None.
        cache = self.cache
        entry = cache.get(path, st) if cache is not None and st is not None else None
        if entry is not None and entry[6] is False:
            # Unchanged since a start digested it, and nothing to rewrite:
            # not read (served from disk, as from a manifest).
            body, digest = None, entry[5]
        else:
            kind = self._kind_of(path) if self._kind_of is not None else None
            try:
                if kind is None and self._helper_threads:
                    body, digest, st = self._read_helped(abs_path)
                    if type(digest) is int:  # a helper's job: the record comes later
                        self._later.append((path, abs_path, st, body, digest))
                        return None  # type: ignore[return-value]
                    data = body
                elif kind is None or not self._reads_from_disk:
                    # A reader of its own (the build's) reads any file whole.
                    body, digest, st = self._read(abs_path, self.memory)
                    data = body
                else:
                    body, digest, st, data = read_source(self.memory, abs_path, kind)
            except PermissionError as exc:
                raise PermissionError(
                    f"bustware: cannot read {abs_path!r} ({exc.strerror}); make it readable "
                    "by this process, or move it out of the static root"
                ) from None
            source_digest = digest
            if kind is not None:
                # References found at an earlier start, if these are the
                # bytes they were found in: the tokenizer need not run again.
                known = cache.links_of(entry) if entry is not None and entry[5] == digest \
                    else None
                body, digest, st = self.read_links(path, abs_path, body, digest, st, data,
                                                   known)
            if cache is not None:
                cache.put(path, st, source_digest, self.fresh.get(path))
        return self._record(path, abs_path, st, digest, body)

    def _record(self, path: str, abs_path: str, st: os.stat_result, digest: str,
                body: bytes | None) -> Asset:
        settings = self.settings
        if settings.extensions is not None and not path.lower().endswith(settings.extensions):
            version = None
        elif self._digest_versions:
            version = digest[:DIGEST_LENGTH]  # what the version source returns, without the call
        else:
            version = settings.version(path, abs_path, digest, st.st_mtime)
        # Content types by suffix: one string per type, not one per file.
        dot = path.rfind(".")
        suffix = path[dot:] if dot >= 0 else ""
        types = self.types
        ctype = types.get(suffix)
        if ctype is None:
            ctype = types[suffix] = content_type(path, settings.charset)
        return new_asset(path, abs_path, st.st_size, int(st.st_mtime), st.st_mtime_ns, digest,
                         version, self._url(path, version), ctype, body, EMPTY, None,
                         st.st_dev, st.st_ino)

    # -- a second core ----------------------------------------------------

    def _read_helped(self, abs_path: str) -> tuple[bytes | None, str | int, os.stat_result]:
        """read_file(), but the digest of a large file is left to a helper
        thread: a str digest, or the int of the helper's job. Whether the
        bytes are held is decided here, in the scan's order, as read_file
        decides it, so both give the same records."""
        memory = self.memory
        fd, st = open_fd(abs_path)
        try:
            helpers = self._helper() if st.st_size >= HELPED else None
            if helpers is None:
                return _read_open(memory, fd, st)
            if memory.fits(st.st_size):
                body, st = read_whole(fd, st)
                held = len(body) == st.st_size and memory.fits(len(body))
                if held:
                    memory.used += len(body)
                return (body if held else None), helpers.submit(digest_bytes, body), st
            job = helpers.submit(digest_stream, fd)
            fd = -1  # the helper reads it and closes it
            return None, job, st
        finally:
            if fd >= 0:
                os.close(fd)

    def _helper(self) -> Helpers | None:
        """The helper threads, started now if need be; None where no thread
        can be started (a process at its limit): this scan then digests
        alone, as with scan_threads=1."""
        if self._helpers is None and self._helper_threads:
            try:
                self._helpers = Helpers(self._helper_threads)
            except RuntimeError as exc:
                log.debug("bustware: scanning in one thread: %s", exc)
                self._helper_threads = 0
        return self._helpers

    def _finish(self, assets: dict[str, Asset]) -> None:
        """The records of the files whose digests the helpers computed."""
        helpers, cache = self._helpers, self.cache
        helpers.join()
        for path, abs_path, st, body, job in self._later:
            digest = helpers.result(job)
            if cache is not None:
                cache.put(path, st, digest, None)
            assets[path] = self._record(path, abs_path, st, digest, body)
        self._later = []

    def index_variants(self, paths: dict[str, str], old: Asset | None) -> dict[str, Variant]:
        variants = {}
        for encoding, abs_path in paths.items():
            kept = old.variants.get(encoding) if old is not None else None
            if kept is not None and kept.abs_path == abs_path:
                try:
                    st = os.stat(abs_path)
                except OSError:
                    continue
                if (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev) == (
                        kept.size, kept.mtime_ns, kept.ino, kept.dev):
                    variants[encoding] = kept  # already counted in run()
                    continue
            try:
                body, digest, st = self._read(abs_path, self.memory)
            except OSError:
                continue
            variants[encoding] = Variant(encoding, abs_path, st.st_size, digest, body,
                                         st.st_mtime_ns, st.st_dev, st.st_ino)
        return variants

    # -- references between files (see bustware.references) ----------------

    def read_links(self, path: str, abs_path: str, body: bytes | None, digest: str,
                   st: os.stat_result, data: bytes | None = None, known=None
                   ) -> tuple[bytes | None, str, os.stat_result]:
        """Find the references into the prefix of a stylesheet or script that
        read_source() just digested (``data``: the bytes it read, whole or
        a script's tail). A file with any is read whole, as its served
        bytes are computed from it (the linker, which then holds or spills
        them); one without follows the memory policy."""
        _refs = self._refs
        prefix = self.settings.prefix
        counted = body is not None
        if body is None and data is not None and len(data) == st.st_size:
            body = data  # read whole already: not held (yet), so not counted
        elif body is None:
            if known is None and _refs.kind_of(path) == "js" and not (
                    _refs.find_links(data, path, prefix, self.settings.modules).links
                    if data is not None else _tail_may_link(prefix, path, abs_path, st)):
                return None, digest, st  # a big script: only its end can name a map
            fd, st = open_fd(abs_path)
            try:
                body, st = read_whole(fd, st)
            finally:
                os.close(fd)
            reread = hashlib.sha256(body).hexdigest()
            if reread != digest:
                known = None  # changed since: search what is there now
            digest = reread
        links = known if known is not None else _refs.find_links(body, path, prefix,
                                                                     self.settings.modules)
        for line, message in links.problems:
            log.warning("bustware: %s line %d: %s", path, line, message)
        if not links.links:
            return (body if counted else None), digest, st
        self.fresh[path] = links
        if not counted:
            self.memory.used += len(body)
        return body, digest, st


def read_file(abs_path: str, memory: MemoryPolicy) -> tuple[bytes | None, str, os.stat_result]:
    """Digest the file; keep its bytes if they fit ``memory`` (the scan's
    default :class:`FileReader`)."""
    fd, st = open_fd(abs_path)
    try:
        return _read_open(memory, fd, st)
    finally:
        os.close(fd)


#: read_file as defined here, to tell it from one a test put in its place.
_read_file = read_file


def _read_open(memory: MemoryPolicy, fd: int, st: os.stat_result
               ) -> tuple[bytes | None, str, os.stat_result]:
    """read_file() of the file open at ``fd``, whose fstat is ``st``."""
    size = st.st_size
    if memory.fits(size):
        body, st = read_whole(fd, st)
        if len(body) == st.st_size and memory.fits(len(body)):
            memory.used += len(body)
            return body, hashlib.sha256(body).hexdigest(), st
        # Truncated while we read: keep nothing. The file's mtime has moved
        # on from st, so requests serve it uncached and the next scan reads
        # it again.
        return None, hashlib.sha256(body).hexdigest(), st
    digest = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
    return None, digest.hexdigest(), st


def read_source(memory: MemoryPolicy, abs_path: str, kind: str
                ) -> tuple[bytes | None, str, os.stat_result, bytes | None]:
    """read_file() for a file that may hold references: also returns the
    bytes to look for them in (the whole file, or a script's last 64 KiB
    when it is too large to read whole), from the same single open."""
    fd, st = open_fd(abs_path)
    try:
        size = st.st_size
        fits = memory.fits(size)
        if fits or kind != "js" or size <= _WHOLE_SCRIPT:
            data, st = read_whole(fd, st)
            digest = hashlib.sha256(data).hexdigest()
            if fits and len(data) == st.st_size and memory.fits(len(data)):
                memory.used += len(data)
                return data, digest, st, data
            return None, digest, st, data
        h = hashlib.sha256()
        tail = b""
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
            tail = (tail + chunk)[-_TAIL:] if len(chunk) < _TAIL else chunk[-_TAIL:]
        return None, h.hexdigest(), st, tail
    finally:
        os.close(fd)


def _tail_may_link(prefix: str, path: str, abs_path: str, st: os.stat_result) -> bool:
    # Reading a large bundle whole just to look at its last lines would
    # double the startup reads; the last 64 KiB hold any source map
    # comment but an inline data: one, which is no link anyway.
    try:
        fd, _st = open_fd(abs_path)
        try:
            os.lseek(fd, max(0, st.st_size - 65536), os.SEEK_SET)
            tail = read_to_end(fd, 65536)
        finally:
            os.close(fd)
    except OSError:
        return True
    from . import references  # loaded by the scan that calls this

    return bool(references.find_links(tail, path, prefix).links)
