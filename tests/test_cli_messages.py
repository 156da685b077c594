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


def test_demo_on_a_taken_port_names_port_and_says_nothing_else(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run("demo", "--port", str(port))
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith(f"bustware: cannot listen on 127.0.0.1:{port} (")
    assert f"choose another with --port, e.g. --port {port + 1}" in r.stderr
    assert "Traceback" not in r.stderr


def test_demo_port_out_of_range_is_a_usage_error():
    r = run("demo", "--port", "70000")
    assert r.returncode == 2 and r.stdout == ""
    assert ("argument --port: '70000' is not a TCP port (1 to 65535, or 0 for any free one)"
            in r.stderr)
    assert "Traceback" not in r.stderr


@pytest.mark.server
def test_demo_dir_autorefresh_serves_an_edited_copy(tmp_path):
    import hashlib
    import re

    from conftest import free_port, serving
    from test_cli import DEMO_STATIC, get

    mine = tmp_path / "mydemo"
    (mine / "js").mkdir(parents=True)
    (mine / "js" / "app.js").write_bytes(b"// mine\n")  # kept, not overwritten
    port = free_port()
    argv = [sys.executable, "-m", "bustware", "demo", "--dir", str(mine), "--autorefresh",
            "--port", str(port)]
    with serving(argv, port) as server:
        status, _, page = get(server.url, "/")
        css_url, js_url = re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"',
                                     page.decode())
        assert get(server.url, css_url)[2] == (DEMO_STATIC / "css/site.css").read_bytes()
        assert get(server.url, js_url)[2] == b"// mine\n"
        edited = b"body { background: #ffd; }\n"
        (mine / "css" / "site.css").write_bytes(edited)
        new_url = f"/static/css/site.{hashlib.sha256(edited).hexdigest()[:12]}.css"
        assert new_url.encode() in get(server.url, "/")[2]
        status, headers, body = get(server.url, new_url)
        assert (status, body) == (200, edited)
        assert headers["cache-control"] == "max-age=31536000, immutable"
    assert "development mode: edit the files under " + str(mine) in server.output
    assert "not for production; bustware's middleware is" in server.output
    assert (mine / "img" / "logo.svg").read_bytes() == (DEMO_STATIC / "img/logo.svg").read_bytes()


def test_damaged_manifest_error_names_where_to_rebuild(root, tmp_path):
    elsewhere = tmp_path / "release" / "manifest.json"
    build(root, elsewhere)
    elsewhere.write_text("{")
    r = run("verify", str(root), "--manifest", str(elsewhere))
    assert r.returncode == 2
    assert f"&& bustware build {root} --out {elsewhere}`, adding the options it was " \
           "built with" in r.stderr
    build(root)
    (root / ".bustware" / "manifest.json").write_text("{")
    r = run("verify", str(root))
    assert r.returncode == 2
    assert f"&& bustware build {root}`, adding the options" in r.stderr
