"""Where the bytes of generations and the shared manifest live: the
:class:`Store` interface.

A store holds two kinds of thing:

- **objects**, each named by the SHA-256 (hex) of its content: the served
  bytes of every file's version, compressed variants, rewritten bodies and
  the bytes of kept earlier generations. An object never changes once
  written, so a copy of the right size is always the right bytes, and a put
  of an object already there is a no-op.
- **the manifest**, one JSON document (schema in :mod:`bustware.manifest`),
  read with a *tag* that names the version read, and written only if the
  version there is still the one read (compare-and-swap). Two builds racing
  into one store therefore never lose a generation: the loser gets
  :class:`ManifestConflict`, reads again, merges and retries.

The first implementation is the local directory beside a manifest file
(``objects/`` fanned out by digest, the manifest renamed into place under a
lock); an S3-compatible bucket is the second. Everything that works with
stored bytes (``build``, ``prune``, ``verify``, discovery of newer builds,
the responders serving stored bytes) goes through this interface only.

Network stores fail in ways a disk rarely does, so the contract says how:
a store that cannot be reached, times out, or answers with a server error
raises :class:`StoreUnavailable` (callers treat it as transient); a
configuration problem (no such bucket, access denied, a malformed store
URL) raises :class:`StoreError` with a message naming the value and what to
do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = [
    "DigestMismatch",
    "ManifestConflict",
    "NoSuchObject",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredManifest",
]


class StoreError(Exception):
    """The store refused or could not do what was asked. The message names
    the store, the value at fault and what to do."""


class StoreUnavailable(StoreError):
    """The store could not be reached, timed out, or failed on its side:
    worth trying again later, never a reason to serve unvouched bytes."""


class NoSuchObject(StoreError, KeyError):
    """No object with that digest is in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DigestMismatch(StoreError, ValueError):
    """The bytes given to :meth:`Store.put_object` are not those its digest
    and size name (a file that changed while it was read): nothing was
    stored. A ValueError too: the caller gave the wrong bytes."""


class ManifestConflict(StoreError):
    """The manifest changed since it was read (another build wrote it):
    read it again, merge, and write with the new tag."""


@dataclass(frozen=True)
class StoredManifest:
    """The manifest's bytes as read, and the tag naming that version of it
    (an ETag on S3; the file's identity on disk). Pass the tag back to
    :meth:`Store.write_manifest` to write only over this version."""

    data: bytes
    tag: str


@runtime_checkable
class Store(Protocol):
    """What a store offers. Objects are named by their lowercase hex
    SHA-256 digest; a method given a malformed digest raises ValueError."""

    #: Where the store is, for messages: a path, or ``s3://bucket/prefix``.
    url: str

    def put_object(self, digest: str, source: bytes | BinaryIO, size: int, *,
                   content_type: str | None = None,
                   headers: Mapping[str, str] | None = None) -> bool:
        """Store ``size`` bytes, given whole or as a readable binary stream
        (read to its end, never all at once where it is large), under
        ``digest``, atomically: a reader sees the whole object or none.
        ``content_type`` and ``headers`` (such as ``Cache-Control``) are kept
        where the store can keep them. True if written, False if an object
        with that digest was there already (then nothing is sent, nor read).
        A stream whose bytes do not have that digest and size raises
        :class:`DigestMismatch` and stores nothing (bytes given whole may be
        trusted: the caller hashed them)."""
        ...

    def has_object(self, digest: str) -> bool:
        """Whether the object is there."""
        ...

    def object_size(self, digest: str) -> int:
        """The object's size in bytes. Raises :class:`NoSuchObject`."""
        ...

    def open_object(self, digest: str) -> BinaryIO:
        """A readable binary stream of the object (the caller closes it).
        Raises :class:`NoSuchObject` when it is not there."""
        ...

    def get_object(self, digest: str) -> bytes:
        """The object's bytes, whole. Raises :class:`NoSuchObject`."""
        ...

    def list_objects(self) -> Iterator[str]:
        """The digests of every object there, in no particular order."""
        ...

    def delete_objects(self, digests: Iterable[str]) -> int:
        """Delete these objects; those already gone are skipped. Returns
        how many were deleted."""
        ...

    def read_manifest(self) -> StoredManifest | None:
        """The manifest as it is now, with its tag; None when there is
        none."""
        ...

    def write_manifest(self, payload: bytes, expected: str | None) -> str:
        """Write the manifest if the version there is still ``expected``
        (the tag :meth:`read_manifest` gave; None: only if there is no
        manifest yet). Atomic: a reader sees the old manifest or the new
        one. Returns the new tag. Raises :class:`ManifestConflict` when
        another writer came first."""
        ...
