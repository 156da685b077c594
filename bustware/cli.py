"""The ``bustware`` command line: ``serve``, ``url``, ``demo``, and the build
step: ``build``, ``verify``, ``prune``."""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Sequence

from .about import __version__
from .advice import with_roots
from .assets import AssetNotFound, Assets
from .middleware import Bustware, not_found
from .styles import STYLES

__all__ = ["main"]


def _index_app(bust: Bustware):
    """A page listing every file with its versioned URL, for ``serve``."""

    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") != "/":
            return not_found(environ, start_response)
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
    import socket

    from werkzeug.serving import make_server

    # Bind here, before saying where we serve: a port in use is then an error
    # naming --port, where werkzeug would print its own and exit. The bound
    # socket is handed to werkzeug, so no other program can take the port
    # in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        server = make_server(host, port, app, threaded=True, fd=sock.fileno())
    except OSError as exc:
        raise OSError(
            f"bustware: cannot listen on {host}:{port} ({exc.strerror or exc}); another "
            f"program may be using that port: choose another with --port, e.g. "
            f"--port {port + 1 if port < 65535 else 8080}"
        ) from None
    finally:
        sock.close()  # werkzeug holds its own copy of the socket
    # With --port 0 the system chose the port: say which.
    print(f"bustware: serving on http://{host}:{server.port}/ (Ctrl+C to stop)\n"
          "bustware: this quick-look server (werkzeug's development server) is not for "
          "production; bustware's middleware is: run your app under gunicorn or another "
          "WSGI server (see the README).", flush=True)
    server.serve_forever()  # returns on Ctrl+C, the socket closed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bustware", description="Versioned static URLs and a WSGI server for them.")
    parser.add_argument("--version", action="version", version=f"bustware {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve a directory on 127.0.0.1 for a quick look")
    serve.add_argument("root", metavar="DIR")
    serve.add_argument("--port", type=_port, default=8000)
    _add_index_options(serve)

    url = sub.add_parser("url", help="print the versioned URL of a file")
    url.add_argument("root", metavar="DIR")
    url.add_argument("path", metavar="PATH", help="path relative to DIR, e.g. css/app.css")
    _add_index_options(url)

    demo = sub.add_parser("demo", help="run the bundled demo site on 127.0.0.1")
    demo.add_argument("--port", type=_port, default=8000)
    demo.add_argument("--dir", metavar="DIR",
                      help="serve the demo's files from DIR, copying them there first "
                           "(files already in DIR are kept), so that you can edit them")
    demo.add_argument("--autorefresh", action="store_true",
                      help="development mode: an edited file gets a new URL on the next "
                           "page load, without a restart")

    _add_build_commands(sub)

    args = parser.parse_args(argv)
    if args.command in ("build", "verify", "prune"):
        return _build_command(args)
    try:
        if args.command == "url":
            assets = Assets(args.root, args.prefix, style=args.style)
            assets.option_advice = lambda name, value: None  # no such option here
            print(assets.url(args.path))
        elif args.command == "serve":
            bust = Bustware(None, args.root, args.prefix, style=args.style)
            bust.app = _index_app(bust)
            _run(bust, "127.0.0.1", args.port)
        elif args.command == "demo":
            from .demo.app import STATIC, copy_files, make_app

            root = STATIC
            if args.dir is not None:
                root = copy_files(args.dir)
            if args.autorefresh:
                print(f"bustware: development mode: edit the files under {root} and reload "
                      "the page", flush=True)
                if args.dir is None:
                    print("bustware: (these are bustware's own files; `bustware demo --dir "
                          "mydemo --autorefresh` serves a copy to edit)", flush=True)
            # A scan per request costs nothing for the demo's few files, and
            # an edit then shows on the very next reload.
            options = {"autorefresh": True, "refresh_interval": 0} if args.autorefresh else {}
            _run(make_app(root, **options), "127.0.0.1", args.port)
    except (ValueError, TypeError, AssetNotFound) as exc:
        print(exc, file=sys.stderr)  # the message already starts with "bustware:"
        return 2
    except OSError as exc:  # an unreadable file, a port in use
        message = str(exc)
        print(message if message.startswith("bustware:") else f"bustware: {message}",
              file=sys.stderr)
        return 2
    return 0


