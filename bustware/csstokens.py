"""The CSS tokenizer (CSS Syntax Level 3, section 4), as far as finding
references needs it; bustware.cssrefs runs it where a reference may be.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#
# Only the distinctions that decide what is a reference are kept: comments,
# strings (with escapes), url tokens, function tokens, at-keywords, numbers
# (so that "2url(" is a dimension, not a function) and the brackets that
# nest functions. Runs of ordinary characters are consumed with small
# regular expressions for speed (a character loop in Python is ~10x slower
# on a 200 KB stylesheet); every decision is the tokenizer's, per the spec.

COMMENT, STRING, BAD_STRING, URL, BAD_URL, FUNCTION, AT, IDENT, OPEN, CLOSE, OTHER = range(11)

WS = " \t\n\r\f"
NEWLINES = "\n\r\f"
_HEX = frozenset("0123456789abcdefABCDEF")
# A name character (CSS Syntax 4.2: an ASCII letter or digit, "_", "-", or
# any non-ASCII character), written as "none of the other ASCII characters":
# a class that spells out \u0080-\U0010ffff costs the regular expression
# compiler about 3 ms, and importing this module compiled ten of them.
NAME_CHAR = r"[^\x00-\x2c./:-@\[-\^`{-\x7f]"
_NAME_RUN = re.compile(rf"{NAME_CHAR}+")
WS_RUN = re.compile(r"[ \t\n\r\f]*")
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
_BORING_RUN = (rf"{NAME_CHAR}+(?!{NAME_CHAR}|[(\\])|#{NAME_CHAR}+(?!{NAME_CHAR}|\\)"
               r"|/(?!\*)")
#
# The repeat is bounded: each repetition of a group costs the regex engine
# a saved state (about 80 bytes) until the match ends, so an unbounded run
# over a 10 MiB stylesheet of "a{color:red}" held 700 MiB. Every repetition
# ends on a token boundary, so a long run is simply several OTHER tokens.
# (Possessive "++" would hold nothing, but needs Python 3.11.)
BORING = re.compile(rf"(?:[ \t\n\r\f;:,.!%*+>~=|^$&?<]|{_BORING_RUN}){{1,1024}}")
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
    return i < len(s) and s[i] == "\\" and (i + 1 >= len(s) or s[i + 1] not in NEWLINES)


def _starts_ident(s: str, i: int) -> bool:
    if i >= len(s):
        return False
    c = s[i]
    if c == "-":
        return i + 1 < len(s) and (_name_start(s[i + 1]) or s[i + 1] == "-"
                                   or _valid_escape(s, i + 1))
    return _name_start(c) or _valid_escape(s, i)


def consume_escape(s: str, i: int) -> tuple[str, int]:
    """``i`` is just after the backslash."""
    n = len(s)
    if i >= n:
        return "\ufffd", i
    if s[i] in _HEX:
        j = i
        while j < n and j - i < 6 and s[j] in _HEX:
            j += 1
        cp = int(s[i:j], 16)
        if j < n and s[j] in WS:
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
            ch, i = consume_escape(s, i + 1)
            parts.append(ch)
        else:
            break
    return "".join(parts), i


def consume_string(s: str, i: int) -> Token:
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
        if c in NEWLINES:
            return BAD_STRING, start, i, "", vstart, i
        if c == "\\":
            if i + 1 >= n:
                i += 1
            elif s[i + 1] in NEWLINES:  # an escaped newline continues the line
                i += 3 if s.startswith("\r\n", i + 1) else 2
            else:
                ch, i = consume_escape(s, i + 1)
                parts.append(ch)
            continue
        m = run.match(s, i)
        parts.append(m.group())  # type: ignore[union-attr]
        i = m.end()  # type: ignore[union-attr]


def consume_url(s: str, start: int, i: int) -> Token:
    """The body of an unquoted ``url(`` (spec 4.3.6); ``i`` is after ``(``."""
    n = len(s)
    i = WS_RUN.match(s, i).end()  # type: ignore[union-attr]
    vstart = i
    parts = []
    while True:
        if i >= n:
            return URL, start, n, "".join(parts), vstart, n
        c = s[i]
        if c == ")":
            return URL, start, i + 1, "".join(parts), vstart, i
        if c in WS:
            vend = i
            i = WS_RUN.match(s, i).end()  # type: ignore[union-attr]
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
            ch, i = consume_escape(s, i + 1)
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
            _, i = consume_escape(s, i + 1)
        else:
            i += 1
    return BAD_URL, start, i, "", vstart, vstart


def next_token(s: str, i: int, nesting: list | None) -> tuple[Token | None, int]:
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
    if c in WS:
        return None, WS_RUN.match(s, i).end()  # type: ignore[union-attr]
    if (m := (BORING if nesting else _BORING_TOP).match(s, i)) is not None:
        return (OTHER, i, m.end(), "", i, m.end()), m.end()
    if c == '"' or c == "'":
        tok = consume_string(s, i)
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
                while k + 1 < n and s[k] in WS and s[k + 1] in WS:
                    k += 1
                if k < n and (s[k] in "\"'" or (s[k] in WS and k + 1 < n
                                                and s[k + 1] in "\"'")):
                    return (FUNCTION, i, j + 1, "url", i, j), j + 1
                tok = consume_url(s, i, j + 1)
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
        tok, i = next_token(s, i, nesting)
        if tok is not None:
            yield tok
