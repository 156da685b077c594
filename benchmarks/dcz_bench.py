"""Delta updates (issue 24): the bytes a returning visitor downloads after
a deploy, by coding (identity, gzip, br, and dcz against the version in
their cache), on real npm package updates and on the demo site; the build
time the deltas add; the cost of a dcz request next to a br one, in process.

The npm packages are installed at two versions into the work directory
(``npm install --prefix``); without npm or the registry the rows are
skipped with a line saying so."""

from __future__ import annotations

import base64
import gzip
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from bustware.dictionaries import encode_dcz

#: (package, old version, new version, file): a patch and minor updates.
PACKAGES = [
    ("preact", "10.24.3", "10.25.0", "dist/preact.module.js"),
    ("lit-html", "3.2.0", "3.2.1", "lit-html.js"),
    ("d3", "7.8.5", "7.9.0", "dist/d3.min.js"),
    ("vue", "3.4.38", "3.5.13", "dist/vue.esm-browser.prod.js"),
]


def _install(work: Path, pkg: str, version: str) -> Path | None:
    target = work / f"{pkg}@{version}"
    found = target / "node_modules" / pkg
    if found.is_dir():
        return found
    if shutil.which("npm") is None:
        return None
    try:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--prefix", str(target), f"{pkg}@{version}"], check=True,
                       capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return found if found.is_dir() else None


def sizes(old: bytes, new: bytes) -> dict:
    import brotli

    return {"identity": len(new), "gzip": len(gzip.compress(new, 9, mtime=0)),
            "br": len(brotli.compress(new, quality=11)), "dcz": len(encode_dcz(old, new))}


def _demo_pair() -> tuple[bytes, bytes] | None:
    """The demo site's largest text file, and it after a one-line change."""
    static = Path(__file__).resolve().parent.parent / "bustware" / "demo" / "static"
    texts = [p for p in static.rglob("*") if p.suffix in (".js", ".css") and p.is_file()]
    if not texts:
        return None
    old = max(texts, key=lambda p: p.stat().st_size).read_bytes()
    return old, old + b"\n/* release 2 */\n"


def _request_cost(old: bytes, new: bytes, rounds: int) -> dict:
    """Microseconds per request of the new version: br, and dcz against the
    old one (both made before), under WSGI's decide."""
    import tempfile

    import bustware.build as b
    from bustware import Bustware

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "static"
        (root / "js").mkdir(parents=True)
        (root / "js/app.js").write_bytes(old)
        b.build(root, keep=1, compress=["br"])
        (root / "js/app.js").write_bytes(new)
        b.build(root, keep=1, compress=["br"])
        app = Bustware(None, root, manifest=root / ".bustware/manifest.json")
        path = app.url("js/app.js")
        base = {"REQUEST_METHOD": "GET", "QUERY_STRING": ""}
        br = {**base, "HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd, dcb, dcz"}
        dcz = {**br, "HTTP_AVAILABLE_DICTIONARY":
               ":" + base64.b64encode(hashlib.sha256(old).digest()).decode() + ":"}
        out = {}
        for name, request in (("br", br), ("dcz", dcz)):
            reply = app.decide(path, request)
            assert ("Content-Encoding", name) in reply.headers, reply.headers
            best = float("inf")
            for _ in range(rounds):
                n = 2000
                started = time.perf_counter()
                for _ in range(n):
                    app.decide(path, request)
                best = min(best, (time.perf_counter() - started) / n)
            out[name] = best * 1e6
        return out


def _build_cost(old: bytes, new: bytes) -> dict:
    """Seconds of the second build (release 2, --keep 1) with and without deltas."""
    import tempfile

    import bustware.build as b

    out = {}
    for deltas in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "static"
            root.mkdir()
            (root / "lib.js").write_bytes(old)
            b.build(root, keep=1, deltas=deltas)
            (root / "lib.js").write_bytes(new)
            started = time.perf_counter()
            b.build(root, keep=1, deltas=deltas)
            out["with" if deltas else "without"] = time.perf_counter() - started
    return out


def measure(work: Path, cfg: dict, skip, log) -> dict:
    work = work / "dcz"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    packages = PACKAGES
    if cfg["mode"] == "tiny":
        # No registry in the runner's own check: it must stay fast offline.
        skip("dcz: npm packages not fetched in --tiny mode (run it with --only dcz)")
        packages = []
    for pkg, a, b_, file in packages:
        log(f"dcz: {pkg} {a} -> {b_}")
        old_dir, new_dir = _install(work, pkg, a), _install(work, pkg, b_)
        if old_dir is None or new_dir is None:
            skip(f"dcz: {pkg} {a} -> {b_}: npm or the registry unreachable")
            continue
        try:
            old, new = (old_dir / file).read_bytes(), (new_dir / file).read_bytes()
        except OSError as exc:
            skip(f"dcz: {pkg}: {exc}")
            continue
        rows.append({"what": f"{pkg} {a} → {b_} (`{file}`)", **sizes(old, new),
                     "pair": (old, new)})
    demo = _demo_pair()
    if demo is not None:
        rows.append({"what": "demo site, largest text file, one line added", **sizes(*demo),
                     "pair": demo})
    out: dict = {"rows": [{k: v for k, v in r.items() if k != "pair"} for r in rows]}
    if rows:
        biggest = max(rows, key=lambda r: r["identity"])
        log("dcz: build and request cost")
        out["build"] = {"what": biggest["what"], **_build_cost(*biggest["pair"])}
        out["request_us"] = _request_cost(*biggest["pair"], rounds=3)
        out["request_what"] = biggest["what"]
    return out


def markdown(r: dict) -> str:
    out = ["### Delta updates (dcz)\n",
           "Bytes a returning visitor downloads for the new version of a file after a "
           "deploy: identity, gzip -9, brotli 11, and `dcz` (zstd 19 with the version in "
           "their cache as the dictionary, RFC 9842 header included).\n",
           "| update | identity | gzip | br | dcz | dcz / br |", "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        out.append(f"| {row['what']} | {row['identity']:,} | {row['gzip']:,} | "
                   f"{row['br']:,} | {row['dcz']:,} | {row['dcz'] / row['br']:.2f} |")
    out.append("")
    if "build" in r:
        bld = r["build"]
        out.append(f"Build of release 2 (`--keep 1`) of {bld['what']}: "
                   f"{bld['without'] * 1000:.0f} ms without deltas, "
                   f"{bld['with'] * 1000:.0f} ms with (`deltas=False` / default).\n")
    if "request_us" in r:
        us = r["request_us"]
        out.append(f"In-process cost of a request (`Bustware.decide`, {r['request_what']}, "
                   f"both made before): br {us['br']:.1f} µs, dcz {us['dcz']:.1f} µs.\n")
    return "\n".join(out)
