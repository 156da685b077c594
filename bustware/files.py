"""The file system, as the index sees it: walking a root, opening a file
that must be a regular one, reading it whole while it may be rewritten, and
a private directory for bytes that exist nowhere else.

Nothing here knows about records or the index; every other module that
touches a file of the tree goes through :func:`open_regular`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Union

from .contenttypes import content_encoding

__all__ = ["VARIANT_SUFFIXES", "NotRegularFile", "PathLike", "open_fd", "open_regular",
           "read_whole"]

log = logging.getLogger("bustware")

PathLike = Union[str, "os.PathLike[str]"]

#: Suffixes of precompressed variants and the coding each stands for.
#: ".zstd" is ServeStatic's name; ".zst" comes after it so that it wins
#: when both exist, and so that the build (which inverts this table) writes
#: ".zst".
VARIANT_SUFFIXES = {".br": "br", ".zstd": "zstd", ".zst": "zstd", ".gz": "gzip"}

_VARIANT_ENDINGS = tuple(VARIANT_SUFFIXES)
#: The variants of a file that has none: one read-only mapping for all.
_NO_VARIANTS: Mapping[str, str] = MappingProxyType({})

#: How many paths (through symlinks) may lead to one directory before the
#: walk stops entering it.
MAX_ALIASES = 16


class NotRegularFile(OSError):
    """A path to index or serve leads to a FIFO, socket, device or directory."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)


