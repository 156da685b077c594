"""An index loaded from a build manifest (bustware.manifest), without
reading any file: its records, checked against the tree first, and the
records of earlier versions served from the manifest's object store.

``Assets(..., manifest=PATH)`` calls :func:`load_into`; the middleware's
discovery of newer builds calls :func:`stored_versions` and
:func:`stored_asset`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .contenttypes import content_type
from .manifest import (
    OBJECT_MTIME_NS,
    ManifestError,
    PathLike,
    Problem,
    _read,
    build_command,
    check_tree,
    object_path,
    objects_dir,
    settings_of,
)
from .records import _EMPTY, Asset, Variant
from .styles import _PLAIN, quote_path

if TYPE_CHECKING:
    from .assets import Assets

__all__ = ["hidden_files", "load_into", "stored_asset", "stored_versions"]

log = logging.getLogger("bustware")

CHECK_MODES = ("error", "warn", "off")
#: Problems named in an error message; the rest are counted.
_SHOWN = 20


def load_into(assets: Assets, manifest: PathLike, check: str = "error") -> None:
    """Fill ``assets`` from the manifest: no file is read, and with
    ``check="off"`` none is even stat'ed. Files are streamed from disk by the
    middleware (``Asset.body`` stays ``None``)."""
    if check not in CHECK_MODES:
        raise ValueError(
            f"bustware: unknown manifest_check={check!r}: use 'error' (refuse a manifest "
            "that does not match the files), 'warn' (log the files and go on) or 'off'"
        )
    name = os.path.abspath(os.fspath(manifest))
    data, manifest_stat = _read(name)
    settings = data["settings"]
    if not assets.include_dotfiles:
        hidden = hidden_files(data)
        if hidden:
            raise ManifestError(
                f"bustware: the manifest {name!r} names files that this index hides, as it "
                f"has include_dotfiles=False:\n{_listing(hidden)}\nPass "
                "include_dotfiles=True to serve dot names, or rebuild the manifest without "
                "them (`bustware build` without --include-dotfiles, the default)"
            )
    _check_settings(assets, settings, name)
    # Resolved now, once: the index serves the release the roots lead to
    # when it loads, whatever a `current` link points to later.
    roots = [os.path.realpath(r) for r in assets.roots]
    objects = objects_dir(name)
    files: dict[str, Any] = data["files"]

    mtimes: dict[str, int] = {}  # object path -> real mtime_ns, from the check
    # path -> (st_dev, st_ino) from the check's stat; with "off", each file's
    # identity is taken when it is first opened (bustware.opener).
    idents: dict[str, tuple[int, int]] = {}
    missing: set[str] = set()
    if check != "off":
        problems = check_tree(data, roots, name, idents, mtimes)
        unsafe = [p for p in problems if p.unsafe]
        if unsafe:
            # Not a stale file that "warn" may tolerate: the scan would
            # never serve it.
            raise ManifestError(
                f"bustware: the manifest {name!r} names files that bustware does not serve "
                f"(manifest_check={check!r} cannot allow them):\n{_listing(unsafe)}"
            )
        if problems:
            message = describe(problems, name, assets.roots, data)
            if check == "error":
                advice = assets.option_advice("manifest_check", "warn")
                raise ManifestError(
                    message + (f" Or, to start anyway, {advice}." if advice else "")
                )
            log.warning("%s", message)
            missing = {p.path for p in problems if p.reason == "missing"}
            # check_tree skipped the objects of the files it found changed
            mtimes = _object_mtimes(files, objects, idents)

    source = assets._source
    digest_versions = getattr(source, "name", "") == "digest"
    extensions = assets.extensions
    prefix = assets.base_url + assets.prefix
    build = assets.style.build
    charset = assets.charset
    types: dict[str, str] = {}
    result: dict[str, Asset] = {}
    urls: dict[str, str] = {}
    sep = os.sep
    objects_sep = objects + sep
    plain = _PLAIN.match
    # This loop runs once per file at every production start: locals, no
    # helper calls on the common path, one constructor call per record.
    for path, rec in files.items():
        if missing and path in missing:
            continue
        # Concatenation, not os.path.join: validated relative paths, and
        # join costs more than the rest of a record together.
        root = roots[rec["root"]]
        abs_path = root + sep + path
        mtime_ns = rec["mtime_ns"]
        mtime = mtime_ns // 1_000_000_000
        if extensions is not None and not path.lower().endswith(extensions):
            version = None
            url = prefix + quote_path(path)
        else:
            version = rec["version"] if digest_versions else \
                source(path, abs_path, rec["digest"], mtime_ns / 1e9)
            url_path, query = build(path, version)
            url = prefix + (url_path if plain(url_path) else quote(url_path, safe="/"))
            if query:
                url = f"{url}?{query}"
        served = rec.get("served")
        if served is not None:
            obj = served["object"]
            served_path = f"{objects_sep}{obj[:2]}{sep}{obj}"
            size = served["size"]
            served_mtime = mtimes.get(served_path, OBJECT_MTIME_NS)
            mtime = served.get("mtime", mtime)
        else:
            served_path, size, served_mtime = abs_path, rec["size"], mtime_ns
        dot = path.rfind(".")
        suffix = path[dot:] if dot >= 0 else ""
        ctype = types.get(suffix)
        if ctype is None:
            ctype = types[suffix] = content_type(path, charset)
        variants = rec.get("variants")
        ident = idents.get(served_path) if idents else None
        dev, ino = ident if ident is not None else (0, 0)
        result[path] = Asset(
            path=path, abs_path=served_path, size=size, mtime=mtime, mtime_ns=served_mtime,
            digest=rec["digest"], version=version, url=url, content_type=ctype,
            variants=_variants(variants, root, objects_sep, mtimes, idents)
            if variants else _EMPTY, links=_EMPTY, integrity=rec["integrity"],
            dev=dev, ino=ino)
        urls[path] = url
    old = _old_versions(assets, data, result, objects) if data["previous"] \
        else []
    assets.real_roots = roots
    assets.manifest_stat = manifest_stat
    assets._assets = result
    assets._urls = urls
    assets.old_versions = old
    # Not kept: its per-file records would double the index's memory
    # (Assets.manifest reads it again, from the file of manifest_stat).
    assets._manifest = None
    assets.manifest_path = name
    assets.generation += 1
    if assets._bundlers:
        from .bundlers import apply

        apply(assets)


def _variants(variants: dict, root: str, objects_sep: str, mtimes: dict, idents: dict) -> dict:
    out = {}
    sep = os.sep
    for encoding, var in variants.items():
        if "file" in var:
            vpath = root + sep + var["file"]
            out[encoding] = Variant(encoding, vpath, var["size"], var["digest"], None,
                                    var["mtime_ns"], *idents.get(vpath, (0, 0)))
        else:
            obj = var["object"]
            vpath = f"{objects_sep}{obj[:2]}{sep}{obj}"
            out[encoding] = Variant(encoding, vpath, var["size"], var["object"], None,
                                    mtimes.get(vpath, OBJECT_MTIME_NS),
                                    *idents.get(vpath, (0, 0)))
    return out


def _object_mtimes(files: dict, objects: str, idents: dict | None = None) -> dict[str, int]:
    """Real mtimes of the objects check_tree found with the right size (an
    object is named by its content, so a copy that reset mtimes is fine)."""
    out = {}
    for rec in files.values():
        paths = []
        served = rec.get("served")
        if served is not None:
            paths.append(object_path(objects, served["object"]))
        for var in rec.get("variants", {}).values():
            if "object" in var:
                paths.append(object_path(objects, var["object"]))
        for p in paths:
            with contextlib.suppress(OSError):
                st = os.stat(p)
                out[p] = st.st_mtime_ns
                if idents is not None:
                    idents[p] = (st.st_dev, st.st_ino)
    return out


def _old_versions(assets: Assets, data: dict, current: dict, objects: str) -> list[Asset]:
    """Assets for the versions of earlier generations, served from their
    stored bytes under their own (old) URLs. Only versions that differ from
    the current one; each object is stat'ed (few: only changed files)."""
    out = []
    seen: set[tuple[str, str]] = set()
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            version = rec["version"]
            now = current.get(path)
            if (now is not None and now.version == version) or (path, version) in seen:
                continue
            seen.add((path, version))
            asset = stored_asset(assets, path, rec, objects)
            if asset is not None:
                out.append(asset)
    return out


