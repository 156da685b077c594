"""In-process cost of a request under ASGI (issue 14): bustware's
BustwareASGI, a bare ASGI app (the floor), ServeStatic's ServeStaticASGI,
Starlette's StaticFiles mounted beside the app, and blacknoise set up as its
README says (``python -m blacknoise.compress`` variants beside the files,
``immutable_file_test`` for far-future caching).

A request is one ``await app(scope, receive, send)`` with a prebuilt scope
(copied per call, as a server builds one per request; the ten browser
headers of the WSGI table, as ASGI byte pairs) and a ``send`` that keeps
nothing. All calls run in one event loop, in interleaved rounds, and every
cell is first checked for status, who answered and the body bytes (decoded
when a compressed variant was sent); the header lines of each answer are
kept, for the report to show what each implementation sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.util
import io
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import apps
import tree
from inprocess import _BROWSER_HEADERS

#: (key, label, expected status) in table order.
CASES = (
    ("hit_css", "ASGI static hit, 2 KiB CSS", 200),
    ("not_modified", "ASGI 304 (conditional GET of the CSS)", 304),
    ("pass", "ASGI pass-through to the app (/app/page)", 200),
)

#: Implementation -> (module it needs, what to pip install).
IMPLEMENTATIONS = {
    "bare": (None, None),
    "bustware": ("bustware", "bustware"),
    "servestatic": ("servestatic", "servestatic"),
    "starlette": ("starlette", "starlette"),
    "blacknoise": ("blacknoise", "blacknoise"),
}

_MARK = apps.BARE_MARK.lower().encode()


def missing(name: str) -> str | None:
    module, package = IMPLEMENTATIONS[name]
    if module is not None and importlib.util.find_spec(module) is None:
        return f"asgi {name}: not installed (pip install {package})"
    return None


def bare_app(body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Callable:
    if headers is None:
        headers = [(b"content-type", b"text/css; charset=utf-8"),
                   (b"content-length", str(len(body)).encode())]
    headers = [*headers, (_MARK, b"bare")]

    async def bare(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers[:]})
        await send({"type": "http.response.body", "body": body})

    return bare


def blacknoise_site(site: tree.Site) -> tree.Site:
    """A copy of the site with the ``.br`` and ``.gz`` variants blacknoise's
    own compressor writes (made once; the main site has no variants, which
    the other rows rely on)."""
    work = site.root.parent
    final, stamp = work / "blacknoise-site", work / "blacknoise-site.json"
    # Made again whenever the main site is.
    spec = {"version": 1, "site": json.loads((work / "site.json").read_text())}
    if tree._reuse(stamp, final, spec) is None:
        import shutil

        from blacknoise.compress import compress

        def fill(root: Path) -> dict:
            shutil.copytree(site.static, root / "static")
            with contextlib.redirect_stdout(io.StringIO()):  # a line per file
                compress(root / "static")
            return {}

        tree._build(final, stamp, spec, fill)
    return tree.Site(final, final / "static")


def _always(path: str) -> bool:
    return True


def build(name: str, site: tree.Site, app: Callable):
    static = site.static
    if name == "bare":
        return app
    if name == "bustware":
        from bustware import BustwareASGI

        return BustwareASGI(app, static, compress=False)
    if name == "servestatic":
        from servestatic import ServeStaticASGI

        return ServeStaticASGI(app, root=str(static), prefix="/static/")
    if name == "starlette":
        from starlette.applications import Starlette
        from starlette.routing import Mount
        from starlette.staticfiles import StaticFiles

        return Starlette(routes=[Mount("/static", StaticFiles(directory=str(static))),
                                 Mount("/", app)])
    if name == "blacknoise":
        from blacknoise import BlackNoise

        # Its README's setup: far-future caching for every file (it cannot
        # tell a versioned name from a plain one), compressed variants.
        black = BlackNoise(app, immutable_file_test=_always)
        black.add(blacknoise_site(site).static, "/static")
        return black
    raise ValueError(f"unknown implementation {name!r}: use one of {sorted(IMPLEMENTATIONS)}")


def scope(path: str, **extra: str) -> dict:
    headers = {**{k[5:].lower().replace("_", "-"): v for k, v in _BROWSER_HEADERS.items()},
               **extra}
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50312), "server": ("127.0.0.1", 8000),
            "extensions": {}}


async def _receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def _fetch(app, sc: dict) -> tuple[int, dict, bytes, list]:
    sent: list = []

    async def send(message):
        sent.append(message)

    await app(dict(sc), _receive, send)
    start = sent[0]
    return (start["status"], {k.lower(): v for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]), list(start["headers"]))


def _decoded(body: bytes, coding: str) -> bytes | None:
    """The body without its content coding; None if it cannot be read."""
    try:
        if coding == "identity":
            return body
        if coding == "gzip":
            return gzip.decompress(body)
        if coding == "br":
            import brotli

            return brotli.decompress(body)
    except Exception:  # not this coding, or no brotli module: not verified
        return None
    return None


async def _cases(name: str, app, site: tree.Site) -> tuple[dict, dict, dict]:
    """Per case: the scope, a note (empty when the answer is the one the row
    is about: status, who answered, the file's bytes) and the header lines."""
    css = app.url(tree.CSS) if name == "bustware" else f"/static/{tree.CSS}"
    scopes = {"hit_css": scope(css), "pass": scope("/app/page")}
    _, headers, _, _ = await _fetch(app, scopes["hit_css"])
    etag = headers.get(b"etag")
    scopes["not_modified"] = (scope(css, **{"if-none-match": etag.decode()}) if etag else
                              scope(css, **{"if-modified-since":
                                            headers.get(b"last-modified", b"").decode()}))
    notes, sent = {}, {}
    for case, expected in ((c, s) for c, _, s in CASES):
        status, headers, body, raw = await _fetch(app, scopes[case])
        sent[case] = [f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in raw]
        by_app = _MARK in headers
        coding = headers.get(b"content-encoding", b"identity").decode("latin-1")
        if status != expected:
            found = [f"{status}, {len(body):,} B of body" if body else str(status)]
        elif case == "pass":
            found = [] if by_app else ["not the app"]
        elif by_app:
            found = ["fell through to the app"]
        else:
            # A compressed variant is named (the row then moves fewer bytes).
            found = [] if coding == "identity" else [coding]
            want = {"hit_css": site.read(tree.CSS), "not_modified": b""}[case]
            if (body if case == "not_modified" else _decoded(body, coding)) != want:
                found.append("wrong body")
        notes[case] = ", ".join(found)
    return scopes, notes, sent


async def _time(app, sc: dict, n: int) -> float:
    send = _send
    started = time.perf_counter()
    for _ in range(n):
        await app(sc.copy(), _receive, send)
    return (time.perf_counter() - started) / n


async def _send(message):
    pass


async def _measure(site, names, rounds, batch_seconds, progress) -> dict:
    bare = bare_app(site.read(tree.CSS))
    calls, notes, sent = {}, {}, {}
    for name in names:
        app = build(name, site, bare)
        scopes, found, headers = await _cases(name, app, site)
        for case, _, _ in CASES:
            calls[name, case] = (app, scopes[case])
            notes[name, case] = found[case]
            sent[name, case] = headers[case]
    numbers = {}
    for key, (app, sc) in calls.items():
        n = 1
        while (elapsed := await _time(app, sc, n) * n) < batch_seconds / 5 and n < 1 << 20:
            n *= 4
        numbers[key] = max(1, int(n * batch_seconds / max(elapsed, 1e-9)))
    samples: dict = {key: [] for key in calls}
    keys, rng = list(calls), random.Random(0)
    for r in range(rounds):
        rng.shuffle(keys)
        for key in keys:
            samples[key].append(await _time(*calls[key], numbers[key]))
        progress(f"round {r + 1}/{rounds}")
    table: dict = {}
    for name in names:
        row = table[name] = {}
        for case, _, _ in CASES:
            us = statistics.median(samples[name, case]) * 1e6
            floor = statistics.median(samples["bare", case]) * 1e6
            row[case] = {"us": us, "ratio": us / floor, "note": notes[name, case],
                         "headers": sent[name, case]}
    return table


def requests(site: tree.Site, names: Sequence[str], rounds: int, batch_seconds: float,
             progress: Callable[[str], None] = lambda s: None) -> dict:
    """The ASGI request table: ``{impl: {case: {us, ratio, note}}}``."""
    return asyncio.run(_measure(site, names, rounds, batch_seconds, progress))


def markdown(table: dict, cfg: dict) -> str:
    names = list(table)
    out = ["### In-process cost of a request under ASGI\n",
           f"Median of {cfg['rounds']} interleaved rounds in one event loop; xN is the ratio "
           "to the bare ASGI app in the same round set. Starlette is its `StaticFiles` "
           "mounted beside the app (the routing is part of its cost). blacknoise is set up "
           "as its README says: `python -m blacknoise.compress` variants beside the files "
           "(in a copy of the site) and `immutable_file_test` returning True; a note in a "
           "cell names a compressed variant sent, or a status other than the row's.\n",
           "| request | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for case, label, _ in CASES:
        cells = []
        for name in names:
            c = table[name][case]
            if name == "bare":  # the floor: every request is the app's
                cells.append(f"{c['us']:.2f} µs")
                continue
            cell = f"{c['us']:.2f} µs x{c['ratio']:.1f}"
            if c["note"]:
                cell += f" ({c['note']})"
            cells.append(cell)
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("What each answered to the static hit (header lines as sent, the browser's "
               "`Accept-Encoding: gzip, deflate, br, zstd`):\n")
    for name in names:
        if name != "bare":
            lines = "; ".join(f"`{h}`" for h in table[name]["hit_css"].get("headers", ()))
            out.append(f"- {name}: {lines}")
    out.append("")
    return "\n".join(out)


def targets(table: dict, verdict: Callable[[bool, str], str]) -> list[tuple[str, str, str]]:
    """Issue 14's in-process targets as (target, measured, verdict) rows."""
    bust = table.get("bustware", {}).get("hit_css")
    if not bust:
        return []
    ratio = bust["ratio"]
    rows = [("ASGI static hit (2 KiB CSS) in-process at most 3x the bare ASGI app",
             f"{ratio:.2f}x", verdict(ratio <= 3, f"{ratio / 3:.2f}x over the target"))]
    other = table.get("servestatic", {}).get("hit_css")
    if other:
        gain = other["us"] / bust["us"]
        rows.append(("ASGI static hit at least 5x cheaper than ServeStaticASGI",
                     f"{gain:.1f}x cheaper", verdict(gain >= 5, f"{5 / gain:.2f}x short")))
    return rows
