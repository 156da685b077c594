"""Bytes checked against their SHA-256 on their way into and out of a
store: a source read in parts for an upload, refused before the last part
is sent if it is not the digest's, and a download stream that ends in an
error instead of EOF when the bytes are not the digest's. No client here;
any store can use these."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any, BinaryIO, NoReturn, cast

from .store import DigestMismatch, StoreError

__all__ = ["Body", "CheckedStream", "SourceMismatch", "SourceReader"]


class SourceMismatch(DigestMismatch):
    """The bytes given for an object are not those its digest and size
    name (a file that changed while it was read): nothing was stored."""


class SourceReader:
    """Reads exactly ``size`` bytes from the source, hashing as it goes, and
    refuses bytes that are not the digest's before they are sent whole."""

    def __init__(self, source: bytes | BinaryIO, size: int, digest: str, key: str) -> None:
        self.source = source
        self.size = size
        self.digest = digest
        self.key = key
        self.seen = 0
        self.sha = hashlib.sha256()

    def read_part(self, n: int) -> bytes:
        n = min(n, self.size - self.seen)
        if n <= 0:
            return b""
        if isinstance(self.source, (bytes, bytearray, memoryview)):
            chunk = bytes(self.source[self.seen:self.seen + n])
        else:
            # Usually one read gives the whole part; joining pieces only
            # when it does not keeps a single copy of the part in memory.
            pieces = []
            got = 0
            while got < n:
                more = self.source.read(n - got)
                if not more:
                    break
                pieces.append(more)
                got += len(more)
            chunk = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            del pieces
        if len(chunk) < n:
            raise SourceMismatch(f"{self.key}: the source ended after {self.seen + len(chunk)} "
                             f"of the {self.size} bytes announced")
        self.seen += len(chunk)
        self.sha.update(chunk)
        return chunk

    def read_rest(self) -> bytes:
        data = self.read_part(self.size)
        self.check()
        return data

    def check(self) -> None:
        if isinstance(self.source, (bytes, bytearray, memoryview)):
            extra = len(self.source) > self.size
        else:
            extra = bool(self.source.read(1))
        if extra:
            raise SourceMismatch(f"{self.key}: the source has more than the {self.size} bytes "
                             "announced")
        if self.sha.hexdigest() != self.digest:
            raise SourceMismatch(f"{self.key}: the bytes given have SHA-256 "
                             f"{self.sha.hexdigest()}, not {self.digest}: the file changed "
                             "while it was read; build again")


class Body:
    """A GET's streamed body and the ETag of what it is reading."""

    def __init__(self, stream: Any, tag: str) -> None:
        self.stream = stream
        self.tag = tag

    def read(self, n: int = -1) -> bytes:
        return cast(bytes, self.stream.read() if n < 0 else self.stream.read(n))

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CheckedStream(io.RawIOBase):
    """An object's bytes as they arrive; at the end, a :class:`StoreError`
    instead of EOF if they are not the digest's (a store must not hand on
    bytes it did not vouch for). Read errors are store errors too."""

    def __init__(self, body: Body, digest: str, where: str,
                 fail: Callable[[Exception], NoReturn]) -> None:
        self.body = body
        self.digest = digest
        self.where = where
        self.fail = fail
        self.sha = hashlib.sha256()
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.body.read(len(buffer))
        except Exception as exc:
            self.fail(exc)
        if data:
            self.sha.update(data)
            buffer[:len(data)] = data
            return len(data)
        if not self.done:
            self.done = True
            if self.sha.hexdigest() != self.digest:
                raise StoreError(f"{self.where} holds bytes of "
                                 f"SHA-256 {self.sha.hexdigest()}: delete it (bustware verify "
                                 "names every such object) and build again")
        return 0

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()
