"""References between assets: finding them, resolving them, rewriting them.

A stylesheet names other files: ``url(../img/logo.png)``, ``@import
"base.css"``, ``image-set("a.png" 1x, "a@2x.png" 2x)`` and a trailing
``/*# sourceMappingURL=app.css.map */``; a script names its source map in a
trailing ``//# sourceMappingURL=app.js.map``. When those files get versioned
URLs, the references must point at the versioned URLs too, or the browser
keeps fetching (and caching) the old image under its plain name.

Finding references uses a tokenizer that follows CSS Syntax Level 3 (section
4, "Tokenization"), not a regular expression over the raw text, so that
``url(`` inside a comment (``/* url(old.png) */``, Django ticket 21080,
WhiteNoise issues 58 and 167) or inside a string that is not a reference
(``content: "url(x.png)"``) is left alone. Only what a browser would fetch is
a reference:

- a ``url(...)`` token, quoted or not, wherever it appears;
- the string argument of ``url("...")`` and ``src("...")``;
- the string after ``@import``;
- strings directly inside ``image-set()`` / ``-webkit-image-set()``;
- in CSS, a ``/*# sourceMappingURL=... */`` comment after which only comments
  and whitespace follow; in JavaScript, ``//# sourceMappingURL=...`` on the
  last line that is not blank (comment-only lines may follow it), as in the
  "without parsing" method of the source map specification (ECMA-426).

Positions are byte offsets into the file, and rewriting splices bytes: every
byte outside a replaced URL stays exactly as it was, quoting style included.

Decoding. A stylesheet is decoded as UTF-8 unless it starts with a BOM or an
``@charset "...";`` rule naming another ASCII-compatible encoding (CSS
Syntax section 3.2). Undecodable bytes are carried through unchanged
(``surrogateescape``), so a file in any ASCII-compatible encoding round-trips
byte for byte; a reference that contains such bytes simply does not resolve.
UTF-16 and UTF-32 files (BOM) are not rewritten, with a warning. Replacement
URLs are always ASCII (non-ASCII is percent-encoded), so they are valid in
every encoding we rewrite.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Callable
from urllib.parse import quote, unquote

__all__ = [
    "Link",
    "Links",
    "Reference",
    "components",
    "find_links",
    "find_references",
    "kind_of",
    "merge_url",
    "resolve",
    "restore",
    "rewrite",
]

#: Suffix -> what is searched: stylesheets are tokenized, scripts only get
#: their trailing source map comment looked at.
KINDS = {".css": "css", ".js": "js", ".mjs": "js", ".cjs": "js"}

#: A splice recorded by :func:`rewrite`: ``body[start:end]`` replaced
#: ``original``; :func:`restore` undoes it.
Splice = tuple[int, int, bytes]


def kind_of(path: str) -> str | None:
    """``"css"``, ``"js"`` or ``None`` (not searched) for a logical path."""
    dot = path.rfind(".")
    return KINDS.get(path[dot:].lower()) if dot >= 0 else None


@dataclass(frozen=True)
class Reference:
    """One place where a file names another."""

    # No __dict__: a stylesheet can hold tens of thousands of references.
    __slots__ = ("context", "end", "kind", "line", "start", "url")

    #: Byte offsets of the URL text in the file: the content of the string,
    #: the inside of an unquoted ``url()`` without surrounding whitespace, or
    #: the URL of a source map comment.
    start: int
    end: int
    #: The URL as the browser reads it (CSS escapes decoded).
    url: str
    #: 1-based line of ``start``.
    line: int
    #: ``"url"``, ``"import"``, ``"image-set"`` or ``"sourcemap"``.
    kind: str
    #: How the URL text is delimited, for escaping a replacement: ``'"'`` or
    #: ``"'"`` (a string), ``"("`` (an unquoted ``url(``), ``""`` (a comment).
    context: str

    def __reduce__(self) -> tuple:
        # Frozen with __slots__: pickle and copy would set the slots one by
        # one, which a frozen instance refuses.
        return Reference, (self.start, self.end, self.url, self.line, self.kind, self.context)


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
# A name character (CSS Syntax 4.2: an ASCII letter or digit, "_", "-", or
# any non-ASCII character), written as "none of the other ASCII characters":
# a class that spells out \u0080-\U0010ffff costs the regular expression
# compiler about 3 ms, and importing this module compiled ten of them.
_NAME_CHAR = r"[^\x00-\x2c./:-@\[-\^`{-\x7f]"
_NAME_RUN = re.compile(rf"{_NAME_CHAR}+")
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
_BORING_RUN = (rf"{_NAME_CHAR}+(?!{_NAME_CHAR}|[(\\])|#{_NAME_CHAR}+(?!{_NAME_CHAR}|\\)"
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


def _token(s: str, i: int, nesting: list | None) -> tuple[Token | None, int]:
    """The token that starts at ``s[i]`` and where the next one starts;
    ``None`` for what is dropped (whitespace, CDO, CDC). ``nesting``, the
    caller's stack of open functions and blocks: while it is empty,
    brackets and parentheses are folded into ``OTHER`` too."""
    n = len(s)
    c = s[i]
    if c == "/" and s.startswith("*", i + 1):
        j = s.find("*/", i + 2)
        end = n if j < 0 else j + 2
        return (COMMENT, i, end, "", i + 2, (n if j < 0 else j)), end
    if c in _WS:
        return None, _WS_RUN.match(s, i).end()  # type: ignore[union-attr]
    if (m := (_BORING if nesting else _BORING_TOP).match(s, i)) is not None:
        return (OTHER, i, m.end(), "", i, m.end()), m.end()
    if c == '"' or c == "'":
        tok = _consume_string(s, i)
        return tok, tok[2]
    if c in "([{":
        return (OPEN, i, i + 1, c, i, i), i + 1
    if c in ")]}":
        return (CLOSE, i, i + 1, c, i, i), i + 1
    if c == "@":
        if _starts_ident(s, i + 1):
            name, j = _consume_name(s, i + 1)
            return (AT, i, j, name.translate(_ASCII_LOWER), i, j), j
        return (OTHER, i, i + 1, c, i, i), i + 1
    if c == "<" and s.startswith("!--", i + 1):  # CDO
        return None, i + 4
    if (m := _NUMBER.match(s, i)) is not None:
        j = m.end()
        if _starts_ident(s, j):  # a dimension: "2url(" is no function
            _, j = _consume_name(s, j)
        return (OTHER, i, j, "", i, j), j
    if c == "-" and s.startswith("->", i + 1):  # CDC
        return None, i + 3
    if _starts_ident(s, i):
        name, j = _consume_name(s, i)
        if j < n and s[j] == "(":
            lname = name.translate(_ASCII_LOWER)
            if lname == "url":
                k = j + 1
                while k + 1 < n and s[k] in _WS and s[k + 1] in _WS:
                    k += 1
                if k < n and (s[k] in "\"'" or (s[k] in _WS and k + 1 < n
                                                and s[k + 1] in "\"'")):
                    return (FUNCTION, i, j + 1, "url", i, j), j + 1
                tok = _consume_url(s, i, j + 1)
                return tok, tok[2]
            return (FUNCTION, i, j + 1, lname, i, j), j + 1
        return (IDENT, i, j, name, i, j), j
    if c == "#" and i + 1 < n and (_NAME_RUN.match(s, i + 1) or _valid_escape(s, i + 1)):
        _, j = _consume_name(s, i + 1)  # a hash token: "#url(" is no function
        return (OTHER, i, j, "", i, j), j
    return (OTHER, i, i + 1, c, i, i), i + 1  # a delimiter


def tokenize(s: str, nesting: list | None = None) -> Iterator[Token]:
    """The tokens of a stylesheet that matter for references (whitespace,
    delimiters, idents and numbers are folded into ``OTHER`` or dropped).
    ``nesting``, the caller's stack of open functions and blocks: while it
    is empty, brackets and parentheses are folded into ``OTHER`` too."""
    n = len(s)
    i = 0
    while i < n:
        tok, i = _token(s, i, nesting)
        if tok is not None:
            yield tok


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


# -- finding references fast ---------------------------------------------------
#
# Running the tokenizer over every character costs about 25 ns a character,
# and almost none of a stylesheet can hold a reference. So _css_references()
# looks for the next place that can matter with str.find() and searches
# that start with a literal character (both run at memchr speed, several
# GB/s, where a search for a character class runs at about 250 MB/s), and
# runs the tokenizer only there. What it skips is read exactly as the
# tokenizer would read it, for these reasons.
#
# Only a comment, a string, an escape, "@import" or a function named url,
# src, image-set or -webkit-image-set can make or hide a reference (a url
# token is such a function to begin with). Between two of those there is
# neither an escape nor a comment nor a string, so every token there is a
# plain run of name characters or a delimiter: nothing that can be a
# reference, and no token that runs on past the next event. Such a
# function is one only if its name starts a token: no name character
# before it (no "myurl(", "-url(", or "2url(", which is a dimension), no
# "#" (a hash token) and no "@" (an at-keyword); an escape anywhere before
# it would have been an event already.
#
# What is skipped leaves the state unchanged but for the trailing source
# map comment, which any token cancels. The only other state is the stack
# of open functions and blocks, and it decides one thing: whether a string
# stands directly inside image-set(). Entries below the lowest open
# image-set() are never looked at again (a closer only ever compares
# itself with the top), so only the part from there up is kept; while it
# is empty and no string is expected (after url(, src( or @import), the
# search goes on.


def _ascii_nocase(word: str) -> str:
    """A pattern for ``word`` in any ASCII case, as the tokenizer folds it
    (re.IGNORECASE would also fold the long s and the Kelvin sign)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


