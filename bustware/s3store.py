"""The :class:`~bustware.store.Store` in an S3-compatible bucket, and the
CDN-origin keys beside it.

Layout under ``s3://BUCKET/PREFIX`` (the local store's, with the prefix as
its directory):

- ``PREFIX/objects/<digest[:2]>/<digest>``: each object, named by its
  SHA-256, fanned out as on disk;
- ``PREFIX/manifest.json``: the manifest, written last and only by a
  conditional PUT (``If-None-Match: *`` when there is none, ``If-Match:
  <ETag read>`` otherwise), so two builds racing never lose a generation;
- ``PREFIX/<versioned URL path>``, for example ``PREFIX/static/css/app.1a2b3c4d.css``:
  the CDN-origin keys, each file's served bytes (never a compressed body)
  with its ``Content-Type`` and ``Cache-Control: public, max-age=31536000,
  immutable``, so a CDN whose origin is the bucket (origin path ``PREFIX``)
  serves every versioned URL. ``objects/`` and ``manifest.json`` are
  therefore reserved and not valid CDN keys.

The client is boto3 (``pip install 'bustware[s3]'``), imported on the first
request, never by ``import bustware``. Configuration is the standard AWS
chain (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, instance and pod roles); bustware takes no credentials. One
client is shared by all threads (boto3 clients are thread-safe).

Conditional writes are what makes the manifest safe: AWS S3 (since
2024), MinIO, Cloudflare R2 and Ceph RGW honour ``If-None-Match``/``If-Match``
on PUT and answer 412 (or 409 ``ConditionalRequestConflict`` for a
concurrent one), which :meth:`S3Store.write_manifest` raises as
:class:`~bustware.store.ManifestConflict`. A service that ignores the headers
writes blindly: two builds racing into one prefix may then lose a generation,
so run one build per prefix at a time there.

Timeouts are short by default (connect 1 s, read 3 s, 2 attempts), because a
replica asking the bucket must never hang on a bucket that hangs: every call
fails with :class:`~bustware.store.StoreUnavailable` within about
``attempts * (connect_timeout + read_timeout)`` plus a back-off of under a
second.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, Protocol, cast, runtime_checkable

from .digestio import Body, CheckedStream, SourceReader
from .s3errors import translate
from .s3location import S3Location, parse_s3_url
from .store import ManifestConflict, NoSuchObject, StoredManifest, StoreError

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = ["IMMUTABLE", "OriginStore", "PublicObject", "S3Store"]

IMMUTABLE = "public, max-age=31536000, immutable"
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: Objects up to this size go in one PUT (read into memory, checked, then
#: sent); larger ones in parts of this size, one part in memory at a time.
PART_SIZE = 8 << 20
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
#: Headers S3 keeps as such; any other goes into the object's metadata.
_HEADER_PARAMS = {"cache-control": "CacheControl", "content-encoding": "ContentEncoding",
                  "content-disposition": "ContentDisposition",
                  "content-language": "ContentLanguage", "content-type": "ContentType"}


@dataclass(frozen=True)
class PublicObject:
    """What the bucket says about a CDN-origin key."""

    size: int
    content_type: str | None
    cache_control: str | None
    content_encoding: str | None
    digest: str | None  # the SHA-256 bustware wrote it with, if it did


@runtime_checkable
class OriginStore(Protocol):
    """A store that is also a CDN's origin: the served bytes of each file
    under its versioned URL path (``key``, relative to the store's prefix,
    no leading slash)."""

    url: str

    def put_public(self, key: str, source: bytes | BinaryIO, size: int, *,
                   content_type: str, digest: str,
                   cache_control: str = IMMUTABLE) -> None: ...

    def head_public(self, key: str) -> PublicObject | None: ...

    def list_public(self, under: str = "") -> Iterator[str]: ...

    def delete_public(self, keys: Iterable[str]) -> int: ...


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError(f"{digest!r} is not an object name: give a SHA-256 digest "
                         "(64 lowercase hex digits)")
    return digest


class S3Store:
    """Objects, the manifest and the CDN-origin keys under ``s3://BUCKET/PREFIX``.

    ``endpoint_url`` is for code that must not depend on the environment;
    otherwise ``AWS_ENDPOINT_URL`` (or nothing, for AWS) applies."""

    def __init__(self, url: str | S3Location, *, endpoint_url: str | None = None,
                 connect_timeout: float = 1.0, read_timeout: float = 3.0,
                 max_attempts: int = 2, max_connections: int = 16) -> None:
        self.location = url if isinstance(url, S3Location) else parse_s3_url(url)
        self.url = self.location.url
        for name, value in (("connect_timeout", connect_timeout),
                            ("read_timeout", read_timeout)):
            if not value > 0:
                raise ValueError(f"{name}={value!r}: give a number of seconds above 0")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts!r}: give 1 (no retry) or more")
        self._endpoint_url = endpoint_url
        self._config = dict(connect_timeout=connect_timeout, read_timeout=read_timeout,
                            retries={"total_max_attempts": max_attempts, "mode": "standard"},
                            max_pool_connections=max_connections)
        self._client_lock = threading.Lock()
        self._client_obj: BaseClient | None = None
        self._session: Any = None

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # -- the client, made on first use ---------------------------------

    @property
    def _client(self) -> BaseClient:
        client = self._client_obj
        if client is None:
            with self._client_lock:
                if self._client_obj is None:
                    try:
                        import boto3
                        from botocore.config import Config
                    except ImportError:
                        raise StoreError(f"{self.url}: the S3 store needs boto3: "
                                         "pip install 'bustware[s3]'") from None
                    self._session = boto3.session.Session()
                    self._client_obj = self._session.client(
                        "s3", endpoint_url=self._endpoint_url,
                        config=Config(user_agent_extra="bustware", **self._config))
                client = self._client_obj
        return client

    def _call(self, op: str, what: str, **params: Any) -> Any:
        """``client.<op>(**params)`` with its failures as store errors;
        ``what`` names the key for messages."""
        try:
            return getattr(self._client, op)(Bucket=self.location.bucket, **params)
        except Exception as exc:
            self._raise(exc, what)

    def _raise(self, exc: Exception, what: str) -> NoReturn:
        translated = self._translate(exc, what)
        if translated is exc:
            raise exc
        raise translated from exc

    def _translate(self, exc: Exception, what: str) -> Exception:
        """The store error a client failure means; other errors as they are."""
        return translate(exc, what, self.url, self.location,
                         lambda: self._client.meta.endpoint_url, self._credential_source)

    def _credential_source(self) -> str:
        try:
            creds = self._session.get_credentials()
        except Exception:  # the hint must not hide the error it explains
            creds = None
        if creds is None:
            return "(none found)"
        return f"{creds.access_key[:4]}... (from {getattr(creds, 'method', 'unknown')})"

    @staticmethod
    def _status(exc: BaseException) -> tuple[str, int]:
        from botocore.exceptions import ClientError

        cause = exc.__cause__
        if isinstance(cause, ClientError):
            return (str(cause.response.get("Error", {}).get("Code", "")),
                    cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return "", 0

    # -- objects ---------------------------------------------------------

    def object_key(self, digest: str) -> str:
        """The key an object is stored at."""
        check_digest(digest)
        return self.location.key(f"objects/{digest[:2]}/{digest}")

    def put_object(self, digest: str, source: bytes | BinaryIO, size: int, *,
                   content_type: str | None = None,
                   headers: Mapping[str, str] | None = None) -> bool:
        key = self.object_key(digest)
        params = _object_params(content_type, headers)
        if isinstance(source, (bytes, bytearray, memoryview)) and size <= PART_SIZE:
            # Bytes already in memory go in one conditional PUT instead of a
            # HEAD and a PUT: half the requests for a first build of many
            # small files (measured 2x the time of plain PUTs with the HEAD).
            data = SourceReader(source, size, digest, key).read_rest()
            try:
                self._call("put_object", key, Key=key, Body=data, IfNoneMatch="*", **params)
                return True
            except StoreError as exc:
                code, status = self._status(exc)
                if status == 412:
                    return False
                if code != "ConditionalRequestConflict":
                    raise
                # Another writer is putting the same bytes right now: ask.
        if self.has_object(digest):
            return False
        self._upload(key, source, size, digest, params)
        return True

    def has_object(self, digest: str) -> bool:
        return self._head(self.object_key(digest)) is not None

    def object_size(self, digest: str) -> int:
        """The object's size in bytes. Raises :class:`NoSuchObject`."""
        head = self._head(self.object_key(digest))
        if head is None:
            raise NoSuchObject(f"{self.url}: no object {digest}")
        return int(head["ContentLength"])

    def open_object(self, digest: str) -> BinaryIO:
        key = self.object_key(digest)
        body = self._get(key)
        where = f"s3://{self.location.bucket}/{key}"
        return cast(BinaryIO, io.BufferedReader(
            CheckedStream(body, digest, where, lambda exc: self._raise(exc, key)), 1 << 16))

    def get_object(self, digest: str) -> bytes:
        with self.open_object(digest) as f:
            return f.read()

    def list_objects(self) -> Iterator[str]:
        for key in self._list(self.location.key("objects/")):
            name = key.rpartition("/")[2]
            if _DIGEST.fullmatch(name) and key == self.object_key(name):
                yield name

    def delete_objects(self, digests: Iterable[str]) -> int:
        wanted = {self.object_key(d) for d in digests}
        if not wanted:
            return 0
        # DeleteObjects reports keys that were never there as deleted, so
        # what was there is learned from one listing (cheaper than a HEAD each).
        present = wanted.intersection(self._list(self.location.key("objects/")))
        return self._delete(present)

    # -- the manifest ----------------------------------------------------

    @property
    def manifest_key(self) -> str:
        return self.location.key("manifest.json")

    def read_manifest(self) -> StoredManifest | None:
        try:
            body = self._get(self.manifest_key)
        except NoSuchObject:
            return None
        with body:
            data = self._read_all(body, self.manifest_key)
        return StoredManifest(data, body.tag)

    def read_manifest_if_changed(self, tag: str) -> StoredManifest | None:
        """The manifest if it is no longer the version ``tag`` names (one
        conditional GET); None if it is still that version. Raises
        :class:`NoSuchObject` if there is no manifest any more."""
        try:
            body = self._get(self.manifest_key, IfNoneMatch=tag)
        except StoreError as exc:
            if self._status(exc)[1] == 304:
                return None
            raise
        with body:
            data = self._read_all(body, self.manifest_key)
        return StoredManifest(data, body.tag)

    def write_manifest(self, payload: bytes, expected: str | None) -> str:
        cond = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            # no-cache: a CDN or proxy in front of the bucket must not keep
            # serving a manifest older than the objects it may drop.
            result = self._call("put_object", self.manifest_key, Key=self.manifest_key,
                                Body=payload, ContentType="application/json",
                                CacheControl="no-cache", **cond)
        except StoreError as exc:
            code, status = self._status(exc)
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict") \
                    or (status == 409 and expected is not None):
                raise ManifestConflict(
                    f"{self.url}: the manifest changed since it was read (another build "
                    "wrote it): read it again, merge and retry") from exc
            raise
        return str(result["ETag"])

    # -- CDN-origin keys -------------------------------------------------

    def public_key(self, key: str) -> str:
        """The full key of a CDN-origin ``key`` (a versioned URL path
        without its leading slash)."""
        parts = key.split("/") if isinstance(key, str) else [""]
        if (not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts)
                or parts[0] == "objects" or key == "manifest.json"):
            raise ValueError(
                f"{key!r} is not a CDN-origin key: give a URL path without its leading "
                "slash, with no empty, '.' or '..' segment, not under objects/ nor "
                "manifest.json (those are the store's own; choose another URL prefix)")
        return self.location.key(key)

    def put_public(self, key: str, source: bytes | BinaryIO, size: int, *,
                   content_type: str, digest: str, cache_control: str = IMMUTABLE) -> None:
        """Write the served bytes of a file (never a compressed body) at
        ``PREFIX/key``, checked against ``digest`` before they show."""
        full = self.public_key(key)
        check_digest(digest)
        self._upload(full, source, size, digest,
                     {"ContentType": content_type, "CacheControl": cache_control,
                      "Metadata": {"sha256": digest}})

    def head_public(self, key: str) -> PublicObject | None:
        head = self._head(self.public_key(key))
        if head is None:
            return None
        return PublicObject(size=int(head.get("ContentLength", 0)),
                            content_type=head.get("ContentType"),
                            cache_control=head.get("CacheControl"),
                            content_encoding=head.get("ContentEncoding"),
                            digest=head.get("Metadata", {}).get("sha256"))

    def list_public(self, under: str = "") -> Iterator[str]:
        """Every CDN-origin key under the prefix (relative to it); with
        ``under`` (such as ``"static/"``), only those starting with it: at
        the bucket's root, the rest of the bucket is not the store's."""
        start = self.location.key(under) if self.location.prefix else under
        for full in self._list(start):
            rel = self.location.rel(full)
            if rel != "manifest.json" and not rel.startswith("objects/"):
                yield rel

    def delete_public(self, keys: Iterable[str]) -> int:
        wanted = {self.public_key(k) for k in keys}
        if not wanted:
            return 0
        present = {self.location.key(k) for k in self.list_public()} & wanted
        return self._delete(present)

    # -- requests ----------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast("dict[str, Any]", self._call("head_object", key, Key=key))
        except StoreError as exc:
            code, status = self._status(exc)
            if status == 404 and code != "NoSuchBucket":
                # HEAD has no body, so a missing bucket looks like a missing
                # key: the next PUT or GET names the bucket.
                return None
            raise

    def _get(self, key: str, **cond: str) -> Body:
        try:
            result = self._call("get_object", key, Key=key, **cond)
        except StoreError as exc:
            code, status = self._status(exc)
            if code == "NoSuchKey" or (status == 404 and code != "NoSuchBucket"):
                raise NoSuchObject(f"{self.url}: no object {key!r}") from None
            raise
        return Body(result["Body"], str(result.get("ETag", "")))

    def _read_all(self, body: Body, key: str) -> bytes:
        try:
            return body.read()
        except Exception as exc:
            self._raise(exc, key)

    def _list(self, prefix: str) -> Iterator[str]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"]
        except Exception as exc:
            self._raise(exc, prefix)

    def _delete(self, keys: Iterable[str]) -> int:
        keys = sorted(keys)
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = keys[i:i + _DELETE_BATCH]
            result = self._call("delete_objects", self.location.key(""),
                                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = result.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(f"{self.url}: {len(errors)} of {len(batch)} deletions failed, "
                                 f"first {first.get('Key')!r}: {first.get('Code')} "
                                 f"{first.get('Message', '')}")
        return len(keys)

    def _upload(self, key: str, source: bytes | BinaryIO, size: int, digest: str,
                params: dict[str, Any]) -> None:
        """Send ``size`` bytes to ``key``, checked against ``digest`` before
        the object becomes visible. Hand-written rather than boto3's
        ``upload_fileobj``: that one completes a multipart upload before a
        caller could check the bytes, and keeps several parts in memory."""
        reader = SourceReader(source, size, digest, key)
        if size <= PART_SIZE:
            data = reader.read_rest()
            self._call("put_object", key, Key=key, Body=data, **params)
            return
        upload_id = self._call("create_multipart_upload", key, Key=key,
                               **params)["UploadId"]
        try:
            parts = []
            number = 1
            while True:
                chunk = reader.read_part(PART_SIZE)
                if not chunk:
                    break
                etag = self._call("upload_part", key, Key=key, UploadId=upload_id,
                                  PartNumber=number, Body=chunk)["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
                del chunk  # before the next part is read: one part in memory
                number += 1
            reader.check()
            self._call("complete_multipart_upload", key, Key=key, UploadId=upload_id,
                       MultipartUpload={"Parts": parts})
        except BaseException:
            # If the abort fails too, the bucket's lifecycle rule for
            # incomplete uploads cleans up; the first error is the one to see.
            with contextlib.suppress(StoreError):
                self._call("abort_multipart_upload", key, Key=key, UploadId=upload_id)
            raise


def _object_params(content_type: str | None,
                   headers: Mapping[str, str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for name, value in (headers or {}).items():
        param = _HEADER_PARAMS.get(name.lower())
        if param:
            params[param] = value
        else:
            metadata[name.lower()] = value
    if content_type:
        params["ContentType"] = content_type
    if metadata:
        params["Metadata"] = metadata
    return params
