"""The import map and the module preloads of a page's JavaScript modules.

Relative specifiers are rewritten to versioned URLs in the modules
themselves (bustware.jsmodules); bare ones (``import "lit"``) are left for
an import map, which this module writes from *pins*: ``{"lit":
"vendor/lit/index.js"}`` maps a bare specifier to an indexed file, and a
folder pin ``{"lit/": "vendor/lit/"}`` maps every module under the folder,
one entry each (a prefix entry would map ``lit/x.js`` to the folder's plain
URL + ``x.js``, which is not the file's versioned URL). Every value is a
versioned URL, and ``integrity`` holds the SRI value of the served bytes of
each module the map names, which browsers check for modules loaded
through the map.

``modulepreload`` lists the modules an entry loads before it runs (its
static imports, transitively; not its ``import()`` calls, which may never
run), bare imports resolved through the pins: the page can fetch them all
at once instead of one level of the graph per round trip. The same list
gives the ``Link`` headers of 103 Early Hints (bustware.earlyhints).

Results are computed from the index's records and kept until the index
changes (its ``generation``): a template calls these on every render.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Protocol

from . import references as _refs
from .jsmodules import ModuleRule, is_bare
from .records import Asset, AssetNotFound

__all__ = ["HTML", "ModuleGraph"]


class HTML(str):
    """Markup that template engines insert as it is (Jinja's and Django's
    escaping honour ``__html__``)."""

    def __html__(self) -> str:
        return self


class Index(Protocol):
    """What the graph reads of an Assets index."""

    prefix: str
    modules: ModuleRule
    generation: int

    def get(self, path: str) -> Asset | None: ...
    def match(self, url_path: str, query: str = "") -> tuple[Asset, str] | None: ...
    def url(self, path: str) -> str: ...
    def integrity(self, path: str) -> str: ...
    def __iter__(self): ...


Pins = Mapping[str, str]


class ModuleGraph:
    """The import maps and preload lists of one index."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._cache: dict[tuple, object] = {}
        self._generation = -1

    def _cached(self, key: tuple, make):  # type: ignore[no-untyped-def]
        if self._generation != self.index.generation:
            self._cache.clear()
            self._generation = self.index.generation
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = make()
        return value

    # -- pins -----------------------------------------------------------------

    def expand(self, pins: Pins) -> dict[str, str]:
        """Bare specifier -> logical path, folder pins expanded."""
        if not isinstance(pins, Mapping):
            raise TypeError(f"bustware: pins={pins!r}: pass a mapping such as "
                            "{'lit': 'vendor/lit/index.js', 'lit/': 'vendor/lit/'}")
        out: dict[str, str] = {}
        index = self.index
        for key, path in pins.items():
            if not isinstance(key, str) or not isinstance(path, str) or not key or not path:
                raise TypeError(f"bustware: pin {key!r}: {path!r}: both must be non-empty "
                                "strings, a bare specifier and a logical path")
            path = path.lstrip("/")
            if key.endswith("/") != path.endswith("/"):
                raise ValueError(f"bustware: pin {key!r}: {path!r}: a folder pin maps a key "
                                 "ending in '/' to a folder ending in '/', e.g. "
                                 "{'lit/': 'vendor/lit/'}")
            if key.endswith("/"):
                found = sorted(a.path for a in index if a.path.startswith(path)
                               and _refs.kind_of(a.path) == "js")
                if not found:
                    raise AssetNotFound(f"bustware: pin {key!r}: no module under {path!r} "
                                        "in the index")
                for p in found:
                    out[key + p[len(path):]] = p
            else:
                if index.get(path) is None:
                    raise AssetNotFound(f"bustware: pin {key!r}: no file {path!r} in the "
                                        "index; pins name logical paths under the root")
                out[key] = path
        return out

    @staticmethod
    def _pinned(expanded: dict[str, str], specifier: str) -> str | None:
        return expanded.get(specifier)

    # -- the import map -----------------------------------------------------

    def importmap(self, pins: Pins) -> dict:
        """``{"imports": {specifier: versioned URL}, "integrity": {URL:
        "sha384-..."}}``."""
        return json.loads(self._map_json(pins))

    def _map_json(self, pins: Pins) -> str:
        def make() -> str:
            expanded = self.expand(pins)
            index = self.index
            imports = {k: index.url(p) for k, p in expanded.items()}
            integrity = {index.url(p): index.integrity(p) for p in sorted(set(expanded.values()))}
            return json.dumps({"imports": imports, "integrity": integrity}, indent=1,
                              ensure_ascii=False)

        return self._cached(("map", _key(pins)), make)  # type: ignore[return-value]

    def importmap_tag(self, pins: Pins) -> HTML:
        """``<script type="importmap">...</script>``. Every ``<`` in the
        JSON is written ``\\u003c``, so neither ``</script`` nor ``<!--``
        in a name can end or change the script element."""
        return HTML('<script type="importmap">\n'
                    + self._map_json(pins).replace("<", "\\u003c") + "\n</script>")

    # -- the static import graph --------------------------------------------

    def static_graph(self, entry: str, pins: Pins | None = None) -> tuple[str, ...]:
        """The logical paths of ``entry`` and of every module it imports
        statically, transitively, entry first, each once."""
        return self._cached(("graph", entry, _key(pins or {})),  # type: ignore[return-value]
                            lambda: self._walk(entry, pins or {}))

    def _walk(self, entry: str, pins: Pins) -> tuple[str, ...]:
        index = self.index
        entry = entry.lstrip("/")
        if index.get(entry) is None:
            raise AssetNotFound(f"bustware: no module {entry!r} in the index")
        expanded = self.expand(pins) if pins else {}
        order = {entry: None}
        todo = [entry]
        while todo:
            for target in self._static_imports(todo.pop(), expanded):
                if target not in order:
                    order[target] = None
                    todo.append(target)
        return tuple(order)

    def _static_imports(self, path: str, expanded: dict[str, str]) -> list[str]:
        index = self.index
        asset = index.get(path)
        if asset is None or _refs.kind_of(path) != "js":
            return []
        kind = index.modules.kind(path)
        if kind == "js":
            return []
        raw = _refs.restore(asset.served_bytes(), asset.splices)
        out = []
        for ref in _refs.find_references(raw, kind)[0]:
            if ref.kind != "import":
                continue
            if is_bare(ref.url):
                target = self._pinned(expanded, ref.url)
            else:
                try:
                    resolved = _refs.resolve(ref.url, path, index.prefix)
                except ValueError:
                    continue
                target = resolved[0] if resolved is not None else None
                if target is not None and index.get(target) is None:
                    # Already a versioned URL: the served bytes of an index
                    # loaded from a manifest keep no record of the original.
                    query = resolved[1][1:].partition("#")[0] if resolved[1][:1] == "?" else ""
                    matched = index.match(target, query)
                    target = matched[0].path if matched is not None else None
            if target is not None and index.get(target) is not None:
                out.append(target)
        return out

    def preload_links(self, entry: str, pins: Pins | None = None) -> list[tuple[str, str]]:
        """(versioned URL, SRI value) of each module of the entry's static graph."""
        index = self.index
        return [(index.url(p), index.integrity(p)) for p in self.static_graph(entry, pins)]

    def modulepreload(self, entry: str, pins: Pins | None = None) -> HTML:
        """A ``<link rel="modulepreload">`` per module of the entry's static
        graph, with its integrity value."""
        return HTML("\n".join(
            f'<link rel="modulepreload" href="{escape(url)}" integrity="{sri}" '
            'crossorigin="anonymous">' for url, sri in self.preload_links(entry, pins)))


def _key(pins: Pins) -> tuple:
    try:
        return tuple(pins.items())
    except AttributeError:
        return (repr(pins),)
