"""The demo site: one page whose CSS, JS and image use versioned URLs.

Run it with ``python -m bustware demo``; it is also what the tests fetch.
"""

from __future__ import annotations

import html
import os

from ..middleware import Bustware, _not_found

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
Change a file and its URL changes with it.</p>
</body>
</html>
"""


def make_app(**options) -> Bustware:
    """The demo WSGI application: a page, wrapped by the middleware."""

    def page(environ, start_response):
        if environ.get("PATH_INFO", "/") != "/":
            return _not_found(environ, start_response)
        url = app.url
        body = PAGE.format(css=html.escape(url("css/site.css")),
                           js=html.escape(url("js/app.js")),
                           logo=html.escape(url("img/logo.svg"))).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-cache")])
        return [body]

    app = Bustware(page, STATIC, **options)
    return app
