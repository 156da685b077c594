"""The index of static files: what exists, its version, and its URL.

An :class:`Assets` is built once (at import time of the WSGI module, so that a
gunicorn ``preload_app`` master builds it before forking) and afterwards only
read. It is built by a scan of its roots (bustware.scan, which hands the
references between files to bustware.linker) or loaded from a build manifest
(bustware.from_manifest); its records are those of bustware.records. Nothing
here runs per request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from . import keywords, nearmiss
from .files import NotRegularFile, PathLike, file_key, open_regular
from .jsmodules import ModuleRule
from .memory import MemoryPolicy
from .options import (
    check_base_url,
    check_charset,
    check_digest_cache,
    check_extensions,
    check_manifest,
    check_memory,
    check_prefix,
    check_refresh_interval,
    check_roots,
    check_scan_threads,
)
from .records import Asset, AssetNotFound, Variant, gc_paused
from .scan import Scan, ScanSettings
from .store import Store
from .storeoption import (
    DEFAULT_CACHE,
    DEFAULT_TIMEOUT,
    check_store_cache,
    check_store_timeout,
    open_store,
)
from .styles import Style, make_style, quote_path
from .versions import VersionSource, make_version_source

if TYPE_CHECKING:
    from .bundlers import Bundlers
    from .from_manifest import Loaded
    from .importmap import ModuleGraph
    from .linker import MissingReferences
    from .scan import FileReader

__all__ = ["Asset", "AssetNotFound", "Assets", "NotRegularFile", "Variant", "open_regular"]

log = logging.getLogger("bustware")


class Assets:
    """The index of the files under ``root``.

    ``root`` is a directory or a sequence of them; when the same logical path
    exists under several roots, the first root listed wins, as with
    ``PATH`` or Django's ``STATICFILES_DIRS``.

    ``reader`` reads and digests each file for a scan (bustware.scan's
    FileReader; the default reads from disk under the memory policy): the
    build gives the bytes of its own parallel pass. ``log_missing_references``
    False does not log the references to files not in the index (the build
    reports them in its report instead).
    """

    @keywords.checked()
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
        modules: bool | str | Iterable[str] = "auto",
        base_url: str | None = None,
        manifest: PathLike | None = None,
        manifest_check: str = "error",
        bundler_manifest: PathLike | Sequence[PathLike] | None = None,
        digest_cache: bool | PathLike | None = None,
        scan_threads: int | None = None,
        reader: FileReader | None = None,
        log_missing_references: bool = True,
        store: str | Store | None = None,
        store_timeout: float = DEFAULT_TIMEOUT,
        store_cache: int = DEFAULT_CACHE,
    ) -> None:
        self.roots = check_roots(root)
        #: The roots with symlinks resolved when the index was loaded: files
        #: are opened under these, so a process keeps serving the release it
        #: loaded after a `current` link is switched to another one.
        self.real_roots = [os.path.realpath(r) for r in self.roots]
        self.prefix = check_prefix(prefix)
        self.style: Style = make_style(style, query_param)
        self._source = make_version_source(version, release)
        self.release = release
        self.extensions = check_extensions(extensions)
        self.strict = strict
        self.include_dotfiles = include_dotfiles
        self.charset = check_charset(charset)
        #: Rewrite references between files (CSS url(), @import, image-set,
        #: source map comments) to versioned URLs; see bustware.linker.
        self.rewrite_references = rewrite_references
        #: Which scripts are JavaScript modules, whose import specifiers are
        #: references too (bustware.jsmodules): "auto", globs, or False.
        self.modules = ModuleRule(modules)
        #: "https://cdn.example.com" or "//cdn.example.com" in front of every
        #: URL, so that a CDN can pull from this process; "" for none.
        self.base_url = check_base_url(base_url)
        check_memory(memory_threshold, memory_budget)
        #: What this index holds in memory, and where what does not fit
        #: goes; the live compressor counts its bytes on it too.
        self.memory = MemoryPolicy(memory_threshold, memory_budget)
        self._reader = reader
        self._log_missing = log_missing_references
        self._missing: MissingReferences | None = None  # made by the first link
        self._warned: set[str] = set()
        self._modules_graph: ModuleGraph | None = None
        self._assets: dict[str, Asset] = {}
        self._urls: dict[str, str] = {}
        #: Goes up by one each time refresh() finds a change; the middleware
        #: rebuilds its routing table when it sees a new generation.
        self.generation = 0
        check_refresh_interval(refresh_interval)
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
        self.manifest_path = check_manifest(manifest, autorefresh)
        #: The store every replica shares (``store=``; bustware.storeoption),
        #: asked for the versions this release does not have, made without
        #: a network request; None without one.
        self.store_timeout = check_store_timeout(store_timeout)
        self.store_cache = check_store_cache(store_cache)
        self.store: Store | None = open_store(store, self.store_timeout, manifest)
        #: With a store: versions of earlier generations the manifest keeps
        #: whose objects are only there, (path, version) -> record.
        self.remote_versions: dict[tuple[str, str], dict] = {}
        #: Where digests persist between starts (bustware.digestcache): None
        #: (the default) uses one with autorefresh=True, in development only;
        #: True always; a directory to keep it there; False never.
        self.digest_cache = check_digest_cache(digest_cache, autorefresh)
        #: Threads a scan reads and digests files with (bustware.scan); None
        #: gives two where this process may run on more than one CPU.
        self.scan_threads = check_scan_threads(scan_threads)
        self._types: dict[str, str] = {}  # content types by suffix, for the scan
        #: Logical names from bundler manifests -> the path of their file.
        self.aliases: dict[str, str] = {}
        self._bundlers: Bundlers | None = None
        if bundler_manifest is not None:  # imported only when used
            from .bundlers import Bundlers

            self._bundlers = Bundlers(bundler_manifest, self.prefix, self.roots)
        self.refresh()
        _LIVE.add(self)
        if autorefresh:
            # Production url() stays a bare dictionary lookup; only
            # development pays for the freshness check.
            self.url = self._url_autorefresh  # type: ignore[method-assign]

    # -- public API ---------------------------------------------------------

    @property
    def memory_threshold(self) -> int:
        """Files up to this size are held in memory (within the budget)."""
        return self.memory.threshold

    @property
    def memory_budget(self) -> int:
        """The most bytes this index holds in memory."""
        return self.memory.budget

    @property
    def memory_used(self) -> int:
        """The bytes this index holds in memory now."""
        return self.memory.used

    @property
    def spill_dir(self) -> str | None:
        """The private directory where this index keeps computed bytes that
        do not fit its memory budget (None until it needs one); files there
        are served like those under the roots."""
        return self.memory.spill_dir

    @property
    def bundler_manifests(self) -> tuple[str, ...]:
        """The absolute paths of the bundler manifests (``bundler_manifest=``)."""
        return self._bundlers.paths if self._bundlers is not None else ()

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
        return self.base_url + self.prefix + quote_path(path)

    def url_for_version(self, path: str, version: str | None) -> str:
        """The URL of ``path`` at ``version`` (``None``: the plain URL), with
        this index's base URL, prefix and style."""
        if version is None:
            return self.plain_url(path)
        url_path, query = self.style.build(path, version)
        url = self.base_url + self.prefix + quote_path(url_path)
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
        if asset.integrity is not None:
            return asset.integrity
        from .integrity import kept_integrity

        return kept_integrity(asset)

    # -- JavaScript modules (bustware.importmap) ----------------------------

    def importmap(self, pins: Mapping[str, str]) -> dict:
        """``{"imports": ..., "integrity": ...}``: ``pins`` maps bare specifiers
        (``"lit"``, folders ``"lit/"``) to logical paths (``"vendor/lit/"``)."""
        return self.module_graph().importmap(pins)

    def importmap_tag(self, pins: Mapping[str, str]) -> str:
        """The import map as a ``<script type="importmap">`` element."""
        return self.module_graph().importmap_tag(pins)

    def modulepreload(self, entry: str, pins: Mapping[str, str] | None = None) -> str:
        """``<link rel="modulepreload">`` for the static import graph of ``entry``."""
        return self.module_graph().modulepreload(entry, pins)

    def module_graph(self) -> ModuleGraph:
        """The import maps and preload lists of this index (bustware.importmap)."""
        if self._modules_graph is None:
            from .importmap import ModuleGraph

            self._modules_graph = ModuleGraph(self)
        return self._modules_graph

    def broken_references(self) -> list[tuple[str, int, str, str]]:
        """``(path, line, url as written, logical path named)`` for every
        reference to a file that is not in the index, sorted."""
        from .references import broken_references  # the finders load on first use

        return broken_references(list(self._assets.values()), self.prefix, self.modules)

    def refresh(self) -> None:
        """Rebuild the index from disk now. Files whose size and mtime did
        not change keep their digest without being read again."""
        with self._refresh_lock, gc_paused():
            if self.manifest_path is not None:
                # Imported here: a process that scans needs neither JSON
                # nor the manifest's checks.
                from .from_manifest import load

                self._install_loaded(load(self, self.manifest_path, self._manifest_check,
                                          self._source, remote=self.store is not None))
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
                changed = file_key(os.stat(self.manifest_path)) != self.manifest_stat
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
        from .digestcache import open_cache

        return open_cache(self.digest_cache, self.roots,
                          f"{self.prefix}\0{self.rewrite_references}\0{self.modules}")

    def _scan(self, cache=None) -> None:
        """Index the roots (bustware.scan). ``cache``, a DigestCache
        (refresh() passes one when digest_cache allows), gives the digests
        of files unchanged since an earlier start, which are then not read."""
        previous = self._assets
        # Resolved again at each scan: development mode follows a switched link.
        self.real_roots = [os.path.realpath(r) for r in self.roots]
        settings = ScanSettings(self.real_roots, self.include_dotfiles, self.extensions,
                                self.charset, self.prefix, self._source, self.scan_threads,
                                self.modules)
        assets = Scan(settings, self.memory, previous=previous, urls=self, types=self._types,
                      cache=cache, read=self._reader,
                      link=self._link if self.rewrite_references else None).run()
        if self.release is not None and self.style.name == "segment":
            from .releasecheck import check_release  # refuses a release reused over new bytes

            check_release(self.release, ((p, a.digest) for p, a in assets.items()),
                          self.real_roots, self.prefix, self.digest_cache)
        changed = assets.keys() != previous.keys() or any(
            previous[p] is not a for p, a in assets.items()
        )
        self._assets = assets
        self._urls = {path: asset.url for path, asset in assets.items()}
        if cache is not None:
            cache.save()
        if changed:
            self.generation += 1
        if self._bundlers is not None:
            self._apply_bundlers()

    def _link(self, records: dict[str, Asset], fresh: dict, variant_paths: dict) -> None:
        """The scan's Linker: the bundlers' files get their own URLs first
        (references to them name those), then bustware.linker rewrites."""
        if self._bundlers is not None:
            self._bundlers.prepare(records, self.plain_url)
        # Imported here: a start from a manifest, and `import bustware`, need
        # neither the linker nor the reference finders (about 3 ms).
        from .linker import MissingReferenceLog, link, not_logged

        if self._missing is None:
            self._missing = MissingReferenceLog() if self._log_missing else not_logged
        link(records, fresh, variant_paths, urls=self, version=self._source,
             memory=self.memory, missing=self._missing, modules=self.modules)

    def _install_loaded(self, loaded: Loaded) -> None:
        """Serve the records of a manifest (bustware.from_manifest.Loaded)."""
        self.real_roots = loaded.real_roots
        self.manifest_stat = loaded.identity
        self._assets = loaded.records
        self._urls = loaded.urls
        self.old_versions = loaded.old_versions
        self.remote_versions = loaded.remote_versions
        # Not kept: its per-file records would double the index's memory
        # (Assets.manifest reads it again, from the file of manifest_stat).
        self._manifest = None
        self.manifest_path = loaded.path
        self.generation += 1
        if self._bundlers is not None:
            self._apply_bundlers()

    def _apply_bundlers(self) -> None:
        """Mark the bundlers' hashed files current under their own names,
        and make their logical names resolve (bustware.bundlers)."""
        applied = self._bundlers.apply(self._assets, self.aliases, self.plain_url)
        self._assets = applied.records
        self._urls = applied.urls
        self.aliases = applied.aliases
        if applied.changed:
            self.generation += 1

    #: How messages tell the user to set an option: ``(name, value) ->
    #: advice``, or None when there is no such setting. Python keyword
    #: arguments here; each integration sets its own spelling on the indexes
    #: it makes (a Flask config key, a Django setting, a Pyramid .ini line).
    option_advice: Callable[[str, Any], str | None] = staticmethod(
        lambda name, value: f"pass {name}={value!r}")

    def _missing_url(self, path: str) -> str:
        intended = nearmiss.meant_or_refuse(path, self.prefix, self._urls, self.roots,
                                            self.strict, self.option_advice("strict", False))
        if intended is not None:
            return self.url(intended)
        if path not in self._warned:
            self._warned.add(path)
            log.warning("bustware: no file %r in the index; using its plain URL", path)
        return self.plain_url(path.lstrip("/"))


#: Every index alive in this process, for reload_changed().
_LIVE: weakref.WeakSet[Assets] = weakref.WeakSet()


def reload_changed() -> list[Assets]:
    """Load again every index of this process whose roots now resolve
    elsewhere or whose manifest changed; return those that did."""
    return [a for a in list(_LIVE) if a.reload_if_changed()]
