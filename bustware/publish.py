"""Writing the next manifest into a store: read it with its tag, compute
the next one from it, write that only if the store still holds the version
read (compare-and-swap), and on a conflict (another build wrote first) read
again and compute again from what is there now, a bounded number of times.

``build`` and ``prune`` write the manifest only through :func:`update`, so
two of them racing into one store never lose a generation: the one that
comes second builds on the first one's manifest, as if it had run after it.
Objects are written before and deleted after, never in between.
"""

from __future__ import annotations

from typing import Any, Callable

from . import manifest as mf
from .store import ManifestConflict, Store, StoredManifest

__all__ = ["ATTEMPTS", "parse", "update"]

_UNREAD: Any = object()

#: How many times :func:`update` reads, computes and writes before giving up.
ATTEMPTS = 10


def parse(stored: StoredManifest | None, name: str) -> dict[str, Any] | None:
    """The manifest a store gave, validated (None when there is none);
    ``name`` says where it is in messages."""
    return None if stored is None else mf.parse(stored.data, name)


def update(store: Store, step: Callable[[StoredManifest | None], dict[str, Any] | None], *,
           first: StoredManifest | None = _UNREAD, attempts: int = ATTEMPTS) -> bool:
    """Write ``step(stored)``, the manifest that follows the ``stored`` one
    (None: leave the store as it is), over that version only. ``first``: the
    version already read, used for the first attempt instead of reading it
    again. True if a manifest was written; a manifest of the same bytes as
    the one there is not written again."""
    for attempt in range(attempts):
        stored = first if attempt == 0 and first is not _UNREAD else store.read_manifest()
        data = step(stored)
        if data is None:
            return False
        payload = mf.dumps(data)
        if stored is not None and payload == stored.data:
            return False  # nothing changed: a reloading process sees no new file
        try:
            store.write_manifest(payload, stored.tag if stored is not None else None)
            return True
        except ManifestConflict:
            continue
    raise ManifestConflict(
        f"bustware: the manifest in {store.url} changed {attempts} times while this "
        "command wrote it: other builds keep writing it; run this again once they finish")
