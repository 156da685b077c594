"""The references of a script: today only its trailing source map comment
(``//# sourceMappingURL=...`` on the last line that is not blank,
comment-only lines may follow it). A lexer of JavaScript modules (their
``import`` and ``export ... from`` specifiers) belongs beside this one.
"""

from __future__ import annotations

from collections.abc import Iterator

from .sourcemaps import SOURCEMAP, Found

__all__ = ["JS_LINE_BREAKS", "lines_backwards", "script_references"]

#: What ends a line in JavaScript (ECMA-262 LineTerminator).
JS_LINE_BREAKS = "\n\r\u2028\u2029"
_JS_SPACE = " \t\v\f\ufeff\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
            "\u2008\u2009\u200a\u202f\u205f\u3000"


def _line_start(s: str, end: int) -> int:
    """Where the line that ends at ``end`` starts: just after the last line
    break before ``end``, or 0. Looks back through windows that double in
    size, never scanning a character twice, so the cost is that of the line
    (a plain ``rfind(c, 0, end)`` for each kind of break scans back to the
    start of the file for every line: quadratic on a script that ends with
    thousands of blank lines)."""
    hi = end
    width = 64
    while hi > 0:
        lo = max(0, hi - width)
        k = max(s.rfind(c, lo, hi) for c in JS_LINE_BREAKS)
        if k >= 0:
            return k + 1
        hi = lo
        width *= 2
    return 0


def lines_backwards(s: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line, last first, without splitting the whole
    file: only its last lines are ever looked at."""
    end = len(s)
    while True:
        start = _line_start(s, end)
        yield start, end
        if start == 0:
            return
        end = start - 1
        if s[end] == "\n" and end > 0 and s[end - 1] == "\r":
            end -= 1


def script_references(s: str) -> list[Found]:
    """The source map comment among the comment-only lines at the end."""
    for line_start, line_end in lines_backwards(s):
        line = s[line_start:line_end]
        lstripped = line.lstrip(_JS_SPACE)
        body_start = line_start + len(line) - len(lstripped)
        text = lstripped.rstrip(_JS_SPACE)
        if not text:
            continue
        if text.startswith("//"):
            m = SOURCEMAP.match(s, body_start + 2, line_end)
        elif text.startswith("/*") and text.endswith("*/") and "*/" not in text[2:-2]:
            m = SOURCEMAP.match(s, body_start + 2, body_start + len(text) - 2)
        else:
            return []  # code: no trailing source map comment
        if m:
            return [("sourcemap", "", m.group(1), m.start(1), m.end(1))]
    return []
