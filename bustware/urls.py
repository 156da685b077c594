"""The URL of each file of an index, made once per file at every start.

:func:`url_maker` gives the same strings as ``Assets.url_for_version``
(base URL, prefix, style, percent-encoding), specialised for one index so
that a scan or a manifest start of 10,000 files does not pay a method call,
a style call and a quoting test per file.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Callable, Protocol
from urllib.parse import quote

from . import nearmiss
from .styles import PATH_SAFE, PLAIN_PATH, FilenameStyle, Style

if TYPE_CHECKING:
    from .records import Asset

__all__ = ["UrlScheme", "all_plain", "url_maker", "versioned_values"]


class UrlScheme(Protocol):
    """How an index makes URLs (an :class:`~bustware.assets.Assets` is
    one): what url_maker() and the modules that make URLs for an index
    need of it."""

    base_url: str
    prefix: str
    style: Style

    def url_for_version(self, path: str, version: str | None) -> str: ...

    def plain_url(self, path: str) -> str: ...


class VersionedIndex(UrlScheme, Protocol):
    """An index that url_defaults hooks ask for versioned names."""

    autorefresh: bool

    def check(self) -> None: ...

    def get(self, path: str) -> Asset | None: ...

    def url(self, path: str) -> str: ...

    def __contains__(self, path: object) -> bool: ...


def url_maker(index: UrlScheme, plain_names: bool = False) -> Callable[[str, str | None], str]:
    """``(path, version) -> URL``, equal to ``index.url_for_version``.
    ``plain_names``: every path it will be given is one that quote() leaves
    as it is (see :func:`all_plain`), so none is tested again."""
    general = index.url_for_version
    if type(index.style) is not FilenameStyle or not all(
            _defined_in(type(index), name) == "bustware.assets"
            for name in ("url_for_version", "plain_url")):
        return general  # another style, or a subclass that builds URLs its own way
    head = index.base_url + index.prefix
    plain = PLAIN_PATH.match

    def url(path: str, version: str | None) -> str:
        # FilenameStyle.build's common case (a name with a suffix and no
        # leading dot), for a path that quote() would leave as it is: the
        # version holds no character it would change either.
        if version is None:
            return head + (path if plain_names or plain(path) else quote(path, safe=PATH_SAFE))
        slash = path.rfind("/")
        dot = path.rfind(".")
        if dot > slash + 1 and path[slash + 1] != "." and slash != 0 \
                and (plain_names or plain(path)):
            return f"{head}{path[:dot]}.{version}{path[dot:]}"
        return general(path, version)

    return url


#: What quote(path, safe=PATH_SAFE) leaves as it is (styles.PLAIN_PATH), as bytes.
_PLAIN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~" \
    + PATH_SAFE.encode("ascii")


def all_plain(paths: Iterable[str]) -> bool:
    """Whether quote() leaves every one of ``paths`` as it is: one test of
    all names at once (encoded, with every plain byte deleted, nothing
    remains), where a regular expression per name costs a tenth of a
    record."""
    try:
        return not "".join(paths).encode("ascii").translate(None, _PLAIN_BYTES)
    except UnicodeEncodeError:
        return False


def _defined_in(cls: type, name: str) -> str:
    """The module of the class in ``cls``'s MRO that defines ``name``."""
    return next(c.__module__ for c in cls.__mro__ if name in c.__dict__)


def versioned_values(assets: VersionedIndex, built: MutableMapping, filename: str,
                     values: dict[str, Any]) -> None:
    """Turn the ``filename`` of a ``url_for('static', filename=...)`` call
    into its versioned name (and, in the query style, add the version
    parameter) in ``values``: the url_defaults hook of bustware.flask and
    bustware.quart. ``built`` caches the result per Asset object (a weak
    mapping): a rescan that changes the file makes a new Asset, and so a
    new entry."""
    if assets.autorefresh:
        assets.check()
    asset = assets.get(filename)
    if asset is None and nearmiss.meant(filename, assets.prefix, assets) is not None:
        # A URL where a path was meant ('/css/app.css'), naming one file.
        filename = values["filename"] = nearmiss.meant(filename, assets.prefix, assets)
        asset = assets.get(filename)
    if asset is None or asset.version is None:
        assets.url(filename)  # raises AssetNotFound when strict and unknown
        return
    cached = built.get(asset)
    if cached is None:
        path, query = assets.style.build(filename, asset.version)
        extra = (assets.style.param, asset.version) if query else None  # type: ignore
        cached = built[asset] = (path, extra)
    values["filename"] = cached[0]
    if cached[1] is not None:
        values[cached[1][0]] = cached[1][1]
