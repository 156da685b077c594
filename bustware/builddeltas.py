"""The build's part of delta updates (bustware.dictionaries): for each
file of the new generation, its bytes in the ``dcz`` coding against each
kept earlier version's bytes, stored as objects like the other variants and
recorded in the manifest under the file's ``deltas``, by the dictionary's
SHA-256. Made at build time so that no request waits on a compression: a
server only looks the delta up.

On by default when earlier generations are kept (``keep > 0``) and the
``zstandard`` package is installed: the kept versions exist for the pages
still in browsers, and their returning visitors are the ones a delta
serves. Only text-like files changed since a kept generation get one, so
the build time it adds is that of the files a deploy changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Callable, Optional

from .compress import is_compressible
from .dictionaries import MIN_SIZE, encode_dcz
from .store import Store, StoreError

__all__ = ["BUILD_MAX_SIZE", "DeltaBuild", "add_deltas", "deltas_available"]

#: Files (and dictionaries) larger than this get no delta: the encoder's
#: window, which a browser must hold, grows with the dictionary.
BUILD_MAX_SIZE = 16 * 1024 * 1024

#: (new digest, dictionary digest) -> (object, size) of the delta, or None
#: when it is not worth sending: kept across a build's retries.
Made = dict[tuple[str, str], Optional[tuple[str, int]]]


def deltas_available() -> bool:
    """Whether the codec deltas need is installed."""
    return importlib.util.find_spec("zstandard") is not None


class DeltaBuild:
    """The deltas of one build: whether it makes them (``wanted``: None for
    the default, on with ``keep > 0`` and zstandard), and those made, kept
    across the build's retries of its manifest."""

    def __init__(self, wanted: bool | None, keep: int) -> None:
        self.on = (keep > 0 and deltas_available()) if wanted is None else bool(wanted)
        self.made: Made = {}

    def add(self, data: dict, store: Store, put: Callable[[bytes, str], None]) -> int:
        """Record the deltas in ``data`` (see :func:`add_deltas`); how many."""
        return add_deltas(data, store, put, self.made) if self.on else 0


def add_deltas(data: dict, store: Store, put: Callable[[bytes, str], None], made: Made) -> int:
    """Record in ``data`` (a manifest about to be written) the delta of each
    current file against each kept version of it, making and storing (with
    ``put(bytes, digest)``) those not in ``made``. Returns how many."""
    kept: dict[str, set[str]] = {}
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            kept.setdefault(path, set()).add(rec["digest"])
    count = 0
    for path, rec in data["files"].items():
        rec.pop("deltas", None)
        olds = kept.get(path)
        size = rec.get("served", {}).get("size", rec["size"])
        if not olds or not MIN_SIZE <= size <= BUILD_MAX_SIZE or not is_compressible(path):
            continue
        deltas = {}
        for old in sorted(olds - {rec["digest"]}):
            key = (rec["digest"], old)
            if key not in made:
                made[key] = _make(store, put, rec["digest"], old)
            if made[key] is not None:
                obj, obj_size = made[key]  # type: ignore[misc]
                deltas[old] = {"object": obj, "size": obj_size}
        if deltas:
            rec["deltas"] = deltas
            count += len(deltas)
    return count


def _make(store: Store, put: Callable[[bytes, str], None], new_digest: str,
          old_digest: str) -> tuple[str, int] | None:
    try:
        if store.object_size(old_digest) > BUILD_MAX_SIZE:
            return None
        new = store.get_object(new_digest)
        old = store.get_object(old_digest)
    except (StoreError, OSError):
        return None  # bytes not stored (keep=0 before): no delta, the full file serves
    if (hashlib.sha256(new).hexdigest() != new_digest
            or hashlib.sha256(old).hexdigest() != old_digest):
        return None
    body = encode_dcz(old, new)
    if len(body) >= len(new):
        return None
    digest = hashlib.sha256(body).hexdigest()
    put(body, digest)
    return digest, len(body)
