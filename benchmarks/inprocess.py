"""In-process cost of a request, and of a URL helper call.

A request is one call of the WSGI application with a prebuilt environ (a copy
per call, as a server builds a fresh one per request) and a no-op
``start_response``; the iterable is consumed and closed. No
``wsgi.file_wrapper`` is offered, so every implementation reads the file
itself, in Python. The bare app is timed in the same rounds, under the same
environ, and every figure is also given as a ratio to it.

Every cell is first checked: status, who answered (static layer or app) and
the body bytes, so that a figure never times an error page by mistake.
"""

from __future__ import annotations

import io
import itertools
import random
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import apps
import tree

#: (key, label, expected status) in table order.
CASES = (
    ("hit_css", "static hit, 2 KiB CSS", 200),
    ("hit_js", "static hit, 50 KiB JS", 200),
    ("hit_img", "static hit, 1 MiB PNG", 200),
    ("not_modified", "304 (conditional GET of the CSS)", 304),
    ("range", "206 (Range: bytes=1000-1999 of the JS)", 206),
    ("pass", "pass-through to the app (/app/page)", 200),
    ("outdated", "outdated version of the CSS", 200),
)

# What a browser sends for a stylesheet, as a server hands it on.
_BROWSER_HEADERS = {
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "HTTP_ACCEPT": "text/css,*/*;q=0.1",
    "HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.5",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd",
    "HTTP_CONNECTION": "keep-alive",
    "HTTP_REFERER": "http://127.0.0.1:8000/",
    "HTTP_SEC_FETCH_DEST": "style",
    "HTTP_SEC_FETCH_MODE": "no-cors",
    "HTTP_SEC_FETCH_SITE": "same-origin",
}


def environ(path: str, **headers: str) -> dict:
    env = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50312",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **_BROWSER_HEADERS,
    }
    env.update(headers)
    return env


def _write(data: bytes) -> None:
    pass


def _noop_start_response(status, headers, exc_info=None):
    return _write


def request_call(app: Callable, env: dict) -> Callable[[], None]:
    copy = env.copy
    start_response = _noop_start_response

    def call() -> None:
        it = app(copy(), start_response)
        try:
            for _ in it:
                pass
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    return call


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    @property
    def by_app(self) -> bool:
        return apps.BARE_MARK.lower() in self.headers


def fetch(app: Callable, env: dict) -> Answer:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = {k.lower(): v for k, v in headers}
        return _write

    it = app(env.copy(), start_response)
    try:
        body = b"".join(it)
    finally:
        if hasattr(it, "close"):
            it.close()
    return Answer(seen["status"], seen["headers"], body)


def case_environs(name: str, app: Callable, site: tree.Site) -> dict[str, dict]:
    """The environ of every case, as implementation ``name`` is addressed."""
    css = apps.static_path(name, app, tree.CSS)
    js = apps.static_path(name, app, tree.JS)
    envs = {
        "hit_css": environ(css),
        "hit_js": environ(js),
        "hit_img": environ(apps.static_path(name, app, tree.IMG)),
        "range": environ(js, HTTP_RANGE="bytes=1000-1999"),
        "pass": environ("/app/page"),
        "outdated": environ(apps.outdated_path(tree.CSS)),
    }
    # Revalidate with whatever validator the implementation gave out.
    first = fetch(app, envs["hit_css"])
    if "etag" in first.headers:
        envs["not_modified"] = environ(css, HTTP_IF_NONE_MATCH=first.headers["etag"])
    else:
        envs["not_modified"] = environ(
            css, HTTP_IF_MODIFIED_SINCE=first.headers.get("last-modified", ""))
    return envs


