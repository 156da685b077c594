"""The index of static files: what exists, its version, and its URL.

An :class:`Assets` is built once (at import time of the WSGI module, so that a
gunicorn ``preload_app`` master builds it before forking) and afterwards only
read. Building it walks the roots, reads every file once to digest it, keeps
small files in memory, and records the precompressed variants found beside
each file. Nothing here runs per request.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Callable, Union
from urllib.parse import quote, urlsplit

from .contenttypes import content_encoding, content_type
from .styles import Style, make_style
from .versions import VersionSource, make_version_source

__all__ = ["Asset", "AssetNotFound", "Assets", "NotRegularFile", "Variant", "open_regular"]

log = logging.getLogger("bustware")

#: Suffixes of precompressed variants and the coding each stands for.
#: ".zstd" is ServeStatic's name; ".zst" comes after it so that it wins
#: when both exist, and so that the build (which inverts this table) writes
#: ".zst".
VARIANT_SUFFIXES = {".br": "br", ".zstd": "zstd", ".zst": "zstd", ".gz": "gzip"}

PathLike = Union[str, "os.PathLike[str]"]

_CHUNK = 1 << 20

#: How many paths (through symlinks) may lead to one directory before the
#: walk stops entering it.
MAX_ALIASES = 16


def _references():
    """bustware.references, imported on first use: compiling its tokenizer's
    expressions takes about 30 ms, and neither ``import bustware`` nor a
    start from a manifest needs them."""
    global _refs
    if _refs is None:
        from . import references

        _refs = references
    return _refs


_refs = None


class AssetNotFound(LookupError):
    """``url()`` was asked for a path that is not in the index."""


class NotRegularFile(OSError):
    """A path to index or serve leads to a FIFO, socket, device or directory."""


def open_regular(path: str):
    """Open ``path`` for reading, never blocking: ``(file, fstat result)``.

    ``O_NONBLOCK`` because a plain open() of a FIFO waits for a writer
    forever, and a file can be swapped for one after it was indexed; for a
    regular file the flag changes nothing on Linux. Anything but a regular
    file raises :class:`NotRegularFile`.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _slotted(cls):
    """``cls``, a dataclass, remade with ``__slots__``: what
    ``dataclass(slots=True)`` does from Python 3.10 on (3.9 is supported).
    An index holds one record per file; without a ``__dict__`` each takes
    about 200 bytes instead of 700, and attribute reads are faster.
    ``dataclasses.replace`` and ``fields`` keep working."""
    names = tuple(f.name for f in fields(cls))
    body = {k: v for k, v in cls.__dict__.items()
            if k not in names and k not in ("__dict__", "__weakref__")}
    body["__slots__"] = (*names, "__weakref__")  # integrations key weak maps by record
    new = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    return new


@_slotted
@dataclass(eq=False)
class Variant:
    """A precompressed copy of an asset (``app.css.br`` beside ``app.css``)."""

    encoding: str
    abs_path: str
    size: int
    digest: str
    body: bytes | None = None
    mtime_ns: int = 0
    # Identity (st_dev, st_ino) of the file at abs_path when indexed; 0 when
    # unknown (a manifest loaded with manifest_check="off").
    dev: int = 0
    ino: int = 0


@_slotted
@dataclass(eq=False)
class Asset:
    """One file of the index. ``path`` is the logical path: relative to its
    root, slash separated, unicode, as passed to ``url()``."""

    path: str
    abs_path: str
    size: int
    mtime: int
    mtime_ns: int
    digest: str
    version: str | None
    url: str
    content_type: str
    body: bytes | None = None
    variants: dict[str, Variant] = field(default_factory=dict)
    #: References into the prefix (bustware.references): the logical path
    #: of each file this one references -> the URL written in ``body``, or
    #: None where there is no such file (the reference is left as written).
    #: For a file with links, ``body`` (or the file at ``served_path``) is
    #: what is served; ``size``/``digest`` are then of those bytes, ``mtime`` (for
    #: Last-Modified) the newest of its own and its references', and
    #: ``mtime_ns`` stays the file's (to notice it changed).
    links: dict[str, str | None] = field(default_factory=dict)
    #: Size and SHA-256 of the file on disk, for a file with links.
    source_size: int | None = None
    source_digest: str | None = None
    #: Subresource integrity of the served bytes ("sha384-..."): filled on
    #: first use by Assets.integrity(), or by whoever builds the Asset.
    integrity: str | None = None
    #: What references.restore() needs to get the file's bytes from body.
    splices: tuple = field(default=(), repr=False)
    #: Where the served bytes are when they are neither held in ``body`` nor
    #: the file at ``abs_path``: a rewritten stylesheet too large for the
    #: memory budget is written to a private file (Assets._spill).
    served_path: str | None = None
    # Identity (st_dev, st_ino) of the file at abs_path when indexed: a file
    # opened to be streamed must be this one (bustware.middleware.Bustware._open_file).
    # 0 when unknown (a manifest loaded with manifest_check="off").
    dev: int = 0
    ino: int = 0

    @property
    def busted(self) -> bool:
        return self.version is not None

    def served_bytes(self) -> bytes:
        """The bytes served for this file, wherever they are kept."""
        if self.body is not None:
            return self.body
        f, _st = open_regular(self.served_path or self.abs_path)
        with f:
            return f.read()


