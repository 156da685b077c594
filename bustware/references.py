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

Where each part is. This module holds what every language shares: the
records (Reference, Link, Links), finding a file's links (each language's
finder, then resolving its URLs against the logical paths of the index),
rewriting and restoring bytes, and the reference graph's components (the
cycles the linker gives one version). Each language finds its references
in a module of its own, imported on first use: stylesheets in
bustware.cssrefs (with the tokenizer of bustware.csstokens), scripts in
bustware.scriptrefs; both read source map comments with
bustware.sourcemaps and decode with bustware.refdecode. The Merkle
versions over the graph are bustware.linker's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote, unquote

from .jsmodules import MAYBE, MODULE, MODULE_KINDS, ModuleRule, is_bare
from .refdecode import RAW_UTF8, UNICODE_BOMS, Undecodable, decode
from .sourcemaps import Found

if TYPE_CHECKING:
    from .records import Asset

__all__ = [
    "Link",
    "Links",
    "Reference",
    "broken_references",
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
    #: ``"url"``, ``"import"``, ``"image-set"`` or ``"sourcemap"``; in a
    #: JavaScript module also ``"dynamic"`` and ``"resolve"`` (bustware.jslexer).
    kind: str
    #: How the URL text is delimited, for escaping a replacement: ``'"'`` or
    #: ``"'"`` (a string), ``"`"`` (a template literal), ``"("`` (an unquoted
    #: ``url(``), ``""`` (a comment).
    context: str

    def __reduce__(self) -> tuple:
        # Frozen with __slots__: pickle and copy would set the slots one by
        # one, which a frozen instance refuses.
        return Reference, (self.start, self.end, self.url, self.line, self.kind, self.context)


def _count_breaks(s: str, start: int, end: int) -> int:
    """Line breaks in ``s[start:end]``: LF, CR, CRLF (one), FF, LS, PS."""
    return (s.count("\n", start, end) + s.count("\r", start, end) - s.count("\r\n", start, end)
            + s.count("\f", start, end) + s.count("\u2028", start, end)
            + s.count("\u2029", start, end))


def find_references(data: bytes, kind: str) -> tuple[list[Reference], list[tuple[int, str]]]:
    """Every reference in ``data`` (a ``"css"`` or ``"js"`` file, a
    ``"module"``, or a ``"js?"`` one: a module if it has module syntax) and
    the problems met (line, message). Never raises on any input."""
    if kind in (MODULE, MAYBE):
        from .jsmodules import module_specifiers

        specs, problems = module_specifiers(data, kind == MAYBE)
        if specs is None:
            return find_references(data, "js")  # a classic script
        # The lexer's offsets are bytes already; the source map comment
        # is the classic finder's.
        refs, more = find_references(data, "js")
        refs += [Reference(*s) for s in specs]
        refs.sort(key=lambda r: r.start)
        return refs, problems + more
    if kind == "js" and b"sourceMappingURL" not in data and not data.startswith(UNICODE_BOMS):
        # A script's only reference is a source map comment: without one,
        # there is nothing to decode (a memchr-fast search, where decoding
        # costs as much as reading the file).
        return [], []
    try:
        text, encoding = decode(data, kind)
    except Undecodable as exc:
        return [], [(1, str(exc))]
    # Each language's finder is imported on first use: compiling the CSS
    # tokenizer's expressions takes about 30 ms, which neither `import
    # bustware` nor a start from a manifest needs.
    found: list[Found]
    if kind == "css":
        from .cssrefs import css_references

        found = css_references(text, raw=encoding == RAW_UTF8)
    else:
        from .scriptrefs import script_references

        found = script_references(text)
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
    refs: list = found  # each Found is replaced by its Reference, so both never pile up
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
    if _NOTHING_TO_ESCAPE.fullmatch(url) and (context != "`" or (
            "`" not in url and "${" not in url)):
        return url  # most URLs; quote() alone costs several times this check
    # ASCII only from here on; a byte that was not UTF-8 in the stylesheet
    # (read as a lone surrogate) is percent-encoded as itself.
    url = quote(url, safe=_URL_SAFE, errors="surrogateescape")
    if context in ('"', "'", "`"):
        url = url.replace("\\", "\\\\").replace(context, "\\" + context)
        return url.replace("${", "\\${") if context == "`" else url
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


def find_links(data: bytes, path: str, prefix: str, modules: ModuleRule | None = None
               ) -> Links:
    """The references of the file at logical ``path`` that point into
    ``prefix``. Empty for a file whose kind is not searched. ``modules``
    says which scripts are JavaScript modules (None: none is)."""
    kind = kind_of(path)
    if kind is None:
        return Links()
    if kind == "js" and modules is not None:
        kind = modules.kind(path)
    module = kind in (MODULE, MAYBE)  # (a stylesheet's @import is kind "import" too)
    refs, problems = find_references(data, kind)
    result = Links(problems=list(problems))
    seen: dict[str, tuple[str, str] | None] = {}  # a stylesheet repeats its URLs
    directory: list[str] = []

    def directory_url() -> str:
        if not directory:
            directory.append(_directory_url(path, prefix))
        return directory[0]

    for ref in refs:
        if module and ref.kind in MODULE_KINDS and is_bare(ref.url):
            continue  # a bare specifier ("lit"): the import map's
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


def broken_references(assets: Iterable[Asset], prefix: str, modules: ModuleRule
                      ) -> list[tuple[str, int, str, str]]:
    """``(path, line, url as written, logical path named)`` for every
    reference of ``assets`` to a file not in the index, sorted
    (``Assets.broken_references``)."""
    out = []
    for asset in assets:
        if None not in asset.links.values():
            continue
        raw = restore(asset.served_bytes(), asset.splices)
        for link in find_links(raw, asset.path, prefix, modules).links:
            if asset.links.get(link.target, "") is None:
                out.append((asset.path, link.reference.line, link.reference.url, link.target))
    return sorted(out)


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