def check(case: str, answer: Answer, site: tree.Site) -> str:
    """A short note when the answer is not what the case is about, else ''."""
    expected = {k: s for k, _, s in CASES}[case]
    notes = []
    if answer.status != expected:
        notes.append(str(answer.status))
    if case == "pass":
        if not answer.by_app:
            notes.append("not the app")
        return ", ".join(notes)
    if answer.by_app:
        notes.append("fell through to the app")
        return ", ".join(notes)
    want = {"hit_css": site.read(tree.CSS), "hit_js": site.read(tree.JS),
            "hit_img": site.read(tree.IMG), "not_modified": b"",
            "range": site.read(tree.JS)[1000:2000], "outdated": site.read(tree.CSS)}[case]
    if answer.status == expected and answer.body != want:
        notes.append("wrong body")
    if case == "range" and answer.status == 200:
        notes.append("no ranges")
    return ", ".join(notes)


def calibrate(call: Callable[[], None], batch_seconds: float) -> int:
    """How many calls make a batch of about ``batch_seconds``."""
    number = 1
    while True:
        elapsed = timeit.timeit(call, number=number)
        if elapsed >= batch_seconds / 5 or number >= 1 << 22:
            return max(1, int(number * batch_seconds / max(elapsed, 1e-9)))
        number *= 4


def time_rounds(calls: dict, rounds: int, batch_seconds: float,
                progress: Callable[[str], None] = lambda s: None) -> dict:
    """Median seconds per call of every callable in ``calls``.

    Rounds interleave all callables (in a shuffled order each round) so that
    a noisy neighbour slows every cell alike instead of a few of them.
    """
    numbers = {key: calibrate(call, batch_seconds) for key, call in calls.items()}
    samples: dict = {key: [] for key in calls}
    rng = random.Random(0)
    keys = list(calls)
    for r in range(rounds):
        rng.shuffle(keys)
        for key in keys:
            n = numbers[key]
            samples[key].append(timeit.timeit(calls[key], number=n) / n)
        progress(f"round {r + 1}/{rounds}")
    return {key: {"median": statistics.median(v), "min": min(v), "samples": len(v)}
            for key, v in samples.items()}


def requests(site: tree.Site, names: Sequence[str], rounds: int, batch_seconds: float,
             progress: Callable[[str], None] = lambda s: None) -> dict:
    """The request table: ``{impl: {case: {us, ratio, note}}}``."""
    calls = {}
    notes = {}
    bare = apps.bare_app(site.read(tree.CSS))
    for name in names:
        app = apps.build(name, site.root, bare)
        for case, env in case_environs(name, app, site).items():
            notes[name, case] = check(case, fetch(app, env), site)
            calls[name, case] = request_call(app, env)
    timed = time_rounds(calls, rounds, batch_seconds, progress)
    table: dict = {}
    for name in names:
        row = table[name] = {}
        for case, _, _ in CASES:
            us = timed[name, case]["median"] * 1e6
            floor = timed["bare", case]["median"] * 1e6
            row[case] = {"us": us, "min_us": timed[name, case]["min"] * 1e6,
                         "ratio": us / floor, "note": notes[name, case]}
    return table


def url_helpers(site: tree.Site, rounds: int, batch_seconds: float,
                skip: Callable[[str], None]) -> dict:
    """Seconds per URL helper call: bustware's two against Flask's url_for."""
    from bustware import Assets, Bustware

    path = tree.CSS
    bust = Bustware(None, site.static)
    assets = Assets(site.static)
    calls = {
        "Bustware.url": timeit.Timer("url(p)", globals={"url": bust.url, "p": path}).timeit,
        "Assets.url": timeit.Timer("url(p)", globals={"url": assets.url, "p": path}).timeit,
        "dict lookup (floor)": timeit.Timer(
            "get(p)", globals={"get": {path: "x"}.get, "p": path}).timeit,
    }
    expected = bust.url(path)
    if assets.url(path) != expected or "/static/css/app." not in expected:
        raise AssertionError(f"URL helpers disagree: {bust.url(path)!r} {assets.url(path)!r}")
    context = None
    if apps.importlib.util.find_spec("flask") is None:
        skip("flask: not installed (pip install flask): url_for not measured")
    else:
        import flask

        flask_app = flask.Flask("bench", static_folder=str(site.static),
                                static_url_path="/static")
        context = flask_app.test_request_context("/")
        context.push()
        if flask.url_for("static", filename=path) != "/static/" + path:
            raise AssertionError(flask.url_for("static", filename=path))
        calls["Flask url_for('static')"] = timeit.Timer(
            "url_for('static', filename=p)",
            globals={"url_for": flask.url_for, "p": path}).timeit
    try:
        numbers = {}
        for key, run in calls.items():
            number = 1
            while (elapsed := run(number)) < batch_seconds / 5 and number < 1 << 24:
                number *= 4
            numbers[key] = max(1, int(number * batch_seconds / max(elapsed, 1e-9)))
        samples: dict = {key: [] for key in calls}
        for _ in range(rounds):
            for key, run in calls.items():
                samples[key].append(run(numbers[key]) / numbers[key])
    finally:
        if context is not None:
            context.pop()
    return {key: {"us": statistics.median(v) * 1e6} for key, v in samples.items()}


