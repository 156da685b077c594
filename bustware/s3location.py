"""The ``s3://BUCKET/PREFIX`` store URL: parsed and checked, with errors that
say what to write instead. No S3 client is imported here, so the CLI and
the options can check a URL without loading one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .store import StoreError

__all__ = ["S3Location", "is_s3_url", "parse_s3_url"]

#: S3's rules for a bucket name (the strictest common set; S3-compatible
#: services accept at least these).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_EXAMPLE = "s3://my-bucket/site/static"


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix inside it (no leading or trailing slash;
    empty for the bucket's root)."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, rel: str) -> str:
        """The full key of ``rel`` under the prefix."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def rel(self, key: str) -> str:
        """``key`` relative to the prefix (the inverse of :meth:`key`)."""
        return key[len(self.prefix) + 1:] if self.prefix else key


def is_s3_url(value: str) -> bool:
    return value.lower().startswith("s3://")


def parse_s3_url(url: str) -> S3Location:
    """``s3://BUCKET`` or ``s3://BUCKET/PREFIX`` as an :class:`S3Location`.
    Raises :class:`StoreError` naming the value and what to write."""
    if not isinstance(url, str) or not is_s3_url(url):
        raise StoreError(f"store {url!r} is not an S3 URL: write s3://BUCKET/PREFIX, "
                         f"for example {_EXAMPLE}")
    rest = url[len("s3://"):]
    if "?" in rest or "#" in rest:
        raise StoreError(f"store {url!r}: an S3 store URL takes no query or fragment; the "
                         "endpoint and credentials come from the environment (AWS_ENDPOINT_URL, "
                         f"AWS_PROFILE, ...): write it as {_EXAMPLE}")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"store {url!r} names no bucket: write s3://BUCKET/PREFIX, "
                         f"for example {_EXAMPLE}")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StoreError(
            f"store {url!r}: {bucket!r} is not a valid bucket name (3 to 63 lowercase "
            "letters, digits, dots and hyphens, starting and ending with a letter or digit)"
            + (f": write s3://{bucket.lower()}/{prefix}" if _BUCKET.fullmatch(bucket.lower())
               else ""))
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    bad = [p for p in parts if p in ("", ".", "..")]
    if bad:
        fixed = "/".join(p for p in parts if p not in ("", ".", ".."))
        raise StoreError(f"store {url!r}: the prefix {prefix!r} has an empty, '.' or '..' "
                         f"segment, which S3 keeps literally: write s3://{bucket}/{fixed}")
    return S3Location(bucket, prefix)
