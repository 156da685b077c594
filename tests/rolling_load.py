"""The site, the page-load traffic and the checks of the end-to-end rollout
tests (tests/test_rolling_deploy.py: VM hosts; tests/test_container_rollout.py:
container replicas and a bucket): what a release holds, threads loading
pages and every asset they name, and what counts as a broken promise.

A page names every asset of its release through bustware's ``url()``, so the
set of URLs tells which release rendered it; every file but js/vendor.js
and the modules above the leaf carries its release's name in its bytes, so a
body tells which release it is from. Stylesheets reference images and a font
(rewritten references), the page's module graph has a leaf that changes
between releases, and the load follows both.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import itertools
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import brotli
from rolling_stack import StackError

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

def pages_py(code: str) -> str:
    """pages.py of a release whose code is ``code``: the page it renders
    says so in ``data-code``, which tells which code rendered it."""
    return PAGES_PY.replace("@CODE@", code)


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
    content_type: str = ""
    seconds: float = 0.0    # from the request to the end of the body


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
    """A keep-alive connection to Varnish, one replica or an origin, reopened
    after an error, as a browser does. A URL's path is asked for, whatever
    host it names, after ``origin_path``: a CDN whose origin is a bucket
    asks ``/BUCKET/PREFIX`` + the path of the URL it was asked for."""

    def __init__(self, name: str, port: int, origin_path: str = "") -> None:
        self.name = name
        self.port = port
        self.origin_path = origin_path
        self.conn: http.client.HTTPConnection | None = None

    def get(self, url: str, accept_encoding: str | None = None):
        headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
        parts = urlsplit(url)
        path = self.origin_path + parts.path + (f"?{parts.query}" if parts.query else "")
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


class Lane:
    """Where one load thread sends its requests: ``pick(n)`` gives the
    target of the n-th page and the target of its assets."""

    name = "lane"

    def pick(self, n: int) -> tuple[Target, Target] | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class FixedLane(Lane):
    """Pages from ``target``, their assets from each of ``asset_targets`` in
    turn."""

    def __init__(self, target: Target, asset_targets: list[Target]) -> None:
        self.name = target.name
        self.target = target
        self.asset_targets = asset_targets

    def pick(self, n: int) -> tuple[Target, Target]:
        return self.target, self.asset_targets[n % len(self.asset_targets)]

    def close(self) -> None:
        for t in (self.target, *self.asset_targets):
            t.close()


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

    def __init__(self, expected: dict[str, dict[str, str]], lanes: list[Lane]) -> None:
        # {release: {logical path: URL}} -> which release a set of URLs is.
        self.release_of = {frozenset(urls.values()): rev for rev, urls in expected.items()}
        self.loads: list[PageLoad] = []
        self.unavailable: Counter = Counter()   # requests with no answer, by target
        self.down: set[str] = set()             # replicas being restarted now
        self.outside_restart: list[str] = []    # connection errors of replicas not restarting
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.threads = [threading.Thread(target=self._run, args=(lane,), name=f"load-{lane.name}",
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

    def _run(self, lane: Lane) -> None:
        try:
            for n in itertools.count():
                if self.stop.is_set():
                    break
                picked = lane.pick(n)
                if picked is None:  # nowhere to send it now
                    self.stop.wait(0.05)
                    continue
                load = self._page(*picked)
                if load is not None:
                    with self.progress:
                        self.loads.append(load)
                        self.progress.notify_all()
        except BaseException as exc:  # a bug of the test: fail it, with the reason
            self.crashed.append(f"{lane.name}: {exc!r}")
            raise
        finally:
            lane.close()

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
        t0 = time.monotonic()
        try:
            r, body = target.get(url, next(ENCODINGS))
        except (OSError, http.client.HTTPException) as exc:
            self._no_answer(target, url, exc)
            return Fetch(url, None, error=repr(exc))
        encoding = r.getheader("Content-Encoding", "")
        fetch = Fetch(url, r.status, r.getheader("Cache-Control", ""), encoding,
                      cache_hit=len(r.getheader("X-Varnish", "").split()) == 2,
                      content_type=r.getheader("Content-Type", ""),
                      seconds=time.monotonic() - t0)
        if r.status == 200:
            data = decode(body, encoding)
            fetch.digest = hashlib.sha256(data).hexdigest()
            m = MARKER.search(data)
            fetch.release = m[1].decode() if m else None
            if urlsplit(url).path.endswith(".css"):
                for m in REFERENCE.finditer(data):
                    ref = (m[1] or m[2]).decode()
                    fetch.references.append(urlsplit(urljoin(url, ref)).path)
            elif urlsplit(url).path.endswith(".mjs"):
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
    origin_headers: list = field(default_factory=list)    # a CDN-origin key served otherwise
    cache_hits: int = 0

    def zero(self) -> dict[str, int]:
        return {"pages naming URLs of no single release": len(self.mixed_pages),
                "pages rendered by another release's code": len(self.other_code),
                "page loads with an asset of another release": len(self.mismatched),
                "404 or 5xx for a URL a page named": len(self.bad_status),
                "cacheable responses with other bytes than their version's": len(self.wrong_bytes),
                "URLs with two different cacheable bodies": len(self.two_bodies),
                "pages not 200": len(self.page_errors),
                "CDN-origin responses without the immutable header, the type or identity":
                    len(self.origin_headers)}


#: The name of the target that plays a CDN fetching from the bucket.
CDN = "cdn"
#: The Content-Type each kind of file must have at the CDN-origin keys.
TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
         ".png": "image/png", ".woff2": "font/woff2"}


def kind_of(via: str) -> str:
    if via == "varnish":
        return "varnish"
    if via.endswith(f">{CDN}"):
        return "assets from the CDN-origin keys"
    return "page and assets from two replicas" if ">" in via else "replicas"


def _origin_problem(fetch: Fetch) -> str | None:
    """What is wrong with a CDN-origin key's response, if anything: it must
    be 200 (a miss is a broken page), identity, immutable, of its type."""
    if fetch.status != 200:
        return f"status {fetch.status}"
    if fetch.encoding not in ("", "identity"):
        return f"Content-Encoding {fetch.encoding}"
    if "immutable" not in fetch.cache_control:
        return f"Cache-Control {fetch.cache_control!r}"
    suffix = urlsplit(fetch.url).path.rpartition(".")[2]
    want = TYPES.get(f".{suffix}")
    if want and not fetch.content_type.startswith(want):
        return f"Content-Type {fetch.content_type!r}"
    return None


def examine(loads: list[PageLoad], code_of: Mapping[str, str]) -> Findings:
    """``code_of``: {release: the data-code of its pages}."""
    f = Findings()
    bodies: dict[str, set[str]] = defaultdict(set)
    for load in loads:
        kind = kind_of(load.via)
        f.page_loads[kind] += 1
        if load.fetches[:1] and load.fetches[0].url == "/":
            f.page_errors.append((load.via, load.fetches[0].status))
            continue
        if load.release is None:
            f.mixed_pages.append((load.via, load.urls))
        elif load.code != code_of[load.release]:
            f.other_code.append((load.via, load.release, load.code))
        others = set()
        for fetch in load.fetches:
            f.fetches[kind] += 1
            f.cache_hits += fetch.cache_hit
            if fetch.status is None:
                continue
            if kind.startswith("assets from the CDN") and (problem := _origin_problem(fetch)):
                f.origin_headers.append((load.via, fetch.url, problem))
                if fetch.status != 200:  # a miss at the CDN is a broken page
                    f.bad_status.append((load.via, fetch.url, fetch.status))
            elif fetch.status == 404 or fetch.status >= 500:
                f.bad_status.append((load.via, fetch.url, fetch.status))
            if fetch.status != 200:
                continue
            if fetch.release is not None and fetch.release != load.release:
                others.add((fetch.url, fetch.release, fetch.cache_control,
                            f"{fetch.seconds:.2f}s"))
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


def summary(findings: Findings, load: Load, figures: dict) -> str:
    lines = [f"page loads: {dict(findings.page_loads)}; asset fetches: {dict(findings.fetches)}; "
             f"{figures}; Varnish cache hits: {findings.cache_hits}",
             f"page requests unanswered while their replica restarted: {dict(load.unavailable)}"]
    for name, n in findings.zero().items():
        lines.append(f"  {name}: {n}")
    for what in ("mixed_pages", "other_code", "mismatched", "bad_status", "wrong_bytes",
                 "origin_headers"):
        for item in getattr(findings, what)[:5]:
            lines.append(f"  e.g. {what}: {item}")
    for url, digests in list(findings.two_bodies.items())[:5]:
        lines.append(f"  e.g. two bodies: {url} {sorted(d[:12] for d in digests)}")
    for item in load.outside_restart[:5]:
        lines.append(f"  e.g. no answer: {item}")
    return "\n".join(lines)

