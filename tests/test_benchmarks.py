"""The benchmark runner at tiny size, so that it cannot rot.

Only the shape of what it reports is checked (rows, columns, skip lines, and
that every bustware cell timed the response it is about); never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import system_tools

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
COMPETITORS = ("whitenoise", "servestatic", "werkzeug", "webob")
CASES = ("hit_css", "hit_js", "hit_img", "not_modified", "range", "pass", "outdated")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    out = work / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--tiny", "--work", str(work),
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, proc.stderr, json.loads(out.read_text())


def skipped(results: dict, name: str) -> bool:
    return any(line.startswith(f"{name}:") for line in results["skipped"])


@pytest.mark.server
def test_runs_cleanly(tiny):
    stdout, stderr, results = tiny
    assert "Traceback" not in stderr
    # The runner runs under the test's PYTHONDEVMODE. WebOb's FileApp leaks
    # the file it opened when it answers 304 (its FileIter only closes when
    # iterated); any other unclosed file is ours or bustware's.
    leaks = [line for line in stderr.splitlines() if "ResourceWarning: unclosed" in line]
    assert all("/webob/" in line for line in leaks), leaks
    for line in results["skipped"]:
        assert f"skipped: {line}" in stdout


@pytest.mark.server
def test_request_table_has_every_case_for_every_implementation(tiny):
    stdout, _, results = tiny
    table = results["inprocess"]
    assert list(table)[:2] == ["bare", "bustware"]
    for name in COMPETITORS:
        assert (name in table) != skipped(results, name), name
    for name, row in table.items():
        assert set(row) == set(CASES), name
        for cell in row.values():
            assert cell["us"] > 0 and cell["ratio"] > 0
    # Every bustware cell timed the answer its row names (status, bytes).
    assert {case: cell["note"] for case, cell in table["bustware"].items()} == {
        case: "" for case in CASES}
    for label in ("static hit, 2 KiB CSS", "static hit, 1 MiB PNG", "304 ", "206 ",
                  "pass-through to the app", "outdated version"):
        rows = [line for line in stdout.splitlines() if line.startswith(f"| {label}")]
        assert len(rows) == 1, label
        assert rows[0].count("|") == len(table) + 2


@pytest.mark.server
def test_hostile_accept_encoding_rows(tiny):
    """Issue 11: bustware against WhiteNoise under hostile Accept-Encoding
    values; each cell answered the coding its implementation chooses."""
    stdout, _, results = tiny
    table = results["hostile"]
    assert list(table)[:2] == ["bare", "bustware"]
    for name in ("whitenoise", "servestatic"):
        assert (name in table) != skipped(results, name), name
    cases = ["browser", "hostile_1k", "hostile_8k"]
    for name, row in table.items():
        assert list(row) == cases, name
        assert all(cell["us"] > 0 and cell["ratio"] > 0 for cell in row.values())
    # A value over 1,024 characters is not read: identity, as with no header.
    assert {c: cell["note"] for c, cell in table["bustware"].items()} == {
        "browser": "br", "hostile_1k": "gzip", "hostile_8k": "identity"}
    if "whitenoise" in table:
        assert table["whitenoise"]["hostile_8k"]["note"] == "gzip"
    assert "### Hostile Accept-Encoding, in-process" in stdout
    rows = [line for line in stdout.splitlines() if line.startswith("| a new 8 KB value")]
    assert len(rows) == 1 and rows[0].count("|") == len(table) + 3
    # End to end, tiny mode starts gunicorn with bustware.gunicorn_conf and
    # checks one request of each case, without load.
    if not skipped(results, "gunicorn"):
        expected = ["gunicorn bustware"] + (
            [] if skipped(results, "whitenoise") else ["gunicorn whitenoise"])
        assert results["hostile_e2e"] == {"checked": expected}


@pytest.mark.server
def test_url_helpers_startup_and_servers_are_reported(tiny):
    stdout, _, results = tiny
    assert {"Bustware.url", "Assets.url"} <= set(results["url"])
    assert ("Flask url_for('static')" in results["url"]) != skipped(results, "flask")

    startup = results["startup"]
    for kind in ("hashlib-read", "hashlib-digest", "assets", "bustware"):
        assert startup[kind]["files"] == results["config"]["files"], kind
        assert startup[kind]["ms"] > 0
    assert ("manifest" in startup) != any(
        line.startswith("manifest support not available") for line in results["skipped"])
    assert "### Startup: 200 files" in stdout
    # Issue 13's rows: the small-files tree, the scale trees, import time.
    assert results["small"]["restart"]["files"] == 100
    assert set(results["scale"]) == {"50", "150"}
    for files, steps in results["scale"].items():
        assert {"assets-nobytes", "restart"} <= set(steps)
        assert all(r["files"] == int(files) for k, r in steps.items()
                   if k not in ("whitenoise", "servestatic"))
    assert "### Scale: start and memory by tree size" in stdout
    assert results["import"]["bustware"] > 0
    for target in ("cold index within 1.5x of hashlib alone", "`import bustware` in at most",
                   "at most 1 KB of index memory per file, 150 files"):
        assert f"| {target}" in stdout, target

    if not skipped(results, "gunicorn"):
        assert {"gunicorn bare", "gunicorn bustware"} <= set(results["e2e"]["checked"])
    if not skipped(results, "nginx"):
        assert "nginx nginx" in results["e2e"]["checked"]
    assert "| target | measured | verdict |" in stdout
    assert "### Machine" in stdout


def test_wrk_report_parsing_and_e2e_table():
    sys.path.insert(0, str(BENCH))
    try:
        import e2e
        import run
    finally:
        sys.path.remove(str(BENCH))
    report = ("Running 1s test @ http://127.0.0.1:18123/\n  1 threads and 4 connections\n"
              "  2639 requests in 1.00s, 5.60MB read\nRequests/sec:   2638.31\n"
              "Transfer/sec:      5.60MB\n")
    assert e2e.parse_wrk(report) == 2638.31
    with pytest.raises(RuntimeError, match="failed requests"):
        e2e.parse_wrk(report.replace("Requests/sec", "  Non-2xx or 3xx responses: 7\n"
                                     "Requests/sec"))
    with pytest.raises(RuntimeError, match="no Requests/sec"):
        e2e.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")

    results = {
        "config": {"command": "x", "mode": "full", "connections": 32, "e2e_seconds": 5,
                   "e2e_rounds": 3},
        "machine": {"date": "d", "commit": "c", "nproc": 2, "cpu": "cpu", "memory": "m",
                    "load_average_at_start": "0", "python": "p", "platform": "p",
                    "packages": {}, "nginx": "n", "wrk": "w"},
        "skipped": [],
        "e2e": {"gunicorn": {"bare": 1000.0, "bustware": 900.0},
                "granian": {"bare": 4000.0, "bustware": 3600.0},
                "nginx": {"nginx": 8000.0}},
    }
    text = run.markdown(results)
    assert "| bustware | 900 | 0.90 | 0.11 | 3,600 | 0.90 | 0.45 |" in text
    assert "| nginx (sendfile, from disk) | 8,000 | | 1.00 | | | |" in text
    assert ("| behind granian, static hits at least 75% of the bare app's requests/s "
            "| 90% | met |") in text


@pytest.mark.server
def test_asgi_request_table(tiny):
    stdout, _, results = tiny
    table = results["asgi"]
    assert list(table)[:2] == ["bare", "bustware"]
    for name in ("servestatic", "starlette"):
        assert (name in table) != skipped(results, f"asgi {name}"), name
    for name, row in table.items():
        assert set(row) == {"hit_css", "not_modified", "pass"}, name
    # bustware timed what each row is about: its own answers, right bytes.
    assert all(cell["note"] == "" for cell in table["bustware"].values()), table["bustware"]
    assert "### In-process cost of a request under ASGI" in stdout
    # blacknoise as its README sets it up: its brotli variant, no 304.
    if "blacknoise" in table:
        assert table["blacknoise"]["hit_css"]["note"] == "br"
        assert table["blacknoise"]["not_modified"]["note"].startswith("200, ")
        assert table["blacknoise"]["pass"]["note"] == ""
        assert "cache-control: max-age=315360000, public, immutable" in \
            table["blacknoise"]["hit_css"]["headers"]
    assert "cache-control: max-age=31536000, immutable" in table["bustware"]["hit_css"]["headers"]
    assert "- bustware: `content-type: text/css; charset=utf-8`" in stdout
    assert "| ASGI static hit (2 KiB CSS) in-process at most 3x the bare ASGI app |" in stdout


@pytest.mark.server
def test_asgi_servers_are_started_and_checked(tiny):
    """Tiny mode starts every ASGI end-to-end row under each server and
    checks one request of each (status, bytes, who answered)."""
    _, _, results = tiny
    sys.path.insert(0, str(BENCH))
    try:
        import asgi_e2e
    finally:
        sys.path.remove(str(BENCH))
    rows = asgi_e2e.rows_for(results["asgi"])  # the implementations installed here
    assert {"bare", "bare-headers", "bustware", "bustware-100k", "bustware-pass"} <= set(rows)
    servers = [s for s in asgi_e2e.SERVERS if not skipped(results, f"asgi-e2e {s}")]
    assert results["asgi_e2e"] == {"checked": [f"{s} {r}" for s in servers for r in rows]}


@pytest.mark.server
def test_asgi_end_to_end_under_load(tmp_path):
    """One short wrk run per row and server: the requests-per-second table,
    the ratios and the granian target come out of real measurements."""
    sys.path.insert(0, str(BENCH))
    try:
        import asgi_e2e
        import run
        import tree
    finally:
        sys.path.remove(str(BENCH))
    system_tools.require({"wrk": "wrk"})
    skips: list[str] = []
    found = asgi_e2e.servers_available(skips.append)
    site = tree.site(tmp_path, fillers=2)
    result = asgi_e2e.throughput(site, tmp_path, ["bare", "bustware"],
                                 rounds=1, seconds=1, connections=4, skip=skips.append,
                                 warmup=0)
    servers = [s for s in asgi_e2e.SERVERS if found[s]]
    assert servers and all(f.startswith("asgi-e2e ") for f in skips), skips
    for s in servers:
        assert set(result[s]) == {"bare", "bustware"}
        assert all(rps > 0 for rps in result[s].values())
        # The server's CPU per request, from /proc: some, and under a second.
        assert all(0 < us < 1e6 for us in result["cpu_us"][s].values())
    cfg = {"connections": 4, "e2e_seconds": 1, "e2e_rounds": 1}
    text = asgi_e2e.markdown(result, cfg)
    for label in ("bare ASGI app", "bustware, static hit, 2 KiB CSS"):
        line = next(x for x in text.splitlines() if x.startswith(f"| {label}"))
        assert line.count("|") == 2 + 3 * len(servers)
        assert line.count(" µs |") == len(servers)
    if "granian" in result:
        share = result["granian"]["bustware"] / result["granian"]["bare"]
        (row,) = asgi_e2e.targets(result, lambda ok, miss: "met" if ok else "missed")
        assert row[1].startswith(f"{share:.0%} (by CPU per request: ")
    assert run.targets({"asgi_e2e": result}) == asgi_e2e.targets(
        result, lambda ok, miss: "met" if ok else f"**missed**: {miss}")


def test_asgi_tables_and_targets_from_figures():
    sys.path.insert(0, str(BENCH))
    try:
        import run
    finally:
        sys.path.remove(str(BENCH))
    cell = {"note": "", "headers": ["cache-control: max-age=31536000, immutable"]}
    results = {
        "config": {"command": "x", "mode": "full", "connections": 32, "e2e_seconds": 5,
                   "e2e_rounds": 3, "rounds": 21},
        "machine": {"date": "d", "commit": "c", "nproc": 2, "cpu": "cpu", "memory": "m",
                    "load_average_at_start": "0", "python": "p", "platform": "p",
                    "packages": {}, "nginx": "n", "wrk": "w"},
        "skipped": [],
        "asgi": {n: {c: {**cell, "us": us, "ratio": us / 1.0} for c in
                     ("hit_css", "not_modified", "pass")}
                 for n, us in (("bare", 1.0), ("bustware", 3.5), ("servestatic", 14.0))},
        "asgi_e2e": {"servers": {"uvicorn": "uvicorn 1", "granian": "granian 2"},
                     "spread": 0.05, "cpu_us": {"granian": {"bare": 40.0, "bustware": 50.0}},
                     "uvicorn": {"bare": 5000.0, "bustware": 4000.0},
                     "granian": {"bare": 20000.0, "bustware": 14000.0,
                                 "blacknoise": 4000.0}},
    }
    text = run.markdown(results)
    assert ("| bare ASGI app, 2 KiB body (the floor) | 5,000 | 1.00 | | 20,000 | 1.00 | 40 µs |"
            in text)
    assert "| bustware, static hit, 2 KiB CSS | 4,000 | 0.80 | | 14,000 | 0.70 | 50 µs |" in text
    assert "| blacknoise, 2 KiB CSS | | | | 4,000 | 0.20 | |" in text
    assert ("| ASGI static hit (2 KiB CSS) in-process at most 3x the bare ASGI app | 3.50x "
            "| **missed**: 1.17x over the target |") in text
    assert ("| ASGI static hit at least 5x cheaper than ServeStaticASGI | 4.0x cheaper "
            "| **missed**: 1.25x short |") in text
    assert ("| ASGI behind granian, static hits (2 KiB CSS) at least 75% of the bare ASGI "
            "app's requests/s | 70% (by CPU per request: 80%) | **missed**: 5% short |") in text
    results["asgi_e2e"]["granian"]["bustware"] = 16000.0
    assert "app's requests/s | 80% (by CPU per request: 80%) | met |" in run.markdown(results)


@pytest.mark.server
def test_build_rows(tiny):
    stdout, _, results = tiny
    rows = results["build"]
    assert [r["codings"] for r in rows] == ["br,gzip", "br,gzip,zstd"]
    for r in rows:
        # Every file built, every codec call timed, the ratio from the figures.
        assert r["files"] == 100 and r["calls"] > 0 and r["compress_cpu"] > 0
        assert r["ratio"] == pytest.approx(r["wall"] / (r["compress_cpu"] / r["cores"]))
        assert r["free_cores"] > 0 and r["fed_ratio"] >= 0.99
    assert "### Build: wall time against the compressors' CPU time" in stdout
    assert "| build wall time at most 1.2x (compressor CPU / " in stdout


def test_serve_store_rows(tiny):
    stdout, _, results = tiny
    res = results["serve_store"]
    assert res["files"] == 200
    assert set(res["start_ms"]) == set(res["hit_us"]) == {"without", "with"}
    assert "### Serving with a shared store (`store=`)" in stdout
    assert "| a replica's first response with `store=` under 100 ms, 200 files" in stdout
    if not skipped(results, "serve-store"):
        assert {"fresh_ms", "warm_ms", "cached_us"} <= set(res["fetch"])
        assert "| again (held in memory) |" in stdout