def stored_asset(assets: Assets, path: str, rec: dict, objects: str) -> Asset | None:
    """An Asset serving the stored bytes of ``rec`` (a record of an earlier
    generation, or of stored_versions()) from the object store, or None
    (logged) when the store does not hold them."""
    version = rec["version"]
    if assets.extensions is not None and not path.lower().endswith(assets.extensions):
        return None
    obj = object_path(objects, rec["digest"])
    try:
        st = os.stat(obj)
    except OSError:
        log.warning("bustware: the stored bytes of %r version %s are gone (%s); "
                    "that old URL gets the outdated= policy", path, version, obj)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size != rec["size"]:
        log.warning("bustware: the stored bytes of %r version %s have the wrong "
                    "size; that old URL gets the outdated= policy", path, version)
        return None
    url_path, query = assets.style.build(path, version)
    url = (assets.base_url + assets.prefix + quote_path(url_path)
           + (f"?{query}" if query else ""))
    variants = {}
    for encoding, var in rec.get("variants", {}).items():
        vpath = object_path(objects, var["object"])
        try:
            vst = os.stat(vpath)
        except OSError:
            continue
        if stat.S_ISREG(vst.st_mode) and vst.st_size == var["size"]:
            variants[encoding] = Variant(encoding, vpath, var["size"], var["object"],
                                         None, vst.st_mtime_ns, vst.st_dev, vst.st_ino)
    return Asset(
        path=path, abs_path=obj, size=st.st_size, mtime=rec["mtime_ns"] // 10**9,
        mtime_ns=st.st_mtime_ns, digest=rec["digest"], version=version, url=url,
        content_type=content_type(path, assets.charset), variants=variants,
        dev=st.st_dev, ino=st.st_ino)


