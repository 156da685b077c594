"""The records of the index: one :class:`Asset` per file, one
:class:`Variant` per precompressed copy of it.

Records are made by the scan (bustware.scan), the reference linker
(bustware.linker) or from a manifest (bustware.from_manifest), and read by
everything else. They are replaced (``dataclasses.replace``), never changed
in place, as a request may hold one while a scan runs.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from .files import open_regular

__all__ = ["Asset", "AssetNotFound", "Variant"]


class AssetNotFound(LookupError):
    """``url()`` was asked for a path that is not in the index."""


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
    #: memory budget is written to a private file (memory.MemoryPolicy.spill).
    served_path: str | None = None
    # Identity (st_dev, st_ino) of the file at abs_path when indexed: a file
    # opened to be streamed must be this one (bustware.opener.open_file).
    # 0 when unknown (a manifest loaded with manifest_check="off").
    dev: int = 0
    ino: int = 0
    #: The ``dcz`` deltas a build stored (bustware.builddeltas): the SHA-256
    #: of the dictionary (a kept version's served bytes) -> the delta.
    deltas: dict[str, Variant] = field(default_factory=dict)

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


#: The empty ``variants`` and ``links`` of a record: one shared read-only
#: mapping instead of two empty dicts per file (128 bytes of a record of
#: about 900). Records are replaced (dataclasses.replace), never changed.
#: The one empty, read-only mapping every record without variants or links
#: shares (one object, not one dict per file).
EMPTY: Mapping = MappingProxyType({})

_new = object.__new__


def new_asset(path: str, abs_path: str, size: int, mtime: int, mtime_ns: int, digest: str,
              version: str | None, url: str, content_type: str, body: bytes | None,
              variants: Mapping, integrity: str | None, dev: int, ino: int) -> Asset:
    """``Asset(...)`` for a file without links, every argument given, as a
    scan or a manifest start makes one per file: the generated dataclass
    ``__init__`` called with keywords costs about 1 µs a record, these
    stores a third of that (10,000 files: 7 ms of a 50 ms start). It sets
    every field (tests/test_assets.py compares it with ``Asset(...)``), so
    a field added to Asset must be added here too."""
    a = _new(Asset)
    a.path = path
    a.abs_path = abs_path
    a.size = size
    a.mtime = mtime
    a.mtime_ns = mtime_ns
    a.digest = digest
    a.version = version
    a.url = url
    a.content_type = content_type
    a.body = body
    a.variants = variants
    a.links = EMPTY
    a.source_size = None
    a.source_digest = None
    a.integrity = integrity
    a.splices = ()
    a.served_path = None
    a.dev = dev
    a.ino = ino
    a.deltas = EMPTY
    return a


def held_bytes(item: Asset | Variant) -> int:
    """The bytes ``item`` holds in memory: what it counts against an index's
    memory budget."""
    return len(item.body) if item.body is not None else 0


def unchanged(asset: Asset, st: os.stat_result) -> bool:
    """Whether the file whose ``stat`` is ``st`` is still the one ``asset``
    was recorded from, so that a rescan may keep the record."""
    size = asset.source_size if asset.source_size is not None else asset.size
    # The identity too: a file replaced by another with equal size and
    # mtime (cp -p, a reproducible build) has other bytes.
    return (size == st.st_size and asset.mtime_ns == st.st_mtime_ns
            and asset.ino == st.st_ino and asset.dev == st.st_dev)


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
