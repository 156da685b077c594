"""End to end under ASGI (issue 14): requests per second with wrk against
uvicorn and granian (``--interface asgi``), one worker process each.

Every row is a server of its own serving one application of
``asgi_inprocess.build`` (the same apps as the in-process table): the bare
ASGI app answering 2 KiB (the floor), bustware's static hit on the 2 KiB CSS
and on a 100 KiB file, a pass-through through bustware to the bare app,
ServeStaticASGI, Starlette's StaticFiles and blacknoise on the CSS, and the
bare app answering with bustware's header list (what the server charges per
header, apart from bustware's code). Each
server is checked with one real request (status, body bytes, who answered)
before any load; then wrk visits the servers in turn with the same
settings (``e2e.wrk``), after a warm-up, for several rounds in a shuffled
order, and the median of the rounds is kept; ratios are to the bare app under the same server.
Beside requests per second, the server's CPU time per request (its process
group's user and system time over the wrk run, from /proc): on a shared
machine a neighbour's work lowers the requests per second of whichever row
is running, but hardly what each request costs the server.
Every process started is stopped by its process group, whatever happens.

Servers import this module as ``asgi_e2e:application`` with
``BENCH_ASGI_APP`` (an implementation name) and ``BENCH_SITE`` (the site
root) in the environment.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import importlib.util
import os
import random
import shutil
import statistics
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import apps
import asgi_inprocess
import e2e
import tree

HERE = Path(__file__).resolve().parent
SERVERS = ("uvicorn", "granian")

#: Row -> (label, implementation, logical file it requests, or None: the app's page).
ROWS = {
    "bare": ("bare ASGI app, 2 KiB body (the floor)", "bare", None),
    "bare-headers": ("bare ASGI app, with bustware's headers", "bare-headers", None),
    "bustware": ("bustware, static hit, 2 KiB CSS", "bustware", tree.CSS),
    "bustware-100k": ("bustware, static hit, 100 KiB JS", "bustware", tree.MID),
    "bustware-pass": ("bustware, pass-through to the bare app", "bustware", None),
    "servestatic": ("ServeStaticASGI, 2 KiB CSS", "servestatic", tree.CSS),
    "starlette": ("Starlette StaticFiles, 2 KiB CSS", "starlette", tree.CSS),
    "blacknoise": ("blacknoise, 2 KiB CSS", "blacknoise", tree.CSS),
}
PAGE = "/app/page"
_MARK = apps.BARE_MARK.lower()


def _lifespan(app: Callable) -> Callable:
    """``app`` with the servers' lifespan handshake answered in front of it:
    not every app under test speaks it (blacknoise reads ``scope["path"]``
    of every scope), and every row pays the same one extra call."""

    async def served(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        return await app(scope, receive, send)

    return served


def rows_for(implementations: Collection[str]) -> list[str]:
    """The rows whose implementation is among those that can run here."""
    return [row for row, (_, impl, _) in ROWS.items()
            if (impl if impl != "bare-headers" else "bustware") in implementations]


def application_for(impl: str, site_root: str | os.PathLike) -> Callable:
    """What a server runs for ``impl``: the in-process table's app."""
    root = Path(site_root)
    site = tree.Site(root, root / "static")
    body = site.read(tree.CSS)
    if impl == "bare-headers":
        # The floor answering with bustware's header list for the CSS:
        # what the server pays per header, apart from bustware's code.
        from bustware import Bustware

        bust = Bustware(None, site.static, compress=False)
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": bust.url(tree.CSS).partition("?")[0]}
        seen: list = []
        body = b"".join(bust(env, lambda status, headers, exc_info=None: seen.extend(headers)))
        # As BustwareASGI sends them: lowercase names, latin-1 bytes.
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in seen]
        return _lifespan(asgi_inprocess.bare_app(body, headers))
    return _lifespan(asgi_inprocess.build(impl, site, asgi_inprocess.bare_app(body)))


def servers_available(skip: Callable[[str], None]) -> dict[str, bool]:
    found = {"wrk": shutil.which("wrk") is not None,
             **{s: importlib.util.find_spec(s) is not None for s in SERVERS}}
    hints = {"wrk": "apt-get install -y wrk", "uvicorn": "pip install uvicorn",
             "granian": "pip install granian"}
    for name, ok in found.items():
        if not ok:
            skip(f"asgi-e2e {name}: not installed ({hints[name]}): its ASGI end-to-end "
                 "rows skipped")
    return found


