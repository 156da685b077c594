"""Every configuration mistake a user can make gives an error that names the
bad value and says what to do, from Python (an exception) and from the
command line (exit status 2 and a message on stderr, no traceback)."""

from __future__ import annotations

import builtins
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bustware import AssetNotFound, Assets, Bustware


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_bytes(b"body{}\n")
    (tmp_path / "file.txt").write_bytes(b"not a directory\n")
    return root


# (id, how to make the mistake given the root, exception, the value as the
# message must show it, words of the advice)
CASES = [
    ("root missing", lambda r: Assets(r.parent / "nope"), ValueError,
     "nope'", "does not exist; pass the directory"),
    ("root is a file", lambda r: Assets(r.parent / "file.txt"), ValueError,
     "file.txt'", "not a directory; pass the directory"),
    ("root empty list", lambda r: Assets([]), ValueError, "root=[]", "pass at least one"),
    ("root None", lambda r: Assets(None), TypeError, "root=None", "pass the directory"),
    ("root an int", lambda r: Assets(42), TypeError, "root=42", "pass the directory"),
    ("root bytes", lambda r: Assets(os.fsencode(r)), TypeError, "root=b'", "as a str"),
    ("root a set", lambda r: Assets({str(r)}), TypeError, "root={'", "a list of them"),
    ("app and root swapped", lambda r: Bustware(str(r), app), TypeError,
     "root=<function app", "pass the directory"),
    ("one of the roots missing", lambda r: Assets([r, r.parent / "nope"]), ValueError,
     "nope'", "does not exist"),
    ("prefix without slashes", lambda r: Assets(r, "static"), ValueError,
     "prefix='static'", "e.g. '/static/'"),
    ("prefix without trailing slash", lambda r: Assets(r, "/static"), ValueError,
     "prefix='/static'", "end with '/'"),
    ("prefix is a URL", lambda r: Assets(r, "https://cdn.example.com/static/"), ValueError,
     "prefix='https://cdn.example.com/static/'", "start and end with '/'"),
    ("prefix with a query", lambda r: Assets(r, "/s?x/"), ValueError,
     "prefix='/s?x/'", "may not contain '?'"),
    ("prefix not a string", lambda r: Assets(r, None), ValueError, "prefix=None", "'/static/'"),
    ("unknown style", lambda r: Assets(r, style="hash"), ValueError,
     "style='hash'", "'filename', 'segment', 'query'"),
    ("style in capitals", lambda r: Assets(r, style="Filename"), ValueError,
     "style='Filename'", "'filename'"),
    ("unknown version source", lambda r: Assets(r, version="md5"), ValueError,
     "version='md5'", "'digest' (default), 'mtime'"),
    ("release with version", lambda r: Assets(r, release="abc", version="mtime"), ValueError,
     "release='abc' and version='mtime'", "pass only one"),
    ("release with dots", lambda r: Assets(r, release="v1.2.3"), ValueError,
     "'v1.2.3' from release=", "no dots or slashes"),
    ("release not a string", lambda r: Assets(r, release=123), ValueError,
     "123 from release=", "A-Z, a-z, 0-9"),
    ("query_param with filename style", lambda r: Assets(r, query_param="ver"), ValueError,
     "query_param='ver'", "only applies to style='query'"),
    ("query_param with segment style",
     lambda r: Assets(r, style="segment", query_param="ver"), ValueError,
     "query_param='ver'", "not style='segment'"),
    ("query_param not a plain name", lambda r: Assets(r, style="query", query_param="a b"),
     ValueError, "query_param='a b'", "a plain name such as 'v'"),
    ("extensions as a string", lambda r: Assets(r, extensions=".css"), TypeError,
     "extensions='.css'", "a list of suffixes"),
    ("extension without a dot", lambda r: Assets(r, extensions=["css"]), ValueError,
     "'css'", "start with a dot"),
    ("version callable returns None", lambda r: Assets(r, version=lambda p, a: None),
     ValueError, "None from version callable for 'css/app.css'", "1 to 64 characters"),
    ("version callable returns dots", lambda r: Assets(r, version=lambda p, a: "1.0"),
     ValueError, "'1.0' from version callable for 'css/app.css'", "no dots"),
    ("version callable returns a slash", lambda r: Assets(r, version=lambda p, a: "a/b"),
     ValueError, "'a/b' from version callable", "no dots or slashes"),
    ("version callable returns an int", lambda r: Assets(r, version=lambda p, a: 5),
     ValueError, "5 from version callable", "A-Z, a-z, 0-9"),
    ("version callable returns too long", lambda r: Assets(r, version=lambda p, a: "x" * 65),
     ValueError, "'xxxx", "1 to 64 characters"),
    ("memory_threshold as text", lambda r: Assets(r, memory_threshold="1MB"), ValueError,
     "memory_threshold='1MB'", "byte counts >= 0"),
    ("memory_budget negative", lambda r: Assets(r, memory_budget=-1), ValueError,
     "memory_budget=-1", "byte counts >= 0"),
    ("refresh_interval as text", lambda r: Assets(r, autorefresh=True, refresh_interval="1s"),
     ValueError, "refresh_interval='1s'", "seconds >= 0"),
    ("refresh_interval negative", lambda r: Assets(r, autorefresh=True, refresh_interval=-1),
     ValueError, "refresh_interval=-1", "seconds >= 0"),
    ("charset with CR LF", lambda r: Assets(r, charset="utf-8\r\nX-Evil: 1"), ValueError,
     "charset='utf-8\\r\\nX-Evil: 1'", "such as 'utf-8'"),
    ("options beside a ready Assets", lambda r: Bustware(app, Assets(r), style="query"),
     ValueError, "['style']", "pass prefix and index options to Assets(...)"),
    ("prefix beside a ready Assets", lambda r: Bustware(app, Assets(r), "/s/"), ValueError,
     "and prefix", "pass prefix and index options to Assets(...)"),
    ("unknown outdated policy", lambda r: Bustware(app, r, outdated="410"), ValueError,
     "outdated='410'", "use 'serve'"),
    ("unknown missing policy", lambda r: Bustware(app, r, missing="pass"), ValueError,
     "missing='pass'", "use '404' or 'app'"),
    ("unknown mode", lambda r: Bustware(app, r, mode="proxy"), ValueError,
     "mode='proxy'", "use 'serve'"),
    ("app not callable", lambda r: Bustware("myapp:app", r), TypeError,
     "app='myapp:app'", "not a WSGI application"),
    ("cache_control with CR LF", lambda r: Bustware(app, r, cache_control="max-age=1\r\nX: y"),
     ValueError, "cache_control='max-age=1\\r\\nX: y'", "without CR, LF"),
    ("cache_control not latin-1", lambda r: Bustware(app, r, cache_control="max-age=1 \u20ac"),
     ValueError, "cache_control='max-age=1 \u20ac'", "latin-1"),
    ("allow_origin with LF", lambda r: Bustware(app, r, allow_origin="*\n"), ValueError,
     "allow_origin='*\\n'", "without CR, LF"),
    ("add_headers not callable", lambda r: Bustware(app, r, add_headers={"X-A": "v"}),
     TypeError, "add_headers={'X-A': 'v'}", "pass a function"),
    ("add_headers gives strings",
     lambda r: Bustware(app, r, add_headers=lambda a: ["X-A: v"]), ValueError,
     "gave 'X-A: v'", "(name, value) pairs"),
    ("add_headers bad name",
     lambda r: Bustware(app, r, add_headers=lambda a: [("X A:", "v")]), ValueError,
     "gave ('X A:', 'v')", "(name, value) pairs"),
    ("add_headers value with CR LF",
     lambda r: Bustware(app, r, add_headers=lambda a: [("X-A", "a\r\nb")]), ValueError,
     "X-A='a\\r\\nb'", "without CR, LF"),
    ("add_headers value not latin-1",
     lambda r: Bustware(app, r, add_headers=lambda a: [("X-A", "\u20ac")]), ValueError,
     "X-A='\u20ac'", "latin-1"),
    ("url() of a missing file", lambda r: Assets(r).url("css/nope.css"), AssetNotFound,
     "'css/nope.css'", "relative to the root"),
    ("url() with the prefix", lambda r: Assets(r).url("static/css/app.css"), AssetNotFound,
     "'static/css/app.css'", "Did you mean 'css/app.css'?"),
    ("url() in the wrong case", lambda r: Assets(r).url("CSS/App.css"), AssetNotFound,
     "'CSS/App.css'", "Did you mean 'css/app.css'?"),
]