_AT_IMPORT = re.compile(rf"@{_ascii_nocase('import')}(?!{_NAME_CHAR}|\\)")
# The "(" of such a function: a literal first character, then lookbehinds.
# Before the name, an ASCII character that is not a name character, "#",
# "@" or "\\".
_FUNCTION_START = r"[\x00-\x22\x24-\x2c./:-?\[\]^`{-\x7f]"
_REFERENCE_FUNCTION = re.compile(r"\((?:" + "|".join(
    rf"(?<={_FUNCTION_START}{_ascii_nocase(name)}\()|(?<=\A{_ascii_nocase(name)}\()"
    for name in ("url", "src", "image-set", "-webkit-image-set")) + ")")
# Characters that end a token wherever they stand outside comments,
# strings, url tokens and escapes: the tokenizer may start just after one.
_TOKEN_ENDS = frozenset(_WS + ";{}()[],:")


# The unquoted url( of the tokenizer (_consume_url) without escapes, and
# url( followed by a string (_token) without escapes or newlines: the value,
# in group 1, is the text itself.
_SIMPLE_URL = re.compile(r"[ \t\n\r\f]*([^)\t\n\r\f \"'(\\\x00-\x08\x0b\x0e-\x1f\x7f]*)"
                         r"[ \t\n\r\f]*\)")
