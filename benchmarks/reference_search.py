#!/usr/bin/env python3
"""The reference search alone: bustware.references on the startup tree's
stylesheets and scripts, and on any stylesheet named on the command line.

    python3 benchmarks/reference_search.py                  # the 10,000-file tree
    python3 benchmarks/reference_search.py path/to/big.css  # also these files

Files are read into memory first; each figure is the CPU time of one pass
over all of them (median and best of ``--rounds``), so that only the
search is timed: ``find_references`` (decoding and the tokenizer),
``find_links`` (and resolving the URLs) and ``rewrite`` of the stylesheets
with a versioned URL for every reference. Load on a shared machine moves
these figures: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import tree  # noqa: E402

from bustware import references  # noqa: E402


def _timed(rounds: int, step) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="more stylesheets to search")
    parser.add_argument("--tree-files", type=int, default=10000)
    parser.add_argument("--tree-megabytes", type=float, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    args = parser.parse_args(argv)

    root = tree.startup_tree(args.work, args.tree_files, args.tree_megabytes).root
    groups: dict[str, list[tuple[str, bytes]]] = {"css": [], "js": []}
    for path in sorted(root.rglob("*")):
        kind = references.kind_of(path.name)
        if kind is not None:
            groups[kind].append((path.relative_to(root).as_posix(), path.read_bytes()))
    for path in args.files:
        groups.setdefault(path.name, []).append((path.name, path.read_bytes()))

    print(f"load average {os.getloadavg()[0]:.1f}; CPU ms, median (best) of {args.rounds}")
    for name, files in groups.items():
        size = sum(len(data) for _, data in files) / 1e6
        kind = references.kind_of(files[0][0]) if files else None
        if kind is None:
            continue
        rows = [
            ("find_references", lambda files=files, kind=kind: [
                references.find_references(data, kind) for _, data in files]),
            ("find_links", lambda files=files: [
                references.find_links(data, path, "/static/") for path, data in files]),
        ]
        if kind == "css":
            prepared = []
            for path, data in files:
                found = references.find_links(data, path, "/static/")
                urls = {t: f"/static/{t}?v=0123456789abcdef" for t in found.targets}
                prepared.append((data, references.replacements(found, urls)))
            rows.append(("rewrite", lambda prepared=prepared: [
                references.rewrite(data, reps) for data, reps in prepared]))
        for label, step in rows:
            median, best = _timed(args.rounds, step)
            print(f"{name}: {len(files)} files, {size:.2f} MB: {label} {median * 1e3:.1f} ms "
                  f"({best * 1e3:.1f}), {size / best if best else float('inf'):.0f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
