"""``bustware build``: index a tree once, ahead of time, into a manifest.

One pass reads every file once, in parallel threads (hashlib releases the
GIL), and computes from the same bytes the SHA-256 (version, ETag), the
SHA-384 (subresource integrity), and with ``keep > 0`` a copy of the bytes in
the object store. The index itself is then built by
:class:`~bustware.assets.Assets` from those results, without reading the
files again, so versions and rewritten bytes are exactly what a live process
would compute. The compressed variants are made meanwhile, on one thread per
core (see :mod:`bustware.compressqueue`): a file's as soon as it is read, a
stylesheet's or script's once the index knows the bytes it serves.

The manifest is written atomically (see :mod:`bustware.manifest`). Objects
that the manifest it replaces used, and the new one does not, are kept (a
process loaded from the old manifest still serves them) and listed under
``"retired"``; the next build deletes them if it does not use them either, or
``prune`` does. Nothing else in the object store, and nothing outside it, is
ever deleted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import logging
import os
import re
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from . import compressqueue
from . import manifest as mf
from .about import __version__
from .assets import Assets
from .compress import check_encodings, is_compressible
from .compressqueue import CompressQueue, Source, cores
from .files import VARIANT_SUFFIXES, PathLike, open_regular, walk
from .memory import MemoryPolicy
from .options import check_roots
from .references import kind_of as _linkable
from .scan import read_file

__all__ = ["BuildReport", "Progress", "PruneReport", "build", "parse_age", "prune", "verify"]

log = logging.getLogger("bustware")

_CHUNK = 1 << 20
_SUFFIXES = {encoding: suffix for suffix, encoding in VARIANT_SUFFIXES.items()}


@dataclass
class BuildReport:
    manifest_path: str
    files: int = 0
    bytes_read: int = 0
    variants: int = 0
    objects_written: int = 0
    objects_removed: int = 0
    #: Objects only the replaced manifest uses, kept for its processes.
    objects_retired: int = 0
    generation: int = 0
    new_generation: bool = False
    kept_generations: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = "new generation" if self.new_generation else "no version changed; generation"
        return (f"bustware: {self.files} files ({_size(self.bytes_read)}) -> "
                f"{self.manifest_path} in {self.seconds:.2f}s; {what} {self.generation}, "
                f"{self.kept_generations} earlier kept; {self.variants} compressed variants; "
                f"{self.objects_written} objects written, {self.objects_removed} removed"
                + (f", {self.objects_retired} kept for processes of the build before (until "
                   "the next build or `bustware prune`)" if self.objects_retired else ""))


@dataclass
class PruneReport:
    manifest_path: str
    dropped: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    objects_removed: int = 0
    #: Objects only the manifest before the last build used (kept for the
    #: processes that still served it), released by this prune.
    retired_released: int = 0

    def summary(self) -> str:
        if not self.dropped and not self.retired_released:
            return f"bustware: nothing to prune in {self.manifest_path}"
        parts = []
        if self.dropped:
            parts.append(f"dropped generation{'s' if len(self.dropped) > 1 else ''} "
                         f"{', '.join(map(str, self.dropped))}; kept "
                         f"{', '.join(map(str, self.kept)) or 'none'} besides the current one")
        if self.retired_released:
            parts.append(f"released {self.retired_released} objects that only the build "
                         "before the current one used")
        return (f"bustware: {self.manifest_path}: {'; '.join(parts)}; "
                f"{self.objects_removed} stored objects removed")


@dataclass
class _Info:
    """What the parallel pass learned about one file."""

    st: os.stat_result
    sha256: str
    sha384: bytes
    body: bytes | None


class Progress:
    """A one-line progress bar on a terminal (stderr); silent elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.bytes = 0
        self._clock = clock
        self._started = clock()
        self._shown = float("-inf")

    def advance(self, nbytes: int) -> None:
        self.done += 1
        self.bytes += nbytes
        now = self._clock()
        # Redrawing costs a write per file; ten times a second is enough.
        if now - self._shown >= 0.1 or self.done == self.total:
            self._shown = now
            filled = self.width * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = now - self._started
            pace = ""
            if elapsed > 0:
                rate = self.done / elapsed
                left = round((self.total - self.done) / rate)
                shown = f"{rate:.1f}" if rate < 10 else f"{rate:,.0f}"
                pace = f", {shown} files/s, {_duration(left)} left"
            self.stream.write(f"\rbustware: [{bar}] {self.done}/{self.total} files, "
                              f"{_size(self.bytes)}{pace}\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[K")  # erase the bar; the summary follows
        self.stream.flush()


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def wants_progress(stream: TextIO, quiet: bool) -> bool:
    """A bar only for a person at a terminal: not in CI, not with --quiet."""
    if quiet or os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# -- build -------------------------------------------------------------------


