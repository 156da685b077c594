"""The part of ``bustware build --store s3://BUCKET/PREFIX`` that is about
the bucket, in the order that keeps every manifest's promise:

1. read the bucket's manifest (the generations come from it: a CI runner
   is fresh) and refuse one that is not this prefix's or not ours, before
   anything is written;
2. list what the bucket holds, once (objects, and the CDN-origin keys under
   the URL prefix), so that only what is missing is sent;
3. the objects, each into the local store beside ``--out`` (the image
   carries what its release serves) and into the bucket (see
   :mod:`bustware.mirror`), then the CDN-origin keys of the current
   generation (see :mod:`bustware.origin`);
4. the bucket's manifest, by compare-and-swap (the build does it, with
   :func:`bustware.publish.update`);
5. the local manifest, the same bytes, last; then the objects and keys only
   dropped generations named are deleted.

A build killed at any point leaves the bucket's manifest as it was, naming
only objects that are there (objects are never deleted before the manifest
that stops naming them is written); the next build sends what is missing.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from . import manifest as mf
from .buildreport import UploadTally
from .layout import write_atomic
from .localstore import LocalStore
from .mirror import UPLOADERS, MirrorStore
from .origin import current_keys, prune_keys, put_keys
from .s3store import S3Store
from .store import StoredManifest

__all__ = ["BucketBuild"]


class BucketBuild:
    """One build's dealings with the bucket ``remote``; ``manifest_path``
    is the local ``--out``."""

    def __init__(self, remote: S3Store, manifest_path: str, url_prefix: str) -> None:
        self.remote = remote
        self.manifest_path = manifest_path
        self.local = LocalStore(manifest_path)
        self.root = url_prefix.lstrip("/")
        self.tally = UploadTally()
        self.mirror: MirrorStore | None = None
        self._keys: set[str] = set()
        self._listing: ThreadPoolExecutor | None = None
        self._key_listing: Future[set[str]] | None = None

    @property
    def manifest_url(self) -> str:
        return f"s3://{self.remote.location.bucket}/{self.remote.manifest_key}"

    def existing(self, stored: StoredManifest | None, url_prefix: str) -> dict[str, Any] | None:
        """The bucket's manifest, parsed, if it is one this build may follow."""
        remove = f"aws s3 rm {self.manifest_url}"
        try:
            old = None if stored is None else mf.parse(stored.data, self.manifest_url)
        except mf.ManifestError as exc:
            raise mf.ManifestError(
                f"{exc}\nbustware build will not overwrite it: build into another prefix "
                f"(--store s3://{self.remote.location.bucket}/OTHER), or, if nothing serves "
                f"it, remove it ({remove}) and build again") from None
        if old is None:
            return None
        owner = old.get("store")
        if owner is not None and owner != self.remote.url:
            raise mf.ManifestError(
                f"bustware: {self.manifest_url} was written for the store {owner!r}, not "
                f"{self.remote.url!r} (copied from another prefix?): build with --store "
                f"{owner}, or, if nothing serves this prefix, remove it ({remove}) and build "
                "again")
        was = old["settings"]["prefix"]
        if was != url_prefix:
            raise mf.ManifestError(
                f"bustware: {self.manifest_url} holds builds made with --prefix {was}, and "
                f"this build gives --prefix {url_prefix}: the replicas and the CDN-origin keys "
                f"of those builds serve {was}; build with --prefix {was}, or into another "
                f"store prefix (--store s3://{self.remote.location.bucket}/OTHER)")
        return old

    @staticmethod
    def unchanged(old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Whether ``new`` says what the bucket's manifest ``old`` says but
        for the files' times: a fresh checkout of the same tree. The
        bucket's manifest is then left as it is (replicas polling it see no
        change); the local one describes the local files, times included."""
        return _timeless(old) == _timeless(new)

    def start(self) -> MirrorStore:
        """Learn what the bucket holds (one listing each of the objects and
        of the CDN-origin keys under the URL prefix, while the build reads
        the tree), and give the object sink the build writes into."""
        self._listing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bustware-list")
        present = self._listing.submit(lambda: set(self.remote.list_objects()))
        self._key_listing = self._listing.submit(
            lambda: set(self.remote.list_public(self.root)))
        self.mirror = MirrorStore(self.local, self.remote, present, UPLOADERS)
        self.tally = self.mirror.tally
        return self.mirror

    def upload(self, files: dict[str, Any], settings: dict[str, Any],
               progress: Callable[[int], Any] | None) -> None:
        """Wait for the objects, then write the missing CDN-origin keys of
        the current generation, from the local copies."""
        assert self.mirror is not None, "start() first"
        self.mirror.finish(progress)
        assert self._key_listing is not None
        self._keys = self._key_listing.result()
        keys = current_keys({"files": files, "settings": settings, "previous": []})
        if files and not keys:
            self.tally.note = ("no CDN-origin keys: the query URL style puts the version in "
                               "the query string, which is no part of a key; build with "
                               "--style filename (or segment) for a CDN whose origin is the "
                               "bucket")
        written, skipped = put_keys(self.remote, self.local, keys, self._keys, UPLOADERS)
        self.tally.keys_written, self.tally.keys_skipped = written, skipped
        self._keys.update(k.key for k in keys)

    def publish_local(self, payload: bytes) -> None:
        """The local manifest, the bytes now in the bucket: written last."""
        write_atomic(self.manifest_path, payload)

    def clean(self, data: dict[str, Any], deleted: set[str]) -> None:
        """Delete the CDN-origin keys of the ``deleted`` objects that the
        manifest now in force no longer names."""
        self.tally.keys_removed = len(prune_keys(self.remote, data, self._keys, deleted))

    @property
    def created(self) -> set[str]:
        """The objects this build sent to the bucket (known after upload)."""
        return self.mirror.created if self.mirror is not None else set()

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
        if self._listing is not None:
            self._listing.shutdown(wait=True, cancel_futures=True)



def _timeless(data: dict[str, Any]) -> dict[str, Any]:
    files = {}
    for path, rec in data["files"].items():
        rec = {k: v for k, v in rec.items() if k != "mtime_ns"}
        if "served" in rec:
            rec["served"] = {k: v for k, v in rec["served"].items() if k != "mtime"}
        if "variants" in rec:
            rec["variants"] = {e: {k: v for k, v in var.items() if k != "mtime_ns"}
                               for e, var in rec["variants"].items()}
        files[path] = rec
    return {**data, "files": files}
