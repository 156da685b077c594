"""Delta updates: the earlier versions of a file as compression
dictionaries (RFC 9842, Compression Dictionary Transport, coding ``dcz``).

A versioned response of a text-like file says which URLs it may serve as a
dictionary for (``Use-As-Dictionary: match="..."``): the URLs of the same
file's other versions, in the index's URL style and prefix. A browser that
kept it then asks for the next version with ``Available-Dictionary:
:<base64 sha-256>:``; when that hash names the served bytes of a version of
the same file that this process holds (the current generation or a kept
one), the answer is the new bytes as a Zstandard frame compressed with the
old bytes as a raw-content dictionary, behind the 8-byte ``dcz`` magic and
the dictionary's hash (RFC 9842 section 5.2).

Everything else (an unknown hash, a malformed header, another file's
dictionary, a Range request, ``dcz`` not acceptable) gets the normal
response: this module answers None and the caller goes on as before.

``dcb`` (Brotli with a shared dictionary) is not offered: the ``brotli``
package (1.2) has no way to pass a dictionary to its encoder, nor has
``brotlicffi``; zstd is what both Chrome and Edge accept alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from .compress import is_compressible
from .files import open_regular
from .records import Asset, Variant
from .respond import NEEDS_THREAD, conditional
from .styles import Style

__all__ = ["MAGIC", "DeltaMaker", "accepts_dcz", "dictionary_hash", "encode_dcz",
           "match_pattern", "offer", "offer_for", "use_as_dictionary"]

#: The ``dcz`` stream header (RFC 9842 section 5.2): a skippable Zstandard
#: frame's magic and a length of 32, then the dictionary's SHA-256.
MAGIC = b"\x5e\x2a\x4d\x18\x20\x00\x00\x00"

#: Files smaller than this get no Use-As-Dictionary: a delta would save
#: fewer bytes than the headers of the exchange cost.
MIN_SIZE = 256

#: Larger files (as target or as dictionary) get no delta computed on a
#: request: a first request would wait long for it (bustware.livecompress).
MAX_SIZE = 2 * 1024 * 1024

#: The zstd level of the deltas: the build's, so that every worker makes the
#: same bytes with the same ETag.
LEVEL = 19

# Fetch destinations by suffix: the browser only offers the dictionary for
# requests of that kind (a script's text never for an image request).
_DEST = {".js": '("script")', ".mjs": '("script")', ".css": '("style")'}

# Characters with a meaning in a URLPattern (https://urlpattern.spec.whatwg.org/):
# escaped with a backslash so that they match themselves.
_PATTERN_SPECIAL = re.compile(r"([\\*:(){}+?])")

# A version no file name contains, put where the style writes the version
# and replaced by a wildcard once the rest is escaped.
_SENTINEL = "0bustwareversion0"

# The dcz element of an Accept-Encoding value, with its weight.
_DCZ = re.compile(r"(?:\A|,)[ \t]*dcz[ \t]*(?:;[ \t]*q=([0-9.]{1,5})[ \t]*)?(?=,|\Z)")


def match_pattern(url_for_version: Callable[[str, str | None], str], path: str,
                  style: str) -> str:
    """The URLPattern (relative to the origin that serves it) that matches
    the URLs of every version of ``path``, in ``style``: the version is a
    named group, which matches within one path segment (a ``*`` would match
    across slashes, so into other directories' files)."""
    parts = urlsplit(url_for_version(path, _SENTINEL))
    pathname = _PATTERN_SPECIAL.sub(r"\\\1", parts.path)
    if style == "query":
        search = _PATTERN_SPECIAL.sub(r"\\\1", parts.query).replace(_SENTINEL, "*")
        return f"{pathname}?{search}"
    return pathname.replace(_SENTINEL, ":v", 1)


def use_as_dictionary(pattern: str, path: str) -> str:
    """The Use-As-Dictionary field value for ``pattern``: a structured
    dictionary (RFC 8941), whose strings escape backslash and quote."""
    quoted = pattern.replace("\\", "\\\\").replace('"', '\\"')
    dest = _DEST.get(path[path.rfind("."):].lower()) if "." in path else None
    return f'match="{quoted}"' + (f", match-dest={dest}" if dest else "")


def wants_dictionary(asset: Asset) -> bool:
    """Whether ``asset``'s versioned responses offer themselves as a
    dictionary: a text-like format, and not tiny."""
    return asset.size >= MIN_SIZE and is_compressible(asset.path)


def accepts_dcz(header: str | None) -> bool:
    """Whether the Accept-Encoding value ``header`` accepts ``dcz``."""
    if header is None or len(header) > 1024:
        return False
    found = _DCZ.search(header.lower())
    if found is None:
        return False
    weight = found.group(1)
    try:
        return weight is None or 0 < float(weight) <= 1
    except ValueError:
        return False


def dictionary_hash(header: str | None) -> str | None:
    """The hex SHA-256 an Available-Dictionary value names (a structured
    byte sequence, ``:<base64>:``), or None if it is not one."""
    if header is None:
        return None
    value = header.strip(" \t")
    if len(value) != 46 or value[0] != ":" or value[-1] != ":":
        return None
    try:
        raw = base64.b64decode(value[1:-1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def encode_dcz(dictionary: bytes, data: bytes) -> bytes:
    """``data`` in the ``dcz`` coding against ``dictionary``."""
    import zstandard  # imported here: bustware imports without it

    zdict = zstandard.ZstdCompressionDict(dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    # RFC 9842 5.2: a decoder supports a window of max(8 MiB, 1.25 x the
    # dictionary's size); the frame must not ask for more. No dictionary
    # ID: the hash in the header names the dictionary.
    window_log = max(23, int(len(dictionary) * 1.25).bit_length() - 1)
    params = zstandard.ZstdCompressionParameters.from_level(
        LEVEL, source_size=len(data), dict_size=len(dictionary), window_log=window_log,
        write_content_size=1, write_checksum=0, write_dict_id=0)
    frame = zstandard.ZstdCompressor(dict_data=zdict, compression_params=params).compress(data)
    return MAGIC + hashlib.sha256(dictionary).digest() + frame


def read_served(asset: Asset) -> bytes | None:
    """The bytes served for ``asset``, if they are still those its digest
    names; None if they cannot be read or changed."""
    data = asset.body
    if data is None:
        try:
            f, _ = open_regular(asset.served_path or asset.abs_path)
            with f:
                data = f.read(MAX_SIZE + 1)
        except OSError:
            return None
    if len(data) != asset.size or hashlib.sha256(data).hexdigest() != asset.digest:
        return None
    return data


class HasAsset(Protocol):
    """An entry of the route table (bustware.entries.Entry)."""

    asset: Asset


class DeltaMaker:
    """The dictionaries this process holds, by file, and the deltas made
    on request, kept in memory within ``budget`` bytes (least recently
    used first out). A delta is made once per (new bytes, dictionary)
    pair; concurrent first requests of one pair wait for that one.
    ``wrap`` makes what is kept of a delta (the representation with its
    headers, bustware.entries) from the file's record and its variant."""

    def __init__(self, budget: int, wrap: Callable[[Asset, Variant], Any]) -> None:
        self.budget = budget
        self.wrap = wrap
        self.memory_used = 0
        self._lock = threading.Lock()
        #: path -> {hex sha-256 of served bytes: the version's record}.
        self._versions: dict[str, dict[str, Asset]] = {}
        #: (new digest, dictionary digest) -> Variant, or None: no gain.
        self._made: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._making: dict[tuple[str, str], threading.Event] = {}

    def reset(self, *entries: Iterable[HasAsset]) -> None:
        """Hold the versions of the files of ``entries`` (bustware.entries:
        the current ones, the kept ones) as the dictionaries on offer."""
        versions: dict[str, dict[str, Asset]] = {}
        for asset in (entry.asset for group in entries for entry in group):
            if asset.version is not None and wants_dictionary(asset):
                versions.setdefault(asset.path, {})[asset.digest] = asset
        self._versions = versions

    def dictionary(self, asset: Asset, header: str | None) -> Asset | None:
        """The version of ``asset``'s file the Available-Dictionary value
        ``header`` names, if this process holds it and it is not ``asset``."""
        digest = dictionary_hash(header)
        if digest is None or digest == asset.digest:
            return None
        return self._versions.get(asset.path, {}).get(digest)

    def for_request(self, asset: Asset, request: Mapping[str, str], block: bool) -> Any:
        """The ``dcz`` representation of ``asset`` a request (CGI names)
        gets, None for the normal one, or NEEDS_THREAD when it is to be
        made and ``block`` is False (an ASGI event loop's turn)."""
        header = request.get("HTTP_AVAILABLE_DICTIONARY")
        if (header is None or "HTTP_RANGE" in request
                or not accepts_dcz(request.get("HTTP_ACCEPT_ENCODING"))):
            return None
        old = self.dictionary(asset, header)
        if old is None:
            return None
        known, rep = self.made(asset, old)
        if known:
            return rep
        return self.delta(asset, old) if block else NEEDS_THREAD

    def answer(self, asset: Asset, request: Mapping[str, str], method: str, kind: int,
               block: bool) -> Any:
        """What a request of ``asset``'s URL of ``kind`` gets when it is to
        be a delta (respond.conditional on it), or NEEDS_THREAD (see
        :meth:`for_request`); None for the normal response."""
        rep = self.for_request(asset, request, block)
        if rep is None or rep is NEEDS_THREAD:
            return rep
        return conditional(request, method, rep, kind)

    def made(self, asset: Asset, dictionary: Asset) -> tuple[bool, Any]:
        """(whether the delta is known, its representation or None for no
        gain), without making it."""
        key = (asset.digest, dictionary.digest)
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return True, self._made[key]
        return False, None

    def delta(self, asset: Asset, dictionary: Asset) -> Any:
        """The ``dcz`` representation of ``asset`` against ``dictionary``,
        made now if need be; None when there is none worth sending."""
        known, variant = self.made(asset, dictionary)
        if known:
            return variant
        key = (asset.digest, dictionary.digest)
        with self._lock:
            event = self._making.get(key)
            mine = event is None
            if mine:
                event = self._making[key] = threading.Event()
        if not mine:
            event.wait()
            return self.made(asset, dictionary)[1]
        rep = None
        try:
            variant = self._make(asset, dictionary)
            rep = None if variant is None else self.wrap(asset, variant)
        finally:
            with self._lock:
                self._keep(key, rep)
                del self._making[key]
            event.set()
        return rep

    def _make(self, asset: Asset, dictionary: Asset) -> Variant | None:
        stored = asset.deltas.get(dictionary.digest)
        if stored is not None:  # made by the build (bustware.builddeltas)
            return stored
        if asset.size > MAX_SIZE or dictionary.size > MAX_SIZE:
            return None
        new = read_served(asset)
        old = read_served(dictionary)
        if new is None or old is None:
            return None
        body = encode_dcz(old, new)
        if len(body) >= asset.size:
            return None
        return Variant("dcz", asset.abs_path, len(body), hashlib.sha256(body).hexdigest(),
                       body, asset.mtime_ns)

    def _keep(self, key: tuple[str, str], rep: Any) -> None:
        # Only bytes held count: a stored delta is streamed from its object.
        size = rep.size if rep is not None and rep.body is not None else 0
        if size > self.budget:
            return
        self._made[key] = rep
        self.memory_used += size
        while self.memory_used > self.budget:
            _, dropped = self._made.popitem(last=False)
            if dropped is not None:
                self.memory_used -= dropped.size


class Index(Protocol):
    """What :func:`offer_for` needs of an index (an Assets)."""

    style: Style

    def url_for_version(self, path: str, version: str | None) -> str: ...


def offer_for(index: Index, enabled: bool) -> Callable[[Asset], str | None] | None:
    """The Use-As-Dictionary value of each file's versioned responses of
    ``index``; None when delta updates are off, or zstandard is missing."""
    if not enabled or importlib.util.find_spec("zstandard") is None:
        return None
    return offer(index.url_for_version, index.style.name)


def offer(url_for_version: Callable[[str, str | None], str],
          style: str) -> Callable[[Asset], str | None]:
    """The Use-As-Dictionary value of each file's versioned responses, for
    an index making URLs with ``url_for_version`` in ``style``."""

    def value(asset: Asset) -> str | None:
        if asset.version is None or not wants_dictionary(asset):
            return None
        return use_as_dictionary(match_pattern(url_for_version, asset.path, style), asset.path)

    return value
