"""The local store (:class:`LocalStore`): a manifest file and the
``objects/`` directory beside it (see :mod:`bustware.layout`), behind the
:class:`~bustware.store.Store` interface.

Objects are written as the build has always written them, in as few system
calls as that takes (a build writes thousands): a temporary file beside its
place, flushed to disk, made 0644 with the constant mtime, renamed into
place. The manifest is renamed into place too, under a lock (``flock`` on a
lock file beside it, ``.NAME.lock``), and only if it is still the version
the writer read: its tag is the SHA-256 of its bytes. A tag of the bytes,
not of the file's identity (inode, size, mtime): an inode freed by one
rename may be reused by the next within one mtime tick, and a stale
identity that matches would lose a generation; equal bytes are the one case
where writing over "another" version loses nothing.

Errors of the disk itself (no space, an I/O error) surface as
:class:`OSError`, as from any file write; a manifest that cannot be read, or
a lock that cannot be had, as :class:`~bustware.store.StoreError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO

from .files import PathLike
from .layout import OBJECT_MTIME_NS, lock_path, object_path, objects_dir, write_atomic
from .store import (
    DigestMismatch,
    ManifestConflict,
    NoSuchObject,
    StoredManifest,
    StoreError,
    StoreUnavailable,
)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LocalStore"]

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_CHUNK = 1 << 20
#: Numbers for temporary names, unique in this process (and the pid in the
#: name makes them unique across processes).
_TEMP_NAMES = itertools.count()
#: How long write_manifest waits for another process's lock.
LOCK_TIMEOUT = 60.0

# flock excludes other open files of the same lock file, in this process too;
# the emulation on NFS (POSIX locks) does not exclude threads of one process,
# so threads take a lock of their own first.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _check(digest: str) -> None:
    if type(digest) is not str or not _HEX64.match(digest):
        raise ValueError(f"bustware: {digest!r} is not an object name (a SHA-256 as 64 "
                         "lowercase hex digits)")


class LocalStore:
    """The store of the manifest at ``manifest_path`` and the objects beside
    it. Safe to use from many threads and processes at once.

    Local-only extras, for the code that serves from disk (the loader's stat
    checks, the opener's fallback to stored bytes, discovery): :attr:`objects`
    (the directory), :attr:`manifest_path` and :meth:`object_path`. An object
    opened here is a real file (``fileno()``), so a server can ``sendfile``
    it."""

    def __init__(self, manifest_path: PathLike) -> None:
        self.manifest_path = os.path.abspath(os.fspath(manifest_path))
        self.objects = objects_dir(self.manifest_path)
        #: The directory holding the manifest and objects/, for messages.
        self.url = os.path.dirname(self.manifest_path)
        self._lock_path = lock_path(self.manifest_path)
        self._dirs: set[str] = set()  # fan-out directories known to exist

    def __repr__(self) -> str:
        return f"LocalStore({self.manifest_path!r})"

    def object_path(self, digest: str) -> str:
        """The file holding the object (whether or not it is there)."""
        _check(digest)
        return object_path(self.objects, digest)

    # -- objects ---------------------------------------------------------------

    def put_object(self, digest: str, source: bytes | BinaryIO, size: int, *,
                   content_type: str | None = None,
                   headers: Mapping[str, str] | None = None) -> bool:
        """Written to a temporary file beside its place, flushed to disk,
        moved into place (content type and headers are not kept: the server
        derives them from the manifest)."""
        _check(digest)
        whole = isinstance(source, (bytes, bytearray, memoryview))
        if whole and len(source) != size:
            raise ValueError(f"bustware: object {digest}: size={size} but {len(source)} "
                             "bytes given")
        target = object_path(self.objects, digest)
        directory = os.path.dirname(target)
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        if os.path.exists(target):
            return False
        tmp = os.path.join(directory, f".tmp-{os.getpid()}-{next(_TEMP_NAMES)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        try:
            try:
                if whole:
                    view = memoryview(source)
                    while view:
                        view = view[os.write(fd, view):]
                else:
                    _copy(source, fd, digest, size)
                # Objects are fsync'ed like the manifest: the manifest that
                # names them is written after them, and must never name a
                # lost file.
                os.fsync(fd)
                os.chmod(fd, 0o644)
                os.utime(fd, ns=(OBJECT_MTIME_NS, OBJECT_MTIME_NS))
            finally:
                os.close(fd)
            if os.path.exists(target):  # another build's, maybe served: left as it is
                os.remove(tmp)
                return False
            os.replace(tmp, target)
            return True
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    def has_object(self, digest: str) -> bool:
        _check(digest)
        try:
            return stat.S_ISREG(os.stat(object_path(self.objects, digest)).st_mode)
        except OSError:
            return False

    def object_size(self, digest: str) -> int:
        _check(digest)
        path = object_path(self.objects, digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NoSuchObject(f"bustware: no object {digest} in {self.objects}") from None
        except OSError as exc:
            raise StoreError(f"bustware: cannot read {path!r}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise NoSuchObject(f"bustware: {path!r} is not a regular file")
        return st.st_size

    def open_object(self, digest: str) -> BinaryIO:
        _check(digest)
        try:
            return open(object_path(self.objects, digest), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NoSuchObject(f"bustware: no object {digest} in {self.objects}") from None

    def get_object(self, digest: str) -> bytes:
        with self.open_object(digest) as f:
            return f.read()

    def list_objects(self) -> Iterator[str]:
        try:
            fans = os.scandir(self.objects)
        except FileNotFoundError:
            return
        with fans:
            for fan in fans:
                if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(fan.path) as entries:
                    for entry in entries:
                        name = entry.name
                        # Temporary files (".tmp-...") are no objects yet.
                        if name[:2] == fan.name and _HEX64.match(name) \
                                and entry.is_file(follow_symlinks=False):
                            yield name

    def delete_objects(self, digests: Iterable[str]) -> int:
        removed = 0
        for digest in digests:
            _check(digest)
            path = object_path(self.objects, digest)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                os.remove(path)
                removed += 1
            except FileNotFoundError:
                continue
            # The fan-out directory goes too once empty; rmdir refuses otherwise.
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))
                self._dirs.discard(os.path.dirname(path))
        return removed

    # -- the manifest ----------------------------------------------------------

    def read_manifest(self) -> StoredManifest | None:
        try:
            with open(self.manifest_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(
                f"bustware: cannot read the manifest {self.manifest_path!r}: {exc}") from None
        return StoredManifest(data, hashlib.sha256(data).hexdigest())

    def write_manifest(self, payload: bytes, expected: str | None) -> str:
        if not isinstance(payload, bytes):
            raise TypeError(f"bustware: a manifest is bytes, not {type(payload).__name__}")
        with self._locked():
            now = self.read_manifest()
            if (now is None) != (expected is None) or (now is not None and now.tag != expected):
                raise ManifestConflict(
                    f"bustware: the manifest {self.manifest_path!r} "
                    + ("was written by another build since this one read it" if now is not None
                       else "was removed since this one read it"))
            write_atomic(self.manifest_path, payload)
        return hashlib.sha256(payload).hexdigest()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(self._lock_path, threading.Lock())
        with thread_lock:
            fd = self._open_lock()
            try:
                if fd is not None:
                    _lock(fd, self._lock_path)
                yield
            finally:
                if fd is not None:
                    os.close(fd)  # closing releases the lock

    def _open_lock(self) -> int | None:
        os.makedirs(os.path.dirname(self._lock_path), exist_ok=True)
        flags = getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self._lock_path, os.O_RDWR | os.O_CREAT | flags, 0o644)
        except PermissionError:
            pass  # another user's lock file, or a read-only directory
        try:
            # flock takes an exclusive lock through a read-only descriptor.
            return os.open(self._lock_path, os.O_RDONLY | flags)
        except OSError as exc:
            raise StoreError(
                f"bustware: cannot open the lock file {self._lock_path!r} ({exc.strerror}), "
                "so the manifest beside it cannot be written safely; make the directory "
                f"{os.path.dirname(self._lock_path)!r} writable for this user") from None


def _copy(source: BinaryIO, fd: int, digest: str, size: int) -> None:
    """Copy ``size`` bytes from ``source`` to ``fd`` in pieces, checking
    that they are the object's."""
    h = hashlib.sha256()
    left = size
    while left > 0:
        chunk = source.read(min(_CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        left -= len(chunk)
    if left or source.read(1) or h.hexdigest() != digest:
        raise DigestMismatch(
            f"bustware: the bytes given for object {digest} are not its bytes (another "
            "size or digest): they changed while they were read")


def _lock(fd: int, name: str) -> None:
    """Hold an exclusive lock on ``fd`` until it is closed, waiting at most
    LOCK_TIMEOUT for another process."""
    if fcntl is not None:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"bustware: another process has held the lock {name!r} for "
                        f"{LOCK_TIMEOUT:.0f}s; if no bustware build or prune is running, "
                        "the lock is held by something else: stop it and try again") from None
                time.sleep(0.01)
            except OSError:
                # A file system without locks (some network mounts): the
                # compare-and-swap below still catches a writer that came
                # first, only not one writing at the very same moment.
                return
    try:
        import msvcrt
    except ImportError:
        return
    # Windows: lock one byte; LK_LOCK retries for 10 seconds, then fails.
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"bustware: another process has held the lock {name!r} for "
                    f"{LOCK_TIMEOUT:.0f}s") from None
