"""Serving from the store every replica shares (``store="s3://..."``),
against a real S3 server (moto's, over HTTP): a replica answers the URLs of
another release with that release's own bytes, fetched by digest; and the
store stopped, hanging, empty, missing an object or holding bad bytes costs
the replica's own release nothing and never gets an unvouched byte served.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import free_port, via_asgi, via_werkzeug
from s3server import admin_client, aws_env, moto_server, new_bucket, silent_server, use_env

from bustware import Assets, Bustware, BustwareASGI
from bustware import build as b
from bustware.localstore import LocalStore
from bustware.store import StoreError

V1 = b"body { color: red; }\n" * 40
V2 = b"body { color: green; }\n" * 40
V3 = b"body { color: blue; }\n" * 40
JS = b"console.log('same in every release');\n"
IMMUTABLE = "max-age=31536000, immutable"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint, monkeypatch) -> str:
    use_env(monkeypatch, aws_env(s3_endpoint))
    return new_bucket(admin_client(s3_endpoint))


def publish(out_dir, url: str) -> None:
    """Put a local build's objects and manifest into the bucket, objects
    first, as ``bustware build --store`` leaves it."""
    from bustware.s3store import S3Store

    local = LocalStore(out_dir / "manifest.json")
    remote = S3Store(url)
    for digest in local.list_objects():
        remote.put_object(digest, local.get_object(digest), local.object_size(digest))
    now = remote.read_manifest()
    remote.write_manifest(local.read_manifest().data, None if now is None else now.tag)


class Releases:
    """Releases built one after the other into one store (kept
    generations), each replica a copy of the tree and manifest of its own
    release only (as a container image carries), sharing no directory."""

    def __init__(self, tmp_path, url: str | None) -> None:
        self.site = tmp_path / "site"
        (self.site / "css").mkdir(parents=True)
        (self.site / "js").mkdir()
        (self.site / "js/app.js").write_bytes(JS)
        self.tmp = tmp_path
        self.url = url
        self.replicas: dict[str, object] = {}

    def release(self, name: str, css: bytes, *, publish_it: bool = True):
        (self.site / "css/app.css").write_bytes(css)
        b.build(self.site, keep=3)
        if publish_it and self.url is not None:
            publish(self.site / ".bustware", self.url)
        replica = self.tmp / f"replica-{name}"
        shutil.copytree(self.site, replica)
        # The image carries its own release's objects, not the kept ones.
        manifest = LocalStore(replica / ".bustware/manifest.json")
        for old in (V1, V2, V3):
            if old != css:
                path = manifest.object_path(sha(old))
                if shutil.os.path.exists(path):
                    shutil.os.remove(path)
        return replica

    def app(self, replica, **options):
        return Bustware(None, replica, manifest=replica / ".bustware/manifest.json",
                        **options)


@pytest.fixture
def releases(tmp_path, bucket):
    return Releases(tmp_path, f"s3://{bucket}/site/static")


def css_url(app) -> str:
    return app.url("css/app.css")


@pytest.mark.parametrize("via", [via_werkzeug, via_asgi], ids=["wsgi", "asgi"])
def test_an_old_replica_serves_a_newer_releases_url_from_the_store(releases, via):
    r1 = releases.release("v1", V1)
    old = releases.app(r1, store=releases.url)
    r2 = releases.release("v2", V2)
    new_url = css_url(releases.app(r2))
    assert new_url != css_url(old)
    got = via(old, new_url)
    assert (got.status, got.body) == (200, V2)
    assert got.header("Cache-Control") == IMMUTABLE
    assert got.header("ETag") == f'"{sha(V2)[:24]}"'
    assert got.header("Content-Type") == "text/css; charset=utf-8"
    assert got.header("Content-Length") == str(len(V2))
    # Kept in memory: served again with the object gone from the store.
    admin_client_for(releases).delete_object(Bucket=releases.url.split("/")[2],
                                             Key=f"site/static/objects/{sha(V2)[:2]}/{sha(V2)}")
    again = via(old, new_url)
    assert (again.status, again.body) == (200, V2)
    revalidated = via(old, new_url, headers={"If-None-Match": f'"{sha(V2)[:24]}"'})
    assert revalidated.status == 304
    # Its own release still from disk, immutable.
    own = via(old, css_url(old))
    assert (own.status, own.body, own.header("Cache-Control")) == (200, V1, IMMUTABLE)


def admin_client_for(releases):
    import os

    return admin_client(os.environ["AWS_ENDPOINT_URL"])


def test_a_new_replica_serves_a_kept_old_url_whose_object_only_the_store_has(releases):
    r1 = releases.release("v1", V1)
    old_url = css_url(releases.app(r1))
    r2 = releases.release("v2", V2)
    assert not LocalStore(r2 / ".bustware/manifest.json").has_object(sha(V1))
    # Without a store: today's policy, as the object is not on this disk.
    plain = releases.app(r2, outdated="404")
    assert via_werkzeug(plain, old_url).status == 404
    # With it: the old bytes, even with the store's manifest never read.
    app = releases.app(r2, store=releases.url, outdated="404", discover_interval=None)
    got = via_werkzeug(app, old_url)
    assert (got.status, got.body, got.header("Cache-Control")) == (200, V1, IMMUTABLE)


def test_query_style_and_asgi_fetch_too(tmp_path, bucket):
    url = f"s3://{bucket}/q"
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "css/app.css").write_bytes(V1)
    b.build(site, keep=2, style="query")
    replica = tmp_path / "r1"
    shutil.copytree(site, replica)
    (site / "css/app.css").write_bytes(V2)
    b.build(site, style="query")
    publish(site / ".bustware", url)
    new = Bustware(None, site, manifest=site / ".bustware/manifest.json", style="query")
    path, _, query = css_url(new).partition("?")
    old = BustwareASGI(None, replica, manifest=replica / ".bustware/manifest.json",
                       style="query", store=url)
    got = via_asgi(old, path, query=query)
    assert (got.status, got.body, got.header("Cache-Control")) == (200, V2, IMMUTABLE)


def test_unknown_versions_get_the_policy(releases, caplog):
    r1 = releases.release("v1", V1)
    app = releases.app(r1, store=releases.url, discover_interval=0)
    never = app.url("css/app.css").replace(sha(V1)[:8], "0badc0de")
    assert never != app.url("css/app.css")
    got = via_werkzeug(app, never)  # outdated="serve": the current bytes, not stored
    assert (got.status, got.body, got.header("Cache-Control")) == (200, V1, "no-store")
    assert via_werkzeug(app, "/static/css/nothing.0badc0de.css").status == 404


def test_the_store_holding_other_bytes_for_a_digest_gets_the_policy(releases):
    r1 = releases.release("v1", V1)
    app = releases.app(r1, store=releases.url, outdated="404")
    r2 = releases.release("v2", V2)
    new_url = css_url(releases.app(r2))
    bucket = releases.url.split("/")[2]
    key = f"site/static/objects/{sha(V2)[:2]}/{sha(V2)}"
    admin_client_for(releases).put_object(Bucket=bucket, Key=key, Body=V3[:len(V2)])
    got = via_werkzeug(app, new_url)
    assert got.status == 404 and V3[:20] not in got.body
    assert got.header("Cache-Control") == "no-store"


def test_an_object_missing_from_the_store_gets_the_policy(releases, caplog):
    from bustware.s3store import S3Store

    r1 = releases.release("v1", V1)
    store = CountingStore(S3Store(releases.url))
    app = releases.app(r1, store=store, discover_interval=30)
    r2 = releases.release("v2", V2)
    new_url = css_url(releases.app(r2))
    admin_client_for(releases).delete_object(
        Bucket=releases.url.split("/")[2], Key=f"site/static/objects/{sha(V2)[:2]}/{sha(V2)}")
    with caplog.at_level(logging.WARNING, "bustware"):
        for _ in range(5):
            got = via_werkzeug(app, new_url)
            assert (got.status, got.body, got.header("Cache-Control")) == (200, V1, "no-store")
    assert sum("has no object" in r.message for r in caplog.records) == 1
    assert store.gets == 1  # not asked again within the interval


def test_no_manifest_in_the_store_gets_the_policy(tmp_path, bucket, caplog):
    releases = Releases(tmp_path, f"s3://{bucket}/empty")
    r1 = releases.release("v1", V1, publish_it=False)
    app = releases.app(r1, store=releases.url, outdated="404")
    with caplog.at_level(logging.WARNING, "bustware"):
        got = via_werkzeug(app, "/static/css/app.0badc0de.css")
    assert got.status == 404
    assert "no manifest at s3://" in caplog.text


def test_a_store_of_another_configuration_is_not_served(tmp_path, bucket, caplog):
    url = f"s3://{bucket}/other"
    other = tmp_path / "other"
    (other / "css").mkdir(parents=True)
    (other / "css/app.css").write_bytes(V2)
    b.build(other, style="query")
    publish(other / ".bustware", url)
    releases = Releases(tmp_path, url)
    r1 = releases.release("v1", V1, publish_it=False)
    app = releases.app(r1, store=url, outdated="404")
    with caplog.at_level(logging.WARNING, "bustware"):
        assert via_werkzeug(app, f"/static/css/app.{sha(V2)[:8]}.css").status == 404
    assert "was built with style='query'" in caplog.text


# -- the store down -----------------------------------------------------------


def requests_timed(app, urls):
    out = []
    for url in urls:
        start = time.monotonic()
        got = via_werkzeug(app, url)
        out.append((got, time.monotonic() - start))
    return out


def test_a_stopped_store_costs_the_replicas_own_release_nothing(tmp_path, monkeypatch,
                                                                caplog):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    use_env(monkeypatch, aws_env(closed))
    releases = Releases(tmp_path, None)
    r1 = releases.release("v1", V1)
    start = time.monotonic()
    app = releases.app(r1, store="s3://gone-bucket/site", manifest_check="off",
                       discover_interval=30)
    own = via_werkzeug(app, css_url(app))
    assert time.monotonic() - start < 2
    assert (own.status, own.body, own.header("Cache-Control")) == (200, V1, IMMUTABLE)
    with caplog.at_level(logging.WARNING, "bustware"):
        timed = requests_timed(app, ["/static/css/app.0badc0de.css"] * 10
                               + ["/static/css/new.0badc0de.css"] * 10)
    for got, took in timed:
        assert got.status in (200, 404) and took < 3
        assert got.header("Cache-Control") == "no-store"
        assert got.body in (V1, b"404 Not Found\n")
    assert sum("did not answer" in r.message for r in caplog.records) == 1


def test_a_hanging_store_blocks_no_request_for_a_known_url(tmp_path, monkeypatch, caplog):
    with silent_server() as silent:
        use_env(monkeypatch, aws_env(f"http://127.0.0.1:{silent.port}"))
        releases = Releases(tmp_path, None)
        r1 = releases.release("v1", V1)
        app = releases.app(r1, store="s3://hung-bucket/site", store_timeout=0.5,
                           discover_interval=30, outdated="404")
        results = {}

        def unknown():
            start = time.monotonic()
            results["unknown"] = (via_werkzeug(app, "/static/css/app.0badc0de.css"),
                                  time.monotonic() - start)

        thread = threading.Thread(target=unknown)
        with caplog.at_level(logging.WARNING, "bustware"):
            thread.start()
            deadline = time.monotonic() + 10
            while not silent.accepted and time.monotonic() < deadline:
                time.sleep(0.01)
            assert silent.accepted, "the look-up never reached the store"
            known = requests_timed(app, [css_url(app), "/static/js/app.js"] * 5)
            thread.join(10)
        for got, took in known:
            assert got.status == 200 and took < 0.25
        got, took = results["unknown"]
        assert got.status == 404 and got.header("Cache-Control") == "no-store"
        assert took < 2.5
        # Within the interval: the policy at once, nothing asked, nothing logged again.
        later = requests_timed(app, ["/static/css/app.1badc0de.css"] * 5)
        assert all(g.status == 404 and t < 0.25 for g, t in later)
        assert sum("did not answer" in r.message for r in caplog.records) == 1


class SlowStore:
    """A store whose manifest read takes ``delay`` seconds and is counted."""

    def __init__(self, inner, delay: float) -> None:
        self.inner = inner
        self.url = inner.url
        self.delay = delay
        self.reads = 0

    def read_manifest(self):
        self.reads += 1
        time.sleep(self.delay)
        return self.inner.read_manifest()

    def __getattr__(self, name):
        return getattr(self.inner, name)


class CountingStore(SlowStore):
    def __init__(self, inner) -> None:
        super().__init__(inner, 0)
        self.gets = 0

    def get_object(self, digest):
        self.gets += 1
        return self.inner.get_object(digest)


def test_requests_needing_the_look_up_wait_for_the_one_in_flight(releases):
    from bustware.s3store import S3Store

    r1 = releases.release("v1", V1)
    r2 = releases.release("v2", V2)
    new_url = css_url(releases.app(r2))
    slow = SlowStore(S3Store(releases.url), 0.6)
    slow.inner.read_manifest()  # the client made: what is timed is the look-up
    app = releases.app(r1, store=slow, discover_interval=30)
    got = []

    def ask():
        got.append(via_werkzeug(app, new_url))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    [(known, took)] = requests_timed(app, [css_url(app)])
    for t in threads:
        t.join(10)
    assert known.body == V1 and took < 0.25  # not behind the look-up
    assert [(g.status, g.body) for g in got] == [(200, V2)] * 4
    assert slow.reads == 1


# -- the option ---------------------------------------------------------------


def test_store_option_is_checked_without_the_network(tmp_path):
    releases = Releases(tmp_path, None)
    r1 = releases.release("v1", V1, publish_it=False)
    with pytest.raises(StoreError, match="write s3://my-bucket/site"):
        releases.app(r1, store="s3://My-Bucket/site")
    with pytest.raises(ValueError, match="s3://BUCKET/PREFIX"):
        releases.app(r1, store=str(tmp_path))
    with pytest.raises(ValueError, match="needs manifest="):
        Bustware(None, r1, store="s3://my-bucket/site")
    with pytest.raises(ValueError, match="store_timeout=0"):
        releases.app(r1, store="s3://my-bucket/site", store_timeout=0)
    with pytest.raises(ValueError, match="store_cache=-1"):
        Assets(r1, manifest=r1 / ".bustware/manifest.json", store="s3://my-bucket/site",
               store_cache=-1)
    with pytest.raises(TypeError, match="did you mean 'store'"):
        releases.app(r1, stor="s3://my-bucket/site")


def test_the_cache_is_bounded_by_bytes():
    from bustware.objectcache import ByteLRU

    cache = ByteLRU(100)
    cache.put("a", 1, 40)
    cache.put("b", 2, 40)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3, 40)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert cache.used == 80
    assert not cache.put("huge", 4, 101) and cache.get("huge") is None


def test_a_fetched_object_larger_than_the_cache_is_served_not_kept(releases):
    r1 = releases.release("v1", V1)
    app = releases.app(r1, store=releases.url, store_cache=10)
    r2 = releases.release("v2", V2)
    new_url = css_url(releases.app(r2))
    assert via_werkzeug(app, new_url).body == V2
    admin_client_for(releases).delete_object(
        Bucket=releases.url.split("/")[2], Key=f"site/static/objects/{sha(V2)[:2]}/{sha(V2)}")
    got = via_werkzeug(app, new_url)
    assert (got.status, got.header("Cache-Control")) == (200, "no-store")


# -- the integrations pass it through -------------------------------------------


def test_flask_config_passes_the_store_to_the_apps_folder(tmp_path, bucket):
    flask = pytest.importorskip("flask")
    from bustware.flask import Bustware as FlaskBustware

    url = f"s3://{bucket}/flask"
    releases = Releases(tmp_path, url)
    r1 = releases.release("v1", V1)
    new_url = css_url(releases.app(releases.release("v2", V2)))
    app = flask.Flask("store_test", root_path=str(r1), static_folder=str(r1),
                      static_url_path="/static")
    app.config.update(BUSTWARE_MANIFEST=str(r1 / ".bustware/manifest.json"),
                      BUSTWARE_STORE=url)
    FlaskBustware(app)
    got = app.test_client().get(new_url)
    assert (got.status_code, got.data, got.headers["Cache-Control"]) == (200, V2, IMMUTABLE)


def test_pyramid_and_django_take_the_store_options():
    pytest.importorskip("pyramid")
    from bustware import django as dj
    from bustware import pyramid as pr

    for name in ("store", "store_timeout", "store_cache"):
        assert name in pr.OPTIONS and name in dj.OPTIONS


def test_a_replica_with_a_store_starts_without_importing_the_client(tmp_path):
    import subprocess
    import sys

    releases = Releases(tmp_path, None)
    r1 = releases.release("v1", V1, publish_it=False)
    code = ("import sys; from bustware import Bustware; "
            "app = Bustware(None, sys.argv[1], manifest=sys.argv[2], store='s3://my-bucket/p');"
            "app({'REQUEST_METHOD': 'GET', 'PATH_INFO': app.url('css/app.css'), "
            "'QUERY_STRING': ''}, lambda s, h, e=None: None);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code, str(r1),
                          str(r1 / ".bustware/manifest.json")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
