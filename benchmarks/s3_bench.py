"""Building into a bucket: ``bustware build --store s3://...`` against moto's
server on 127.0.0.1 (moto is not S3: no network latency, and a Python server
whose own CPU competes with the build's on this machine).

- **first build**: a build into an empty bucket prefix, from a fresh copy
  of the tree, in this process; against a **plain parallel upload** of the
  same bodies (every key the build wrote, read back into memory first) with
  the same client configuration and as many threads (16). Target: the
  build's upload at most 1.5x the plain upload; the upload share is the
  first build's wall time less a local build's (``--store`` left out) of
  the same tree.
- **no-op rebuild**: the same tree from another fresh copy (a CI runner: no
  local manifest, other file times) into the same prefix: it lists the
  bucket, sends nothing and writes no manifest. Target: under 2 s for a few
  thousand files.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tree
from motoserver import aws_env, moto_server

#: Per mode: (files, MB) of the generated tree, and rounds.
SIZES = {"full": ((3_000, 30), 3), "quick": ((2_000, 20), 1), "tiny": ((60, 0.3), 1)}
THREADS = 16


def _copy(root: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(root, dest / "static")
    return dest


def _build(where: Path, store: str | None) -> float:
    from bustware.build import build

    started = time.perf_counter()
    build(where / "static", where / "static/.bustware/manifest.json", keep=2, store=store)
    return time.perf_counter() - started


def _plain_upload(client, bucket: str, bodies: dict[str, bytes]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=THREADS) as ex:
        for _ in ex.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                        bodies.items()):
            pass
    return time.perf_counter() - started


def measure(work: Path, cfg: dict, skip, log) -> dict | None:
    try:
        import boto3
        import moto.server  # noqa: F401
    except ImportError as exc:
        skip(f"s3: needs boto3 and moto's server (pip install boto3 'moto[server]'): {exc}")
        return None
    import boto3
    from botocore.config import Config

    from bustware.storeurl import BUILD_TIMEOUTS

    (files, mb), rounds = SIZES[cfg["mode"]]
    source = tree.startup_tree(work, files, mb).root
    rows = []
    with moto_server(work / "moto-s3.log") as endpoint, aws_env(endpoint):
        # A client configured as the build's store configures its own.
        client = boto3.client("s3", config=Config(
            connect_timeout=BUILD_TIMEOUTS["connect_timeout"],
            read_timeout=BUILD_TIMEOUTS["read_timeout"],
            retries={"total_max_attempts": int(BUILD_TIMEOUTS["max_attempts"]),
                     "mode": "standard"},
            max_pool_connections=int(BUILD_TIMEOUTS["max_connections"])))
        for i in range(rounds):
            log(f"s3: round {i + 1} of {rounds}, {files} files")
            local = _build(_copy(source, work / "s3-local"), None)
            bucket = f"bench-{i}"
            client.create_bucket(Bucket=bucket)
            first = _build(_copy(source, work / "s3-ci1"), f"s3://{bucket}/site")
            noop = _build(_copy(source, work / "s3-ci2"), f"s3://{bucket}/site")
            keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="site/") for o in page.get("Contents", ())
                if o["Key"] != "site/manifest.json"]
            bodies = {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
            plain_bucket = f"bench-plain-{i}"
            client.create_bucket(Bucket=plain_bucket)
            plain = _plain_upload(client, plain_bucket, bodies)
            rows.append({"local": local, "first": first, "noop": noop, "plain": plain,
                         "keys": len(bodies), "bytes": sum(map(len, bodies.values())),
                         "upload_ratio": max(first - local, 0.0) / plain,
                         "wall_ratio": first / plain})
        for d in ("s3-local", "s3-ci1", "s3-ci2"):
            shutil.rmtree(work / d, ignore_errors=True)
    best = sorted(rows, key=lambda r: r["upload_ratio"])[len(rows) // 2]
    return {**best, "files": files, "megabytes": mb, "rounds": rounds,
            "noop_median": statistics.median(r["noop"] for r in rows),
            "load": os.getloadavg()[0]}


def markdown(r: dict) -> str:
    return "\n".join([
        "### Build into a bucket (moto on 127.0.0.1)\n",
        f"A generated tree of {r['files']:,} files ({r['megabytes']:g} MB), `--keep 2`, no "
        f"compression, median of {r['rounds']} by upload ratio; load {r['load']:.1f}. moto is "
        "not S3: no network latency, and its Python server shares this machine's cores "
        "with the build, so the figures say how the build's own work compares with a plain "
        "upload, not what S3 takes. Plain upload: the same bodies (every key the first "
        "build wrote: objects and CDN-origin keys), held in memory, sent by 16 threads "
        "with the store's client. Upload share: the first build less a local build of the "
        "same tree.\n",
        "| local build | first build into the bucket | upload share | plain parallel upload "
        "| keys, MB | upload share ÷ plain | first build ÷ plain | no-op rebuild |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['local']:.2f} s | {r['first']:.2f} s | {r['first'] - r['local']:.2f} s | "
        f"{r['plain']:.2f} s | {r['keys']:,}, {r['bytes'] / 1e6:.1f} | "
        f"{r['upload_ratio']:.2f}x | {r['wall_ratio']:.2f}x | {r['noop_median']:.2f} s |",
        "", ""])


def targets(r: dict | None, verdict) -> list[tuple[str, str, str]]:
    if not r:
        return []
    return [
        (f"first build's upload at most 1.5x a plain parallel upload ({r['files']:,} files, "
         "moto)", f"{r['upload_ratio']:.2f}x",
         verdict(r["upload_ratio"] <= 1.5, f"{r['upload_ratio'] / 1.5:.2f}x over")),
        (f"no-op rebuild into the bucket under 2 s ({r['files']:,} files, moto)",
         f"{r['noop_median']:.2f} s", verdict(r["noop_median"] < 2.0,
                                              f"{r['noop_median'] / 2:.2f}x over")),
    ]
