"""bustware.jslexer: the specifiers of JavaScript modules.

What a user relies on: every specifier a browser would load is found, at
the exact byte range of its text, and nothing else is (the same text in a
comment, a string, a template or a regular expression); malformed or
hostile input never raises and costs linear time; and, on real packages
from npm, the byte ranges agree with es-module-lexer's (the lexer that
es-module-shims and Vite use), each deliberate difference listed in
test_agrees_with_es_module_lexer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bustware.jslexer import is_module, lex, specifiers


def found(source: str | bytes) -> list[tuple[str, str]]:
    data = source.encode() if isinstance(source, str) else source
    return [(s.kind, data[s.start:s.end].decode()) for s in specifiers(data)]


@pytest.mark.parametrize("source, expected", [
    # Every form of static import and re-export.
    ('import a from "./a.js"', [("import", "./a.js")]),
    ("import './side.js';", [("import", "./side.js")]),
    ('import {a, b as c} from "./a.js"', [("import", "./a.js")]),
    ('import * as ns from "./a.js"', [("import", "./a.js")]),
    ('import d, {a} from "./a.js"', [("import", "./a.js")]),
    ('import d, * as ns from "./a.js"', [("import", "./a.js")]),
    ('import from from "./a.js"', [("import", "./a.js")]),
    ('import {"a-b" as c} from "./a.js"', [("import", "./a.js")]),
    ('import/*x*/{a}/*y*/from/*z*/"./a.js"', [("import", "./a.js")]),
    ('import defer * as ns from "./a.js"', [("import", "./a.js")]),
    ('import source m from "./a.wasm"', [("import", "./a.wasm")]),
    ('export * from "./a.js"', [("import", "./a.js")]),
    ('export * as ns from "./a.js"', [("import", "./a.js")]),
    ('export * as "n s" from "./a.js"', [("import", "./a.js")]),
    ('export {a, "b" as c} from "./a.js"', [("import", "./a.js")]),
    # Import attributes, static and dynamic.
    ('import j from "./d.json" with { type: "json" }; import "./s.css" assert {type: "css"}',
     [("import", "./d.json"), ("import", "./s.css")]),
    ('import("./d.json", { with: { type: "json" } })', [("dynamic", "./d.json")]),
    # Dynamic imports: a constant argument is a specifier.
    ('import("./a.js")', [("dynamic", "./a.js")]),
    ("await import ( './a.js' , )", [("dynamic", "./a.js")]),
    ("import(`./a.js`)", [("dynamic", "./a.js")]),
    ('import.source("./a.wasm"); import.defer("./b.js")',
     [("dynamic", "./a.wasm"), ("dynamic", "./b.js")]),
    ("import(`./${x}.js`); import(x); import('./a' + b)", []),
    # new URL(..., import.meta.url)
    ('new URL("./img.png", import.meta.url)', [("url", "./img.png")]),
    ("new URL(`./w.js`,\n  import.meta.url,\n)", [("url", "./w.js")]),
    ('new URL("./img.png", location.href); new URL("./img.png")', []),
    ('import.meta.resolve("./a.js"); import.meta.resolve(x)', [("resolve", "./a.js")]),
    # Never a specifier: comments, strings, templates, regular expressions.
    ('// import "./no.js"\n/* import "./no.js" */ import "./yes.js"', [("import", "./yes.js")]),
    ('"import \'./no.js\'"; \'import "./no.js"\'', []),
    ('`import "./no.js" ${`import("./no.js")`}`', []),
    ('`${ {a: `${"}"}`}.a }` + `import("./no.js")`; import "./yes.js"',
     [("import", "./yes.js")]),
    ('x = /import "no.js"/g; import "./yes.js"', [("import", "./yes.js")]),
    ('x = /[/"]/; import "./yes.js"', [("import", "./yes.js")]),
    ('#!/usr/bin/env node import "./no.js"\nimport "./yes.js"', [("import", "./yes.js")]),
    ('\ufeff#! import "./no.js"\u2028import "./yes.js"', [("import", "./yes.js")]),
    # Regular expression or division: the string after each "/" decides.
    ('a = b / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('a = (b) / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('a = c[0] / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('a = {}.x / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('a = i++ / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('a = o.return / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('a = `t` / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('function f() { return /"/ } import "./yes.js"', [("import", "./yes.js")]),
    ('if (a) /"/.test(b); import "./yes.js"', [("import", "./yes.js")]),
    ('x = typeof /"/; import "./yes.js"', [("import", "./yes.js")]),
    ('{}\n/"/.test(a); import "./yes.js"', [("import", "./yes.js")]),
    ('f(() => {} /*c*/ ); g(a => /"/); import "./yes.js"', [("import", "./yes.js")]),
    ('x = a /* c */ / b / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('export default /"/; import "./yes.js"', [("import", "./yes.js")]),
    # Unicode spaces and a byte order mark are spaces; other non-ASCII
    # characters are parts of words.
    ('\ufeffimport "./a.js";\u00a0import "./b.js";\u3000/"/;import\u2028"./c.js"',
     [("import", "./a.js"), ("import", "./b.js"), ("import", "./c.js")]),
    ('x = éimport("./no.js") + importé("./no.js"); return\u00a0/"/', []),
    ('x = a ? /"/ : /\'/; y = !/"/.test(z); switch (q) { case 1: /"/.test(w) } import "./yes.js"',
     [("import", "./yes.js")]),
    ('while (x) /"/.test(y); function f() {} /"/.test(x); import "./yes.js"',
     [("import", "./yes.js")]),
    ('a = /=/; b /= 2 / "x"; c = x.if / 2 / "x"; import "./yes.js"', [("import", "./yes.js")]),
    ('x = `${ /`/.source }${ `${ {a: "}"}.a }` }`; import "./yes.js"', [("import", "./yes.js")]),
    ('x = {a: 1} / 2 / "x"; async () => { await import("./a.js") }',
     [("dynamic", "./a.js")]),
    ('import(/* chunk: "x" */ "./a.js").then(f); import(\n"./b.js"\n)',
     [("dynamic", "./a.js"), ("dynamic", "./b.js")]),
    ('import {default as x} from "./a.js"; export { default } from "./b.js"',
     [("import", "./a.js"), ("import", "./b.js")]),
    ('import "./a\\"b.js"/*c*/; export { default as y, z } from \'./c.js\'',
     [("import", './a\\"b.js'), ("import", "./c.js")]),
    # `import` and `export` that are not keywords.
    ('a.import("./no.js"); b?.import("./no.js"); ({import: "./no.js", export: 1})', []),
    ('class A { import(x) { return x } }', []),
    ("x = {...import.meta}", []),
])
def test_specifiers(source: str, expected: list) -> None:
    assert found(source) == expected


@pytest.mark.parametrize("source, module", [
    ("import a from './a.js'", True),
    ("import './a.js'", True),
    ("export default 1", True),
    ("export {}", True),
    ("export { a as b }; foo()", True),
    ("console.log(import.meta.url)", True),
    ("import('./a.js')", False),  # classic scripts may import() too
    ("import.source('./a.wasm'); import.defer('./a.js')", False),
    ("import.meta.resolve('./a.js')", True),
    ("var x = {import: 1, export: 2}; x.import(); x.export", False),
    ("// import x from './a.js'\n'export default 1'", False),
    ("await fetch(x)", False),  # top-level await: a parser's job (documented)
    ("", False),
])
def test_is_module(source: str, module: bool) -> None:
    assert is_module(source.encode()) is module
    assert lex(source.encode()).module is module


def test_offsets_are_exact_utf8_byte_offsets() -> None:
    data = '/* é ☃ 😀 */ const s = "😀"; import x from "./é/☃.js"\r\nimport("./b.js")'.encode()
    specs = specifiers(data)
    assert [data[s.start:s.end] for s in specs] == ["./é/☃.js".encode(), b"./b.js"]
    assert [(s.value, s.line, s.context) for s in specs] == [("./é/☃.js", 1, '"'),
                                                            ("./b.js", 2, '"')]


def test_lines_count_every_javascript_line_terminator() -> None:
    data = 'a\rb\r\nc\u2028d\u2029e\nimport "./x.js"'.encode()
    assert specifiers(data)[0].line == 6


def test_escapes_are_decoded_into_the_value() -> None:
    data = rb'import "./\x61\u0062\u{63}\ud83d\ude00.js"; import "./\8.js"'
    first, second = specifiers(data)
    assert first.value == "./abc\U0001f600.js"
    assert data[first.start:first.end] == rb"./\x61\u0062\u{63}\ud83d\ude00.js"
    assert second.value is None  # a syntax error in a module: left alone


def test_computed_dynamic_imports_are_reported() -> None:
    data = b"import('./a.js')\nimport(`./l/${x}.js`)\nimport(name)\nclass A { import(x) {} }"
    result = lex(data)
    assert [(c.line, data[c.start:c.start + 6]) for c in result.computed] == [
        (2, b"import"), (3, b"import")]


@pytest.mark.parametrize("source, error", [
    ('import "./a.js"; "unterminated', "unterminated string"),
    ('import "./a.js"; /* unterminated', "unterminated comment"),
    ('import "./a.js"; `unterminated ${ `', "unterminated template literal"),
    ('import "./a.js"; x = /unterminated\n', "unterminated regular expression"),
])
def test_malformed_input_keeps_what_came_before(source: str, error: str) -> None:
    result = lex(source.encode())
    assert result.error is not None and result.error[1] == error
    assert [s.value for s in result.specifiers] == ["./a.js"]


def test_a_string_cut_by_a_line_break_does_not_hide_the_next_line() -> None:
    result = lex(b'x = "cut\nimport "./a.js"')
    assert result.error is not None
    assert [s.value for s in result.specifiers] == ["./a.js"]


@pytest.mark.parametrize("unit", [
    b"/", b"${", b"`${", b"(", b"{", b")", b"}", b"'", b"\\", b"import {a ", b"import a ",
    b"import(", b"/*", b"*/", b"[/", b"new URL(", b"export * as ", b" ", b"\xe2\x80\xa8",
    b"a/b/", b"return /", b"import", b"\\u{" + b"0" * 100,
])
def test_hostile_input_completes(unit: bytes) -> None:
    # Linear time is checked by the benchmark (n against 4n); here, that
    # 1 MiB of each pathological pattern completes and yields ranges inside.
    data = unit * ((1 << 20) // len(unit))
    result = lex(data)
    assert all(0 <= s.start <= s.end <= len(data) for s in result.specifiers)


JS_ALPHABET = st.sampled_from([
    "import", "export", "from", "new", "URL", "import.meta.url", "(", ")", "{", "}", "[",
    "]", "/", "*", "`", "${", '"', "'", "\\", "\n", " ", ",", ";", "=>", "x", "'./a.js'",
    '"./b.js"', "return", "if", "++", ".", "#!", "é", "\u2028", "as", "*/", "/*", "//",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(JS_ALPHABET, max_size=40))
def test_any_input_gives_ranges_inside_and_round_trips(parts: list[str]) -> None:
    data = "".join(parts).encode()
    result = lex(data)
    assert isinstance(result.module, bool)
    previous = 0
    for s in result.specifiers:
        assert previous <= s.start <= s.end <= len(data)
        previous = s.end
    assert splice(data, {s: data[s.start:s.end] for s in result.specifiers}) == data


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_never_raise(data: bytes) -> None:
    lex(data)


def splice(data: bytes, new: dict) -> bytes:
    out, pos = [], 0
    for spec, text in sorted(new.items(), key=lambda item: item[0].start):
        out += [data[pos:spec.start], text]
        pos = spec.end
    return b"".join([*out, data[pos:]])


def test_replacing_specifiers_changes_only_their_text() -> None:
    data = b'// import "./c.js"\nimport a from "./a.js"; const s = "./a.js"; import("./b.js")'
    specs = specifiers(data)
    new = splice(data, {s: b"/static/" + s.value.encode()[2:] for s in specs})  # type: ignore
    assert new == (b'// import "./c.js"\nimport a from "/static/a.js"; const s = "./a.js"; '
                   b'import("/static/b.js")')
    assert splice(data, {s: data[s.start:s.end] for s in specs}) == data


# -- differential test against es-module-lexer --------------------------------

NPM_DIR = Path(__file__).parent / "npm"
NPM_INSTALL = "npm ci --no-audit --no-fund --prefix tests/npm"


@pytest.fixture(scope="session")
def npm_modules() -> Path:
    """tests/npm, with the packages of its lock file installed (by `.ci/run`,
    or here, by the same command, git-ignored)."""
    if not (NPM_DIR / "node_modules" / ".package-lock.json").exists():
        reason = None
        if shutil.which("node") is None or shutil.which("npm") is None:
            reason = "node and npm are needed: apt-get install -y nodejs npm"
        else:
            try:
                subprocess.run(NPM_INSTALL.split(), cwd=NPM_DIR.parent.parent, check=True,
                               capture_output=True, timeout=100)
            except (subprocess.SubprocessError, OSError) as exc:
                said = (getattr(exc, "stderr", None) or b"").decode(errors="replace").strip()
                last = f": {said.splitlines()[-1]}" if said else ""
                reason = f"npm install failed ({exc}{last}); run: {NPM_INSTALL}"
        if reason is not None:
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    return NPM_DIR


#: Packages whose every .js/.mjs file is compared: lit and its three
#: packages, preact with htm and @preact/signals-core, d3 (30 packages of
#: small modules) and three (one 1.3 MB module and ~900 example modules).
PACKAGES = ["lit", "lit-html", "lit-element", "@lit/reactive-element", "preact", "htm",
            "@preact/signals-core", "d3", "d3-*", "three"]


def module_files(root: Path) -> list[Path]:
    files: set[Path] = set()
    for pattern in PACKAGES:
        for package in (root / "node_modules").glob(pattern):
            files.update(p for p in package.rglob("*") if p.suffix in (".js", ".mjs")
                         and p.is_file() and "node_modules" not in p.relative_to(package).parts)
    return sorted(files)


def es_module_lexer(root: Path, files: list[Path]) -> list[dict]:
    out = []
    for k in range(0, len(files), 300):
        run = subprocess.run(["node", str(root / "eml.mjs"), *map(str, files[k:k + 300])],
                             cwd=root, capture_output=True, text=True, check=True, timeout=100)
        out += [json.loads(line) for line in run.stdout.splitlines()]
    return out


def test_agrees_with_es_module_lexer(npm_modules: Path) -> None:
    """Deliberate differences, all left out of the comparison:

    - ``new URL("x", import.meta.url)`` and ``import.meta.resolve("x")``:
      es-module-lexer does not report them (it reports ``import.meta``
      only); we do (kinds ``"url"`` and ``"resolve"``).
    - ``import(`./l/${x}.js`)``: es-module-lexer reports a glob; we report
      a computed import (the URL of each file matching it is not known to
      the importer). Its offsets include the quotes of a dynamic import's
      string; ours never do (hence the +1/-1).
    - A file that starts with a byte order mark (three has one:
      src/renderers/webgl/WebGLBindingStates.js): browsers decode it away,
      and so does bustware.jslexer; es-module-lexer, given the BOM, misses
      the ``import`` right after it, so tests/npm/eml.mjs gives it the text
      without the BOM (and adds 3 to its offsets).
    - TypeScript (``import type``, ``import x = require()``): not lexed.
    """
    files = module_files(npm_modules)
    assert len(files) > 1000
    mismatches = []
    compared = 0
    for record in es_module_lexer(npm_modules, files):
        data = Path(record["file"]).read_bytes()
        ours = lex(data)
        assert "error" not in record, record
        theirs = []
        for kind, start, end, value, glob, _phase in record["imports"]:
            if kind == "dynamic":
                if value is None or glob:
                    continue
                start, end = start + 1, end - 1
            theirs.append((start, end, value))
        mine = [(s.start, s.end, s.value) for s in ours.specifiers
                if s.kind not in ("url", "resolve")]
        assert is_module(data) is ours.module  # the early stop changes nothing
        compared += len(theirs)
        if mine != theirs or ours.module != record["module"]:
            mismatches.append((record["file"], mine, theirs, ours.module, record["module"]))
    assert compared > 4000
    assert mismatches == []


#: Hand-written cases of test_specifiers where es-module-lexer 3.0.5 differs
#: from the language (and from browsers), by the text they start with.
ES_MODULE_LEXER_WRONG = {
    # It reads the hashbang line (ECMA-262 12.5, a comment) as code.
    "#!/usr/bin/env node": "finds ./no.js in the hashbang comment",
    "\ufeff#!": "finds ./no.js in the hashbang comment",
    # It does not take U+00A0 / U+3000 before "/" as spaces (ECMA-262 12.2).
    "\ufeffimport": "parse error at the regular expression after U+3000",
    "x = éimport": "parse error at the regular expression after U+00A0",
}


def test_agrees_with_es_module_lexer_on_the_hard_cases(npm_modules: Path,
                                                      tmp_path: Path) -> None:
    """The hand-written cases above (regular expressions, templates,
    comments, every import form), through es-module-lexer too."""
    sources = [args[0] for mark in test_specifiers.pytestmark  # type: ignore[attr-defined]
               if mark.name == "parametrize" for args in mark.args[1]]
    files = []
    for k, source in enumerate(sources):
        files.append(tmp_path / f"case{k}.js")
        files[-1].write_text(source, encoding="utf-8")
    wrong = []
    for source, record in zip(sources, es_module_lexer(npm_modules, files)):
        ours = lex(source.encode())
        mine = [(s.start, s.end, s.value) for s in ours.specifiers
                if s.kind not in ("url", "resolve")]
        theirs = None
        if "error" not in record:
            theirs = [(start + 1, end - 1, value) if kind == "dynamic" else (start, end, value)
                      for kind, start, end, value, glob, _ in record["imports"]
                      if not (kind == "dynamic" and (value is None or glob))]
        if theirs != mine or record.get("module") != ours.module:
            wrong.append(next((k for k in ES_MODULE_LEXER_WRONG if source.startswith(k)),
                              source))
    assert sorted(wrong) == sorted(ES_MODULE_LEXER_WRONG)
