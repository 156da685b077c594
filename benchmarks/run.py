#!/usr/bin/env python3
"""bustware side by side with WhiteNoise, ServeStatic, Werkzeug, WebOb and nginx.

    pip install -e '.[bench]'            # the competitors and servers
    apt-get install -y wrk nginx-light   # optional: end-to-end rows
    python3 benchmarks/run.py            # full run, about 10 minutes on 2 cores
    python3 benchmarks/run.py --quick    # fewer rounds, about a minute
    python3 benchmarks/run.py --write-readme   # also refresh benchmarks/README.md

What is missing (a competitor, Flask, gunicorn, granian, uvicorn, nginx, wrk,
manifest support) is skipped with a line saying so. Generated files live under
``benchmarks/.work/`` (git-ignored) and are reused by later runs. See
benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import adoption  # noqa: E402
import apps  # noqa: E402
import asgi_e2e  # noqa: E402
import asgi_inprocess  # noqa: E402
import build_bench  # noqa: E402
import e2e  # noqa: E402
import hostile_e2e  # noqa: E402
import inprocess  # noqa: E402
import modules_bench  # noqa: E402
import s3_bench  # noqa: E402
import serve_store  # noqa: E402
import startup  # noqa: E402
import tree  # noqa: E402
import warm_reload  # noqa: E402

README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
SECTIONS = ("inprocess", "url", "startup", "scale", "e2e", "adoption", "hostile", "hostile-e2e",
            "asgi", "asgi-e2e", "build", "serve-store", "s3", "modules", "warm-reload")

#: Per mode: in-process rounds and batch seconds, startup tree, startup
#: rounds, e2e rounds, e2e seconds per wrk run, filler files in the site,
#: the small-files tree (files, MB), the scale trees (files, MB each), and
#: the build section's generated tree (files, MB) and rounds.
MODES = {
    "full": dict(rounds=21, batch=0.04, files=10_000, megabytes=100, startup_rounds=3,
                 e2e_rounds=3, e2e_seconds=5, fillers=200, small=(5_000, 5),
                 scale=((1_000, 1), (10_000, 10), (100_000, 100)),
                 build_tree=(2_000, 20), build_rounds=3, module_files=1_000, module_rounds=3),
    "quick": dict(rounds=7, batch=0.02, files=10_000, megabytes=100, startup_rounds=1,
                  e2e_rounds=1, e2e_seconds=2, fillers=200, small=(5_000, 5),
                  scale=((1_000, 1), (10_000, 10), (100_000, 100)),
                  build_tree=(1_000, 10), build_rounds=1, module_files=1_000, module_rounds=1),
    "tiny": dict(rounds=3, batch=0.002, files=200, megabytes=1, startup_rounds=1,
                 e2e_rounds=1, e2e_seconds=1, fillers=20, small=(100, 0.1),
                 scale=((50, 0.05), (150, 0.15)), build_tree=(100, 0.5), build_rounds=1,
                 module_files=100, module_rounds=1),
}
#: Steps of the small-files tree, and of each scale tree.
SMALL_KINDS = ("hashlib-read", "assets", "assets-one-thread", "assets-two-threads", "manifest",
               "restart")
SCALE_KINDS = ("assets-nobytes", "manifest", "restart", "whitenoise", "servestatic")
SCALE_LABELS = {"assets-nobytes": "bustware scan (no bytes held)",
                "manifest": "bustware from a manifest", "restart": "bustware dev restart",
                "whitenoise": "WhiteNoise", "servestatic": "ServeStatic"}
PLOT = HERE / "scale.png"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def available(module, skipped: list[str]) -> list[str]:
    """The names of ``module.IMPLEMENTATIONS`` that can run here; each one
    that cannot is listed in ``skipped`` with the reason."""
    names = []
    for name in module.IMPLEMENTATIONS:
        why = module.missing(name)
        if why:
            skip(skipped, why)
        else:
            names.append(name)
    return names


def skip(skipped: list[str], message: str) -> None:
    skipped.append(message)
    print(f"skipped: {message}", flush=True)


def machine() -> dict:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if dist == "bustware":  # run from the checkout, not installed
                import bustware

                return f"{bustware.__version__} (checkout)"
            return "not installed"

    def tool(cmd: list[str]) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        return (proc.stdout + proc.stderr).strip().splitlines()[0]

    try:
        commit = subprocess.run(["git", "-C", str(HERE.parent), "describe", "--always",
                                 "--dirty"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "unknown"
    packages = ("bustware", "werkzeug", "webob", "whitenoise", "servestatic", "flask",
                "gunicorn", "granian", "uvicorn", "starlette", "blacknoise")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": _gib(first("/proc/meminfo", "MemTotal")),
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": {p: version(p) for p in packages},
        "nginx": tool(["nginx", "-v"]),
        "wrk": tool(["wrk", "-v"]),
        "commit": commit,
    }


def _gib(meminfo: str) -> str:
    try:
        return f"{int(meminfo.split()[0]) / 1024 ** 2:.1f} GiB"
    except (ValueError, IndexError):
        return meminfo


# -- report ------------------------------------------------------------------


def _us(x: float) -> str:
    return f"{x:.2f} µs" if x < 100 else f"{x:.0f} µs"


def _rps(x: float) -> str:
    return f"{x:,.0f}"


def targets(results: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows; a missing figure is 'not measured'."""
    rows = []
    inp = results.get("inprocess", {})
    bw = inp.get("bustware", {})

    def verdict(ok: bool, miss: str) -> str:
        return "met" if ok else f"**missed**: {miss}"

    if bw:
        ratio = bw["hit_css"]["ratio"]
        rows.append(("static hit (2 KiB CSS) in-process at most 2x the bare app",
                     f"{ratio:.2f}x", verdict(ratio <= 2, f"{ratio / 2:.2f}x over the target")))
        if "whitenoise" in inp:
            gain = inp["whitenoise"]["hit_css"]["us"] / bw["hit_css"]["us"]
            rows.append(("static hit at least 5x cheaper than WhiteNoise",
                         f"{gain:.1f}x cheaper", verdict(gain >= 5, f"{5 / gain:.2f}x short")))
        over = bw["pass"]["us"] - inp["bare"]["pass"]["us"]
        rows.append(("pass-through overhead at most 0.3 µs over the bare app",
                     f"{over:+.2f} µs", verdict(over <= 0.3, f"{over - 0.3:.2f} µs over")))
    url = results.get("url", {})
    flask = url.get("Flask url_for('static')")
    if flask and "Bustware.url" in url:
        gain = flask["us"] / url["Bustware.url"]["us"]
        rows.append(("URL helper at least 10x cheaper than Flask's url_for",
                     f"{gain:.0f}x cheaper", verdict(gain >= 10, f"{10 / gain:.2f}x short")))
    rows += startup_targets(results, verdict)
    rows += asgi_inprocess.targets(results.get("asgi", {}), verdict)
    rows += asgi_e2e.targets(results.get("asgi_e2e", {}), verdict)
    rows += build_bench.targets(results.get("build", []), verdict)
    rows += serve_store.targets(results.get("serve_store"), verdict)
    rows += s3_bench.targets(results.get("s3"), verdict)
    granian = results.get("e2e", {}).get("granian", {})
    if "bustware" in granian and "bare" in granian:
        share = granian["bustware"] / granian["bare"]
        rows.append(("behind granian, static hits at least 75% of the bare app's requests/s",
                     f"{share:.0%}", verdict(share >= 0.75, f"{0.75 - share:.0%} short")))
    return rows


