"""boto3 against obstore for bustware's S3 store, against a local moto_server.

Each measurement runs in a fresh interpreter (bytecode compiled first), so
import time and resident memory are the client's own. Prints medians.

    python3 benchmarks/s3_clients.py [--runs 3] [--small 2000] [--large 3]

Needs ``pip install boto3 obstore 'moto[server]'``; moto's server is an
in-process Python server, so absolute upload numbers are bounded by it; the
comparison between the clients is what this is for.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from motoserver import moto_server

#: Runs in a child interpreter; prints one JSON line.
CHILD = r'''
import json, os, resource, sys, time
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
t0 = time.perf_counter()
client, endpoint, bucket, small, large, large_mb = sys.argv[1:7]
small, large, large_mb = int(small), int(large), int(large_mb)
if client == "boto3":
    import boto3
    from botocore.config import Config
else:
    import obstore
    from obstore.store import S3Store
t_import = time.perf_counter() - t0
rss_import = rss_mb()
t1 = time.perf_counter()
if client == "boto3":
    s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(
        connect_timeout=1, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=16))
    s3.head_bucket(Bucket=bucket)
else:
    st = S3Store(bucket, endpoint=endpoint, client_options={
        "allow_http": True, "connect_timeout": "1s", "timeout": "5s"})
    obstore.head(st, "nothing-here") if False else list(obstore.list(st, prefix="x/", chunk_size=1))
t_first = time.perf_counter() - t1
payloads = [os.urandom(2000) + str(i).encode() for i in range(small)]
big = os.urandom(large_mb << 20)
bigfile = os.environ["BIGFILE"]
with open(bigfile, "wb") as f:
    f.write(big)
del big
t2 = time.perf_counter()
if client == "boto3":
    from concurrent.futures import ThreadPoolExecutor
    def put_small(i):
        s3.put_object(Bucket=bucket, Key=f"{client}/s/{i}", Body=payloads[i],
                      ContentType="text/css", CacheControl="public, max-age=31536000, immutable")
    def put_large(i):
        with open(bigfile, "rb") as f:
            s3.upload_fileobj(f, bucket, f"{client}/l/{i}")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put_small, range(small)))
        list(pool.map(put_large, range(large)))
else:
    import asyncio
    async def main():
        sem = asyncio.Semaphore(16)
        async def put_small(i):
            async with sem:
                await obstore.put_async(st, f"{client}/s/{i}", payloads[i], attributes={
                    "Content-Type": "text/css",
                    "Cache-Control": "public, max-age=31536000, immutable"})
        async def put_large(i):
            async with sem:
                with open(bigfile, "rb") as f:
                    await obstore.put_async(st, f"{client}/l/{i}", f)
        await asyncio.gather(*(put_small(i) for i in range(small)))
        await asyncio.gather(*(put_large(i) for i in range(large)))
    asyncio.run(main())
t_upload = time.perf_counter() - t2
print(json.dumps({"import_s": t_import, "rss_import_mb": rss_import, "first_request_s": t_first,
                  "upload_s": t_upload, "rss_after_upload_mb": rss_mb()}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=3)
    parser.add_argument("--large-mb", type=int, default=20)
    args = parser.parse_args()
    import boto3  # the bench itself creates buckets with boto3

    for mod in ("boto3", "botocore", "obstore"):
        compileall.compile_dir(Path(__import__(mod).__file__).parent, quiet=1)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict[str, list[dict[str, float]]] = {"boto3": [], "obstore": []}
    with moto_server() as endpoint:
        admin = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="bench", aws_secret_access_key="bench")
        for run in range(args.runs):
            for client in results:  # alternate, so drift hits both alike
                bucket = f"bench-{client}-{run}"
                admin.create_bucket(Bucket=bucket)
                bigfile = f"/tmp/s3bench-{os.getpid()}.bin"
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, client, endpoint, bucket, str(args.small),
                     str(args.large), str(args.large_mb)],
                    env={**env, "BIGFILE": bigfile}, capture_output=True, text=True, timeout=900)
                os.unlink(bigfile) if os.path.exists(bigfile) else None
                if out.returncode:
                    raise SystemExit(out.stderr)
                results[client].append(json.loads(out.stdout.splitlines()[-1]))
    keys = ["import_s", "rss_import_mb", "first_request_s", "upload_s", "rss_after_upload_mb"]
    print(f"{args.small} objects of ~2 KB + {args.large} of {args.large_mb} MiB, "
          f"median of {args.runs} runs, moto_server on 127.0.0.1")
    print(f"{'':22}" + "".join(f"{c:>12}" for c in results))
    for k in keys:
        print(f"{k:22}" + "".join(f"{statistics.median(r[k] for r in results[c]):12.3f}"
                                  for c in results))


if __name__ == "__main__":
    main()
