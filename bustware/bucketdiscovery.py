"""Discovery from the shared store (``store="s3://BUCKET/PREFIX"``): a
versioned URL this replica's release does not have, served with the bytes
the store holds for it, fetched by digest and checked.

Two kinds of URL come here, both from a page another replica rendered
during a rollout: a version a newer build (or a kept older one) recorded in
the store's manifest, and a version of an earlier generation that this
replica's own manifest keeps but whose object its image does not carry.
Everything else (the replica's own release) never asks the store.

The store down or hanging costs nothing known: the manifest is looked at by
one request at most once per ``interval`` (one conditional GET); requests
that need its answer wait for the look-up in flight, at most ``wait``
seconds, rather than answering the policy while the answer is coming; a
failure makes the store count as down until the interval is over (those
requests get the ``outdated=``/``missing=`` policy at once) and is logged
once per interval. Bytes whose digest is not the one recorded are never
served.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

from .contenttypes import content_type
from .entries import Entry
from .from_manifest import check_settings, stored_versions
from .layout import OBJECT_MTIME_NS
from .manifest import ManifestError, parse
from .objectcache import ByteLRU
from .records import EMPTY, Asset
from .store import NoSuchObject, Store, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from .assets import Assets

__all__ = ["BucketDiscovery"]

log = logging.getLogger("bustware")

#: Seconds between two log lines about the store, at least.
_MIN_LOG_INTERVAL = 1.0


class BucketDiscovery:
    """The versions the store ``store`` holds that the index ``assets`` does
    not serve from its disk, served by entries ``make_entry`` makes of the
    fetched bytes, kept in memory up to ``cache_bytes`` (least recently used
    dropped first). ``interval`` None: the store's manifest is never read,
    and only the kept generations of the index's own manifest are fetched."""

    def __init__(self, assets: Assets, store: Store, make_entry: Callable[[Asset], Entry],
                 interval: float | None, *, wait: float, cache_bytes: int) -> None:
        self.assets = assets
        self.store = store
        self.make_entry = make_entry
        self.interval = interval
        self.wait = wait
        self.cache = ByteLRU(cache_bytes)
        #: Held while the store's manifest is being read.
        self.lock = threading.Lock()
        self._fetch_guard = threading.Lock()
        self._fetching: dict[tuple[str, str], threading.Lock] = {}
        self.reset()

    def reset(self) -> None:
        """Forget what was found: the index was loaded again."""
        self.cache.clear()
        #: (path, version) -> record, of the store's manifest last read.
        self.found: dict[tuple[str, str], dict] = {}
        self.tag: str | None = None
        self.after = 0.0  # the store's manifest may be read again from then
        self.down_until = 0.0  # the store failed: not asked again before then
        self.failed: dict[tuple[str, str], float] = {}  # objects missing or bad, until
        self._logged_until = 0.0

    def find(self, path: str, version: str) -> Entry | None:
        """The entry of ``path`` at ``version`` with the store's bytes, or
        None (the caller applies its policy)."""
        key = (path, version)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        rec = self.assets.remote_versions.get(key) or self.found.get(key)
        if rec is None:
            if self.interval is None:
                return None
            self._look()
            rec = self.found.get(key)
            if rec is None:
                return None
        return self._fetch(key, rec)

    # -- the store's manifest --------------------------------------------

    def _look(self) -> None:
        """Read the store's manifest if the interval is over and nobody
        else is; wait (bounded) for a look-up another request is making."""
        if time.monotonic() >= self.after and self.lock.acquire(blocking=False):
            try:
                if time.monotonic() >= self.after:
                    self.after = time.monotonic() + self.interval  # type: ignore[operator]
                    self._read_manifest()
                    # From its end: a store that took the whole timeout to
                    # fail is not asked again at once.
                    self.after = time.monotonic() + self.interval  # type: ignore[operator]
            finally:
                self.lock.release()
        elif self.lock.locked() and self.lock.acquire(timeout=self.wait):
            self.lock.release()

    def _read_manifest(self) -> None:
        store = self.store
        name = f"{store.url}/manifest.json"
        if time.monotonic() < self.down_until:
            return
        try:
            if self.tag is None:
                got = store.read_manifest()
                if got is None:
                    self._trouble(f"no manifest at {name} yet (build into the store with "
                                  f"`bustware build ROOT --store {store.url}`)")
                    return
            else:
                changed = getattr(store, "read_manifest_if_changed", None)
                if changed is not None:
                    got = changed(self.tag)  # one conditional GET; None: unchanged
                else:
                    got = store.read_manifest()
                    if got is not None and got.tag == self.tag:
                        got = None
                if got is None:
                    return
        except NoSuchObject:
            self.found, self.tag = {}, None
            self._trouble(f"the manifest {name} is gone")
            return
        except StoreError as exc:
            self._down(exc)
            return
        self.tag = got.tag
        try:
            data = parse(got.data, name)
            check_settings(self.assets, data["settings"], name)
        except ManifestError as exc:
            self._trouble(f"not serving the versions of {name}: {exc}")
            return
        self.found = stored_versions(data, all_stored=True)

    # -- objects -------------------------------------------------------------

    def _fetch(self, key: tuple[str, str], rec: dict) -> Entry | None:
        now = time.monotonic()
        if now < self.down_until or self.failed.get(key, 0.0) > now:
            return None
        with self._fetch_guard:
            lock = self._fetching.setdefault(key, threading.Lock())
        # One request fetches an object; the others asking for it wait for
        # its bytes, bounded, rather than fetch it again.
        if not lock.acquire(timeout=self.wait):
            return None
        try:
            entry = self.cache.get(key)
            now = time.monotonic()
            if entry is not None or now < self.down_until or self.failed.get(key, 0.0) > now:
                return entry  # fetched, or failed, by the request we waited for
            data = self._get(key, rec)
            if data is None:
                return None
            entry = self.make_entry(self._asset(key, rec, data))
            self.cache.put(key, entry, len(data))
            return entry
        finally:
            lock.release()
            with self._fetch_guard:
                self._fetching.pop(key, None)

    def _get(self, key: tuple[str, str], rec: dict) -> bytes | None:
        digest = rec["digest"]
        try:
            data = self.store.get_object(digest)
        except NoSuchObject:
            return self._bad(key, f"{self.store.url} has no object {digest} for {key[0]!r} "
                                  f"version {key[1]} (`bustware verify --store "
                                  f"{self.store.url}` names what is missing)")
        except StoreUnavailable as exc:
            self._down(exc)
            return None
        except StoreError as exc:  # bytes not of their digest, access denied: this object
            return self._bad(key, str(exc))
        # Checked here too: a store is trusted with nothing it serves.
        if len(data) != rec["size"] or hashlib.sha256(data).hexdigest() != digest:
            return self._bad(key, f"the object {digest} in {self.store.url} for {key[0]!r} "
                                  f"version {key[1]} does not hold the bytes of that digest "
                                  "(delete it and build again)")
        return data

    def _asset(self, key: tuple[str, str], rec: dict, data: bytes) -> Asset:
        path, version = key
        assets = self.assets
        return Asset(
            path=path, abs_path=f"{self.store.url}/objects/{rec['digest']}", size=len(data),
            mtime=rec["mtime_ns"] // 10**9, mtime_ns=OBJECT_MTIME_NS, digest=rec["digest"],
            version=version, url=assets.url_for_version(path, version),
            content_type=content_type(path, assets.charset), body=data, variants=EMPTY)

    # -- failures ------------------------------------------------------------

    def _pause(self) -> float:
        return max(self.interval or 0.0, _MIN_LOG_INTERVAL)

    def _bad(self, key: tuple[str, str], message: str) -> None:
        self.failed[key] = time.monotonic() + self._pause()
        self._trouble(message)
        return None

    def _down(self, exc: StoreError) -> None:
        self.down_until = time.monotonic() + self._pause()
        self._trouble(f"the store did not answer, serving the outdated=/missing= policy "
                      f"for versions only it has: {exc}")

    def _trouble(self, message: str) -> None:
        """Log ``message``, unless a line was logged in this interval."""
        now = time.monotonic()
        if now >= self._logged_until:
            self._logged_until = now + self._pause()
            log.warning("bustware: %s", message)