def server_info() -> dict[str, str]:
    """Each server's version and the event loop and HTTP parser it picks
    here (uvicorn's fast ones are optional packages)."""
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    def have(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    return {
        "uvicorn": f"uvicorn {version('uvicorn')} ("
                   f"{'uvloop' if have('uvloop') else 'asyncio'} loop, "
                   f"{'httptools' if have('httptools') else 'h11'} parser)",
        "granian": f"granian {version('granian')} (Rust HTTP; "
                   f"{'uvloop' if have('uvloop') else 'asyncio'} loop)",
    }


def command(server: str, port: int) -> list[str]:
    target = "asgi_e2e:application"
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--app-dir", str(HERE), "--no-access-log",
                "--log-level", "warning", target]
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--working-dir", str(HERE), "--no-ws",
                "--no-access-log", "--log-level", "warning", target]
    raise ValueError(f"unknown server {server!r}: use one of {SERVERS}")


def group_cpu(pgid: int) -> float | None:
    """CPU seconds (user + system, all threads) used so far by the live
    processes of process group ``pgid``; None without /proc."""
    if not os.path.isdir("/proc"):
        return None
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone since the listing
            continue
        # After "pid (comm)": state, ppid, pgrp, ... utime and stime are
        # fields 14 and 15 of proc(5).
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _check(server: e2e.Server, want: bytes, by_app: bool) -> None:
    status, headers, body = _get(server.port, server.path)
    answered = "the app" if _MARK in headers else "the static layer"
    if status != 200 or body != want or (_MARK in headers) != by_app:
        raise RuntimeError(
            f"{server.label} ({server.impl}) answered {status} with {len(body)} bytes from "
            f"{answered} for {server.path}, not the expected {len(want)} bytes from "
            f"{'the app' if by_app else 'the static layer'}")


