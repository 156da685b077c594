"""JavaScript modules in the index: which scripts are modules, and the
specifiers of one as reference records' fields.

Which files are modules (the ``modules=`` option of Assets): by default
(``"auto"``) a ``.mjs`` file always, a ``.cjs`` file never, and a ``.js``
file when its top level has module syntax (``import``/``export``
declarations or ``import.meta``, found by bustware.jslexer); a glob or a
list of globs (``"js/**/*.js"``) says exactly which scripts are modules;
``False`` treats every script as a classic one. A classic script is served
byte-identical (only its trailing source map comment is a reference).

The lexer (bustware.jslexer) is imported on first use here: compiling it
costs about 7 ms, which neither ``import bustware`` nor a start from a
manifest needs.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["AUTO", "ModuleRule", "is_bare", "module_specifiers"]

AUTO = "auto"

#: What bustware.references.find_references is asked for: a classic script,
#: a module, or a ``.js`` file that is a module if the lexer says so.
SCRIPT, MODULE, MAYBE = "js", "module", "js?"

#: Kinds of specifier that name a module to load; ``new URL("x",
#: import.meta.url)`` ("url") is a relative URL like any other.
MODULE_KINDS = frozenset({"import", "dynamic", "resolve"})


class ModuleRule:
    """Which scripts of an index are modules (see the module docstring)."""

    def __init__(self, spec: bool | str | Iterable[str] | None = AUTO) -> None:
        if spec is None or spec is True or spec == AUTO:
            self.globs: tuple[str, ...] | None = None
            self.off = False
        elif spec is False:
            self.globs, self.off = (), True
        else:
            globs = (spec,) if isinstance(spec, str) else spec
            try:
                globs = tuple(globs)
            except TypeError:
                globs = (spec,)  # reported below
            bad = [g for g in globs if not isinstance(g, str) or not g]
            if bad:
                raise ValueError(
                    f"bustware: modules={spec!r}: {bad[0]!r} is not a glob. Pass "
                    "modules='auto' (the default: .mjs files, and .js files with import/"
                    "export), a glob or list of globs of logical paths such as "
                    "['js/**/*.js'], or modules=False for classic scripts only")
            self.globs, self.off = globs, False
            import fnmatch  # here: `import bustware` needs no glob
            import re

            self._match = re.compile("|".join(fnmatch.translate(g) for g in globs)).match

    def kind(self, path: str) -> str:
        """SCRIPT, MODULE or MAYBE for the logical path of a script."""
        if self.off:
            return SCRIPT
        if self.globs is not None:
            return MODULE if self._match(path) else SCRIPT
        low = path[path.rfind("."):].lower()
        return MODULE if low == ".mjs" else MAYBE if low == ".js" else SCRIPT

    def __str__(self) -> str:  # in the digest cache's salt: another rule, other links
        return "off" if self.off else AUTO if self.globs is None else "\0".join(self.globs)


def is_bare(value: str) -> bool:
    """A bare specifier (``lit``, ``@lit/reactive-element``): left for the
    import map. Only ``./``, ``../`` and ``/`` specifiers name files here
    (URLs with a scheme are no file of ours either way)."""
    return not value.startswith(("./", "../", "/"))


def module_specifiers(data: bytes, maybe: bool
                      ) -> tuple[list[tuple[int, int, str, int, str, str]] | None,
                                 list[tuple[int, str]]]:
    """The specifiers of a module as ``(start, end, value, line, kind,
    context)`` (byte offsets of the text inside the quotes), and the
    problems met (line, message): each ``import()`` whose argument is
    computed, and malformed input. ``maybe``: a ``.js`` file, which is a
    module only if it has module syntax; ``None`` if it has not."""
    if maybe and b"import" not in data and b"export" not in data:
        return None, []  # a memchr-fast search; most classic scripts stop here
    from .jslexer import lex

    lexed = lex(data)
    if maybe and not lexed.module:
        return None, []
    found = [(s.start, s.end, s.value, s.line, s.kind, s.context)
             for s in lexed.specifiers if s.value is not None]
    problems = [(s.line, f"specifier {bytes(data[s.start:s.end])!r} holds an invalid escape; "
                         "left as written") for s in lexed.specifiers if s.value is None]
    problems += [(c.line, "import() with a computed argument: its target cannot be known "
                          "here and keeps the URL the code computes; use a string literal, "
                          "or a bare specifier mapped by assets.importmap()")
                 for c in lexed.computed]
    if lexed.error is not None:
        offset, message = lexed.error
        line = data.count(b"\n", 0, offset) + 1
        problems.append((line, f"{message}; the specifiers after it are left as written"))
    return found, problems