# -- build, verify, prune ----------------------------------------------------


def _add_build_commands(sub) -> None:
    build = sub.add_parser(
        "build", help="index a directory once into a manifest, for a fast production start")
    build.add_argument("roots", nargs="+", metavar="ROOT")
    build.add_argument("--out", metavar="MANIFEST",
                       help="where to write it (default ROOT/.bustware/manifest.json)")
    build.add_argument("--compress", metavar="CODINGS", default="",
                       help="precompressed variants to make: some of br,gzip,zstd")
    build.add_argument("--keep", type=_count, metavar="N",
                       help="keep the versions and bytes of the N previous builds, for "
                            "rolling deploys (default: what the manifest keeps, else 0)")
    build.add_argument("--no-deltas", dest="deltas", action="store_false", default=None,
                       help="store no dcz deltas from the kept versions (made by default "
                            "with --keep N > 0 and the zstd extra)")
    build.add_argument("--jobs", type=_jobs, metavar="N",
                       help="threads that compress at once (default: one per CPU this "
                            "process may use)")
    build.add_argument("--quiet", action="store_true", help="print only errors")
    build.add_argument("--store", metavar="s3://BUCKET/PREFIX",
                       help="also put every object, the CDN-origin keys and the manifest in "
                            "this bucket (the generations follow its manifest); the endpoint "
                            "and credentials come from the AWS environment")
    _add_index_options(build)
    build.add_argument("--query-param", default="v", help="parameter of the query style")
    build.add_argument("--base-url", default=None,
                       help="CDN origin the URLs start with, e.g. https://cdn.example.com")
    build.add_argument("--bundler-manifest", action="append", metavar="PATH",
                       help="a Vite, webpack-manifest-plugin or Django manifest (may be "
                            "repeated); the index needs bundler_manifest= too")
    build.add_argument("--include-dotfiles", action="store_true",
                       help="index dot names (.well-known/); the index that serves the "
                            "manifest needs include_dotfiles=True too")

    verify = sub.add_parser(
        "verify", help="check that a manifest still matches its files (exit 1 if not)")
    verify.add_argument("roots", nargs="*", metavar="ROOT",
                        help="the tree to check (with --store, may be left out: the bucket "
                             "only)")
    verify.add_argument("--store", metavar="s3://BUCKET/PREFIX",
                        help="check that the bucket holds every object its manifest names, "
                             "and the CDN-origin keys of the current generation")
    verify.add_argument("--deep", action="store_true",
                        help="with --store: download every object and check its digest")
    verify.add_argument("--manifest", metavar="MANIFEST",
                        help="default ROOT/.bustware/manifest.json")
    verify.add_argument("--full", action="store_true",
                        help="also read every file and compare its digest")

    prune = sub.add_parser(
        "prune", help="drop earlier generations and the stored bytes only they use")
    prune.add_argument("root", metavar="ROOT", nargs="?",
                       help="the tree whose manifest to prune (left out with --store)")
    prune.add_argument("--store", metavar="s3://BUCKET/PREFIX",
                       help="prune the bucket's manifest, its objects and CDN-origin keys")
    prune.add_argument("--manifest", metavar="MANIFEST",
                       help="default ROOT/.bustware/manifest.json")
    prune.add_argument("--keep", type=_count, metavar="N",
                       help="keep the N newest earlier generations")
    prune.add_argument("--older-than", metavar="AGE",
                       help="drop generations built longer ago than AGE (90s, 30m, 12h, 7d, "
                            "2w); with --keep, only those beyond N and older than AGE")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TCP port (1 to 65535, or 0 for any free one)")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ...)")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of threads (1, 2, ...; leave --jobs out for one per CPU)")
    return value