@contextlib.contextmanager
def running(site: tree.Site, work: Path, rows: list[str], labels: list[str],
            timeout: float = 30) -> Iterator[list[e2e.Server]]:
    """Start a server per (label, row), check each answers right, yield them."""
    servers: list[e2e.Server] = []
    wants: list[tuple[bytes, bool]] = []
    try:
        if any(ROWS[r][1] == "blacknoise" for r in rows):
            # Made here once: the servers' processes only reuse it.
            asgi_inprocess.blacknoise_site(site)
        paths = {}
        for row in rows:
            _, impl, logical = ROWS[row]
            if logical is None:
                paths[row] = PAGE
            elif impl == "bustware":
                from bustware import Assets

                paths[row] = Assets(site.static).url(logical).partition("?")[0]
            else:
                paths[row] = f"/static/{logical}"
        env = {**os.environ, "BENCH_SITE": str(site.root),
               "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
        env.pop("PYTHONDEVMODE", None)  # the servers' own sockets are not under test
        for label in labels:
            for row in rows:
                _, impl, logical = ROWS[row]
                server = e2e.Server(label, row, e2e.free_port(), paths[row])
                e2e._start(server, command(label, server.port), {**env, "BENCH_ASGI_APP": impl},
                           work)
                servers.append(server)
                wants.append((site.read(logical or tree.CSS), logical is None))
        for server, (want, by_app) in zip(servers, wants):
            e2e._wait_ready(server, timeout)
            _check(server, want, by_app)
        yield servers
    finally:
        for server in servers:
            e2e._stop(server)


def throughput(site: tree.Site, work: Path, rows: list[str], rounds: int, seconds: float,
               connections: int, skip: Callable[[str], None],
               progress: Callable[[str], None] = lambda s: None, load: bool = True,
               warmup: float = 1) -> dict:
    """``{"uvicorn": {row: rps}, "granian": {...}, "cpu_us": {"uvicorn": {row:
    server CPU µs per request}, ...}, "spread": x, "servers": {...}}``.

    With ``load=False`` (or without wrk) the servers are only started and
    checked: ``{"checked": ["uvicorn bare", ...]}``.
    """
    found = servers_available(skip)
    labels = [s for s in SERVERS if found[s]]
    if not labels:
        return {}
    with running(site, work, rows, labels) as servers:
        if not (found["wrk"] and load):
            if found["wrk"]:
                skip("asgi-e2e wrk: not run in --tiny mode; the servers were started and "
                     "checked only")
            return {"checked": [f"{s.label} {s.impl}" for s in servers]}
        for server in servers if warmup > 0 else ():
            # Warm up: imports, first-request paths, connections.
            e2e.wrk(server.port, server.path, warmup, connections)
        order, rng = list(servers), random.Random(0)
        cpu: dict[int, list[float]] = {id(s): [] for s in servers}
        for r in range(rounds):
            # A new order each round: a neighbour's burst of work, or a
            # server's place in the round, lands on different rows.
            rng.shuffle(order)
            for server in order:
                before = group_cpu(server.proc.pid)
                rps = e2e.wrk(server.port, server.path, seconds, connections)
                after = group_cpu(server.proc.pid)
                server.rps.append(rps)
                if before is not None and after is not None:
                    # wrk's rate times its whole-second duration: its count.
                    requests = rps * max(1, round(seconds))
                    cpu[id(server)].append((after - before) / requests * 1e6)
            progress(f"round {r + 1}/{rounds}")
    result: dict = {"servers": server_info()}
    for server in servers:
        result.setdefault(server.label, {})[server.impl] = statistics.median(server.rps)
        if cpu[id(server)]:
            result.setdefault("cpu_us", {}).setdefault(server.label, {})[server.impl] = \
                statistics.median(cpu[id(server)])
    result["spread"] = statistics.median(max(s.rps) / min(s.rps) - 1 for s in servers)
    return result


def markdown(result: dict, cfg: dict) -> str:
    if "checked" in result:
        return ("### End to end under ASGI\n\nServers started and checked with one request "
                "each, no load: " + ", ".join(result["checked"]) + ".\n")
    labels = [s for s in SERVERS if s in result]
    out = ["### End to end under ASGI: requests per second (wrk)\n",
           f"`wrk -t1 -c{cfg['connections']} -d{cfg['e2e_seconds']:g}s`, median of "
           f"{cfg['e2e_rounds']} rounds after a warm-up, one server worker process, one "
           "server per row; ÷ bare is the ratio to the bare ASGI app under the same server. "
           "CPU/req is the server's CPU time per request (median over rounds; all its "
           "processes and threads), which a busy neighbour hardly moves. "
           + "; ".join(result.get("servers", {}).get(s, s) for s in labels) + "."]
    if result.get("spread") is not None and cfg["e2e_rounds"] > 1:
        out.append(f"Noise gauge: a server's fastest round beat its slowest by "
                   f"{result['spread']:.0%} (median over servers).")
    cpu = result.get("cpu_us", {})
    out += ["", "| row |" + "".join(f" {s} req/s | ÷ bare | CPU/req |" for s in labels),
            "|---" * (1 + 3 * len(labels)) + "|"]
    for row, (label, _, _) in ROWS.items():
        if not any(row in result[s] for s in labels):
            continue
        line = f"| {label} |"
        for s in labels:
            v, bare = result[s].get(row), result[s].get("bare")
            line += (" | |" if v is None else
                     f" {v:,.0f} | {v / bare:.2f} |" if bare else f" {v:,.0f} | |")
            us = cpu.get(s, {}).get(row)
            line += f" {us:.0f} µs |" if us is not None else " |"
        out.append(line)
    out.append("")
    return "\n".join(out)


def targets(result: dict, verdict: Callable[[bool, str], str]) -> list[tuple[str, str, str]]:
    """Issue 14's end-to-end target as (target, measured, verdict) rows."""
    granian = result.get("granian", {})
    if "bustware" not in granian or "bare" not in granian:
        return []
    share = granian["bustware"] / granian["bare"]
    measured = f"{share:.0%}"
    cpu = result.get("cpu_us", {}).get("granian", {})
    if "bustware" in cpu and "bare" in cpu:
        # The same share read from the server's CPU per request, which a
        # busy neighbour hardly moves: a cross-check, not the verdict.
        measured += f" (by CPU per request: {cpu['bare'] / cpu['bustware']:.0%})"
    return [("ASGI behind granian, static hits (2 KiB CSS) at least 75% of the bare ASGI "
             "app's requests/s", measured, verdict(share >= 0.75, f"{0.75 - share:.0%} short"))]


if os.environ.get("BENCH_ASGI_APP"):
    application = application_for(os.environ["BENCH_ASGI_APP"], os.environ["BENCH_SITE"])
