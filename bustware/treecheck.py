"""The manifest against the tree: every way the files on disk differ from
what a manifest recorded (``bustware verify``; the start from a manifest
finds the same problems in its own pass, see :mod:`bustware.from_manifest`),
and the ``bustware build`` command that remakes a manifest.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from .files import PathLike
from .layout import default_path, objects_dir

__all__ = ["Escapes", "Problem", "build_command", "check_tree", "compare_file"]


@dataclass(frozen=True)
class Problem:
    """One way the manifest and the files on disk disagree."""

    path: str  # logical path, or the object's file name
    reason: str
    #: A reference to a file that does not exist: no rebuild fixes it.
    broken_reference: bool = False
    #: Serving it would serve what a scan hides (a symlink out of the root):
    #: refused whatever manifest_check says.
    unsafe: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def check_tree(data: dict[str, Any], roots: list[str], manifest_path: str,
               identities: dict[str, tuple[int, int]] | None = None,
               mtimes: dict[str, int] | None = None,
               stored: Callable[[str, int], str | None] | None = None) -> list[Problem]:
    """Every way the files on disk differ from what the manifest recorded:
    a file or an object missing, or its size or mtime changed; and files
    reached through a symlink that leads out of their root (``unsafe``).
    With ``identities``, record each file's and object's (st_dev, st_ino)
    there, by path; with ``mtimes``, the real mtime of every object found
    (object path -> mtime_ns), so that a loader does not stat them again.
    With ``stored(digest, size)``, objects are checked by it (what is wrong
    with the object, or None) instead of in ``objects/`` beside the
    manifest."""
    problems: list[Problem] = []
    objects_sep = objects_dir(manifest_path) + os.sep
    sep = os.sep
    escapes = Escapes(roots)
    dirs, links = escapes.dirs, escapes.links
    # Concatenation, not os.path.join (which costs as much as the stat):
    # the paths are validated relative paths and the roots absolute.
    for path, rec in data["files"].items():
        root = roots[rec["root"]]
        problem = compare_file(root + sep + path, rec["size"], rec["mtime_ns"], identities, links)
        dirs.add((rec["root"], path.rpartition("/")[0]))
        if problem:
            problems.append(Problem(path, problem))
            continue
        served = rec.get("served")
        if served is not None:
            obj = served["object"]
            problem = stored(obj, served["size"]) if stored is not None else \
                compare_file(f"{objects_sep}{obj[:2]}{sep}{obj}", served["size"], None,
                             identities, mtimes=mtimes)
            if problem:
                problems.append(Problem(path, f"its rewritten bytes are {problem}"))
        variants = rec.get("variants")
        if not variants:
            continue
        for encoding, var in variants.items():
            if "file" in var:
                problem = compare_file(root + sep + var["file"], var["size"],
                                       var["mtime_ns"], identities, links)
                dirs.add((rec["root"], var["file"].rpartition("/")[0]))
            else:
                obj = var["object"]
                problem = stored(obj, var["size"]) if stored is not None else \
                    compare_file(f"{objects_sep}{obj[:2]}{sep}{obj}", var["size"], None,
                                 identities, mtimes=mtimes)
            if problem:
                problems.append(Problem(path, f"its {encoding} variant is {problem}"))
    return escapes.problems(data["files"]) + problems


def compare_file(abs_path: str, size: int, mtime_ns: int | None,
                 identities: dict[str, tuple[int, int]] | None = None,
                 links: set[str] | None = None,
                 mtimes: dict[str, int] | None = None) -> str | None:
    """What is wrong with the file at ``abs_path`` as a manifest records it
    (``size``, and ``mtime_ns`` unless None): None, or a problem for a
    :class:`Problem`. Fills ``identities`` (path -> (st_dev, st_ino)) for a
    file that matches, ``links`` with the files that are symlinks (for
    :class:`Escapes`), ``mtimes`` with each file's mtime."""
    try:
        if links is None:
            st = os.stat(abs_path)
        else:
            # lstat: one call for a plain file, as stat; a symlink is noted
            # (for Escapes) and followed.
            st = os.stat(abs_path, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links.add(abs_path)
                st = os.stat(abs_path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if mtimes is not None:
        mtimes[abs_path] = st.st_mtime_ns
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size != size:
        return f"changed (size {size} -> {st.st_size})"
    if mtime_ns is not None and st.st_mtime_ns != mtime_ns:
        return "changed (modified since the build)"
    if identities is not None:
        identities[abs_path] = (st.st_dev, st.st_ino)
    return None


def build_command(data: dict[str, Any], manifest_path: PathLike, roots: Sequence[str]) -> str:
    """The ``bustware build`` command line that remakes this manifest where it
    is, with the options it was built with: advice that leaves out ``--out``
    or ``--prefix`` would make a manifest nobody loads, or one refused."""
    path = os.path.abspath(os.fspath(manifest_path))
    args = ["bustware", "build", *roots]
    if path != default_path(roots[0]):
        args += ["--out", path]
    settings = data.get("settings", {})
    compress = data.get("compress")
    if compress:
        args += ["--compress", ",".join(compress)]
    for key, flag, default in (("prefix", "--prefix", "/static/"),
                               ("style", "--style", "filename"),
                               ("query_param", "--query-param", "v"),
                               ("base_url", "--base-url", "")):
        value = settings.get(key)
        if isinstance(value, str) and value != default:
            args += [flag, value]
    if settings.get("include_dotfiles") is True:
        args.append("--include-dotfiles")
    return shlex.join(args)


class Escapes:
    """Which files of a manifest are reached through a symlink that leads
    out of their root: the scan (files.walk) never serves those, so a
    manifest must not either. check_tree notes each file's directory and
    the files that are links (the per-file cost stays one stat call); each
    directory is resolved once, and the files are looked at again only
    when a directory or a file leads out. Fill ``dirs`` with ``(root
    index, directory)`` and ``links`` (through compare_file) with the files
    that are symlinks, then ask :meth:`problems`."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = roots
        self.real_roots = [os.path.realpath(r) for r in roots]
        self.dirs: set[tuple[int, str]] = set()  # (root, directory of a file)
        self.links: set[str] = set()  # files that are symlinks, filled by compare_file

    def _outside(self, root: int, abs_path: str) -> str | None:
        """Where ``abs_path`` really is, if that is outside the root."""
        target = os.path.realpath(abs_path)
        real_root = self.real_roots[root]
        if target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep):
            return None
        return target

    def _dir_outside(self, root: int, head: str, inside: set[str]) -> str | None:
        """_outside() of the directory ``head`` of root ``root``. realpath()
        lstats every component from "/" in Python, a millisecond per ten
        directories; below a real root, a directory none of whose
        components is a symlink is inside, so each component below the
        root is lstat'ed once (``inside``: those found so) and only a path
        through a symlink is resolved."""
        base = self.roots[root]
        if base != self.real_roots[root]:
            return self._outside(root, os.path.join(base, head))
        prefix = base
        for name in head.split("/"):
            prefix = f"{prefix}{os.sep}{name}"
            if prefix in inside:
                continue
            try:
                st = os.lstat(prefix)
            except OSError:
                st = None
            if st is None or stat.S_ISLNK(st.st_mode):
                return self._outside(root, os.path.join(base, head))
            inside.add(prefix)
        return None

    def problems(self, files: dict[str, Any]) -> list[Problem]:
        out_dirs = {}
        inside: set[str] = set()
        for root, head in self.dirs:
            target = self._dir_outside(root, head, inside) if head else None
            if target is not None:
                out_dirs[root, head] = target
        if not out_dirs and not self.links:
            return []
        found = []
        for path, rec in files.items():
            names = [("", path)] + [(f"its {encoding} variant is ", var["file"])
                                    for encoding, var in rec.get("variants", {}).items()
                                    if "file" in var]
            for what, name in names:
                root = rec["root"]
                target = out_dirs.get((root, name.rpartition("/")[0]))
                abs_path = self.roots[root] + os.sep + name  # as check_tree wrote it
                if target is None and abs_path in self.links:
                    target = self._outside(root, abs_path)
                if target is not None:
                    found.append(Problem(path, f"{what}reached through a symlink that leads "
                                               f"out of the root, to {target!r}; bustware "
                                               "never serves such a file: copy it into the "
                                               "root, or point the link inside it",
                                         unsafe=True))
                    break
        return found

