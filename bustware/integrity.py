"""Subresource integrity, and the tags that carry it.

``integrity="sha384-..."`` on a ``<script>`` or ``<link>`` makes the browser
refuse bytes that are not the ones the page was rendered for: a compromised
CDN, or a cache that kept another version under the same URL. The value is
computed from the bytes bustware *serves*, which for a stylesheet whose
references were rewritten are not the bytes on disk (see
``bustware.references``).

SHA-384 is what the SRI specification's examples and most tools use; browsers
accept sha256, sha384 and sha512.

The tag helpers return ``str``; a template engine that escapes by default
needs it marked safe (``markupsafe.Markup(...)``, Django's ``mark_safe``),
which the framework integrations do. Every URL and attribute value is
escaped with ``html.escape``.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import TYPE_CHECKING, Any, Protocol

from .files import open_regular

if TYPE_CHECKING:
    from .records import Asset

__all__ = [
    "ALGORITHM",
    "asset_integrity",
    "kept_integrity",
    "modulepreload_tag",
    "script_tag",
    "sri",
    "sri_from_digest",
    "stylesheet_tag",
]

ALGORITHM = "sha384"


class Vouched(Protocol):
    """What the tag helpers ask of an index (an :class:`~bustware.Assets`;
    a :class:`~bustware.Bustware` is taken through its ``assets``)."""

    def url(self, path: str) -> str: ...

    def integrity(self, path: str) -> str: ...

_CHUNK = 1 << 20


def sri_from_digest(digest: bytes) -> str:
    """The integrity value for a raw SHA-384 digest (``hashlib.sha384(...).digest()``),
    for a caller that hashes while it reads."""
    return f"{ALGORITHM}-{base64.b64encode(digest).decode('ascii')}"


def sri(data: bytes) -> str:
    """The integrity value of ``data``: ``"sha384-<base64>"``."""
    return sri_from_digest(hashlib.sha384(data).digest())


def kept_integrity(asset: Asset) -> str:
    """The integrity value of ``asset`` (:func:`asset_integrity`), kept on
    the record when it may be (``Assets.integrity``). Raises
    :class:`~bustware.records.AssetNotFound` when the file cannot be read."""
    from .records import AssetNotFound

    try:
        value, fresh = asset_integrity(asset)
    except OSError as exc:
        raise AssetNotFound(
            f"bustware: cannot read {asset.abs_path!r} for its integrity value: {exc}"
        ) from exc
    if fresh:  # setting it twice from two threads stores the same value
        asset.integrity = value
    return value


def asset_integrity(asset: Asset) -> tuple[str, bool]:
    """The integrity value of the bytes the middleware serves for ``asset``,
    and whether it may be cached on the asset: ``False`` when the file on
    disk changed since it was indexed (the middleware then serves the new
    bytes, uncached, and the value given is theirs). Raises ``OSError`` if
    a file that is not held in memory cannot be read."""
    if asset.body is not None:
        return sri(asset.body), True
    h = hashlib.sha384()
    f, st = open_regular(asset.served_path or asset.abs_path)  # never blocks on a FIFO
    with f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    # A private copy of rewritten bytes never changes; a file of the tree may.
    fresh = asset.served_path is not None or \
        (st.st_size, st.st_mtime_ns) == (asset.size, asset.mtime_ns)
    return sri_from_digest(h.digest()), fresh


# -- tags ----------------------------------------------------------------------

_BAD_NAME_CHARS = frozenset(" \t\n\r\f\"'<>/=`\x00")


def _attr_name(key: str) -> str:
    # Python keywords and dashes: class_ -> class, data_id -> data-id.
    name = key.rstrip("_").replace("_", "-")
    if not name or any(c in _BAD_NAME_CHARS or c < " " or "\x7f" <= c <= "\x9f" for c in name):
        raise ValueError(
            f"bustware: {key!r} is not a valid HTML attribute name; use names like "
            "'media', 'defer', 'data_id' (rendered data-id) or 'class_' (rendered class)"
        )
    return name


def _render(tag: str, attrs: list[tuple[str, Any]], close: bool) -> str:
    parts = [f"<{tag}"]
    for name, value in attrs:
        if value is None or value is False:
            continue  # omitted: how a caller turns off a default (integrity=None)
        if value is True:
            parts.append(f" {name}")
        else:
            parts.append(f' {name}="{html.escape(str(value), quote=True)}"')
    parts.append(f"></{tag}>" if close else ">")
    return "".join(parts)


def _tag(tag: str, url_attr: str, fixed: list[tuple[str, Any]], assets: Any, path: str,
         attrs: dict[str, Any], close: bool) -> str:
    index: Vouched = getattr(assets, "assets", assets)  # a Bustware, or an Assets
    url = index.url(path)  # AssetNotFound for an unknown file when strict
    try:
        integrity: str | None = index.integrity(path)
    except LookupError:
        integrity = None  # strict=False and no such file: url() has warned
    pairs: dict[str, Any] = dict(fixed)
    pairs[url_attr] = url
    pairs["integrity"] = integrity
    pairs["crossorigin"] = "anonymous"
    for key, value in attrs.items():
        pairs[_attr_name(key)] = value
    return _render(tag, list(pairs.items()), close)


def script_tag(assets: Vouched | Any, path: str, **attrs: Any) -> str:
    """``<script src="<versioned URL>" integrity="sha384-..." crossorigin="anonymous"></script>``.

    ``assets`` is an :class:`~bustware.Assets` or a :class:`~bustware.Bustware`.
    Extra keyword arguments become attributes (``type="module"``,
    ``defer=True`` for a bare ``defer``, ``data_id="x"`` for ``data-id``);
    ``None`` or ``False`` leaves an attribute out, including the defaults:
    ``integrity=None``, ``crossorigin=None``.

    ``crossorigin="anonymous"`` is there because a browser checks integrity
    only on a CORS response when the file comes from another origin (a CDN,
    whose responses then need ``Access-Control-Allow-Origin``: the
    ``allow_origin=`` option of Bustware); on the page's own origin it
    changes nothing.
    """
    return _tag("script", "src", [], assets, path, attrs, close=True)


def stylesheet_tag(assets: Vouched | Any, path: str, **attrs: Any) -> str:
    """``<link rel="stylesheet" href="..." integrity="..." crossorigin="anonymous">``;
    see :func:`script_tag` for ``attrs``."""
    return _tag("link", "href", [("rel", "stylesheet")], assets, path, attrs, close=False)


def modulepreload_tag(assets: Vouched | Any, path: str, **attrs: Any) -> str:
    """``<link rel="modulepreload" href="..." integrity="..." crossorigin="anonymous">``;
    see :func:`script_tag` for ``attrs``."""
    return _tag("link", "href", [("rel", "modulepreload")], assets, path, attrs, close=False)
