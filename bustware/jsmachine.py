"""The state machine of :mod:`bustware.jslexer`: one pass over the bytes
of a JavaScript file, keeping only the state that tells where a specifier
can stand (why a hand-written machine, the regular expression or division
rule and its limits: see bustware.jslexer). It yields raw offsets; the
public types, decoding and line numbers are bustware.jslexer's.
"""

from __future__ import annotations

import re

__all__ = ["Machine"]

# -- character classes ---------------------------------------------------------

_IDENT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$\\"
                   + bytes(range(0x80, 0x100)))
_ASCII_IDENT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$\\")
_ASCII_SPACE = frozenset(b" \t\n\r\v\f")
#: UTF-8 of the non-ASCII white space and line terminators of ECMA-262
#: (Zs, BOM, LS, PS): NBSP, BOM, U+1680, U+2000-U+200A, LS, PS, U+202F,
#: U+205F, U+3000.
_UNICODE_SPACES = frozenset((b"\xc2\xa0", b"\xef\xbb\xbf", b"\xe1\x9a\x80", b"\xe2\x81\x9f",
                             b"\xe3\x80\x80", *(b"\xe2\x80" + bytes([c]) for c in
                                                 [*range(0x80, 0x8b), 0xa8, 0xa9, 0xaf])))
_KEYWORDS_BEFORE_EXPRESSION = frozenset(
    b"return typeof instanceof in of new delete void throw case do else yield await "
    b"default extends".split())
_CONDITION_KEYWORDS = frozenset(b"if while for with".split())
_MAX_KEYWORD = 10  # len(b"instanceof")
_CLAUSE_TOKENS = 8

#: The UTF-8 of _UNICODE_SPACES, and an identifier character (ASCII, or any
#: non-ASCII character that is not one of them).
_USPACE = (rb"\xc2\xa0|\xef\xbb\xbf|\xe1\x9a\x80|\xe2\x81\x9f|\xe3\x80\x80"
           rb"|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]")
_ID_CHAR = rb"(?:[\w$\\]|(?!" + _USPACE + rb")[\x80-\xff])"
#: The next byte that can change the lexer's state, or the start of a word
#: that can start a specifier or mark a module (a non-ASCII byte before it
#: is checked by word_before()).
_NEXT = re.compile(rb"[\"'`/{}()]|(?<![\w$\\])(?:import|export|new)(?!" + _ID_CHAR + rb")")
_STRING_RUN = {ord('"'): re.compile(rb'[^"\\\n\r]*'), ord("'"): re.compile(rb"[^'\\\n\r]*")}
_TEMPLATE_RUN = re.compile(rb"[^`\\$]*")
_REGEX_RUN = re.compile(rb"[^/\\\[\n\r]*")
_CLASS_RUN = re.compile(rb"[^\]\\\n\r]*")
_LINE_RUN = re.compile(rb"[^\n\r\xe2]*")
_SPACE_RUN = re.compile(rb"[ \t\n\r\v\f]*")
# Bounded: a repeated group holds memory for each repetition until the
# match ends; a longer word is read as several, which changes nothing here.
_WORD = re.compile(_ID_CHAR + rb"{1,1024}")
_NEW_URL = re.compile(rb"new[ \t\n\r]*URL[ \t\n\r]*\([ \t\n\r]*")
_META_URL = re.compile(rb"[ \t\n\r]*,[ \t\n\r]*import[ \t\n\r]*\.[ \t\n\r]*meta[ \t\n\r]*\."
                       rb"[ \t\n\r]*url[ \t\n\r]*(?:,[ \t\n\r]*)?\)")
_RESOLVE = re.compile(rb"[ \t\n\r]*\.[ \t\n\r]*resolve[ \t\n\r]*\([ \t\n\r]*")
_LINE_BREAKS = (b"\n", b"\r", b"\xe2\x80\xa8", b"\xe2\x80\xa9")

# The kind of the last token, which decides what "/" and "{" mean there.
(_START, _OPEN_PAREN, _OPEN_BRACE, _BLOCK_END, _CONDITION_END, _PAREN_END, _VALUE, _PUNCT,
 _WORD_END, _KEYWORD, _BLOCK_KEYWORD, _ARROW, _SEMICOLON, _POSTFIX) = range(14)