def build(
    root: PathLike | Sequence[PathLike],
    out: PathLike | None = None,
    *,
    prefix: str = "/static/",
    style: str = "filename",
    query_param: str = "v",
    base_url: str | None = None,
    rewrite_references: bool = True,
    compress: Iterable[str] = (),
    keep: int | None = None,
    workers: int | None = None,
    include_dotfiles: bool = False,
    bundler_manifest: PathLike | Sequence[PathLike] | None = None,
    progress: Callable[[int], Progress | None] | None = None,
) -> BuildReport:
    """Index ``root`` and write its manifest (``ROOT/.bustware/manifest.json``
    unless ``out`` is given). ``keep``: how many earlier generations to keep,
    bytes included (default: as many as the existing manifest keeps, else 0).
    ``bundler_manifest``: as for :class:`Assets`, so that stylesheets name the
    files a bundler hashed by their own URLs; the index that loads the
    manifest must be given it too.
    ``workers``: threads that compress at once (default: one per CPU this
    process may use; the reads use a few more); the output does not depend
    on it.
    ``progress``: called with the number of files, returns a :class:`Progress`
    or ``None``."""
    started = time.monotonic()
    roots = check_roots(root)
    encodings = check_encodings(compress)  # a missing extra fails before any work
    if keep is not None and (type(keep) is not int or keep < 0):
        raise ValueError(f"bustware: keep={keep!r} must be a count of generations >= 0")
    if workers is not None and (type(workers) is not int or workers < 1):
        raise ValueError(f"bustware: workers={workers!r} must be a number of threads >= 1, "
                         "or None for one per CPU")
    manifest_path = os.path.abspath(os.fspath(out)) if out is not None \
        else mf.default_path(roots[0])
    report = BuildReport(manifest_path)
    old = _read_existing(manifest_path)
    if keep is None:
        keep = old["keep"] if old is not None else 0
    objects = mf.objects_dir(manifest_path)
    store = _Store(objects)
    is_own = _own_files(manifest_path)

    # 1. Which files: the same walk as the index, first root wins.
    jobs: dict[str, tuple[int, str, bool, tuple[str, ...]]] = {}  # abs -> (root, path, ...)
    seen: set[str] = set()
    for i, r in enumerate(roots):
        for path, abs_path, _st, variant_paths in walk(r, include_dotfiles, False):
            if path in seen or is_own(abs_path):
                continue
            seen.add(path)
            wanted = tuple(e for e in encodings if e not in variant_paths) \
                if is_compressible(path) else ()
            jobs[abs_path] = (i, path, True, wanted)
            for vpath in variant_paths.values():
                jobs.setdefault(vpath, (i, path, False, ()))

    # 2. Read each file once, in parallel; its codings are made meanwhile,
    # on one thread per core, while the reads and the index go on.
    bar = _Tally(progress(len(jobs))) if progress is not None else None
    infos: dict[str, _Info] = {}
    threshold = 256 * 1024
    budget = 64 * 1024 * 1024
    held = 0
    queue = CompressQueue(store, workers or cores())
    try:
        with queue, ThreadPoolExecutor(max_workers=workers or min(32, cores() + 4)) as ex:
            futures = {ex.submit(_digest_file, abs_path, store, keep > 0 and main, threshold):
                       abs_path for abs_path, (_i, _p, main, _w) in jobs.items()}
            later: dict[str, tuple[str, ...]] = {}  # compressed once the index is built
            for future in as_completed(futures):
                abs_path = futures[future]
                try:
                    info, data = future.result()
                except OSError as exc:
                    # Reported once, in report.warnings (the CLI prints them).
                    report.warnings.append(f"cannot read {abs_path!r}: {exc}")
                    if bar is not None:
                        bar.advance(0)
                    continue
                linkable = _linkable(abs_path) is not None
                if info.body is not None and not linkable:
                    if held + len(info.body) > budget:
                        info.body = None
                    else:
                        held += len(info.body)
                infos[abs_path] = info
                report.bytes_read += info.st.st_size
                wanted = jobs[abs_path][3]
                if wanted and rewrite_references and linkable:
                    # A stylesheet or script may be rewritten (its references
                    # get versioned URLs): its codings are made once the index
                    # knows which bytes it serves, so no byte is compressed twice.
                    later[abs_path] = wanted
                elif wanted:
                    queue.add(_source(info, abs_path, data), wanted,
                              bar.done(info.st.st_size) if bar is not None else None)
                elif bar is not None:
                    bar.advance(info.st.st_size)

            # 3. The index, from what was read: versions, references, rewritten
            # bytes; then the codings of the stylesheets and scripts.
            # build() reports broken references once, in report.warnings
            # and the manifest: the index does not log them.
            assets = Assets(roots, prefix, style=style, query_param=query_param,
                            include_dotfiles=include_dotfiles, base_url=base_url,
                            rewrite_references=rewrite_references,
                            bundler_manifest=bundler_manifest, reader=_PassReader(infos),
                            log_missing_references=False)
            files: dict[str, Any] = {}
            compressed: list[tuple[dict, dict, str, tuple[str, ...]]] = []
            for asset in assets:
                entry = jobs.get(asset.abs_path)
                source = infos.get(asset.abs_path)
                if entry is None or source is None:
                    continue  # unreadable, or appeared after the walk
                deferred = later.pop(asset.abs_path, None) is not None
                rec, variants, made = _record(asset, entry[0], source, entry[3],
                                              not deferred, queue.write, infos)
                files[asset.path] = rec
                wanted = tuple(e for e in entry[3] if e not in variants)
                if made is not None and wanted:
                    queue.add(made, wanted, bar.done(source.st.st_size)
                              if bar is not None and deferred else None)
                elif deferred and bar is not None:
                    bar.advance(source.st.st_size)
                if wanted:
                    compressed.append((rec, variants, source.sha256 if made is None
                                       else made.digest, wanted))
                elif variants:
                    rec["variants"] = variants
            if bar is not None:  # deferred files the index left out
                for abs_path in later:
                    bar.advance(infos[abs_path].st.st_size)
            queue.join()
    finally:
        if bar is not None:
            bar.close()
    for rec, variants, digest, wanted in compressed:
        for encoding in wanted:
            made = queue.result(digest, encoding)
            if made is not None:
                variants[encoding] = {"object": made[0], "size": made[1]}
        if variants:
            rec["variants"] = variants
    report.files = len(files)
    report.variants = sum(len(r.get("variants", {})) for r in files.values())

    # 4. The manifest: a new generation only when a URL changed.
    settings = mf.settings_of(assets)
    data = _next_generation(old, files, settings, keep)
    data["compress"] = list(encodings)  # for the rebuild command messages give
    data["broken_references"] = [list(b) for b in assets.broken_references()
                                 if b[0] in files]
    for path, line, url, target in data["broken_references"]:
        report.warnings.append(f"{path} line {line}: {url!r} names {target!r}, which is "
                               "not in the index; left as written")
    report.generation = data["generation"]
    report.new_generation = old is None or data["generation"] != old["generation"]
    report.kept_generations = len(data["previous"])
    # Processes loaded from the old manifest serve its objects until they
    # are reloaded: keep them one build longer (or until `prune`), listed so
    # that the next build knows it may delete them.
    used = mf.referenced_objects(data)
    replaced = mf.referenced_objects(old) if old is not None else set()
    retired_before = set(old.get("retired", ())) if old is not None else set()
    if old is not None and not report.new_generation:
        retired = retired_before - used  # the same build again: the same promise
        retired_before = set()
    else:
        retired = replaced - used
    if retired:
        data["retired"] = sorted(retired)
    report.objects_retired = len(retired)
    mf.write(manifest_path, data)

    # 5. Only now that the new manifest is on disk: forget what it dropped,
    # and what only the manifest before the replaced one used.
    doomed = (store.created | retired_before) - used - replaced - retired
    report.objects_removed = _remove_objects(objects, doomed)
    report.objects_written = len(store.created & used)
    report.seconds = time.monotonic() - started
    return report


