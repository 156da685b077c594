"""The generated files every benchmark reads.

Two trees under the work directory (``benchmarks/.work/`` by default, which
git ignores), both made once and reused by later runs:

``site/static/``
    What the request benchmarks serve: ``css/app.css`` (2 KiB),
    ``js/app.js`` (50 KiB), ``js/vendor.js`` (100 KiB), ``img/hero.png``
    (1 MiB) and some filler files, so that no implementation is measured on
    a table of a few entries.
``tree-<files>-<mb>mb/static/``
    What the startup benchmarks index: ``files`` files of about ``mb`` MB in
    total, sizes drawn from a log-normal distribution (many small files, a
    few large ones), text for css/js/svg and incompressible bytes for images
    and fonts. The CSS refers to PNG files of the tree with ``url()``, as
    real stylesheets do, so indexing meets references to resolve.

Content is drawn from a seeded generator, so every run and every machine
indexes the same bytes. A tree is built in a ``.partial-*`` directory and
renamed into place when complete, and a stamp file records what was built: a
run interrupted half way never leaves a tree that a later run would trust.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

CSS_SIZE = 2 * 1024
JS_SIZE = 50 * 1024
MID_SIZE = 100 * 1024
IMG_SIZE = 1024 * 1024

#: Logical paths (relative to the static root) of the served files.
CSS, JS, IMG = "css/app.css", "js/app.js", "img/hero.png"
#: A file of about 100 KB: still held in memory, but its body is no longer
#: small beside a server's per-request cost (the ASGI end-to-end rows).
MID = "js/vendor.js"

_EXTENSIONS = (  # (suffix, share of files, text?)
    (".css", 5, True), (".js", 25, True), (".svg", 10, True),
    (".png", 30, False), (".jpg", 15, False), (".webp", 5, False), (".woff2", 10, False),
)


@dataclass(frozen=True)
class Site:
    root: Path  # the document root: it holds static/
    static: Path

    def read(self, logical: str) -> bytes:
        return (self.static / logical).read_bytes()


@dataclass(frozen=True)
class Tree:
    root: Path  # the static root to index
    files: int
    total_bytes: int


def _text(rng: random.Random, size: int, kind: str, images: list[str] = ()) -> bytes:
    """Plausible CSS or JS source of exactly ``size`` bytes. CSS refers to
    one of ``images`` (paths relative to the file) every 30 rules or so."""
    parts = []
    length = 0
    while length < size:
        n = rng.randrange(1 << 24)
        if kind == "css" and images and n % 30 == 0:
            line = f".bg{n:06x} {{ background: url({rng.choice(images)}) no-repeat; }}\n"
        elif kind == "css":
            line = (f".c{n:06x} {{ color: #{n & 0xFFFFFF:06x}; margin: {n % 40}px "
                    f"{n % 17}px; font-size: {n % 9 + 10}px; }}\n")
        elif kind == "svg":
            line = f'<path d="M{n % 97} {n % 89}L{n % 83} {n % 79}Z" fill="#{n:06x}"/>\n'
        else:
            line = (f"function f{n:06x}(a, b) {{ return a * {n % 1000} + b - "
                    f"{n % 313}; }}\n")
        parts.append(line)
        length += len(line)
    return "".join(parts).encode("ascii")[:size]


def _lines(src: bytes, rng: random.Random, size: int) -> bytes:
    """``size`` bytes of whole lines cut out of ``src`` (a cut through a
    url() would make a reference to nothing), padded with spaces."""
    out = bytearray()
    while len(out) < size:
        start = src.index(b"\n", rng.randrange(len(src) // 2)) + 1
        stop = src.rfind(b"\n", start, start + size - len(out)) + 1
        if stop <= start:  # less than a line to go
            break
        out += src[start:stop]
    return bytes(out) + b" " * (size - len(out))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _build(final: Path, stamp: Path, spec: dict, fill) -> None:
    """Fill a partial directory, rename it to ``final``, then write the stamp."""
    partial = final.parent / f".partial-{final.name}-{os.getpid()}"
    for stale in final.parent.glob(f".partial-{final.name}-*"):
        shutil.rmtree(stale)  # our own leftovers from an interrupted run
    if final.exists():  # no stamp, or a stamp for another spec: not trusted
        shutil.rmtree(final)
    stats = fill(partial)
    os.replace(partial, final)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({**spec, **stats}, indent=1))
    os.replace(tmp, stamp)


def _reuse(stamp: Path, final: Path, spec: dict) -> dict | None:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if not final.is_dir() or any(recorded.get(k) != v for k, v in spec.items()):
        return None
    return recorded


def site(work: Path, fillers: int = 200) -> Site:
    """The served files (made on first use)."""
    final = work / "site"
    stamp = work / "site.json"
    spec = {"version": 2, "fillers": fillers}
    if _reuse(stamp, final, spec) is None:

        def fill(root: Path) -> dict:
            rng = random.Random(6)
            static = root / "static"
            _write(static / CSS, _text(rng, CSS_SIZE, "css"))
            _write(static / JS, _text(rng, JS_SIZE, "js"))
            _write(static / IMG, b"\x89PNG\r\n\x1a\n" + rng.randbytes(IMG_SIZE - 8))
            for i in range(fillers):
                kind = ("css", "js", "svg")[i % 3]
                _write(static / "lib" / f"f{i // 50}" / f"file{i:04d}.{kind}",
                       _text(rng, rng.randrange(512, 8192), kind))
            # Its own generator: the files above stay as version 1 made them.
            _write(static / MID, _text(random.Random(7), MID_SIZE, "js"))
            return {}

        work.mkdir(parents=True, exist_ok=True)
        _build(final, stamp, spec, fill)
    return Site(final, final / "static")


def startup_tree(work: Path, files: int, megabytes: float) -> Tree:
    """``files`` files of about ``megabytes`` MB in total (made on first use)."""
    if files < 1 or megabytes <= 0:
        raise ValueError(f"files={files!r} and megabytes={megabytes!r} must be positive")
    name = f"tree-{files}-{megabytes:g}mb"
    final = work / name
    stamp = work / f"{name}.json"
    spec = {"version": 3, "files": files, "megabytes": megabytes}
    recorded = _reuse(stamp, final, spec)
    if recorded is None:

        def fill(root: Path) -> dict:
            rng = random.Random(files)
            target = int(megabytes * 1_000_000)
            weights = [rng.lognormvariate(0.0, 1.3) for _ in range(files)]
            scale = target / sum(weights)
            kinds = [ext for ext, share, _ in _EXTENSIONS for _ in range(share)]
            texts = {ext for ext, _, text in _EXTENSIONS if text}
            name = [f"d{i // 100:03d}/file{i:05d}{kinds[i % len(kinds)]}" for i in range(files)]
            images = [f"../{n}" for n in name if n.endswith(".png")][:500]
            # Text is slow to generate: cut pieces out of one pool per kind.
            pool_size = min(1 << 22, max(1 << 16, target // 4))
            pool = {ext: _text(rng, pool_size, ext[1:], images) for ext in texts}
            total = 0
            for i, w in enumerate(weights):
                size = max(64, min(4 << 20, int(w * scale)))
                ext = kinds[i % len(kinds)]
                if ext in texts:
                    data = _lines(pool[ext], rng, size)
                else:
                    data = rng.randbytes(size)
                _write(root / "static" / name[i], data)
                total += len(data)
            return {"total_bytes": total}

        work.mkdir(parents=True, exist_ok=True)
        _build(final, stamp, spec, fill)
        recorded = json.loads(stamp.read_text())
    return Tree(final / "static", files, recorded["total_bytes"])