_SIMPLE_QUOTED_URL = re.compile(r"""[ \t\n\r\f]*(?:"([^"\\\n\r\f]*)"|'([^'\\\n\r\f]*)')""")


# The pieces of a string token, as _consume_string reads them: runs of
# plain characters and escapes (an escaped newline included). The repeat is
# bounded, as in _BORING, so that no string costs the engine more than a
# few KB; every repetition ends between two pieces.
_STRING_PIECES = {q: re.compile(rf"(?:[^{q}\\\n\r\f]+|\\(?:[0-9a-fA-F]{{1,6}}(?:\r\n|[ \t\n\r\f])?"
                                rf"|\r\n|[\s\S])?){{0,256}}") for q in "\"'"}


def _string_end(s: str, i: int) -> int:
    """Where the string token that starts at ``s[i]`` ends (_consume_string
    without the value)."""
    q = s[i]
    pieces = _STRING_PIECES[q].match
    n = len(s)
    j = i + 1
    while True:
        j = pieces(s, j).end()  # type: ignore[union-attr]
        if j >= n:  # unclosed at EOF
            return n
        if s[j] == q:
            return j + 1
        if s[j] in _NEWLINES:  # a bad string ends before the newline
            return j


def _css_references(s: str, raw: bool = False) -> list[_Found]:
    """``raw``: ``s`` is a UTF-8 stylesheet read as RAW_UTF8."""
    found: list[_Found] = []
    stack: list[str] = []  # open functions (their names) and blocks from the lowest image-set(
    expect: str | None = None  # "url" after url(/src(, "import" after @import
    sourcemap: _Found | None = None
    n = len(s)
    find = s.find
    at_import = _AT_IMPORT.search
    function = _REFERENCE_FUNCTION.search
    i = 0
    # The next place of each kind at or after i (n: none): hand-kept, so
    # that each kind's search runs over the text once.
    comment_at = string1_at = string2_at = escape_at = import_at = function_at = -1
    while True:
        if comment_at < i:
            comment_at = find("/*", i) % (n + 1)  # -1 (not found) becomes n
        if string1_at < i:
            string1_at = find('"', i) % (n + 1)
        if string2_at < i:
            string2_at = find("'", i) % (n + 1)
        if escape_at < i:
            escape_at = find("\\", i) % (n + 1)
        if import_at < i:
            m = at_import(s, i)
            import_at = n if m is None else m.start()
        if function_at < i:
            m = function(s, i)
            function_at = n if m is None else m.start()
        p = min(comment_at, string1_at, string2_at, escape_at, import_at, function_at)
        # i is a token boundary, the stack is empty and nothing is expected.
        if p in (string1_at, string2_at) and p < n:
            i = _string_end(s, p)
            sourcemap = None
            continue
        if sourcemap is not None and _WS_RUN.match(s, i, p).end() != p:  # type: ignore[union-attr]
            sourcemap = None  # a token between the comment and here
        if p == n:
            break
        if p == comment_at:
            j = find("*/", p + 2)
            i = n if j < 0 else j + 2
            comment = _sourcemap_comment(s, p + 2, n if j < 0 else j, raw)
            if comment:
                sourcemap = comment
            continue
        if p == function_at:
            name = s[p - 3:p].lower()
            length = 3 if name != "set" else 17 if s[p - 10:p - 9] == "-" else 9
            if p - length < i:
                # The name began before the token boundary i: the
                # tokenizer read it as part of another token ("@\69mport\'url(").
                m = function(s, p + 1)
                function_at = n if m is None else m.start()
                continue
            if name == "url":
                # url( is the common case: read its simple forms here, not
                # through the tokenizer (a third of the time on plain CSS).
                m = _SIMPLE_URL.match(s, p + 1)
                t = URL
                if m is None:
                    m = _SIMPLE_QUOTED_URL.match(s, p + 1)
                    t = STRING
                if m is not None:
                    vstart, vend = m.span(m.lastindex)
                    value = s[vstart:vend]
                    if raw and not value.isascii():
                        value = _unescape(_utf8(value), t == URL)
                    found.append(("url", "(" if t == URL else s[vstart - 1], value, vstart, vend))
                    sourcemap = None
                    i = m.end()
                    continue
        # The tokenizer, from the last token boundary before p (an escape,
        # @import or a function), until past the event and back to a state
        # where the search can go on.
        k = p
        while k > i and s[k - 1] not in _TOKEN_ENDS:
            k -= 1
        i = k
        while i < n:
            tok, i = _token(s, i, stack)
            if tok is None:
                pass
            elif tok[0] == COMMENT:
                comment = _sourcemap_comment(s, tok[4], tok[5], raw)
                if comment:
                    sourcemap = comment
            else:
                sourcemap = None  # only a trailing source map comment counts
                t, start, _end, value, vstart, vend = tok
                if raw and t in (STRING, URL) and not value.isascii():
                    value = _unescape(_utf8(s[vstart:vend]), t == URL)
                if expect is not None:
                    kind, expect = expect, None
                    if t == STRING:
                        found.append((kind, s[start], value, vstart, vend))
                        t = -1  # consumed
                if t == URL:
                    found.append(("url", "(", value, vstart, vend))
                elif t == FUNCTION:
                    if stack or value in _IMAGE_SET:
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
                    if stack:
                        stack.append(value)
                elif t == CLOSE and stack and _CLOSES.get(stack[-1], ")") == value:
                    # A closer ends what it matches; any other is a plain token
                    # inside the function or block (CSS Syntax 5.4.7-5.4.9).
                    stack.pop()
            if i > p and not stack and expect is None:
                break
        if i >= n:
            break
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


