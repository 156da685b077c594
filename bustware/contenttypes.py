"""Content-Type for a file name.

Python's built-in table (``mimetypes.MimeTypes()`` without the system files,
so that every machine gives the same answer) plus overrides for what browsers
expect today. The built-in table changes between Python versions (3.9 has no
``.webp``, ``.avif`` or ``.wasm``), so every type a web page commonly loads is
pinned here: replicas running different Pythons must agree, or a CDN caches
whichever answer it saw first.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping

__all__ = ["ENCODED_SUFFIXES", "OVERRIDES", "check_content_types", "content_encoding",
           "content_type", "custom_type"]

OVERRIDES = {
    # Text. RFC 9239: text/javascript is the one registered type for JavaScript.
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".vtt": "text/vtt",
    ".ics": "text/calendar",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    # JSON and friends (RFC 8259 defines no charset parameter for them).
    ".json": "application/json",
    ".map": "application/json",  # source maps
    ".webmanifest": "application/manifest+json",
    ".jsonld": "application/ld+json",
    ".geojson": "application/geo+json",
    ".wasm": "application/wasm",
    # Fonts (RFC 8081).
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    # Images.
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".svgz": "image/svg+xml",  # gzip-encoded SVG: see ENCODED_SUFFIXES
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".jxl": "image/jxl",
    ".heic": "image/heic",
    # Audio and video.
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",  # Ogg Opus files (RFC 7845); audio/opus is the RTP type
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    # 3D models and documents.
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".pdf": "application/pdf",
    # Archives are served as themselves, never with a Content-Encoding.
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".br": "application/x-brotli",
    ".zst": "application/zstd",
    ".zstd": "application/zstd",
    ".tar": "application/x-tar",
    ".7z": "application/x-7z-compressed",
}

#: Types outside text/* that carry a charset parameter.
_TEXT_TYPES = frozenset(
    {
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "image/svg+xml",
    }
)

#: Files stored encoded: served with this Content-Encoding, whatever the
#: client's Accept-Encoding (every browser decodes gzip), and never given a
#: variant of their own.
ENCODED_SUFFIXES = {".svgz": "gzip"}

_builtin: mimetypes.MimeTypes | None = None


def _builtin_types() -> mimetypes.MimeTypes:
    # Built on first use (about 3 ms): the overrides answer the common suffixes.
    global _builtin
    if _builtin is None:
        _builtin = mimetypes.MimeTypes()
    return _builtin


# A media type with optional parameters (RFC 9110 8.3.1).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"[^"\\\x00-\x1f\x7f\u0100-\U0010ffff]*"'  # latin-1, as WSGI headers are
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*")


def content_type(name: str, charset: str = "utf-8") -> str:
    """The Content-Type header value for ``name`` (a path or a file name).

    Only the last suffix counts: ``archive.tar.gz`` is a gzip file to be
    downloaded as is, not a tar file with a Content-Encoding. Suffixes are
    case-insensitive; an unknown one gives ``application/octet-stream``.
    """
    suffix = _suffix(name)
    ctype = OVERRIDES.get(suffix)
    if ctype is None:
        types_map = _builtin_types().types_map
        ctype = (types_map[True].get(suffix) or types_map[False].get(suffix)
                 or "application/octet-stream")
    return _with_charset(ctype, charset)


def custom_type(name: str, charset: str | None, content_types: Mapping[str, str]) -> str | None:
    """The Content-Type that ``content_types`` (checked by
    :func:`check_content_types`) gives ``name``, or None."""
    ctype = content_types.get(_suffix(name))
    if ctype is None or ";" in ctype:  # parameters given: taken as written
        return ctype
    return _with_charset(ctype, charset)


def content_encoding(name: str) -> str | None:
    """The coding a file is stored in (``.svgz``: gzip), or None."""
    return ENCODED_SUFFIXES.get(_suffix(name))


def check_content_types(content_types: object) -> dict[str, str]:
    """``{".foo": "application/x-foo"}`` checked, with lowercased suffixes."""
    if content_types is None:
        return {}
    example = "e.g. content_types={'.foo': 'application/x-foo'}"
    if not isinstance(content_types, Mapping):
        raise TypeError(f"bustware: content_types={content_types!r} must map file suffixes "
                        f"to media types, {example}")
    checked = {}
    for suffix, ctype in content_types.items():
        if not (isinstance(suffix, str) and len(suffix) > 1 and suffix[0] == "."
                and "." not in suffix[1:] and "/" not in suffix):
            raise ValueError(f"bustware: content_types key {suffix!r} is not a file suffix; "
                             f"give the last suffix with its dot, {example}")
        if not (isinstance(ctype, str) and _MEDIA_TYPE.fullmatch(ctype)):
            raise ValueError(f"bustware: content_types[{suffix!r}] = {ctype!r} is not a media "
                             f"type such as 'application/x-foo' or 'text/x-foo; charset=utf-8'")
        checked[suffix.lower()] = ctype
    return checked


def _suffix(name: str) -> str:
    # Only the last suffix counts, and a leading dot (".htaccess") is none.
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def _with_charset(ctype: str, charset: str | None) -> str:
    if charset and (ctype.startswith("text/") or ctype in _TEXT_TYPES):
        return f"{ctype}; charset={charset}"
    return ctype