def _cpu(r: dict) -> float:
    return r.get("cpu_ms", r["ms"])


def startup_targets(results: dict, verdict) -> list[tuple[str, str, str]]:
    """Issue 13's targets. Times are CPU times of the step (its process's
    own work): on a shared machine wall times measure the neighbours."""
    rows = []
    cfg = results.get("config", {})
    st = results.get("startup", {})
    small = results.get("small", {})
    trees = [(f"{cfg.get('files', 0):,} files", st)]
    if small:
        trees.append((f"{cfg['small'][0]:,} small files", small))
    for name, steps in trees:
        one = steps.get("assets-one-thread", steps.get("assets"))
        if one and "hashlib-read" in steps:
            ratio = _cpu(one) / _cpu(steps["hashlib-read"])
            rows.append((f"cold index within 1.5x of hashlib alone (read + digest), {name}, "
                         "one thread", f"{ratio:.2f}x",
                         verdict(ratio <= 1.5, f"{ratio / 1.5:.2f}x over")))
        two = steps.get("assets-two-threads")
        if two and "hashlib-read" in steps:
            # Two threads share the work: their CPU time adds up, so the
            # figure is wall time, against hashlib's wall time in one thread.
            ratio = two["ms"] / steps["hashlib-read"]["ms"]
            rows.append((f"cold index within 1.5x of hashlib alone (read + digest), {name}, "
                         "two threads (wall time)", f"{ratio:.2f}x",
                         verdict(ratio <= 1.5, f"{ratio / 1.5:.2f}x over")))
    scale = results.get("scale", {})
    pairs = [(n, s_.get("assets"), s_.get("manifest")) for n, s_ in trees]
    pairs += [(f"{int(k):,} files (scale)", v.get("assets-nobytes"), v.get("manifest"))
              for k, v in scale.items()]
    for name, scan, man in pairs:
        if scan and man:
            gain = _cpu(scan) / _cpu(man)
            rows.append((f"start from a manifest at least 10x faster than the scan, {name}",
                         f"{gain:.1f}x", verdict(gain >= 10, f"{10 / gain:.2f}x short")))
    files = cfg.get("files") or 0
    for kind, how in (("manifest", ""), ("manifest-nocheck", ", manifest_check='off'"),
                      ("manifest-bustware", ", `Bustware`")):
        if kind in st:
            ms = _cpu(st[kind])
            rows.append((f"start from a manifest of {files:,} files in at most 50 ms{how}",
                         f"{ms:.0f} ms", verdict(ms <= 50, f"{ms - 50:.0f} ms over")))
    if "restart" in st and "manifest" in st:
        ratio = _cpu(st["restart"]) / _cpu(st["manifest"])
        rows.append((f"development restart within 2x of the manifest start, {files:,} files",
                     f"{ratio:.2f}x", verdict(ratio <= 2, f"{ratio / 2:.2f}x over")))
    if scale:
        largest = max(scale, key=int)
        for kind in ("manifest", "restart", "assets-nobytes"):
            r = scale[largest].get(kind)
            if r and r.get("index_bytes") is not None:
                per = r["index_bytes"] / int(largest)
                rows.append((f"at most 1 KB of index memory per file, {int(largest):,} files, "
                             f"{SCALE_LABELS[kind]}", f"{per:,.0f} B",
                             verdict(per <= 1024, f"{per - 1024:,.0f} B over")))
    imp = results.get("import", {})
    if "bustware" in imp:
        ms = imp["bustware"]
        rows.append(("`import bustware` in at most 60 ms", f"{ms:.0f} ms",
                     verdict(ms <= 60, f"{ms - 60:.0f} ms over")))
    return rows


