"""Delta updates in a real browser (issue 24): headless Chromium loads a
page with release 1 of a JavaScript module, the server moves to release 2
(built with --keep 1), the same visitor loads the page again: the request
for the changed module names release 1's bytes in Available-Dictionary and
gets them as ``dcz``, and the page runs release 2's code.

No flag is needed: Chromium (130 and later) offers ``dcz`` to a potentially
trustworthy origin (HTTPS, or 127.0.0.1 as here)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from browser import Profile, RecordingServer, require_chromium

import bustware.build as b
from bustware import Bustware

pytest.importorskip("zstandard")

# In the default run (CI too): what users depend on. The proof of the test
# itself (a server without dictionaries) stays under -m slow.
pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

BODY = "".join(f"export function f{i}(x) {{ return x * {i}; }}\n" for i in range(300))


def module(release: int) -> bytes:
    return (BODY + f"export const release = {release};\n").encode()


class Site:
    """A page importing the module, and bustware serving the release built last."""

    def __init__(self, root, **options) -> None:
        self.root = root
        self.options = options
        self.static: Bustware | None = None

    def release(self, n: int) -> None:
        (self.root / "js").mkdir(parents=True, exist_ok=True)
        (self.root / "js/app.js").write_bytes(module(n))
        b.build(self.root, keep=1)
        self.static = Bustware(None, self.root, manifest=self.root / ".bustware/manifest.json",
                               **self.options)

    def __call__(self, environ, start_response):
        assert self.static is not None
        if environ["PATH_INFO"] != "/":
            return self.static(environ, start_response)
        url = self.static.url("js/app.js")
        page = ("<!doctype html><p id=out>not run</p><script type=module>"
                f'import {{ release }} from "{url}";'
                'document.getElementById("out").textContent = "release " + release;'
                "</script>").encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Cache-Control", "no-cache")])
        return [page]


def returning_visitor(tmp_path, **options) -> list[str]:
    """Release 1, then 2, to one profile; the problems seen (none: it works)."""
    chromium = require_chromium()
    site = Site(tmp_path / "static", **options)
    profile = Profile(tmp_path / "profile", chromium)
    problems = []
    with RecordingServer(site) as server:
        site.release(1)
        dom = profile.load(server.base + "/")
        assert "release 1" in dom, dom
        first = [r for r in server.take() if r.path.startswith("/static/js/app.")]
        assert len(first) == 1 and first[0].status == 200
        if "use-as-dictionary" not in first[0].headers:
            problems.append("release 1's module came without Use-As-Dictionary")
        site.release(2)
        dom = profile.load(server.base + "/")
        if "release 2" not in dom:
            problems.append(f"the page shows {dom!r}, not release 2")
        second = [r for r in server.take() if r.path.startswith("/static/js/app.")]
        assert len(second) == 1, second
        asked = second[0].asked.get("available-dictionary")
        wanted = ":" + base64.b64encode(hashlib.sha256(module(1)).digest()).decode() + ":"
        if asked != wanted:
            problems.append(f"the browser named {asked!r}, not release 1's hash {wanted}")
        if second[0].headers.get("content-encoding") != "dcz":
            problems.append(f"release 2 came as {second[0].headers.get('content-encoding')!r}")
    return problems


def test_a_returning_visitor_downloads_the_new_release_as_a_delta(tmp_path):
    assert returning_visitor(tmp_path) == []


@pytest.mark.slow
def test_the_test_sees_a_server_without_dictionaries(tmp_path):
    """The test, proven: with dictionaries=False it sees that no delta came."""
    problems = returning_visitor(tmp_path, dictionaries=False)
    assert any("without Use-As-Dictionary" in p for p in problems), problems
    assert any("came as 'br'" in p for p in problems), problems
