"""Where a file's version comes from.

The default is a digest of the file's bytes: the same bytes give the same
version on every machine, whatever the mtime or checkout time, so replicas
behind a load balancer agree on every URL.

Why SHA-256 cut to 12 hex characters (48 bits): a version only has to differ
from the *other versions of the same path*, not from every file in the world.
The chance that any two of a file's 10,000 revisions share a version is about
n**2 / 2**49, roughly 2e-7. The full digest is still kept for the ETag and
for subresource integrity.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Union

__all__ = [
    "DIGEST_LENGTH",
    "VersionSource",
    "digest_bytes",
    "make_version_source",
    "validate_version",
]

DIGEST_LENGTH = 12

#: A callable ``(path, abs_path) -> str``: ``path`` is the logical, slash
#: separated path relative to the root; ``abs_path`` the file on disk.
VersionFunc = Callable[[str, str], str]
VersionSource = Union[str, VersionFunc]

# A version travels inside a file name, a path segment or a query string, and
# the filename style finds it again by its position between dots, so it must
# never contain a dot, a slash or anything that needs percent-encoding.
VERSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def digest_bytes(data: bytes) -> str:
    """The full lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def validate_version(version: object, where: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ValueError(
            f"bustware: invalid version {version!r} from {where}: a version must be "
            "1 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (no dots or slashes), "
            "because it is placed inside file names and URL segments"
        )
    return version


def is_digest_source(source: object) -> bool:
    """Whether ``source`` (from make_version_source) versions a file by the
    first DIGEST_LENGTH characters of its digest: a loop over thousands of
    files (a scan, a manifest start) then slices the digest instead of
    calling it."""
    return type(source) is _Digest


class _Digest:
    """Version = first DIGEST_LENGTH characters of the content digest."""

    name = "digest"
    needs_digest = True

    def __call__(self, path: str, abs_path: str, digest: str, mtime: float) -> str:
        return digest[:DIGEST_LENGTH]


class _Mtime:
    """Version = the file's mtime in whole seconds, as the seed articles do.

    Replicas only agree if their checkouts have the same mtimes; the README
    says so. The ETag is still the content digest.
    """

    name = "mtime"
    needs_digest = False

    def __call__(self, path: str, abs_path: str, digest: str, mtime: float) -> str:
        return str(int(mtime))


class _Constant:
    """One version for every file: a release id or a git commit."""

    name = "release"
    needs_digest = False

    def __init__(self, release: str) -> None:
        self.release = validate_version(release, "release=")

    def __call__(self, path: str, abs_path: str, digest: str, mtime: float) -> str:
        return self.release


class _Custom:
    name = "callable"
    needs_digest = False

    def __init__(self, func: VersionFunc) -> None:
        self.func = func

    def __call__(self, path: str, abs_path: str, digest: str, mtime: float) -> str:
        return validate_version(self.func(path, abs_path), f"version callable for {path!r}")


def make_version_source(version: VersionSource, release: str | None):
    """Turn the ``version=`` / ``release=`` arguments into a source object."""
    if release is not None:
        if version != "digest":
            raise ValueError(
                f"bustware: release={release!r} and version={version!r} conflict: "
                "a release id is itself the version of every file; pass only one of them"
            )
        return _Constant(release)
    if version == "digest":
        return _Digest()
    if version == "mtime":
        return _Mtime()
    if callable(version):
        return _Custom(version)
    raise ValueError(
        f"bustware: unknown version={version!r}: use 'digest' (default), 'mtime', "
        "a callable (path, abs_path) -> str, or release='<id>' for one version for all files"
    )
