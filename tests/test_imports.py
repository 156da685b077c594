"""What importing bustware loads: only what the caller uses (checked by the
modules present afterwards, in a fresh interpreter; never by a time)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Loaded only on first use: werkzeug's package import alone takes ~40 ms,
#: the reference tokenizer's expressions ~30 ms (bustware.references and
#: the finders of each language it loads).
HEAVY = ("werkzeug", "webob", "bustware.references", "bustware.csstokens", "bustware.cssrefs",
         "bustware.scriptrefs", "bustware.sourcemaps", "bustware.refdecode",
         "bustware.linker", "bustware.manifest",
         "bustware.from_manifest", "bustware.build",
         "bustware.compress", "bustware.bundlers", "bustware.integrity", "bustware.cli",
         "bustware.digestcache", "bustware.s3store", "boto3", "botocore",
         "bustware.jslexer", "bustware.jsmachine", "bustware.importmap",
         "bustware.earlyhints", "bustware.releasecheck")


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDEVMODE", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_bustware_loads_no_heavy_module():
    loaded = modules_after("import bustware\nfrom bustware import Assets, Bustware")
    assert {"bustware.assets", "bustware.middleware"} <= loaded
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_a_start_from_a_manifest_needs_no_tokenizer(tmp_path):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.css").write_bytes(b"a{background:url(../img/a.png)}")
    (static / "img").mkdir()
    (static / "img" / "a.png").write_bytes(b"PNG")
    (static / "app.mjs").write_bytes(b'import "./img/a.png";\nexport const a = 1;\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "bustware", "build", str(static), "--quiet"],
                   check=True, timeout=120, env=env, capture_output=True)
    manifest = static / ".bustware" / "manifest.json"
    loaded = modules_after(
        "from bustware import Bustware\n"
        f"app = Bustware(None, {str(static)!r}, manifest={str(manifest)!r})\n"
        "assert len(app.assets) == 3")
    assert {"bustware.manifest", "bustware.from_manifest"} <= loaded
    # bustware.compress is what the middleware's compression without a build
    # step (on by default) compresses with; it asks which codecs exist.
    needed = {"bustware.manifest", "bustware.from_manifest", "bustware.compress"}
    assert sorted(m for m in HEAVY if m in loaded and m not in needed) == []


@pytest.mark.parametrize("integration", ["jinja", "django", "pyramid"])
def test_an_integration_imports_what_it_uses(integration):
    pytest.importorskip(integration if integration != "jinja" else "jinja2")
    loaded = modules_after(f"import bustware.{integration}")
    own = {"webob"} if integration == "pyramid" else set()  # pyramid is built on webob
    assert sorted(m for m in HEAVY if m in loaded and m not in own) == []


def test_the_asgi_middleware_and_asyncio_load_on_first_use():
    # asyncio alone takes ~30 ms to import; a WSGI process never needs it.
    loaded = modules_after("import bustware\nfrom bustware import Assets, Bustware")
    assert not {"bustware.asgi", "asyncio"} & loaded
    loaded = modules_after("import bustware\nassert bustware.BustwareASGI.__name__ == "
                           "'BustwareASGI'")
    assert {"bustware.asgi", "asyncio"} <= loaded



PACKAGE = ROOT / "bustware"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, is_package: bool, tree: ast.AST, known: set[str]
             ) -> list[tuple[str, int, str | None]]:
    """Every import of a bustware module in ``module``'s source, wherever it
    is: at module level, inside a function (where a circle hides until that
    function runs) or under ``if TYPE_CHECKING:`` (a circle all the same for
    whoever reads the code), as (imported module, line, name imported from
    it or None)."""
    here = module if is_package else module.rpartition(".")[0]
    out: list[tuple[str, int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # from . import manifest
                    out.append((f"{base}.{alias.name}", node.lineno, None))
                elif base in known:  # from .manifest import read
                    out.append((base, node.lineno, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name:
                    out.append((name, node.lineno, None))
    return [i for i in out if i[0] != module]


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    files = _sources()
    known = set(files)
    return {name: {dep for dep, _, _ in _imports(name, path.name == "__init__.py",
                                                  ast.parse(path.read_text()), known)}
            for name, path in files.items()}


def test_no_import_circle():
    # A circle (a imports b, b imports a, if only inside a function or for
    # annotations) means neither module can be read, tested or loaded
    # without the other. The package's __init__ counts like any module: a
    # module that imports a name from the package (`from bustware import
    # __version__`) closes a circle through everything __init__ loads.
    graph = import_graph()

    def reachable(module: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[module])
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(graph.get(dep, ()))
        return seen

    on_circles = {m: reachable(m) for m in graph if m in reachable(m)}
    assert {m: sorted(d for d in graph[m] if d in on_circles and m in on_circles[d])
            for m in sorted(on_circles)} == {}


def test_no_module_imports_another_ones_private_name():
    # A name with a leading underscore is its module's own business: who
    # imports it depends on what its owner may change without notice.
    files = _sources()
    known = set(files)
    found = [f"{path.relative_to(ROOT)}:{line}: from {dep} import {name}"
             for module, path in sorted(files.items())
             for dep, line, name in _imports(module, path.name == "__init__.py",
                                             ast.parse(path.read_text()), known)
             if name is not None and name.startswith("_") and not name.startswith("__")]
    assert found == []


def reach_ins(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``x._name`` where ``x`` is not ``self`` or ``cls`` nor a module
    (the standard library's, or one imported with ``import``): a read or
    write of another object's private state."""
    modules = set(sys.stdlib_module_names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names)
    return sorted((node.lineno, ast.unparse(node)) for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                  and not node.attr.startswith("__")
                  and not (isinstance(node.value, ast.Name)
                           and (node.value.id in ("self", "cls") or node.value.id in modules)))


