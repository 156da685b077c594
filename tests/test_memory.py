"""Index memory: what a start from a manifest keeps per file (measured with
tracemalloc, deterministic; never a time)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from bustware import Assets
from bustware.manifest import ManifestError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    static = tmp_path_factory.mktemp("mem") / "static"
    for i in range(2000):
        path = static / f"d{i // 100:02d}" / f"file{i:05d}.{('css', 'js', 'png')[i % 3]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x%d" % i)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "bustware", "build", str(static), "--quiet"],
                   check=True, timeout=300, env=env, capture_output=True)
    return static, static / ".bustware" / "manifest.json"


def test_a_manifest_start_keeps_under_1_kb_per_file(built):
    static, manifest = built
    Assets(static, manifest=manifest)  # modules and caches warmed up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assets = Assets(static, manifest=manifest)
        gc.collect()
        per_file = (tracemalloc.get_traced_memory()[0] - before) / len(assets)
    finally:
        tracemalloc.stop()
    assert len(assets) == 2000
    assert per_file < 1024, per_file


def test_the_manifest_is_read_again_on_demand(built):
    static, manifest = built
    assets = Assets(static, manifest=manifest)
    data = assets.manifest
    assert data["schema"] == "bustware-manifest" and len(data["files"]) == 2000
    assert assets.manifest is data
    # A manifest replaced since the start is not passed off as the one loaded.
    again = Assets(static, manifest=manifest)
    os.utime(manifest)
    with pytest.raises(ManifestError, match="changed since this index loaded it"):
        _ = again.manifest


def test_records_from_a_manifest_share_one_read_only_empty_mapping(built):
    static, manifest = built
    a, b = list(Assets(static, manifest=manifest))[:2]
    assert a.variants == {} and a.links == {} and a.variants is b.links
    with pytest.raises(TypeError):
        a.variants["br"] = None  # type: ignore[index]
