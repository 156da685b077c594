"""A page built from real npm packages as native ES modules, no bundler:
the static tree, its import map pins, the page, and its import graph
computed independently of bustware (by es-module-lexer, in node).

The tree (``static/``): ``vendor/<package>/...`` copied from
``tests/npm/node_modules`` (lit with lit-html, lit-element and
@lit/reactive-element; preact with its hooks; htm; @preact/signals-core),
and the app's own modules under ``app/``::

    app/main.js ─┬─ app/lit-view.js ──── lit, lit/directives/class-map.js, app/shared/label.js
                 ├─ app/preact-view.js ─ preact, preact/hooks, htm, @preact/signals-core,
                 │                       app/shared/label.js
                 ├─ app/shared/theme.js
                 └─ import("./lazy.js")  (dynamic)

``app/shared/label.js`` is the leaf a test changes. The page renders
something from each library into the light DOM (``--dump-dom`` shows no
shadow roots) and writes ``ok`` into ``#result`` when all of it ran.

Used by tests/test_browser_modules.py and benchmarks/warm_reload.py.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

NPM_DIR = Path(__file__).resolve().parent / "npm"
NPM_INSTALL = "npm ci --no-audit --no-fund --prefix tests/npm"

#: The packages copied into vendor/, and what of them: their ES module
#: builds, not the development/ and node/ variants nor the TypeScript.
PACKAGES = ("lit", "lit-html", "lit-element", "@lit/reactive-element", "preact", "htm",
            "@preact/signals-core")
SKIP_DIRS = {"development", "node", "src", "test-utils", "node_modules"}
COPIED = (".js", ".mjs", ".map")
MODULES = (".js", ".mjs")

#: Bare specifier -> logical path; a key ending in "/" pins a folder.
PINS = {
    "app": "app/main.js",
    "lit": "vendor/lit/index.js",
    "lit/": "vendor/lit/",
    "lit-html": "vendor/lit-html/lit-html.js",
    "lit-html/": "vendor/lit-html/",
    "lit-element/": "vendor/lit-element/",
    "@lit/reactive-element": "vendor/@lit/reactive-element/reactive-element.js",
    "@lit/reactive-element/": "vendor/@lit/reactive-element/",
    "preact": "vendor/preact/dist/preact.mjs",
    "preact/hooks": "vendor/preact/hooks/dist/hooks.mjs",
    "htm": "vendor/htm/dist/htm.mjs",
    "@preact/signals-core": "vendor/@preact/signals-core/dist/signals-core.mjs",
}
ENTRY = "app/main.js"
LEAF = "app/shared/label.js"


def label_js(release: str) -> str:
    return ('const RELEASE = "' + release + '";\n'
            "export const label = (what) => `${what} from release ${RELEASE}`;\n")


APP = {
    "app/main.js": """\
import { renderLit } from "./lit-view.js";
import { renderPreact } from "./preact-view.js";
import { theme } from "./shared/theme.js";

const $ = (id) => document.getElementById(id);
try {
  await renderLit($("lit"));
  renderPreact($("preact"), $("signals"));
  const { lazyWord } = await import("./lazy.js");
  $("lazy").textContent = lazyWord;
  $("result").textContent = `ok ${theme}`;
} catch (e) {
  $("result").textContent = `error ${e}`;
}
""",
    "app/lit-view.js": """\
import { LitElement, html, css } from "lit";
import { classMap } from "lit/directives/class-map.js";
import { label } from "./shared/label.js";

class BwGreeting extends LitElement {
  static properties = { name: {} };
  static styles = css`p { color: green; }`;
  // Light DOM: a dumped DOM has no shadow roots.
  createRenderRoot() { return this; }
  render() {
    return html`<p class=${classMap({ lit: true })}>${label("lit")} ${this.name}</p>`;
  }
}
customElements.define("bw-greeting", BwGreeting);

export async function renderLit(where) {
  const element = document.createElement("bw-greeting");
  element.name = "element";
  where.append(element);
  await element.updateComplete;
}
""",
    "app/preact-view.js": """\
import { h, render } from "preact";
import { useState } from "preact/hooks";
import htm from "htm";
import { signal, computed, effect } from "@preact/signals-core";
import { label } from "./shared/label.js";

const html = htm.bind(h);
const count = signal(1);
const double = computed(() => count.value * 2);

function View() {
  const [word] = useState("hooks");
  return html`<p class="preact">${label("preact")} ${word}</p>`;
}

