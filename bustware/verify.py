"""``bustware verify``: every way a manifest no longer describes its tree
and its store."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from . import manifest as mf
from .files import PathLike, walk
from .layout import own_files
from .localstore import LocalStore
from .options import check_roots
from .publish import parse
from .store import NoSuchObject, Store, StoreError

__all__ = ["verify"]

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
