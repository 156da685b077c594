"""Version discovery: serving a version this index does not know, that a
newer build recorded (a page rendered by an upgraded host, sent here by the
load balancer during a rolling deploy), from the manifest's object store.

Only for an index loaded from a manifest, and not in rewrite mode, whose
static view has only the current bytes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

from .entries import Entry
from .files import file_key
from .records import Asset

if TYPE_CHECKING:
    from .assets import Assets
    from .localstore import LocalStore

__all__ = ["Discovery", "Finder", "make_discovery"]

log = logging.getLogger("bustware")


class Finder(Protocol):
    """What the core asks of a discovery: the entry of a version its
    index does not route, or None; and to forget what it found."""

    def find(self, path: str, version: str) -> Entry | None: ...

    def reset(self) -> None: ...


def make_discovery(assets: Assets, make_entry: Callable[[Asset], Entry],
                   interval: float | None) -> Finder:
    """The discovery of ``assets``: from the store every replica shares
    (``store=``; bustware.bucketdiscovery), else from the manifest file and
    the objects beside it."""
    if assets.store is not None:
        from .bucketdiscovery import BucketDiscovery

        # A look-up in flight takes up to a connect and a read timeout, and
        # on the first one the client is made (boto3 imported): requests
        # waiting for it wait that long, no longer.
        return BucketDiscovery(assets, assets.store, make_entry, interval,
                               wait=3 * assets.store_timeout, cache_bytes=assets.store_cache)
    return Discovery(assets, make_entry, interval)


class Discovery:
    """The newer versions the manifest of ``assets`` names now, served by
    entries ``make_entry`` makes. The manifest is looked at again at most
    once per ``interval`` seconds, one ``stat``, by the request that finds
    the interval over; the others go on without waiting. Served only from
    the object store, whose bytes are named by their digest."""

    def __init__(self, assets: Assets, make_entry: Callable[[Asset], Entry],
                 interval: float | None) -> None:
        self.assets = assets
        self.make_entry = make_entry
        self.interval = interval
        self.lock = threading.Lock()
        self._store: LocalStore | None = None
        self.reset()

    @property
    def store(self) -> LocalStore:
        """The local store beside the manifest (made on first use: most
        processes never discover anything)."""
        if self._store is None:
            from .localstore import LocalStore

            self._store = LocalStore(self.assets.manifest_path)  # type: ignore[arg-type]
        return self._store

    def reset(self) -> None:
        """Forget what was found: the index was loaded again."""
        #: (path, version) -> record, of the newer manifest last read
        #: (bustware.from_manifest.stored_versions), and the entries made of them.
        self.newer: dict[tuple[str, str], dict] = {}
        self.newer_entries: dict[tuple[str, str], Entry | None] = {}
        self.manifest_seen = self.assets.manifest_stat
        self.tag: str | None = None  # of the manifest last parsed
        self.after = 0.0

    def find(self, path: str, version: str) -> Entry | None:
        """The entry of ``path`` at ``version``, if a newer build has it."""
        key = (path, version)
        entry = self.newer_entries.get(key)
        if entry is not None:
            return entry
        if time.monotonic() >= self.after and self.lock.acquire(blocking=False):
            try:
                self.after = time.monotonic() + self.interval
                self._reread_manifest()
            finally:
                self.lock.release()
        entries = self.newer_entries
        if key in entries:  # made already, or its bytes found missing (None)
            return entries[key]
        rec = self.newer.get(key)
        if rec is None:
            return None
        from .from_manifest import stored_asset

        asset = stored_asset(self.assets, path, rec, self.store.objects)
        entry = None if asset is None else self.make_entry(asset)
        # Two threads may both make it: equal entries, the last one kept.
        entries[key] = entry
        return entry

    def _reread_manifest(self) -> None:
        from . import manifest as mf
        from .from_manifest import check_settings, stored_versions
        from .store import StoreError

        assets = self.assets
        store = self.store
        name = store.manifest_path
        try:
            # One stat: the cheap test of whether there is anything to read.
            key = file_key(os.stat(name))
        except OSError:
            return
        if key == self.manifest_seen:
            return
        self.manifest_seen = key
        try:
            got = store.read_manifest()
            if got is None or got.tag == self.tag:
                return  # touched, not changed: nothing new to parse
            data = mf.parse(got.data, name)
            check_settings(assets, data["settings"], name)
        except (mf.ManifestError, StoreError) as exc:
            log.warning("bustware: not looking for newer versions in %r: %s", name, exc)
            return
        self.tag = got.tag
        self.newer, self.newer_entries = stored_versions(data), {}