export function renderPreact(where, signalsWhere) {
  render(html`<${View} />`, where);
  effect(() => { signalsWhere.textContent = `${label("signals")} ${double.value}`; });
  count.value = 21;
}
""",
    "app/shared/theme.js": 'export const theme = "plain";\n',
    "app/lazy.js": 'export const lazyWord = "lazy";\n',
    LEAF: label_js("r1"),
}


def expected_text(release: str) -> dict[str, str]:
    """The text each element of the page holds once everything ran."""
    return {"lit": f"lit from release {release} element",
            "preact": f"preact from release {release} hooks",
            "signals": f"signals from release {release} 42",
            "lazy": "lazy", "result": "ok plain"}


def npm_installed() -> Path | str:
    """tests/npm with its packages installed (by `.ci/run`, else here by
    the same command), or the reason it cannot be."""
    if (NPM_DIR / "node_modules" / ".package-lock.json").exists():
        return NPM_DIR
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are needed: apt-get install -y nodejs npm"
    try:
        subprocess.run(NPM_INSTALL.split(), cwd=NPM_DIR.parent.parent, check=True,
                       capture_output=True, timeout=100)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"npm install failed ({exc}); run: {NPM_INSTALL}"
    return NPM_DIR


def build_site(static: Path, npm: Path = NPM_DIR) -> Path:
    """Write the tree under ``static`` and return it."""
    for package in PACKAGES:
        source = npm / "node_modules" / package
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in filenames:
                if name.endswith(COPIED):
                    src = Path(dirpath) / name
                    dest = static / "vendor" / package / src.relative_to(source)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)
    for rel, text in APP.items():
        write(static, rel, text)
    return static


def write(static: Path, rel: str, text: str) -> None:
    path = static / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def modules(static: Path) -> list[str]:
    """Every module file of the tree, as logical paths."""
    return sorted(p.relative_to(static).as_posix() for p in static.rglob("*")
                  if p.is_file() and p.suffix in MODULES)


# -- the import graph, independently of bustware -----------------------------


def resolve(specifier: str, importer: str) -> str | None:
    """The logical path a specifier names, as a browser resolves it with
    the page's import map (PINS); None for a URL outside the tree."""
    if specifier.startswith(("./", "../")):
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), specifier))
    if specifier in PINS:
        return PINS[specifier]
    prefixes = [k for k in PINS if k.endswith("/") and specifier.startswith(k)]
    if prefixes:
        longest = max(prefixes, key=len)
        return PINS[longest] + specifier[len(longest):]
    return None


def import_graph(static: Path, npm: Path = NPM_DIR) -> dict[str, list[tuple[str, bool]]]:
    """{module: [(imported module, relative?)]} for every module of the
    tree, from es-module-lexer's specifiers (tests/npm/eml.mjs): static
    and dynamic imports with a constant argument."""
    files = modules(static)
    graph: dict[str, list[tuple[str, bool]]] = {}
    for k in range(0, len(files), 300):
        run = subprocess.run(["node", str(npm / "eml.mjs"),
                              *(str(static / f) for f in files[k:k + 300])],
                             cwd=npm, capture_output=True, text=True, check=True, timeout=100)
        for line in run.stdout.splitlines():
            record = json.loads(line)
            module = Path(record["file"]).relative_to(static).as_posix()
            edges = []
            for _kind, _start, _end, specifier, _glob, _phase in record.get("imports", []):
                target = resolve(specifier, module) if specifier else None
                if target is not None:
                    edges.append((target, specifier.startswith((".", "/"))))
            graph[module] = edges
    return graph


def reachable(graph: dict[str, list[tuple[str, bool]]], start: str) -> set[str]:
    """The modules a page whose entry is ``start`` loads."""
    seen, todo = {start}, [start]
    while todo:
        for target, _relative in graph.get(todo.pop(), []):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def reaching_by_url(graph: dict[str, list[tuple[str, bool]]], leaf: str) -> set[str]:
    """The leaf and every module that reaches it through relative imports:
    the modules whose bytes name a URL that changes with the leaf. (A bare
    import is resolved by the page's import map, not by the importer's
    bytes, so it does not change the importer's URL.)"""
    importers: dict[str, set[str]] = {}
    for module, edges in graph.items():
        for target, relative in edges:
            if relative:
                importers.setdefault(target, set()).add(module)
    seen, todo = {leaf}, [leaf]
    while todo:
        for importer in importers.get(todo.pop(), ()):
            if importer not in seen:
                seen.add(importer)
                todo.append(importer)
    return seen


# -- the page ----------------------------------------------------------------


def page_html(head: str) -> bytes:
    """The page: ``head`` holds the import map and preload tags."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>modules</title>
<link rel="icon" href="data:,">
<script>
  // A module that fails to load fires "error" on its script element (no
  // bubbling): caught here, it ends up in the DOM the test reads.
  addEventListener("error", (e) => {{
    document.getElementById("errors").textContent += ` ${{e.message || e.target.outerHTML}}`;
  }}, true);
</script>
{head}
<script type="module">import "app";</script>
</head><body>
<div id="lit"></div><div id="preact"></div><div id="signals"></div><div id="lazy"></div>
<div id="result"></div><div id="errors"></div>
</body></html>
""".encode()


def page_app(head: Callable[[], str]) -> Callable:
    """A WSGI app answering every path with the page (never cached, so
    each visit asks for it, as for a real HTML page); ``head()`` is
    called per request, after the index may have changed."""

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = page_html(head())
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-cache")])
        return [body]

    return app


def importmap_tag(imports: dict[str, str], integrity: dict[str, str] | None = None) -> str:
    value = {"imports": imports, **({"integrity": integrity} if integrity else {})}
    text = json.dumps(value, indent=1).replace("</", "<\\/")
    return f'<script type="importmap">{text}</script>'


def hand_pinned_importmap(url: Callable[[str], str], static: Path) -> str:
    """The import map a user writes by hand today (importmap-rails style):
    each pin, folder pins expanded file by file, at ``url(path)``."""
    imports = {}
    for key, target in PINS.items():
        if key.endswith("/"):
            for module in modules(static):
                if module.startswith(target):
                    imports[key + module[len(target):]] = url(module)
        else:
            imports[key] = url(target)
    return importmap_tag(imports)


def dom_text(dom: str, element_id: str) -> str:
    """The text content of the element with ``element_id`` in a dumped
    DOM (tags stripped, entities decoded)."""
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth = 0
            self.parts: list[str] = []

        def handle_starttag(self, tag, attrs):
            if self.depth:
                self.depth += 1
            elif ("id", element_id) in attrs:
                self.depth = 1

        def handle_endtag(self, tag):
            if self.depth:
                self.depth -= 1

        def handle_data(self, data):
            if self.depth:
                self.parts.append(data)

    parser = Text()
    parser.feed(dom)
    return " ".join("".join(parser.parts).split())
