"""End to end under hostile Accept-Encoding values (issue 11): requests per
second of a gunicorn started with ``bustware.gunicorn_conf`` (one worker),
bustware against WhiteNoise, serving the CSS with ``.br`` and ``.gz``
variants beside it.

wrk sends one fixed header, which any memo answers for free; an attack sends
a new value each request. So the load comes from a small client of our own:
``connections`` keep-alive connections, each in a thread, cycling through
prebuilt requests with distinct values (inprocess.hostile_values). The
client is Python too and shares the machine, so read the figures as ratios
between rows of one run.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import apps
import e2e
import inprocess
import tree

HERE = Path(__file__).resolve().parent
IMPLEMENTATIONS = ("bustware", "whitenoise")

#: (key, label, length of the value). 8,000 characters: gunicorn_conf's
#: limit_request_field_size (8190) counts the whole header line.
CASES = (
    ("browser", "browser `Accept-Encoding: gzip, deflate, br, zstd`", None),
    ("hostile_1k", "a new 1 KB value each request", 1000),
    ("hostile_8k", "a new 8 KB value each request", 8000),
)


def _requests(path: str, length: int | None) -> list[bytes]:
    values = (["gzip, deflate, br, zstd"] if length is None
              else inprocess.hostile_values(length))
    return [(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
             f"Accept-Encoding: {v}\r\n\r\n").encode("latin-1") for v in values]


def _read_response(sock: socket.socket, buf: bytearray) -> int:
    """Read one response off a keep-alive connection; return its status."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    total = end + 4 + length
    while len(buf) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection mid-body")
        buf += chunk
    del buf[:total]
    return status


def load(port: int, requests: list[bytes], seconds: float, connections: int) -> float:
    """Requests per second over ``seconds``; raises if any answer is not 200."""
    counts = [0] * connections
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                buf = bytearray()
                n = len(requests)
                k = i * 997  # each connection starts elsewhere in the pool
                while time.monotonic() < stop:
                    sock.sendall(requests[k % n])
                    k += 1
                    status = _read_response(sock, buf)
                    if status != 200:
                        errors.append(f"status {status}")
                        return
                    counts[i] += 1
        except OSError as exc:
            errors.append(repr(exc))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.monotonic() - started
    if errors:
        raise RuntimeError(f"load against port {port}: {errors[:3]}")
    return sum(counts) / elapsed


def throughput(work: Path, names: list[str], rounds: int, seconds: float, connections: int,
               skip: Callable[[str], None], progress: Callable[[str], None] = lambda s: None,
               load_it: bool = True) -> dict:
    """``{impl: {case: rps}}``; with ``load_it=False`` only start the servers
    and check one request of each case: ``{"checked": [...]}``."""
    import importlib.util

    if importlib.util.find_spec("gunicorn") is None:
        skip("gunicorn: not installed (pip install gunicorn): hostile end-to-end rows skipped")
        return {}
    site = inprocess.hostile_site(work)
    servers: list[e2e.Server] = []
    result: dict = {}
    try:
        for impl in (n for n in IMPLEMENTATIONS if n in names):
            app = apps.build(impl, site.root)
            server = e2e.Server("gunicorn", impl, e2e.free_port(),
                                apps.static_path(impl, app, tree.CSS))
            env = {**os.environ, "BENCH_APP": impl, "BENCH_SITE": str(site.root),
                   "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
            env.pop("PYTHONDEVMODE", None)
            cmd = [sys.executable, "-m", "gunicorn", "-c", "python:bustware.gunicorn_conf",
                   "--workers", "1", "--bind", f"127.0.0.1:{server.port}", "--chdir", str(HERE),
                   "--log-level", "warning", "--graceful-timeout", "2", "apps:application"]
            e2e._start(server, cmd, env, work)
            servers.append(server)
        for server in servers:
            e2e._wait_ready(server, 30)
            for case, _, length in CASES:
                requests = _requests(server.path, length)
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                    s.sendall(requests[0])
                    if _read_response(s, bytearray()) != 200:
                        raise RuntimeError(f"{server.impl} did not answer 200 to {case}")
        if not load_it:
            return {"checked": [f"gunicorn {s.impl}" for s in servers]}
        rps: dict = {(s.impl, c): [] for s in servers for c, _, _ in CASES}
        reqs = {(s.impl, c): _requests(s.path, n) for s in servers for c, _, n in CASES}
        for server in servers:  # warm up
            load(server.port, reqs[server.impl, "browser"], 1, connections)
        for r in range(rounds):
            for server in servers:
                for case, _, _ in CASES:
                    rps[server.impl, case].append(
                        load(server.port, reqs[server.impl, case], seconds, connections))
            progress(f"round {r + 1}/{rounds}")
        for (impl, case), values in rps.items():
            result.setdefault(impl, {})[case] = statistics.median(values)
    finally:
        for server in servers:
            e2e._stop(server)
    return result


def markdown(table: dict, cfg: dict) -> str:
    if "checked" in table or not table:
        return ""
    names = list(table)
    out = ["### Hostile Accept-Encoding, end to end (gunicorn with bustware.gunicorn_conf)\n",
           f"One worker (16 threads), {cfg['connections']} keep-alive connections from a "
           f"Python client on the same machine, {cfg['e2e_seconds']} s per run, median of "
           f"{cfg['e2e_rounds']} rounds; requests per second.\n",
           "| Accept-Encoding | " + " | ".join(f"{n} req/s" for n in names) + " |",
           "|---" * (len(names) + 1) + "|"]
    for case, label, _ in CASES:
        out.append(f"| {label} | " + " | ".join(f"{table[n][case]:,.0f}" for n in names) + " |")
    return "\n".join(out) + "\n"
