"""The README's rolling deploy recipe, followed literally on three hosts
behind haproxy and Varnish, under load: no page ever gets an asset of
another release.

Three "hosts" on 127.0.0.1, each a directory laid out as the recipe says
(releases/, current, shared/) running the recipe's gunicorn command with
``bustware.gunicorn_conf``; haproxy round robin with health checks over them;
Varnish with its default VCL in front of haproxy. Releases v1, v2, v3 and a
rollback to v2 are deployed with the shell commands of the README section
"Rolling deploys", taken from README.md and run as they are (``/srv/app``
replaced by the host's directory), in the recipe's order, one host at a time
where it says so. Meanwhile threads load the page and every asset it names,
every reference inside each stylesheet and every import inside each module
(the page has a module graph whose leaf changes between releases), through
Varnish, straight at each replica, and with the page from one replica and
its assets from another; every response is recorded.

Asserted zero: page loads with an asset of another release; 404 or 5xx for a
URL a page named; cacheable responses whose bytes are not the ones their
version names; URLs that returned two different cacheable bodies.

The test is proven by deliberate faults (``-m slow``: steps run host by host,
a build without --keep, HUP where the recipe says restart), each of which it
must see; run against the code before issue 10's fixes it fails too (HUP
does not deploy, old URLs get new bytes under the immutable header).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import itertools
import os
import random
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import brotli
import pytest
import system_tools
from examples.readme import README
from rolling_stack import (
    Replica,
    StackError,
    base_env,
    free_port,
    haproxy_status,
    start_haproxy,
    start_varnish,
)

from bustware import Assets

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

HOSTS = ("h1", "h2", "h3")
#: The deploys: v1 is installed before the load starts, then rolled forward
#: and back.
DEPLOYS = ("v2", "v3", "v2")
#: The whole test's own deadline (pytest-timeout is the backstop).
BUDGET = 150.0
#: Page loads the load threads make, at least, in each state of the deploy.
LOADS_PER_STATE = 12
#: Seconds a host has, after the recipe's step 2, to render the new release.
SWITCH = 20.0
#: Threads loading pages through Varnish (each replica also gets one).
VARNISH_THREADS = 2
SRV = "/srv/app"
MARKER = re.compile(rb"release (v\d)")
VERSIONED = re.compile(r"\.([0-9a-f]{12})\.[A-Za-z0-9]+$")

# -- the site ------------------------------------------------------------------

#: A reproducible build: these files keep their mtime from release to
#: release, and their size (the release name has the same length), so only
#: their bytes tell the releases apart (defect 1 of issue 10).
EPOCH = 1_700_000_000


def _filler(n: int, seed: str) -> bytes:
    """Incompressible bytes, the same in every release."""
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n)).replace(b"release", b"RELEASE")


def release_files(rev: str) -> dict[str, tuple[bytes, int]]:
    """The static files of release ``rev``: {path: (bytes, mtime)}. Every
    file but js/vendor.js and the modules above the leaf carries its
    release's name in its bytes."""
    n = int(rev[1:])
    rules = "".join(f".r{i}-{rev} {{ margin: {i}px {n}px; }}\n" for i in range(40 + 15 * n))
    later = EPOCH + 1000 * n  # the files whose size changes also change mtime
    return {
        "css/app.css": ((f'/* release {rev} */\n@import url("theme.css");\n'
                         'body { background: url("../img/logo.png") no-repeat; }\n'
                         '@font-face { font-family: "Site"; '
                         'src: url(../fonts/site.woff2) format("woff2"); }\n'
                         + rules).encode(), later),
        "css/theme.css": ((f"/* release {rev} */\n"
                           "h1 { background-image: url('../img/bg.svg'); }\n"
                           + rules[: 600 * n]).encode(), later),
        "img/bg.svg": ((f'<svg xmlns="http://www.w3.org/2000/svg"><!-- release {rev} -->'
                        + '<rect width="10" height="10"/>' * (20 * n) + "</svg>\n").encode(),
                       later),
        "js/app.js": ((f'/* release {rev} */\nconsole.log("app of release {rev}");\n'
                       + "var x = [" + "1, " * 400 + "];\n").encode(), EPOCH),
        "img/logo.png": (b"\x89PNG\r\n\x1a\n" + f"release {rev}".encode()
                         + _filler(3000, "logo"), EPOCH),
        "fonts/site.woff2": (b"wOF2" + f"release {rev}".encode() + _filler(5000, "font"),
                             EPOCH),
        "js/vendor.js": (b"/* the same in every release */\n" + b"var v = 1;\n" * 200, EPOCH),
        # A module graph: the entry and its two imports are the same bytes in
        # every release; only the leaf behind lib/b.mjs changes (same size,
        # same mtime), so only versions that cover the graph tell the
        # releases' entries apart.
        "js/main.mjs": (b'import { a } from "./lib/a.mjs";\nimport { b } from "./lib/b.mjs";\n'
                        b"document.title = a + b;\n", EPOCH),
        "js/lib/a.mjs": (b'export const a = "a";\n', EPOCH),
        "js/lib/b.mjs": (b'import { leaf } from "./leaf.mjs";\nexport const b = leaf;\n', EPOCH),
        "js/lib/leaf.mjs": (f'/* release {rev} */\nexport const leaf = "{rev}";\n'.encode(),
                            EPOCH),
    }


