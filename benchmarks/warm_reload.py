"""Requests per warm reload: what a returning visitor's browser asks for on
a page of native ES modules from npm (tests/module_site.py: lit with its
three packages, preact with hooks, htm, @preact/signals-core and the app's
own modules), in headless Chromium.

Rows: bustware as it is (relative imports rewritten to versioned URLs,
import map and preloads from its helpers), and the baseline, the same page
with bustware's ``modules=False`` (only the files the import map pins are
versioned; every relative import is fetched at its plain URL, ``no-cache``:
what bustware did before issue 22, and what a server that versions only
the files a template names does). Per row, one visitor (one profile):

- first visit: modules fetched, and how many came back immutable;
- return visit (a new launch on the same profile, its disk cache warm):
  module requests, and how many of them were 304s;
- after one leaf module changed (the index rebuilt): module requests.

    apt-get install -y chromium
    npm ci --no-audit --no-fund --prefix tests/npm
    python3 benchmarks/run.py --only warm-reload
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

import browser  # noqa: E402
import module_site  # noqa: E402

ROWS = {"bustware": "auto", "bustware, modules=False (baseline)": False}


def measure(work: Path, skip, log) -> list[dict] | None:
    if browser.find_chromium() is None:
        skip("warm-reload: chromium not installed (apt-get install -y chromium)")
        return None
    npm = module_site.npm_installed()
    if isinstance(npm, str):
        skip(f"warm-reload: {npm}")
        return None
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, modules in ROWS.items():
        log(f"warm reload: {label}")
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            rows.append({"label": label, **_row(Path(tmp), npm, modules)})
    return rows


def _row(tmp: Path, npm: Path, modules: bool | str) -> dict:
    from bustware import Assets, Bustware

    static = module_site.build_site(tmp / "static", npm)
    assets = Assets(static, modules=modules, log_missing_references=False)

    def head() -> str:
        return (assets.importmap_tag(module_site.PINS) + "\n"
                + assets.modulepreload(module_site.ENTRY, module_site.PINS))

    app = Bustware(module_site.page_app(head), assets)
    profile = browser.Profile(tmp / "profile", browser.find_chromium() or "chromium")
    out: dict = {}
    with browser.RecordingServer(app) as server:

        def visit(name: str, release: str) -> list[browser.Request]:
            server.take()
            t0 = time.perf_counter()
            dom = profile.load(server.base + "/")
            out[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
            shows = {k: module_site.dom_text(dom, k) for k in module_site.expected_text("")}
            if shows != module_site.expected_text(release):
                raise RuntimeError(f"warm reload: the page did not render on the {name} visit: "
                                   f"{shows}")
            return [r for r in server.take() if r.path != "/"]

        cold = visit("first", "r1")
        out["first"] = len(cold)
        out["first_immutable"] = sum("immutable" in r.cache_control for r in cold)
        warm = visit("warm", "r1")
        out["warm"] = len(warm)
        out["warm_304"] = sum(r.status == 304 for r in warm)
        leaf = static / module_site.LEAF
        leaf.write_text(module_site.label_js("r2"))
        assets.refresh()
        app.rebuild_if_reloaded()
        out["after_leaf"] = len(visit("after_leaf", "r2"))
    return out


def markdown(rows: list[dict]) -> str:
    out = ["### Requests per warm reload (ES modules from npm, headless Chromium)\n",
           "A page of lit (with lit-html, lit-element, @lit/reactive-element), preact, htm, "
           "@preact/signals-core and 6 app modules through an import map, loaded by one "
           "visitor three times: first visit, return visit (a new Chromium launch on the same "
           "profile: its HTTP disk cache is warm), and a visit after one leaf module of the "
           "app changed. Module requests only (the page itself is `no-cache` in every row). "
           "Baseline: bustware with `modules=False`, relative imports left as written (plain "
           "URLs, `no-cache`).\n",
           "| server | first visit: modules (immutable) | return visit: module requests "
           "(304) | after a leaf changed: module requests |",
           "|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['label']} | {r['first']} ({r['first_immutable']}) | "
                   f"{r['warm']} ({r['warm_304']}) | {r['after_leaf']} |")
    out.append("")
    return "\n".join(out) + "\n"
