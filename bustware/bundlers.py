"""Manifests written by other bundlers: Vite, webpack's manifest plugin and
Django's ``ManifestStaticFilesStorage``.

Those tools already put a hash in the names of the files they write
(``assets/main-4889e940.js``, ``css/app.3f2a1b9c04d1.css``). With
``Assets(..., bundler_manifest=PATH)`` bustware:

- serves each such file at its own name as a *current* versioned URL (the
  immutable policy), its version being the hash the bundler chose, instead
  of adding a second version of its own;
- makes the bundler's logical names resolve through the URL helper:
  ``assets.url("src/main.ts")`` (Vite), ``assets.url("main.js")`` (webpack),
  ``assets.url("css/app.css")`` (Django) return the hashed file's URL.

The three formats are told apart by their shape:

Vite (``build.manifest``; ``.vite/manifest.json`` since Vite 5, ``manifest.json`` before)
    ``{"src/main.ts": {"file": "assets/main-4889e940.js", "src": "src/main.ts",
    "isEntry": true, "css": ["assets/main-b82dbe22.css"], "assets": [...]}, ...}``:
    paths relative to the output directory, which must be the root.
webpack-manifest-plugin
    ``{"main.js": "/static/main.4f3b2a1c.js", ...}``: values carry the
    ``publicPath`` (or ``auto/``, or a CDN origin); bustware finds the file by
    dropping leading segments until a file of the index matches.
Django (``staticfiles.json``)
    ``{"paths": {"css/app.css": "css/app.3f2a1b9c04d1.css"}, "version": "1.1",
    "hash": "..."}``: both sides relative to ``STATIC_ROOT``.

A file is taken as hashed when its name is the logical name with one more
part (``main.js`` -> ``main.<hash>.js`` or ``main-<hash>.js``), or, when the
names differ (Vite names output after the entry chunk), when its name ends
in ``.<hash>`` or Vite's ``-<8 characters>``. A name that carries no hash is
still an alias, but its file is served as any other (bustware versions it).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Union
from urllib.parse import unquote, urlsplit

from .versions import VERSION_RE

if TYPE_CHECKING:
    from .records import Asset

__all__ = ["Applied", "BundlerEntry", "BundlerManifest", "BundlerManifestError", "Bundlers",
           "load"]

log = logging.getLogger("bustware")

PathLike = Union[str, "os.PathLike[str]"]

_SEPARATORS = ".-_~"
_VITE_HASH = 8


class BundlerManifestError(ValueError):
    """A bundler manifest that cannot be read or is of no known format."""


@dataclass(frozen=True)
class BundlerEntry:
    logical: str  # the name templates ask for ("" for files with no name of their own)
    file: str  # as the bundler wrote it: relative path or URL


class BundlerManifest:
    """One bundler manifest file, re-read when its mtime changes."""

    def __init__(self, path: PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.format = ""
        self.entries: list[BundlerEntry] = []
        self._stamp: tuple[int, int] | None = None
        self.reload()

    def reload(self) -> bool:
        """Read the file again if it changed; True if it did."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise BundlerManifestError(
                f"bustware: cannot read the bundler manifest {self.path!r}: {exc.strerror}; "
                "build the front end first (vite build / webpack / collectstatic)"
            ) from None
        stamp = (st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return False
        self.format, self.entries = load(self.path)
        self._stamp = stamp
        return True


def load(path: PathLike) -> tuple[str, list[BundlerEntry]]:
    """``(format, entries)`` of the manifest at ``path``."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = json.loads(f.read())
    except OSError as exc:
        raise BundlerManifestError(
            f"bustware: cannot read the bundler manifest {name!r}: {exc.strerror}"
        ) from None
    except ValueError as exc:
        raise BundlerManifestError(
            f"bustware: the bundler manifest {name!r} is not valid JSON ({exc}); "
            "build the front end again"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("paths"), dict) \
            and isinstance(data.get("version"), str):
        return "django", _pairs(data["paths"], name)
    if isinstance(data, dict) and data.get("schema") == "bustware-manifest":
        raise BundlerManifestError(
            f"bustware: {name!r} is bustware's own manifest; pass it as manifest=, "
            "not bundler_manifest="
        )
    if isinstance(data, dict) and data and all(
            isinstance(v, dict) and isinstance(v.get("file"), str) for v in data.values()):
        return "vite", _vite(data, name)
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return "webpack", _pairs(data, name)
    raise BundlerManifestError(
        f"bustware: {name!r} is not a manifest of Vite (.vite/manifest.json), "
        "webpack-manifest-plugin (manifest.json) or Django (staticfiles.json); "
        "pass one of those"
    )


def _pairs(mapping: dict[str, Any], name: str) -> list[BundlerEntry]:
    out = []
    for logical, file in mapping.items():
        if not isinstance(file, str) or not isinstance(logical, str):
            raise BundlerManifestError(
                f"bustware: the bundler manifest {name!r} maps {logical!r} to {file!r}, "
                "which is not a file name"
            )
        out.append(BundlerEntry(logical, file))
    return out


def _vite(data: dict[str, dict], name: str) -> list[BundlerEntry]:
    out = []
    for key, chunk in data.items():
        out.append(BundlerEntry(key, chunk["file"]))
        for field in ("css", "assets"):
            files = chunk.get(field, [])
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise BundlerManifestError(
                    f"bustware: the Vite manifest {name!r} has a {field!r} of {key!r} that "
                    "is not a list of file names"
                )
            # Files with no key of their own: hashed, reachable by their own name.
            out.extend(BundlerEntry("", f) for f in files)
    return out


def hash_of(logical: str, file: str) -> str | None:
    """The hash the bundler put in ``file``'s name, or None if there is none."""
    base = posixpath.basename(file)
    if logical:
        lbase = posixpath.basename(logical)
        dot = lbase.rfind(".")
        stem, ext = (lbase[:dot], lbase[dot:]) if dot > 0 else (lbase, "")
        if base.startswith(stem) and base.endswith(ext) and len(base) > len(stem) + len(ext) + 1:
            middle = base[len(stem):len(base) - len(ext)]
            if middle[0] in _SEPARATORS and VERSION_RE.match(middle[1:]) \
                    and _hashlike(middle[1:]):
                return middle[1:]
            if middle[0] in _SEPARATORS:
                return None  # the same name with more than a hash added
    dot = base.rfind(".")
    stem = base[:dot] if dot > 0 else base
    head, sep, last = stem.rpartition(".")
    if sep and head and len(last) >= 6 and VERSION_RE.match(last) and _hashlike(last):
        return last
    if len(stem) > _VITE_HASH + 1 and stem[-_VITE_HASH - 1] == "-":
        candidate = stem[-_VITE_HASH:]
        if VERSION_RE.match(candidate) and _hashlike(candidate):
            return candidate
    return None


def _hashlike(text: str) -> bool:
    # A hash has digits or capitals (base64) or is long hex; "jquery.min"
    # and "app-preview" are names, not hashes.
    return (any(c.isdigit() or c.isupper() for c in text)
            or (len(text) >= 8 and all(c in "0123456789abcdef" for c in text)))


def _locate(file: str, index: dict[str, Asset], prefix: str) -> str | None:
    """The logical path, in the index, of the file a bundler names."""
    parts = urlsplit(file)
    path = unquote(parts.path if (parts.scheme or parts.netloc) else file.partition("?")[0])
    path = path.lstrip("/")
    if path.startswith(prefix.lstrip("/")) and path[len(prefix) - 1:] in index:
        return path[len(prefix) - 1:]
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        return None
    # publicPath, "auto/", a CDN origin: drop leading segments until a file
    # of the index matches.
    for i in range(len(segments)):
        candidate = "/".join(segments[i:])
        if candidate in index:
            return candidate
    return None


@dataclass(frozen=True)
class Applied:
    """What :meth:`Bundlers.apply` made of an index's records."""

    #: The records, the files the bundlers hashed with their own versions.
    records: dict[str, Asset]
    #: Every URL by logical path: the records' and the bundlers' names'.
    urls: dict[str, str]
    #: The bundlers' logical names -> the paths of their files.
    aliases: dict[str, str]
    #: Whether any of it differs from what the index had.
    changed: bool


class Bundlers:
    """The bundler manifests of one index (``Assets(bundler_manifest=...)``),
    and what they make of its records. ``prefix`` and ``roots`` are the
    index's: where the bundlers' files are looked for. ``plain_url``, given
    to each call, is the index's too: the URL of a file they hashed is its
    own name, which carries the hash."""

    def __init__(self, paths: PathLike | Sequence[PathLike], prefix: str,
                 roots: Sequence[str]) -> None:
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        self.manifests = [BundlerManifest(p) for p in items]
        self.prefix = prefix
        self.roots = roots
        self._warned: set[str] = set()

    @property
    def paths(self) -> tuple[str, ...]:
        """The absolute paths of the manifests."""
        return tuple(m.path for m in self.manifests)

    def prepare(self, index: dict[str, Asset], plain_url: Callable[[str], str]) -> None:
        """Before references between files are rewritten: give each file a
        bundler hashed its own URL in ``index``, so that a stylesheet naming
        it is rewritten to that URL. (Rewritten first, it named the file
        with a version of bustware's own, which apply() then made an old
        URL, answered no-store.) :meth:`apply` still runs after."""
        for m in self.manifests:
            m.reload()
        self._mark(index, plain_url)

    def apply(self, records: dict[str, Asset], aliases: dict[str, str],
              plain_url: Callable[[str], str]) -> Applied:
        """The bundlers' hashed files marked current under their own names in
        (a copy of) ``records``, and their logical names resolving;
        ``aliases``: those the index has now, to tell a change."""
        reloaded = any([m.reload() for m in self.manifests])
        index = dict(records)
        new_aliases, replaced = self._mark(index, plain_url)
        urls = {path: a.url for path, a in index.items()}
        for logical, target in new_aliases.items():
            urls[logical] = index[target].url
        changed = replaced or reloaded or new_aliases != aliases
        return Applied(index, urls, new_aliases, changed)

    def _mark(self, index: dict[str, Asset], plain_url: Callable[[str], str]
              ) -> tuple[dict[str, str], bool]:
        """Give the files the bundlers hashed their bundler version and URL
        in ``index`` (replacing the Asset, never changing it: a request may
        hold it). Returns the logical names -> their files, and whether any
        file was replaced."""
        aliases: dict[str, str] = {}
        replaced = False
        for manifest in self.manifests:
            for entry in manifest.entries:
                target = _locate(entry.file, index, self.prefix)
                if target is None:
                    key = f"{manifest.path}:{entry.file}"
                    if key not in self._warned:
                        self._warned.add(key)
                        log.warning("bustware: %s names %r%s, which is no file under %s; "
                                    "skipped", manifest.path, entry.file,
                                    f" for {entry.logical!r}" if entry.logical else "",
                                    ", ".join(self.roots))
                    continue
                version = hash_of(entry.logical, entry.file)
                asset = index[target]
                if version is not None:
                    url = plain_url(target)  # with the base_url, as every URL
                    if asset.version != version or asset.url != url:
                        index[target] = asset = replace(asset, version=version, url=url)
                        replaced = True
                if entry.logical and entry.logical != target:
                    aliases.setdefault(entry.logical, target)
        return aliases, replaced
