"""The ``store=`` option of an index: the store every replica of a site
shares (``"s3://BUCKET/PREFIX"``, or a ready :class:`~bustware.store.Store`
such as an :class:`~bustware.s3store.S3Store` configured by hand), and its
two companions, ``store_timeout=`` and ``store_cache=``.

Checked when the index is made, without any network request and without
importing an S3 client: a replica starts while the store is unreachable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .s3location import is_s3_url, parse_s3_url
from .store import Store

if TYPE_CHECKING:
    from .files import PathLike

__all__ = ["DEFAULT_CACHE", "DEFAULT_TIMEOUT", "check_store_cache", "check_store_timeout",
           "open_store"]

#: Seconds: the S3 client's connect and read timeouts (one attempt, no
#: retry); a request waiting for another's look-up waits three times this. Short:
#: only a URL no release of this replica names ever waits on the store.
DEFAULT_TIMEOUT = 1.0
#: Bytes of fetched objects kept in memory (least recently used go first).
DEFAULT_CACHE = 32 * 1024 * 1024


def check_store_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"bustware: store_timeout={value!r} must be seconds above 0 (how "
                         "long a request may wait on the store; default "
                         f"{DEFAULT_TIMEOUT})")
    return float(value)


def check_store_cache(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bustware: store_cache={value!r} must be a byte count >= 0 (the "
                         "memory kept for objects fetched from the store; default "
                         f"{DEFAULT_CACHE})")
    return value


def open_store(value: str | Store | None, timeout: float,
               manifest: PathLike | None) -> Store | None:
    """The store ``value`` names, made without a network request: an
    ``s3://`` URL gets an :class:`~bustware.s3store.S3Store` with
    ``timeout`` as its connect and read timeouts and a single attempt; a
    :class:`~bustware.store.Store` is used as it is."""
    if value is None:
        return None
    if isinstance(value, str):
        if not is_s3_url(value):
            raise ValueError(
                f"bustware: store={value!r} is not a store: give the bucket every replica "
                "shares as s3://BUCKET/PREFIX (the one `bustware build --store` writes to), "
                "or a bustware.s3store.S3Store")
        location = parse_s3_url(value)  # a StoreError naming the value and the fix
        from .s3store import S3Store  # boto3 itself only on the first request

        store: Store = S3Store(location, connect_timeout=timeout, read_timeout=timeout,
                               max_attempts=1)
    elif isinstance(value, Store):
        store = value
    else:
        raise TypeError(f"bustware: store={value!r} is not a store: give s3://BUCKET/PREFIX "
                        "or a bustware.s3store.S3Store")
    if manifest is None:
        raise ValueError(
            f"bustware: store={store.url!r} needs manifest=: a replica serves its own "
            "release from the manifest its image carries (`bustware build ROOT --store "
            f"{store.url} --out MANIFEST`) and asks the store only for other releases")
    return store