def open_regular(path: str):
    """Open ``path`` for reading, never blocking: ``(file, fstat result)``.

    ``O_NONBLOCK`` because a plain open() of a FIFO waits for a writer
    forever, and a file can be swapped for one after it was indexed; for a
    regular file the flag changes nothing on Linux. Anything but a regular
    file raises :class:`NotRegularFile`.
    """
    fd, st = open_fd(path)
    try:
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def open_fd(path: str) -> tuple[int, os.stat_result]:
    """:func:`open_regular` without the file object: ``(descriptor, fstat
    result)``; the caller closes the descriptor. The scan opens every file
    of the tree once, and a file object (a FileIO, a buffer, and the fstat
    and lseek of its readall) costs as much as the read of a small file."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_to_end(fd: int, size: int) -> bytes:
    """The bytes from the descriptor's position to the end of the file, of
    which ``size`` were expected: one read of ``size + 1`` bytes. Exactly
    ``size`` bytes is the end of a regular file (a read gives less than
    asked for at the end, and one more byte if the file grew): the scan
    reads every file of the tree, and the read that returns nothing, which
    ``FileIO.readall`` makes to find the end, is a tenth of a small file's
    cost. Any other count, and reads go on until one returns nothing."""
    data = os.read(fd, size + 1)
    if len(data) == size or not data:
        return data
    more = os.read(fd, max(size + 1 - len(data), 65536))
    if not more:
        return data
    parts = [data, more]
    while more := os.read(fd, 1 << 20):
        parts.append(more)
    return b"".join(parts)


def read_whole(fd: int, st: os.stat_result) -> tuple[bytes, os.stat_result]:
    """Read the file open at ``fd`` whole, with the fstat that goes with
    what was read.

    A file rewritten in place while we read it (truncated, then written: an
    editor or a build writing without a rename) reads short. Read again, a
    few times: a file whose bytes and digest do not match its fstat is not
    held, and is then streamed from disk, where a later in-place rewrite of
    equal size within one timestamp tick cannot be told apart."""
    data = read_to_end(fd, st.st_size)
    for _ in range(3):
        if len(data) == st.st_size:
            break
        os.lseek(fd, 0, os.SEEK_SET)
        st = os.fstat(fd)
        data = read_to_end(fd, st.st_size)
    return data, st


def file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells that a file was replaced or rewritten, for one ``stat``."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


# -- a private directory for computed bytes ------------------------------------


def make_spill_dir(owner: object) -> str:
    """A new private directory, removed when ``owner`` goes, and only by
    the process that made it (gunicorn workers forked from a preloading
    master share it and must not remove it)."""
    # Imported here, not at the top: tempfile (with shutil and random) is a
    # tenth of `import bustware`, and most indexes never spill. shutil is
    # loaded now so that a removal at exit need not import it.
    import shutil  # noqa: F401
    import tempfile

    path = tempfile.mkdtemp(prefix="bustware-")
    weakref.finalize(owner, _remove_spill_dir, path, os.getpid())
    return path


def spill(directory: str, data: bytes, digest: str) -> str:
    """Write ``data`` into ``directory`` under its digest, atomically; the
    path written. Bytes of one digest are written once."""
    path = os.path.join(directory, digest)
    if not os.path.exists(path):
        # The directory is this index's own (mode 0700), so a temporary
        # name need not be unguessable: one per process and thread, where
        # mkstemp's random names cost more than the write.
        tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
    return path


def _remove_spill_dir(path: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        import shutil  # loaded by make_spill_dir

        shutil.rmtree(path, ignore_errors=True)



# -- walking a root ------------------------------------------------------------

#: Paths of FIFOs, sockets and devices, and of entries that could not be
#: stat'ed (a path too long), already warned about by walk.
_special_warned: set[str] = set()


def walk(root: str, include_dotfiles: bool, stat_files: bool = True):
    """Yield ``(path, abs_path, stat, variants)`` for every regular file.
    With ``stat_files=False``, ``stat`` is None for files that are not
    symlinks: their type comes from the directory listing (``d_type``),
    without a ``stat`` call per file.

    Symlinks are followed only while they resolve inside the root; a link
    to one of its own ancestors (a loop) is not entered, found by the
    (device, inode) of the directories above it. FIFOs, sockets and
    devices are skipped: opening a FIFO would block the indexer forever.
    Precompressed variants (``x.br``, ``x.gz``, ``x.zst`` beside ``x``) are
    reported with their file, never as files of their own.
    """
    real_root = os.path.realpath(root)
    stack: list[tuple[str, str, frozenset]] = [(real_root, "", frozenset())]
    visits: dict[tuple[int, int], int] = {}
    while stack:
        directory, rel, ancestors = stack.pop()
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in ancestors:
                continue
            # Aliases multiply: a chain of directories each holding two links
            # to the next reaches the last one 2**depth times, so a hostile
            # tree of 30 directories would never finish indexing.
            entered = visits.get((st.st_dev, st.st_ino), 0)
            if entered >= MAX_ALIASES:
                log.warning("bustware: not entering %r: more than %d symlinked paths lead "
                            "to that directory", directory, MAX_ALIASES)
                continue
            visits[(st.st_dev, st.st_ino)] = entered + 1
            ancestors = ancestors | {(st.st_dev, st.st_ino)}
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.warning("bustware: cannot list %r: %s", directory, exc)
            continue
        files: dict[str, tuple[str, os.stat_result | None]] = {}
        for entry in entries:
            name = entry.name
            if name[0] == "." and not include_dotfiles:
                continue
            abs_path = entry.path
            if not name.isascii():
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    # Bytes that are not UTF-8 come back as lone surrogates,
                    # which no URL can carry (quote() raises on them).
                    log.warning("bustware: skipping %r: its name is not UTF-8", abs_path)
                    continue
            try:
                if entry.is_symlink():
                    target = os.path.realpath(abs_path)
                    if os.path.commonpath([target, real_root]) != real_root:
                        log.info("bustware: skipping %r: symlink leaves the root", abs_path)
                        continue
                elif not stat_files and entry.is_file(follow_symlinks=False):
                    files[name] = (abs_path, None)
                    continue
                est = os.stat(abs_path)
            except OSError as exc:
                # A dangling symlink or a loop is skipped silently; anything
                # else (a path too long for the system) once per path.
                if exc.errno not in (errno.ENOENT, errno.ELOOP) \
                        and abs_path not in _special_warned:
                    if len(_special_warned) < 10_000:
                        _special_warned.add(abs_path)
                    advice = "; move it nearer the root" \
                        if exc.errno == errno.ENAMETOOLONG else ""
                    log.warning("bustware: skipping %r: %s%s", abs_path, exc.strerror, advice)
                continue
            if stat.S_ISDIR(est.st_mode):
                stack.append((abs_path, f"{rel}{name}/", ancestors))
            elif stat.S_ISREG(est.st_mode):
                files[name] = (abs_path, est)
            elif abs_path not in _special_warned:
                # Once per path: development mode walks the tree every second.
                if len(_special_warned) < 10_000:
                    _special_warned.add(abs_path)
                log.warning("bustware: skipping %r: not a regular file (a FIFO, socket or "
                            "device is never served)", abs_path)
        if not any(name.endswith(_VARIANT_ENDINGS) for name in files):
            # Most directories hold no precompressed file: nothing to pair.
            for name, (abs_path, est) in files.items():
                yield f"{rel}{name}", abs_path, est, _NO_VARIANTS
            continue
        for name, (abs_path, est) in files.items():
            stem, dot, suffix = name.rpartition(".")
            if dot and f".{suffix}" in VARIANT_SUFFIXES and stem in files:
                continue
            variants = {}
            for vsuffix, encoding in VARIANT_SUFFIXES.items():
                other = files.get(name + vsuffix)
                if other is not None and content_encoding(name) is None:
                    variants[encoding] = other[0]
            yield f"{rel}{name}", abs_path, est, variants or _NO_VARIANTS