#: After these, "/" starts a regular expression (else it divides).
_REGEX_AFTER = frozenset({_START, _OPEN_PAREN, _OPEN_BRACE, _BLOCK_END, _CONDITION_END, _PUNCT,
                          _KEYWORD, _BLOCK_KEYWORD, _ARROW, _SEMICOLON})
#: After these, "{" opens a block (else an object literal).
_BLOCK_AFTER = frozenset({_START, _OPEN_BRACE, _BLOCK_END, _CONDITION_END, _PAREN_END, _WORD_END,
                          _BLOCK_KEYWORD, _ARROW, _SEMICOLON})
# Entries of the brace stack.
_BLOCK, _OBJECT, _SUBSTITUTION = 0, 1, 2
# Entries of the parenthesis stack (>= 0: the index of a pending Computed).
_PLAIN_PAREN, _CONDITION_PAREN = -1, -2


class Machine:
    """One pass over one file; the state of the machine."""

    def __init__(self, data: bytes, until_module: bool = False) -> None:
        """``until_module``: stop as soon as module syntax is seen."""
        self.until_module = until_module
        self.data = data
        self.n = len(data)
        self.found: list[tuple[int, int, str, str]] = []  # start, end, kind, context
        self.computed: list[int | None] = []  # offsets; None once found a method
        self.module = False
        self.error: tuple[int, str] | None = None
        self.braces: list[int] = []
        self.parens: list[int] = []
        self.last = _START

    # -- helpers -------------------------------------------------------------

    def space_before(self, lo: int, hi: int) -> int:
        """The end of the last non-space byte in ``data[lo:hi]``, or ``lo``."""
        data = self.data
        while hi > lo:
            c = data[hi - 1]
            if c in _ASCII_SPACE:
                hi -= 1
            elif c >= 0x80 and hi - lo >= 2 and (data[hi - 2:hi] in _UNICODE_SPACES or (
                    hi - lo >= 3 and data[hi - 3:hi] in _UNICODE_SPACES)):
                hi -= 2 if data[hi - 2:hi] in _UNICODE_SPACES else 3
            else:
                return hi
        return lo

    def word_before(self, lo: int, hi: int) -> bytes | None:
        """The keyword-length word ending at ``hi`` (within ``data[lo:hi]``),
        or None if the word is longer or is a property (after ``.``)."""
        data = self.data
        k = hi
        while k > lo and hi - k <= _MAX_KEYWORD and data[k - 1] in _ASCII_IDENT:
            k -= 1
        if hi - k > _MAX_KEYWORD or (k > lo and (data[k - 1] in _ASCII_IDENT or (
                data[k - 1] >= 0x80 and data[k - 2:k] not in _UNICODE_SPACES
                and data[k - 3:k] not in _UNICODE_SPACES))):
            return None  # longer than any keyword, or a part of a word
        d = self.space_before(lo, k)
        if d > lo and data[d - 1] == 0x2E and not data.startswith(b"..", d - 2):  # "."
            return None
        return data[k:hi]

    def classify(self, lo: int, hi: int) -> int:
        """The kind of the last token before ``hi``. The gap ``data[lo:hi]``
        holds only identifiers, numbers, spaces and punctuators that the
        machine does not stop at; if it is blank, ``self.last`` is."""
        q = self.space_before(lo, hi)
        if q == lo:
            return self.last
        data = self.data
        c = data[q - 1]
        if c in _IDENT:
            word = self.word_before(lo, q)
            if word == b"do" or word == b"else":
                return _BLOCK_KEYWORD
            return _KEYWORD if word in _KEYWORDS_BEFORE_EXPRESSION else _WORD_END
        if c == 0x5D:  # "]"
            return _VALUE
        if c == 0x3B:  # ";"
            return _SEMICOLON
        if q - 2 >= lo:
            if c == 0x3E and data[q - 2] == 0x3D:  # "=>"
                return _ARROW
            if c in b"+-" and data[q - 2] == c:
                return _POSTFIX  # "++" / "--", taken as postfix
        return _PUNCT

    def skip_space(self, i: int) -> int:
        """Past spaces and comments from ``i``; ``n`` if a comment is open."""
        data, n = self.data, self.n
        while i < n:
            i = _SPACE_RUN.match(data, i).end()  # type: ignore[union-attr]
            if data.startswith(b"/*", i):
                j = data.find(b"*/", i + 2)
                if j < 0:
                    self.fail(i, "unterminated comment")
                    return n
                i = j + 2
            elif data.startswith(b"//", i):
                i = self.line_end(i)
            elif i < n and data[i] >= 0x80 and (data[i:i + 2] in _UNICODE_SPACES
                                                 or data[i:i + 3] in _UNICODE_SPACES):
                i += 2 if data[i:i + 2] in _UNICODE_SPACES else 3
            else:
                return i
        return i

    def line_end(self, i: int) -> int:
        data, n = self.data, self.n
        while True:
            i = _LINE_RUN.match(data, i).end()  # type: ignore[union-attr]
            if i >= n or data[i] != 0xE2 or data[i:i + 3] in _LINE_BREAKS:
                return i
            i += 1

    def fail(self, at: int, why: str) -> None:
        if self.error is None:
            self.error = (at, why)

    def string_end(self, i: int) -> int:
        """``data[i]`` is a quote: the offset of the closing quote, or where
        the string was cut (a line break or the end, with ``error`` set)."""
        data, n = self.data, self.n
        quote = data[i]
        run = _STRING_RUN[quote]
        i += 1
        while True:
            i = run.match(data, i).end()  # type: ignore[union-attr]
            if i >= n or data[i] != 0x5C:  # not a backslash
                if i >= n or data[i] != quote:
                    self.fail(i, "unterminated string")
                return i
            i += 3 if data.startswith(b"\r\n", i + 1) else 2

    def template_end(self, i: int) -> tuple[int, bool]:
        """From inside a template at ``i``: the offset of the closing
        backtick or of a ``${``, and whether it is the latter; ``n`` at an
        unterminated template."""
        data, n = self.data, self.n
        while True:
            i = _TEMPLATE_RUN.match(data, i).end()  # type: ignore[union-attr]
            if i >= n:
                return n, False
            c = data[i]
            if c == 0x60:  # "`"
                return i, False
            if c == 0x24:  # "$"
                if data.startswith(b"{", i + 1):
                    return i, True
                i += 1
            else:
                i += 2  # an escape

    def regex_end(self, i: int) -> int:
        """``data[i]`` opens a regular expression: the offset after it."""
        data, n = self.data, self.n
        i += 1
        while True:
            i = _REGEX_RUN.match(data, i).end()  # type: ignore[union-attr]
            if i >= n or data[i] in b"\n\r":
                self.fail(i, "unterminated regular expression")
                return i
            c = data[i]
            if c == 0x2F:  # "/"
                return i + 1
            if c == 0x5C:
                i += 2
                continue
            i += 1  # "[": a class, where "/" does not end the expression
            while True:
                i = _CLASS_RUN.match(data, i).end()  # type: ignore[union-attr]
                if i >= n or data[i] != 0x5C:
                    break
                i += 2
            if i >= n or data[i] != 0x5D:
                continue  # a line break or the end: reported above
            i += 1

    def constant(self, i: int) -> tuple[int, int] | None:
        """At ``i`` (past spaces), a string or a template without
        substitutions: the offsets of its opening and closing delimiter."""
        data = self.data
        if i >= self.n:
            return None
        c = data[i]
        if c == 0x22 or c == 0x27:
            j = self.string_end(i)
            return (i, j) if j < self.n and data[j] == c else None
        if c == 0x60:
            j, substitution = self.template_end(i + 1)
            return (i, j) if j < self.n and not substitution else None
        return None

    # -- the machine ---------------------------------------------------------

    def run(self) -> None:
        data, n = self.data, self.n
        i = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a BOM is no token
        if data.startswith(b"#!", i):
            i = self.line_end(i)
        gap = i  # data[gap:p] holds no token the machine stops at: see classify()
        while True:
            m = _NEXT.search(data, i)
            if m is None:
                return
            p = m.start()
            c = data[p]
            if c == 0x2F:  # "/"
                nxt = data[p + 1:p + 2]
                if nxt == b"/" or nxt == b"*":
                    # A comment is no token: carry the kind of the last one over it.
                    self.last = self.classify(gap, p)
                    if nxt == b"/":
                        i = self.line_end(p)
                    else:
                        j = data.find(b"*/", p + 2)
                        if j < 0:
                            self.fail(p, "unterminated comment")
                            return
                        i = j + 2
                elif self.classify(gap, p) in _REGEX_AFTER:
                    i = self.regex_end(p)
                    self.last = _VALUE
                else:
                    i = p + 1
                    self.last = _PUNCT
                gap = i
            elif c == 0x22 or c == 0x27:
                j = self.string_end(p)
                i = gap = j + 1 if j < n and data[j] == c else j
                self.last = _VALUE
            elif c == 0x60:
                i = gap = self.template(p + 1)
            elif c == 0x28:  # "("
                q = self.space_before(gap, p)
                # "(" is the commonest stop: look for a keyword only where
                # one of "if", "for", "while", "with" can end.
                word = self.word_before(gap, q) if q > gap and data[q - 1] in b"frhe" else None
                self.parens.append(_CONDITION_PAREN if word in _CONDITION_KEYWORDS
                                   else _PLAIN_PAREN)
                i = gap = p + 1
                self.last = _OPEN_PAREN
            elif c == 0x29:  # ")"
                i = gap = p + 1
                top = self.parens.pop() if self.parens else _PLAIN_PAREN
                self.last = _CONDITION_END if top == _CONDITION_PAREN else _PAREN_END
                if top >= 0 and data.startswith(b"{", self.skip_space(i)):
                    self.computed[top] = None  # "import(x) {": a method named import
            elif c == 0x7B:  # "{"
                self.braces.append(_BLOCK if self.classify(gap, p) in _BLOCK_AFTER
                                   else _OBJECT)
                i = gap = p + 1
                self.last = _OPEN_BRACE
            elif c == 0x7D:  # "}"
                top = self.braces.pop() if self.braces else _BLOCK
                if top == _SUBSTITUTION:
                    i = gap = self.template(p + 1)
                else:
                    i = gap = p + 1
                    self.last = _BLOCK_END if top == _BLOCK else _VALUE
            else:
                end = m.end()
                if self.word_before(gap, end) is None:
                    i = end  # a property: obj.import
                    continue
                word = data[p:end]
                i = self.new_url(p) if word == b"new" else \
                    self.import_(p) if word == b"import" else self.export(p)
                if i != end:
                    gap = i  # a specifier or clause consumed; self.last is set
                if self.module and self.until_module:
                    return

    def template(self, i: int) -> int:
        """Inside a template from ``i``: past its end, or into a ``${``."""
        j, substitution = self.template_end(i)
        if j >= self.n:
            self.fail(j, "unterminated template literal")
            return self.n
        if substitution:
            self.braces.append(_SUBSTITUTION)
            self.last = _OPEN_BRACE
            return j + 2
        self.last = _VALUE
        return j + 1

    def record(self, span: tuple[int, int], kind: str) -> None:
        start, end = span
        self.found.append((start + 1, end, kind, chr(self.data[start])))

    def import_(self, p: int) -> int:
        """``import`` at ``p`` (a keyword): where the machine goes on."""
        data = self.data
        after = p + 6
        q = self.skip_space(after)
        c = data[q] if q < self.n else 0
        if c == 0x28:  # "(": import(...)
            return self.dynamic(p, q)
        if c == 0x2E:  # "."
            r = self.skip_space(q + 1)
            word = _WORD.match(data, r)
            name = word.group() if word else b""
            if name == b"meta":
                self.module = True
                return self.resolve(word.end(), after)  # type: ignore[union-attr]
            if name in (b"source", b"defer"):  # as import(): no module syntax
                s = self.skip_space(word.end())  # type: ignore[union-attr]
                if data.startswith(b"(", s):
                    return self.dynamic(p, s)
            return after
        if c in b"\"'":
            span = self.constant(q)
            if span is None or data[span[0]] == 0x60:
                return after
            self.module = True
            self.record(span, "import")
            self.last = _VALUE
            return span[1] + 1
        if c in _IDENT or c in b"{*":
            return self.clause(after, q)
        return after

    def export(self, p: int) -> int:
        data = self.data
        after = p + 6
        q = self.skip_space(after)
        c = data[q] if q < self.n else 0
        if c in b"{*":
            return self.clause(after, q)
        if c in _IDENT:
            self.module = True  # export default / const / function / class ...
        return after

    def clause(self, after: int, q: int) -> int:
        """The import or export clause at ``q`` (``{ a, b as c }``, ``x``,
        ``* as ns``, ``defer * as ns``, ...), up to and past its specifier
        (``from "x"``). For an ``export { a }`` without one, back to its
        ``{``, read again as a block; for anything else, ``after``."""
        data, n = self.data, self.n
        export = data[after - 6:after] == b"export"
        previous = b""
        # A clause has at most six tokens besides its braces (``x, * as ns
        # from``): the bound keeps "import a import a ..." linear.
        for _ in range(_CLAUSE_TOKENS):
            if q >= n:
                break
            c = data[q]
            if c == 0x7B and previous in (b"", b","):  # "{": names, maybe quoted
                brace = q
                q += 1
                while True:
                    q = self.skip_space(q)
                    if q >= n:
                        return after
                    c = data[q]
                    if c == 0x7D:
                        break
                    if c == 0x22 or c == 0x27:
                        q = self.string_end(q) + 1
                    elif c in _IDENT:
                        q = _WORD.match(data, q).end()  # type: ignore[union-attr]
                    elif c == 0x2C:
                        q += 1
                    else:
                        return after  # not a clause
                q = self.skip_space(q + 1)
                if export and not data.startswith(b"from", q):
                    self.module = True  # export { a, b }
                    self.last = _START
                    return brace
                previous = b"}"
                continue
            if c == 0x2A or c == 0x2C:  # "*" ","
                q += 1
                previous = bytes([c])
            elif c in _IDENT:
                w = _WORD.match(data, q)
                previous = w.group()  # type: ignore[union-attr]
                q = w.end()  # type: ignore[union-attr]
            elif (c == 0x22 or c == 0x27) and previous in (b"as", b"from"):
                span = self.constant(q)
                if span is None:
                    return after
                if previous == b"as":  # export * as "name"
                    q = span[1] + 1
                    previous = b"name"
                else:
                    self.module = True
                    self.record(span, "import")
                    self.last = _VALUE
                    return span[1] + 1
            else:
                return after
            q = self.skip_space(q)
        return after

    def dynamic(self, p: int, q: int) -> int:
        """``import(`` with ``(`` at ``q``: a specifier, or a computed import
        to report. Where the machine goes on, with the ``(`` open."""
        r = self.skip_space(q + 1)
        span = self.constant(r)
        if span is not None:
            t = self.skip_space(span[1] + 1)
            if t < self.n and self.data[t] in b",)":
                self.record(span, "dynamic")
                self.parens.append(_PLAIN_PAREN)
                self.last = _VALUE
                return span[1] + 1
        self.parens.append(len(self.computed))
        self.computed.append(p)
        self.last = _OPEN_PAREN
        return q + 1

    def resolve(self, q: int, after: int) -> int:
        """After ``import.meta`` (at ``q``): ``.resolve("x")`` is a
        specifier; the machine goes on after the string, ``(`` open."""
        m = _RESOLVE.match(self.data, q)
        if m is not None:
            span = self.constant(m.end())
            if span is not None and self.data.startswith((b")", b","),
                                                         self.skip_space(span[1] + 1)):
                self.record(span, "resolve")
                self.parens.append(_PLAIN_PAREN)
                self.last = _VALUE
                return span[1] + 1
        return after

    def new_url(self, p: int) -> int:
        """``new`` at ``p``: ``new URL("x", import.meta.url)`` is a
        specifier; the machine goes on after the string, ``(`` open."""
        m = _NEW_URL.match(self.data, p)
        if m is not None:
            span = self.constant(m.end())
            if span is not None and _META_URL.match(self.data, span[1] + 1):
                self.record(span, "url")
                self.parens.append(_PLAIN_PAREN)
                self.last = _VALUE
                return span[1] + 1
        return p + 3
