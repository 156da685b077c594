"""Near misses of ``url(path)``: a path written as a URL (``/css/app.css``,
``/static/css/app.css``), with the URL prefix in it (``static/css/app.css``)
or in the wrong case. Only the not-found branch of ``url()`` calls this, so
a file that exists costs nothing more.

A path starting with ``/`` is accepted when it names exactly one file: no
logical path starts with ``/``, so it cannot be another file's name. The
others are named in the error, never guessed: ``static/css/app.css`` may be
a file missing from a real ``static/`` directory, and a case-insensitive
match may be one of several files.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Sequence

from .records import AssetNotFound

__all__ = ["meant", "meant_or_refuse", "suggestions"]


def meant_or_refuse(path: str, prefix: str, known: Collection[str], roots: Sequence[object],
                    strict: bool, advice: str | None) -> str | None:
    """The file ``path`` names as a URL (:func:`meant`), else None when not
    ``strict``; when ``strict``, :class:`AssetNotFound` with the files it may
    have meant and ``advice`` (how to set ``strict=False``)."""
    intended = meant(path, prefix, known)
    if intended is not None or not strict:
        return intended
    close = suggestions(path, prefix, known)
    raise AssetNotFound(
        f"bustware: no file {path!r} under {[str(r) for r in roots]!r}."
        f"{' Did you mean ' + ' or '.join(map(repr, close)) + '?' if close else ''} "
        "Paths are relative to the root, with '/' separators (e.g. 'css/app.css')."
        + (f" To get the plain URL instead of this error, {advice}." if advice else "")
    )


def meant(path: str, prefix: str, known: Collection[str]) -> str | None:
    """The one file a URL-like ``path`` names, else None."""
    if not path.startswith("/"):
        return None
    found = {p for p in _as_url(path, prefix) if p in known}
    return found.pop() if len(found) == 1 else None


def suggestions(path: str, prefix: str, known: Collection[str], limit: int = 3) -> list[str]:
    """Files ``path`` may have meant, best first (the error message's
    "did you mean"). Costs one pass over the index: error path only."""
    out: list[str] = [p for p in _as_url(path, prefix) if p in known]
    under = prefix.strip("/")
    if under and path.startswith(under + "/") and path[len(under) + 1:] in known:
        out.append(path[len(under) + 1:])  # the prefix written into the path
    folded = path.lstrip("/").casefold()
    name = posixpath.basename(folded)
    same_case, same_name = [], []
    for candidate in known:
        lowered = candidate.casefold()
        if lowered == folded:
            same_case.append(candidate)
        elif name and posixpath.basename(lowered) == name:
            same_name.append(candidate)  # the right file name in another directory
    for candidate in [*sorted(same_case), *sorted(same_name)]:
        if candidate not in out:
            out.append(candidate)
    return out[:limit]


def _as_url(path: str, prefix: str) -> list[str]:
    """What a path starting with ``/`` may stand for: the path without it,
    and, when it starts with the URL prefix, the path after the prefix."""
    out = []
    if path.startswith(prefix) and len(path) > len(prefix):
        out.append(path[len(prefix):])
    if path.startswith("/"):
        stripped = path.lstrip("/")
        if stripped and stripped not in out:
            out.append(stripped)
    return out
