"""``bustware build``, ``verify`` and ``prune`` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bustware.cli import main

CSS = b"body { color: red; }\n" * 40


@pytest.fixture
def root(tree):
    return tree({"css/app.css": CSS, "js/app.js": b"console.log(1);\n"})


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("PYTHONDEVMODE", None)  # its warnings about dependencies are not ours
    return env


def run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bustware", *args], capture_output=True,
                          text=True, timeout=60, env=child_env(**(env or {})))


def test_build_prints_a_summary_and_no_bar_in_ci(root):
    r = run("build", str(root), "--compress", "gzip", env={"CI": "true"})
    assert r.returncode == 0, r.stderr
    assert "2 files" in r.stdout and "generation 1" in r.stdout
    assert "\r" not in r.stderr and r.stderr == ""
    data = json.loads((root / ".bustware/manifest.json").read_text())
    assert set(data["files"]) == {"css/app.css", "js/app.js"}
    assert "gzip" in data["files"]["css/app.css"]["variants"]


def test_build_quiet_prints_nothing(root, capsys):
    assert main(["build", str(root), "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_build_with_out_prefix_and_style(root, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["build", str(root), "--out", str(out), "--prefix", "/assets/",
                 "--style", "segment", "--quiet"]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert (settings["prefix"], settings["style"]) == ("/assets/", "segment")


def test_missing_extra_is_a_message_and_exit_2(root):
    # A child process in which the brotli package cannot be imported.
    code = ("import sys; sys.modules['brotli'] = None; from bustware.cli import main; "
            f"sys.exit(main(['build', {str(root)!r}, '--compress', 'br,gzip']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=child_env())
    assert r.returncode == 2
    assert "pip install 'bustware[brotli]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (root / ".bustware").exists()


def test_unknown_coding_is_exit_2(root, capsys):
    assert main(["build", str(root), "--compress", "lzma"]) == 2
    assert "unknown encoding 'lzma'" in capsys.readouterr().err


def test_verify_passes_then_lists_what_changed(root, capsys):
    assert main(["build", str(root), "--quiet"]) == 0
    assert main(["verify", str(root)]) == 0
    assert "matches" in capsys.readouterr().out
    (root / "css/app.css").write_bytes(CSS + b"/* edited */")
    (root / "new.js").write_text("new")
    os.remove(root / "js/app.js")
    assert main(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "css/app.css: changed (size" in out
    assert "js/app.js: missing" in out
    assert "new.js: not in the manifest" in out
    assert f"bustware build {root}" in out


def test_verify_full_finds_edits_that_kept_size_and_mtime(root, capsys):
    assert main(["build", str(root), "--quiet"]) == 0
    st = os.stat(root / "css/app.css")
    (root / "css/app.css").write_bytes(CSS.replace(b"red", b"tan"))
    os.utime(root / "css/app.css", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert main(["verify", str(root)]) == 0
    assert main(["verify", str(root), "--full"]) == 1
    assert "css/app.css: changed (its content differs" in capsys.readouterr().out


def test_verify_without_a_manifest_is_exit_2(root, capsys):
    assert main(["verify", str(root)]) == 2
    assert "bustware build" in capsys.readouterr().err


def test_verify_a_foreign_manifest_is_exit_2(root, tmp_path, capsys):
    other = tmp_path / "manifest.json"
    other.write_text('{"main.js": "main.123.js"}')
    assert main(["verify", str(root), "--manifest", str(other)]) == 2
    assert "is not a bustware manifest" in capsys.readouterr().err


def test_prune_on_the_command_line(root, capsys):
    for n in range(3):
        (root / "css/app.css").write_bytes(CSS + b"/* %d */" % n)
        assert main(["build", str(root), "--keep", "3", "--quiet"]) == 0
    assert main(["prune", str(root), "--keep", "1"]) == 0
    assert "dropped generation 1" in capsys.readouterr().out
    assert main(["prune", str(root), "--older-than", "1w"]) == 0
    assert "nothing to prune" in capsys.readouterr().out
    assert main(["prune", str(root)]) == 2
    assert main(["prune", str(root), "--older-than", "soon"]) == 2
    assert "90s, 30m" in capsys.readouterr().err


def test_bad_keep_is_a_usage_error(root, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", str(root), "--keep", "-2"])
    assert exc.value.code == 2
    assert "'-2' is not a count" in capsys.readouterr().err


@pytest.mark.parametrize("jobs", ["0", "-3", "two"])
def test_bad_jobs_is_a_usage_error(root, capsys, jobs):
    with pytest.raises(SystemExit) as exc:
        main(["build", str(root), "--jobs", jobs])
    assert exc.value.code == 2
    assert f"{jobs!r} is not a number of threads" in capsys.readouterr().err
    assert not (root / ".bustware").exists()


def test_jobs_gives_the_same_manifest(root, tmp_path):
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    manifests = []
    for jobs in ("1", "3"):
        out = tmp_path / jobs / "manifest.json"
        r = run("build", str(root), "--out", str(out), "--compress", "gzip,br", "--jobs", jobs,
                "--quiet", env=env)
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
        manifests.append(out.read_bytes())
    assert manifests[0] == manifests[1]
    assert set(json.loads(manifests[0])["files"]["css/app.css"]["variants"]) == {"gzip", "br"}


def test_existing_commands_still_work(root, capsys):
    assert main(["url", str(root), "css/app.css"]) == 0
    assert capsys.readouterr().out.startswith("/static/css/app.")