def profile(site: tree.Site, seconds: float = 2.0) -> str:
    """cProfile of bustware's hot path: a 2 KiB hit and a pass-through."""
    import cProfile
    import pstats

    bare = apps.bare_app(site.read(tree.CSS))
    app = apps.build("bustware", site.root, bare)
    envs = case_environs("bustware", app, site)
    out = io.StringIO()
    for case in ("hit_css", "pass", "not_modified", "hit_img"):
        call = request_call(app, envs[case])
        n = calibrate(call, seconds / 4)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            call()
        prof.disable()
        out.write(f"\n### bustware, {case} ({n} calls)\n\n")
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


class _ClassMiddleware:
    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def hot_path_breakdown(site: tree.Site, rounds: int, batch_seconds: float) -> dict:
    """Whole requests that bracket bustware's cost: the harness alone, the
    least a pass-through middleware can cost as a function and as a class
    (what ``Bustware`` is), and bustware's own paths."""
    bare = apps.bare_app(site.read(tree.CSS))
    bust = apps.build("bustware", site.root, bare)
    envs = case_environs("bustware", bust, site)

    def function_middleware(environ, start_response):
        return bare(environ, start_response)

    env = envs["pass"]
    steps = {
        "environ.copy() alone": env.copy,
        "bare app (harness included)": request_call(bare, env),
        "bare app with bustware's header list": request_call(
            apps.build("bare-headers", site.root), env),
        "minimal function middleware -> bare app": request_call(function_middleware, env),
        "minimal class middleware (__call__) -> bare app": request_call(
            _ClassMiddleware(bare), env),
        "bustware pass-through": request_call(bust, env),
        "bustware 2 KiB hit": request_call(bust, envs["hit_css"]),
        "bustware 304": request_call(bust, envs["not_modified"]),
        "bustware 206": request_call(bust, envs["range"]),
    }
    timed = time_rounds(steps, rounds, batch_seconds)
    return {key: value["median"] * 1e6 for key, value in timed.items()}


# -- hostile Accept-Encoding (issue 11) ----------------------------------------

#: (key, label, length of the Accept-Encoding value) in table order.
HOSTILE_CASES = (
    ("browser", "browser `Accept-Encoding: gzip, deflate, br, zstd`", None),
    ("hostile_1k", "a new 1 KB value each request (about 140 codings, then gzip)", 1000),
    ("hostile_8k", "a new 8 KB value each request (about 1,000 codings, then gzip)", 8190),
)
HOSTILE_IMPLEMENTATIONS = ("bare", "bustware", "whitenoise", "servestatic")
#: Distinct values per case: more than bustware's memo holds (512), so that
#: no implementation answers from a memo what a real attack would make it parse.
HOSTILE_POOL = 1024


