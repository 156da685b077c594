"""Serving with a shared store (``store="s3://BUCKET/PREFIX"``, issue 21):
what the store costs a replica, and what it takes to answer a URL only the
store has.

- **start**: construction of ``Bustware(None, ROOT, manifest=...,
  manifest_check="off")`` to the end of its first response (a file of its
  own release), with and without ``store=`` (target: under 100 ms for
  10,000 files with the store);
- **hit**: a GET of a file of the replica's own release, µs per request,
  with and without ``store=`` (the store is never asked on that path);
- **unknown URL**: a version only the bucket's manifest names, against a
  local moto_server: the first request of a fresh replica (boto3 imported
  and its client made), a first fetch with the client warm, and the same
  URL again (held in memory).

In-process and interleaved; medians. moto's server is Python on the same
cores, so the fetch figures are bounded by it more than by the client.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import startup
import tree
from motoserver import aws_env, moto_server

BUCKET = "bustware-bench"
URL = f"s3://{BUCKET}/site/static"


def _environ(path: str) -> dict:
    return {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path,
            "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False}


def _get(app, path: str) -> tuple[str, bytes]:
    got: list[str] = []
    body = app(_environ(path), lambda status, headers, exc=None: got.append(status))
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return got[0], data


def _start_ms(root: Path, manifest: Path, path: str, store: str | None
              ) -> tuple[float, float]:
    """(wall, CPU) ms from construction to the end of the first response.
    The CPU time is the figure a busy shared machine stretches least."""
    from bustware import Bustware

    options = {"store": store} if store else {}
    c0, t0 = time.process_time(), time.perf_counter()
    app = Bustware(None, root, manifest=manifest, manifest_check="off", **options)
    status, _ = _get(app, path)
    took = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
    if status != "200 OK":
        raise SystemExit(f"serve-store: the first request got {status}")
    return took


def _hit_us(app, path: str, batch: float) -> float:
    environ = _environ(path)
    start_response = lambda status, headers, exc=None: None
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + batch
    while True:
        for _ in range(200):
            body = app(dict(environ), start_response)
            close = getattr(body, "close", None)
            if close is not None:
                close()
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return (now - t0) / n * 1e6


def _releases(work: Path, kib: int) -> tuple[Path, str]:
    """Two releases built into one store, the second published to the
    bucket; the first one's replica (its tree and manifest only), and the
    URL of the second one's stylesheet."""
    from bustware import Assets
    from bustware import build as b
    from bustware.localstore import LocalStore
    from bustware.s3store import S3Store

    base = work / "serve-store"
    shutil.rmtree(base, ignore_errors=True)
    site = base / "site"
    (site / "css").mkdir(parents=True)
    line = b"body { color: red; margin: 0 auto; padding: 1px; }\n"
    (site / "css/app.css").write_bytes(line * (kib * 1024 // len(line)))
    b.build(site, keep=2)
    replica = base / "replica"
    shutil.copytree(site, replica)
    (site / "css/app.css").write_bytes(line.replace(b"red", b"blue") * (kib * 1024 // len(line)))
    b.build(site)
    local, remote = LocalStore(site / ".bustware/manifest.json"), S3Store(URL)
    for digest in local.list_objects():
        remote.put_object(digest, local.get_object(digest), local.object_size(digest))
    remote.write_manifest(local.read_manifest().data, None)
    new_url = Assets(site, manifest=site / ".bustware/manifest.json").url("css/app.css")
    return replica, new_url


def _fetch_ms(work: Path, rounds: int) -> dict:
    import boto3

    from bustware import Bustware
    from bustware.s3store import S3Store

    with moto_server() as endpoint, aws_env(endpoint):
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        replica, new_url = _releases(work, 100)
        manifest = replica / ".bustware/manifest.json"
        fresh = []
        for _ in range(max(1, rounds // 3)):  # a fresh interpreter: boto3 imported on use
            code = ("import sys, time; sys.path[:0] = [sys.argv[1]]; import serve_store as s;"
                    "from bustware import Bustware;"
                    "app = Bustware(None, sys.argv[2], manifest=sys.argv[3], "
                    "manifest_check='off', store=sys.argv[4]);"
                    "t0 = time.perf_counter(); st, body = s._get(app, sys.argv[5]);"
                    "assert st == '200 OK', st; print((time.perf_counter() - t0) * 1e3)")
            out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent),
                                  str(replica), str(manifest), URL, new_url],
                                 capture_output=True, text=True, timeout=120,
                                 env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            if out.returncode != 0:
                raise RuntimeError(f"serve-store child failed:\n{out.stderr[-2000:]}")
            fresh.append(float(out.stdout.strip().splitlines()[-1]))
        store = S3Store(URL, connect_timeout=1.0, read_timeout=1.0, max_attempts=1)
        store.read_manifest()  # the client made and connected
        warm, cached = [], []
        for _ in range(rounds):
            app = Bustware(None, replica, manifest=manifest, manifest_check="off", store=store)
            t0 = time.perf_counter()
            status, _body = _get(app, new_url)
            warm.append((time.perf_counter() - t0) * 1e3)
            if status != "200 OK":
                raise RuntimeError(f"serve-store: the unknown URL got {status}")
            t0 = time.perf_counter()
            for _ in range(100):
                _get(app, new_url)
            cached.append((time.perf_counter() - t0) / 100 * 1e6)
        return {"object_kib": 100, "fresh_ms": statistics.median(fresh),
                "warm_ms": statistics.median(warm), "cached_us": statistics.median(cached)}


def measure(work: Path, cfg: dict, skip, log) -> dict | None:
    from bustware import Bustware

    why = startup.manifest_support()
    if why:
        skip(f"serve-store: {why}")
        return None
    files, mb = cfg["files"], cfg["megabytes"]
    log(f"serve-store: start and hit, {files} files")
    big = tree.startup_tree(work, files, mb)
    manifest = work / f"manifest-{big.root.parent.name}" / "manifest.json"
    startup.build_manifest(big.root, manifest)
    probe = Bustware(None, big.root, manifest=manifest, manifest_check="off")
    small = min((a for a in probe.assets if a.size >= 1024), key=lambda a: a.size)
    path = small.url
    rounds = max(3, cfg["startup_rounds"] * 3)
    starts: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
    hits: dict[str, list[float]] = {"without": [], "with": []}
    apps = {"without": probe,
            "with": Bustware(None, big.root, manifest=manifest, manifest_check="off",
                             store=URL)}
    for _ in range(rounds):
        for kind in ("without", "with"):
            starts[kind].append(_start_ms(big.root, manifest, path,
                                          URL if kind == "with" else None))
    for _ in range(cfg["rounds"]):
        for kind in ("without", "with"):
            hits[kind].append(_hit_us(apps[kind], path, cfg["batch"]))
    out: dict = {"files": len(probe.assets), "hit_bytes": small.size,
                 "start_ms": {k: statistics.median(w for w, _ in v) for k, v in starts.items()},
                 "start_cpu_ms": {k: statistics.median(c for _, c in v)
                                  for k, v in starts.items()},
                 "hit_us": {k: statistics.median(v) for k, v in hits.items()}}
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        skip(f"serve-store: the unknown-URL rows need boto3 and moto[server] ({exc})")
        return out
    log("serve-store: an unknown URL fetched from a local moto_server")
    out["fetch"] = _fetch_ms(work, rounds)
    return out


def targets(res: dict | None, verdict) -> list[tuple[str, str, str]]:
    if not res:
        return []
    ms, cpu = res["start_ms"]["with"], res["start_cpu_ms"]["with"]
    shown = f"{ms:.0f} ms ({cpu:.0f} ms CPU)"
    label = (f"a replica's first response with `store=` under 100 ms, {res['files']} files "
             "(manifest_check=\"off\")")
    if res["files"] < 10_000:
        return [(label, shown, f"not the target's tree ({res['files']} files)")]
    return [(label, shown, verdict(ms < 100, f"{ms - 100:.0f} ms over"))]


def markdown(res: dict, cfg: dict) -> str:
    out = ["### Serving with a shared store (`store=`)\n",
           f"In-process, median of interleaved rounds. Start: construction from a manifest of "
           f"{res['files']} files with `manifest_check=\"off\"` to the end of the first "
           f"response. Hit: a GET of a {res['hit_bytes']} B file of the replica's own "
           "release.\n",
           "| | without `store=` | with `store=` |", "|---|---|---|",
           f"| start to first response | {res['start_ms']['without']:.1f} ms "
           f"({res['start_cpu_ms']['without']:.0f} ms CPU) | {res['start_ms']['with']:.1f} ms "
           f"({res['start_cpu_ms']['with']:.0f} ms CPU) |",
           f"| static hit | {res['hit_us']['without']:.2f} µs | "
           f"{res['hit_us']['with']:.2f} µs |", ""]
    f = res.get("fetch")
    if f:
        out += [f"A URL only the bucket's manifest names ({f['object_kib']} KiB object, local "
                "moto_server):\n", "| request | time |", "|---|---|",
                f"| first, fresh replica (boto3 imported, client made) | {f['fresh_ms']:.0f} ms |",
                f"| first, client warm (manifest GET, object GET, digest check) | "
                f"{f['warm_ms']:.1f} ms |",
                f"| again (held in memory) | {f['cached_us']:.1f} µs |", ""]
    return "\n".join(out) + "\n"
