"""``bustware prune``: drop earlier generations from a store's manifest,
then the objects only they used."""

from __future__ import annotations

import os
import time

from . import manifest as mf
from .buildreport import PruneReport
from .files import PathLike
from .generations import select
from .localstore import LocalStore
from .origin import prune_keys, url_root
from .publish import parse, update
from .s3store import OriginStore
from .store import Store, StoredManifest

__all__ = ["prune"]


def prune(manifest_path: PathLike, *, keep: int | None = None,
          older_than: float | None = None, now: float | None = None,
          store: Store | None = None) -> PruneReport:
    """Drop earlier generations: those beyond the ``keep`` newest, those
    built more than ``older_than`` seconds ago; with both, only those that
    are both. The current generation is never dropped. Then delete the
    stored bytes that only the dropped generations used, and those that only
    the build before the current one used (kept by ``build`` for the
    processes that still served it: prune only once they are reloaded).
    ``store``: where the manifest and its objects are (default:
    ``manifest_path`` and the objects beside it)."""
    if keep is None and older_than is None:
        raise ValueError("bustware: nothing to prune: pass --keep N and/or --older-than AGE")
    if keep is not None and (type(keep) is not int or keep < 0):
        raise ValueError(f"bustware: keep={keep!r} must be a count of generations >= 0")
    name = os.fspath(manifest_path)
    if store is None:
        name = os.path.abspath(name)
        store = LocalStore(name)
    now = time.time() if now is None else now
    doomed: set[str] = set()
    final: dict = {}
    report = PruneReport(name)

    def step(stored: StoredManifest | None) -> dict | None:
        # Computed again from the manifest there now if another build wrote
        # one meanwhile: what this one drops is decided against that one.
        nonlocal doomed
        data = parse(stored, name)
        if data is None:
            raise mf.not_found(name)
        final.clear()
        final.update(data)
        kept, dropped = select(data["previous"], keep, older_than, now)
        report.kept = [g["generation"] for g in kept]
        report.dropped = [g["generation"] for g in dropped]
        retired = set(data.get("retired", ()))
        if not dropped and not retired:
            doomed, report.retired_released = set(), 0
            return None
        before = mf.referenced_objects(data) | retired
        data = {k: v for k, v in data.items() if k != "retired"}
        data["previous"] = kept
        after = mf.referenced_objects(data)
        report.retired_released = len(retired - after)
        doomed = before - after
        final.update(data)
        return data

    update(store, step)
    # Only now that the manifest naming none of them is written.
    report.objects_removed = store.delete_objects(doomed) if doomed else 0
    if isinstance(store, OriginStore):
        # Then the CDN-origin keys of the bytes just deleted.
        listed = store.list_public(url_root(final["settings"]))
        report.keys_removed = prune_keys(store, final, listed, doomed)
    return report
