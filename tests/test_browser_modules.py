"""Native ES modules from npm, no bundler, in headless Chromium.

A page built from lit (with lit-html, lit-element, @lit/reactive-element),
preact with its hooks, htm and @preact/signals-core, plus the app's own
modules (tests/module_site.py), served by bustware; its bare imports go
through an import map, its graph is preloaded. One visitor (one Chromium
profile, kept between launches, so its HTTP disk cache is) comes three
times and more:

1. first visit: every module is fetched once, at its current versioned URL,
   200 and ``max-age=31536000, immutable``; the page renders from each
   library;
2. a return visit (a new launch on the same profile): the page alone is
   requested, no module, and the page still renders: the modules came from
   the browser's disk cache (the control: a fresh profile then fetches
   every module again);
3. after one leaf module changes (the index reloaded; the app's own leaf,
   or a leaf of @lit/reactive-element behind a pinned entry): exactly the
   modules that reach the leaf are fetched again, at their new URLs, no
   other; the page still works and shows the new leaf;
4. and a return visit after that is warm again.

The expected sets come from the page's import graph as es-module-lexer
reads it (node, tests/npm/eml.mjs), resolved with the page's pins, not
from bustware.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import browser
import module_site
import pytest

from bustware import Assets, Bustware

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

IMMUTABLE = "max-age=31536000, immutable"


@pytest.fixture(scope="module")
def npm() -> Path:
    found = module_site.npm_installed()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(found)
        pytest.skip(found)
    return found


def head_from_helpers(assets: Assets) -> str:
    """The page's import map and preload tags, as a template renders them."""
    return (assets.importmap_tag(module_site.PINS) + "\n"
            + assets.modulepreload(module_site.ENTRY, module_site.PINS))


@dataclass
class Visit:
    """What one launch of the browser did."""

    requests: list[browser.Request]
    dom: str

    def modules(self) -> list[browser.Request]:
        return [r for r in self.requests if r.path != "/"]

    def pages(self) -> list[browser.Request]:
        return [r for r in self.requests if r.path == "/"]

    def text(self) -> dict[str, str]:
        return {k: module_site.dom_text(self.dom, k) for k in module_site.expected_text("")}


class Site:
    """The static tree, bustware over it and the page, under a recording
    server; ``visit()`` launches the profile's browser on the page."""

    def __init__(self, static: Path, profile: browser.Profile, server: browser.RecordingServer,
                 app: Bustware) -> None:
        self.static = static
        self.app = app
        self.profile = profile
        self.server = server
        self.assets = app.assets
        self.visitors = 0

    def visit(self, profile: browser.Profile | None = None) -> Visit:
        self.server.take()
        dom = (profile or self.profile).load(self.server.base + "/")
        return Visit(self.server.take(), dom)

    def new_visitor(self) -> browser.Profile:
        self.visitors += 1
        return browser.Profile(self.profile.directory.with_name(f"visitor-{self.visitors}"),
                               self.profile.chromium)

    def logical(self, request: browser.Request) -> str | None:
        """The logical path a request names when it is the current
        versioned URL of a file, else None."""
        path = urlsplit(request.path).path
        if not path.startswith(self.assets.prefix):
            return None
        matched = self.assets.match(unquote(path[len(self.assets.prefix):]))
        if matched is None:
            return None
        asset, _version = matched
        return asset.path if self.assets.url(asset.path) == request.path else None

    def change(self, rel: str, text: str) -> None:
        """A deploy of a new leaf: the file changes, the index is rebuilt."""
        path = self.static / rel
        path.write_text(text)
        later = time.time() + 5  # a new mtime, however coarse the file system's clock
        os.utime(path, (later, later))
        self.assets.refresh()
        self.app.rebuild_if_reloaded()  # the middleware routes the new index


def check_empty(found: list[str], visit: Visit | None) -> None:
    assert not found, "\n".join(found)


def problems(site: Site, visit: Visit, expected_modules: set[str], release: str) -> list[str]:
    """What is wrong with a visit that should fetch ``expected_modules``."""
    found = []
    if [r.status for r in visit.pages()] != [200]:
        found.append(f"the page was requested {[r.status for r in visit.pages()]}, not once")
    fetched: list[str] = []
    for r in visit.modules():
        logical = site.logical(r)
        if logical is None:
            found.append(f"{r.path} ({r.status}) is not a current versioned URL")
            continue
        fetched.append(logical)
        if r.status != 200 or r.cache_control != IMMUTABLE:
            found.append(f"{r.path}: {r.status} {r.cache_control!r}, not 200 {IMMUTABLE!r}")
    if sorted(fetched) != sorted(expected_modules):
        found.append(f"fetched {sorted(fetched)}, expected exactly {sorted(expected_modules)}")
    text = visit.text()
    if text != module_site.expected_text(release):
        found.append(f"the page shows {text}, expected {module_site.expected_text(release)}")
    if found:
        found.append("requests: " + " ".join(f"{r.status} {r.path} {r.cache_control!r};"
                                             for r in visit.requests))
    return found


