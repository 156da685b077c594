"""The checks of an index's options: each names the bad value and says what
to pass instead, before anything is read."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from .advice import missing_root


def check_manifest(manifest, autorefresh: bool) -> str | None:
    """The absolute path of ``manifest=`` (None without one)."""
    if manifest is None:
        return None
    if autorefresh:
        raise ValueError(
            "bustware: manifest= and autorefresh=True conflict: a manifest is a "
            "snapshot for production, autorefresh rescans the files in development"
        )
    return os.path.abspath(os.fspath(manifest))


def check_roots(root) -> list[str]:
    """The roots of an index or a build as a list of paths, or a clear error."""
    if isinstance(root, (str, os.PathLike)):
        roots = [root]
    elif isinstance(root, (list, tuple)):
        roots = list(root)
    else:  # bytes, None, an app passed in root's place, a set (no order), ...
        raise TypeError(
            f"bustware: root={root!r} is not a directory; pass the directory that holds "
            "your static files as a str or pathlib.Path, or a list of them"
        )
    if not roots:
        raise ValueError("bustware: root=[] names no directory; pass at least one")
    checked = []
    for r in roots:
        if not isinstance(r, (str, os.PathLike)):
            raise TypeError(f"bustware: root {r!r} is not a path; pass a directory name")
        path = os.path.abspath(os.fspath(r))
        if not os.path.exists(path):
            raise ValueError(missing_root(os.fspath(r)))
        if not os.path.isdir(path):
            raise ValueError(
                f"bustware: root {os.fspath(r)!r} is not a directory; "
                "pass the directory that holds your static files, not a file"
            )
        checked.append(path)
    return checked


def check_base_url(base_url: object) -> str:
    """``""`` for none; else ``scheme://host[:port]`` without a trailing slash."""
    if base_url is None or base_url == "":
        return ""
    how = ("pass the scheme and host of the CDN only, e.g. 'https://cdn.example.com' "
           "or '//cdn.example.com' (the prefix gives the path)")
    if not isinstance(base_url, str):
        raise TypeError(f"bustware: base_url={base_url!r} is not a string; {how}")
    if not base_url.isascii() or any(c <= " " or c == "\x7f" or c in "\\\"'<>`{}|^"
                                      for c in base_url):
        raise ValueError(f"bustware: base_url={base_url!r} has characters a URL may not "
                         f"hold (write a non-ASCII host in its xn-- form); {how}")
    trimmed = base_url[:-1] if base_url.endswith("/") else base_url
    try:
        parts = urlsplit(trimmed)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        raise ValueError(f"bustware: base_url={base_url!r} is not a valid URL ({exc}); "
                         f"{how}") from None
    if parts.scheme not in ("http", "https", "") or not parts.hostname or \
            (parts.scheme == "" and not trimmed.startswith("//")):
        raise ValueError(f"bustware: base_url={base_url!r} needs the scheme http or https, "
                         f"or '//' for the page's own scheme; {how}")
    if parts.path or parts.query or parts.fragment or "?" in trimmed or "#" in trimmed:
        raise ValueError(f"bustware: base_url={base_url!r} may not have a path, query or "
                         f"fragment; {how}")
    if "@" in parts.netloc:
        raise ValueError(f"bustware: base_url={base_url!r} may not hold a user name or "
                         f"password; {how}")
    return trimmed


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/") or not prefix.endswith("/"):
        raise ValueError(
            f"bustware: prefix={prefix!r} must start and end with '/', e.g. '/static/'"
        )
    if any(ch in prefix for ch in "?#\r\n\x00"):
        raise ValueError(
            f"bustware: prefix={prefix!r} may not contain '?', '#' or control characters"
        )
    if prefix.startswith("//"):
        # A browser reads "//static/x.css" as the host "static".
        raise ValueError(
            f"bustware: prefix={prefix!r} starts with '//', which a browser reads as a "
            "host name; pass a path such as '/static/', and a CDN host as base_url="
        )
    return prefix


def check_extensions(extensions) -> tuple[str, ...] | None:
    if extensions is None:
        return None
    if isinstance(extensions, str):
        raise TypeError(
            f"bustware: extensions={extensions!r} must be a list of suffixes, "
            "e.g. ['.css', '.js'], not a single string"
        )
    exts = tuple(e.lower() for e in extensions)
    for e in exts:
        if not e.startswith(".") or len(e) < 2:
            raise ValueError(
                f"bustware: extension {e!r} must start with a dot, e.g. '.css'"
            )
    return exts


def check_charset(charset: object) -> str | None:
    if charset is not None and (not isinstance(charset, str) or not all(
            c.isascii() and (c.isalnum() or c in "-_.:+") for c in charset)):
        # it goes into every text file's Content-Type header
        raise ValueError(f"bustware: charset={charset!r} is not a charset name; pass "
                         "one such as 'utf-8', or None for no charset parameter")
    return charset


def check_memory(memory_threshold: object, memory_budget: object) -> None:
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
               for n in (memory_threshold, memory_budget)):
        raise ValueError(
            f"bustware: memory_threshold={memory_threshold!r} and "
            f"memory_budget={memory_budget!r} must be byte counts >= 0"
        )


def check_refresh_interval(refresh_interval: object) -> None:
    if not isinstance(refresh_interval, (int, float)) or refresh_interval < 0:
        raise ValueError(
            f"bustware: refresh_interval={refresh_interval!r} must be seconds >= 0"
        )


def check_digest_cache(digest_cache: object, autorefresh: bool) -> object:
    """None (the default) means: on with autorefresh=True, in development
    only."""
    if digest_cache is None:
        digest_cache = autorefresh
    if digest_cache is not False and digest_cache is not True \
            and not isinstance(digest_cache, (str, os.PathLike)):
        raise TypeError(f"bustware: digest_cache={digest_cache!r} must be True, False, "
                        "None (on with autorefresh) or a directory")
    return digest_cache


def check_scan_threads(scan_threads: object) -> int:
    if scan_threads is None:
        try:
            cpus = len(os.sched_getaffinity(0))  # the CPUs this process may run on
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return 2 if cpus > 1 else 1
    if not isinstance(scan_threads, int) or isinstance(scan_threads, bool) or scan_threads < 1:
        raise ValueError(
            f"bustware: scan_threads={scan_threads!r} must be a number of threads >= 1 (1: "
            "the scan reads and digests in the calling thread alone), or None for two where "
            "more than one CPU is available"
        )
    return scan_threads