def find_references(data: bytes, kind: str) -> tuple[list[Reference], list[tuple[int, str]]]:
    """Every reference in ``data`` (a ``"css"`` or ``"js"`` file) and the
    problems met (line, message). Never raises on any input."""
    if kind == "js" and b"sourceMappingURL" not in data and not data.startswith(_UNICODE_BOMS):
        # A script's only reference is a source map comment: without one,
        # there is nothing to decode (a memchr-fast search, where decoding
        # costs as much as reading the file).
        return [], []
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
    if "\r" in text or "\f" in text or "\u2028" in text or "\u2029" in text:
        count_breaks = partial(_count_breaks, text)
    else:  # only LF, as in most files: one count instead of six
        count_breaks = partial(text.count, "\n")
    urls: dict[str, str] = {}  # a stylesheet repeats its URLs: one string each
    refs: list = found  # each _Found is replaced by its Reference, so both never pile up
    pos = bpos = 0
    line = 1
    for k, (ref_kind, context, url, start, end) in enumerate(found):
        line += count_breaks(pos, start)  # never splits a CRLF: start is no break
        if same:
            bstart, bend = start, end
        else:
            bstart = bpos + len(text[pos:start].encode(encoding, "surrogateescape"))
            bend = bstart + len(text[start:end].encode(encoding, "surrogateescape"))
        refs[k] = Reference(bstart, bend, urls.setdefault(url, url), line, ref_kind, context)
        line += count_breaks(start, end)
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
    if path[:1] == "/" and "/." not in path and "%2" not in path:
        return path  # no dot segment: most paths, with no split and no join
    out: list[str] = []
    segments = path.split("/")[1:]
    last = len(segments) - 1
    for k, seg in enumerate(segments):
        if len(seg) > 6 or seg[:1] not in (".", "%"):
            out.append(seg)  # cannot be a dot segment ("%2e%2e" is the longest)
            continue
        low = seg.lower()
        if low in (".", "%2e"):
            if k == last:
                out.append("")
        elif low in ("..", ".%2e", "%2e.", "%2e%2e"):
            if out:
                out.pop()
            if k == last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def _directory_url(referrer: str, prefix: str) -> str:
    """The URL of the directory of ``referrer``: the prefix (already URL
    text) and the referrer's percent-encoded logical path, up to its last
    "/"; relative references resolve in URL space, and are decoded last."""
    base = prefix + quote(referrer, safe="/")
    return base[:base.rfind("/") + 1]