@contextlib.contextmanager
def make_site(tmp_path: Path, npm: Path, *, modules: bool | str = "auto",
              head: Callable[[Assets], str] = head_from_helpers) -> Iterator[Site]:
    chromium = browser.require_chromium()
    static = module_site.build_site(tmp_path / "static", npm)
    assets = Assets(static, modules=modules, log_missing_references=False)
    app = Bustware(module_site.page_app(lambda: head(assets)), assets)
    with browser.RecordingServer(app) as server:
        yield Site(static, browser.Profile(tmp_path / "profile", chromium), server, app)


@pytest.fixture
def site(tmp_path: Path, npm: Path):
    with make_site(tmp_path, npm) as made:
        yield made


@dataclass(frozen=True)
class Change:
    """One module changed by a deploy, and what a visit must then fetch."""

    path: str
    text: Callable[[str], str]   # the new text, from the old
    release: str                 # the release the page then shows
    refetched: frozenset[str]    # the modules reaching it, written out


#: The app's own leaf, imported by two app modules; and a leaf of a scoped
#: package, behind an entry the import map pins (lit-element imports
#: "@lit/reactive-element" bare: the map changes, lit-element's URL not).
APP_LEAF = Change(module_site.LEAF, lambda _old: module_site.label_js("r2"), "r2",
                  frozenset({module_site.LEAF, "app/lit-view.js", "app/preact-view.js",
                             "app/main.js"}))
VENDOR_LEAF = Change("vendor/@lit/reactive-element/css-tag.js",
                     lambda old: "/* patched */\n" + old, "r1",
                     frozenset({"vendor/@lit/reactive-element/css-tag.js",
                                "vendor/@lit/reactive-element/reactive-element.js"}))


def returning_visitor(site: Site, npm: Path, change: Change = APP_LEAF,
                      seen: Callable[[list[str], Visit | None], None] = check_empty) -> None:
    """The three visits and the one after, each checked by ``seen``."""
    graph = module_site.import_graph(site.static, npm)
    page = module_site.reachable(graph, module_site.ENTRY)
    assert len(page) >= 15, sorted(page)  # the page really is a deep graph
    assert {"vendor/@lit/reactive-element/reactive-element.js",
            "vendor/lit-html/directive.js", "app/lazy.js"} <= page

    first = site.visit()
    seen(problems(site, first, page, "r1"), first)
    # URLs as browsers write them: "@" unescaped in a path segment.
    assert any("/vendor/@lit/reactive-element/" in r.path for r in first.modules()), first
    # The disk cache the next launch reads.
    assert site.profile.cache_entries() >= len(page), site.profile.cache_entries()

    warm = site.visit()
    # Only the page: every module came from the cache, and ran (the page
    # renders from each library).
    seen(problems(site, warm, set(), "r1"), warm)
    # The control: a new visitor (a fresh profile) fetches every module.
    seen(problems(site, site.visit(site.new_visitor()), page, "r1"), None)

    changed = module_site.reaching_by_url(graph, change.path) & page
    assert changed == change.refetched  # the graph, read independently, agrees
    site.change(change.path, change.text((site.static / change.path).read_text()))
    seen(problems(site, site.visit(), changed, change.release), None)
    seen(problems(site, site.visit(), set(), change.release), None)


@pytest.mark.parametrize("change", [APP_LEAF, VENDOR_LEAF], ids=["app-leaf", "vendor-leaf"])
def test_modules_cached_immutable_and_refetched_exactly_where_a_leaf_changed(site, npm, change):
    returning_visitor(site, npm, change)


def wrong_integrity(assets: Assets) -> str:
    """The helpers' head with one module's integrity value replaced."""
    head = head_from_helpers(assets)
    value = assets.integrity("vendor/lit-html/lit-html.js")
    assert head.count(value) >= 1, "lit-html.js is named by the map"
    return head.replace(value, "sha384-" + "A" * 64)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["modules off", "wrong integrity"])
def test_the_test_sees(tmp_path, npm, fault):
    """The test, proven: modules served as they are (only the pinned
    entries versioned: what bustware did before it rewrote imports) make it
    see plain URLs, revalidated on every visit; a wrong integrity value in
    the import map breaks the page, and it sees that."""
    found: list[str] = []
    options = ({"modules": False} if fault == "modules off" else {"head": wrong_integrity})
    with make_site(tmp_path, npm, **options) as s, contextlib.suppress(AssertionError):
        returning_visitor(s, npm, APP_LEAF, lambda problems, _visit: found.extend(problems))
    print("\n".join(found))
    if fault == "modules off":
        assert any("/static/vendor/lit-html/directive.js (200) is not a current versioned URL"
                   in p for p in found), found
        assert any("/static/app/lit-view.js (304) is not a current versioned URL"
                   in p for p in found), found
    else:
        assert any("the page shows" in p for p in found), found
