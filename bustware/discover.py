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
from typing import TYPE_CHECKING, Callable

from .entries import Entry
from .files import file_key
from .records import Asset

if TYPE_CHECKING:
    from .assets import Assets

log = logging.getLogger("bustware")


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
        self.reset()

    def reset(self) -> None:
        """Forget what was found: the index was loaded again."""
        #: (path, version) -> record, of the newer manifest last read
        #: (bustware.from_manifest.stored_versions), and the entries made of them.
        self.newer: dict[tuple[str, str], dict] = {}
        self.newer_entries: dict[tuple[str, str], Entry | None] = {}
        self.manifest_seen = self.assets.manifest_stat
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
        from .manifest import objects_dir

        assets = self.assets
        asset = stored_asset(assets, path, rec, objects_dir(assets.manifest_path))
        entry = None if asset is None else self.make_entry(asset)
        # Two threads may both make it: equal entries, the last one kept.
        entries[key] = entry
        return entry

    def _reread_manifest(self) -> None:
        from . import manifest as mf
        from .from_manifest import check_settings, stored_versions

        assets = self.assets
        name = assets.manifest_path
        try:
            key = file_key(os.stat(name))
        except OSError:
            return
        if key == self.manifest_seen:
            return
        self.manifest_seen = key
        try:
            data = mf.read(name)
            check_settings(assets, data["settings"], name)
        except mf.ManifestError as exc:
            log.warning("bustware: not looking for newer versions in %r: %s", name, exc)
            return
        self.newer, self.newer_entries = stored_versions(data), {}
