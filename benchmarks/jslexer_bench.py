#!/usr/bin/env python3
"""bustware.jslexer's throughput on real modules, next to es-module-lexer's,
and its cost at n and 4n bytes of pathological input (linear: about 4x).

    npm ci --no-audit --no-fund --prefix tests/npm   # once: the modules and es-module-lexer
    python3 benchmarks/jslexer_bench.py [--rounds 5]

The corpus is every .js/.mjs file of the packages that
tests/test_jslexer.py compares (lit, lit-html, lit-element,
@lit/reactive-element, preact, htm, @preact/signals-core, d3 and its
d3-* packages, three). Files are read into memory first; each round lexes
all of them once. es-module-lexer (its Wasm build) runs in node through
tests/npm/eml.mjs, timed inside node the same way (after one warm-up
pass), so node's start-up is not counted. Figures are medians of
``--rounds``; load on a shared machine moves them, and the load average is
printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from bustware.jslexer import lex  # noqa: E402

NPM = HERE.parent / "tests" / "npm"
PATHOLOGICAL = {
    "'/' repeated": b"/",
    "'${' nesting": b"`${",
    "'(' nesting": b"(",
    "'import {a '": b"import {a ",
    "'import a '": b"import a ",
    "'a/b/' (division)": b"a/b/",
    "'[/' (regex classes)": b"x=[/",
}


def corpus() -> list[bytes]:
    from test_jslexer import module_files  # the test's list of packages

    if not (NPM / "node_modules" / ".package-lock.json").exists():
        sys.exit("run first: npm ci --no-audit --no-fund --prefix tests/npm")
    return [p.read_bytes() for p in module_files(NPM)]


def time_ours(sources: list[bytes], rounds: int, clock=time.perf_counter) -> list[float]:
    for s in sources:
        lex(s)  # warm up
    seconds = []
    for _ in range(rounds):
        t0 = clock()
        for s in sources:
            lex(s)
        seconds.append(clock() - t0)
    return seconds


def time_theirs(rounds: int) -> tuple[int, list[float]]:
    from test_jslexer import module_files

    files = [str(p) for p in module_files(NPM)]
    run = subprocess.run(["node", str(NPM / "eml.mjs"), "--time", str(rounds), *files],
                         cwd=NPM, capture_output=True, text=True, check=True, timeout=600)
    result = json.loads(run.stdout)
    return result["bytes"], result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sources = corpus()
    size = sum(map(len, sources))
    print(f"corpus: {len(sources)} files, {size / 1e6:.1f} MB; load average "
          f"{os.getloadavg()[0]:.2f}")
    ours = statistics.median(time_ours(sources, args.rounds))
    nbytes, theirs_all = time_theirs(args.rounds)
    theirs = statistics.median(theirs_all)
    print(f"bustware.jslexer  {size / ours / 1e6:8.1f} MB/s  ({ours * 1000:.0f} ms a pass)")
    print(f"es-module-lexer   {nbytes / theirs / 1e6:8.1f} MB/s  ({theirs * 1000:.0f} ms a pass, "
          "Wasm, in node)")
    big = max(sources, key=len)
    # CPU time, best of 3: the ratio is what counts, and other processes
    # on a shared machine stretch wall-clock time unevenly.
    print("\nlinear time: CPU seconds at n and 4n bytes, and their ratio")
    cases = [("largest real module", big)] + [
        (name, unit * ((1 << 18) // len(unit))) for name, unit in PATHOLOGICAL.items()]
    for name, data in cases:
        small = min(time_ours([data], 3, time.process_time))
        large = min(time_ours([data * 4], 3, time.process_time))
        print(f"  {name:28} n={len(data) / 1e6:5.2f} MB  {small:7.3f} s  {large:7.3f} s  "
              f"x{large / small:.1f}")


if __name__ == "__main__":
    main()
