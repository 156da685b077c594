"""``--store``/``store=`` as given by a user: a ``s3://BUCKET/PREFIX`` URL
made into an :class:`~bustware.s3store.S3Store`, anything else refused with
what is accepted. No client is imported until the store is used."""

from __future__ import annotations

from .s3location import is_s3_url, parse_s3_url
from .s3store import S3Store
from .store import StoreError

__all__ = ["BUILD_TIMEOUTS", "open_store"]

#: For the commands that write (build, prune): a build may send parts of
#: 8 MiB over a slow link, and a retry costs less than a failed build. The
#: short defaults of S3Store are for replicas, which must never hang.
BUILD_TIMEOUTS = {"connect_timeout": 5.0, "read_timeout": 60.0, "max_attempts": 5,
                  "max_connections": 32}


def open_store(value: object, **options: float) -> S3Store:
    """The store ``value`` names. The local store needs no URL: it is the
    manifest file and the ``objects/`` beside it, the default. ``options``:
    S3Store's timeouts."""
    if not isinstance(value, str) or not is_s3_url(value):
        raise StoreError(
            f"bustware: --store {value!r} is not a store URL: give an S3-compatible bucket "
            "as s3://BUCKET/PREFIX (the endpoint and credentials come from the environment: "
            "AWS_ENDPOINT_URL, AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); "
            "for a local store leave --store out (the objects go beside the manifest, "
            "--out/--manifest)")
    return S3Store(parse_s3_url(value), **options)  # type: ignore[arg-type]
