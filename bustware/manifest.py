"""The build manifest: what ``bustware build`` found, so that a production
process can start without reading any file.

It lives in a store (:mod:`bustware.store`; on disk, where
:mod:`bustware.layout` says), beside the objects it names.

Schema (``"schema_version": 1``)
--------------------------------
A JSON object; unknown keys are ignored, missing or mistyped ones refused::

    {
      "schema": "bustware-manifest",        # marks the file as ours
      "schema_version": 1,                  # bumped on any incompatible change
      "generator": "bustware 0.1.0",
      "settings": {"prefix": "/static/", "style": "filename", "query_param": "v",
                   "base_url": "", "rewrite_references": true,
                   "include_dotfiles": false,  # absent (older builds): false
                   "bundler_manifest": false,  # built with one; absent: false
                   "roots": 1},             # what the URLs were built with
      "keep": 2,                            # earlier generations kept (--keep)
      "compress": ["br", "gzip"],           # codings made (--compress); optional
      "generation": 7,                      # goes up when a version changes
      "built_at": "2026-01-02T03:04:05Z",   # UTC; SOURCE_DATE_EPOCH if set
      "stored": true,                       # objects/ holds this generation's bytes
      "files": {
        "css/app.css": {                    # logical path, '/'-separated
          "root": 0,                        # index of the root it was found under
          "size": 1234,                     # of the source file, for the
          "mtime_ns": 1767322245000000000,  #   staleness check
          "version": "3f2a1b9c04d1",        # what goes into the URL
          "digest": "<sha256 hex>",         # of the bytes served (ETag)
          "integrity": "sha384-<base64>",   # of the bytes served (SRI)
          "served": {"object": "<sha256 hex>", "size": 1300, "mtime": 1767322245},
                                            # only when the served bytes are not
                                            # the source file's (rewritten);
                                            # mtime: its Last-Modified, seconds
          "variants": {                     # encoding -> where its bytes are
            "br": {"object": "<sha256 hex>", "size": 300},
            "gzip": {"file": "css/app.css.gz", "size": 350, "mtime_ns": ...,
                     "digest": "<sha256 hex>"}  # a variant found beside the file
          },
          "deltas": {                       # optional: the dcz coding of the
            "<sha256 hex of a kept version's served bytes>":  # bytes served
                {"object": "<sha256 hex>", "size": 90}  # against that version
          }
        }
      },
      "broken_references": [["css/app.css", 3, "../img/gone.png", "img/gone.png"]],
                                            # references to files not in the index
      "previous": [                         # newest first, at most "keep" of them
        {"generation": 6, "built_at": "...",
         "files": {"css/app.css": {"version": "...", "digest": "<sha256 hex>",
                                   "size": 1200, "mtime_ns": ...,
                                   "variants": {"br": {"object": "...", "size": 280}}}}}
      ],
      "retired": ["<sha256 hex>"]           # objects only the manifest this one
                                            # replaced used: kept for processes
                                            # still serving it, deleted by the
                                            # next build or by prune (optional)
    }

An earlier generation lists only the files whose version differs from the
generation that followed it: together the kept generations name every old
URL a page still in a browser may ask for. Their bytes are
``objects/<digest>`` (identity) and each variant's object.

Loading (:func:`bustware.from_manifest.load`) validates everything before it trusts anything:
paths are checked to stay inside the root, digests to be hex, versions to be
URL-safe. A corrupt file, a foreign JSON file or an unknown schema version is
a :class:`ManifestError` naming the file and saying to rebuild it. So is a
manifest that names a file the index's own scan would not serve: a dot
name when the index has ``include_dotfiles=False``, or (unless
``manifest_check="off"``, which looks at nothing on disk) a file reached
through a symlink that leads out of its root.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from collections.abc import Iterable
from typing import Any, Protocol

from .advice import start_over
from .files import PathLike, file_key

# Where the files are, and the checks against the tree, have modules of
# their own; their names stay importable from here, where users found them.
from .layout import (
    MANIFEST_DIR,
    MANIFEST_NAME,
    OBJECT_MTIME_NS,
    default_path,
    object_path,
    objects_dir,
    write_atomic,
)
from .manifestcolumns import unusual as _unusual
from .styles import Style
from .treecheck import Escapes, Problem, build_command, check_tree, compare_file
from .versions import VERSION_RE

__all__ = [
    "MANIFEST_DIR",
    "MANIFEST_NAME",
    "OBJECT_MTIME_NS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Escapes",
    "IndexSettings",
    "ManifestError",
    "Problem",
    "build_command",
    "check_tree",
    "compare_file",
    "default_path",
    "dumps",
    "not_found",
    "object_path",
    "objects_dir",
    "parse",
    "read",
    "read_identified",
    "referenced_objects",
    "validate",
    "write",
    "write_atomic",
]


log = logging.getLogger("bustware")

SCHEMA = "bustware-manifest"
SCHEMA_VERSION = 1

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_INTEGRITY = re.compile(r"sha384-[A-Za-z0-9+/]{64}\Z")
_ENCODINGS = frozenset({"br", "gzip", "zstd"})


class ManifestError(ValueError):
    """The manifest cannot be used: unreadable, not ours, or not this tree."""



def _build_at(manifest_path: PathLike) -> str:
    """The start of the ``bustware build`` command that writes a manifest at
    ``manifest_path`` (for messages about one that cannot be read)."""
    path = os.path.abspath(os.fspath(manifest_path))
    parent = os.path.dirname(path)
    if os.path.basename(path) == MANIFEST_NAME and os.path.basename(parent) == MANIFEST_DIR:
        return shlex.join(["bustware", "build", os.path.dirname(parent)])
    return "bustware build ROOT --out " + shlex.quote(path)



# -- reading ---------------------------------------------------------------


def read(path: PathLike) -> dict[str, Any]:
    """Load and validate the manifest at ``path``."""
    return read_identified(os.fspath(path))[0]


def reread(path: str, identity: tuple) -> dict[str, Any]:
    """The manifest at ``path`` if its file is still the one whose
    ``identity`` (see from_manifest.load) was recorded."""
    data, now = read_identified(path)
    if now != identity:
        raise ManifestError(
            f"bustware: the manifest {path!r} changed since this index loaded it; "
            "restart the process to serve the new one")
    return data


def read_identified(name: str) -> tuple[dict[str, Any], tuple[int, int, int, int]]:
    """The manifest at ``name``, validated, and the identity of the file
    read (files.file_key), which tells a later reader that it changed."""
    try:
        with open(name, "rb") as f:
            key = file_key(os.fstat(f.fileno()))
            raw = f.read()
    except FileNotFoundError:
        raise not_found(name) from None
    except OSError as exc:
        raise ManifestError(f"bustware: cannot read the manifest {name!r}: {exc}") from None
    return parse(raw, name), key


def not_found(name: str) -> ManifestError:
    """The error for a manifest that is not there."""
    return ManifestError(
        f"bustware: no manifest at {name!r}; make it with `{_build_at(name)}` "
        "(or pass the --out path you built it with)"
    )


def parse(raw: bytes, name: str) -> dict[str, Any]:
    """The manifest in ``raw`` (as read from a store), validated; ``name``
    says where it is in messages."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"bustware: the manifest {name!r} is not valid JSON ({exc}); it is damaged: "
            f"{start_over(name, _build_at(name))}, adding the options it was built with"
        ) from None
    validate(data, name)
    return data


