"""Build: ``bustware build --compress`` wall time against the compressors' CPU time.

Issue 13's target: a build's wall time at most 1.2x (the CPU time spent in
the compressors / the number of cores), that is the compression keeps every
core busy and everything else (walk, reads, digests, the index, the object
writes, the manifest) hides behind it or costs little.

Each build runs in a fresh interpreter (``python3 build_bench.py ROOT OUT
CODINGS``) into an empty ``OUT``, so every variant is made. The child wraps
``bustware.compress._compress_stream`` (every codec call of a build goes
through it) and sums ``time.thread_time()`` around each call, across all
threads: that is the compressor CPU time, about the same on a loaded machine
as on an idle one. The wall time is not: it also measures the neighbours. So
the child reports two more figures. The free cores: CPU seconds per wall
second that ``cores`` hashing threads got just before the build (hashlib
releases the GIL; about 2.0 on an idle 2-core machine). And the cores fed:
wall time over the time the cores were kept compressing (at most ``cores``
codec calls at a time, by their wall time), which a busy machine stretches
alike, so it is the build's own ratio: what the walk, the reads, the index,
the writes and the tail leave idle.

Trees: the runner's generated tree (text of css/js/svg beside incompressible
images and fonts) and, when their packages are installed (the bench extra),
real distributions: Bootstrap's dist (django-bootstrap-static), Django's
admin files, Font Awesome Free (fontawesomefree; full mode only: about a
minute of compression).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import tree

HERE = Path(__file__).resolve().parent

#: Label -> (module whose directory holds the files, directory under it,
#: what to pip install, full mode only).
REAL_TREES = {
    "Bootstrap dist": ("bootstrap", "static", "django-bootstrap-static", False),
    "Django admin": ("django.contrib.admin", "static", "django", False),
    "Font Awesome Free": ("fontawesomefree", "static", "fontawesomefree", True),
}


def cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def real_tree(label: str) -> tuple[Path | None, str | None]:
    """(root, None) or (None, why it is skipped)."""
    module, sub, package, _full = REAL_TREES[label]
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None, f"build: {label}: not installed (pip install {package})"
    root = Path(next(iter(spec.submodule_search_locations))) / sub
    if not root.is_dir():
        return None, f"build: {label}: {root} is not a directory"
    return root, None


def trees(work: Path, cfg: dict, skip) -> list[tuple[str, Path]]:
    """The trees to build in this mode; each one that cannot is passed to ``skip``."""
    files, mb = cfg["build_tree"]
    generated = tree.startup_tree(work, files, mb)
    out = [(f"generated, {files:,} files, {mb:g} MB", generated.root)]
    if cfg["mode"] == "tiny":
        return out
    for label, (_m, _s, _p, full_only) in REAL_TREES.items():
        if full_only and cfg["mode"] != "full":
            continue
        root, why = real_tree(label)
        if why:
            skip(why)
        else:
            out.append((label, root))
    return out


def measure(label: str, root: Path, work: Path, codings: str, rounds: int) -> dict:
    """The median round (by ratio) of ``rounds`` builds of ``root`` with ``codings``."""
    runs = []
    for i in range(rounds):
        out = work / f"build-out-{os.getpid()}-{i}"
        shutil.rmtree(out, ignore_errors=True)
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__)), str(root), str(out / "manifest.json"),
                 codings], capture_output=True, text=True, timeout=1800)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"build of {label} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{proc.stderr}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["ratio"])
    result = dict(runs[len(runs) // 2])
    result.update(label=label, codings=codings, rounds=rounds,
                  ratios=[round(r["ratio"], 3) for r in runs])
    return result


def measure_all(work: Path, cfg: dict, skip, log) -> list[dict]:
    from bustware.compress import CodecUnavailable, check_encodings

    sets = ["br,gzip", "br,gzip,zstd"]
    usable = []
    for codings in sets:
        try:
            check_encodings(codings.split(","))
        except CodecUnavailable as exc:
            skip(f"build --compress {codings}: {exc}")
        else:
            usable.append(codings)
    rows = []
    for i, (label, root) in enumerate(trees(work, cfg, skip)):
        # zstd on the generated tree only: br+gzip is the common setting,
        # and a real tree's zstd row would add a minute for little news.
        # Font Awesome is a minute or more a build: once.
        rounds = 1 if REAL_TREES.get(label, (0, 0, 0, False))[3] else cfg["build_rounds"]
        for codings in usable if i == 0 else usable[:1]:
            log(f"build: {label}, --compress {codings}")
            rows.append(measure(label, root, work, codings, rounds))
    return rows


def markdown(rows: list[dict], cfg: dict) -> str:
    out = ["### Build: wall time against the compressors' CPU time\n",
           "`bustware build --compress` into an empty directory, in a fresh process; "
           f"median of {cfg['build_rounds']} by ratio (Font Awesome: one). Compressor CPU: "
           "`time.thread_time()` summed around every codec call, across threads; process "
           "CPU: the whole build's, compressors included. Ratio: wall ÷ (compressor CPU ÷ "
           "cores), the target (at most 1.2); on a shared machine it also measures the "
           "neighbours, so the free-cores gauge says how many cores `cores` busy threads "
           "got just before the build (2.0 on an idle 2-core machine). Cores fed: wall ÷ "
           "the time the cores were kept compressing (at most `cores` codec calls at a "
           "time, by their wall time): the build's own share of the ratio, load aside.\n",
           "| tree | codings | files | MB read | variants | wall | compressor CPU | "
           "process CPU | load (1 min) | free cores | ratio | cores fed |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['label']} | {r['codings']} | {r['files']:,} | {r['bytes'] / 1e6:.1f} | "
            f"{r['variants']:,} | {r['wall']:.2f} s | {r['compress_cpu']:.2f} s | "
            f"{r['process_cpu']:.2f} s | {r['load'][0]:.2f} | "
            f"{r['free_cores']:.2f} of {r['cores']} | {r['ratio']:.2f} | "
            f"{r['fed_ratio']:.2f} |")
    out.append("")
    return "\n".join(out) + "\n"


def targets(rows: list[dict], verdict) -> list[tuple[str, str, str]]:
    out = []
    for r in rows:
        ratio = r["ratio"]
        out.append((f"build wall time at most 1.2x (compressor CPU / {r['cores']} cores), "
                    f"{r['label']}, --compress {r['codings']}",
                    f"{ratio:.2f}x (cores fed: {r['fed_ratio']:.2f}x; load "
                    f"{r['load'][0]:.1f}, {r['free_cores']:.1f} cores free)",
                    verdict(ratio <= 1.2, f"{ratio / 1.2:.2f}x over")))
    return out


# -- the child -----------------------------------------------------------------


def free_cores(n: int, seconds: float = 0.3) -> float:
    """CPU seconds per wall second that ``n`` threads get, each hashing
    (hashlib releases the GIL): the cores this process can have right now."""
    data = os.urandom(1 << 20)
    stop = time.perf_counter() + seconds

    def spin() -> None:
        while time.perf_counter() < stop:
            hashlib.sha256(data).digest()

    threads = [threading.Thread(target=spin) for _ in range(n)]
    wall, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def fed_seconds(spans: list[tuple[float, float]], n: int) -> float:
    """Core-seconds of compression over the build, counting at most ``n``
    calls at a time, over ``n``: the wall time the cores were kept busy
    compressing. Each call's wall time stretches alike when neighbours
    take the cores, so wall / this is the build's own ratio, load aside."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    fed, active, last = 0.0, 0, 0.0
    for at, step in edges:
        fed += min(active, n) / n * (at - last)
        active += step
        last = at
    return fed


