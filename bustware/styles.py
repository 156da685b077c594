"""Where the version goes in a URL: the three styles.

Each style is a pair of pure functions on *logical* paths (unicode, slash
separated, relative to the prefix, not percent-encoded):

``build(path, version) -> (url_path, query)`` and
``parse(url_path, query) -> (path, version) | None``.

``parse(*build(p, v)) == (p, v)`` for every path and every valid version; the
property tests in ``tests/test_styles.py`` check it.

filename (default), ``css/app.css`` -> ``css/app.<v>.css``
    The version goes before the *last* suffix, as Django's
    ManifestStaticFilesStorage does: ``jquery.min.js`` -> ``jquery.min.<v>.js``,
    ``app.css.map`` -> ``app.css.<v>.map``, ``archive.tar.gz`` ->
    ``archive.tar.<v>.gz``. A name without a suffix gets the version appended
    (``LICENSE`` -> ``LICENSE.<v>``). Leading dots belong to the stem
    (``.well-known.json`` -> ``.well-known.<v>.json``). Because a version never
    contains a dot, the rule can be inverted from the URL alone: one dot after
    the leading dots means "no suffix", two or more mean the version is the
    second-to-last component.
segment, ``css/app.css`` -> ``<v>/css/app.css``
    With ``release=`` this is one global version, as in the symlink article.
query, ``css/app.css`` -> ``css/app.css?v=<v>``
    Kept for compatibility; shared proxies may ignore or strip query strings,
    so filename or segment is preferred.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote

from .versions import VERSION_RE

__all__ = ["STYLES", "FilenameStyle", "QueryStyle", "SegmentStyle", "Style", "make_style"]


def _is_version(text: str) -> bool:
    return VERSION_RE.match(text) is not None


def quote_path(path: str) -> str:
    """``path`` (a logical path, or a style's URL path) percent-encoded for
    a URL. quote() costs microseconds a call; most static file names are
    plain ASCII that it would return unchanged, so they skip it."""
    return path if PLAIN_PATH.match(path) else quote(path, safe=PATH_SAFE)


#: What a URL path keeps unescaped besides letters, digits and ``_.-~``:
#: "/" and the characters RFC 3986 (section 3.3, ``pchar``) allows in a
#: segment, as browsers and npm write them (``@lit/...``). Space, ``#``,
#: ``?``, ``%`` and non-ASCII are still escaped.
PATH_SAFE = "/@:!$&'()*+,;="

PLAIN_PATH = re.compile(r"[A-Za-z0-9_.\-~/@:!$&'()*+,;=]*\Z")


class Style:
    name = ""

    def build(self, path: str, version: str) -> tuple[str, str]:
        raise NotImplementedError

    def parse(self, url_path: str, query: str) -> tuple[str, str] | None:
        raise NotImplementedError


class FilenameStyle(Style):
    name = "filename"

    def build(self, path: str, version: str) -> tuple[str, str]:
        # The common case (a name with a suffix, no leading dot) by index
        # arithmetic: built once per file at every start.
        slash = path.rfind("/")
        dot = path.rfind(".")
        if dot > slash + 1 and path[slash + 1] != "." and slash != 0:
            return f"{path[:dot]}.{version}{path[dot:]}", ""
        head, _, base = path.rpartition("/")
        lead = len(base) - len(base.lstrip("."))
        stem, dot, suffix = base[lead:].rpartition(".")
        if dot:
            base = f"{base[:lead]}{stem}.{version}.{suffix}"
        else:
            base = f"{base}.{version}"
        return (f"{head}/{base}" if head else base), ""

    def parse(self, url_path: str, query: str) -> tuple[str, str] | None:
        head, _, base = url_path.rpartition("/")
        lead = len(base) - len(base.lstrip("."))
        parts = base[lead:].split(".")
        if len(parts) < 2:
            return None
        if len(parts) == 2:
            stem, version = parts
            name = base[:lead] + stem
        else:
            version = parts[-2]
            name = base[:lead] + ".".join(parts[:-2]) + "." + parts[-1]
        if not _is_version(version):
            return None
        return (f"{head}/{name}" if head else name), version


class SegmentStyle(Style):
    name = "segment"

    def build(self, path: str, version: str) -> tuple[str, str]:
        return f"{version}/{path}", ""

    def parse(self, url_path: str, query: str) -> tuple[str, str] | None:
        version, sep, path = url_path.partition("/")
        if not sep or not path or not _is_version(version):
            return None
        return path, version


class QueryStyle(Style):
    name = "query"

    def __init__(self, param: str = "v") -> None:
        if not param or quote(param, safe="") != param:
            raise ValueError(
                f"bustware: invalid query_param={param!r}: use a plain name such as 'v'"
            )
        self.param = param

    def build(self, path: str, version: str) -> tuple[str, str]:
        return path, f"{self.param}={version}"

    def parse(self, url_path: str, query: str) -> tuple[str, str] | None:
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == self.param:
                return (url_path, value) if _is_version(value) else None
        return None


STYLES = {"filename": FilenameStyle, "segment": SegmentStyle, "query": QueryStyle}


def make_style(style: str, query_param: str = "v") -> Style:
    if style == "query":
        return QueryStyle(query_param)
    if style in STYLES:
        if query_param != "v":
            raise ValueError(
                f"bustware: query_param={query_param!r} only applies to style='query', "
                f"not style={style!r}"
            )
        return STYLES[style]()
    raise ValueError(
        f"bustware: unknown style={style!r}: use one of 'filename', 'segment', 'query'"
    )
