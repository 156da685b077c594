"""End to end: requests per second with wrk against real servers.

Each implementation runs behind gunicorn (gthread worker) and granian (WSGI
interface), one worker process each; nginx serves the same files from disk
with one worker process. Everything binds 127.0.0.1 on a free port. All
servers are started first and checked with one real request (status and
body bytes); then wrk visits them in turn, several rounds, and the median of
the rounds is kept. Every process started here is stopped, by its process
group, whatever happens.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import apps
import tree

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    label: str  # e.g. "gunicorn" or "nginx"
    impl: str  # implementation name, or "nginx"
    port: int
    path: str  # what wrk requests
    proc: subprocess.Popen | None = None
    log: Path | None = None
    rps: list[float] = field(default_factory=list)


def _granian() -> list[str] | None:
    import importlib.util

    if importlib.util.find_spec("granian") is None:
        return None
    return [sys.executable, "-m", "granian"]


def servers_available(skip: Callable[[str], None]) -> dict[str, bool]:
    import importlib.util

    found = {
        "wrk": shutil.which("wrk") is not None,
        "gunicorn": importlib.util.find_spec("gunicorn") is not None,
        "granian": _granian() is not None,
        "nginx": shutil.which("nginx") is not None,
    }
    hints = {"wrk": "apt-get install -y wrk", "gunicorn": "pip install gunicorn",
             "granian": "pip install granian", "nginx": "apt-get install -y nginx-light"}
    for name, ok in found.items():
        if not ok:
            skip(f"{name}: not installed ({hints[name]}): its end-to-end rows skipped")
    return found


def _command(label: str, port: int, threads: int) -> list[str]:
    if label == "gunicorn":
        # As many threads as wrk opens connections: gthread parks a
        # keep-alive connection on a thread while it is being served.
        return [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1",
                "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--chdir", str(HERE),
                "--log-level", "warning", "--graceful-timeout", "2", "--keep-alive", "5",
                "apps:application"]
    if label == "granian":
        return [*_granian(), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--working-dir", str(HERE), "--no-access-log",
                "--log-level", "warning", "apps:application"]
    raise ValueError(label)


def _nginx_conf(work: Path, site: tree.Site, port: int) -> Path:
    base = work / "nginx"
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    conf = base / "nginx.conf"
    temp = "\n".join(f"  {name}_temp_path {base / 'tmp' / name};"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would drop to "nobody", who may not read a
    # private work directory (pytest's tmp_path is 0700).
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""\
# Written by benchmarks/e2e.py for one run; rewritten every run.
{user}worker_processes 1;
pid {base / 'nginx.pid'};
error_log {base / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=10000 inactive=60s;
  keepalive_requests 1000000;
{temp}
  server {{
    listen 127.0.0.1:{port};
    root {site.root};
    location /static/ {{
      expires max;
      add_header X-Content-Type-Options nosniff;
    }}
  }}
}}
""")
    return conf


def _start(server: Server, cmd: list[str], env: dict, work: Path) -> None:
    server.log = work / "logs" / f"{server.label}-{server.impl}.log"
    server.log.parent.mkdir(parents=True, exist_ok=True)
    with open(server.log, "wb") as log:
        # A session of its own: stopping it reaches its workers too.
        server.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} ({server.impl}) exited with "
                               f"{server.proc.returncode}:\n{server.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.label} ({server.impl}) did not listen on "
                                   f"127.0.0.1:{server.port} within {timeout}s") from None
            time.sleep(0.05)


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def parse_wrk(out: str) -> float:
    """Requests per second from wrk's report; raises on any failed request."""
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    match = re.search(r"^Requests/sec:\s*([\d.]+)\s*$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    return float(match.group(1))


def wrk(port: int, path: str, seconds: float, connections: int) -> float:
    duration = max(1, round(seconds))  # wrk counts whole seconds
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk against {path} exited with {proc.returncode}: {proc.stderr}")
    return parse_wrk(proc.stdout)


@contextlib.contextmanager
def running(site: tree.Site, work: Path, impls: list[str], found: dict[str, bool],
            threads: int, timeout: float = 30) -> Iterator[list[Server]]:
    """Start every server, check each answers with the right bytes, yield them."""
    servers: list[Server] = []
    css = site.read(tree.CSS)
    try:
        if "bare" in impls and "bustware" in impls:
            impls = [*impls[:2], "bare-headers", *impls[2:]]
        for label in ("gunicorn", "granian"):
            if not found[label]:
                continue
            for impl in impls:
                app = apps.build(impl, site.root)
                path = "/" if impl.startswith("bare") else apps.static_path(impl, app, tree.CSS)
                server = Server(label, impl, free_port(), path)
                env = {**os.environ, "BENCH_APP": impl, "BENCH_SITE": str(site.root),
                       "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
                env.pop("PYTHONDEVMODE", None)  # the servers' own sockets are not under test
                _start(server, _command(label, server.port, threads), env, work)
                servers.append(server)
        if found["nginx"]:
            port = free_port()
            server = Server("nginx", "nginx", port, f"/static/{tree.CSS}")
            conf = _nginx_conf(work, site, port)
            _start(server, ["nginx", "-p", str(conf.parent), "-c", str(conf),
                            "-e", str(conf.parent / "error.log"), "-g", "daemon off;"],
                   dict(os.environ), work)
            servers.append(server)
        for server in servers:
            _wait_ready(server, timeout)
            status, body = _get(server.port, server.path)
            if status != 200 or body != css:
                raise RuntimeError(f"{server.label} ({server.impl}) answered {status} with "
                                   f"{len(body)} bytes for {server.path}, not the CSS file")
        yield servers
    finally:
        for server in servers:
            _stop(server)


def throughput(site: tree.Site, work: Path, impls: list[str], rounds: int, seconds: float,
               connections: int, skip: Callable[[str], None],
               progress: Callable[[str], None] = lambda s: None, load: bool = True) -> dict:
    """``{"gunicorn": {impl: rps}, "granian": {...}, "nginx": {"nginx": rps}}``.

    With ``load=False`` (or without wrk) the servers are only started and
    checked: ``{"checked": ["gunicorn bare", ...]}``.
    """
    found = servers_available(skip)
    if not (found["gunicorn"] or found["granian"] or found["nginx"]):
        return {}
    with running(site, work, impls, found, connections) as servers:
        if not (found["wrk"] and load):
            if found["wrk"]:
                skip("wrk: not run in --tiny mode; the servers were started and checked only")
            return {"checked": [f"{s.label} {s.impl}" for s in servers]}
        for server in servers:  # warm up: imports, first-request paths, connections
            wrk(server.port, server.path, 1, connections)
        for r in range(rounds):
            for server in servers:
                server.rps.append(wrk(server.port, server.path, seconds, connections))
            progress(f"round {r + 1}/{rounds}")
    result: dict = {}
    for server in servers:
        result.setdefault(server.label, {})[server.impl] = statistics.median(server.rps)
    result["spread"] = statistics.median(max(s.rps) / min(s.rps) - 1 for s in servers)
    return result
