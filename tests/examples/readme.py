"""The README's framework snippets, as files the tests write and run.

A snippet is the fenced block right after a marker
``<!-- snippet: NAME FILE -->``: block FILE of example NAME.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType

README = Path(__file__).resolve().parents[2] / "README.md"
_MARKER = re.compile(
    r"<!-- snippet: (?P<name>[\w-]+) (?P<file>[\w./-]+) -->\n```[\w-]*\n(?P<body>.*?)^```",
    re.S | re.M,
)
#: The static files every snippet is run against.
STATIC = {"static/css/app.css": b"body { color: #123 }\n",
          "static/js/app.js": b"console.log('readme');\n"}
_counter = itertools.count()


def snippets() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for m in _MARKER.finditer(README.read_text(encoding="utf-8")):
        files = out.setdefault(m["name"], {})
        assert m["file"] not in files, f"README has two snippets {m['name']} {m['file']}"
        files[m["file"]] = m["body"]
    return out


def write(name: str, dest: Path) -> dict[str, str]:
    """Write example ``name`` and the static files under ``dest``."""
    files = snippets()[name]
    for rel, content in [*STATIC.items(), *files.items()]:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return files


def load(path: Path) -> ModuleType:
    """Import the file at ``path`` as a fresh module (a unique name, so that
    frameworks which look their app's module up, as Flask and Pyramid do,
    find it). The caller removes it with :func:`unload`."""
    name = f"readme_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def unload(module: ModuleType) -> None:
    sys.modules.pop(module.__name__, None)