#: What the page names; the font and images also come from stylesheets.
PAGE_ASSETS = ("css/app.css", "css/theme.css", "js/app.js", "js/vendor.js",
               "img/logo.png", "img/bg.svg", "fonts/site.woff2", "js/main.mjs")

#: The app's code of each release: v3 changes it, so by the recipe v3 and
#: the rollback from it restart gunicorn where v2 reloads it with HUP (which
#: keeps the master's code). The page names every asset through bustware's
#: url(), so which release a page belongs to is told by its URLs; its
#: ``data-code`` tells which code rendered it.
CODE = {"v1": "a", "v2": "a", "v3": "b"}


def pages_py(rev: str) -> str:
    return PAGES_PY.replace("@CODE@", CODE[rev])


PAGES_PY = f'''\
import os

ASSETS = {PAGE_ASSETS!r}
CODE = "@CODE@"
REPLICA = os.environ.get("REPLICA", "?")


def render(url, environ, start_response):
    if environ["PATH_INFO"] == "/health":
        body = b"ok"
    else:
        tags = "".join(f'<a data-asset="{{path}}" href="{{url(path)}}"></a>\\n' for path in ASSETS)
        body = (f'<!doctype html><html data-code="{{CODE}}" data-replica="{{REPLICA}}" '
                f'data-pid="{{os.getpid()}}">'
                f"\\n{{tags}}</html>\\n").encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-store")])
    return [body]
'''


def wsgi_py(snippet: str) -> str:
    """wsgi.py: the README's python snippet of the recipe, around our page."""
    return ("from bustware import Bustware\n\nimport pages\n\n\n"
            "def app(environ, start_response):\n"
            "    return pages.render(application.url, environ, start_response)\n\n\n"
            + snippet)


def write_artifacts(dest: Path, rev: str, snippet: str) -> Path:
    """What CI hands the deploy for release ``rev``: ``build/`` with the
    code and ``static/``, mtimes as a reproducible build leaves them."""
    build = dest / rev / "build"
    for rel, (data, mtime) in release_files(rev).items():
        path = build / "static" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
    for name, text in (("pages.py", pages_py(rev)), ("wsgi.py", wsgi_py(snippet))):
        (build / name).write_text(text)
        os.utime(build / name, (EPOCH, EPOCH))
    return dest / rev


# -- the recipe, from the README ----------------------------------------------


@dataclass
class Recipe:
    snippet: str         # wsgi.py
    start: str           # the gunicorn command
    everywhere: str      # step 1: on every host before step 2 anywhere
    one_at_a_time: str   # step 2: one host at a time
    settle: float        # seconds between step 1 on the last host and step 2


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Rolling deploys\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _block_after(text: str, phrase: str, lang: str) -> str:
    said = re.search(r"\s+".join(map(re.escape, phrase.split())), text)  # lines wrap anywhere
    assert said, f"README 'Rolling deploys' no longer says {phrase!r}: update this test"
    m = re.compile(rf"^```{lang}\n(.*?)^```", re.S | re.M).search(text, said.end())
    assert m, f"no ```{lang} block after {phrase!r}"
    return m[1]