def _child(root: str, out: str, codings: str) -> dict:
    import bustware.build as b
    import bustware.compress as c
    import bustware.references  # noqa: F401  (loaded on first use; not timed)

    spent: list[float] = []  # list.append is atomic: no lock around the sum
    spans: list[tuple[float, float]] = []
    real = c._compress_stream

    def timed(*args, **kwargs):
        start, began = time.thread_time(), time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.thread_time() - start)
            spans.append((began, time.perf_counter()))

    c._compress_stream = timed
    n = cores()
    free = free_cores(n)
    load = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    report = b.build(root, out, compress=codings.split(","))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    compress_cpu = sum(spent)
    fed = fed_seconds(spans, n)
    return {"wall": wall, "process_cpu": cpu, "compress_cpu": compress_cpu,
            "calls": len(spent), "cores": n, "free_cores": free,
            "load": [load[0], os.getloadavg()[0]],
            "ratio": wall / (compress_cpu / n) if compress_cpu else float("inf"),
            "fed_ratio": wall / fed if fed else float("inf"),
            "files": report.files, "bytes": report.bytes_read, "variants": report.variants,
            "build_seconds": report.seconds}


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: build_bench.py ROOT OUT_MANIFEST CODINGS")
    sys.path.insert(0, str(HERE.parent))
    print(json.dumps(_child(*sys.argv[1:])))
