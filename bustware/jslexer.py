"""The module specifiers of a JavaScript file, found by a lexer.

A module names the modules it loads in ``import ... from "x"``, ``import
"x"``, ``export ... from "x"``, ``import("x")``, and the files it fetches
relative to itself in ``new URL("x", import.meta.url)`` and
``import.meta.resolve("x")``. To give those their versioned URLs, every
such string must be found, and nothing else: the same text inside a
comment, a string, a template literal, a regular expression or a hashbang
line is not a specifier.

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
slower). Every regular expression here is a character class, a literal or
a fixed sequence, repeated at most once and without nested repetition, so
nothing backtracks; every byte is looked at a bounded number of times, and
the cost is linear in the size of the input, whatever it holds (checked by
benchmarks/jslexer_bench.py at n and 4n bytes). The machine is
:class:`bustware.jsmachine.Machine`; this module decodes what it finds.

Input and offsets. The lexer reads bytes (a file as served) and reports
byte offsets, so that splicing a new URL in leaves every other byte as it
was. A byte order mark at the start is skipped, as browsers decode it
away. Bytes >= 0x80 count as identifier characters, except the UTF-8 forms
of the Unicode spaces and line terminators; bytes that are not UTF-8 do no
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
``)``, ``;``, ``{``, ``}``, ``=>``, the start, an identifier, ``do``,
``else`` or a keyword not listed above, and an expression (object literal)
otherwise. Known limits, none met in the 1,763 files of the differential
test (tests/test_jslexer.py): ``x = function () {} / 1`` (a
function expression's body read as a block), ``a++ /re/`` (nonsense), a
label or ``case x:`` before a block that is followed by a regular
expression, ``for await (...) /re/``, a variable named ``of`` followed by
a division, a keyword written with escapes (``\\u0072eturn``), comments
between ``new``, ``URL`` and ``(`` (or in ``import.meta.url``), and
HTML-like comments (``<!--``), which modules do not have (ECMA-262 B.1.1
applies to scripts only).

What counts (see :class:`Specifier`). A dynamic ``import()`` whose whole
first argument is a string literal, or a template literal without
``${...}`` (a constant, resolved as the same string), is a specifier; any
other argument is listed in :attr:`Lexed.computed` to report, and left
alone. ``import.source("x")`` and ``import.defer("x")`` are dynamic imports
too (and, like ``import()``, no module syntax). Escape sequences in a
specifier are decoded into its value (as a browser reads it); the
replacement covers the whole text between the quotes, so they need no
special care. A specifier with an invalid escape (which a browser would
refuse to parse) has the value ``None``.

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

from .jsmachine import Machine

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
    #: (``import("x")``, ``import.source``/``import.defer``), ``"url"``
    #: (``new URL("x", import.meta.url)``) or ``"resolve"``
    #: (``import.meta.resolve("x")``).
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
    lexer = Machine(data)
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
    machine = Machine(bytes(data), until_module=True)
    machine.run()
    return machine.module
