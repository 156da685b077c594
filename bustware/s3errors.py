"""What an S3 client failure means for the store (bustware.s3store): the
store error to raise, with what to do, or the failure as it is.

botocore is imported on the first failure only: it is a dependency of the
store's client, which has been made by then.
"""

from __future__ import annotations

from typing import Callable

from .s3location import S3Location
from .store import StoreError, StoreUnavailable

__all__ = ["translate"]


def translate(exc: Exception, what: str, url: str, location: S3Location,
              endpoint: Callable[[], str], credential_source: Callable[[], str]) -> Exception:
    """The store error a client failure ``exc`` means; other errors as they
    are. ``what`` names the key for messages (``""``: the store ``url``);
    ``endpoint`` and ``credential_source`` are asked only by the messages
    that name them (making the client may be what failed)."""
    from botocore import exceptions as bex

    where = f"s3://{location.bucket}/{what}" if what else url
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NoSuchBucket":
            return StoreError(
                f"{url}: the bucket {location.bucket!r} does not exist at "
                f"{endpoint()}: create it (aws s3 mb "
                f"s3://{location.bucket}), or correct the bucket in the store URL "
                "or the endpoint in AWS_ENDPOINT_URL")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId",
                                     "SignatureDoesNotMatch", "AllAccessDisabled"):
            return StoreError(
                f"{where}: access denied ({code or status}) for the credentials "
                f"{credential_source()}: grant them s3:ListBucket on "
                f"arn:aws:s3:::{location.bucket} and s3:GetObject, s3:PutObject and "
                f"s3:DeleteObject on arn:aws:s3:::{location.key('*')}, or choose "
                "other credentials with AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY")
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "Throttling",
                                     "ServiceUnavailable", "InternalError"):
            return StoreUnavailable(f"{where}: the store failed ({code or status}: "
                                    f"{error.get('Message', '')}); try again later")
        return StoreError(f"{where}: {code or status}: {error.get('Message', '')}")
    if isinstance(exc, bex.NoCredentialsError):
        return StoreError(f"{url}: no AWS credentials found: set AWS_PROFILE, or "
                          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an "
                          "instance or pod role applies")
    if isinstance(exc, (bex.HTTPClientError, bex.ConnectionError)):
        return StoreUnavailable(f"{where}: the store at {endpoint()} "
                                f"did not answer ({exc}); try again later")
    if isinstance(exc, bex.ProfileNotFound):
        return StoreError(f"{url}: AWS_PROFILE={exc.kwargs.get('profile')!r} names no "
                          "profile in ~/.aws/config or ~/.aws/credentials: create it (aws "
                          "configure --profile NAME) or unset AWS_PROFILE")
    if isinstance(exc, bex.BotoCoreError):
        return StoreError(f"{where}: {exc}")
    return exc