def markdown(results: dict) -> str:
    cfg = results["config"]
    out = []
    w = out.append
    m = results["machine"]
    w(f"Run of {m['date']} (`{cfg['command']}`, bustware at {m['commit']}), "
      f"mode `{cfg['mode']}`.\n")
    inp = results.get("inprocess")
    if inp:
        names = list(inp)
        w("### In-process cost of a request\n")
        w(f"Median of {cfg['rounds']} interleaved rounds of about {cfg['batch'] * 1e3:g} ms "
          "each; xN is the ratio to the bare app in the same round set. A note in "
          "parentheses says what the implementation answered when it is not what the row "
          "is about.\n")
        floors = [inp["bare"][case]["us"] for case, _, _ in inprocess.CASES]
        w(f"Noise gauge: the bare app does the same work in every row; its medians span "
          f"{min(floors):.2f} to {max(floors):.2f} µs ({max(floors) / min(floors) - 1:.0%} "
          "apart). Much more than 10% means a busy machine: compare ratios, not µs.\n")
        w("| request | " + " | ".join(names) + " |")
        w("|---" * (len(names) + 1) + "|")
        for case, label, _ in inprocess.CASES:
            cells = []
            for name in names:
                c = inp[name][case]
                if name == "bare":  # the floor: every request is the app's
                    cells.append(_us(c["us"]))
                    continue
                cell = f"{_us(c['us'])} x{c['ratio']:.1f}"
                if c["note"]:
                    cell += f" ({c['note']})"
                cells.append(cell)
            w(f"| {label} | " + " | ".join(cells) + " |")
        w("")
    if results.get("asgi"):
        w(asgi_inprocess.markdown(results["asgi"], cfg))
    if results.get("hostile"):
        w(inprocess.hostile_markdown(results["hostile"]))
    if results.get("hostile_e2e"):
        w(hostile_e2e.markdown(results["hostile_e2e"], cfg))
    url = results.get("url")
    if url:
        flask = url.get("Flask url_for('static')")
        w("### URL helper, per call\n")
        w("| helper | per call | Flask's url_for ÷ this |")
        w("|---|---|---|")
        for name, v in url.items():
            ratio = f"{flask['us'] / v['us']:.0f}x" if flask else "n/a"
            w(f"| {name} | {v['us'] * 1e3:.0f} ns | {ratio} |")
        w("")
    st = results.get("startup")
    if st:
        w(f"### Startup: {cfg['files']:,} files, {cfg['tree_bytes'] / 1e6:.0f} MB\n")
        w(f"Median of {cfg['startup_rounds']} fresh processes each. Time is wall time; CPU "
          "is the process's own CPU time, what the ratios and targets use (on a shared "
          "machine wall time also measures the neighbours). Peak is the growth of the "
          "process's peak RSS during the step; retained, of its RSS with the index alive "
          "after it.\n")
        _steps_table(w, st, startup.KINDS)
        imp = results.get("import")
        if imp:
            w("Import, in a fresh interpreter (median CPU time): "
              + "; ".join(f"`import {m}` {ms:.0f} ms" for m, ms in imp.items()) + ".\n")
    small = results.get("small")
    if small:
        w(f"### Startup: {cfg['small'][0]:,} small files, {cfg['small_bytes'] / 1e6:.1f} MB\n")
        _steps_table(w, small, {k: startup.KINDS[k] for k in SMALL_KINDS})
    scale = results.get("scale")
    if scale:
        w("### Scale: start and memory by tree size\n")
        w("Trees of about 1 KB per file. The scan holds no bytes (`memory_budget=0`), so "
          "its memory is the index alone. Index per file: the bytes of the objects alive "
          "after the step (tracemalloc, in one more process), over files; retained RSS also "
          "holds memory freed but not returned to the system (a parsed manifest, a read "
          "cache). CPU: the process's own CPU time. "
          + ("The largest tree is measured once. " if len(scale) > 1 else "")
          + (f"Plotted in [{PLOT.name}]({PLOT.name}).\n" if PLOT.exists() else "\n"))
        w("| files | step | time | CPU | peak memory growth | retained RSS per file "
          "| index per file |")
        w("|---|---|---|---|---|---|---|")
        for files, steps in scale.items():
            for kind, r in steps.items():
                per = r["retained_mib"] * 1024 * 1024 / int(files)
                index = r.get("index_bytes")
                index = f"{index / int(files):,.0f} B" if index is not None else ""
                w(f"| {int(files):,} | {SCALE_LABELS[kind]} | {r['ms']:.0f} ms | "
                  f"{_cpu(r):.0f} ms | {r['peak_growth_mib']:.1f} MiB | {per:,.0f} B | "
                  f"{index} |")
        w("")
    if results.get("build"):
        w(build_bench.markdown(results["build"], cfg))
    if results.get("serve_store"):
        w(serve_store.markdown(results["serve_store"], cfg))
    if results.get("modules"):
        w(modules_bench.markdown(results["modules"]))
    if results.get("warm_reload"):
        w(warm_reload.markdown(results["warm_reload"]))
    if results.get("s3"):
        w(s3_bench.markdown(results["s3"]))
    ee = results.get("e2e")
    if ee and "checked" in ee:
        w("### End to end\n")
        w("Servers started and checked with one request each, no load: "
          + ", ".join(ee["checked"]) + ".\n")
    elif ee:
        nginx = ee.get("nginx", {}).get("nginx")
        w("### End to end: requests per second (wrk)\n")
        w(f"`wrk -t1 -c{cfg['connections']} -d{cfg['e2e_seconds']}s`, median of "
          f"{cfg['e2e_rounds']} rounds, one server worker process; the bare app is requested "
          "at `/`, the others at the CSS file's URL.")
        spread = ee.get("spread")
        if spread is not None and cfg["e2e_rounds"] > 1:
            w(f"Noise gauge: a server's fastest round beat its slowest by {spread:.0%} "
              "(median over servers).")
        w("")
        labels = [s for s in ("gunicorn", "granian") if s in ee]
        ee = {k: v for k, v in ee.items() if isinstance(v, dict)}
        head = "| implementation |"
        for s in labels:
            head += f" {s} req/s | ÷ bare | ÷ nginx |"
        w(head)
        w("|---" * (1 + 3 * len(labels)) + "|")
        impls = list(dict.fromkeys(i for s in labels for i in ee[s]))
        for impl in impls:
            row = "| bare, with bustware's headers |" if impl == "bare-headers" else f"| {impl} |"
            for s in labels:
                v = ee[s].get(impl)
                if v is None:
                    row += " | | |"
                    continue
                bare = ee[s].get("bare")
                row += (f" {_rps(v)} | {v / bare:.2f} |" if bare else f" {_rps(v)} | |")
                row += f" {v / nginx:.2f} |" if nginx else " |"
            w(row)
        if nginx:
            w("| nginx (sendfile, from disk) |" + f" {_rps(nginx)} | | 1.00 |"
              + " | | |" * (len(labels) - 1))
        w("")
    if results.get("asgi_e2e"):
        w(asgi_e2e.markdown(results["asgi_e2e"], cfg))
    rows = targets(results)
    if rows:
        w("### Targets\n")
        w("| target | measured | verdict |")
        w("|---|---|---|")
        for r in rows:
            w("| " + " | ".join(r) + " |")
        w("")
    if results.get("adoption"):
        w("### Adoption: bustware against each framework's incumbent\n")
        w(adoption.markdown(results["adoption"]) + "\n")
    if results["skipped"]:
        w("### Skipped\n")
        for s in results["skipped"]:
            w(f"- {s}")
        w("")
    w("### Machine\n")
    w(f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory; load average "
      f"{m['load_average_at_start']} at start, {m.get('load_average_at_end', '?')} at end "
      f"({cfg.get('seconds', '?')} s)")
    w(f"- {m['python']} on {m['platform']}")
    w("- " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()))
    w(f"- {m['nginx']}; {m['wrk']}")
    return "\n".join(out) + "\n"


