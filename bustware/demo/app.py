"""The demo site: one page whose CSS, JS and image use versioned URLs.

Run it with ``python -m bustware demo``; it is also what the tests fetch.
``bustware demo --dir mydemo --autorefresh`` serves a copy of the files in
development mode, to edit.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile

from ..middleware import Bustware, not_found

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bustware demo</title>
<link rel="stylesheet" href="{css}">
<script src="{js}" defer></script>
</head>
<body>
<header><img src="{logo}" alt="" width="48" height="48"><h1>bustware demo</h1></header>
<p id="status">Every asset on this page has a versioned URL:</p>
<ul>
<li><code>{css}</code></li>
<li><code>{js}</code></li>
<li><code>{logo}</code></li>
</ul>
<p>Each is served with <code>Cache-Control: max-age=31536000, immutable</code>.
Change a file and its URL changes with it: run
<code>bustware demo --dir mydemo --autorefresh</code>, edit
<code>mydemo/css/site.css</code> and reload this page.</p>
</body>
</html>
"""


def copy_files(directory: str) -> str:
    """Copy the demo's files into ``directory`` (made if needed) and return
    its absolute path. A file already there is kept as it is: it may be one
    the user edited."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"bustware: --dir {directory!r} is a file; name a directory "
                         "(new, or one the demo's files were copied to before)")
    for dirpath, _dirnames, filenames in os.walk(STATIC):
        rel = os.path.relpath(dirpath, STATIC)
        target_dir = os.path.normpath(os.path.join(directory, rel))
        os.makedirs(target_dir, exist_ok=True)
        for name in filenames:
            target = os.path.join(target_dir, name)
            if os.path.exists(target):
                continue
            # Copied beside, then renamed: a half-copied file is never served.
            fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".bustware-demo-")
            os.close(fd)
            shutil.copy(os.path.join(dirpath, name), tmp)  # bytes and mode
            os.replace(tmp, target)
    return directory


def make_app(root: str = STATIC, **options) -> Bustware:
    """The demo WSGI application: a page, wrapped by the middleware, serving
    the files under ``root`` (the bundled ones by default)."""

    def page(environ, start_response):
        if environ.get("PATH_INFO", "/") != "/":
            return not_found(environ, start_response)
        url = app.url
        body = PAGE.format(css=html.escape(url("css/site.css")),
                           js=html.escape(url("js/app.js")),
                           logo=html.escape(url("img/logo.svg"))).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-cache")])
        return [body]

    app = Bustware(page, root, **options)
    return app
