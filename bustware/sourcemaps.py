"""Source map comments: ``/*# sourceMappingURL=... */`` at the end of a
stylesheet, ``//# sourceMappingURL=...`` at the end of a script (the
"without parsing" method of the source map specification, ECMA-426). The
syntax of the comment is here; where one may stand is the CSS and script
finders' business (bustware.cssrefs, bustware.scriptrefs).
"""

from __future__ import annotations

import re

from .refdecode import utf8, utf8_len

__all__ = ["SOURCEMAP", "Found", "sourcemap_comment"]

SOURCEMAP = re.compile(r"[#@]\s*sourceMappingURL=(\S+?)\s*\Z")
# What any source map comment starts with, read as RAW_UTF8 or decoded
# alike (the bytes that latin-1 reads as whitespace, 0x85 and 0xA0, only
# ever follow a byte that is not whitespace).
_SOURCEMAP_START = re.compile(r"[#@]\s*sourceMappingURL=")

# (kind, context, url, start, end) with str offsets
Found = tuple[str, str, str, int, int]


def sourcemap_comment(s: str, start: int, end: int, raw: bool) -> Found | None:
    """The source map URL in the comment body ``s[start:end]``, if any."""
    if raw and _SOURCEMAP_START.match(s, start, end) and not s[start:end].isascii():
        text = utf8(s[start:end])
        m = SOURCEMAP.match(text)
        if m is None:
            return None
        ustart = start + utf8_len(text[:m.start(1)])
        return "sourcemap", "", m.group(1), ustart, ustart + utf8_len(m.group(1))
    m = SOURCEMAP.match(s, start, end)
    return None if m is None else ("sourcemap", "", m.group(1), m.start(1), m.end(1))
