"""The CDN-origin keys of a bucket store: each file's served bytes at its
versioned URL path (``PREFIX/static/css/app.1a2b3c4d.css``), so that a CDN
whose origin is the bucket serves every versioned URL.

Which keys a manifest names, writing those of the current generation that
the bucket lacks, checking them, and deleting those no kept generation (nor
a process still serving the retired objects) names. A key holds the served
bytes only, never a compressed body: a CDN compresses on its own, or asks
the replicas. The URL style must put the version in the path (``filename``
or ``segment``): a query string is no part of a key.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import manifest as mf
from .contenttypes import content_type
from .s3store import IMMUTABLE, OriginStore
from .store import Store
from .styles import make_style

__all__ = ["OriginKey", "check_keys", "current_keys", "named_keys", "prune_keys", "put_keys",
           "url_root"]


@dataclass(frozen=True)
class OriginKey:
    """One CDN-origin key: the served bytes of ``path`` (object ``digest``,
    ``size`` bytes)."""

    key: str
    path: str
    digest: str
    size: int


def url_root(settings: dict[str, Any]) -> str:
    """Where the keys of a manifest's URLs start (``static/``)."""
    return settings["prefix"].lstrip("/")


def _key_of(settings: dict[str, Any], path: str, version: str) -> str | None:
    style = make_style(settings["style"], settings.get("query_param", "v"))
    rel, query = style.build(path, version)
    return None if query else url_root(settings) + rel


def current_keys(data: dict[str, Any]) -> list[OriginKey]:
    """The keys of the current generation (none for the query style)."""
    out = []
    for path, rec in data["files"].items():
        key = _key_of(data["settings"], path, rec["version"])
        if key is None:
            return []
        served = rec.get("served")
        if served is not None:
            out.append(OriginKey(key, path, served["object"], served["size"]))
        else:
            out.append(OriginKey(key, path, rec["digest"], rec["size"]))
    return out


def named_keys(data: dict[str, Any]) -> set[str]:
    """Every key the manifest's generations (current and kept) name."""
    named = {k.key for k in current_keys(data)}
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            key = _key_of(data["settings"], path, rec["version"])
            if key is not None:
                named.add(key)
    return named


def put_keys(origin: OriginStore, objects: Store, keys: Iterable[OriginKey],
             present: set[str], workers: int) -> tuple[int, int]:
    """Write the keys not in ``present``, their bytes read from ``objects``
    (the local copy: never downloaded), in parallel. Returns (written,
    already there)."""
    keys = list(keys)
    todo = [k for k in keys if k.key not in present]

    def put(k: OriginKey) -> None:
        ctype = content_type(k.path)
        if k.size <= 8 << 20:
            origin.put_public(k.key, objects.get_object(k.digest), k.size,
                              content_type=ctype, digest=k.digest, cache_control=IMMUTABLE)
            return
        with objects.open_object(k.digest) as f:
            origin.put_public(k.key, f, k.size, content_type=ctype, digest=k.digest,
                              cache_control=IMMUTABLE)

    if todo:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bustware-cdn") as ex:
            for _ in ex.map(put, todo):
                pass
    return len(todo), len(keys) - len(todo)


def prune_keys(origin: OriginStore, data: dict[str, Any], listed: Iterable[str],
               dropped: set[str], workers: int = 16) -> list[str]:
    """Delete the listed keys that ``data`` (the manifest now in force)
    names in none of its generations and whose bytes are among ``dropped``
    (the objects being deleted because nothing kept names them). Only those:
    a key of another build still uploading names bytes its manifest will
    name, not one of these. Keys bustware did not write (no ``sha256``
    metadata) are never deleted. Returns the keys deleted."""
    if not dropped:
        return []
    named = named_keys(data)
    keep = mf.referenced_objects(data) | set(data.get("retired", ()))
    candidates = sorted(set(listed) - named)
    if not candidates:
        return []

    def doomed(key: str) -> bool:
        head = origin.head_public(key)
        return (head is not None and head.digest is not None and head.digest in dropped
                and head.digest not in keep)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bustware-cdn") as ex:
        gone = [k for k, d in zip(candidates, ex.map(doomed, candidates)) if d]
    if gone:
        origin.delete_public(gone)
    return gone


def check_keys(origin: OriginStore, data: dict[str, Any], workers: int = 16) -> list[mf.Problem]:
    """Each key of the current generation: there, of its size, with the
    digest it was written from, its Content-Type and the immutable header."""

    def check(k: OriginKey) -> mf.Problem | None:
        head = origin.head_public(k.key)
        where = f"CDN-origin key {k.key!r} in {origin.url}"
        if head is None:
            return mf.Problem(k.path, f"{where} is missing")
        wrong = []
        if head.digest != k.digest:
            wrong.append(f"digest {head.digest} instead of {k.digest}")
        if head.size != k.size:
            wrong.append(f"size {head.size} instead of {k.size}")
        if head.content_encoding:
            wrong.append(f"a compressed body ({head.content_encoding})")
        if head.cache_control != IMMUTABLE:
            wrong.append(f"Cache-Control {head.cache_control!r} instead of {IMMUTABLE!r}")
        if head.content_type != content_type(k.path):
            wrong.append(f"Content-Type {head.content_type!r} instead of "
                         f"{content_type(k.path)!r}")
        return mf.Problem(k.path, f"{where} has {', '.join(wrong)}") if wrong else None

    keys = current_keys(data)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bustware-cdn") as ex:
        return [p for p in ex.map(check, keys) if p is not None]
