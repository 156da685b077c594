"""An index loaded from a build manifest (bustware.manifest), without
reading any file: its records, checked against the tree first, and the
records of earlier versions served from the manifest's object store.

``Assets(..., manifest=PATH)`` calls :func:`load` and installs what it
returns; the middleware's
discovery of newer builds calls :func:`stored_versions` and
:func:`stored_asset`.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .advice import with_roots
from .contenttypes import content_type
from .manifest import (
    OBJECT_MTIME_NS,
    Escapes,
    IndexSettings,
    ManifestError,
    PathLike,
    Problem,
    build_command,
    compare_file,
    object_path,
    objects_dir,
    read_identified,
    settings_of,
)
from .records import EMPTY, Asset, Variant, new_asset
from .styles import quote_path
from .urls import UrlScheme, all_plain, url_maker
from .versions import is_digest_source

_S_IFMT, _S_IFREG = stat.S_IFMT(0o170000), stat.S_IFREG

__all__ = ["Loaded", "ManifestIndex", "check_settings", "hidden_files", "load", "stored_asset",
           "stored_versions"]

log = logging.getLogger("bustware")

CHECK_MODES = ("error", "warn", "off")
#: Problems named in an error message; the rest are counted.
_SHOWN = 20


class ManifestIndex(UrlScheme, IndexSettings, Protocol):
    """What loading a manifest needs of the index it is loaded for (an
    :class:`~bustware.assets.Assets` is one): its URL scheme, the settings
    the manifest must have been built with, and what it serves."""

    extensions: tuple[str, ...] | None
    charset: str | None

    def option_advice(self, name: str, value: Any) -> str | None: ...


@dataclass(frozen=True)
class Loaded:
    """An index's records, as :func:`load` made them from a manifest."""

    #: The absolute path of the manifest, and the identity of the file read
    #: (files.file_key): tells a reload that it changed.
    path: str
    identity: tuple[int, int, int, int]
    #: The roots, symlinks resolved when the manifest was loaded.
    real_roots: list[str]
    records: dict[str, Asset]
    urls: dict[str, str]
    #: The versions of earlier generations served from stored bytes.
    old_versions: list[Asset]
    #: With a shared store (``remote``): the versions of earlier generations
    #: whose objects are not on this disk but in that store, ``(path,
    #: version) -> record`` (of the shape stored_versions() gives), fetched
    #: on their first request.
    remote_versions: dict[tuple[str, str], dict] = field(default_factory=dict)


def load(assets: ManifestIndex, manifest: PathLike, check: str,
         version: Callable[[str, str, str, float], str], remote: bool = False) -> Loaded:
    """The records of ``assets`` (whose version source is ``version``) from
    the manifest: no file is read, and with ``check="off"`` none is even
    stat'ed. Files are streamed from disk by the middleware (``Asset.body``
    stays ``None``). ``remote``: a shared store holds the objects of
    earlier generations that this disk lacks (a container image carries
    only its own release's)."""
    if check not in CHECK_MODES:
        raise ValueError(
            f"bustware: unknown manifest_check={check!r}: use 'error' (refuse a manifest "
            "that does not match the files), 'warn' (log the files and go on) or 'off'"
        )
    name = os.path.abspath(os.fspath(manifest))
    try:
        data, manifest_stat = read_identified(name)
    except ManifestError as exc:  # its advice names the roots, which only we know here
        raise ManifestError(with_roots(str(exc), assets.roots)) from None
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
    check_settings(assets, settings, name)
    # Resolved now, once: the index serves the release the roots lead to
    # when it loads, whatever a `current` link points to later.
    roots = [os.path.realpath(r) for r in assets.roots]
    objects = objects_dir(name)
    files: dict[str, Any] = data["files"]
    records = _Records(assets, version, roots, objects, checked=check != "off")
    result, urls = records.make(files)
    if check != "off":
        problems = records.escapes.problems(files) + records.problems
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
            for p in problems:
                if p.reason == "missing":
                    result.pop(p.path, None)
                    urls.pop(p.path, None)
    old: list[Asset] = []
    elsewhere: dict[tuple[str, str], dict] = {}
    if data["previous"]:
        old, elsewhere = _old_versions(assets, data, result, objects, remote)
    return Loaded(name, manifest_stat, roots, result, urls, old, elsewhere)


