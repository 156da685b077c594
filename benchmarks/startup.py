"""Startup: cold indexing, start from a manifest, and their peak memory.

Each measurement runs in a fresh interpreter (``python3 startup.py KIND ROOT
[MANIFEST]``), so nothing is cached in-process. The modules are imported
before the clock starts; the child prints one JSON line with the seconds
taken and the peak resident size reached during the step, above the size at
its start, so the memory figure is the growth caused by the step alone.
"Cold" means a new process, not an empty page cache: the files were just
generated or read by the previous step, as on a server that restarts.

The floor is hashlib alone on the same files: opening, reading and
SHA-256-digesting each file (the least any content-hashing indexer must do),
and digesting bytes already in memory.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Kind -> what it measures, in table order.
KINDS = {
    "hashlib-read": "hashlib.sha256 alone: open + read + digest every file",
    "hashlib-digest": "hashlib.sha256 alone: digest bytes already in memory",
    "assets": "bustware `Assets(root)`, cold",
    "assets-one-thread": "bustware `Assets(root, scan_threads=1)`, cold, one thread",
    "assets-two-threads": "bustware `Assets(root, scan_threads=2)`, cold, two threads",
    "bustware": "bustware `Bustware(None, root)`, cold (index + routing table)",
    "manifest": "bustware `Assets(root, manifest=...)`",
    "manifest-nocheck": "bustware `Assets(root, manifest=..., manifest_check='off')`",
    "manifest-bustware": "bustware `Bustware(None, root, manifest=...)`",
    "restart": "bustware `Assets(root, autorefresh=True)`, restart with a warm digest cache",
    "assets-nobytes": "bustware `Assets(root, memory_budget=0)`, cold (no bytes held)",
    "whitenoise": "WhiteNoise(None, root) (stat only, no hashing)",
    "servestatic": "ServeStatic(None, root) (stat only, no hashing)",
}

HERE = Path(__file__).resolve().parent


def manifest_support() -> str | None:
    """Why a manifest start cannot be measured, or None."""
    from bustware import Assets

    if "manifest" not in inspect.signature(Assets).parameters:
        return "Assets(..., manifest=) does not exist yet"
    probe = subprocess.run([sys.executable, "-m", "bustware", "build", "--help"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return "`bustware build` is not available"
    return None


def build_manifest(root: Path, out: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bustware", "build", str(root),
                           "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"bustware build failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")


def _files(root: str) -> list[str]:
    found = []
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        found.extend(os.path.join(directory, n) for n in sorted(names))
    return found


#: Where the "restart" kind keeps its digest cache (a directory the runner
#: owns, so that a run never reads the user's own cache).
CACHE_ENV = "BUSTWARE_BENCH_CACHE"
#: Set: trace allocations during the step (tracemalloc) and report what the
#: index keeps; a traced process is never timed.
TRACE_ENV = "BUSTWARE_BENCH_TRACE"


def _child(kind: str, root: str, manifest: str | None) -> dict:
    prepared = None
    if kind == "hashlib-read":
        prepared = _files(root)
    elif kind == "hashlib-digest":
        prepared = []
        for path in _files(root):
            with open(path, "rb") as f:
                prepared.append(f.read())
    elif kind in ("assets", "assets-one-thread", "assets-two-threads", "bustware", "manifest",
                  "manifest-bustware", "manifest-nocheck", "restart", "assets-nobytes"):
        from bustware import Assets, Bustware
        # Modules before the clock, as for the other kinds: bustware loads
        # these on first use (`import bustware` is timed on its own).
        if kind.startswith("manifest"):
            import bustware.from_manifest
            import bustware.manifest
        else:
            import bustware.digestcache
            import bustware.references
        if "bustware" in kind:
            # Bustware's compression without a build step, and the codecs
            # it looks for, are loaded when one is made.
            import contextlib
            import importlib

            import bustware.livecompress  # noqa: F401
            for codec in ("brotli", "zstandard", "gzip", "platform"):
                with contextlib.suppress(ImportError):
                    importlib.import_module(codec)
    elif kind == "whitenoise":
        from whitenoise import WhiteNoise
    elif kind == "servestatic":
        from servestatic import ServeStatic
    else:
        raise SystemExit(f"unknown kind {kind!r}: use one of {sorted(KINDS)}")
    gc.collect()
    traced = bool(os.environ.get(TRACE_ENV))
    if traced:
        import tracemalloc

        tracemalloc.start()
    before = _reset_peak()
    start = time.perf_counter()
    cpu = time.process_time()
    kept = None
    if kind == "hashlib-read":
        for path in prepared:
            with open(path, "rb") as f:
                hashlib.sha256(f.read()).hexdigest()
        count = len(prepared)
    elif kind == "hashlib-digest":
        for data in prepared:
            hashlib.sha256(data).hexdigest()
        count = len(prepared)
    elif kind == "assets":
        kept = Assets(root)
        count = len(kept)
    elif kind == "assets-one-thread":
        kept = Assets(root, scan_threads=1)
        count = len(kept)
    elif kind == "assets-two-threads":
        kept = Assets(root, scan_threads=2)
        count = len(kept)
    elif kind == "assets-nobytes":
        kept = Assets(root, memory_budget=0)
        count = len(kept)
    elif kind == "bustware":
        kept = Bustware(None, root)
        count = len(kept.assets)
    elif kind == "manifest":
        kept = Assets(root, manifest=manifest)
        count = len(kept)
    elif kind == "manifest-nocheck":
        kept = Assets(root, manifest=manifest, manifest_check="off")
        count = len(kept)
    elif kind == "manifest-bustware":
        kept = Bustware(None, root, manifest=manifest)
        count = len(kept.assets)
    elif kind == "restart":
        kept = Assets(root, autorefresh=True, digest_cache=os.environ[CACHE_ENV])
        count = len(kept)
    elif kind == "whitenoise":
        kept = WhiteNoise(None, root=root)
        count = len(kept.files)
    else:
        kept = ServeStatic(None, root=root)
        count = len(kept.files)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    after = _peak()
    # What the index keeps: the resident size with it alive, garbage
    # collected, above the size before the step (the peak also counts what
    # the step only needed for a while, such as a parsed manifest).
    gc.collect()
    retained = (_status("VmRSS") or 0) - before
    out = {"seconds": seconds, "cpu_seconds": cpu, "files": count, "peak_rss_kib": after,
           "peak_growth_kib": after - before, "retained_kib": retained}
    if traced:
        out["traced_bytes"] = tracemalloc.get_traced_memory()[0]
    del kept
    return out


def _status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS and return it (KiB).

    ru_maxrss cannot serve here: Linux carries the parent's peak into a
    forked child, so a child of a big runner would report the runner's size.
    Writing 5 to clear_refs resets the process's own high-water mark.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _status("VmRSS") or 0


def _peak() -> int:
    hwm = _status("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(kind: str, root: Path, manifest: Path | None, rounds: int,
            timeout: float = 300, cache: Path | None = None, traced: bool = False) -> dict:
    """Median over ``rounds`` fresh processes. ``cache``: the digest cache
    directory of the "restart" kind (filled by a first, untimed process).
    ``traced``: one more process measures the bytes the index keeps
    (tracemalloc: the objects alive after the step, not the RSS, which also
    holds memory freed but not returned to the system)."""
    return measure_all([kind], root, manifest, rounds, timeout, cache, traced)[kind]


def measure_all(kinds: list[str], root: Path, manifest: Path | None, rounds: int,
                timeout: float = 300, cache: Path | None = None, traced: bool = False
                ) -> dict[str, dict]:
    """measure() of several kinds, their processes interleaved: each round
    runs every kind once, in a shuffled order, so that a neighbour's burst
    of work or the machine's own drift falls on all kinds alike instead of
    on the kind that ran at that moment (on the shared runner, kinds run
    one after the other differed by a quarter on the same code). Manifest
    kinds get ``manifest``, the others none."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    env.pop("PYTHONDEVMODE", None)  # dev mode's checks would be timed too
    if "restart" in kinds:
        if cache is None:
            raise ValueError("the restart kind needs a cache directory")
        env[CACHE_ENV] = str(cache)

    def run(kind: str, extra_env: dict | None = None, limit: float = timeout) -> dict:
        cmd = [sys.executable, str(HERE / "startup.py"), kind, str(root)]
        if manifest is not None and kind.startswith("manifest"):
            cmd.append(str(manifest))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit,
                              env={**env, **(extra_env or {})})
        if proc.returncode != 0:
            raise RuntimeError(f"startup {kind} failed:\n{proc.stderr}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    if "restart" in kinds:
        run("restart")  # the first start fills the cache; the next ones restart
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for i in range(rounds):
        order = list(kinds)
        random.Random(i).shuffle(order)
        for kind in order:
            runs[kind].append(run(kind))
    out = {}
    for kind in kinds:
        index_bytes = run(kind, {TRACE_ENV: "1"}, timeout * 3)["traced_bytes"] \
            if traced else None
        done = runs[kind]
        out[kind] = {
            "index_bytes": index_bytes,
            "ms": statistics.median(r["seconds"] for r in done) * 1e3,
            "cpu_ms": statistics.median(r["cpu_seconds"] for r in done) * 1e3,
            "files": done[0]["files"],
            "peak_growth_mib": statistics.median(r["peak_growth_kib"] for r in done) / 1024,
            "retained_mib": statistics.median(r["retained_kib"] for r in done) / 1024,
            "rounds": rounds,
        }
    return out


def import_ms(rounds: int, module: str = "bustware") -> float:
    """Median CPU time of ``import module`` in fresh interpreters (after the
    interpreter's own start; CPU time, as the startup targets use)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    env.pop("PYTHONDEVMODE", None)
    code = (f"import time; t = time.process_time(); import {module}; "
            "print(time.process_time() - t)")
    times = []
    for _ in range(rounds):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, env=env, check=True)
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times) * 1e3


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)))
