"""A persistent cache of file digests, so that a development server that
restarts on every code edit does not read and hash the whole static tree
again.

An entry maps a file's logical path (relative to its root; the cache file
is one set of roots') to its identity, ``(st_dev, st_ino, st_size,
st_mtime_ns, st_ctime_ns)``, and what reading it gave: its SHA-256
and the references into the prefix found in it (a file with none need not be
read to be served; one with some is read, to be rewritten, but not searched
again once its bytes are checked against the digest). An entry is used only
when all five fields of a fresh ``stat`` are equal; any difference, and the
file is read as if there were no cache. The ctime cannot be set by a program
(``touch -d`` and ``os.utime`` set it to now), so a rewrite that keeps size
and mtime still shows.

Timestamps have a granularity, so a file changed twice within one tick keeps
its ctime: as git does with its index, an entry is only written for a file
whose ctime is at least :data:`SETTLE_NS` older than the moment the scan
began; a file changed since then is read again at the next start.

The cache is one JSON file per set of roots, under ``$XDG_CACHE_HOME/bustware``
(``~/.cache/bustware``), written to a temporary file and renamed over the old
one: processes starting together each write a complete file and the last
rename wins; a reader sees an old or a new file, never half of one. A cache
that cannot be read or written is ignored (logged at debug level): it only
ever saves work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import fields
from typing import Any

from .about import __version__

__all__ = ["SETTLE_NS", "DigestCache", "default_dir", "open_cache"]

log = logging.getLogger("bustware")

#: Only files whose ctime is this much older than the scan are cached.
SETTLE_NS = 2_000_000_000

#: 2: entries keyed by logical path, not absolute path (a restart parses a
#: third fewer bytes); a cache of another format is not read.
_FORMAT = "bustware-digest-cache 2"

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)
Identity = tuple[int, int, int, int, int]
#: (identity..., sha256 hex, references found: False for none, else
#: {"links": [[Reference fields..., target, suffix], ...], "problems": [...]})
Entry = list  # [identity..., sha256 hex, references], as JSON gives it


def default_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bustware")


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_cache(setting: object, roots: list[str], salt: str) -> DigestCache:
    """The cache of an index whose ``digest_cache=`` is ``setting`` (True:
    the default place; a directory: there)."""
    return DigestCache(roots, None if setting is True else os.fspath(setting), salt)  # type: ignore[arg-type]


class DigestCache:
    """The cache of one index. ``location`` is a directory (the file in it
    is named after the roots and ``salt``: what else decides an entry, such
    as the prefix that references are resolved against) or None for
    :func:`default_dir`."""

    def __init__(self, roots: list[str], location: str | None, salt: str = "") -> None:
        from .references import Reference

        # The version is in the key: a new tokenizer may find other references.
        self._ref_fields = len(fields(Reference))
        layout = ",".join(f.name for f in fields(Reference))
        key = hashlib.sha256("\0".join([_FORMAT, __version__, layout, salt, *roots])
                             .encode("utf-8", "surrogatepass"))
        directory = default_dir() if location is None else location
        self.path = os.path.join(directory, f"digests-{key.hexdigest()[:24]}.json")
        self.roots = roots
        #: Files whose ctime is older than this may be written.
        self.settled_before = time.time_ns() - SETTLE_NS  # made as the scan starts
        self.entries: dict[str, Entry] = self._load()
        self.changed = False
        self.seen: dict[str, Entry] = {}

    def _load(self) -> dict[str, Entry]:
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read())
            if type(data) is not dict or data.get("format") != _FORMAT \
                    or data.get("roots") != self.roots:
                return {}
            entries = data["files"]
            if type(entries) is not dict:
                return {}
            return {p: e for p, e in entries.items() if type(e) is list and len(e) == 7}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("bustware: ignoring the digest cache %r: %s", self.path, exc)
            return {}

    def get(self, path: str, st: os.stat_result) -> Entry | None:
        """The entry for the file at logical ``path`` if its identity is
        unchanged, else None."""
        entry = self.entries.get(path)
        # Field by field: no identity tuple made per file (a restart asks
        # for every file of the tree).
        if entry is None or entry[3] != st.st_mtime_ns or entry[2] != st.st_size \
                or entry[1] != st.st_ino or entry[0] != st.st_dev \
                or entry[4] != st.st_ctime_ns or type(entry[5]) is not str \
                or len(entry[5]) != 64 or (entry[6] is not False and type(entry[6]) is not dict):
            return None
        self.seen[path] = entry
        return entry

    def keep(self, path: str) -> None:
        """The file is still there, unchanged (the index kept its record
        without asking the cache): keep its entry."""
        entry = self.entries.get(path)
        if entry is not None:
            self.seen[path] = entry

    def put(self, path: str, st: os.stat_result, digest: str, links: Any = None) -> None:
        """Record what reading the file gave (``links``: the
        references.Links found in it, if any), if it is settled."""
        if st.st_ctime_ns >= self.settled_before or st.st_mtime_ns >= self.settled_before:
            return  # it may still change within the same timestamp tick
        old = self.entries.get(path)
        if old is not None and old[5] == digest and old[:5] == list(identity(st)):
            # The bytes an earlier start recorded (a stylesheet read again to
            # be rewritten): the same references in them, nothing new to write.
            self.seen[path] = old
            return
        found: Any = False
        if links is not None and (links.links or links.problems):
            found = {"links": [[getattr(link.reference, f.name) for f in
                                fields(link.reference)] + [link.target, link.suffix]
                               for link in links.links],
                     "problems": [list(p) for p in links.problems]}
        self.seen[path] = [*identity(st), digest, found]
        self.changed = True

    def links_of(self, entry: Entry) -> Any:
        """The references.Links an entry recorded, or None if it cannot be
        read back (then the file is searched again)."""
        from .references import Link, Links, Reference

        found = entry[6]
        try:
            n = self._ref_fields
            return Links(links=[Link(Reference(*item[:n]), item[n], item[n + 1])
                                for item in found["links"] if len(item) == n + 2],
                         problems=[(line, message) for line, message in found["problems"]])
        except (TypeError, ValueError, KeyError):
            return None

    def save(self) -> None:
        """Write the entries of this scan (files gone since are dropped), if
        any was added; atomically."""
        if not self.changed and self.seen.keys() == self.entries.keys():
            return
        payload = json.dumps({"format": _FORMAT, "roots": self.roots, "files": self.seen},
                             separators=(",", ":")).encode("utf-8", "surrogatepass")
        directory = os.path.dirname(self.path)
        tmp = None
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".digests-", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            log.debug("bustware: not writing the digest cache %r: %s", self.path, exc)
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
        self.entries, self.seen, self.changed = self.seen, {}, False