def resolve(url: str, referrer: str, prefix: str) -> tuple[str, str] | None:
    """The logical path a reference in ``referrer`` names, and the query and
    fragment to keep after it: ``("img/a.png", "?v=1#x")``.

    ``None`` for what is not ours to rewrite: empty and fragment-only URLs,
    any URL with a scheme (``data:``, ``http:``, ...), protocol-relative URLs,
    and paths outside ``prefix``. Relative paths resolve against the
    referrer's directory, root-absolute ones must start with ``prefix``.
    Raises ``ValueError`` for a reference into the prefix that cannot be
    decoded (percent-encoding that is not UTF-8)."""
    return _resolve(url, lambda: _directory_url(referrer, prefix), prefix)


def _resolve(url: str, directory: Callable[[], str], prefix: str) -> tuple[str, str] | None:
    """resolve(), given a function that returns the referrer's directory URL
    (find_links computes it once a file, and only if a reference is relative)."""
    url = url.strip(_C0_SPACE)
    if not url or url[0] in "#?" or (":" in url and _SCHEME.match(url)):
        return None
    query, fragment = url.find("?"), url.find("#")
    cut = len(url) if query < 0 and fragment < 0 else \
        query if fragment < 0 or 0 <= query < fragment else fragment
    path, suffix = url[:cut], url[cut:]
    if "\\" in path:
        path = path.replace("\\", "/")  # browsers read "\" as "/" in http(s) URLs
    if path.startswith("//"):
        return None
    if not path.startswith("/"):
        path = directory() + path
    path = _remove_dot_segments(path)
    if not path.startswith(prefix):
        return None
    target = path[len(prefix):]
    if "%" in target:
        target = unquote(target, errors="strict")
    if not target:
        return None
    return target, suffix


def merge_url(url: str, suffix: str) -> str:
    """``url`` (a versioned URL, maybe with its own query) followed by the
    query and fragment written after the original reference."""
    if not suffix:
        return url
    query, _, fragment = suffix.partition("#")
    fragment = f"#{fragment}" if "#" in suffix else ""
    if "?" not in url:
        return url + query + fragment
    query = query[1:]  # the "?"; the versioned URL already has one
    return url + (f"&{query}" if query else "") + fragment


# -- rewriting ---------------------------------------------------------------

_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


# Printable ASCII but space, quotes, parentheses and backslash: a URL made
# of these reads back as itself in every context.
_NOTHING_TO_ESCAPE = re.compile(r"[!#-&*-\[\]-~]*")