def hostile_values(length: int, count: int = HOSTILE_POOL) -> list[str]:
    """``count`` distinct Accept-Encoding values of ``length`` characters:
    short unknown codings, then ``gzip`` (WhiteNoise's regex scans the whole
    value for ``br`` first, then finds ``gzip``)."""
    values = []
    for n in range(count):
        head = ", ".join(f"c{n}x{i}" for i in range(length // 4))
        head = head[:length - 6].rstrip(", ")
        values.append(f"{head}, gzip".rjust(length))
    return values


def _rotating_call(app: Callable, envs: list[dict]) -> Callable[[], None]:
    """Like request_call, with the next environ of ``envs`` each call."""
    nxt = itertools.cycle(envs).__next__
    start_response = _noop_start_response

    def call() -> None:
        it = app(nxt().copy(), start_response)
        try:
            for _ in it:
                pass
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    return call


def hostile_site(work) -> tree.Site:
    """The benchmark's CSS with brotli and gzip variants beside it, so that
    every implementation negotiates (the main site has no variants)."""
    import shutil
    from pathlib import Path

    from bustware.compress import compress_file

    site = tree.site(Path(work))
    root = Path(work) / "hostile-site"
    css = root / "static" / tree.CSS
    if not css.exists() or css.read_bytes() != site.read(tree.CSS):
        css.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site.static / tree.CSS, css)
        compress_file(css, ("br", "gzip"))
    return tree.Site(root, root / "static")


def hostile_accept_encoding(work, names: Sequence[str], rounds: int, batch_seconds: float,
                            progress: Callable[[str], None] = lambda s: None) -> dict:
    """``{impl: {case: {us, ratio, note}}}`` for the 2 KiB CSS with variants
    under the Accept-Encoding values of HOSTILE_CASES; the note is the
    coding answered."""
    site = hostile_site(work)
    body = site.read(tree.CSS)
    bare = apps.bare_app(body)
    names = [n for n in names if n in HOSTILE_IMPLEMENTATIONS]
    calls, notes = {}, {}
    for name in names:
        app = apps.build(name, site.root, bare)
        path = apps.static_path(name, app, tree.CSS)
        for case, _, length in HOSTILE_CASES:
            if length is None:
                envs = [environ(path)]
            else:
                envs = [environ(path, HTTP_ACCEPT_ENCODING=v) for v in hostile_values(length)]
            answer = fetch(app, envs[-1])
            coding = answer.headers.get("content-encoding", "identity")
            if answer.status != 200:
                notes[name, case] = str(answer.status)
            elif name != "bare" and answer.by_app:
                notes[name, case] = "fell through to the app"
            else:
                notes[name, case] = "" if name == "bare" else coding
            calls[name, case] = _rotating_call(app, envs)
    timed = time_rounds(calls, rounds, batch_seconds, progress)
    table: dict = {}
    for name in names:
        row = table[name] = {}
        for case, _, _ in HOSTILE_CASES:
            us = timed[name, case]["median"] * 1e6
            row[case] = {"us": us, "ratio": us / (timed["bare", case]["median"] * 1e6),
                         "note": notes[name, case]}
    return table


def hostile_markdown(table: dict) -> str:
    """The report's section for ``hostile_accept_encoding``."""
    names = list(table)
    out = ["### Hostile Accept-Encoding, in-process\n",
           "The 2 KiB CSS with `.br` and `.gz` variants beside it; the same median "
           "of interleaved rounds as above, xN the ratio to the bare app. In "
           "parentheses: the coding answered (bustware does not read a value over "
           "1,024 characters: identity, as without the header).\n",
           "| Accept-Encoding | " + " | ".join(names) + " | bustware ÷ whitenoise |",
           "|---" * (len(names) + 2) + "|"]
    for case, label, _ in HOSTILE_CASES:
        cells = []
        for name in names:
            c = table[name][case]
            cell = f"{c['us']:.2f} µs" if c["us"] < 100 else f"{c['us']:.0f} µs"
            if name != "bare":
                cell += f" x{c['ratio']:.1f} ({c['note']})"
            cells.append(cell)
        ratio = ""
        if "bustware" in table and "whitenoise" in table:
            ratio = f"{table['bustware'][case]['us'] / table['whitenoise'][case]['us']:.2f}"
        out.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(out) + "\n"
