"""A real browser for the tests: headless Chromium loading a page from a
local server that records every request the browser makes.

What the browser did is read on the server side (every request's path,
status and response headers, by a WSGI wrapper under werkzeug's threaded
server) and from the DOM the page leaves after its scripts ran
(``chromium --headless --dump-dom``). A :class:`Profile` is one visitor:
its ``--user-data-dir`` (where Chromium keeps its HTTP cache on disk) is
reused by every launch of that visitor, so a second launch is a returning
visitor with a warm cache.

Each launch runs in its own process group, bounded in time, and the group
is killed when the launch ends, however it ends (Chromium starts a zygote,
GPU and network processes that would otherwise outlive a failed test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

#: Program -> Debian package.
CHROMIUM = {"chromium": "chromium"}
#: Seconds one launch may take, start to exit (a cold start on a loaded
#: two-core machine takes a few).
LAUNCH_TIMEOUT = 60.0
#: Virtual milliseconds the page gets after it loaded: the time its
#: modules' promises and microtasks have to settle before the DOM is dumped.
#: Virtual time does not advance while a request is in flight.
VIRTUAL_TIME_MS = 3000


def find_chromium() -> str | None:
    return shutil.which("chromium")


def require_chromium() -> str:
    """The path of chromium; skips (or fails under ``CI``) without it."""
    import system_tools  # pytest's: the benchmarks use this module without it

    system_tools.require(CHROMIUM)
    path = find_chromium()
    assert path is not None
    return path


@dataclass(frozen=True)
class Request:
    method: str
    path: str        # as the browser sent it, query included
    status: int
    headers: dict[str, str]  # response headers, names lower-case

    @property
    def cache_control(self) -> str:
        return self.headers.get("cache-control", "")


class RecordingServer:
    """``app`` under werkzeug's threaded server on a free port of
    127.0.0.1, recording every request. Use as a context manager."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def _record(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]

        def recording_start_response(status: str, headers: list, exc_info=None):
            with self._lock:
                self.requests.append(Request(environ["REQUEST_METHOD"], path,
                                             int(status.split()[0]),
                                             {k.lower(): v for k, v in headers}))
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)

    def take(self) -> list[Request]:
        """The requests recorded since the last call."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def __enter__(self) -> RecordingServer:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args: object) -> None:  # the test keeps its own log
                pass

        self._server = make_server("127.0.0.1", 0, self._record, threaded=True,
                                   request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="browser-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class LaunchError(AssertionError):
    pass


class Profile:
    """One visitor: a Chromium profile directory kept between launches."""

    def __init__(self, directory: Path, chromium: str) -> None:
        self.directory = directory
        self.chromium = chromium
        self.launches = 0

    def cache_entries(self) -> int:
        """Files in the profile's HTTP disk cache: proof that the cache is
        kept on disk between launches, where a warm launch reads it."""
        return sum(1 for p in self.directory.rglob("Cache_Data/*") if p.is_file())

    def load(self, url: str, *, timeout: float = LAUNCH_TIMEOUT,
             virtual_time_ms: int = VIRTUAL_TIME_MS) -> str:
        """Start Chromium on this profile, load ``url``, return the DOM as
        it is once the page's scripts settled; Chromium has exited when
        this returns."""
        self.launches += 1
        args = [
            self.chromium, "--headless", "--no-sandbox",  # root in CI containers
            f"--user-data-dir={self.directory}",
            "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-features=Translate",
            # Nothing but the page: no proxy lookups, no DNS prefetch.
            "--no-proxy-server", "--dns-prefetch-disable",
            f"--virtual-time-budget={virtual_time_ms}",
            "--dump-dom", url,
        ]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            code: int | None = None
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                kill_group(proc, grace=5.0 if code == 0 else 0.0)
            out.seek(0)
            err.seek(0)
            dom = out.read().decode("utf-8", "replace")
            errors = err.read().decode("utf-8", "replace")
        if code != 0:
            how = f"timed out after {timeout}s" if code is None else f"exited with {code}"
            raise LaunchError(f"chromium {how} loading {url}:\n{errors[-3000:]}")
        return dom


def kill_group(proc: subprocess.Popen, *, grace: float = 0.0) -> None:
    """End the launch's process group (Chromium's helpers with it) and reap
    the main process. ``grace``: seconds the helpers get to exit by
    themselves first (after a clean exit the network process may still be
    writing the disk cache the next launch reads)."""
    deadline = time.monotonic() + grace
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # the kernel reaps it
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
