"""JavaScript modules: the index build time for a tree of modules (every
relative import rewritten, Merkle versions over the module graph) against
the same tree with ``modules=False``, and the lexer's throughput on real
npm modules next to es-module-lexer's (benchmarks/jslexer_bench.py).

The tree is synthesized: module ``i`` of ``n`` lives in folder ``i // 50``
and imports two others (``./`` or ``../dNN/``), so the graph has long
paths and cycles; each module carries ~1.5 KB of code with strings,
templates, comments and regular expressions for the lexer to walk.
"""

from __future__ import annotations

import gc
import shutil
import statistics
import time
from pathlib import Path

BODY = ("// a comment that names import './nowhere.js'\n"
        "const re = /[/\\]]+/g, s = 'import \"./no.js\"', t = `${s}/${re}`;\n"
        "export function f(a, b) { return a / b / 2 + `x${a ? `y${b}` : ''}`.length; }\n") * 8


def make_tree(root: Path, n: int) -> Path:
    marker = root / f".done-{n}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n):
        d = root / f"d{i // 50:02d}"
        d.mkdir(parents=True, exist_ok=True)
        imports = []
        for j in ((i * 7 + 1) % n, (i * 13 + 2) % n):
            where = "./" if j // 50 == i // 50 else f"../d{j // 50:02d}/"
            imports.append(f'import {{ f as f{j} }} from "{where}m{j}.js";\n')
        (d / f"m{i}.js").write_text("".join(imports) + BODY + f"export const v{i} = {i};\n")
    marker.write_text("")
    return root


def _build_seconds(root: Path, rounds: int, **options) -> float:
    from bustware import Assets

    seconds = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        Assets(root, digest_cache=False, **options)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def measure(work: Path, cfg: dict, skip, log) -> dict:
    files = cfg.get("module_files", 1_000)
    rounds = cfg.get("module_rounds", 3)
    log(f"modules: index build of {files:,} modules")
    root = make_tree(work / f"modules-{files}", files)
    out: dict = {"files": files, "rounds": rounds,
                 "bytes": sum(p.stat().st_size for p in root.rglob("*.js")),
                 "modules": _build_seconds(root, rounds),
                 "classic": _build_seconds(root, rounds, modules=False)}
    import jslexer_bench  # loads bustware.jslexer: only for this section

    try:
        sources = jslexer_bench.corpus()
    except SystemExit as exc:
        skip(f"modules: lexer throughput: {exc}")
        return out
    if cfg["mode"] == "tiny":
        sources = sources[:50]
    out["corpus_files"], out["corpus_bytes"] = len(sources), sum(map(len, sources))
    out["ours"] = statistics.median(jslexer_bench.time_ours(sources, rounds))
    if cfg["mode"] != "tiny" and shutil.which("node"):
        nbytes, theirs = jslexer_bench.time_theirs(rounds)
        out["theirs_bytes"], out["theirs"] = nbytes, statistics.median(theirs)
    else:
        skip("modules: es-module-lexer not timed (no node, or --tiny)")
    return out


def markdown(r: dict) -> str:
    out = ["### JavaScript modules\n",
           f"Index build (`Assets(root)`, no digest cache, median of {r['rounds']}) of "
           f"{r['files']:,} synthesized modules ({r['bytes'] / 1e6:.1f} MB, two relative "
           "imports each): every specifier rewritten and the Merkle versions computed, "
           "against the same tree read as classic scripts (`modules=False`).\n",
           "| tree | modules (auto) | classic scripts | per module |", "|---|---|---|---|",
           f"| {r['files']:,} modules | {r['modules'] * 1000:.0f} ms | "
           f"{r['classic'] * 1000:.0f} ms | {r['modules'] / r['files'] * 1e6:.0f} µs |", ""]
    if "ours" in r:
        out += ["| lexer | corpus | throughput |", "|---|---|---|",
                f"| bustware.jslexer | {r['corpus_files']:,} npm files, "
                f"{r['corpus_bytes'] / 1e6:.1f} MB | "
                f"{r['corpus_bytes'] / r['ours'] / 1e6:.1f} MB/s |"]
        if "theirs" in r:
            out.append(f"| es-module-lexer (Wasm, node) | same | "
                       f"{r['theirs_bytes'] / r['theirs'] / 1e6:.1f} MB/s |")
        out.append("")
    return "\n".join(out) + "\n"