def _read_existing(manifest_path: str) -> dict | None:
    if not os.path.exists(manifest_path):
        return None
    try:
        return mf.read(manifest_path)
    except mf.ManifestError as exc:
        # Never overwrite a file we cannot prove is ours: it may be another
        # tool's manifest.json, or a damaged one whose generations the user
        # still wants to look at.
        raise mf.ManifestError(
            f"{exc}\nbustware build will not overwrite it: move it aside as above (or pass "
            "another --out) and build again"
        ) from None


def _own_files(manifest_path: str):
    """A test for what the build itself wrote: the manifest and its object
    store. Only those: a manifest may sit in the root or above it, and the
    user's files beside it are still to be built. The walk yields real paths
    (symlinks resolved), so compare real paths."""
    manifest = os.path.realpath(manifest_path)
    objects = os.path.realpath(mf.objects_dir(manifest_path)) + os.sep
    return lambda abs_path: abs_path == manifest or abs_path.startswith(objects)


def _digest_file(abs_path: str, store: _Store, keep_bytes: bool, threshold: int
                 ) -> tuple[_Info, bytes | None]:
    """What the index needs of one file, and its bytes when read whole (for
    its compression jobs)."""
    f, st = open_regular(abs_path)  # a FIFO swapped in since the walk: an OSError
    with f:
        if st.st_size <= compressqueue.WHOLE:
            data = f.read()
            sha256 = hashlib.sha256(data).hexdigest()
            sha384 = hashlib.sha384(data).digest()
            if keep_bytes:
                store.put(data, sha256)
            # Stylesheets and scripts are searched for references by the
            # index, so their bytes are kept whatever their size: the index
            # must not read them a second time.
            keep = len(data) <= threshold or _linkable(abs_path) is not None
            return _Info(st, sha256, sha384, data if keep else None), data
        h256, h384 = hashlib.sha256(), hashlib.sha384()
        sink = store.open_temp() if keep_bytes else None
        try:
            while chunk := f.read(_CHUNK):
                h256.update(chunk)
                h384.update(chunk)
                if sink is not None:
                    sink.write(chunk)
            sha256 = h256.hexdigest()
            if sink is not None:
                store.commit_temp(sink, sha256)
                sink = None
        finally:
            if sink is not None:
                store.discard_temp(sink)
    # Too big to hold: its compression jobs stream it from the file again.
    return _Info(st, sha256, h384.digest(), None), None


