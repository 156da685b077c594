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

The objects, then the manifest, go into a store (:mod:`bustware.store`; by
default the manifest file and ``objects/`` beside it): the manifest last,
atomically, and only over the version the build read (see
:mod:`bustware.publish`; a build that raced another one builds its
generation on that one's). Objects that the manifest it replaces used, and
the new one does not, are kept (a process loaded from the old manifest still
serves them) and listed under ``"retired"``; the next build deletes them if
it does not use them either, or ``prune`` does. Nothing else in the object
store, and nothing outside it, is ever deleted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from . import compressqueue
from . import manifest as mf
from .assets import Assets
from .bucketbuild import BucketBuild
from .buildreport import BuildReport, Progress, PruneReport, Tally, wants_progress
from .compress import check_encodings, is_compressible
from .compressqueue import CompressQueue, Source, cores
from .files import VARIANT_SUFFIXES, PathLike, open_regular, walk
from .generations import next_generation, parse_age, retire
from .layout import own_files
from .localstore import LocalStore
from .memory import MemoryPolicy
from .options import check_prefix, check_roots
from .prune import prune
from .publish import parse, update
from .references import kind_of as _linkable
from .s3store import S3Store
from .scan import read_file
from .store import DigestMismatch, Store, StoredManifest
from .storeurl import BUILD_TIMEOUTS, open_store
from .verify import verify

# BuildReport, Progress, PruneReport, wants_progress, parse_age, prune and
# verify have modules of their own; they stay importable from here.
__all__ = ["BuildReport", "Progress", "PruneReport", "build", "parse_age", "prune", "verify",
           "wants_progress"]

log = logging.getLogger("bustware")

_CHUNK = 1 << 20
_SUFFIXES = {encoding: suffix for suffix, encoding in VARIANT_SUFFIXES.items()}


@dataclass
class _Info:
    """What the parallel pass learned about one file."""

    st: os.stat_result
    sha256: str
    sha384: bytes
    body: bytes | None



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
    store: Store | str | None = None,
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
    or ``None``.
    ``store``: where the objects and the manifest go (default: the manifest
    file and ``objects/`` beside it). A bucket (``"s3://BUCKET/PREFIX"`` or
    an :class:`~bustware.s3store.S3Store`) gets every object of the
    generation, its CDN-origin keys and the manifest, which follows the
    bucket's; ``out`` then gets the same manifest and the current
    generation's objects beside it (see :mod:`bustware.bucketbuild`)."""
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
    if isinstance(store, str):
        store = open_store(store, **BUILD_TIMEOUTS)
    bucket = None
    if store is None:
        store = LocalStore(manifest_path)
    elif isinstance(store, S3Store):
        bucket = BucketBuild(store, manifest_path, check_prefix(prefix))
    first = store.read_manifest()
    if bucket is not None:
        old = bucket.existing(first, check_prefix(prefix))
        report.bucket_url = store.url
    else:
        old = _existing(first, manifest_path)
    if keep is None:
        keep = old["keep"] if old is not None else 0
    try:
        index = dict(style=style, query_param=query_param, include_dotfiles=include_dotfiles,
                     base_url=base_url, rewrite_references=rewrite_references,
                     bundler_manifest=bundler_manifest)
        return _build(roots, prefix, index, encodings, manifest_path, report, store, bucket,
                      first, old, keep, workers, progress, started)
    finally:
        if bucket is not None:
            bucket.close()


def _build(roots, prefix, index, encodings, manifest_path, report, store, bucket, first, old,
           keep, workers, progress, started) -> BuildReport:
    """The build once its store and the manifest it follows are known."""
    include_dotfiles, rewrite_references = index["include_dotfiles"], index["rewrite_references"]
    # A bucket holds every version's bytes, whatever --keep says: a replica
    # of any release must be able to fetch them by digest.
    keep_bytes = keep > 0 or bucket is not None
    objects = TrackedStore(bucket.start() if bucket is not None else store)
    is_own = own_files(manifest_path)

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
    bar = Tally(progress(len(jobs))) if progress is not None else None
    infos: dict[str, _Info] = {}
    threshold = 256 * 1024
    budget = 64 * 1024 * 1024
    held = 0
    queue = CompressQueue(objects, workers or cores())
    try:
        with queue, ThreadPoolExecutor(max_workers=workers or min(32, cores() + 4)) as ex:
            # Stylesheets and scripts may serve rewritten bytes: their own
            # are stored once the index knows (not sent, then deleted).
            defer = keep_bytes and rewrite_references
            futures = {ex.submit(_digest_file, abs_path, objects, keep_bytes and main, threshold,
                                 defer):
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
            assets = Assets(roots, prefix, **index, reader=_PassReader(infos),
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
                if defer and "served" not in rec and _linkable(asset.abs_path) is not None \
                        and source.body is not None:
                    queue.write(source.body, source.sha256)
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

    # 4. The manifest: a new generation only when a URL changed. Written
    # only over the version read; if another build wrote one meanwhile, the
    # next generation is made again against that one.
    settings = mf.settings_of(assets)
    broken = [list(b) for b in assets.broken_references() if b[0] in files]
    for path, line, url, target in broken:
        report.warnings.append(f"{path} line {line}: {url!r} names {target!r}, which is "
                               "not in the index; left as written")
    doomed: set[str] = set()
    final: dict = {}
    if bucket is not None:
        # Every object and CDN key is in the bucket before a manifest names it.
        bucket.upload(files, settings, progress)
        report.bucket = bucket.tally
        objects.created |= bucket.created

    read_first = old

    def step(stored: StoredManifest | None) -> dict:
        nonlocal doomed
        if stored is first:
            old = read_first
        elif bucket is not None:
            old = bucket.existing(stored, settings["prefix"])
        else:
            old = _existing(stored, manifest_path)
        data = next_generation(old, files, settings, keep, stored=keep_bytes)
        if bucket is not None:
            data["store"] = store.url  # a copy in another prefix is then known
        data["compress"] = list(encodings)  # for the rebuild command messages give
        data["broken_references"] = broken
        report.generation = data["generation"]
        report.new_generation = old is None or data["generation"] != old["generation"]
        report.kept_generations = len(data["previous"])
        retirement = retire(old, data, report.new_generation)
        if retirement.retired:
            data["retired"] = sorted(retirement.retired)
        report.objects_retired = len(retirement.retired)
        doomed = retirement.deletable(objects.created)
        report.objects_written = len(objects.created & retirement.used)
        final.clear()
        final.update(data)
        if bucket is not None and old is not None and bucket.unchanged(old, data):
            return None  # the local manifest still gets this build's file times
        return data

    update(store, step, first=first)
    if bucket is not None:
        bucket.publish_local(mf.dumps(final))

    # 5. Only now that the new manifest is in the store: forget what it
    # dropped, and what only the manifest before the replaced one used.
    report.objects_removed = objects.store.delete_objects(doomed) if doomed else 0
    if bucket is not None:
        bucket.clean(final, doomed)
    report.seconds = time.monotonic() - started
    return report


def _existing(stored: StoredManifest | None, manifest_path: str) -> dict | None:
    try:
        return parse(stored, manifest_path)
    except mf.ManifestError as exc:
        # Never overwrite a file we cannot prove is ours: it may be another
        # tool's manifest.json, or a damaged one whose generations the user
        # still wants to look at.
        raise mf.ManifestError(
            f"{exc}\nbustware build will not overwrite it: move it aside as above (or pass "
            "another --out) and build again"
        ) from None


class TrackedStore:
    """The store as a build writes into it (the object sink of
    :class:`~bustware.compressqueue.CompressQueue`): it remembers which
    objects this build created, the only ones it may delete again."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.created: set[str] = set()
        self._lock = threading.Lock()

    def put(self, data: bytes, digest: str) -> None:
        """Store ``data``, whose SHA-256 is ``digest``, unless it is there."""
        if self.store.put_object(digest, data, len(data)):
            with self._lock:
                self.created.add(digest)

    def put_stream(self, f: BinaryIO, digest: str, size: int) -> None:
        """Store the ``size`` bytes ``f`` reads, which the store checks
        against ``digest``, unless they are there."""
        if self.store.put_object(digest, f, size):
            with self._lock:
                self.created.add(digest)


def _digest_file(abs_path: str, store: TrackedStore, keep_bytes: bool, threshold: int,
                 defer: bool = False) -> tuple[_Info, bytes | None]:
    """What the index needs of one file, and its bytes when read whole (for
    its compression jobs)."""
    f, st = open_regular(abs_path)  # a FIFO swapped in since the walk: an OSError
    with f:
        if st.st_size <= compressqueue.WHOLE:
            data = f.read()
            sha256 = hashlib.sha256(data).hexdigest()
            sha384 = hashlib.sha384(data).digest()
            linkable = _linkable(abs_path) is not None
            if keep_bytes and not (defer and linkable):
                store.put(data, sha256)
            # Stylesheets and scripts are searched for references by the
            # index, so their bytes are kept whatever their size: the index
            # must not read them a second time.
            keep = len(data) <= threshold or linkable
            return _Info(st, sha256, sha384, data if keep else None), data
        h256, h384 = hashlib.sha256(), hashlib.sha384()
        while chunk := f.read(_CHUNK):
            h256.update(chunk)
            h384.update(chunk)
        sha256 = h256.hexdigest()
        if keep_bytes:
            # A store names an object by its digest, known only now: the
            # file is read again (from the page cache), checked by the store.
            f.seek(0)
            try:
                store.put_stream(f, sha256, st.st_size)
            except DigestMismatch:
                raise mf.ManifestError(
                    f"bustware: {abs_path!r} changed while the build read it; "
                    "build again once the files stop changing") from None
    # Too big to hold: its compression jobs stream it from the file again.
    return _Info(st, sha256, h384.digest(), None), None


def _source(info: _Info, abs_path: str, data: bytes | None) -> Source:
    return Source(info.sha256, len(data) if data is not None else info.st.st_size, data,
                  abs_path)


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