def _escape(url: str, context: str) -> str:
    """``url`` as text that reads back as ``url`` in ``context``."""
    if _NOTHING_TO_ESCAPE.fullmatch(url):
        return url  # most URLs; quote() alone costs several times this check
    # ASCII only from here on; a byte that was not UTF-8 in the stylesheet
    # (read as a lone surrogate) is percent-encoded as itself.
    url = quote(url, safe=_URL_SAFE, errors="surrogateescape")
    if context in ('"', "'"):
        return url.replace("\\", "\\\\").replace(context, "\\" + context)
    if context == "(":
        return "".join("\\" + c if c in "\"'()\\" else c for c in url)
    return url  # a comment: no whitespace (quoted away above), no "*/" in a URL


@dataclass(frozen=True)
class Link:
    """A reference into the prefix: ``reference`` names ``target`` (a logical
    path) and carries ``suffix`` (its query and fragment) along."""

    __slots__ = ("reference", "suffix", "target")  # as Reference

    reference: Reference
    target: str
    suffix: str

    def __reduce__(self) -> tuple:
        return Link, (self.reference, self.target, self.suffix)


@dataclass
class Links:
    """What one file references inside the prefix."""

    links: list[Link] = field(default_factory=list)
    #: (line, message) for references that could not be read.
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def targets(self) -> dict[str, None]:
        """The logical paths referenced, in order, each once."""
        return dict.fromkeys(link.target for link in self.links)


def find_links(data: bytes, path: str, prefix: str) -> Links:
    """The references of the file at logical ``path`` that point into
    ``prefix``. Empty for a file whose kind is not searched."""
    kind = kind_of(path)
    if kind is None:
        return Links()
    refs, problems = find_references(data, kind)
    result = Links(problems=list(problems))
    seen: dict[str, tuple[str, str] | None] = {}  # a stylesheet repeats its URLs
    directory: list[str] = []

    def directory_url() -> str:
        if not directory:
            directory.append(_directory_url(path, prefix))
        return directory[0]

    for ref in refs:
        try:
            resolved = seen[ref.url] if ref.url in seen else \
                _resolve(ref.url, directory_url, prefix)
        except ValueError:
            result.problems.append((ref.line, f"{ref.url!r} is not valid UTF-8 "
                                              "percent-encoding; left as written"))
            continue
        seen[ref.url] = resolved
        if resolved is not None:
            result.links.append(Link(ref, *resolved))
    return result


def rewrite(data: bytes, replacements: Iterable[tuple[Reference, str]]
            ) -> tuple[bytes, tuple[Splice, ...]]:
    """Replace the URL text of each reference with a new URL (escaped for
    where it stands). Returns the new bytes and the splices that
    :func:`restore` needs to get ``data`` back."""
    # Built in one buffer rather than from a piece per gap, and the
    # original bytes of a URL the stylesheet repeats are kept once: a
    # stylesheet can hold tens of thousands of references.
    body = bytearray()
    splices: list[Splice] = []
    originals: dict[str, bytes] = {}
    pos = 0
    with memoryview(data) as view:
        for ref, url in sorted(replacements, key=lambda r: r[0].start):
            start, end = ref.start, ref.end
            new = _escape(url, ref.context).encode("ascii")
            body += view[pos:start]
            out = len(body)
            body += new
            if len(new) != end - start or not data.startswith(new, start):
                original = originals.get(ref.url)
                if original is None or len(original) != end - start \
                        or not data.startswith(original, start):
                    original = originals[ref.url] = data[start:end]
                splices.append((out, out + len(new), original))
            pos = end
        body += view[pos:]
    return bytes(body), tuple(splices)


def restore(body: bytes, splices: Sequence[Splice]) -> bytes:
    """The bytes :func:`rewrite` was given, from what it returned."""
    pieces = []
    pos = 0
    for start, end, original in splices:
        pieces.append(body[pos:start])
        pieces.append(original)
        pos = end
    pieces.append(body[pos:])
    return b"".join(pieces)


# -- the reference graph -----------------------------------------------------

def components(nodes: Iterable[str], successors: Callable[[str], Iterable[str]]
               ) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative so that
    no recursion limit applies), each sorted, listed so that a component
    comes after every component it references: versions can be computed in
    this order in one pass, whatever the depth of the graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(successors(root))))]
        while work:
            node, it = work[-1]
            for succ in it:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(successors(succ)))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(sorted(component))
    return result


def replacements(links: Links, urls: Mapping[str, str | None]) -> list[tuple[Reference, str]]:
    """The (reference, new URL) pairs for the links whose target has a URL."""
    out = []
    for link in links.links:
        url = urls.get(link.target)
        if url is not None:
            out.append((link.reference, merge_url(url, link.suffix)))
    return out
