"""The ``bustware`` command line: ``serve``, ``url`` and ``demo``."""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Sequence

from .assets import AssetNotFound, Assets
from .middleware import Bustware
from .styles import STYLES

__all__ = ["main"]


def _index_app(bust: Bustware):
    """A page listing every file with its versioned URL, for ``serve``."""

    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") != "/":
            body = b"Not Found\n"
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        rows = "".join(
            f'<li><a href="{html.escape(a.url)}">{html.escape(a.path)}</a></li>\n'
            for a in sorted(bust.assets, key=lambda a: a.path)
        )
        body = (f"<!doctype html><meta charset=utf-8><title>bustware serve</title>"
                f"<h1>{len(bust.assets)} files</h1><ul>\n{rows}</ul>\n").encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-cache")])
        return [body]

    return app


def _add_index_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="/static/", help="URL prefix (default /static/)")
    parser.add_argument("--style", default="filename", choices=sorted(STYLES),
                        help="where the version goes (default filename)")


def _run(app, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    print(f"bustware: serving on http://{host}:{port}/ (Ctrl+C to stop)", flush=True)
    run_simple(host, port, app, threaded=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bustware", description="Versioned static URLs and a WSGI server for them.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve a directory on 127.0.0.1 for a quick look")
    serve.add_argument("root", metavar="DIR")
    serve.add_argument("--port", type=int, default=8000)
    _add_index_options(serve)

    url = sub.add_parser("url", help="print the versioned URL of a file")
    url.add_argument("root", metavar="DIR")
    url.add_argument("path", metavar="PATH", help="path relative to DIR, e.g. css/app.css")
    _add_index_options(url)

    demo = sub.add_parser("demo", help="run the bundled demo site on 127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)

    args = parser.parse_args(argv)
    try:
        if args.command == "url":
            assets = Assets(args.root, args.prefix, style=args.style)
            print(assets.url(args.path))
        elif args.command == "serve":
            bust = Bustware(None, args.root, args.prefix, style=args.style)
            bust.app = _index_app(bust)
            _run(bust, "127.0.0.1", args.port)
        elif args.command == "demo":
            from .demo.app import make_app

            _run(make_app(), "127.0.0.1", args.port)
    except (ValueError, TypeError, AssetNotFound) as exc:
        print(exc, file=sys.stderr)  # the message already starts with "bustware:"
        return 2
    return 0