class Assets:
    """The index of the files under ``root``.

    ``root`` is a directory or a sequence of them; when the same logical path
    exists under several roots, the first root listed wins, as with
    ``PATH`` or Django's ``STATICFILES_DIRS``.
    """

    def __init__(
        self,
        root: PathLike | Sequence[PathLike],
        prefix: str = "/static/",
        *,
        style: str = "filename",
        version: VersionSource = "digest",
        release: str | None = None,
        extensions: Iterable[str] | None = None,
        query_param: str = "v",
        strict: bool = True,
        include_dotfiles: bool = False,
        charset: str = "utf-8",
        memory_threshold: int = 256 * 1024,
        memory_budget: int = 64 * 1024 * 1024,
        autorefresh: bool = False,
        refresh_interval: float = 1.0,
        rewrite_references: bool = True,
        base_url: str | None = None,
        manifest: PathLike | None = None,
        manifest_check: str = "error",
        bundler_manifest: PathLike | Sequence[PathLike] | None = None,
        digest_cache: bool | PathLike | None = None,
    ) -> None:
        self.roots = _check_roots(root)
        #: The roots with symlinks resolved when the index was loaded: files
        #: are opened under these, so a process keeps serving the release it
        #: loaded after a `current` link is switched to another one.
        self.real_roots = [os.path.realpath(r) for r in self.roots]
        self.prefix = _check_prefix(prefix)
        self.style: Style = make_style(style, query_param)
        self._source = make_version_source(version, release)
        self.extensions = _check_extensions(extensions)
        self.strict = strict
        self.include_dotfiles = include_dotfiles
        if charset is not None and (not isinstance(charset, str) or not all(
                c.isascii() and (c.isalnum() or c in "-_.:+") for c in charset)):
            # it goes into every text file's Content-Type header
            raise ValueError(f"bustware: charset={charset!r} is not a charset name; pass "
                             "one such as 'utf-8', or None for no charset parameter")
        self.charset = charset
        #: Rewrite references between files (CSS url(), @import, image-set,
        #: source map comments) to versioned URLs; see _link().
        self.rewrite_references = rewrite_references
        #: "https://cdn.example.com" or "//cdn.example.com" in front of every
        #: URL, so that a CDN can pull from this process; "" for none.
        self.base_url = _check_base_url(base_url)
        self._fresh: dict[str, _refs.Links] = {}
        self._spill_dir: str | None = None
        self._ref_warned: set[tuple] = set()
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                   for n in (memory_threshold, memory_budget)):
            raise ValueError(
                f"bustware: memory_threshold={memory_threshold!r} and "
                f"memory_budget={memory_budget!r} must be byte counts >= 0"
            )
        self.memory_threshold = memory_threshold
        self.memory_budget = memory_budget
        self.memory_used = 0
        self._warned: set[str] = set()
        self._assets: dict[str, Asset] = {}
        self._urls: dict[str, str] = {}
        #: Goes up by one each time refresh() finds a change; the middleware
        #: rebuilds its routing table when it sees a new generation.
        self.generation = 0
        if not isinstance(refresh_interval, (int, float)) or refresh_interval < 0:
            raise ValueError(
                f"bustware: refresh_interval={refresh_interval!r} must be seconds >= 0"
            )
        self.autorefresh = autorefresh
        self.refresh_interval = refresh_interval
        self._refresh_lock = threading.Lock()
        self._checked_at = time.monotonic()
        #: With ``manifest=``: its path and content (see bustware.manifest),
        #: and the versions of earlier generations served from stored bytes.
        self.manifest_path: str | None = None
        self._manifest: dict | None = None
        self.old_versions: list[Asset] = []
        #: (st_dev, st_ino, st_size, st_mtime_ns) of the manifest loaded:
        #: tells a reload that it changed, and Assets.manifest that the file
        #: is still the one loaded.
        self.manifest_stat: tuple[int, int, int, int] | None = None
        self._manifest_check = manifest_check
        if manifest is not None:
            if autorefresh:
                raise ValueError(
                    "bustware: manifest= and autorefresh=True conflict: a manifest is a "
                    "snapshot for production, autorefresh rescans the files in development"
                )
            self.manifest_path = os.path.abspath(os.fspath(manifest))
        #: Where digests persist between starts (bustware.digestcache): None
        #: (the default) uses one with autorefresh=True, in development only;
        #: True always; a directory to keep it there; False never.
        if digest_cache is None:
            digest_cache = autorefresh
        if digest_cache is not False and digest_cache is not True \
                and not isinstance(digest_cache, (str, os.PathLike)):
            raise TypeError(f"bustware: digest_cache={digest_cache!r} must be True, False, "
                            "None (on with autorefresh) or a directory")
        self.digest_cache = digest_cache
        self._types: dict[str, str] = {}
        self._cache = None  # the DigestCache of the scan under way
        #: Logical names from bundler manifests -> the path of their file.
        self.aliases: dict[str, str] = {}
        if bundler_manifest is None:
            self._bundlers: list = []
        else:  # imported only when used
            from . import bundlers

            self._bundlers = bundlers.make(bundler_manifest)
        self.refresh()
        _LIVE.add(self)
        if autorefresh:
            # Production url() stays a bare dictionary lookup; only
            # development pays for the freshness check.
            self.url = self._url_autorefresh  # type: ignore[method-assign]

    # -- public API ---------------------------------------------------------

    @property
    def manifest(self) -> dict | None:
        """The content of the manifest this index was loaded from (None
        without one). Not kept from the start, where it would double the
        index's memory: read again on first use, from the same file, which
        must still be the one loaded (same device, inode, size and mtime),
        else :class:`~bustware.manifest.ManifestError`."""
        if self._manifest is None and self.manifest_stat is not None:
            from .manifest import reread

            self._manifest = reread(self.manifest_path, self.manifest_stat)
        return self._manifest

    def url(self, path: str) -> str:
        """The versioned URL of the file at ``path`` (relative to the root)."""
        try:
            return self._urls[path]
        except KeyError:
            return self._missing_url(path)

    def _url_autorefresh(self, path: str) -> str:
        self.check()
        return Assets.url(self, path)

    def check(self) -> None:
        """In development (``autorefresh=True``): re-scan the roots if the
        last scan is older than ``refresh_interval`` seconds. A scan stats
        every file and reads only those whose size or mtime changed. Safe to
        call from many threads: one scans, the others go on with the index
        they have."""
        if time.monotonic() - self._checked_at < self.refresh_interval:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return
        try:
            self._scan()
            self._checked_at = time.monotonic()
        finally:
            self._refresh_lock.release()

    def get(self, path: str) -> Asset | None:
        return self._assets.get(path)

    def __getitem__(self, path: str) -> Asset:
        return self._assets[path]

    def __contains__(self, path: object) -> bool:
        return path in self._assets

    def __iter__(self) -> Iterator[Asset]:
        return iter(list(self._assets.values()))

    def __len__(self) -> int:
        return len(self._assets)

    def __repr__(self) -> str:
        return (
            f"<Assets {len(self)} files under {[str(r) for r in self.roots]!r} "
            f"at {self.prefix!r}, style={self.style.name!r}>"
        )

    def match(self, url_path: str, query: str = "") -> tuple[Asset, str] | None:
        """Parse a versioned URL path (after the prefix, percent-decoded) into
        the asset it names and the version it carries; ``None`` if it names
        no busted file. The version may differ from the asset's current one."""
        parsed = self.style.parse(url_path, query)
        if parsed is None:
            return None
        asset = self._assets.get(parsed[0])
        if asset is None or asset.version is None:
            return None
        return asset, parsed[1]

    def plain_url(self, path: str) -> str:
        return self.base_url + self.prefix + _quote(path)

    def url_for_version(self, path: str, version: str | None) -> str:
        """The URL of ``path`` at ``version`` (``None``: the plain URL), with
        this index's base URL, prefix and style."""
        if version is None:
            return self.plain_url(path)
        url_path, query = self.style.build(path, version)
        url = self.base_url + self.prefix + _quote(url_path)
        return f"{url}?{query}" if query else url

    def integrity(self, path: str) -> str:
        """The subresource integrity value (``"sha384-<base64>"``) of the
        bytes served for ``path``: the rewritten ones for a stylesheet whose
        references were rewritten. Computed on first use and kept with the
        file's index entry. Raises :class:`AssetNotFound` for an unknown
        path (there are no bytes to vouch for), whatever ``strict`` says."""
        if self.autorefresh:
            self.check()
        asset = self._assets.get(path)
        if asset is None:
            raise AssetNotFound(
                f"bustware: no file {path!r} under {[str(r) for r in self.roots]!r}, so no "
                "integrity value. Paths are relative to the root, with '/' separators."
            )
        value = asset.integrity
        if value is None:
            from .integrity import asset_integrity

            try:
                value, fresh = asset_integrity(asset)
            except OSError as exc:
                raise AssetNotFound(
                    f"bustware: cannot read {asset.abs_path!r} for its integrity value: {exc}"
                ) from exc
            if fresh:  # setting it twice from two threads stores the same value
                asset.integrity = value
        return value

    def broken_references(self) -> list[tuple[str, int, str, str]]:
        """``(path, line, url as written, logical path named)`` for every
        reference to a file that is not in the index, sorted."""
        _refs = _references()
        out = []
        for asset in list(self._assets.values()):
            if None not in asset.links.values():
                continue
            raw = _refs.restore(asset.served_bytes(), asset.splices)
            for link in _refs.find_links(raw, asset.path, self.prefix).links:
                if asset.links.get(link.target, "") is None:
                    out.append((asset.path, link.reference.line, link.reference.url, link.target))
        return sorted(out)

    def refresh(self) -> None:
        """Rebuild the index from disk now. Files whose size and mtime did
        not change keep their digest without being read again."""
        with self._refresh_lock, gc_paused():
            if self.manifest_path is not None:
                from .manifest import load_into

                load_into(self, self.manifest_path, self._manifest_check)
            else:
                self._scan(self._open_cache())
            self._checked_at = time.monotonic()

    def reload_if_changed(self) -> bool:
        """Load the index again if a root now resolves to another directory
        (a `current` link switched) or the manifest file changed; for a
        process forked from a preloading master (gunicorn ``kill -HUP``).
        A manifest that does not load (it describes files the roots do not
        hold yet) leaves the index as it was, with a warning. Not in
        development mode, which follows the files anyway."""
        if self.autorefresh:
            return False
        changed = [os.path.realpath(r) for r in self.roots] != self.real_roots
        if not changed and self.manifest_path is not None:
            try:
                changed = _file_key(os.stat(self.manifest_path)) != self.manifest_stat
            except OSError:
                return False
        if not changed:
            return False
        try:
            self.refresh()
        except (ValueError, OSError) as exc:  # ManifestError is a ValueError
            log.warning("bustware: kept the index loaded before: %s", exc)
            return False
        return True

    def _open_cache(self):
        if self.digest_cache is False:
            return None
        from .digestcache import DigestCache

        location = None if self.digest_cache is True else os.fspath(self.digest_cache)
        return DigestCache(self.roots, location, salt=f"{self.prefix}\0{self.rewrite_references}")

    def _scan(self, cache=None) -> None:
        """Index the roots. ``cache``, a DigestCache (refresh() passes one
        when digest_cache allows), gives the digests of files unchanged
        since an earlier start, which are then not read."""
        previous = self._assets
        self._cache = cache
        # Resolved again at each scan: development mode follows a switched link.
        self.real_roots = [os.path.realpath(r) for r in self.roots]
        self._fresh = {}  # filled by _index_file, used by _link
        # First decide what can be kept as it is, so that the memory budget
        # counts the bytes that stay held before new files claim any.
        found: list[tuple[str, str, os.stat_result, dict, Asset | None]] = []
        seen: set[str] = set()
        self.memory_used = 0
        # A file's stat is needed only to compare it with what is known of
        # it; a first scan without a cache takes it from the read (fstat).
        stat_files = bool(previous) or cache is not None
        for root in self.real_roots:
            for path, abs_path, st, variant_paths in _walk(root, self.include_dotfiles,
                                                           stat_files):
                if path in seen:
                    continue  # an earlier root wins
                seen.add(path)
                old = previous.get(path)
                if old is not None and (old.abs_path != abs_path or not _unchanged(old, st)):
                    old = None
                if old is not None:
                    if cache is not None:
                        cache.keep(abs_path)
                    # Counted whole, variants included; if a variant turns
                    # out changed, the count is high until the next scan,
                    # never low.
                    self.memory_used += _held(old) + sum(map(_held, old.variants.values()))
                found.append((path, abs_path, st, variant_paths, old))
        assets: dict[str, Asset] = {}
        for path, abs_path, st, _variant_paths, old in found:
            try:
                assets[path] = old if old is not None else self._index_file(path, abs_path, st)
            except FileNotFoundError:
                continue  # deleted since the walk listed it (an editor's temp file)
            except NotRegularFile:
                log.warning("bustware: skipping %r: no longer a regular file (a FIFO, "
                            "socket or device was put in its place)", abs_path)
                continue
        if self.rewrite_references:
            if self._bundlers:  # references to their hashed files: the bundler's URLs
                from . import bundlers

                bundlers.prepare(self, assets)
            self._link(assets, {path: v for path, _a, _s, v, _o in found})
        for path, _abs_path, _st, variant_paths, old in found:
            asset = assets.get(path)
            if asset is None or asset.links:
                continue  # gone since the walk, or variants made from its served bytes
            variants = self._index_variants(variant_paths, old)
            if variants != asset.variants:  # Variant compares by identity
                if asset is old:  # never mutate an Asset a request may hold
                    asset = replace(asset)
                asset.variants = variants
            assets[path] = asset
        changed = assets.keys() != previous.keys() or any(
            previous[p] is not a for p, a in assets.items()
        )
        self._assets = assets
        self._urls = {path: asset.url for path, asset in assets.items()}
        self._cache = None
        if cache is not None:
            cache.save()
        if changed:
            self.generation += 1
        if self._bundlers:
            from . import bundlers

            bundlers.apply(self)

    # -- internals ----------------------------------------------------------

    def _index_file(self, path: str, abs_path: str, st: os.stat_result | None) -> Asset:
        # The size and mtime recorded are those of the file we read (fstat),
        # so a file replaced between the scan and the read is never recorded
        # with another file's validators. ``st`` is the walk's stat, or None.
        kind = _references().kind_of(path) if self.rewrite_references else None
        cache = self._cache
        entry = cache.get(abs_path, st) if cache is not None and st is not None else None
        if entry is not None and entry[6] is False:
            # Unchanged since a start digested it, and nothing to rewrite:
            # not read (served from disk, as from a manifest).
            body, digest = None, entry[5]
        else:
            try:
                if kind is None:
                    body, digest, st = self._read(abs_path)
                    data = body
                else:
                    body, digest, st, data = self._read_source(abs_path, kind)
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
                body, digest, st = self._read_links(path, abs_path, body, digest, st, data,
                                                    known)
            if cache is not None:
                cache.put(abs_path, st, source_digest, self._fresh.get(path))
        busted = self.extensions is None or path.lower().endswith(self.extensions)
        version = self._source(path, abs_path, digest, st.st_mtime) if busted else None
        # Content types by suffix: one string per type, not one per file.
        dot = path.rfind(".")
        suffix = path[dot:] if dot >= 0 else ""
        ctype = self._types.get(suffix)
        if ctype is None:
            ctype = self._types[suffix] = content_type(path, self.charset)
        return Asset(
            path=path,
            abs_path=abs_path,
            size=st.st_size,
            mtime=int(st.st_mtime),
            mtime_ns=st.st_mtime_ns,
            digest=digest,
            version=version,
            url=self.url_for_version(path, version),
            content_type=ctype,
            body=body,
            dev=st.st_dev,
            ino=st.st_ino,
            variants=_EMPTY,
            links=_EMPTY,
        )

    def _index_variants(self, paths: dict[str, str], old: Asset | None) -> dict[str, Variant]:
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
                    variants[encoding] = kept  # already counted in _scan
                    continue
            try:
                body, digest, st = self._read(abs_path)
            except OSError:
                continue
            variants[encoding] = Variant(encoding, abs_path, st.st_size, digest, body,
                                         st.st_mtime_ns, st.st_dev, st.st_ino)
        return variants

    def _fits(self, size: int) -> bool:
        """Whether ``size`` more bytes may be held under the memory policy."""
        return size <= self.memory_threshold and self.memory_used + size <= self.memory_budget

    def _read(self, abs_path: str) -> tuple[bytes | None, str, os.stat_result]:
        """Digest the file; keep its bytes if it fits the memory policy."""
        f, st = open_regular(abs_path)
        with f:
            size = st.st_size
            if self._fits(size):
                body, st = _read_whole(f, st)
                if len(body) == st.st_size and self._fits(len(body)):
                    self.memory_used += len(body)
                    return body, hashlib.sha256(body).hexdigest(), st
                # Truncated while we read: keep nothing. The file's mtime has
                # moved on from st, so requests serve it uncached and the next
                # scan reads it again.
                return None, hashlib.sha256(body).hexdigest(), st
            digest = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            return None, digest.hexdigest(), st

    def _read_source(self, abs_path: str, kind: str
                     ) -> tuple[bytes | None, str, os.stat_result, bytes | None]:
        """_read() for a file that may hold references: also returns the
        bytes to look for them in (the whole file, or a script's last 64 KiB
        when it is too large to read whole), from the same single open."""
        if type(self)._read is not _ASSETS_READ:
            # A subclass (the build) or a test decides how files are read.
            body, digest, st = self._read(abs_path)
            return body, digest, st, body
        f, st = open_regular(abs_path)
        with f:
            size = st.st_size
            fits = self._fits(size)
            if fits or kind != "js" or size <= _WHOLE_SCRIPT:
                data, st = _read_whole(f, st)
                digest = hashlib.sha256(data).hexdigest()
                if fits and len(data) == st.st_size and self._fits(len(data)):
                    self.memory_used += len(data)
                    return data, digest, st, data
                return None, digest, st, data
            h = hashlib.sha256()
            tail = b""
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                tail = (tail + chunk)[-_TAIL:] if len(chunk) < _TAIL else chunk[-_TAIL:]
            return None, h.hexdigest(), st, tail

    # -- references between files (see bustware.references) ----------------

    def _read_links(self, path: str, abs_path: str, body: bytes | None, digest: str,
                    st: os.stat_result, data: bytes | None = None, known=None
                    ) -> tuple[bytes | None, str, os.stat_result]:
        """Find the references into the prefix of a stylesheet or script that
        _read_source() just digested (``data``: the bytes it read, whole or
        a script's tail). A file with any is read whole, as its served
        bytes are computed from it (_link, which then holds or spills them);
        one without follows the memory policy."""
        _refs = _references()
        counted = body is not None
        if body is None and data is not None and len(data) == st.st_size:
            body = data  # read whole already: not held (yet), so not counted
        elif body is None:
            if known is None and _refs.kind_of(path) == "js" and not (
                    _refs.find_links(data, path, self.prefix).links if data is not None
                    else self._tail_may_link(path, abs_path, st)):
                return None, digest, st  # a big script: only its end can name a map
            f, st = open_regular(abs_path)
            with f:
                body = f.read()
            reread = hashlib.sha256(body).hexdigest()
            if reread != digest:
                known = None  # changed since: search what is there now
            digest = reread
        links = known if known is not None else _refs.find_links(body, path, self.prefix)
        for line, message in links.problems:
            log.warning("bustware: %s line %d: %s", path, line, message)
        if not links.links:
            return (body if counted else None), digest, st
        self._fresh[path] = links
        if not counted:
            self.memory_used += len(body)
        return body, digest, st

    def _tail_may_link(self, path: str, abs_path: str, st: os.stat_result) -> bool:
        # Reading a large bundle whole just to look at its last lines would
        # double the startup reads; the last 64 KiB hold any source map
        # comment but an inline data: one, which is no link anyway.
        _refs = _references()
        try:
            f, _st = open_regular(abs_path)
            with f:
                f.seek(max(0, st.st_size - 65536))
                tail = f.read()
        except OSError:
            return True
        return bool(_refs.find_links(tail, path, self.prefix).links)

    def _link(self, assets: dict[str, Asset], variant_paths: dict[str, dict[str, str]]) -> None:
        """Rewrite references to the referenced files' URLs, so that the
        version of a file covers the versions of the files it references,
        transitively: a new font gives its stylesheet new bytes, so a new
        version, so the stylesheet that imports that one new bytes too.

        Files are taken one strongly connected component of the reference
        graph at a time, each after every component it references, so one
        pass settles any depth. A file on no cycle is rewritten with the
        final URLs of what it references, and versioned from its rewritten
        bytes like any file. The files of a cycle (a.css imports b.css
        imports a.css) cannot each contain the other's final URL and also be
        named by a digest of their own bytes, so they share one version,
        digested from each member's path and own bytes, the URLs of what
        the cycle references outside itself, and the URL scheme; each
        member names the others with that version. The same files give the
        same version anywhere, and a change to a member or to anything the
        cycle references gives a new one. The ETag is still the digest of
        each file's served bytes.

        An asset whose file and whose references' URLs did not change since
        the last scan is kept as it is (autorefresh stays cheap).
        """
        _refs = _references()
        fresh, self._fresh = self._fresh, {}

        def targets(path: str) -> Iterable[str]:
            found = fresh.get(path)
            return found.targets if found is not None else assets[path].links

        nodes = {path for path in assets if targets(path)}
        for members in _refs.components(nodes, lambda p: [t for t in targets(p) if t in nodes]):
            inside = set(members)
            cyclic = len(members) > 1 or members[0] in targets(members[0])
            # Last-Modified, and the mtime version: the newest in the closure.
            mtime = max(assets[m].mtime_ns // 1_000_000_000 for m in members)
            for m in members:
                for t in targets(m):
                    if t not in inside and t in assets:
                        mtime = max(mtime, assets[t].mtime)
            urls: dict[str, str] = {}
            versions: dict[str, str | None] = {}
            if cyclic:
                h = hashlib.sha256(f"bustware cycle\0{self.plain_url('')}\0"
                                   f"{self.style.name}\0".encode())
                for m in members:
                    a = assets[m]
                    h.update(f"{m}\0{a.source_digest or a.digest}\0".encode())
                    for t in sorted(targets(m)):
                        named = "" if t in inside else assets[t].url if t in assets else "-"
                        h.update(f"{t}\0{named}\0".encode())
                cycle_digest = h.hexdigest()
                for m in members:
                    a = assets[m]
                    versions[m] = None if a.version is None else \
                        self._source(m, a.abs_path, cycle_digest, mtime)
                    urls[m] = self.url_for_version(m, versions[m])
            for m in members:
                old = assets[m]
                links = {t: urls[t] if t in inside else assets[t].url if t in assets else None
                         for t in targets(m)}
                if m not in fresh and old.links == links and (not cyclic or old.url == urls[m]):
                    continue
                if m in fresh:
                    raw, found = old.body or b"", fresh[m]
                    source_digest = old.digest
                else:
                    raw = _refs.restore(old.served_bytes(), old.splices)
                    found = _refs.find_links(raw, m, self.prefix)
                    source_digest = old.source_digest or old.digest
                body, splices = _refs.rewrite(raw, _refs.replacements(found, links))
                self._warn_missing(m, source_digest, found, links)
                digest = hashlib.sha256(body).hexdigest()
                if cyclic:
                    version = versions[m]
                else:
                    version = None if old.version is None else \
                        self._source(m, old.abs_path, digest, mtime)
                self.memory_used -= _held(old) + sum(map(_held, old.variants.values()))
                held, served_path = self._hold_or_spill(body, digest)
                assets[m] = replace(
                    old, body=held, size=len(body), digest=digest, version=version,
                    url=urls[m] if cyclic else self.url_for_version(m, version), mtime=mtime,
                    links=links, source_size=len(raw), source_digest=source_digest,
                    integrity=None, splices=splices, served_path=served_path,
                    variants=self._compressed(body, old, variant_paths.get(m, {})),
                )

    def _warn_missing(self, path: str, source_digest: str, found: _refs.Links,
                      links: dict[str, str | None]) -> None:
        for link in found.links:
            if links.get(link.target) is not None:
                continue
            ref = link.reference
            key = (path, source_digest, ref.line, ref.url)
            if key not in self._ref_warned:  # once per file content, not per scan
                self._ref_warned.add(key)
                log.warning("bustware: %s line %d: %r names %r, which is not in the index; "
                            "left as written", path, ref.line, ref.url, link.target)

    def _compressed(self, body: bytes, asset: Asset, paths: dict[str, str]) -> dict[str, Variant]:
        """Precompressed files beside a file whose served bytes were
        rewritten hold the old bytes: serve these codings compressed from
        the rewritten bytes instead (in memory), or not at all."""
        if not paths:
            return {}
        try:
            from .compress import compress_bytes
        except ImportError:  # pragma: no cover - compress ships with bustware
            return {}
        variants = {}
        for encoding, abs_path in paths.items():
            try:
                data = compress_bytes(body, encoding)
            except Exception as exc:  # a codec whose extra is missing
                log.info("bustware: not serving %s for %s: %s", encoding, asset.path, exc)
                continue
            if len(data) < len(body):
                digest = hashlib.sha256(data).hexdigest()
                held, spilled = self._hold_or_spill(data, digest)
                if spilled is None:
                    variants[encoding] = Variant(encoding, abs_path, len(data), digest, held,
                                                 asset.mtime_ns)
                else:  # streamed from the private copy, which is its abs_path
                    sst = os.stat(spilled)
                    variants[encoding] = Variant(encoding, spilled, len(data), digest, None,
                                                 sst.st_mtime_ns, sst.st_dev, sst.st_ino)
        return variants

    def _hold_or_spill(self, data: bytes, digest: str) -> tuple[bytes | None, str | None]:
        """Keep computed bytes (rewritten, or compressed from rewritten) in
        memory if the memory policy allows, else in a private file: they
        exist nowhere else, and the budget is a promise. Returns
        ``(data, None)`` or ``(None, path)``."""
        if self._fits(len(data)):
            self.memory_used += len(data)
            return data, None
        return None, self._spill(data, digest)

    def _spill(self, data: bytes, digest: str) -> str:
        """Write ``data`` to this index's private directory, named by its
        digest, atomically; the directory goes when the index does, and only
        in the process that made it (gunicorn workers forked from a
        preloading master share it and must not remove it)."""
        if self._spill_dir is None:
            self._spill_dir = tempfile.mkdtemp(prefix="bustware-")
            weakref.finalize(self, _remove_spill_dir, self._spill_dir, os.getpid())
        path = os.path.join(self._spill_dir, digest)
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(dir=self._spill_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return path

    #: How messages tell the user to set an option: ``(name, value) ->
    #: advice``, or None when there is no such setting. Python keyword
    #: arguments here; each integration sets its own spelling on the indexes
    #: it makes (a Flask config key, a Django setting, a Pyramid .ini line).
    option_advice: Callable[[str, Any], str | None] = staticmethod(
        lambda name, value: f"pass {name}={value!r}")

    def _missing_url(self, path: str) -> str:
        if self.strict:
            advice = self.option_advice("strict", False)
            raise AssetNotFound(
                f"bustware: no file {path!r} under {[str(r) for r in self.roots]!r}. "
                "Paths are relative to the root, with '/' separators (e.g. 'css/app.css')."
                + (f" To get the plain URL instead of this error, {advice}." if advice else "")
            )
        if path not in self._warned:
            self._warned.add(path)
            log.warning("bustware: no file %r in the index; using its plain URL", path)
        return self.plain_url(path.lstrip("/"))


_ASSETS_READ = Assets._read
#: The empty ``variants`` and ``links`` of a record: one shared read-only
#: mapping instead of two empty dicts per file (128 bytes of a record of
#: about 900). Records are replaced (dataclasses.replace), never changed.
_EMPTY: Mapping = MappingProxyType({})
#: Scripts up to this size are read whole when they may name a source map
#: (one open); larger ones are streamed, keeping their last _TAIL bytes.
_WHOLE_SCRIPT = 8 << 20
_TAIL = 65536
_PLAIN = re.compile(r"[A-Za-z0-9_.\-~/]*\Z")


def _quote(path: str) -> str:
    # quote() costs microseconds a call; most static file names are plain
    # ASCII that it would return unchanged, so they skip it.
    return path if _PLAIN.match(path) else quote(path, safe="/")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while an index is built.

    Building creates tens of thousands of small objects and no cycles; the
    collector, triggered by the allocations, walks them all again and again
    (half the startup time from a 10,000-file manifest). Reference counting
    still frees everything as usual meanwhile.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _remove_spill_dir(path: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


def _read_whole(f, st: os.stat_result) -> tuple[bytes, os.stat_result]:
    """Read the open file whole, with the fstat that goes with what was read.

    A file rewritten in place while we read it (truncated, then written: an
    editor or a build writing without a rename) reads short. Read again, a
    few times: a file whose bytes and digest do not match its fstat is not
    held, and is then streamed from disk, where a later in-place rewrite of
    equal size within one timestamp tick cannot be told apart."""
    data = f.read()
    for _ in range(3):
        if len(data) == st.st_size:
            break
        f.seek(0)
        st = os.fstat(f.fileno())
        data = f.read()
    return data, st


def _unchanged(asset: Asset, st: os.stat_result) -> bool:
    size = asset.source_size if asset.source_size is not None else asset.size
    # The identity too: a file replaced by another with equal size and
    # mtime (cp -p, a reproducible build) has other bytes.
    return (size == st.st_size and asset.mtime_ns == st.st_mtime_ns
            and asset.ino == st.st_ino and asset.dev == st.st_dev)


def _file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells that a file was replaced or rewritten, for one ``stat``."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


#: Every index alive in this process, for reload_changed().
_LIVE: weakref.WeakSet[Assets] = weakref.WeakSet()


def reload_changed() -> list[Assets]:
    """Load again every index of this process whose roots now resolve
    elsewhere or whose manifest changed; return those that did."""
    return [a for a in list(_LIVE) if a.reload_if_changed()]


def _held(item: Asset | Variant) -> int:
    return len(item.body) if item.body is not None else 0


#: Paths of FIFOs, sockets and devices, and of entries that could not be
#: stat'ed (a path too long), already warned about by _walk.
_special_warned: set[str] = set()


def _walk(root: str, include_dotfiles: bool, stat_files: bool = True):
    """Yield ``(path, abs_path, stat, variants)`` for every regular file.
    With ``stat_files=False``, ``stat`` is None for files that are not
    symlinks: their type comes from the directory listing (``d_type``),
    without a ``stat`` call per file.

    Symlinks are followed only while they resolve inside the root; a link
    to one of its own ancestors (a loop) is not entered, found by the
    (device, inode) of the directories above it. FIFOs, sockets and
    devices are skipped: opening a FIFO would block the indexer forever.
    Precompressed variants (``x.br``, ``x.gz``, ``x.zst`` beside ``x``) are
    reported with their file, never as files of their own.
    """
    real_root = os.path.realpath(root)
    stack: list[tuple[str, str, frozenset]] = [(real_root, "", frozenset())]
    visits: dict[tuple[int, int], int] = {}
    while stack:
        directory, rel, ancestors = stack.pop()
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in ancestors:
                continue
            # Aliases multiply: a chain of directories each holding two links
            # to the next reaches the last one 2**depth times, so a hostile
            # tree of 30 directories would never finish indexing.
            entered = visits.get((st.st_dev, st.st_ino), 0)
            if entered >= MAX_ALIASES:
                log.warning("bustware: not entering %r: more than %d symlinked paths lead "
                            "to that directory", directory, MAX_ALIASES)
                continue
            visits[(st.st_dev, st.st_ino)] = entered + 1
            ancestors = ancestors | {(st.st_dev, st.st_ino)}
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.warning("bustware: cannot list %r: %s", directory, exc)
            continue
        files: dict[str, tuple[str, os.stat_result | None]] = {}
        for entry in entries:
            name = entry.name
            if name.startswith(".") and not include_dotfiles:
                continue
            abs_path = entry.path
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                # Bytes that are not UTF-8 come back as lone surrogates, which
                # no URL can carry (quote() raises on them).
                log.warning("bustware: skipping %r: its name is not UTF-8", abs_path)
                continue
            try:
                if entry.is_symlink():
                    target = os.path.realpath(abs_path)
                    if os.path.commonpath([target, real_root]) != real_root:
                        log.info("bustware: skipping %r: symlink leaves the root", abs_path)
                        continue
                elif not stat_files and entry.is_file(follow_symlinks=False):
                    files[name] = (abs_path, None)
                    continue
                est = os.stat(abs_path)
            except OSError as exc:
                # A dangling symlink or a loop is skipped silently; anything
                # else (a path too long for the system) once per path.
                if exc.errno not in (errno.ENOENT, errno.ELOOP) \
                        and abs_path not in _special_warned:
                    if len(_special_warned) < 10_000:
                        _special_warned.add(abs_path)
                    advice = "; move it nearer the root" \
                        if exc.errno == errno.ENAMETOOLONG else ""
                    log.warning("bustware: skipping %r: %s%s", abs_path, exc.strerror, advice)
                continue
            if stat.S_ISDIR(est.st_mode):
                stack.append((abs_path, f"{rel}{name}/", ancestors))
            elif stat.S_ISREG(est.st_mode):
                files[name] = (abs_path, est)
            elif abs_path not in _special_warned:
                # Once per path: development mode walks the tree every second.
                if len(_special_warned) < 10_000:
                    _special_warned.add(abs_path)
                log.warning("bustware: skipping %r: not a regular file (a FIFO, socket or "
                            "device is never served)", abs_path)
        for name, (abs_path, est) in files.items():
            stem, dot, suffix = name.rpartition(".")
            if dot and f".{suffix}" in VARIANT_SUFFIXES and stem in files:
                continue
            variants = {}
            for vsuffix, encoding in VARIANT_SUFFIXES.items():
                other = files.get(name + vsuffix)
                if other is not None and content_encoding(name) is None:
                    variants[encoding] = other[0]
            yield f"{rel}{name}", abs_path, est, variants


def _check_roots(root) -> list[str]:
    if isinstance(root, (str, os.PathLike)):
        roots = [root]
    elif isinstance(root, (list, tuple)):
        roots = list(root)
    else:  # bytes, None, an app passed in root's place, a set (no order), ...
        raise TypeError(
            f"bustware: root={root!r} is not a directory; pass the directory that holds "
            "your static files as a str or pathlib.Path, or a list of them"
        )
    if not roots:
        raise ValueError("bustware: root=[] names no directory; pass at least one")
    checked = []
    for r in roots:
        if not isinstance(r, (str, os.PathLike)):
            raise TypeError(f"bustware: root {r!r} is not a path; pass a directory name")
        path = os.path.abspath(os.fspath(r))
        if not os.path.exists(path):
            raise ValueError(
                f"bustware: root {os.fspath(r)!r} does not exist; "
                "pass the directory that holds your static files"
            )
        if not os.path.isdir(path):
            raise ValueError(
                f"bustware: root {os.fspath(r)!r} is not a directory; "
                "pass the directory that holds your static files, not a file"
            )
        checked.append(path)
    return checked


def _check_base_url(base_url: object) -> str:
    """``""`` for none; else ``scheme://host[:port]`` without a trailing slash."""
    if base_url is None or base_url == "":
        return ""
    how = ("pass the scheme and host of the CDN only, e.g. 'https://cdn.example.com' "
           "or '//cdn.example.com' (the prefix gives the path)")
    if not isinstance(base_url, str):
        raise TypeError(f"bustware: base_url={base_url!r} is not a string; {how}")
    if not base_url.isascii() or any(c <= " " or c == "\x7f" or c in "\\\"'<>`{}|^"
                                      for c in base_url):
        raise ValueError(f"bustware: base_url={base_url!r} has characters a URL may not "
                         f"hold (write a non-ASCII host in its xn-- form); {how}")
    trimmed = base_url[:-1] if base_url.endswith("/") else base_url
    try:
        parts = urlsplit(trimmed)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        raise ValueError(f"bustware: base_url={base_url!r} is not a valid URL ({exc}); "
                         f"{how}") from None
    if parts.scheme not in ("http", "https", "") or not parts.hostname or \
            (parts.scheme == "" and not trimmed.startswith("//")):
        raise ValueError(f"bustware: base_url={base_url!r} needs the scheme http or https, "
                         f"or '//' for the page's own scheme; {how}")
    if parts.path or parts.query or parts.fragment or "?" in trimmed or "#" in trimmed:
        raise ValueError(f"bustware: base_url={base_url!r} may not have a path, query or "
                         f"fragment; {how}")
    if "@" in parts.netloc:
        raise ValueError(f"bustware: base_url={base_url!r} may not hold a user name or "
                         f"password; {how}")
    return trimmed


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.endswith("/"):
        raise ValueError(
            f"bustware: prefix={prefix!r} must start and end with '/', e.g. '/static/'"
        )
    if any(ch in prefix for ch in "?#\r\n\x00"):
        raise ValueError(
            f"bustware: prefix={prefix!r} may not contain '?', '#' or control characters"
        )
    if prefix.startswith("//"):
        # A browser reads "//static/x.css" as the host "static".
        raise ValueError(
            f"bustware: prefix={prefix!r} starts with '//', which a browser reads as a "
            "host name; pass a path such as '/static/', and a CDN host as base_url="
        )
    return prefix


def _check_extensions(extensions) -> tuple[str, ...] | None:
    if extensions is None:
        return None
    if isinstance(extensions, str):
        raise TypeError(
            f"bustware: extensions={extensions!r} must be a list of suffixes, "
            "e.g. ['.css', '.js'], not a single string"
        )
    exts = tuple(e.lower() for e in extensions)
    for e in exts:
        if not e.startswith(".") or len(e) < 2:
            raise ValueError(
                f"bustware: extension {e!r} must start with a dot, e.g. '.css'"
            )
    return exts
