"""``bustware verify``: every way a manifest no longer describes its tree
and its store."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import manifest as mf
from .files import PathLike, walk
from .layout import own_files
from .localstore import LocalStore
from .options import check_roots
from .publish import parse
from .store import NoSuchObject, Store, StoreError

__all__ = ["verify", "verify_store"]

_CHUNK = 1 << 20


def verify(root: PathLike | Sequence[PathLike], manifest_path: PathLike, *,
           full: bool = False, store: Store | None = None) -> list[mf.Problem]:
    """Every way the manifest no longer describes the tree: files missing,
    changed (size or mtime; with ``full``, content) or added since the build,
    and stored bytes of earlier generations that are gone. ``store``: where
    the manifest and its objects are (default: ``manifest_path`` and the
    objects beside it)."""
    roots = check_roots(root)
    name = os.path.abspath(os.fspath(manifest_path))
    if store is None:
        store = LocalStore(name)
    data = parse(store.read_manifest(), name)
    if data is None:
        raise mf.not_found(name)
    if data["settings"]["roots"] != len(roots):
        raise mf.ManifestError(
            f"bustware: {name!r} was built from {data['settings']['roots']} root(s), "
            f"not {len(roots)}; pass the same roots as to `bustware build`")

    def stored(digest: str, size: int) -> str | None:
        try:
            actual = store.object_size(digest)
        except NoSuchObject:
            return "missing"
        except StoreError as exc:
            return f"unreadable ({exc})"
        return None if actual == size else f"changed (size {size} -> {actual})"

    problems = mf.check_tree(data, roots, name, stored=stored)
    bad = {p.path for p in problems}
    is_own = own_files(name)
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
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            if stored(rec["digest"], rec["size"]) is not None:
                problems.append(mf.Problem(
                    path, f"the stored bytes of version {rec['version']} (generation "
                          f"{gen['generation']}) are missing or damaged: object "
                          f"{rec['digest']} in {store.url}"))
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


def verify_store(store: Store, *, deep: bool = False, workers: int = 16) -> list[mf.Problem]:
    """Every object the store's manifest names (the current generation,
    the kept ones and the retired objects still served) that is missing or
    of another size; with ``deep``, read back whole and checked against its
    digest. For a bucket, also each CDN-origin key of the current
    generation (see :func:`bustware.origin.check_keys`)."""
    name = f"{store.url}/manifest.json"
    data = parse(store.read_manifest(), name)
    if data is None:
        raise mf.ManifestError(
            f"bustware: there is no manifest in {store.url}: build into it first "
            f"(bustware build ROOT --store {store.url} --out MANIFEST)")
    named = list(_named(data))

    def check(item: tuple[str, int | None, str]) -> mf.Problem | None:
        digest, size, what = item
        try:
            if deep:
                actual = len(store.get_object(digest))  # the read checks the digest
            else:
                actual = store.object_size(digest)
        except NoSuchObject:
            return mf.Problem(what, f"object {digest} is missing from {store.url}")
        except StoreError as exc:
            return mf.Problem(what, f"object {digest} in {store.url}: {exc}")
        if size is not None and actual != size:
            return mf.Problem(what, f"object {digest} in {store.url} has {actual} bytes, "
                                    f"not {size}")
        return None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bustware-verify") as ex:
        problems = [p for p in ex.map(check, named) if p is not None]
    from .s3store import OriginStore  # no client: the module imports it on use

    if isinstance(store, OriginStore):
        from .origin import check_keys

        problems += check_keys(store, data, workers)
    return problems


def _named(data: dict[str, Any]) -> Iterator[tuple[str, int | None, str]]:
    """(digest, size, what names it) of each object the manifest names,
    each once."""
    seen: set[str] = set()

    def once(digest: str, size: int | None, what: str):
        if digest not in seen:
            seen.add(digest)
            yield digest, size, what

    def variants(path: str, rec: dict[str, Any], label: str):
        for encoding, var in rec.get("variants", {}).items():
            if "object" in var:
                yield from once(var["object"], var["size"], f"{path} ({encoding}{label})")

    for path, rec in data["files"].items():
        if data["stored"]:
            size = rec["served"]["size"] if "served" in rec else rec["size"]
            yield from once(rec["digest"], size, path)
        served = rec.get("served")
        if served is not None:
            yield from once(served["object"], served["size"], f"{path} (served bytes)")
        yield from variants(path, rec, "")
    for gen in data["previous"]:
        label = f", generation {gen['generation']}"
        for path, rec in gen["files"].items():
            yield from once(rec["digest"], rec["size"], f"{path} (version {rec['version']}{label})")
            yield from variants(path, rec, label)
    for digest in data.get("retired", ()):
        yield from once(digest, None, "(retired, still served by the build before)")
