"""The tree-wide version, made safe: one ``release=`` over changed bytes.

With ``release=`` every file's version is the release id, so in the
segment style (``/static/<release>/js/app.js``) a file whose bytes change
while the release stays the same would be served, new bytes under the old
URL, as immutable: browsers and CDNs that hold the old bytes keep them for
a year, and mix them with the new ones. Nothing in the URL can tell, so
the index remembers the digest of every file's served bytes per release
(a small JSON file beside the digest cache, keyed by the roots and the
prefix) and refuses to serve a release whose bytes differ from those
recorded for it, naming the file and what to do.

Relative imports between modules need nothing more: a module's specifiers
are rewritten to the versioned URLs of their targets, which in this style
share the release segment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable

__all__ = ["ReleaseReused", "check_release"]

log = logging.getLogger("bustware")

#: Releases remembered per tree: enough for rollbacks, small to read.
KEEP = 20


class ReleaseReused(ValueError):
    """A release id already served with other bytes."""


def check_release(release: str, files: Iterable[tuple[str, str]], roots: list[str],
                  prefix: str, digest_cache: object) -> None:
    """Compare ``files`` ((logical path, hex digest of served bytes)) with
    what was recorded for ``release`` of these roots and prefix under
    the index's ``digest_cache`` directory (or the default one), then
    record them. Raises :class:`ReleaseReused` naming
    the first file that changed."""
    from .digestcache import default_dir

    directory = default_dir() if digest_cache is None or isinstance(digest_cache, bool) \
        else os.fspath(digest_cache)  # type: ignore[call-overload]
    key = hashlib.sha256("\0".join([prefix, *roots]).encode("utf-8", "surrogatepass"))
    path = os.path.join(directory, f"releases-{key.hexdigest()[:24]}.json")
    try:
        with open(path, "rb") as f:
            known = json.loads(f.read())
        if type(known) is not dict:
            known = {}
    except (OSError, ValueError):
        known = {}
    current = dict(files)
    recorded = known.get(release)
    if type(recorded) is dict:
        changed = sorted(p for p, d in current.items() if recorded.get(p, d) != d)
        if changed:
            raise ReleaseReused(
                f"bustware: release={release!r} was already served with other bytes for "
                f"{changed[0]!r}{f' (and {len(changed) - 1} more)' if len(changed) > 1 else ''}"
                ": browsers and CDNs keep the old bytes under the same immutable URL. Pass a "
                "new release= for every change (such as the commit hash), or use the default "
                f"version='digest'. (Recorded in {path!r}.)")
        if current.items() <= recorded.items():
            return  # nothing new to record
        current = {**recorded, **current}
    known.pop(release, None)
    known[release] = current
    while len(known) > KEEP:
        known.pop(next(iter(known)))
    _write(path, json.dumps(known, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def _write(path: str, payload: bytes) -> None:
    directory = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".releases-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.warning("bustware: cannot record the digests of this release in %r (%s); a "
                    "release reused over changed bytes will not be detected", path, exc)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