class _Records:
    """The records of a manifest's files, and with ``checked``, the check
    of the tree against it (what manifest.check_tree reports, and each
    file's identity), in one pass: one stat per file, as check_tree, and
    no second walk over the records to find what it found."""

    def __init__(self, assets: ManifestIndex, version: Callable[[str, str, str, float], str],
                 roots: list[str], objects: str, checked: bool) -> None:
        self.assets = assets
        self.version = version
        self.roots = roots
        self.objects_sep = objects + os.sep
        self.checked = checked
        self.problems: list[Problem] = []
        self.escapes = Escapes(roots)

    def make(self, files: dict[str, Any]) -> tuple[dict[str, Asset], dict[str, str]]:
        """``(records, urls)`` by logical path."""
        assets = self.assets
        source = self.version
        digest_versions = is_digest_source(source)
        extensions = assets.extensions
        url_of = url_maker(assets, all_plain(files))
        charset = assets.charset
        roots = self.roots
        checked = self.checked
        lstat = os.lstat
        dirs_add = self.escapes.dirs.add
        types: dict[str, str] = {}
        result: dict[str, Asset] = {}
        urls: dict[str, str] = {}
        sep = os.sep
        last_dir, last_root = None, -1
        # This loop runs once per file at every production start: locals,
        # no helper call on the common path (a regular file whose size and
        # mtime are the recorded ones), one constructor call per record.
        for path, rec in files.items():
            root_index = rec["root"]
            # Concatenation, not os.path.join: validated relative paths, and
            # join costs more than the rest of a record together.
            root = roots[root_index]
            abs_path = root + sep + path
            mtime_ns = rec["mtime_ns"]
            size = rec["size"]
            dev = ino = 0
            ok = True
            if checked:
                # Each directory once for the escape check; files come
                # sorted, so a directory's files one after the other.
                head = path[:path.rfind("/") + 1]
                if head != last_dir or root_index != last_root:
                    dirs_add((root_index, head[:-1]))
                    last_dir, last_root = head, root_index
                try:
                    st = lstat(abs_path)
                except OSError:
                    st = None
                if st is not None and st.st_mode & _S_IFMT == _S_IFREG \
                        and st.st_size == size and st.st_mtime_ns == mtime_ns:
                    dev, ino = st.st_dev, st.st_ino
                else:  # a symlink, or a problem: what manifest.check_tree says of it
                    found: dict[str, tuple[int, int]] = {}
                    problem = compare_file(abs_path, size, mtime_ns, found,
                                       self.escapes.links)
                    if problem:
                        self.problems.append(Problem(path, problem))
                        ok = False
                    else:
                        dev, ino = found[abs_path]
            if extensions is not None and not path.lower().endswith(extensions):
                version = None
            elif digest_versions:
                version = rec["version"]
            else:
                version = source(path, abs_path, rec["digest"], mtime_ns / 1e9)
            url = url_of(path, version)
            dot = path.rfind(".")
            suffix = path[dot:] if dot >= 0 else ""
            ctype = types.get(suffix)
            if ctype is None:
                ctype = types[suffix] = content_type(path, charset)
            if len(rec) == 6:  # no rewritten bytes, no variants: most files
                asset = new_asset(path, abs_path, size, mtime_ns // 1_000_000_000,
                                  mtime_ns, rec["digest"], version, url, ctype, None, EMPTY,
                                  rec["integrity"], dev, ino)
            else:
                asset = self._unusual(path, rec, root, abs_path, version, url, ctype,
                                      dev, ino, ok)
            result[path] = asset
            urls[path] = url
        return result, urls

    def _unusual(self, path: str, rec: dict, root: str, abs_path: str, version: str | None,
                 url: str, ctype: str, dev: int, ino: int, report: bool) -> Asset:
        """The record of a file with rewritten bytes or variants. Their files
        are checked too; their problems reported (``report``) only when the
        file itself is as recorded, as check_tree does."""
        mtime_ns = rec["mtime_ns"]
        mtime = mtime_ns // 1_000_000_000
        served = rec.get("served")
        if served is not None:
            obj = served["object"]
            served_path = f"{self.objects_sep}{obj[:2]}{os.sep}{obj}"
            dev, ino, served_mtime = self._object(
                served_path, served["size"], path, "its rewritten bytes are ", report)
            size = served["size"]
            mtime = served.get("mtime", mtime)
        else:
            served_path, size, served_mtime = abs_path, rec["size"], mtime_ns
        variants = rec.get("variants")
        return Asset(
            path=path, abs_path=served_path, size=size, mtime=mtime, mtime_ns=served_mtime,
            digest=rec["digest"], version=version, url=url, content_type=ctype,
            variants=self._variants(path, rec, variants, root, report)
            if variants else EMPTY, links=EMPTY, integrity=rec["integrity"],
            dev=dev, ino=ino)

    def _object(self, obj_path: str, size: int, path: str, what: str, report: bool
                ) -> tuple[int, int, int]:
        """``(st_dev, st_ino, mtime_ns)`` of an object of the store: its real
        mtime (a copy that did not keep mtimes still serves: an object is
        named by its content), or OBJECT_MTIME_NS, unchecked."""
        if not self.checked:
            return 0, 0, OBJECT_MTIME_NS
        try:
            st = os.stat(obj_path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != size:
            problem = compare_file(obj_path, size, None) if report else None
            if problem:
                self.problems.append(Problem(path, what + problem))
            if st is None:
                return 0, 0, OBJECT_MTIME_NS
        return st.st_dev, st.st_ino, st.st_mtime_ns

    def _variants(self, path: str, rec: dict, variants: dict, root: str, report: bool
                  ) -> dict[str, Variant]:
        out = {}
        sep = os.sep
        for encoding, var in variants.items():
            if "file" in var:
                vpath = root + sep + var["file"]
                dev = ino = 0
                if self.checked:
                    self.escapes.dirs.add((rec["root"], var["file"].rpartition("/")[0]))
                    found: dict[str, tuple[int, int]] = {}
                    problem = compare_file(vpath, var["size"], var["mtime_ns"], found,
                                       self.escapes.links)
                    if problem:
                        if report:
                            self.problems.append(
                                Problem(path, f"its {encoding} variant is {problem}"))
                    else:
                        dev, ino = found[vpath]
                out[encoding] = Variant(encoding, vpath, var["size"], var["digest"], None,
                                        var["mtime_ns"], dev, ino)
            else:
                obj = var["object"]
                vpath = f"{self.objects_sep}{obj[:2]}{sep}{obj}"
                dev, ino, mtime_ns = self._object(vpath, var["size"], path,
                                                  f"its {encoding} variant is ", report)
                out[encoding] = Variant(encoding, vpath, var["size"], var["object"], None,
                                        mtime_ns, dev, ino)
        return out


def _old_versions(assets: ManifestIndex, data: dict, current: dict, objects: str,
                  remote: bool) -> tuple[list[Asset], dict[tuple[str, str], dict]]:
    """Assets for the versions of earlier generations, served from their
    stored bytes under their own (old) URLs. Only versions that differ from
    the current one; each object is stat'ed (few: only changed files).
    With ``remote``, the records of those whose object is not here, by
    ``(path, version)``, instead of a warning each."""
    out = []
    elsewhere: dict[tuple[str, str], dict] = {}
    seen: set[tuple[str, str]] = set()
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            version = rec["version"]
            now = current.get(path)
            if (now is not None and now.version == version) or (path, version) in seen:
                continue
            seen.add((path, version))
            if remote and not os.path.exists(object_path(objects, rec["digest"])):
                if assets.extensions is None or path.lower().endswith(assets.extensions):
                    elsewhere[(path, version)] = rec
                continue
            asset = stored_asset(assets, path, rec, objects)
            if asset is not None:
                out.append(asset)
    return out, elsewhere


def stored_asset(assets: ManifestIndex, path: str, rec: dict, objects: str) -> Asset | None:
    """An Asset serving the stored bytes of ``rec`` (a record of an earlier
    generation, or of stored_versions()) from the local object store
    ``objects`` (LocalStore.objects), or None (logged) when it does not
    hold them."""
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


def stored_versions(data: dict[str, Any], all_stored: bool = False
                    ) -> dict[tuple[str, str], dict]:
    """``(path, version) -> record`` for every version the manifest can serve
    from its object store: its current files whose bytes it stored (a build
    with ``--keep``, or rewritten ones; ``all_stored``: every one, as in a
    bucket, which holds every object its manifest names) and its earlier
    generations. The records have the shape of an earlier generation's,
    for stored_asset()."""
    out: dict[tuple[str, str], dict] = {}
    for gen in data["previous"]:
        for path, rec in gen["files"].items():
            out.setdefault((path, rec["version"]), rec)
    stored = data["stored"] or all_stored
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
    names = "\n".join(files)  # one search for all names, as most have no dot name
    out = [] if names[:1] != "." and "\n." not in names and "/." not in names else [
        Problem(path, "a dot name", unsafe=True) for path in files
        if path[0] == "." or "/." in path]
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


def check_settings(assets: IndexSettings, settings: dict, name: str) -> None:
    """Refuse (ManifestError, with the command that rebuilds it) a manifest
    ``name`` whose recorded ``settings`` are not those of ``assets``:
    rewritten files hold URLs built with them, and the versions were
    computed for them; serving with others would mix two URL schemes."""
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

