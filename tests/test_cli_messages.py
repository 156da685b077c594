"""What the command line tells its user: advice in its own terms (options
of the command, the exact command to run), each message once."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from bustware.build import build

CSS = b"body { color: red; }\n" * 40
BROKEN = b"a { background: url(../img/gone.png) }\n"


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONDEVMODE", None)  # its warnings about dependencies are not ours
    return subprocess.run([sys.executable, "-m", "bustware", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=cwd)


@pytest.fixture
def root(tree):
    return tree({"css/app.css": CSS, "js/app.js": b"console.log(1);\n"})


def test_url_of_a_missing_file_gives_no_python_advice(root):
    r = run("url", str(root), "missing.css")
    assert r.returncode == 2
    assert r.stderr == (f"bustware: no file 'missing.css' under {[str(root)]!r}. Paths are "
                        "relative to the root, with '/' separators (e.g. 'css/app.css').\n")


def test_verify_names_the_exact_build_command(root, tmp_path):
    out = tmp_path / "release" / "manifest.json"
    r = run("build", str(root), "--out", str(out), "--compress", "gzip",
            "--prefix", "/assets/", "--style", "query", "--query-param", "ver", "--quiet")
    assert r.returncode == 0, r.stderr
    (root / "css/app.css").write_bytes(CSS + b"/* edited */")
    r = run("verify", str(root), "--manifest", str(out))
    assert r.returncode == 1
    command = shlex.join(["bustware", "build", str(root), "--out", str(out),
                          "--compress", "gzip", "--prefix", "/assets/", "--style", "query",
                          "--query-param", "ver"])
    assert r.stdout.splitlines()[-1] == f"Rebuild it: {command}"
    # Following the advice makes the manifest in use match again.
    r = subprocess.run(shlex.split(command.replace("bustware", f"{sys.executable} -m bustware",
                                                   1)), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert run("verify", str(root), "--manifest", str(out)).returncode == 0


def test_verify_with_the_default_manifest_needs_no_out(root):
    build(root)
    (root / "new.js").write_text("new")
    r = run("verify", str(root))
    assert r.returncode == 1
    command = shlex.join(["bustware", "build", str(root)])
    assert r.stdout.splitlines()[-1] == f"Rebuild it: {command}"


def test_manifest_error_names_the_exact_build_command(root, tmp_path):
    from bustware import Assets
    from bustware.manifest import ManifestError

    out = tmp_path / "m" / "manifest.json"
    build(root, out, prefix="/assets/", compress=["gzip"])
    (root / "css/app.css").write_bytes(CSS + b"/* edited */")
    with pytest.raises(ManifestError) as err:
        Assets(root, "/assets/", manifest=out)
    command = shlex.join(["bustware", "build", str(root), "--out", str(out),
                          "--compress", "gzip", "--prefix", "/assets/"])
    assert f"Rebuild it with `{command}` after the files change." in str(err.value)


def test_broken_reference_is_printed_once_and_not_with_quiet(tree):
    root = tree({"css/app.css": BROKEN})
    r = run("build", str(root), "--compress", "gzip")
    assert r.returncode == 0
    assert r.stderr == ("bustware: warning: css/app.css line 1: '../img/gone.png' names "
                        "'img/gone.png', which is not in the index; left as written\n")
    r = run("build", str(root), "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_verify_says_to_fix_a_broken_reference(tree):
    root = tree({"css/app.css": BROKEN})
    build(root)
    r = run("verify", str(root))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[1] == ("  css/app.css: line 1: '../img/gone.png' names 'img/gone.png', which "
                        "is no file of the index")
    assert lines[-1].startswith("Fix each reference to a missing file (correct it, or add "
                                "the file it names; a rebuild alone does not), then rebuild:")
    assert "Rebuild it:" not in r.stdout
