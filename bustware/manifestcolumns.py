"""The validation of a manifest's common records all at once: the fast
path of :func:`bustware.manifest.validate`, which a start from a manifest
runs over every record."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

__all__ = ["unusual"]

# The characters each column may hold (see unusual).
_HEX_CHARS = b"0123456789abcdef"
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_VERSION_CHARS = _ALNUM + b"_-"
_BASE64_CHARS = _ALNUM + b"+/"


def unusual(files: dict[str, Any], roots: int) -> Iterable[str]:
    """The paths of ``files`` that validate() must look at one by one: those
    whose records have more than the six common fields (rewritten bytes,
    variants), when every record passes the checks below; else all of them,
    so that the checks one by one say which is wrong and how.

    A start from a manifest validates every record: one by one, the three
    regular expressions cost as much as parsing the JSON. Here each field
    is checked for all records at once (a column, joined into one string),
    by str and bytes methods that run in C. Every test is as strict as
    the record-by-record one, or stricter (then that one decides)."""
    if not files:
        return ()
    recs = list(files.values())
    n = len(recs)
    try:
        if set(map(type, recs)) != {dict}:
            return files
        sizes = [r["size"] for r in recs]
        mtimes = [r["mtime_ns"] for r in recs]
        root_ids = [r["root"] for r in recs]
        if set(map(type, itertools.chain(sizes, mtimes, root_ids))) != {int} \
                or min(sizes) < 0 or min(mtimes) < 0 or min(root_ids) < 0 \
                or max(root_ids) >= roots:
            return files
        # Each column, joined and encoded (ASCII, or a ValueError), must
        # hold only the characters its rule allows: bytes.translate with
        # those deleted leaves nothing (a table lookup per byte, where the
        # str methods look each character up in the Unicode database).
        digests = [r["digest"] for r in recs]
        if set(map(len, digests)) != {64} \
                or "".join(digests).encode("ascii").translate(None, _HEX_CHARS):
            return files
        versions = [r["version"] for r in recs]
        lengths = set(map(len, versions))
        if min(lengths) < 1 or max(lengths) > 64 \
                or "".join(versions).encode("ascii").translate(None, _VERSION_CHARS):
            return files
        column = [r["integrity"] for r in recs]
        integrities = "".join(column)
        # Each is "sha384-" and 64 base64 characters (71 in all): the
        # prefix at each multiple of 71, and nothing else but base64.
        if set(map(len, column)) != {71} or any(
                integrities[i::71] != c * n for i, c in enumerate("sha384-")) \
                or integrities.replace("sha384-", "").encode("ascii").translate(
                    None, _BASE64_CHARS) or integrities.count("-") != n:
            return files
        names = "\n".join(files)
    except (KeyError, TypeError, ValueError):
        return files
    # The path rules of manifest._check_path on all names at once: a name that
    # breaks one shows at its start or end as a neighbour of "\n" (or of
    # the whole string's ends), or anywhere as a substring.
    if not names or names[0] in "/\n" or names[-1] in "/.\n" or any(
            bad in names for bad in ("\n/", "/\n", ".\n", "\n\n", "./", "//", "\\", "\x00")):
        return files
    if sum(map(len, recs)) == 6 * n:
        return ()
    return [path for path, rec in files.items() if len(rec) != 6]
