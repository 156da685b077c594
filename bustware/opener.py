"""Opening the file a decision streams, checked to be the bytes the index
recorded before any header goes out; the object store's copy, or the file
as it is now (uncached), or a 404 when it is not.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from . import respond
from .files import open_regular
from .respond import FileReply, Opened, Reply

if TYPE_CHECKING:
    from .assets import Assets
    from .entries import Rep

__all__ = ["Opener"]

log = logging.getLogger("bustware")

_STALE_HEADERS = frozenset({"ETag", "Last-Modified", "Cache-Control", "Content-Length"})


class Opener:
    """Opens the files the decisions of a middleware stream, for the index
    ``assets``; with ``outdated="404"``, a file changed since it was indexed
    and not in the object store is a 404 rather than served uncached."""

    def __init__(self, assets: Assets, outdated: str) -> None:
        self.assets = assets
        self.outdated = outdated

    def open(self, plan: FileReply) -> Opened | Reply:
        """Open the file ``plan`` streams (blocking: the ASGI middleware
        calls this in a thread); see :func:`open_file`."""
        return open_file(self.assets, self.outdated, plan)


def open_file(assets: Assets, outdated: str, plan: FileReply) -> Opened | Reply:
    """Open the file a decision streams.

    The file opened must be the one indexed (device, inode, size, mtime)
    before any header goes out: a release switched under a running
    process, a file replaced by another with equal size and mtime, or by
    a symlink leading out of the root, never gets headers that name the
    indexed bytes."""
    rep = plan.rep
    try:
        f, st = open_regular(rep.abs_path)
    except OSError as exc:  # gone, unreadable, or a FIFO put in its place
        log.warning("bustware: cannot open %r: %s", rep.abs_path, exc)
        f = st = None
    if f is not None and (st.st_ino != rep.ino or st.st_dev != rep.dev
                          or st.st_size != rep.size or st.st_mtime_ns != rep.mtime_ns):
        if (rep.ino == 0 and st.st_size == rep.size and st.st_mtime_ns == rep.mtime_ns
                and _inside_roots(assets, rep.abs_path, f.fileno(), store=True)):
            # Identity not recorded at load (manifest_check="off"): the
            # first file opened that matches the manifest is the one.
            rep.dev, rep.ino = st.st_dev, st.st_ino
        else:
            return _open_changed(assets, outdated, plan, f, st)
    elif f is None:
        return _open_changed(assets, outdated, plan, None, None)
    return Opened(plan.status, plan.headers, f, st, plan.pieces, rep.abs_path)

def _open_changed(assets: Assets, outdated: str, plan: FileReply, f, st
                  ) -> Opened | Reply:
    """The file at ``rep.abs_path`` is not (or no longer) the one
    indexed. The indexed bytes from the object store, with the headers
    that name them; else the file as it is now, with ``no-store``, where
    ``outdated="serve"`` allows it and it lies inside the root; else 404."""
    rep = plan.rep
    stored = _from_store(assets, rep)
    if stored is not None:
        if f is not None:
            f.close()
        return Opened(plan.status, plan.headers, *stored[:2], plan.pieces, stored[2])
    if f is None:
        return respond.status_reply("GET", "404 Not Found")
    try:
        if outdated == "404" or not _inside_roots(assets, rep.abs_path, f.fileno()):
            # Swapped for a symlink that leaves the root since it was
            # indexed: the index would never have taken it.
            f.close()
            return respond.status_reply("GET", "404 Not Found")
    except BaseException:
        f.close()
        raise
    # Changed since it was indexed: these bytes are not the ones the ETag
    # and the version name, so nobody may store them.
    log.warning("bustware: %r changed on disk since it was indexed; serving "
                "it uncached (reload, or use autorefresh in development)", rep.abs_path)
    headers = [h for h in rep.headers[plan.kind] if h[0] not in _STALE_HEADERS]
    headers += [("Content-Length", str(st.st_size)), ("Cache-Control", "no-store")]
    return Opened("200 OK", headers, f, st, [(0, st.st_size)], rep.abs_path)

def _from_store(assets: Assets, rep: Rep):
    """The bytes ``rep`` names, opened from the local object store (named
    by their digest, so any file there of the right size is them), or
    None. A real file, so that a server can sendfile it."""
    if assets.manifest_path is None:
        return None
    from .localstore import LocalStore

    path = LocalStore(assets.manifest_path).object_path(rep.digest)
    try:
        f, st = open_regular(path)
    except OSError:
        return None
    if st.st_size != rep.size:
        f.close()
        return None
    return f, st, path

def _inside_roots(assets: Assets, abs_path: str, fd: int, store: bool = False) -> bool:
    """Whether the file opened from ``abs_path`` lies inside a root (as
    resolved when the index loaded), or with ``store``, in the object
    store or the index's private directory."""
    try:
        # Linux names the very file opened, whatever happened to the path
        # since (resolving the path again would race with a writer).
        real = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
    except OSError:
        real = os.path.realpath(abs_path)
    places = list(assets.real_roots)
    if store:
        if assets.manifest_path is not None:
            from .manifest import objects_dir

            places.append(os.path.realpath(objects_dir(assets.manifest_path)))
        if assets.spill_dir is not None:
            places.append(os.path.realpath(assets.spill_dir))
    return any(os.path.commonpath([real, place]) == place for place in places)