def _source(info: _Info, abs_path: str, data: bytes | None) -> Source:
    return Source(info.sha256, len(data) if data is not None else info.st.st_size, data,
                  abs_path)


class _Tally:
    """The progress bar, advanced from any thread: a file counts once it
    is read and its codings are made."""

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        if self.bar is not None:
            with self._lock:
                self.bar.advance(nbytes)

    def done(self, nbytes: int) -> Callable[[], None]:
        return lambda: self.advance(nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


#: Numbers for temporary names, unique in this process (and the pid in the
#: name makes them unique across processes).
_TEMP_NAMES = itertools.count()


class _Store:
    """The content-addressed object store beside the manifest."""

    def __init__(self, objects: str) -> None:
        self.objects = objects
        self.created: set[str] = set()
        self._lock = threading.Lock()
        self._dirs: set[str] = set()  # fan-out directories known to exist

    def put(self, data: bytes, digest: str) -> None:
        """Store ``data`` unless it is there: written to a temporary file
        beside its place, flushed to disk, moved into place. A build writes
        thousands of these, so in as few system calls as that takes."""
        target = mf.object_path(self.objects, digest)
        directory = os.path.dirname(target)
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        if os.path.exists(target):
            return
        tmp = os.path.join(directory, f".tmp-{os.getpid()}-{next(_TEMP_NAMES)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                # Objects are fsync'ed like the manifest: the manifest that
                # names them is written after them, and must never name a
                # lost file.
                os.fsync(fd)
                os.chmod(fd, 0o644)
                os.utime(fd, ns=(mf.OBJECT_MTIME_NS, mf.OBJECT_MTIME_NS))
            finally:
                os.close(fd)
            self._commit(tmp, target, digest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    def _commit(self, tmp: str, target: str, digest: str) -> None:
        if os.path.exists(target):  # another build's, maybe served: left as it is
            os.remove(tmp)
            return
        os.replace(tmp, target)
        with self._lock:
            self.created.add(digest)

    def open_temp(self):
        os.makedirs(self.objects, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.objects)
        f = os.fdopen(fd, "wb")
        f.tmp_name = tmp  # type: ignore[attr-defined]
        return f

    def commit_temp(self, f, digest: str) -> None:
        # Objects are fsync'ed like the manifest: the manifest that names
        # them is written after them, and must never name a lost file.
        f.flush()
        os.fsync(f.fileno())
        f.close()
        target = mf.object_path(self.objects, digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.chmod(f.tmp_name, 0o644)
        os.utime(f.tmp_name, ns=(mf.OBJECT_MTIME_NS, mf.OBJECT_MTIME_NS))
        self._commit(f.tmp_name, target, digest)

    @staticmethod
    def discard_temp(f) -> None:
        f.close()
        with contextlib.suppress(OSError):
            os.remove(f.tmp_name)


class _PassReader:
    """The FileReader (bustware.scan) of the build's index: the bytes and
    digests of the parallel pass, not a second read from disk."""

    def __init__(self, infos: dict[str, _Info]) -> None:
        self._infos = infos

    def __call__(self, abs_path: str, memory: MemoryPolicy
                 ) -> tuple[bytes | None, str, os.stat_result]:
        info = self._infos.get(abs_path)
        if info is None:
            return read_file(abs_path, memory)
        try:
            st = os.stat(abs_path)
        except OSError:
            return read_file(abs_path, memory)
        if (st.st_size, st.st_mtime_ns) != (info.st.st_size, info.st.st_mtime_ns):
            # Changed since the pass read it: what we digested is not what
            # is there; read it again so the record matches the file.
            return read_file(abs_path, memory)
        body = info.body
        if body is not None:
            memory.used += len(body)
        return body, info.sha256, info.st


def _record(asset, root_index: int, source: _Info, wanted: Sequence[str], queued: bool,
            write: Callable[[bytes, str], None], infos: dict[str, _Info]
            ) -> tuple[dict[str, Any], dict[str, Any], Source | None]:
    """The manifest record of one file, its variants so far, and the bytes
    its ``wanted`` codings are to be made from when they are not queued
    yet (``queued``: made from the file's own bytes, queued as it was read).
    ``write(data, digest)`` stores bytes the record names."""
    rec: dict[str, Any] = {
        "root": root_index,
        "size": source.st.st_size,
        "mtime_ns": source.st.st_mtime_ns,
        "version": asset.version,
        "digest": asset.digest,
    }
    variants: dict[str, Any] = {}
    made = None
    if asset.digest == source.sha256:
        rec["integrity"] = _sri(source.sha384)
        for encoding, variant in asset.variants.items():
            vinfo = infos.get(variant.abs_path)
            if vinfo is None:
                continue
            variants[encoding] = {
                # A variant is always its file's name plus a suffix.
                "file": asset.path + _SUFFIXES[encoding],
                "size": vinfo.st.st_size, "mtime_ns": vinfo.st.st_mtime_ns,
                "digest": vinfo.sha256,
            }
        if wanted and not queued:  # not rewritten after all: its own bytes
            body = source.body
            made = Source(source.sha256, len(body) if body is not None else source.st.st_size,
                          body, asset.abs_path)
    else:
        # Served bytes differ from the file (references rewritten): they
        # live in the store, and so do their variants, made from them.
        body = asset.served_bytes() if asset.served_path is not None else asset.body
        if body is None:
            raise mf.ManifestError(
                f"bustware: {asset.abs_path!r} changed while the build read it; "
                "build again once the files stop changing")
        rec["integrity"] = _sri(hashlib.sha384(body).digest())
        write(body, asset.digest)
        rec["served"] = {"object": asset.digest, "size": len(body), "mtime": asset.mtime}
        # The index compressed the rewritten bytes for the codings found
        # beside the file; the build makes those it was asked for.
        for encoding, variant in asset.variants.items():
            # Made from the rewritten bytes: held, or in the index's private
            # file (its abs_path), never the stale file beside the source.
            data = variant.body
            if data is None:
                with open(variant.abs_path, "rb") as f:
                    data = f.read()
            digest = hashlib.sha256(data).hexdigest()
            write(data, digest)
            variants[encoding] = {"object": digest, "size": len(data)}
        if wanted:
            made = Source(asset.digest, len(body), body)
    return rec, variants, made


def _sri(sha384: bytes) -> str:
    return "sha384-" + base64.b64encode(sha384).decode("ascii")


def _next_generation(old: dict | None, files: dict, settings: dict, keep: int) -> dict:
    built_at = _now_iso()
    table = {p: (r["version"], r["digest"]) for p, r in files.items()}
    if old is not None:
        old_table = {p: (r["version"], r["digest"]) for p, r in old["files"].items()}
        same = old_table == table and old["settings"] == settings
    else:
        same = False
    stored = keep > 0
    if old is None:
        generation, previous = 1, []
    elif same:
        # Nothing a URL names changed: the same generation, kept as it was
        # (a rebuild of an unchanged tree writes the same manifest).
        generation, built_at, previous = old["generation"], old["built_at"], old["previous"]
    else:
        generation = old["generation"] + 1
        previous = list(old["previous"])
        if old["stored"] and keep > 0:
            previous.insert(0, _archive(old, files))
    return {
        "schema": mf.SCHEMA,
        "schema_version": mf.SCHEMA_VERSION,
        "generator": f"bustware {__version__}",
        "settings": settings,
        "keep": keep,
        "generation": generation,
        "built_at": built_at,
        "stored": stored,
        "files": files,
        "previous": previous[:keep],
    }


def _archive(old: dict, files: dict) -> dict:
    """The outgoing generation, as the files whose version the new one
    changes or drops: exactly the old URLs that stop being current."""
    out = {}
    for path, rec in old["files"].items():
        new = files.get(path)
        if new is not None and new["version"] == rec["version"]:
            continue
        served = rec.get("served")
        entry: dict[str, Any] = {
            "version": rec["version"], "digest": rec["digest"],
            "size": served["size"] if served is not None else rec["size"],
            "mtime_ns": rec["mtime_ns"],
        }
        variants = {e: {"object": v["object"], "size": v["size"]}
                    for e, v in rec.get("variants", {}).items() if "object" in v}
        if variants:
            entry["variants"] = variants
        out[path] = entry
    return {"generation": old["generation"], "built_at": old["built_at"], "files": out}


def _now_iso() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds.org) makes the time part of a
    # reproducible build too.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _parse_iso(text: str) -> float:
    import calendar

    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _remove_objects(objects: str, digests: Iterable[str]) -> int:
    removed = 0
    for digest in digests:
        path = mf.object_path(objects, digest)
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
    return removed


# -- verify ------------------------------------------------------------------


def verify(root: PathLike | Sequence[PathLike], manifest_path: PathLike, *,
           full: bool = False) -> list[mf.Problem]:
    """Every way the manifest no longer describes the tree: files missing,
    changed (size or mtime; with ``full``, content) or added since the build,
    and stored bytes of earlier generations that are gone."""
    roots = check_roots(root)
    name = os.path.abspath(os.fspath(manifest_path))
    data = mf.read(name)
    if data["settings"]["roots"] != len(roots):
        raise mf.ManifestError(
            f"bustware: {name!r} was built from {data['settings']['roots']} root(s), "
            f"not {len(roots)}; pass the same roots as to `bustware build`")
    problems = mf.check_tree(data, roots, name)
    bad = {p.path for p in problems}
    is_own = _own_files(name)
    files = data["files"]
    seen: set[str] = set()
    for r in roots:
        for path, abs_path, _st, _variants in walk(
                r, data["settings"].get("include_dotfiles", False), False):
            if path in seen or is_own(abs_path):
                continue
            seen.add(path)
            if path not in files:
                problems.append(mf.Problem(path, "not in the manifest (added since the build)"))
    for path, line, url, target in data.get("broken_references", []):
        problems.append(mf.Problem(
            path, f"line {line}: {url!r} names {target!r}, which is no file of the index",
            broken_reference=True))
    objects = mf.objects_dir(name)
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            obj = mf.object_path(objects, rec["digest"])
            try:
                ok = os.stat(obj).st_size == rec["size"]
            except OSError:
                ok = False
            if not ok:
                problems.append(mf.Problem(
                    path, f"the stored bytes of version {rec['version']} (generation "
                          f"{gen['generation']}) are missing or damaged: {obj}"))
    if full:
        for path, rec in files.items():
            if path in bad or "served" in rec:
                continue
            digest = hashlib.sha256()
            with open(os.path.join(roots[rec["root"]], path), "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != rec["digest"]:
                problems.append(mf.Problem(
                    path, "changed (its content differs, though its size and mtime do not)"))
    return problems


# -- prune -------------------------------------------------------------------

_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` -> seconds."""
    m = _AGE.match(text.strip().lower())
    if m is None:
        raise ValueError(
            f"bustware: --older-than {text!r} is not an age; write a number and a unit: "
            "90s, 30m, 12h, 7d or 2w"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def prune(manifest_path: PathLike, *, keep: int | None = None,
          older_than: float | None = None, now: float | None = None) -> PruneReport:
    """Drop earlier generations: those beyond the ``keep`` newest, those
    built more than ``older_than`` seconds ago; with both, only those that
    are both. The current generation is never dropped. Then delete the
    stored bytes that only the dropped generations used, and those that only
    the build before the current one used (kept by ``build`` for the
    processes that still served it: prune only once they are reloaded)."""
    if keep is None and older_than is None:
        raise ValueError("bustware: nothing to prune: pass --keep N and/or --older-than AGE")
    if keep is not None and (type(keep) is not int or keep < 0):
        raise ValueError(f"bustware: keep={keep!r} must be a count of generations >= 0")
    name = os.path.abspath(os.fspath(manifest_path))
    data = mf.read(name)
    now = time.time() if now is None else now
    report = PruneReport(name)
    kept, dropped = [], []
    for i, gen in enumerate(data["previous"]):
        beyond = keep is not None and i >= keep
        try:
            old = older_than is not None and now - _parse_iso(gen["built_at"]) > older_than
        except ValueError:
            old = False  # an unreadable date is never a reason to delete
        drop = (beyond and old) if keep is not None and older_than is not None \
            else (beyond or old)
        (dropped if drop else kept).append(gen)
    report.kept = [g["generation"] for g in kept]
    report.dropped = [g["generation"] for g in dropped]
    retired = set(data.get("retired", ()))
    if not dropped and not retired:
        return report
    before = mf.referenced_objects(data) | retired
    data = {k: v for k, v in data.items() if k != "retired"}
    data["previous"] = kept
    mf.write(name, data)
    report.retired_released = len(retired - mf.referenced_objects(data))
    report.objects_removed = _remove_objects(mf.objects_dir(name),
                                             before - mf.referenced_objects(data))
    return report


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