def _steps_table(w, st: dict, kinds: dict) -> None:
    base = st.get("hashlib-read")
    w("| step | time | CPU | ÷ hashlib read + digest (CPU) | peak memory growth | retained |")
    w("|---|---|---|---|---|---|")
    for kind, label in kinds.items():
        v = st.get(kind)
        if v is None:
            if kind.startswith("manifest"):
                w(f"| {label} | pending | | | | |")
            continue
        ratio = f"{_cpu(v) / _cpu(base):.2f}x" if base else "n/a"
        w(f"| {label} | {v['ms']:.0f} ms | {_cpu(v):.0f} ms | {ratio} | "
          f"{v['peak_growth_mib']:.1f} MiB | {v.get('retained_mib', 0):.1f} MiB |")
    w("")


def plot(results: dict, path: Path) -> str | None:
    """The scale rows as a PNG (start time and memory per file by tree
    size); the reason if it cannot be drawn."""
    scale = results.get("scale")
    if not scale:
        return "no scale rows"
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = sorted(scale, key=int)
    for kind, label in SCALE_LABELS.items():
        xs = [int(n) for n in sizes if kind in scale[n]]
        if not xs:
            continue
        left.plot(xs, [_cpu(scale[str(n)][kind]) for n in xs], marker="o", label=label)
        right.plot(xs, [(scale[str(n)][kind].get("index_bytes") or 0) / n for n in xs],
                   marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="files", ylabel="start (ms of CPU)",
             title="Start time")
    right.set(xscale="log", xlabel="files", ylabel="bytes per file (objects kept)",
              title="Index memory per file")
    right.axhline(1024, color="grey", linestyle="--", linewidth=1)
    left.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"bustware startup by tree size ({results['machine']['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def write_readme(text: str) -> None:
    current = README.read_text()
    if START not in current or END not in current:
        raise SystemExit(f"{README} has no {START} ... {END} markers to put the results in")
    head, _, rest = current.partition(START)
    _, _, tail = rest.partition(END)
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{START}\n{text}{END}{tail}")
    os.replace(tmp, README)


