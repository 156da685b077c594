"""The processes of the end-to-end rolling deploy test (tests/test_rolling_deploy.py):
gunicorn replicas, haproxy and Varnish, all on 127.0.0.1 on free ports.

Every process runs in its own session (process group), writes its output to
a log file (a pipe nobody reads would block it), and is stopped by
:meth:`Proc.stop`: SIGTERM to the process, then SIGKILL to its whole group.
The test registers each one in an ExitStack, so they stop even when it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import free_port


class StackError(AssertionError):
    """A process of the stack did not start or stop as it should."""


def tool(name: str) -> str:
    """The absolute path of a Debian package's program; /usr/sbin is not on
    every user's PATH."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""),
                                                     "/usr/sbin", "/sbin"]))
    if found is None:
        raise StackError(f"{name} not found: the rolling deploy test needs haproxy, varnish "
                         "and rsync (apt-get install -y haproxy varnish rsync, as .ci/run does)")
    return found


class Proc:
    """A process the test started, in its own process group."""

    def __init__(self, name: str, argv: list[str], *, log: Path, cwd: Path | None = None,
                 env: dict | None = None) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.pid = self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log.read_bytes()[-tail:].decode(errors="replace")
        except OSError:
            return ""

    def wait_listening(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise StackError(f"{self.name} exited with {self.popen.returncode}:\n"
                                 f"{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise StackError(f"{self.name} did not listen on port {port} in "
                                     f"{timeout}s:\n{self.output()}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a graceful stop for gunicorn, haproxy and varnishd), then
        SIGKILL to the group: no worker or child outlives the test."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()


def base_env(**extra: str) -> dict:
    """The test's environment for child processes: our bustware first on the
    path (PYTHONPATH is inherited), the interpreter's scripts on PATH."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDEVMODE", None)  # servers' own sockets are not under test
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def start_haproxy(workdir: Path, backends: dict[str, int]) -> tuple[Proc, int]:
    """haproxy, round robin over ``backends`` with health checks: a replica
    that stops answering leaves the rotation, a refused connection is retried
    on another replica (what an operator configures for rolling restarts)."""
    port = free_port()
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{p} check inter 200ms fall 1 rise 2"
        for name, p in backends.items())
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(f"""\
global
    maxconn 512
    stats socket {workdir / "haproxy.sock"} level admin

defaults
    mode http
    timeout connect 2s
    timeout client 20s
    timeout server 20s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend web
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health
{servers}
""")
    check = subprocess.run([tool("haproxy"), "-c", "-f", str(cfg)], capture_output=True, text=True,
                           timeout=20)
    if check.returncode != 0:
        raise StackError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
    proc = Proc("haproxy", [tool("haproxy"), "-db", "-f", str(cfg)], log=workdir / "haproxy.log")
    return proc, port


def haproxy_command(workdir: Path, command: str) -> str:
    """One command on the stats socket of the haproxy that
    :func:`start_haproxy` started in ``workdir``; its answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(workdir / "haproxy.sock"))
        s.sendall(command.encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode()


def haproxy_server(workdir: Path, server: str, enabled: bool) -> None:
    """Put ``server`` in rotation (health checks decide when it is UP), or
    take it out at once, as an orchestrator removes a terminating replica
    from the service's endpoints before stopping it."""
    answer = haproxy_command(workdir, f"{'enable' if enabled else 'disable'} server "
                                      f"replicas/{server}")
    if answer.strip():
        raise StackError(f"haproxy: {answer.strip()}")


def haproxy_status(workdir: Path) -> dict[str, str]:
    """{server name: status} from the stats socket of the haproxy that
    :func:`start_haproxy` started in ``workdir`` ("UP", "DOWN", "MAINT", ...)."""
    lines = haproxy_command(workdir, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    return {r["svname"]: r["status"].split()[0] for r in rows
            if r["pxname"] == "replicas" and r["svname"] not in ("FRONTEND", "BACKEND")}


def start_varnish(workdir: Path, backend_port: int) -> tuple[Proc, int]:
    """varnishd with its default VCL (``-b``: a backend and nothing else),
    malloc storage and its own work directory; ``-j none`` because the
    test may run as root, where the default jail would switch users that
    cannot write the work directory."""
    port = free_port()
    proc = Proc("varnishd", [
        tool("varnishd"), "-F", "-j", "none", "-n", str(workdir / "varnish"),
        "-a", f"127.0.0.1:{port}", "-b", f"127.0.0.1:{backend_port}",
        "-s", "malloc,64m",
        # Small thread pools: the machine running the tests is shared.
        "-p", "thread_pools=1", "-p", "thread_pool_min=8", "-p", "thread_pool_max=64",
    ], log=workdir / "varnish.log")
    return proc, port



class Replica:
    """One "host": a directory laid out as the README recipe says (releases/,
    current, shared/) and the gunicorn the recipe starts there, by its own
    command line (run with bash, /srv/app replaced by the host's directory).
    The machine is shared: two workers of four threads, through the
    environment variables the shipped config reads.

    A container replica (tests/test_container_rollout.py) is the same with
    ``cwd`` its own copy of the image, its own ``env`` (the AWS variables)
    and no ``--pid`` file: bash runs the one command by ``exec``, so the
    process started is gunicorn's master."""

    def __init__(self, name: str, root: Path, start_line: str, port: int, *,
                 cwd: Path | None = None, env: dict[str, str] | None = None,
                 workers: int = 2) -> None:
        self.name = name
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.pidfile = root / "gunicorn.pid"
        self.start_line = start_line
        self.cwd = cwd
        self.env = env or {}
        self.workers_n = workers
        self.proc: Proc | None = None

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or not self.proc.running(), f"{self.name} is running"
        self.pidfile.unlink(missing_ok=True)
        self.proc = Proc(f"gunicorn {self.name}", ["bash", "-c", self.start_line],
                         log=self.root / "gunicorn.log", cwd=self.cwd,
                         env=base_env(REPLICA=self.name, WEB_CONCURRENCY=str(self.workers_n),
                                      BUSTWARE_THREADS="4", **self.env))
        self.proc.wait_listening(self.port, timeout)

    def master(self) -> int:
        if not self.pidfile.exists() and self.proc is not None:
            return self.proc.pid
        return int(self.pidfile.read_text().strip())

    def workers(self) -> set[int]:
        """The master's worker processes now."""
        master = self.master()
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text()
        except OSError:
            return set()
        return {int(pid) for pid in children.split()}

    def stop(self, timeout: float = 35.0) -> None:
        """A graceful stop: the master takes SIGTERM, closes its socket and
        lets the workers finish their requests; then the group is killed."""
        if self.proc is None:
            return
        if self.proc.running():
            with contextlib.suppress(OSError, ValueError):
                os.kill(self.master(), signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(timeout=timeout)
        self.proc.stop(timeout=1)