@pytest.mark.parametrize(("make", "exc", "value", "advice"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_configuration_mistake(root, make, exc, value, advice):
    with pytest.raises(exc) as info:
        make(root)
    message = str(info.value)
    assert message.startswith("bustware: ")
    assert value in message, message
    assert advice in message, message


def test_a_typo_in_an_option_name_is_named(root):
    with pytest.raises(TypeError, match="'styel'"):
        Bustware(app, root, styel="query")


# -- an unreadable file ---------------------------------------------------------


@pytest.fixture
def unreadable(root, monkeypatch) -> Path:
    """css/secret.css, which this process cannot read. chmod is not enough
    as root (CI runs as root), so open() is made to refuse it there too."""
    path = root / "css" / "secret.css"
    path.write_bytes(b"x")
    path.chmod(0)
    if os.access(path, os.R_OK):
        def refusing(real_open):
            def refusing_open(file, *args, **kwargs):
                if os.fspath(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(path))
                return real_open(file, *args, **kwargs)
            return refusing_open

        # open(), and os.open() for bustware's opens that never block on a FIFO.
        monkeypatch.setattr(builtins, "open", refusing(builtins.open))
        monkeypatch.setattr(os, "open", refusing(os.open))
    yield path
    path.chmod(0o644)


def test_unreadable_file(root, unreadable):
    with pytest.raises(PermissionError) as info:
        Assets(root)
    message = str(info.value)
    assert message.startswith("bustware: ")
    assert repr(str(unreadable)) in message
    assert "make it readable" in message


def test_unreadable_file_cli(root, unreadable, capsys):
    from bustware.cli import main

    if builtins.open is not _REAL_OPEN:  # root: the refusal lives in this process
        assert main(["url", str(root), "css/app.css"]) == 2
        err = capsys.readouterr().err
    else:
        out = cli("url", str(root), "css/app.css")
        assert out.returncode == 2
        err = out.stderr
    assert err.startswith("bustware: ") and "Traceback" not in err
    assert str(unreadable) in err and "make it readable" in err


_REAL_OPEN = builtins.open


# -- the command line -----------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "bustware", *args], capture_output=True,
                          text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


CLI_CASES = [
    ("root missing", ["url", "{tmp}/nope", "css/app.css"], "/nope'", "does not exist"),
    ("root is a file", ["url", "{tmp}/file.txt", "css/app.css"], "file.txt'",
     "not a directory"),
    ("file not in the index", ["url", "{root}", "css/nope.css"], "'css/nope.css'",
     "relative to the root"),
    ("bad prefix", ["url", "{root}", "css/app.css", "--prefix", "static"],
     "prefix='static'", "e.g. '/static/'"),
    ("unknown style", ["url", "{root}", "css/app.css", "--style", "hash"],
     "'hash'", "choose from"),
    ("serve a missing root", ["serve", "{tmp}/nope", "--port", "0"], "/nope'",
     "does not exist"),
    ("no command", [], "COMMAND", "required"),
]


@pytest.mark.parametrize(("args", "value", "advice"), [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_mistake(root, args, value, advice):
    out = cli(*(a.format(tmp=root.parent, root=root) for a in args))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert value in out.stderr and advice in out.stderr, out.stderr
    assert out.stdout == ""


# -- a corrupt or foreign manifest (Assets(manifest=PATH)) ------------------------

HAS_MANIFEST = "manifest" in inspect.signature(Assets).parameters
if HAS_MANIFEST:
    from bustware.manifest import ManifestError
needs_manifest = pytest.mark.skipif(not HAS_MANIFEST, reason="Assets(manifest=) not there yet")

MANIFESTS = [
    ("missing", None, "no manifest at", "bustware build"),
    ("empty", b"", "", "bustware build"),
    ("not JSON", b"{\"schema\": \"bustware-manifest\", ", "", "bustware build"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00", "", "bustware build"),
    ("a JSON list", b"[1, 2, 3]", "", "bustware build"),
    ("package.json", json.dumps({"name": "app", "version": "1.0.0"}).encode(), "",
     "bustware build"),
    ("a Vite manifest", json.dumps({"src/main.js": {"file": "assets/main-4f3a.js"}}).encode(),
     "", "bustware build"),
    ("future schema", json.dumps({"schema": "bustware-manifest", "schema_version": 999,
                                  "files": {}}).encode(), "999", "bustware build"),
    ("files not a mapping", json.dumps({"schema": "bustware-manifest", "schema_version": 1,
                                        "files": [1]}).encode(), "", "bustware build"),
]


@needs_manifest
@pytest.mark.parametrize(("content", "value", "advice"), [m[1:] for m in MANIFESTS],
                         ids=[m[0] for m in MANIFESTS])
def test_bad_manifest(root, tmp_path, content, value, advice):
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ManifestError) as info:
        Assets(root, manifest=path)
    message = str(info.value)
    assert message.startswith("bustware: ")
    assert repr(str(path)) in message or str(path) in message, message
    assert value in message and advice in message, message


@needs_manifest
def test_manifest_is_a_directory(root, tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ManifestError) as info:
        Assets(root, manifest=tmp_path / "m")
    assert str(tmp_path / "m") in str(info.value)


@needs_manifest
def test_manifest_with_autorefresh(root, tmp_path):
    with pytest.raises(ValueError, match="manifest= and autorefresh=True conflict"):
        Assets(root, manifest=tmp_path / "m.json", autorefresh=True)


@needs_manifest
def test_bad_manifest_cli(root, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_bytes(b"{not json")
    out = cli("verify", str(root), "--manifest", str(path))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert str(path) in out.stderr and "bustware build" in out.stderr, out.stderr
