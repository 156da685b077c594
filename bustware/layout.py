"""Where a local store's files are, and how they are written to disk
(atomically: a temporary file, flushed, renamed).

The manifest is by default ``ROOT/.bustware/manifest.json`` (``--out``
chooses another place). Beside it, ``objects/`` holds bytes the build made or
kept, each in a file named by the SHA-256 of its content
(``objects/ab/abcdef...``), so one blob serves every generation that has
those bytes: compressed variants, rewritten bodies, and with ``--keep N`` the
bytes of earlier versions. A dot-directory is never indexed, so the manifest
does not serve itself.

Every object's mtime is set to :data:`OBJECT_MTIME_NS` when it is written,
so the manifest does not depend on when the build ran and a loader knows it
without a stat. The staleness check stats objects too and takes their real
mtime, so a copy that did not keep mtimes still serves (an object is named
by its content, so its size is all there is to check).

The bottom of the build's modules: :mod:`bustware.manifest` (the format),
:mod:`bustware.treecheck` and :mod:`bustware.localstore` build on it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable

from .files import PathLike

__all__ = [
    "MANIFEST_DIR",
    "MANIFEST_NAME",
    "OBJECT_MTIME_NS",
    "default_path",
    "lock_path",
    "object_path",
    "objects_dir",
    "own_files",
    "write_atomic",
]

MANIFEST_DIR = ".bustware"
MANIFEST_NAME = "manifest.json"
#: The mtime of every object (2001-09-09): a constant, so that two builds of
#: the same files give the same manifest, wherever and whenever they run.
OBJECT_MTIME_NS = 1_000_000_000 * 10**9


def default_path(root: PathLike) -> str:
    """Where ``bustware build ROOT`` writes its manifest by default."""
    return os.path.join(os.path.abspath(os.fspath(root)), MANIFEST_DIR, MANIFEST_NAME)



def objects_dir(manifest_path: PathLike) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(os.fspath(manifest_path))), "objects")


def object_path(objects: str, digest: str) -> str:
    """The file holding the bytes whose SHA-256 is ``digest``. Two levels, as
    git does, so no directory grows to hundreds of thousands of entries."""
    return os.path.join(objects, digest[:2], digest)


def lock_path(manifest_path: PathLike) -> str:
    """The lock file of the manifest at ``manifest_path`` (see
    :mod:`bustware.localstore`): a dot name beside it, so no scan serves it."""
    path = os.path.abspath(os.fspath(manifest_path))
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}.lock")


def own_files(manifest_path: str) -> Callable[[str], bool]:
    """A test for what the build itself wrote: the manifest, its lock file
    and its object store. Only those: a manifest may sit in the root or above
    it, and the user's files beside it are still to be built. The walk yields
    real paths (symlinks resolved), so compare real paths."""
    manifest = os.path.realpath(manifest_path)
    lock = os.path.realpath(lock_path(manifest_path))
    objects = os.path.realpath(objects_dir(manifest_path)) + os.sep
    return lambda abs_path: abs_path in (manifest, lock) or abs_path.startswith(objects)


def write_atomic(target: str, payload: bytes, mode: int = 0o644) -> None:
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; the server may run as another user.
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    # The rename itself must reach the disk, or a power cut may bring the
    # old name back. Not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
