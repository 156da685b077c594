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
    "bustware": "bustware `Bustware(None, root)`, cold (index + routing table)",
    "manifest": "bustware `Assets(root, manifest=...)`",
    "manifest-bustware": "bustware `Bustware(None, root, manifest=...)`",
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


def _child(kind: str, root: str, manifest: str | None) -> dict:
    prepared = None
    if kind == "hashlib-read":
        prepared = _files(root)
    elif kind == "hashlib-digest":
        prepared = []
        for path in _files(root):
            with open(path, "rb") as f:
                prepared.append(f.read())
    elif kind in ("assets", "bustware", "manifest", "manifest-bustware"):
        from bustware import Assets, Bustware
    elif kind == "whitenoise":
        from whitenoise import WhiteNoise
    elif kind == "servestatic":
        from servestatic import ServeStatic
    else:
        raise SystemExit(f"unknown kind {kind!r}: use one of {sorted(KINDS)}")
    gc.collect()
    before = _reset_peak()
    start = time.perf_counter()
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
        count = len(Assets(root))
    elif kind == "bustware":
        count = len(Bustware(None, root).assets)
    elif kind == "manifest":
        count = len(Assets(root, manifest=manifest))
    elif kind == "manifest-bustware":
        count = len(Bustware(None, root, manifest=manifest).assets)
    elif kind == "whitenoise":
        count = len(WhiteNoise(None, root=root).files)
    else:
        count = len(ServeStatic(None, root=root).files)
    seconds = time.perf_counter() - start
    after = _peak()
    return {"seconds": seconds, "files": count, "peak_rss_kib": after,
            "peak_growth_kib": after - before}


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
            timeout: float = 300) -> dict:
    """Median over ``rounds`` fresh processes."""
    runs = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    env.pop("PYTHONDEVMODE", None)  # dev mode's checks would be timed too
    for _ in range(rounds):
        cmd = [sys.executable, str(HERE / "startup.py"), kind, str(root)]
        if manifest is not None:
            cmd.append(str(manifest))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"startup {kind} failed:\n{proc.stderr}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "ms": statistics.median(r["seconds"] for r in runs) * 1e3,
        "files": runs[0]["files"],
        "peak_growth_mib": statistics.median(r["peak_growth_kib"] for r in runs) / 1024,
        "rounds": rounds,
    }


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)))
