"""The reference linker: rewrites the references between files (CSS
``url()``, ``@import``, source map comments; found by bustware.references)
to the versioned URLs of the files they name, so that a file's version
covers those of the files it references.

It runs at the end of a scan (bustware.scan), on the records the scan made,
and replaces those whose served bytes change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Callable

from . import references as _refs
from .jsmodules import ModuleRule
from .memory import MemoryPolicy
from .records import Asset, Variant, held_bytes
from .references import Links
from .urls import UrlScheme

__all__ = ["MissingReferenceLog", "MissingReferences", "link", "not_logged"]

log = logging.getLogger("bustware")

#: Told of the references of a file to files not in the index:
#: ``(path, digest of its source bytes, its links found, target -> URL or
#: None)``.
MissingReferences = Callable[[str, str, Links, "dict[str, str | None]"], None]


def link(assets: dict[str, Asset], fresh: dict[str, Links],
         variant_paths: dict[str, dict[str, str]], *, urls: UrlScheme,
         version: Callable[[str, str, str, float], str], memory: MemoryPolicy,
         missing: MissingReferences, modules: ModuleRule | None = None) -> None:
    """Rewrite references to the referenced files' URLs in ``assets`` (the
    records of a scan, replaced in place where their served bytes change;
    ``urls`` makes URLs as their index does, ``version`` is its version
    source, ``memory`` its memory policy, and ``missing`` is told of
    references to files not in ``assets``; ``modules`` says which scripts
    are JavaScript modules), so that the version of a file
    covers the versions of the files it references, transitively: a new
    font gives its stylesheet new bytes, so a new version, so the
    stylesheet that imports that one new bytes too.

    Files are taken one strongly connected component of the reference
    graph at a time, each after every component it references, so one
    pass settles any depth. A file on no cycle is rewritten with the
    final URLs of what it references, and versioned from its rewritten
    bytes like any file. The files of a cycle (a.css imports b.css
    imports a.css) cannot each contain the other's final URL and also be
    named by a digest of their own bytes, so they share one version,
    digested from each member's path and own bytes, the URLs of what
    the cycle references outside itself, and the URL scheme; each
    member names the others with that version. The same files give the
    same version anywhere, and a change to a member or to anything the
    cycle references gives a new one. The ETag is still the digest of
    each file's served bytes.

    ``fresh``: the references found in the files the scan read; the
    others keep the links of their record. ``variant_paths``: the
    precompressed files beside each file, by coding, which a rewritten
    file replaces with its own compressed bytes. An asset whose file and
    whose references' URLs did not change since the last scan is kept as
    it is (autorefresh stays cheap).
    """
    # Each file's targets, once (Links.targets makes a new dict per call,
    # and the graph walk below asks several times per file): the found
    # references of the files read now, the recorded links of the others.
    targets_of: dict[str, Iterable[str]] = {}
    for path, asset in assets.items():
        found = fresh.get(path)
        if found is not None:
            if found.links:
                targets_of[path] = found.targets
        elif asset.links:
            targets_of[path] = asset.links
    targets = targets_of.__getitem__

    nodes = targets_of.keys()
    for members in _refs.components(nodes, lambda p: [t for t in targets(p) if t in nodes]):
        inside = set(members)
        cyclic = len(members) > 1 or members[0] in targets(members[0])
        # Last-Modified, and the mtime version: the newest in the closure.
        mtime = max(assets[m].mtime_ns // 1_000_000_000 for m in members)
        for m in members:
            for t in targets(m):
                if t not in inside and t in assets:
                    mtime = max(mtime, assets[t].mtime)
        cycle_urls: dict[str, str] = {}
        versions: dict[str, str | None] = {}
        if cyclic:
            h = hashlib.sha256(f"bustware cycle\0{urls.plain_url('')}\0"
                               f"{urls.style.name}\0".encode())
            for m in members:
                a = assets[m]
                h.update(f"{m}\0{a.source_digest or a.digest}\0".encode())
                for t in sorted(targets(m)):
                    named = "" if t in inside else assets[t].url if t in assets else "-"
                    h.update(f"{t}\0{named}\0".encode())
            cycle_digest = h.hexdigest()
            for m in members:
                a = assets[m]
                versions[m] = None if a.version is None else \
                    version(m, a.abs_path, cycle_digest, mtime)
                cycle_urls[m] = urls.url_for_version(m, versions[m])
        for m in members:
            old = assets[m]
            links = {t: cycle_urls[t] if t in inside else assets[t].url if t in assets else None
                     for t in targets(m)}
            if m not in fresh and old.links == links and (not cyclic or old.url == cycle_urls[m]):
                continue
            if m in fresh:
                raw, found = old.body or b"", fresh[m]
                source_digest = old.digest
            else:
                raw = _refs.restore(old.served_bytes(), old.splices)
                found = _refs.find_links(raw, m, urls.prefix, modules)
                source_digest = old.source_digest or old.digest
            body, splices = _refs.rewrite(raw, _refs.replacements(found, links))
            missing(m, source_digest, found, links)
            digest = hashlib.sha256(body).hexdigest()
            if cyclic:
                new_version = versions[m]
            else:
                new_version = None if old.version is None else \
                    version(m, old.abs_path, digest, mtime)
            memory.used -= held_bytes(old) + sum(map(held_bytes, old.variants.values()))
            held, served_path = memory.hold_or_spill(body, digest)
            assets[m] = replace(
                old, body=held, size=len(body), digest=digest, version=new_version,
                url=cycle_urls[m] if cyclic else urls.url_for_version(m, new_version),
                mtime=mtime,
                links=links, source_size=len(raw), source_digest=source_digest,
                integrity=None, splices=splices, served_path=served_path,
                variants=compressed(memory, body, old, variant_paths.get(m, {})),
            )


def not_logged(path: str, source_digest: str, found: object, links: object) -> None:
    """The MissingReferences of an index that does not log them."""


class MissingReferenceLog:
    """The index's :data:`MissingReferences`: logs each reference to a file
    not in the index once per file content (not once per scan). The build,
    which reports them in its report instead, passes one that does not
    log."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, str, int, str]] = set()

    def __call__(self, path: str, source_digest: str, found: Links,
                 links: dict[str, str | None]) -> None:
        for link in found.links:
            if links.get(link.target) is not None:
                continue
            ref = link.reference
            key = (path, source_digest, ref.line, ref.url)
            if key in self._warned:  # once per file content, not per scan
                continue
            self._warned.add(key)
            log.warning("bustware: %s line %d: %r names %r, which is not in the index; "
                        "left as written", path, ref.line, ref.url, link.target)


def compressed(memory: MemoryPolicy, body: bytes, asset: Asset, paths: dict[str, str]
               ) -> dict[str, Variant]:
    """Precompressed files beside a file whose served bytes were
    rewritten hold the old bytes: serve these codings compressed from
    the rewritten bytes instead (in memory), or not at all."""
    if not paths:
        return {}
    try:
        from .compress import compress_bytes
    except ImportError:  # pragma: no cover - compress ships with bustware
        return {}
    variants = {}
    for encoding, abs_path in paths.items():
        try:
            data = compress_bytes(body, encoding)
        except Exception as exc:  # a codec whose extra is missing
            log.info("bustware: not serving %s for %s: %s", encoding, asset.path, exc)
            continue
        if len(data) < len(body):
            digest = hashlib.sha256(data).hexdigest()
            held, spilled = memory.hold_or_spill(data, digest)
            if spilled is None:
                variants[encoding] = Variant(encoding, abs_path, len(data), digest, held,
                                             asset.mtime_ns)
            else:  # streamed from the private copy, which is its abs_path
                sst = os.stat(spilled)
                variants[encoding] = Variant(encoding, spilled, len(data), digest, None,
                                             sst.st_mtime_ns, sst.st_dev, sst.st_ino)
    return variants