def test_reach_ins_are_found():
    # The counter itself can fail: a reach-in is found, self and modules are not.
    tree = ast.parse("import os\nclass A:\n def f(self, core):\n"
                     "  return self._a, os._exit, core._routes, type(core)._b\n")
    assert reach_ins(tree) == [(4, "core._routes"), (4, "type(core)._b")]


def test_no_module_reaches_into_another_objects_private_state():
    # A module's dependencies are in its signatures: it receives values, or
    # calls a public method of their owner; never `core._routes`.
    found = [f"{path.relative_to(ROOT)}:{line}: {text}"
             for _, path in sorted(_sources().items())
             for line, text in reach_ins(ast.parse(path.read_text()))]
    assert found == []


def readme_rooms() -> dict[str, int]:
    """The rooms of the README's "Inside bustware" drawing, lowest 0:
    {module: room}. A line starting with a letter opens a room (its name,
    two spaces, its modules); an indented line goes on with its modules."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Inside bustware"):]
    drawing = section[section.index("```text\n") + 8:]
    rooms: list[list[str]] = []
    for line in drawing[:drawing.index("```")].splitlines():
        if line.strip() in ("", "|"):
            continue
        if line[0].isalpha():
            rooms.append([])
            line = re.split(r"\s{2,}", line, maxsplit=1)[1]
        rooms[-1].extend(line.split())
    return {m: n for n, names in enumerate(reversed(rooms)) for m in names}


def test_the_readme_rooms_name_every_module_and_no_import_goes_up():
    rooms = readme_rooms()
    graph = import_graph()
    short = {m: m.removeprefix("bustware.").split(".")[0] for m in graph if m != "bustware"}
    assert sorted(set(short.values()) - set(rooms)) == [], "modules missing from the drawing"
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if m in short
                    for d in deps if d in short and rooms[short[d]] > rooms[short[m]])
    assert upward == []


def test_no_module_is_over_500_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _sources().items()}
    assert {m: n for m, n in sizes.items() if n > 500} == {}
