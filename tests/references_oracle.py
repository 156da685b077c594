"""The reference search of bustware.references as it was before its fast
paths (bustware 3938de1): a tokenizer that reads every character, one
token at a time, as CSS Syntax Level 3 section 4 says.

Kept unchanged as the oracle of the differential tests
(tests/test_references.py): whatever bustware.references does to go fast,
it must find exactly what this finds. Do not optimize it; a change of
behaviour is made here and there together.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from urllib.parse import quote, unquote

# -- decoding ----------------------------------------------------------------

_UNICODE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE,
                 codecs.BOM_UTF16_BE)


class _Undecodable(Exception):
    pass


#: What _decode() returns as the codec of a UTF-8 stylesheet it decoded as
#: latin-1: one character per byte, bytes >= 0x80 standing for themselves.
#: The tokenizer treats every character >= U+0080 alike (a name character),
#: so it finds the same tokens at the same places in that text as in the
#: decoded one; only a reference's URL is decoded, from its bytes
#: (_utf8_value). The text then costs one byte per byte of the file, where
#: decoding would cost two (any non-Latin-1 character) or four (any emoji)
#: for the whole file.
RAW_UTF8 = "raw-utf-8"


def _utf8(raw: str) -> str:
    """Text that _decode() read as RAW_UTF8, decoded."""
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _decode(data: bytes, kind: str) -> tuple[str, str]:
    """Text and the (ASCII-compatible) codec it was decoded with."""
    if data.startswith(_UNICODE_BOMS):
        raise _Undecodable("a UTF-16/UTF-32 file (byte order mark) is not rewritten; "
                           "save it as UTF-8")
    encoding = "utf-8"
    if kind == "css" and not data.startswith(codecs.BOM_UTF8) and data.startswith(b'@charset "'):
        end = data.find(b'";', 10, 80)
        if end > 0:
            label = data[10:end].decode("ascii", "replace").strip().lower()
            try:
                name = codecs.lookup(label).name
            except LookupError:
                name = "utf-8"
            # CSS Syntax 3.2: a UTF-16 label in @charset means UTF-8.
            if not name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
                encoding = name
    if encoding != "utf-8":
        try:
            text = data.decode(encoding, "surrogateescape")
            if text.encode(encoding, "surrogateescape") == data and "@charset".encode(
                    encoding) == b"@charset":
                return text, encoding
        except (UnicodeError, LookupError):
            pass
        encoding = "utf-8"  # fall back: UTF-8 with surrogateescape always round-trips
    if kind == "css":
        return data.decode("latin-1"), RAW_UTF8
    return data.decode("utf-8", "surrogateescape"), encoding


# -- the CSS tokenizer (CSS Syntax Level 3, section 4) -----------------------
#
# Only the distinctions that decide what is a reference are kept: comments,
# strings (with escapes), url tokens, function tokens, at-keywords, numbers
# (so that "2url(" is a dimension, not a function) and the brackets that
# nest functions. Runs of ordinary characters are consumed with small
# regular expressions for speed (a character loop in Python is ~10x slower
# on a 200 KB stylesheet); every decision is the tokenizer's, per the spec.

COMMENT, STRING, BAD_STRING, URL, BAD_URL, FUNCTION, AT, IDENT, OPEN, CLOSE, OTHER = range(11)

_WS = " \t\n\r\f"
_NEWLINES = "\n\r\f"
_HEX = frozenset("0123456789abcdefABCDEF")
_NAME_RUN = re.compile(r"[A-Za-z0-9_\-\u0080-\U0010ffff]+")
_WS_RUN = re.compile(r"[ \t\n\r\f]*")
_STRING_RUN = {'"': re.compile(r'[^"\\\n\r\f]+'), "'": re.compile(r"[^'\\\n\r\f]+")}
_URL_RUN = re.compile(r"[^)\t\n\r\f \"'(\\\x00-\x08\x0b\x0e-\x1f\x7f]+")
_NON_PRINTABLE = frozenset("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f\x10\x11\x12\x13"
                           "\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# A run of tokens that can neither be nor start a reference, nor change how
# what follows is read: whitespace, plain delimiters, and idents, numbers
# and dimensions (name characters) that are not followed by "(" or an
# escape. Skipping such runs in one match is what makes the tokenizer fast
# (most of a stylesheet is selectors and declarations); everything else,
# including any name that does precede "(", goes through the rules below.
_NAME_CLASS = r"A-Za-z0-9_\-\u0080-\U0010ffff"
_BORING_RUN = (rf"[{_NAME_CLASS}]+(?![{_NAME_CLASS}(\\])|#[{_NAME_CLASS}]+(?![{_NAME_CLASS}\\])"
               r"|/(?!\*)")
#
# The repeat is bounded: each repetition of a group costs the regex engine
# a saved state (about 80 bytes) until the match ends, so an unbounded run
# over a 10 MiB stylesheet of "a{color:red}" held 700 MiB. Every repetition
# ends on a token boundary, so a long run is simply several OTHER tokens.
# (Possessive "++" would hold nothing, but needs Python 3.11.)
_BORING = re.compile(rf"(?:[ \t\n\r\f;:,.!%*+>~=|^$&?<]|{_BORING_RUN}){{1,1024}}")
# Outside any function, brackets and parentheses are boring too: what they
# enclose can only hold a reference through a function or an @import.
_BORING_TOP = re.compile(rf"(?:[ \t\n\r\f;:,.!%*+>~=|^$&?<{{}}()\[\]]|{_BORING_RUN}){{1,1024}}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

#: (type, start, end, value, value_start, value_end)
Token = tuple[int, int, int, str, int, int]


def _name_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or c >= "\x80"


def _valid_escape(s: str, i: int) -> bool:
    """Is ``s[i:]`` a backslash that starts an escape (not a line continuation)?"""
    return i < len(s) and s[i] == "\\" and (i + 1 >= len(s) or s[i + 1] not in _NEWLINES)


def _starts_ident(s: str, i: int) -> bool:
    if i >= len(s):
        return False
    c = s[i]
    if c == "-":
        return i + 1 < len(s) and (_name_start(s[i + 1]) or s[i + 1] == "-"
                                   or _valid_escape(s, i + 1))
    return _name_start(c) or _valid_escape(s, i)


def _consume_escape(s: str, i: int) -> tuple[str, int]:
    """``i`` is just after the backslash."""
    n = len(s)
    if i >= n:
        return "\ufffd", i
    if s[i] in _HEX:
        j = i
        while j < n and j - i < 6 and s[j] in _HEX:
            j += 1
        cp = int(s[i:j], 16)
        if j < n and s[j] in _WS:
            j += 2 if s.startswith("\r\n", j) else 1
        if cp == 0 or 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
            return "\ufffd", j
        return chr(cp), j
    return s[i], i + 1


def _consume_name(s: str, i: int) -> tuple[str, int]:
    parts = []
    while i < len(s):
        m = _NAME_RUN.match(s, i)
        if m:
            parts.append(m.group())
            i = m.end()
        elif _valid_escape(s, i):
            ch, i = _consume_escape(s, i + 1)
            parts.append(ch)
        else:
            break
    return "".join(parts), i


def _consume_string(s: str, i: int) -> Token:
    quote_char = s[i]
    run = _STRING_RUN[quote_char]
    n = len(s)
    start, i = i, i + 1
    vstart = i
    parts = []
    while True:
        if i >= n:  # unclosed at EOF: still a string (a parse error)
            return STRING, start, n, "".join(parts), vstart, n
        c = s[i]
        if c == quote_char:
            return STRING, start, i + 1, "".join(parts), vstart, i
        if c in _NEWLINES:
            return BAD_STRING, start, i, "", vstart, i
        if c == "\\":
            if i + 1 >= n:
                i += 1
            elif s[i + 1] in _NEWLINES:  # an escaped newline continues the line
                i += 3 if s.startswith("\r\n", i + 1) else 2
            else:
                ch, i = _consume_escape(s, i + 1)
                parts.append(ch)
            continue
        m = run.match(s, i)
        parts.append(m.group())  # type: ignore[union-attr]
        i = m.end()  # type: ignore[union-attr]


def _consume_url(s: str, start: int, i: int) -> Token:
    """The body of an unquoted ``url(`` (spec 4.3.6); ``i`` is after ``(``."""
    n = len(s)
    i = _WS_RUN.match(s, i).end()  # type: ignore[union-attr]
    vstart = i
    parts = []
    while True:
        if i >= n:
            return URL, start, n, "".join(parts), vstart, n
        c = s[i]
        if c == ")":
            return URL, start, i + 1, "".join(parts), vstart, i
        if c in _WS:
            vend = i
            i = _WS_RUN.match(s, i).end()  # type: ignore[union-attr]
            if i >= n:
                return URL, start, n, "".join(parts), vstart, vend
            if s[i] == ")":
                return URL, start, i + 1, "".join(parts), vstart, vend
            break
        if c in "\"'(" or c in _NON_PRINTABLE:
            break
        if c == "\\":
            if not _valid_escape(s, i):
                break
            ch, i = _consume_escape(s, i + 1)
            parts.append(ch)
            continue
        m = _URL_RUN.match(s, i)
        parts.append(m.group())  # type: ignore[union-attr]
        i = m.end()  # type: ignore[union-attr]
    # The remnants of a bad url (4.3.14): up to the next ")" or EOF.
    while i < n:
        if s[i] == ")":
            i += 1
            break
        if _valid_escape(s, i):
            _, i = _consume_escape(s, i + 1)
        else:
            i += 1
    return BAD_URL, start, i, "", vstart, vstart


def tokenize(s: str, nesting: list | None = None) -> Iterator[Token]:
    """The tokens of a stylesheet that matter for references (whitespace,
    delimiters, idents and numbers are folded into ``OTHER`` or dropped).
    ``nesting``, the caller's stack of open functions and blocks: while it
    is empty, brackets and parentheses are folded into ``OTHER`` too."""
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if c == "/" and s.startswith("*", i + 1):
            j = s.find("*/", i + 2)
            end = n if j < 0 else j + 2
            yield COMMENT, i, end, "", i + 2, (n if j < 0 else j)
            i = end
        elif c in _WS:
            i = _WS_RUN.match(s, i).end()  # type: ignore[union-attr]
        elif (m := (_BORING if nesting else _BORING_TOP).match(s, i)) is not None:
            yield OTHER, i, m.end(), "", i, m.end()
            i = m.end()
        elif c == '"' or c == "'":
            tok = _consume_string(s, i)
            yield tok
            i = tok[2]
        elif c in "([{":
            yield OPEN, i, i + 1, c, i, i
            i += 1
        elif c in ")]}":
            yield CLOSE, i, i + 1, c, i, i
            i += 1
        elif c == "@":
            if _starts_ident(s, i + 1):
                name, j = _consume_name(s, i + 1)
                yield AT, i, j, name.translate(_ASCII_LOWER), i, j
                i = j
            else:
                yield OTHER, i, i + 1, c, i, i
                i += 1
        elif c == "<" and s.startswith("!--", i + 1):  # CDO
            i += 4
        elif (m := _NUMBER.match(s, i)) is not None:
            j = m.end()
            if _starts_ident(s, j):  # a dimension: "2url(" is no function
                _, j = _consume_name(s, j)
            yield OTHER, i, j, "", i, j
            i = j
        elif c == "-" and s.startswith("->", i + 1):  # CDC
            i += 3
        elif _starts_ident(s, i):
            name, j = _consume_name(s, i)
            if j < n and s[j] == "(":
                lname = name.translate(_ASCII_LOWER)
                if lname == "url":
                    k = j + 1
                    while k + 1 < n and s[k] in _WS and s[k + 1] in _WS:
                        k += 1
                    if k < n and (s[k] in "\"'" or (s[k] in _WS and k + 1 < n
                                                    and s[k + 1] in "\"'")):
                        yield FUNCTION, i, j + 1, "url", i, j
                        i = j + 1
                    else:
                        tok = _consume_url(s, i, j + 1)
                        yield tok
                        i = tok[2]
                else:
                    yield FUNCTION, i, j + 1, lname, i, j
                    i = j + 1
            else:
                yield IDENT, i, j, name, i, j
                i = j
        elif c == "#" and i + 1 < n and (_NAME_RUN.match(s, i + 1) or _valid_escape(s, i + 1)):
            _, j = _consume_name(s, i + 1)  # a hash token: "#url(" is no function
            yield OTHER, i, j, "", i, j
            i = j
        else:  # a delimiter
            yield OTHER, i, i + 1, c, i, i
            i += 1


_IMAGE_SET = frozenset({"image-set", "-webkit-image-set"})
#: What closes each entry of the stack; a function name is closed by ")".
_CLOSES = {"(": ")", "[": "]", "{": "}"}
_SOURCEMAP = re.compile(r"[#@]\s*sourceMappingURL=(\S+?)\s*\Z")
# What any source map comment starts with, read as RAW_UTF8 or decoded
# alike (the bytes that latin-1 reads as whitespace, 0x85 and 0xA0, only
# ever follow a byte that is not whitespace).
_SOURCEMAP_START = re.compile(r"[#@]\s*sourceMappingURL=")

# (kind, context, url, start, end) with str offsets
_Found = tuple[str, str, str, int, int]


def _unescape(text: str, url: bool) -> str:
    """The value of the inside of a string or (``url``) unquoted url token:
    escapes decoded, escaped newlines dropped, as _consume_string and
    _consume_url read it."""
    parts = []
    i, n = 0, len(text)
    while (j := text.find("\\", i)) >= 0:
        parts.append(text[i:j])
        if j + 1 >= n:  # a backslash at EOF
            return "".join(parts) + ("\ufffd" if url else "")
        if text[j + 1] in _NEWLINES:
            i = j + (3 if text.startswith("\r\n", j + 1) else 2)
        else:
            ch, i = _consume_escape(text, j + 1)
            parts.append(ch)
    parts.append(text[i:])
    return "".join(parts)


def _sourcemap_comment(s: str, start: int, end: int, raw: bool) -> _Found | None:
    """The source map URL in the comment body ``s[start:end]``, if any."""
    if raw and _SOURCEMAP_START.match(s, start, end) and not s[start:end].isascii():
        text = _utf8(s[start:end])
        m = _SOURCEMAP.match(text)
        if m is None:
            return None
        ustart = start + _utf8_len(text[:m.start(1)])
        return "sourcemap", "", m.group(1), ustart, ustart + _utf8_len(m.group(1))
    m = _SOURCEMAP.match(s, start, end)
    return None if m is None else ("sourcemap", "", m.group(1), m.start(1), m.end(1))


def _css_references(s: str, raw: bool = False) -> list[_Found]:
    """``raw``: ``s`` is a UTF-8 stylesheet read as RAW_UTF8."""
    found: list[_Found] = []
    stack: list[str] = []  # open functions (their names) and blocks
    expect: str | None = None  # "url" after url(/src(, "import" after @import
    sourcemap: _Found | None = None
    for t, start, _end, value, vstart, vend in tokenize(s, stack):
        if t == COMMENT:
            m = _sourcemap_comment(s, vstart, vend, raw)
            if m:
                sourcemap = m
            continue
        sourcemap = None  # only a trailing source map comment counts
        if raw and t in (STRING, URL) and not value.isascii():
            value = _unescape(_utf8(s[vstart:vend]), t == URL)
        if expect is not None:
            kind, expect = expect, None
            if t == STRING:
                found.append((kind, s[start], value, vstart, vend))
                continue
        if t == URL:
            found.append(("url", "(", value, vstart, vend))
        elif t == FUNCTION:
            stack.append(value)
            if value == "url" or value == "src":
                expect = "url"
        elif t == AT:
            if value == "import":
                expect = "import"
        elif t == STRING:
            if stack and stack[-1] in _IMAGE_SET:
                found.append(("image-set", s[start], value, vstart, vend))
        elif t == OPEN:
            stack.append(value)
        elif t == CLOSE and stack and _CLOSES.get(stack[-1], ")") == value:
            # A closer ends what it matches; any other is a plain token
            # inside the function or block (CSS Syntax 5.4.7-5.4.9).
            stack.pop()
    if sourcemap is not None:
        found.append(sourcemap)
    return found


_JS_LINE_BREAKS = "\n\r\u2028\u2029"
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
        k = max(s.rfind(c, lo, hi) for c in _JS_LINE_BREAKS)
        if k >= 0:
            return k + 1
        hi = lo
        width *= 2
    return 0


def _js_lines_backwards(s: str) -> Iterator[tuple[int, int]]:
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


def _js_references(s: str) -> list[_Found]:
    """The source map comment among the comment-only lines at the end."""
    for line_start, line_end in _js_lines_backwards(s):
        line = s[line_start:line_end]
        lstripped = line.lstrip(_JS_SPACE)
        body_start = line_start + len(line) - len(lstripped)
        text = lstripped.rstrip(_JS_SPACE)
        if not text:
            continue
        if text.startswith("//"):
            m = _SOURCEMAP.match(s, body_start + 2, line_end)
        elif text.startswith("/*") and text.endswith("*/") and "*/" not in text[2:-2]:
            m = _SOURCEMAP.match(s, body_start + 2, body_start + len(text) - 2)
        else:
            return []  # code: no trailing source map comment
        if m:
            return [("sourcemap", "", m.group(1), m.start(1), m.end(1))]
    return []


def _count_breaks(s: str, start: int, end: int) -> int:
    """Line breaks in ``s[start:end]``: LF, CR, CRLF (one), FF, LS, PS."""
    return (s.count("\n", start, end) + s.count("\r", start, end) - s.count("\r\n", start, end)
            + s.count("\f", start, end) + s.count("\u2028", start, end)
            + s.count("\u2029", start, end))


def find_references(data: bytes, kind: str) -> tuple[list[tuple], list[tuple[int, str]]]:
    """Every reference in ``data`` (a ``"css"`` or ``"js"`` file) and the
    problems met (line, message). Never raises on any input."""
    try:
        text, encoding = _decode(data, kind)
    except _Undecodable as exc:
        return [], [(1, str(exc))]
    if kind == "css":
        found = _css_references(text, raw=encoding == RAW_UTF8)
    else:
        found = _js_references(text)
    if not found:
        return [], []
    found.sort(key=lambda f: f[3])
    # One character per byte (ASCII, or any single-byte charset): offsets
    # into the text are offsets into the bytes.
    same = len(text) == len(data)
    refs = []
    pos = bpos = 0
    line = 1
    for ref_kind, context, url, start, end in found:
        line += _count_breaks(text, pos, start)  # never splits a CRLF: start is no break
        if same:
            bstart, bend = start, end
        else:
            bstart = bpos + len(text[pos:start].encode(encoding, "surrogateescape"))
            bend = bstart + len(text[start:end].encode(encoding, "surrogateescape"))
        refs.append((bstart, bend, url, line, ref_kind, context))
        line += _count_breaks(text, start, end)
        pos, bpos = end, bend
    if not same and bpos + len(text[pos:].encode(encoding, "surrogateescape")) != len(data):
        # A stateful codec: offsets computed piecewise do not add up.
        return [], [(1, f"cannot locate references in a {encoding} file; save it as UTF-8")]
    return refs, []


# -- resolving ---------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_C0_SPACE = "".join(map(chr, range(0x21)))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 on an absolute path; ``%2e`` counts as a dot, as in the
    WHATWG URL standard."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for k, seg in enumerate(segments):
        low = seg.lower()
        last = k == len(segments) - 1
        if low in (".", "%2e"):
            if last:
                out.append("")
        elif low in ("..", ".%2e", "%2e.", "%2e%2e"):
            if out:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def resolve(url: str, referrer: str, prefix: str) -> tuple[str, str] | None:
    """The logical path a reference in ``referrer`` names, and the query and
    fragment to keep after it: ``("img/a.png", "?v=1#x")``.

    ``None`` for what is not ours to rewrite: empty and fragment-only URLs,
    any URL with a scheme (``data:``, ``http:``, ...), protocol-relative URLs,
    and paths outside ``prefix``. Relative paths resolve against the
    referrer's directory, root-absolute ones must start with ``prefix``.
    Raises ``ValueError`` for a reference into the prefix that cannot be
    decoded (percent-encoding that is not UTF-8)."""
    url = url.strip(_C0_SPACE)
    if not url or url[0] in "#?" or _SCHEME.match(url):
        return None
    # Browsers read "\" as "/" in http(s) URLs.
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    path, suffix = url[:cut].replace("\\", "/"), url[cut:]
    if path.startswith("//"):
        return None
    if not path.startswith("/"):
        # The referrer's URL is the prefix (already URL text) and its
        # percent-encoded logical path; resolve in URL space, decode last.
        base = prefix + quote(referrer, safe="/")
        path = base[:base.rfind("/") + 1] + path
    path = _remove_dot_segments(path)
    if not path.startswith(prefix):
        return None
    target = unquote(path[len(prefix):], errors="strict")
    if not target:
        return None
    return target, suffix


# -- rewriting ----------------------------------------------------------------

_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _escape(url: str, context: str) -> str:
    """``url`` as text that reads back as ``url`` in ``context``."""
    url = quote(url, safe=_URL_SAFE)  # ASCII only from here on
    if context in ('"', "'"):
        return url.replace("\\", "\\\\").replace(context, "\\" + context)
    if context == "(":
        return "".join("\\" + c if c in "\"'()\\" else c for c in url)
    return url  # a comment: no whitespace (quoted away above), no "*/" in a URL


def rewrite(data: bytes, replacements: Iterable[tuple]) -> tuple[bytes, tuple]:
    """Replace the URL text of each reference with a new URL (escaped for
    where it stands). Returns the new bytes and the splices that
    :func:`restore` needs to get ``data`` back."""
    pieces: list[bytes] = []
    splices: list[tuple] = []
    pos = out = 0
    for ref, url in sorted(replacements, key=lambda r: r[0].start):
        new = _escape(url, ref.context).encode("ascii")
        original = data[ref.start:ref.end]
        pieces.append(data[pos:ref.start])
        out += ref.start - pos
        pieces.append(new)
        if new != original:
            splices.append((out, out + len(new), original))
        out += len(new)
        pos = ref.end
    pieces.append(data[pos:])
    return b"".join(pieces), tuple(splices)
