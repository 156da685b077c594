"""What importing bustware loads: only what the caller uses (checked by the
modules present afterwards, in a fresh interpreter; never by a time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Loaded only on first use: werkzeug's package import alone takes ~40 ms,
#: the reference tokenizer's expressions ~30 ms.
HEAVY = ("werkzeug", "webob", "bustware.references", "bustware.manifest", "bustware.build",
         "bustware.compress", "bustware.bundlers", "bustware.integrity", "bustware.cli",
         "bustware.digestcache")


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDEVMODE", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_bustware_loads_no_heavy_module():
    loaded = modules_after("import bustware\nfrom bustware import Assets, Bustware")
    assert {"bustware.assets", "bustware.middleware"} <= loaded
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_a_start_from_a_manifest_needs_no_tokenizer(tmp_path):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.css").write_bytes(b"a{background:url(../img/a.png)}")
    (static / "img").mkdir()
    (static / "img" / "a.png").write_bytes(b"PNG")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "bustware", "build", str(static), "--quiet"],
                   check=True, timeout=120, env=env, capture_output=True)
    manifest = static / ".bustware" / "manifest.json"
    loaded = modules_after(
        "from bustware import Bustware\n"
        f"app = Bustware(None, {str(static)!r}, manifest={str(manifest)!r})\n"
        "assert len(app.assets) == 2")
    assert "bustware.manifest" in loaded
    # bustware.compress is what the middleware's compression without a build
    # step (on by default) compresses with; it asks which codecs exist.
    needed = {"bustware.manifest", "bustware.compress"}
    assert sorted(m for m in HEAVY if m in loaded and m not in needed) == []


@pytest.mark.parametrize("integration", ["jinja", "django", "pyramid"])
def test_an_integration_imports_what_it_uses(integration):
    pytest.importorskip(integration if integration != "jinja" else "jinja2")
    loaded = modules_after(f"import bustware.{integration}")
    own = {"webob"} if integration == "pyramid" else set()  # pyramid is built on webob
    assert sorted(m for m in HEAVY if m in loaded and m not in own) == []


def test_the_asgi_middleware_and_asyncio_load_on_first_use():
    # asyncio alone takes ~30 ms to import; a WSGI process never needs it.
    loaded = modules_after("import bustware\nfrom bustware import Assets, Bustware")
    assert not {"bustware.asgi", "asyncio"} & loaded
    loaded = modules_after("import bustware\nassert bustware.BustwareASGI.__name__ == "
                           "'BustwareASGI'")
    assert {"bustware.asgi", "asyncio"} <= loaded