def readme_recipe() -> Recipe:
    """The recipe's blocks, found by the words that introduce them. A
    README that changes their shape fails here, not silently."""
    text = _section()
    python = re.findall(r"^```python\n(# wsgi\.py\n.*?)^```", text, re.S | re.M)
    assert len(python) == 1, "one ```python block starting '# wsgi.py' in the recipe"
    starts = [b for b in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
              if "gunicorn -c python:bustware.gunicorn_conf" in b]
    assert len(starts) == 1, "one ```sh block with the recipe's gunicorn command"
    settle = re.search(r"at\s+least\s+`discover_interval`\s+\((\d+(?:\.\d+)?)\s+s\)\s+after\s+"
                       r"step\s+1", text)
    assert settle, "the recipe says how long after step 1 step 2 starts"
    assert HUP in text, f"the recipe's step 2 no longer says {HUP}"
    return Recipe(
        snippet=python[0],
        start=starts[0],
        everywhere=_block_after(text, "**Step 1, on every host**", "sh"),
        one_at_a_time=_block_after(text, "**Step 2, one host at a time**", "sh"),
        settle=float(settle[1]),
    )


HUP = 'kill -HUP "$(cat /srv/app/gunicorn.pid)"'


def on_host(commands: str, host: Path) -> str:
    assert SRV in commands, commands
    return commands.replace(SRV, str(host))


def run_step(commands: str, host: Path, rev: str, cwd: Path, log: list[str]) -> None:
    """Run the recipe's commands with bash, as an operator pastes them."""
    script = on_host(commands, host)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                          env=base_env(REV=rev), capture_output=True, text=True, timeout=60)
    log.append(f"$ REV={rev} ({host.name}) {script.strip()}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise StackError(f"recipe step failed on {host.name} with {done.returncode}:\n"
                         f"{script}\n{done.stdout}{done.stderr}")


# -- the load ------------------------------------------------------------------


@dataclass
class Fetch:
    url: str
    status: int | None      # None: no HTTP response at all
    cache_control: str = ""
    encoding: str = ""
    digest: str = ""        # SHA-256 of the decoded body
    release: str | None = None
    error: str = ""
    references: list[str] = field(default_factory=list)  # of a stylesheet or module
    cache_hit: bool = False  # answered by Varnish from its cache


@dataclass
class PageLoad:
    via: str
    release: str | None     # the release whose URLs the page names, if one
    urls: list[str]
    code: str = ""          # the data-code of the page: which code rendered it
    fetches: list[Fetch] = field(default_factory=list)
    when: float = 0.0


def decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        return brotli.decompress(body)
    assert encoding in ("", "identity"), encoding
    return body