def stored_versions(data: dict[str, Any]) -> dict[tuple[str, str], dict]:
    """``(path, version) -> record`` for every version the manifest can serve
    from its object store: its current files whose bytes it stored (a build
    with ``--keep``, or rewritten ones) and its earlier generations. The
    records have the shape of an earlier generation's, for stored_asset()."""
    out: dict[tuple[str, str], dict] = {}
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            out.setdefault((path, rec["version"]), rec)
    stored = data["stored"]
    for path, rec in data["files"].items():
        served = rec.get("served")
        if not stored and served is None:
            continue  # its bytes are only in the tree it was built from
        out[(path, rec["version"])] = {
            "version": rec["version"], "digest": rec["digest"],
            "size": served["size"] if served is not None else rec["size"],
            "mtime_ns": rec["mtime_ns"],
            "variants": {e: v for e, v in rec.get("variants", {}).items() if "object" in v},
        }
    return out


def hidden_files(data: dict[str, Any]) -> list[Problem]:
    """The dot names (a file, or a directory above it, whose name starts
    with ".") that the manifest lists: an index with
    ``include_dotfiles=False`` hides them, so must not serve them."""
    files = data["files"]
    out = [Problem(path, "a dot name", unsafe=True)
           for path in files if path[0] == "." or "/." in path]
    for path, rec in files.items():
        if "variants" in rec:  # most records have none
            for encoding, var in rec["variants"].items():
                name = var.get("file")
                if name is not None and (name[0] == "." or "/." in name):
                    out.append(Problem(path, f"its {encoding} variant {name!r} is a dot "
                                             "name", unsafe=True))
    return out


def _listing(problems: list[Problem]) -> str:
    shown = "\n".join(f"  {p}" for p in problems[:_SHOWN])
    more = len(problems) - _SHOWN
    if more > 0:
        shown += f"\n  ... and {more} more"
    return shown


def describe(problems: list[Problem], manifest_path: str, roots: list[str],
             data: dict[str, Any] | None = None) -> str:
    shown = _listing(problems)
    root_args = " ".join(roots)
    command = build_command(data or {}, manifest_path, roots)
    return (f"bustware: the manifest {manifest_path!r} does not match the files under "
            f"{root_args} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n"
            f"{shown}\nRebuild it with `{command}` after the files change.")


#: Settings that older manifests do not record; absent means False.
_OPTIONAL = ("include_dotfiles", "bundler_manifest")


def _check_settings(assets: Assets, settings: dict, name: str) -> None:
    # Rewritten files hold URLs built with these settings, and the versions
    # were computed for them; serving with others would mix two URL schemes.
    for key, value in settings_of(assets).items():
        # A manifest from before include_dotfiles was recorded: built with
        # the default, False (its files were checked for dot names anyway).
        recorded = settings.get(key, False if key in _OPTIONAL else None)
        if key == "bundler_manifest" and value and not recorded:
            continue  # allowed, as before; see "Other bundlers" in the README
        if recorded != value:
            raise ManifestError(
                f"bustware: the manifest {name!r} was built with {key}={recorded!r} "
                f"but this index has {key}={value!r}; pass the same {key}, or rebuild the "
                "manifest with it: `"
                + build_command({"settings": settings_of(assets)}, name, assets.roots)
                + "`"
            )
