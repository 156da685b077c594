"""Precompressed variants: ``app.css`` -> ``app.css.br``, ``.gz``, ``.zst``.

The middleware serves these files when a client accepts their coding (see
``bustware.http``); this module writes them. Output is deterministic (the
same input gives the same bytes, on every run), so a build is reproducible and
a CDN or an rsync sees no change where there is none: gzip gets ``mtime=0``
and no file name, brotli and zstd have no timestamps to begin with.

gzip comes with Python. brotli and zstd are optional extras::

    pip install 'bustware[brotli]'   # br, via the brotli package
    pip install 'bustware[zstd]'     # zstd, via the zstandard package
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from typing import Any, BinaryIO, Callable

__all__ = [
    "ENCODINGS",
    "MIN_SAVING",
    "SKIP_SUFFIXES",
    "CodecUnavailable",
    "check_encodings",
    "compress_bytes",
    "compress_file",
    "compress_stream",
    "is_compressible",
]

log = logging.getLogger("bustware")

#: Content coding -> suffix of the variant file; the names are the
#: Accept-Encoding tokens, and the order is the default one of compress_file.
ENCODINGS = {"br": ".br", "gzip": ".gz", "zstd": ".zst"}

#: A variant is kept only when it is at least this much smaller (5%): below
#: that, the CPU a client spends decoding buys almost nothing.
MIN_SAVING = 0.05

#: Formats that are compressed already; compressing them again wastes build
#: time and never saves 5%. The variant suffixes are here too, so that a
#: variant never gets a variant of its own.
SKIP_SUFFIXES = frozenset({
    # images
    ".png", ".apng", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".heic", ".heif", ".jxl",
    # fonts
    ".woff", ".woff2",
    # archives and compressed streams
    ".gz", ".tgz", ".br", ".zst", ".zip", ".7z", ".rar", ".xz", ".bz2", ".lz", ".lzma",
    ".jar", ".apk", ".epub",
    ".zstd", ".svgz",  # ServeStatic's zstd variants; SVG stored gzip-encoded
    # audio and video
    ".mp4", ".m4v", ".m4a", ".mov", ".mkv", ".webm", ".ogg", ".oga", ".ogv", ".opus",
    ".mp3", ".aac", ".flac",
})

_EXTRAS = {"br": ("brotli", "brotli"), "zstd": ("zstandard", "zstd")}
_CHUNK = 1 << 20

# Levels: the highest that stay practical for a build step. Files are
# compressed once and served many times, so build time is cheap.
_GZIP_LEVEL = 9
_BROTLI_QUALITY = 11
_ZSTD_LEVEL = 19


class CodecUnavailable(RuntimeError):
    """The package a content coding needs is not installed. The message
    says what to install; a command-line tool can print it as is."""


def check_encodings(encodings: Iterable[str]) -> tuple[str, ...]:
    """Validate ``encodings`` and check their codecs are installed, before
    any file is written. Returns them as a tuple without duplicates."""
    if isinstance(encodings, str):
        raise TypeError(
            f"bustware: encodings={encodings!r} must be a list of codings, "
            "e.g. ('br', 'gzip'), not a single string"
        )
    checked: list[str] = []
    for encoding in encodings:
        if encoding not in ENCODINGS:
            raise ValueError(
                f"bustware: unknown encoding {encoding!r}; "
                f"use some of {', '.join(ENCODINGS)}"
            )
        if encoding not in checked:
            _codec(encoding)
            checked.append(encoding)
    return tuple(checked)


def is_compressible(path: str | os.PathLike[str]) -> bool:
    """False for files whose format is compressed already (by suffix)."""
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    return suffix not in SKIP_SUFFIXES


def compress_bytes(data: bytes, encoding: str) -> bytes:
    """``data`` in the content coding ``encoding`` ("br", "gzip" or "zstd"),
    byte for byte what :func:`compress_file` writes for the same content."""
    check_encodings([encoding])
    out = io.BytesIO()
    _compress_stream(io.BytesIO(data), out, encoding=encoding, size=len(data))
    return out.getvalue()


def compress_file(
    path: str | os.PathLike[str],
    encodings: Iterable[str] = ("br", "gzip", "zstd"),
    min_saving: float = MIN_SAVING,
) -> dict[str, str]:
    """Write precompressed variants beside ``path``: ``path + ".br"`` etc.

    Returns ``{encoding: variant path}`` for the variants kept. A variant is
    kept only when it is at least ``min_saving`` (a fraction) smaller than
    the file; files in formats that are compressed already
    (:data:`SKIP_SUFFIXES`) get none. Each variant is written to a temporary
    file in the same directory and moved into place with ``os.replace``, so
    a server never sees half a file. A variant file that already exists is
    always rewritten from the current bytes, even when it saves less than
    ``min_saving``: left alone it would be served with stale bytes, and
    deleting it would delete a file nobody asked to delete.

    Raises :class:`CodecUnavailable` (naming the extra to install) before
    writing anything when a coding's package is missing.
    """
    codings = check_encodings(encodings)
    if not 0 <= min_saving < 1:
        raise ValueError(
            f"bustware: min_saving={min_saving!r} must be a fraction in [0, 1), e.g. 0.05"
        )
    src = os.fspath(path)
    if not os.path.isfile(src):
        raise FileNotFoundError(f"bustware: cannot compress {src!r}: not a file")
    if not is_compressible(src):
        return {}
    written: dict[str, str] = {}
    with open(src, "rb") as f:
        st = os.fstat(f.fileno())
        limit = st.st_size * (1 - min_saving)
        for encoding in codings:
            f.seek(0)
            target = src + ENCODINGS[encoding]
            produce = functools.partial(_compress_stream, f, encoding=encoding,
                                        size=st.st_size)
            exists = os.path.lexists(target)
            if _write_atomic(target, st, produce, float("inf") if exists else limit):
                written[encoding] = target
    return written


def _write_atomic(target: str, src_st: os.stat_result,
                  produce: Callable[[BinaryIO], None], limit: float) -> bool:
    """Run ``produce`` into a temporary file beside ``target``; move it into
    place if it is at most ``limit`` bytes, else discard it."""
    directory, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as out:
            produce(out)
            size = out.tell()
            out.flush()
            os.fsync(out.fileno())
        if size > limit:
            os.remove(tmp)
            return False
        # mkstemp makes the file 0600; the server may run as another user
        # than the build, so the variant gets the permissions of its source.
        os.chmod(tmp, stat.S_IMODE(src_st.st_mode))
        os.replace(tmp, target)
        return True
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def compress_stream(src: BinaryIO, out: BinaryIO, *, encoding: str, size: int = -1) -> None:
    """Read ``src`` to its end and write it to ``out`` in ``encoding``, in
    1 MiB pieces (memory stays bounded for big files). ``size``, when known,
    goes into the zstd frame header; with the same input and ``size`` the
    output is byte for byte that of :func:`compress_bytes`."""
    check_encodings([encoding])
    _compress_stream(src, out, encoding=encoding, size=size)


def _compress_stream(src: BinaryIO, out: BinaryIO, *, encoding: str, size: int) -> None:
    if encoding == "gzip":
        # filename="" leaves the name out of the header, mtime=0 the time:
        # both would make the bytes depend on where and when they were made.
        with gzip.GzipFile(filename="", mode="wb", compresslevel=_GZIP_LEVEL,
                           fileobj=out, mtime=0) as gz:
            while chunk := src.read(_CHUNK):
                gz.write(chunk)
        return
    codec = _codec(encoding)
    if encoding == "br":
        compressor = codec.Compressor(quality=_BROTLI_QUALITY)
        while chunk := src.read(_CHUNK):
            out.write(compressor.process(chunk))
        out.write(compressor.finish())
    else:
        cobj = codec.ZstdCompressor(level=_ZSTD_LEVEL).compressobj(size=size)
        while chunk := src.read(_CHUNK):
            out.write(cobj.compress(chunk))
        out.write(cobj.flush())


def _codec(encoding: str) -> Any:
    if encoding == "gzip":
        return gzip
    module, extra = _EXTRAS[encoding]
    try:
        if module == "brotli":
            import brotli as codec
        else:
            import zstandard as codec
    except ImportError:
        raise CodecUnavailable(
            f"bustware: {encoding} compression needs the {module!r} package, which "
            f"is not installed: pip install 'bustware[{extra}]'"
        ) from None
    return codec
