"""Content-Type for a file name.

Python's built-in table (``mimetypes.MimeTypes()`` without the system files,
so that every machine, and so every replica, gives the same answer) plus a
few overrides for what browsers expect today.
"""

from __future__ import annotations

import mimetypes

__all__ = ["OVERRIDES", "content_type"]

OVERRIDES = {
    # RFC 9239: text/javascript is the one registered type for JavaScript.
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".map": "application/json",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".md": "text/markdown",
    ".xml": "application/xml",
    ".gz": "application/gzip",
    ".br": "application/x-brotli",
    ".zst": "application/zstd",
}

_TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/manifest+json",
        "application/xml",
        "application/xhtml+xml",
        "image/svg+xml",
    }
)

_BUILTIN = mimetypes.MimeTypes()


def content_type(name: str, charset: str = "utf-8") -> str:
    """The Content-Type header value for ``name`` (a path or a file name).

    Only the last suffix counts: ``archive.tar.gz`` is a gzip file to be
    downloaded as is, not a tar file with a Content-Encoding.
    """
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    suffix = base[dot:].lower() if dot > 0 else ""
    ctype = (
        OVERRIDES.get(suffix)
        or _BUILTIN.types_map[True].get(suffix)
        or _BUILTIN.types_map[False].get(suffix)
        or "application/octet-stream"
    )
    if charset and (ctype.startswith("text/") or ctype in _TEXT_TYPES):
        return f"{ctype}; charset={charset}"
    return ctype