def validate(data: Any, name: str) -> None:
    """Refuse anything that is not a complete manifest of this schema."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ManifestError(
            f"bustware: {name!r} is not a bustware manifest (no \"schema\": {SCHEMA!r}); "
            f"pass the file `bustware build` wrote, or {start_over(name, _build_at(name))}"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"bustware: the manifest {name!r} has schema_version {version!r}, and this "
            f"bustware reads only {SCHEMA_VERSION}: build it with the bustware version that "
            f"serves it; {start_over(name, _build_at(name))}, adding the options it was built "
            "with"
        )
    bad = _Bad(name)
    settings = data.get("settings")
    if not isinstance(settings, dict):
        bad("settings", "missing")
    for key, kind in (("prefix", str), ("style", str), ("query_param", str), ("roots", int),
                      ("base_url", str), ("rewrite_references", bool)):
        if not isinstance(settings.get(key), kind):
            bad(f"settings.{key}", "missing or not a " + kind.__name__)
    for key in ("include_dotfiles", "bundler_manifest"):
        if not isinstance(settings.get(key, False), bool):
            bad(f"settings.{key}", "not a bool")
    broken = data.get("broken_references", [])
    if not isinstance(broken, list) or not all(
            isinstance(b, list) and len(b) == 4 and isinstance(b[1], int)
            and all(isinstance(x, str) for x in (b[0], b[2], b[3])) for b in broken):
        bad("broken_references", "not a list of [path, line, url, target]")
    for key in ("generation", "keep"):
        if not _is_count(data.get(key)):
            bad(key, "missing or not a count")
    if not isinstance(data.get("built_at"), str):
        bad("built_at", "missing")
    if not isinstance(data.get("stored"), bool):
        bad("stored", "missing or not true/false")
    files = data.get("files")
    if not isinstance(files, dict):
        bad("files", "missing or not an object")
    roots = settings["roots"]
    hex64, version_re, integrity_re = _HEX64.match, VERSION_RE.match, _INTEGRITY.match
    for path in _unusual(files, roots):
        rec = files[path]
        # The common case in one expression (a manifest holds thousands of
        # files and is read at every start); anything unusual, or wrong,
        # goes through the checks that say what is wrong.
        try:
            plain = (type(rec) is dict and type(rec["size"]) is int and rec["size"] >= 0
                     and type(rec["mtime_ns"]) is int and rec["mtime_ns"] >= 0
                     and type(rec["root"]) is int and 0 <= rec["root"] < roots
                     and hex64(rec["digest"]) and version_re(rec["version"])
                     and integrity_re(rec["integrity"]) and "served" not in rec
                     and "deltas" not in rec
                     and type(path) is str and path and path[0] != "/"
                     and "./" not in path and "//" not in path and "\\" not in path
                     and "\x00" not in path and path[-1] != "/" and path[-1] != ".")
            variants = rec.get("variants") if plain else None
            if variants is not None:
                for encoding, var in variants.items():
                    if not (encoding in _ENCODINGS and type(var) is dict
                            and hex64(var["object"]) and type(var["size"]) is int
                            and var["size"] >= 0 and "file" not in var):
                        plain = False
                        break
        except (KeyError, TypeError, AttributeError):
            plain = False
        if not plain:
            _check_current(path, rec, roots, bad)
    previous = data.get("previous")
    if not isinstance(previous, list):
        bad("previous", "missing or not a list")
    for i, gen in enumerate(previous):
        where = f"previous[{i}]"
        if not isinstance(gen, dict) or not _is_count(gen.get("generation")) \
                or not isinstance(gen.get("built_at"), str) \
                or not isinstance(gen.get("files"), dict):
            bad(where, "needs generation, built_at and files")
        for path, rec in gen["files"].items():
            _check_old(path, rec, f"{where}.files", bad)
    retired = data.get("retired", [])
    if not isinstance(retired, list) or not all(
            isinstance(d, str) and _HEX64.match(d) for d in retired):
        bad("retired", "not a list of SHA-256 hex digests")


class _Bad:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, where: str, what: str) -> None:
        raise ManifestError(
            f"bustware: the manifest {self.name!r} is damaged: {where}: {what}; "
            f"{start_over(self.name, _build_at(self.name))}, adding the options it was "
            "built with"
        )


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _check_path(path: object, where: str, bad: _Bad) -> None:
    # A manifest names files to serve: a path that climbs out of the root
    # ("../../etc/passwd") or is absolute would serve anything. The quick
    # test passes ordinary names; only suspicious ones get split.
    if not isinstance(path, str) or not path:
        bad(where, f"file name {path!r} is not a relative path")
    if (path[0] == "/" or "\\" in path or "\x00" in path or "./" in path or "//" in path
            or path[-1] == "/" or path[-1] == "."):
        for part in path.split("/"):
            if part in ("", ".", "..") or "\\" in part or "\x00" in part:
                bad(where, f"file name {path!r} is not a plain relative path")


def _check_current(path: str, rec: Any, roots: int, bad: _Bad) -> None:
    _check_path(path, "files", bad)
    if not isinstance(rec, dict):
        bad(f"files[{path!r}]", "not an object")
    root = rec.get("root")
    if type(root) is not int or not 0 <= root < roots:
        bad(f"files[{path!r}].root", f"{root!r} is not a root index below {roots}")
    _check_common(path, rec, f"files[{path!r}]", bad)
    integrity = rec.get("integrity")
    if not isinstance(integrity, str) or not _INTEGRITY.match(integrity):
        bad(f"files[{path!r}].integrity", f"{integrity!r} is not a sha384 value")
    served = rec.get("served")
    if served is not None:
        _check_object(served, f"files[{path!r}].served", bad)


def _check_common(path: str, rec: dict, where: str, bad: _Bad) -> None:
    version = rec.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        bad(f"{where}.version", f"{version!r} is not a version")
    digest = rec.get("digest")
    if not isinstance(digest, str) or not _HEX64.match(digest):
        bad(f"{where}.digest", f"{digest!r} is not a SHA-256 hex digest")
    if not _is_count(rec.get("size")) or not _is_count(rec.get("mtime_ns")):
        bad(where, "size and mtime_ns must be counts")
    variants = rec.get("variants")
    if variants is not None:
        if not isinstance(variants, dict):
            bad(f"{where}.variants", "not an object")
        for encoding, var in variants.items():
            vwhere = f"{where}.variants[{encoding!r}]"
            if encoding not in _ENCODINGS:
                bad(vwhere, f"unknown encoding; expected one of {sorted(_ENCODINGS)}")
            if isinstance(var, dict) and "file" in var:
                _check_path(var["file"], vwhere, bad)
                digest = var.get("digest")
                if not isinstance(digest, str) or not _HEX64.match(digest) \
                        or not _is_count(var.get("size")) or not _is_count(var.get("mtime_ns")):
                    bad(vwhere, "needs digest, size and mtime_ns")
            else:
                _check_object(var, vwhere, bad)
    deltas = rec.get("deltas")
    if deltas is not None:
        if not isinstance(deltas, dict):
            bad(f"{where}.deltas", "not an object")
        for dictionary, var in deltas.items():
            dwhere = f"{where}.deltas[{dictionary!r}]"
            if not isinstance(dictionary, str) or not _HEX64.match(dictionary):
                bad(dwhere, "the key is not a SHA-256 hex digest")
            _check_object(var, dwhere, bad)


def _check_object(rec: Any, where: str, bad: _Bad) -> None:
    if not isinstance(rec, dict):
        bad(where, "not an object")
    obj = rec.get("object")
    if not isinstance(obj, str) or not _HEX64.match(obj):
        bad(where, f"object {obj!r} is not a SHA-256 hex digest")
    if not _is_count(rec.get("size")) or not _is_count(rec.get("mtime", 0)):
        bad(where, "size must be a count")


def _check_old(path: str, rec: Any, where: str, bad: _Bad) -> None:
    _check_path(path, where, bad)
    if not isinstance(rec, dict):
        bad(f"{where}[{path!r}]", "not an object")
    _check_common(path, rec, f"{where}[{path!r}]", bad)


# -- writing ---------------------------------------------------------------


def dumps(data: dict[str, Any]) -> bytes:
    """The bytes of a manifest: sorted keys, one line per file, so that equal
    builds give equal files and a diff between two builds reads well."""
    head = {k: v for k, v in data.items() if k not in ("files", "previous")}
    out = ["{\n"]
    for key in sorted(head):
        out.append(f"{json.dumps(key)}: {json.dumps(head[key], sort_keys=True)},\n")
    out.append('"files": {')
    out.append(_dump_files(data["files"]))
    out.append("},\n")
    out.append('"previous": [')
    gens = []
    for gen in data["previous"]:
        meta = {k: v for k, v in gen.items() if k != "files"}
        text = json.dumps(meta, sort_keys=True)[:-1]
        gens.append(f"\n{text}, \"files\": {{{_dump_files(gen['files'])}}}}}")
    out.append(",".join(gens))
    out.append("\n]\n}\n")
    return "".join(out).encode("utf-8")


def _dump_files(files: dict[str, Any]) -> str:
    if not files:
        return ""
    lines = (f"\n{json.dumps(p)}: {json.dumps(files[p], sort_keys=True)}" for p in sorted(files))
    return ",".join(lines) + "\n"


def write(path: PathLike, data: dict[str, Any]) -> None:
    """Write the manifest atomically: a temporary file in the same directory,
    flushed to disk, then renamed over the old one. A crash at any point
    leaves either the old manifest or the new one, never half of one."""
    write_atomic(os.fspath(path), dumps(data))


# -- what the manifest uses ------------------------------------------------


def referenced_objects(data: dict[str, Any], generations: Iterable[dict] | None = None
                       ) -> set[str]:
    """The object digests the current generation and the given earlier
    generations (all kept ones by default) need."""
    used: set[str] = set()
    stored = data.get("stored", False)
    for rec in data["files"].values():
        if stored:
            used.add(rec["digest"])
        served = rec.get("served")
        if served is not None:
            used.add(served["object"])
        _variant_objects(rec, used)
    for gen in data["previous"] if generations is None else generations:
        for rec in gen["files"].values():
            used.add(rec["digest"])
            _variant_objects(rec, used)
    return used


def _variant_objects(rec: dict, used: set[str]) -> None:
    for var in rec.get("variants", {}).values():
        obj = var.get("object")
        if obj is not None:
            used.add(obj)
    for var in rec.get("deltas", {}).values():
        used.add(var["object"])


class IndexSettings(Protocol):
    """The options of an index (an :class:`~bustware.assets.Assets`) that
    its URLs, and so a manifest, depend on."""

    prefix: str
    style: Style
    base_url: str
    rewrite_references: bool
    include_dotfiles: bool
    roots: list[str]

    @property
    def bundler_manifests(self) -> tuple[str, ...]: ...


def settings_of(assets: IndexSettings) -> dict[str, Any]:
    """The options of an index that its URLs, and so a manifest, depend on."""
    return {"prefix": assets.prefix, "style": assets.style.name,
            "query_param": getattr(assets.style, "param", "v"),
            "base_url": assets.base_url,
            "rewrite_references": assets.rewrite_references,
            "include_dotfiles": assets.include_dotfiles,
            "bundler_manifest": bool(assets.bundler_manifests),
            "roots": len(assets.roots)}
