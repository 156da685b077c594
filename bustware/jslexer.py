"""The module specifiers of a JavaScript file, found by a lexer.

A module names the modules it loads in ``import ... from "x"``, ``import
"x"``, ``export ... from "x"``, ``import("x")`` and ``new URL("x",
import.meta.url)``. To give those their versioned URLs, every such string
must be found, and nothing else: the same text inside a comment, a string,
a template literal or a regular expression is not a specifier.

Why a hand-written state machine. JavaScript cannot be tokenized by a
regular expression alone: whether ``/`` starts a regular expression or is a
division depends on the token before it (``a / b / c`` against ``return
/"/.test(s)``), and template literals nest (```a${`b${c}`}```), which no
regular expression can count. A real parser would settle both but is a
heavy dependency, and slower by far than a lexer that only keeps the state
these two questions need: the kind of the last token, a stack of open
parentheses and a stack of open braces (block, expression or template
substitution). Runs of characters that cannot change that state are
skipped with small regular expressions (a character loop in Python is ~10x
slower). Every regular expression here is a single character class, a
literal or a fixed sequence without nested repetition, so nothing
backtracks, and every byte is looked at a bounded number of times: the
cost is linear in the size of the input, whatever it holds.

Input and offsets. The lexer reads bytes (a file as served) and reports
byte offsets, so that splicing a new URL in leaves every other byte as it
was. Bytes >= 0x80 count as identifier characters, except the UTF-8 forms of
the Unicode spaces and line terminators; bytes that are not UTF-8 do no
harm (a specifier holding them is decoded with ``surrogateescape``, and
does not resolve).

Regular expression or division (the rule). ``/`` (not ``//`` nor ``/*``)
starts a regular expression literal after: the start of the input; any
punctuator except ``)``, ``]``, ``}``, ``++`` and ``--``; the keywords
``return typeof instanceof in of new delete void throw case do else yield
await default extends`` (unless written after ``.``, as a property name);
a ``)`` that closes the condition of ``if``, ``while``, ``for`` or
``with``; a ``}`` that closes a block. It is a division after an
identifier, a number, a string, a template, a regular expression, ``]``,
``++``/``--``, any other ``)``, and a ``}`` that closes an object literal
or a template substitution's expression. A ``{`` opens a block after
``)``, ``;``, ``{``, ``}``, ``=>``, the start, an identifier or a keyword
other than those above, and an expression (object literal) otherwise.
Known limits, none met in real code: ``x = function () {} / 1`` (a
function expression's body read as a block), ``a++ /re/`` (nonsense), a
label or ``case x:`` before a block that is followed by a regular
expression, ``for await (...) /re/``, a keyword written with escapes
(``\\u0072eturn``), comments between ``new``, ``URL`` and ``(``, and HTML-like
comments (``<!--``), which modules do not have (ECMA-262 B.1.1 applies to
scripts only).

What counts (see :class:`Specifier`). A dynamic ``import()`` whose whole
first argument is a string literal, or a template literal without
``${...}`` (a constant, resolved as the same string), is a specifier; any
other argument is listed in :attr:`Lexed.computed` to report, and left
alone. ``import.source("x")`` and ``import.defer("x")`` are dynamic imports
too. Escape sequences in a specifier are decoded into its value (as a
browser reads it); the replacement covers the whole text between the
quotes, so they need no special care. A specifier with an invalid escape
(which a browser would refuse to parse) has the value ``None``.

Which files are modules (:func:`is_module`). A file is a module if it has
an ``import`` or ``export`` declaration, or ``import.meta`` (a syntax error
in a classic script): the rule of es-module-lexer's ``hasModuleSyntax`` and
of Node's module syntax detection. ``import()`` alone is not (classic
scripts may use it), nor is top-level ``await`` (it needs a parser to tell;
such a module has nothing to rewrite unless it imports). The caller adds:
a ``.mjs`` file is always a module, whatever it holds.

Malformed input never raises: an unterminated string, comment, template or
regular expression ends the search (or, for a string or regular expression
cut by a line break, resumes after it), and :attr:`Lexed.error` says where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Computed", "Lexed", "Specifier", "is_module", "lex", "specifiers"]


@dataclass(frozen=True)
class Specifier:
    """A module specifier, found where a browser would load it."""

    __slots__ = ("context", "end", "kind", "line", "start", "value")

    #: Byte offsets of the text between the quotes (or backticks).
    start: int
    end: int
    #: The specifier as the browser reads it (escapes decoded); ``None`` if
    #: it holds an invalid escape sequence.
    value: str | None
    #: 1-based line of ``start``.
    line: int
    #: ``"import"`` (a static import or ``export ... from``), ``"dynamic"``
    #: (``import("x")``, ``import.source``/``import.defer``) or ``"url"``
    #: (``new URL("x", import.meta.url)``).
    kind: str
    #: The delimiter: ``'"'``, ``"'"`` or ``"`"``.
    context: str


@dataclass(frozen=True)
class Computed:
    """A dynamic ``import(...)`` whose argument is not a constant."""

    __slots__ = ("line", "start")

    #: Byte offset of the ``import`` keyword, and its line.
    start: int
    line: int


@dataclass
class Lexed:
    """What :func:`lex` found in one file."""

    specifiers: list[Specifier] = field(default_factory=list)
    computed: list[Computed] = field(default_factory=list)
    #: An ``import``/``export`` declaration or ``import.meta`` was seen.
    module: bool = False
    #: ``None``, or why the input is malformed and where (byte offset).
    error: tuple[int, str] | None = None


# -- character classes ---------------------------------------------------------

_IDENT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$\\"
                   + bytes(range(0x80, 0x100)))
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

#: The next byte that can change the lexer's state, or the start of a word
#: that can start a specifier or mark a module.
_NEXT = re.compile(rb"[\"'`/{}()]|(?<![\w$\\\x80-\xff])(?:import|export|new)(?![\w$\\\x80-\xff])")
_STRING_RUN = {ord('"'): re.compile(rb'[^"\\\n\r]*'), ord("'"): re.compile(rb"[^'\\\n\r]*")}
_TEMPLATE_RUN = re.compile(rb"[^`\\$]*")
_REGEX_RUN = re.compile(rb"[^/\\\[\n\r]*")
_CLASS_RUN = re.compile(rb"[^\]\\\n\r]*")
_LINE_RUN = re.compile(rb"[^\n\r\xe2]*")
_SPACE_RUN = re.compile(rb"[ \t\n\r\v\f]*")
_WORD = re.compile(rb"[\w$\\\x80-\xff]+")
_NEW_URL = re.compile(rb"new[ \t\n\r]*URL[ \t\n\r]*\([ \t\n\r]*")
_META_URL = re.compile(rb"[ \t\n\r]*,[ \t\n\r]*import[ \t\n\r]*\.[ \t\n\r]*meta[ \t\n\r]*\."
                       rb"[ \t\n\r]*url[ \t\n\r]*(?:,[ \t\n\r]*)?\)")
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


class _Lexer:
    """One pass over one file; the state of the machine."""

    def __init__(self, data: bytes) -> None:
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
        while k > lo and hi - k <= _MAX_KEYWORD and data[k - 1] in _IDENT:
            k -= 1
        if hi - k > _MAX_KEYWORD or (k > lo and data[k - 1] in _IDENT):
            return None
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
        i = self.line_end(0) if data.startswith(b"#!") else 0
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
            elif name in (b"source", b"defer"):
                s = self.skip_space(word.end())  # type: ignore[union-attr]
                if data.startswith(b"(", s):
                    self.module = True
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


# -- decoding and the public functions -----------------------------------------

_SIMPLE_ESCAPES = {ord("b"): "\b", ord("f"): "\f", ord("n"): "\n", ord("r"): "\r",
                   ord("t"): "\t", ord("v"): "\v"}
_ESCAPE = re.compile(rb"\\(?:u\{([0-9A-Fa-f]+)\}|u([0-9A-Fa-f]{4})|x([0-9A-Fa-f]{2})"
                     rb"|(0(?![0-9]))|(\r\n|[\n\r]|\xe2\x80[\xa8\xa9])|([0-9ux])"
                     rb"|([\x00-\x7f]|[\xc0-\xff][\x80-\xbf]*))", re.DOTALL)


def _unescape(raw: bytes, template: bool) -> str | None:
    """The string value of a specifier's text; ``None`` if it holds an
    escape that is an error in a module (strict code): a legacy octal
    escape, ``\\8``, ``\\9``, or a malformed ``\\x`` / ``\\u``."""
    if template and b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")  # ECMA-262 12.9.6
    if b"\\" not in raw:
        return raw.decode("utf-8", "surrogateescape")
    parts = []
    pos = 0
    for m in _ESCAPE.finditer(raw):
        parts.append(raw[pos:m.start()].decode("utf-8", "surrogateescape"))
        pos = m.end()
        braced, u4, x2, zero, continuation, bad, other = m.groups()
        if braced is not None:
            cp = int(braced[-7:], 16)  # (a long run of hex digits: no int() of it)
            if cp > 0x10FFFF or len(braced.lstrip(b"0")) > 6:
                return None
            parts.append(chr(cp))
        elif u4 is not None or x2 is not None:
            parts.append(chr(int(u4 or x2, 16)))
        elif zero is not None:
            parts.append("\0")
        elif continuation is not None:
            pass
        elif bad is not None:
            return None
        else:
            c = other[0]
            parts.append(_SIMPLE_ESCAPES.get(c) or other.decode("utf-8", "surrogateescape"))
    parts.append(raw[pos:].decode("utf-8", "surrogateescape"))
    # A surrogate pair written as two \\u escapes is one character.
    return _PAIR.sub(_join_pair, "".join(parts))


_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _join_pair(m: re.Match) -> str:
    high, low = m.group()
    return chr(0x10000 + ((ord(high) - 0xD800) << 10) + ord(low) - 0xDC00)


def _line_counter(data: bytes):  # type: ignore[no-untyped-def]
    """``(start, end) -> line breaks in data[start:end]`` (LF, CR, CRLF, LS, PS)."""
    if b"\r" not in data and b"\xe2\x80\xa8" not in data and b"\xe2\x80\xa9" not in data:
        return lambda start, end: data.count(b"\n", start, end)

    def count(start: int, end: int) -> int:
        return (data.count(b"\n", start, end) + data.count(b"\r", start, end)
                - data.count(b"\r\n", start, end) + data.count(b"\xe2\x80\xa8", start, end)
                + data.count(b"\xe2\x80\xa9", start, end))
    return count


def lex(data: bytes) -> Lexed:
    """The specifiers of ``data`` (a JavaScript file's bytes), in order, the
    dynamic imports it computes, whether it is a module, and whether it is
    malformed. Never raises on any bytes; linear time."""
    data = bytes(data)
    lexer = _Lexer(data)
    lexer.run()
    count = _line_counter(data)
    result = Lexed(module=lexer.module, error=lexer.error)
    line, pos = 1, 0
    events = sorted([(start, kind, (start, end, context)) for start, end, kind, context
                     in lexer.found] + [(start, "computed", None) for start in lexer.computed
                                        if start is not None])
    for start, kind, rest in events:
        line += count(pos, start)
        pos = start
        if rest is None:
            result.computed.append(Computed(start, line))
        else:
            _, end, context = rest
            value = _unescape(data[start:end], context == "`")
            result.specifiers.append(Specifier(start, end, value, line, kind, context))
    return result


def specifiers(data: bytes) -> list[Specifier]:
    """The specifiers of ``data``: :func:`lex` without the rest."""
    return lex(data).specifiers


def is_module(data: bytes) -> bool:
    """Whether ``data`` (a ``.js`` file) has module syntax: an ``import`` or
    ``export`` declaration, or ``import.meta``. A ``.mjs`` file is a module
    whatever this says: that rule is the caller's."""
    if b"import" not in data and b"export" not in data:
        return False  # a memchr-fast search; most classic scripts stop here
    return lex(data).module