# -- main --------------------------------------------------------------------


def startup_steps(work: Path, files: int, megabytes: float, kinds, rounds: int,
                  names: list[str], manifests: bool, traced: bool = False) -> tuple[dict, int]:
    """Run the startup ``kinds`` on a generated tree; (results, tree bytes)."""
    big = tree.startup_tree(work, files, megabytes)
    manifest = None
    if manifests:
        manifest = work / f"manifest-{big.root.parent.name}" / "manifest.json"
        startup.build_manifest(big.root, manifest)
    cache = work / f"digest-cache-{big.root.parent.name}"
    measured = [kind for kind in kinds
                if not (kind.startswith("manifest") and manifest is None)
                and not (kind in ("whitenoise", "servestatic") and kind not in names)]
    log(f"startup: {', '.join(measured)} ({files} files, {rounds} interleaved rounds)")
    every = startup.measure_all(measured, big.root, manifest, rounds, cache=cache,
                                traced=traced)
    st = {kind: every[kind] for kind in kinds if kind in every}  # table order
    # A start is only comparable if it indexed the whole tree: an empty
    # manifest once "started" in 8 ms.
    counts = {kind: r["files"] for kind, r in st.items()
              if kind not in ("whitenoise", "servestatic")}
    if len(set(counts.values())) > 1:
        raise SystemExit(f"startup: the steps indexed different numbers of files: {counts}")
    return st, big.total_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick",
                      help="fewer rounds and shorter wrk runs (about a minute)")
    mode.add_argument("--tiny", action="store_const", dest="mode", const="tiny",
                      help="a few seconds on tiny files: checks the runner, figures mean nothing")
    parser.add_argument("--files", type=int, help="files in the startup tree (default 10000)")
    parser.add_argument("--megabytes", type=float, help="size of the startup tree (default 100)")
    parser.add_argument("--rounds", type=int, help="in-process rounds (default 15)")
    parser.add_argument("--e2e-rounds", type=int, help="wrk rounds per server (default 3)")
    parser.add_argument("--e2e-seconds", type=float, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {','.join(SECTIONS)}")
    parser.add_argument("--work", type=Path, default=HERE / ".work",
                        help="where generated files go (default benchmarks/.work)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--write-readme", action="store_true",
                        help="replace the results section of benchmarks/README.md")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of bustware's hot path and a step breakdown")
    args = parser.parse_args(argv)
    cfg = dict(MODES[args.mode or "full"])
    for key in ("files", "megabytes", "rounds", "e2e_rounds", "e2e_seconds"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown section(s) {sorted(unknown)}; use {','.join(SECTIONS)}")
    cfg.update(mode=args.mode or "full", connections=args.connections,
               command=" ".join(["python3 benchmarks/run.py", *(argv or sys.argv[1:])]))
    work = args.work.resolve()

    started = time.monotonic()
    skipped: list[str] = []
    results: dict = {"config": cfg, "machine": machine(), "skipped": skipped}
    site = tree.site(work, cfg["fillers"])
    names = available(apps, skipped)

    if "inprocess" in sections:
        log(f"in-process requests: {', '.join(names)}")
        results["inprocess"] = inprocess.requests(
            site, names, cfg["rounds"], cfg["batch"], lambda s: log(f"in-process: {s}"))
    if {"asgi", "asgi-e2e"} & set(sections):
        asgi_names = available(asgi_inprocess, skipped)
    if "asgi" in sections:
        log(f"in-process requests under ASGI: {', '.join(asgi_names)}")
        results["asgi"] = asgi_inprocess.requests(
            site, asgi_names, cfg["rounds"], cfg["batch"], lambda s: log(f"asgi: {s}"))
    if "hostile" in sections:
        log("in-process requests under hostile Accept-Encoding values")
        results["hostile"] = inprocess.hostile_accept_encoding(
            work, names, cfg["rounds"], cfg["batch"], lambda s: log(f"hostile: {s}"))
    if "url" in sections:
        log("URL helpers")
        results["url"] = inprocess.url_helpers(site, cfg["rounds"], cfg["batch"] / 2,
                                               lambda s: skip(skipped, s))
    why = startup.manifest_support() if {"startup", "scale"} & set(sections) else None
    if why:
        skip(skipped, f"manifest support not available ({why}): its rows are pending")
    if "startup" in sections:
        log(f"startup tree: {cfg['files']} files, {cfg['megabytes']:g} MB (made once)")
        st, cfg["tree_bytes"] = startup_steps(work, cfg["files"], cfg["megabytes"],
                                              startup.KINDS, cfg["startup_rounds"], names,
                                              why is None)
        results["startup"] = st
        rounds = max(3, cfg["startup_rounds"] * 3)
        results["import"] = {m: startup.import_ms(rounds, m)
                             for m in ("bustware", "bustware.jinja")}
        files, mb = cfg["small"]
        log(f"small-files tree: {files} files, {mb:g} MB (made once)")
        results["small"], cfg["small_bytes"] = startup_steps(
            work, files, mb, SMALL_KINDS, cfg["startup_rounds"], names, why is None)
    if "scale" in sections:
        scale = results["scale"] = {}
        for files, mb in cfg["scale"]:
            log(f"scale tree: {files} files, {mb:g} MB (made once)")
            # The largest tree takes seconds per step: one process each.
            rounds = 1 if files >= 50_000 else cfg["startup_rounds"]
            scale[str(files)], _ = startup_steps(work, files, mb, SCALE_KINDS, rounds, names,
                                                 why is None, traced=True)
    if "build" in sections:
        results["build"] = build_bench.measure_all(work, cfg, lambda s: skip(skipped, s), log)
    if "serve-store" in sections:
        results["serve_store"] = serve_store.measure(work, cfg, lambda s: skip(skipped, s), log)
    if "modules" in sections:
        results["modules"] = modules_bench.measure(work, cfg, lambda s: skip(skipped, s), log)
    if "s3" in sections:
        results["s3"] = s3_bench.measure(work, cfg, lambda s: skip(skipped, s), log)
    if "e2e" in sections:
        log("end to end")
        # Tiny mode checks that every kind of server starts; one app is enough.
        impls = ["bare", "bustware"] if cfg["mode"] == "tiny" else names
        results["e2e"] = e2e.throughput(
            site, work, impls, cfg["e2e_rounds"], cfg["e2e_seconds"], args.connections,
            lambda s: skip(skipped, s), lambda s: log(f"end to end: {s}"),
            load=cfg["mode"] != "tiny")
    if "asgi-e2e" in sections:
        log("end to end under ASGI")
        results["asgi_e2e"] = asgi_e2e.throughput(
            site, work, asgi_e2e.rows_for(asgi_names), cfg["e2e_rounds"], cfg["e2e_seconds"],
            args.connections, lambda s: skip(skipped, s),
            lambda s: log(f"asgi end to end: {s}"),
            load=cfg["mode"] != "tiny")
    if "hostile-e2e" in sections:
        log("end to end under hostile Accept-Encoding values")
        results["hostile_e2e"] = hostile_e2e.throughput(
            work, names, cfg["e2e_rounds"], cfg["e2e_seconds"], args.connections,
            lambda s: skip(skipped, s), lambda s: log(f"hostile end to end: {s}"),
            load_it=cfg["mode"] != "tiny")
    if "warm-reload" in sections and cfg["mode"] == "tiny":
        skip(skipped, "warm-reload: not in --tiny mode (six Chromium launches; "
                      "run it with --only warm-reload)")
    elif "warm-reload" in sections:
        log("requests per warm reload, in headless Chromium")
        results["warm_reload"] = warm_reload.measure(work / "warm-reload",
                                                     lambda s: skip(skipped, s), log)
    if "adoption" in sections and cfg["mode"] == "tiny":
        skip(skipped, "adoption: not in --tiny mode (a dozen child processes; "
                      "run it with --only adoption)")
    elif "adoption" in sections:
        log("adoption: bustware against each framework's incumbent")
        results["adoption"] = adoption.measure(work / "adoption", rounds=cfg["startup_rounds"])
        skipped.extend(results["adoption"]["skipped"])
    cfg["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.profile:
        print(inprocess.profile(site))
        print("### Step breakdown of a 2 KiB hit (µs)\n")
        steps = inprocess.hot_path_breakdown(site, cfg["rounds"], cfg["batch"])
        for key, us in steps.items():
            print(f"- {key}: {us:.3f}")
        print()
    if args.write_readme and "scale" in results:
        why_not = plot(results, PLOT)
        if why_not:
            skip(skipped, f"plot: {why_not}")
    text = markdown(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write_readme:
        write_readme(text)
    log(f"done in {cfg['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