def _build_command(args) -> int:
    from . import build as b
    from .compress import CodecUnavailable
    from .store import StoreError

    try:
        store = None
        if args.store is not None:
            from .storeurl import BUILD_TIMEOUTS, open_store

            store = open_store(args.store, **BUILD_TIMEOUTS)
        if args.command == "build":
            codings = [c.strip() for c in args.compress.split(",") if c.strip()]
            progress = None
            if b.wants_progress(sys.stderr, args.quiet):
                progress = b.Progress
            report = b.build(args.roots, args.out, prefix=args.prefix, style=args.style,
                             query_param=args.query_param, base_url=args.base_url,
                             compress=codings, keep=args.keep, workers=args.jobs,
                             include_dotfiles=args.include_dotfiles,
                             bundler_manifest=args.bundler_manifest, progress=progress,
                             store=store, deltas=args.deltas)
            for warning in report.warnings:
                # --quiet prints only errors: a file left out of the manifest.
                if not args.quiet or warning.startswith("cannot read"):
                    print(f"bustware: warning: {warning}", file=sys.stderr)
            if not args.quiet:
                print(report.summary())
            return 0
        if args.command == "verify":
            return _verify(args, store)
        if store is None and args.root is None:
            raise ValueError("bustware prune: give the ROOT whose manifest to prune, or "
                             "--store s3://BUCKET/PREFIX")
        older = b.parse_age(args.older_than) if args.older_than is not None else None
        print(b.prune(_manifest_name(args, store), keep=args.keep, older_than=older,
                      store=store).summary())
        return 0
    except (ValueError, TypeError, CodecUnavailable, StoreError) as exc:
        # The message already starts with "bustware:"
        roots = args.roots if args.command != "prune" else [args.root] if args.root else []
        print(with_roots(str(exc), roots) if roots else str(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bustware: {exc}", file=sys.stderr)
        return 2


def _manifest_name(args, store) -> str:
    from .manifest import default_path

    if args.manifest:
        return args.manifest
    if store is not None:
        return f"{store.url}/manifest.json"
    return default_path(args.root if args.command == "prune" else args.roots[0])


def _verify(args, store) -> int:
    from . import build as b
    from .manifest import build_command, default_path, read
    from .verify import verify_store

    if not args.roots and store is None:
        raise ValueError("bustware verify: give the ROOT(s) the manifest was built from, or "
                         "--store s3://BUCKET/PREFIX")
    if args.deep and store is None:
        raise ValueError("bustware verify: --deep checks the objects in a bucket: give "
                         "--store s3://BUCKET/PREFIX too (--full reads the files of a tree)")
    problems = []
    if store is not None:
        problems += verify_store(store, deep=args.deep)
        where = store.url
    if args.roots:
        manifest = args.manifest or default_path(args.roots[0])
        problems += b.verify(args.roots, manifest, full=args.full)
        where = manifest
    if problems:
        print(f"bustware: {where} does not match "
              f"({len(problems)} problem{'s' if len(problems) != 1 else ''}):")
        for problem in problems:
            print(f"  {problem}")
        if not args.roots:
            print(f"Build again into it (bustware build ROOT --store {store.url} ...): the "
                  "build sends what the bucket lacks")
            return 1
        command = build_command(read(manifest), manifest, args.roots)
        if any(p.broken_reference for p in problems):
            print("Fix each reference to a missing file (correct it, or add the file "
                  f"it names; a rebuild alone does not), then rebuild: {command}")
        else:
            print(f"Rebuild it: {command}")
        return 1
    if args.roots:
        print(f"bustware: {where} matches the files under {' '.join(args.roots)}")
    else:
        print(f"bustware: {where} holds everything its manifest names")
    return 0
