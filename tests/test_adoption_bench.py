"""The simulated browser of benchmarks/adoption.py counts what a browser
would fetch: the figures of the adoption table rest on it."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

from werkzeug.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import adoption

CSS = gzip.compress(b'a{background:url("../img/a.svg")} b{background:url(../img/a.svg)}', mtime=0)


def site(cache_control: str):
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/page"):
            body = b'<link href="/s/css/x.css"><script src="/s/js/y.js"></script>'
            start_response("200 OK", [("Content-Type", "text/html")])
            return [body]
        if environ.get("HTTP_IF_NONE_MATCH") == '"e"':
            start_response("304 Not Modified", [("ETag", '"e"')])
            return []
        headers = [("ETag", '"e"'), ("Cache-Control", cache_control)]
        if path.endswith(".css"):
            start_response("200 OK", [*headers, ("Content-Type", "text/css"),
                                      ("Content-Encoding", "gzip")])
            return [CSS]
        start_response("200 OK", [*headers, ("Content-Type", "text/plain")])
        return [b"12345"]

    return app


def test_immutable_files_are_fetched_once_and_urls_in_css_followed():
    browser = adoption.Browser(Client(site("max-age=31536000, immutable")))
    browser.view("/page/1/")
    assert browser.requests == 3  # x.css, y.js, and img/a.svg once
    assert browser.body_bytes == len(CSS) + 10
    assert set(browser.cache) == {"/s/css/x.css", "/s/js/y.js", "/s/img/a.svg"}
    browser.view("/page/2/")
    assert browser.requests == 3


def test_no_cache_files_are_revalidated_on_every_view():
    browser = adoption.Browser(Client(site("no-cache")))
    browser.view("/page/1/")
    first = browser.bytes
    browser.view("/page/2/")
    assert browser.requests == 6  # three 304s
    assert browser.body_bytes == len(CSS) + 10
    assert browser.bytes > first


def test_what_a_fresh_stylesheet_names_is_still_loaded():
    browser = adoption.Browser(Client(site("max-age=3600")))
    browser.view("/page/1/")
    browser.cache["/s/img/a.svg"]["cache-control"] = "no-cache"
    browser.view("/page/2/")
    assert browser.requests == 4  # a.svg revalidated though x.css was fresh
