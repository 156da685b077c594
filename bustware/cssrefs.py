"""The references of a stylesheet: ``url()`` tokens, the strings of
``url("...")``, ``src("...")``, ``@import`` and ``image-set()``, and a
trailing source map comment; found with the tokenizer of bustware.csstokens,
run only where a reference may be.
"""

from __future__ import annotations

import re

from .csstokens import (
    AT,
    CLOSE,
    COMMENT,
    FUNCTION,
    NAME_CHAR,
    NEWLINES,
    OPEN,
    STRING,
    URL,
    WS,
    WS_RUN,
    consume_escape,
    next_token,
)
from .refdecode import utf8
from .sourcemaps import Found, sourcemap_comment

__all__ = ["css_references"]

_IMAGE_SET = frozenset({"image-set", "-webkit-image-set"})
#: What closes each entry of the stack; a function name is closed by ")".
_CLOSES = {"(": ")", "[": "]", "{": "}"}


def _unescape(text: str, url: bool) -> str:
    """The value of the inside of a string or (``url``) unquoted url token:
    escapes decoded, escaped newlines dropped, as consume_string and
    consume_url read it."""
    parts = []
    i, n = 0, len(text)
    while (j := text.find("\\", i)) >= 0:
        parts.append(text[i:j])
        if j + 1 >= n:  # a backslash at EOF
            return "".join(parts) + ("\ufffd" if url else "")
        if text[j + 1] in NEWLINES:
            i = j + (3 if text.startswith("\r\n", j + 1) else 2)
        else:
            ch, i = consume_escape(text, j + 1)
            parts.append(ch)
    parts.append(text[i:])
    return "".join(parts)


# -- finding references fast ---------------------------------------------------
#
# Running the tokenizer over every character costs about 25 ns a character,
# and almost none of a stylesheet can hold a reference. So css_references()
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


_AT_IMPORT = re.compile(rf"@{_ascii_nocase('import')}(?!{NAME_CHAR}|\\)")
# The "(" of such a function: a literal first character, then lookbehinds.
# Before the name, an ASCII character that is not a name character, "#",
# "@" or "\\".
_FUNCTION_START = r"[\x00-\x22\x24-\x2c./:-?\[\]^`{-\x7f]"
_REFERENCE_FUNCTION = re.compile(r"\((?:" + "|".join(
    rf"(?<={_FUNCTION_START}{_ascii_nocase(name)}\()|(?<=\A{_ascii_nocase(name)}\()"
    for name in ("url", "src", "image-set", "-webkit-image-set")) + ")")
# Characters that end a token wherever they stand outside comments,
# strings, url tokens and escapes: the tokenizer may start just after one.
_TOKEN_ENDS = frozenset(WS + ";{}()[],:")


# The unquoted url( of the tokenizer (consume_url) without escapes, and
# url( followed by a string (next_token) without escapes or newlines: the value,
# in group 1, is the text itself.
_SIMPLE_URL = re.compile(r"[ \t\n\r\f]*([^)\t\n\r\f \"'(\\\x00-\x08\x0b\x0e-\x1f\x7f]*)"
                         r"[ \t\n\r\f]*\)")
_SIMPLE_QUOTED_URL = re.compile(r"""[ \t\n\r\f]*(?:"([^"\\\n\r\f]*)"|'([^'\\\n\r\f]*)')""")


# The pieces of a string token, as consume_string reads them: runs of
# plain characters and escapes (an escaped newline included). The repeat is
# bounded, as in BORING, so that no string costs the engine more than a
# few KB; every repetition ends between two pieces.
_STRING_PIECES = {q: re.compile(rf"(?:[^{q}\\\n\r\f]+|\\(?:[0-9a-fA-F]{{1,6}}(?:\r\n|[ \t\n\r\f])?"
                                rf"|\r\n|[\s\S])?){{0,256}}") for q in "\"'"}


def _string_end(s: str, i: int) -> int:
    """Where the string token that starts at ``s[i]`` ends (consume_string
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
        if s[j] in NEWLINES:  # a bad string ends before the newline
            return j


def css_references(s: str, raw: bool = False) -> list[Found]:
    """``raw``: ``s`` is a UTF-8 stylesheet read as RAW_UTF8."""
    found: list[Found] = []
    stack: list[str] = []  # open functions (their names) and blocks from the lowest image-set(
    expect: str | None = None  # "url" after url(/src(, "import" after @import
    sourcemap: Found | None = None
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
        if sourcemap is not None and WS_RUN.match(s, i, p).end() != p:  # type: ignore[union-attr]
            sourcemap = None  # a token between the comment and here
        if p == n:
            break
        if p == comment_at:
            j = find("*/", p + 2)
            i = n if j < 0 else j + 2
            comment = sourcemap_comment(s, p + 2, n if j < 0 else j, raw)
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
                        value = _unescape(utf8(value), t == URL)
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
            tok, i = next_token(s, i, stack)
            if tok is None:
                pass
            elif tok[0] == COMMENT:
                comment = sourcemap_comment(s, tok[4], tok[5], raw)
                if comment:
                    sourcemap = comment
            else:
                sourcemap = None  # only a trailing source map comment counts
                t, start, _end, value, vstart, vend = tok
                if raw and t in (STRING, URL) and not value.isascii():
                    value = _unescape(utf8(s[vstart:vend]), t == URL)
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