class Target:
    """A keep-alive connection to Varnish or one replica, reopened after an
    error, as a browser does."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, accept_encoding: str | None = None):
        headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
        # A kept-alive connection the server closed meanwhile (a worker
        # stopping after HUP) is retried once on a new one, as browsers do
        # for a GET; a new connection that fails is an error.
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                self.conn.request("GET", path, headers=headers)
                r = self.conn.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if reused and attempt == 1:
                    continue
                raise
            if r.will_close:
                self.close()
            return r, body
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


ENCODINGS = itertools.cycle([None, "gzip", "br, gzip", "gzip, br", None, "br"])
REFERENCE = re.compile(rb"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")
#: The specifiers of static imports, in the site's own modules (written
#: above, one import per line), as a browser follows them.
IMPORT = re.compile(rb"""^\s*(?:(?:import|export)\b[^"'\n]*?\bfrom|import)\s*['"]([^'"]+)['"]""",
                    re.M)


class Load:
    """Threads loading pages, then every asset of each page and every
    reference inside its stylesheets, over their own connections.

    Each thread has a lane: where it loads pages, and where it fetches their
    assets, in turn (a replica's own page from itself, then from the next
    replica: what round robin does to a browser's requests).
    """

    def __init__(self, expected: dict[str, dict[str, str]],
                 lanes: list[tuple[Target, list[Target]]]) -> None:
        # {release: {logical path: URL}} -> which release a set of URLs is.
        self.release_of = {frozenset(urls.values()): rev for rev, urls in expected.items()}
        self.loads: list[PageLoad] = []
        self.unavailable: Counter = Counter()   # requests with no answer, by target
        self.down: set[str] = set()             # replicas being restarted now
        self.outside_restart: list[str] = []    # connection errors of replicas not restarting
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.threads = [threading.Thread(target=self._run, args=lane, name=f"load-{lane[0].name}",
                                         daemon=True) for lane in lanes]
        self.crashed: list[str] = []

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wait_loads(self, n: int, deadline: float) -> None:
        """Until ``n`` more page loads are recorded (progress, not time)."""
        with self.progress:
            goal = len(self.loads) + n
            while len(self.loads) < goal:
                left = deadline - time.monotonic()
                if left <= 0 or self.crashed:
                    raise StackError(f"load made {len(self.loads)} page loads of {goal} in time"
                                     f"{self.crashed}")
                self.progress.wait(min(left, 1.0))

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), f"{t.name} did not stop"

    def _run(self, target: Target, asset_targets: list[Target]) -> None:
        try:
            for n in itertools.count():
                if self.stop.is_set():
                    break
                load = self._page(target, asset_targets[n % len(asset_targets)])
                if load is not None:
                    with self.progress:
                        self.loads.append(load)
                        self.progress.notify_all()
        except BaseException as exc:  # a bug of the test: fail it, with the reason
            self.crashed.append(f"{target.name}: {exc!r}")
            raise
        finally:
            for t in (target, *asset_targets):
                t.close()

    def _no_answer(self, target: Target, what: str, exc: BaseException) -> None:
        if target.name in self.down:
            self.unavailable[target.name] += 1
        else:
            self.outside_restart.append(f"{target.name} {what}: {exc!r}")
        # A browser does not retry in a tight loop either; this also leaves
        # the CPU to the replica that is starting.
        self.stop.wait(0.1)

    def _page(self, target: Target, asset_target: Target) -> PageLoad | None:
        try:
            r, body = target.get("/")
        except (OSError, http.client.HTTPException) as exc:
            self._no_answer(target, "/", exc)
            return None
        urls = re.findall(r'href="([^"]+)"', body.decode()) if r.status == 200 else []
        code = re.search(rb'data-code="(\w+)"', body)
        via = target.name if asset_target is target else f"{target.name}>{asset_target.name}"
        load = PageLoad(via, self.release_of.get(frozenset(urls)), urls,
                        code=code[1].decode() if code else "", when=time.monotonic())
        if r.status != 200:
            load.fetches.append(Fetch("/", r.status))
            return load
        queue, seen = list(urls), set(urls)
        while queue:
            url = queue.pop(0)
            fetch = self._asset(asset_target, url)
            load.fetches.append(fetch)
            if fetch.status == 200 and urlsplit(url).path.endswith((".css", ".mjs")):
                for ref in fetch.references:
                    if ref not in seen:
                        seen.add(ref)
                        queue.append(ref)
        return load

    def _asset(self, target: Target, url: str) -> Fetch:
        try:
            r, body = target.get(url, next(ENCODINGS))
        except (OSError, http.client.HTTPException) as exc:
            self._no_answer(target, url, exc)
            return Fetch(url, None, error=repr(exc))
        encoding = r.getheader("Content-Encoding", "")
        fetch = Fetch(url, r.status, r.getheader("Cache-Control", ""), encoding,
                      cache_hit=len(r.getheader("X-Varnish", "").split()) == 2)
        if r.status == 200:
            data = decode(body, encoding)
            fetch.digest = hashlib.sha256(data).hexdigest()
            m = MARKER.search(data)
            fetch.release = m[1].decode() if m else None
            if url.split("?")[0].endswith(".css"):
                for m in REFERENCE.finditer(data):
                    ref = (m[1] or m[2]).decode()
                    fetch.references.append(urlsplit(urljoin(url, ref)).path)
            elif url.split("?")[0].endswith(".mjs"):
                for m in IMPORT.finditer(data):
                    fetch.references.append(urlsplit(urljoin(url, m[1].decode())).path)
        return fetch


# -- the checks ------------------------------------------------------------------


def cacheable(cache_control: str) -> bool:
    cc = cache_control.lower()
    if "no-store" in cc or "no-cache" in cc or "private" in cc:
        return False
    m = re.search(r"max-age=(\d+)", cc)
    return "immutable" in cc or bool(m and int(m[1]) > 0)


@dataclass
class Findings:
    page_loads: Counter = field(default_factory=Counter)
    fetches: Counter = field(default_factory=Counter)
    mixed_pages: list = field(default_factory=list)       # URLs of no single release
    other_code: list = field(default_factory=list)        # code of another release
    mismatched: list = field(default_factory=list)        # an asset of another release
    bad_status: list = field(default_factory=list)        # 404 / 5xx for a named URL
    wrong_bytes: list = field(default_factory=list)       # cacheable, not the version's bytes
    two_bodies: dict = field(default_factory=dict)        # URL -> cacheable digests
    page_errors: list = field(default_factory=list)       # a page that was not 200
    cache_hits: int = 0

    def zero(self) -> dict[str, int]:
        return {"pages naming URLs of no single release": len(self.mixed_pages),
                "pages rendered by another release's code": len(self.other_code),
                "page loads with an asset of another release": len(self.mismatched),
                "404 or 5xx for a URL a page named": len(self.bad_status),
                "cacheable responses with other bytes than their version's": len(self.wrong_bytes),
                "URLs with two different cacheable bodies": len(self.two_bodies),
                "pages not 200": len(self.page_errors)}


def examine(loads: list[PageLoad]) -> Findings:
    f = Findings()
    bodies: dict[str, set[str]] = defaultdict(set)
    for load in loads:
        kind = ("varnish" if load.via == "varnish" else
                "page and assets from two replicas" if ">" in load.via else "replicas")
        f.page_loads[kind] += 1
        if load.fetches[:1] and load.fetches[0].url == "/":
            f.page_errors.append((load.via, load.fetches[0].status))
            continue
        if load.release is None:
            f.mixed_pages.append((load.via, load.urls))
        elif load.code != CODE[load.release]:
            f.other_code.append((load.via, load.release, load.code))
        others = set()
        for fetch in load.fetches:
            f.fetches[kind] += 1
            f.cache_hits += fetch.cache_hit
            if fetch.status is None:
                continue
            if fetch.status == 404 or fetch.status >= 500:
                f.bad_status.append((load.via, fetch.url, fetch.status))
            if fetch.status != 200:
                continue
            if fetch.release is not None and fetch.release != load.release:
                others.add((fetch.url, fetch.release, fetch.cache_control))
            if cacheable(fetch.cache_control):
                bodies[fetch.url].add(fetch.digest)
                m = VERSIONED.search(urlsplit(fetch.url).path)
                if m is None or not fetch.digest.startswith(m[1]):
                    f.wrong_bytes.append((load.via, fetch.url, fetch.cache_control,
                                          fetch.encoding, fetch.release))
        if others:
            f.mismatched.append((load.via, load.release, sorted(others)))
    f.two_bodies = {url: d for url, d in bodies.items() if len(d) > 1}
    return f


# -- the deploy -------------------------------------------------------------------


def expected_urls(artifacts: Path) -> dict[str, str]:
    """Each logical path's URL in a release, computed by bustware itself
    from the release's files."""
    assets = Assets(artifacts / "build" / "static")
    return {path: assets.url(path) for path in PAGE_ASSETS}


def wait_serving(replica: Replica, urls: dict[str, str], deadline: float) -> None:
    """Until the replica's pages name ``urls`` on several fresh connections
    (both workers answer)."""
    want = set(urls.values())
    seen_ok = 0
    last = None
    while seen_ok < 6:
        if time.monotonic() > deadline:
            raise StackError(f"{replica.name} still renders {last} after the recipe, "
                             f"not {sorted(want)}")
        target = Target(replica.name, replica.port)
        try:
            _r, body = target.get("/")
            last = set(re.findall(r'href="([^"]+)"', body.decode()))
            seen_ok = seen_ok + 1 if last == want else 0
        except (OSError, http.client.HTTPException):
            seen_ok = 0
        finally:
            target.close()
        if seen_ok == 0:
            time.sleep(0.1)


def wait_in_rotation(work: Path, replica: Replica, deadline: float) -> None:
    """Until haproxy's health check has the replica UP."""
    while (status := haproxy_status(work).get(replica.name)) != "UP":
        if time.monotonic() > deadline:
            raise StackError(f"haproxy still has {replica.name} {status}")
        time.sleep(0.1)


def wait_gone(pids: set[int], what: str, deadline: float) -> None:
    while pids := {p for p in pids if Path(f"/proc/{p}").exists()
                   and "zombie" not in _state(p)}:
        if time.monotonic() > deadline:
            raise StackError(f"{what}: processes {sorted(pids)} did not stop")
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


#: Deliberate faults, each of which the test must see (test_the_test_sees):
#: "steps-per-host": both steps on one host, then the next host (new pages
#: reach hosts whose store has no new build); "no-keep": the build without
#: --keep (no old bytes, no new ones for discovery); "hup-code": HUP where the
#: recipe says restart, for a release that changes code.
FAULTS = ("steps-per-host", "no-keep", "hup-code")


def rolling_deploy(tmp_path: Path, recipe: Recipe, stack: contextlib.ExitStack,
                   report: list[str], problems: list[str],
                   fault: str | None = None) -> tuple[Load, dict]:
    """Install v1, start the stack and the load, deploy DEPLOYS by the
    recipe; return the load (stopped) and figures. What went wrong with the
    deploy itself goes to ``problems``."""
    deadline = time.monotonic() + BUDGET
    work = tmp_path / "work"
    work.mkdir()
    artifacts = {rev: write_artifacts(tmp_path / "artifacts", rev, recipe.snippet)
                 for rev in ("v1", "v2", "v3")}
    expected = {rev: expected_urls(a) for rev, a in artifacts.items()}
    everywhere = recipe.everywhere
    if fault == "no-keep":
        assert " --keep 3" in everywhere, everywhere
        everywhere = everywhere.replace(" --keep 3", "")
    replicas = []
    for name in HOSTS:
        root = tmp_path / name
        # The layout the recipe gives each host (rsync makes only the last
        # directory of its destination).
        (root / "releases").mkdir(parents=True)
        (root / "shared" / "bustware").mkdir(parents=True)
        port = free_port()
        start = on_host(recipe.start, root)
        assert "--bind 0.0.0.0:8000" in start, recipe.start
        start = start.replace("--bind 0.0.0.0:8000", f"--bind 127.0.0.1:{port}")
        replicas.append(Replica(name, root, start, port))
    log: list[str] = []

    def step1(rev: str, replica: Replica) -> None:
        run_step(everywhere, replica.root, rev, artifacts[rev], log)
        # The release's wsgi.py holds the recipe's snippet: with this
        # host's paths.
        wsgi = replica.root / "releases" / rev / "wsgi.py"
        wsgi.write_text(on_host(wsgi_py(recipe.snippet), replica.root))

    def step2(rev: str, replica: Replica, restart: bool) -> set[int]:
        """Step 2 on one host; returns the workers it replaced."""
        old_workers = replica.workers()
        run_step(recipe.one_at_a_time.replace(HUP, "true") if restart else recipe.one_at_a_time,
                 replica.root, rev, artifacts[rev], log)
        if restart:
            load.down.add(replica.name)
            t0 = time.monotonic()
            replica.stop()
            t1 = time.monotonic()
            replica.start()
            load.down.discard(replica.name)
            report.append(f"  {replica.name} restart: stop {t1 - t0:.1f}s, "
                          f"start {time.monotonic() - t1:.1f}s")
        try:
            wait_serving(replica, expected[rev], min(deadline, time.monotonic() + SWITCH))
            # One host at a time: the next one goes out of rotation only
            # when this one is back in.
            wait_in_rotation(work, replica, min(deadline, time.monotonic() + SWITCH))
        except StackError as exc:  # counted; the deploy goes on, as an operator's would
            problems.append(f"{rev}: {exc}")
        return old_workers

    # v1: step 1 on every host, then step 2, where the service starts by
    # the recipe's command (nothing to HUP yet).
    for replica in replicas:
        step1("v1", replica)
    for replica in replicas:
        run_step(recipe.one_at_a_time.replace(HUP, "true"), replica.root, "v1",
                 artifacts["v1"], log)
        stack.callback(replica.stop)
        replica.start()
        wait_serving(replica, expected["v1"], deadline)
    haproxy, lb_port = start_haproxy(work, {r.name: r.port for r in replicas})
    stack.callback(haproxy.stop)
    haproxy.wait_listening(lb_port, 20)
    for replica in replicas:
        wait_in_rotation(work, replica, deadline)
    varnish, cache_port = start_varnish(work, lb_port)
    stack.callback(varnish.stop)
    varnish.wait_listening(cache_port, 30)

    lanes = []
    for _ in range(VARNISH_THREADS):
        cache = Target("varnish", cache_port)
        lanes.append((cache, [cache]))
    for i, r in enumerate(replicas):
        own = Target(r.name, r.port)
        other = replicas[(i + 1) % len(replicas)]
        lanes.append((own, [own, Target(other.name, other.port)]))
    load = Load(expected, lanes)
    stack.callback(load.finish)
    started = time.monotonic()
    load.start()
    previous = "v1"
    try:
        load.wait_loads(LOADS_PER_STATE, deadline)
        for rev in DEPLOYS:
            t0 = time.monotonic()
            # "HUP does not load new Python code: when the release changes
            # code, restart the service on that host instead of HUP (stop
            # gunicorn, wait for it to exit, start it as above)".
            restart = CODE[rev] != CODE[previous] and fault != "hup-code"
            replaced = []
            if fault == "steps-per-host":
                for replica in replicas:
                    step1(rev, replica)
                    replaced.append(step2(rev, replica, restart))
                    load.wait_loads(LOADS_PER_STATE, deadline)
            else:
                for replica in replicas:           # step 1, on every host
                    step1(rev, replica)
                    load.wait_loads(LOADS_PER_STATE, deadline)
                time.sleep(recipe.settle)          # the wait the recipe asks for
                for replica in replicas:           # step 2, one host at a time
                    replaced.append(step2(rev, replica, restart))
                    load.wait_loads(LOADS_PER_STATE, deadline)
            # "Start the next deploy only when every process of the one
            # before has stopped."
            for old in replaced:
                wait_gone(old, f"workers before {rev}", deadline)
            report.append(f"deploy {rev} ({'restart' if restart else 'HUP'}): "
                          f"{time.monotonic() - t0:.1f}s")
            previous = rev
        load.wait_loads(LOADS_PER_STATE, deadline)
    except StackError as exc:
        problems.append(str(exc))
    load.finish()
    figures = {"load seconds": round(time.monotonic() - started, 1)}
    (work / "recipe.log").write_text("\n".join(log))
    return load, figures


def summary(findings: Findings, load: Load, figures: dict) -> str:
    lines = [f"page loads: {dict(findings.page_loads)}; asset fetches: {dict(findings.fetches)}; "
             f"{figures}; Varnish cache hits: {findings.cache_hits}",
             f"page requests unanswered while their replica restarted: {dict(load.unavailable)}"]
    for name, n in findings.zero().items():
        lines.append(f"  {name}: {n}")
    for what in ("mixed_pages", "other_code", "mismatched", "bad_status", "wrong_bytes"):
        for item in getattr(findings, what)[:5]:
            lines.append(f"  e.g. {what}: {item}")
    for url, digests in list(findings.two_bodies.items())[:5]:
        lines.append(f"  e.g. two bodies: {url} {sorted(d[:12] for d in digests)}")
    for item in load.outside_restart[:5]:
        lines.append(f"  e.g. no answer: {item}")
    return "\n".join(lines)


def deploy_and_examine(tmp_path: Path, fault: str | None = None):
    system_tools.require({"haproxy": "haproxy", "varnishd": "varnish", "rsync": "rsync"})
    recipe = readme_recipe()
    report: list[str] = []
    problems: list[str] = []
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        load, figures = rolling_deploy(tmp_path, recipe, stack, report, problems, fault)
    figures["test seconds"] = round(time.monotonic() - t0, 1)
    findings = examine(load.loads)
    text = "\n".join([*report, *problems, summary(findings, load, figures)])
    print(f"\nrolling deploy, fault={fault}:\n{text}")
    assert not load.crashed, load.crashed
    assert findings.page_loads["varnish"] >= LOADS_PER_STATE, text
    return findings, load, problems, text


def test_rolling_deploy_behind_haproxy_and_varnish(tmp_path):
    findings, load, problems, text = deploy_and_examine(tmp_path)
    assert not problems, text
    assert all(n == 0 for n in findings.zero().values()), text
    assert not load.outside_restart, text
    # The loads did follow the module graph down to its leaf.
    leaves = {f.url for page in load.loads for f in page.fetches if "/js/lib/leaf." in f.url}
    assert len(leaves) >= 3, (sorted(leaves), text)  # the leaf of v1, v2 and v3


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_the_test_sees_a_faulty_deploy(tmp_path, fault):
    """The test itself, proven: each deliberate fault gives counts above zero
    where the recipe gives none."""
    findings, _, _, text = deploy_and_examine(tmp_path, fault)
    seen = findings.zero()
    if fault == "hup-code":
        assert seen["pages rendered by another release's code"] > 0, text
    else:
        assert seen["page loads with an asset of another release"] > 0, text
