"""The bucket failing under running replicas of the README's "Containers and
PaaS" recipe: the store stopped in the middle of a rollout, and the store
hanging (a socket that accepts and never answers, put where the endpoint
was). Replicas keep serving their own release from their own copy of the
image, as fast as without a store; a URL they do not know gets the
``outdated=``/``missing=`` policy within a bounded time; never a 5xx, never a
cacheable response whose bytes are not the ones its version names.

Each release is built by the recipe's CI commands into moto's S3 server from
a fresh checkout; each replica runs the recipe's gunicorn command in its own
copy of the image (tests/container_stack.py).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import threading
import time
from pathlib import Path

import brotli
import pytest
from container_stack import (
    checkout,
    expected_urls,
    placed,
    pod,
    readme_recipe,
    run_ci,
    version_matches,
)
from rolling_load import cacheable
from rolling_stack import Replica, free_port
from s3server import admin_client, aws_env, moto_server, silent_server

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]

#: Generous bounds for a shared 2-core machine: a file of the replica's own
#: release, and a URL that needs the (failing) store.
OWN_BOUND = 1.0
UNKNOWN_BOUND = 15.0
READY = 30.0


def get(replica: Replica, path: str, accept_encoding: str = "gzip, br"):
    """(status, Cache-Control, decoded body, seconds) of one GET on a new
    connection."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=UNKNOWN_BOUND * 2)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": accept_encoding})
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    seconds = time.monotonic() - t0
    coding = r.getheader("Content-Encoding", "")
    if coding == "gzip":
        body = gzip.decompress(body)
    elif coding == "br":
        body = brotli.decompress(body)
    return r.status, r.getheader("Cache-Control", ""), body, seconds


def version_ok(url: str, status: int, cache_control: str, body: bytes) -> bool:
    return status != 200 or not cacheable(cache_control) or version_matches(url, body)


class Releases:
    """v1 and v2 built into a bucket by the recipe, and their images."""

    def __init__(self, tmp: Path, endpoint: str, log: list[str]) -> None:
        self.recipe = readme_recipe()
        self.bucket = f"bust-faults-{free_port()}"
        admin_client(endpoint).create_bucket(Bucket=self.bucket)
        self.tmp = tmp
        self.images: dict[str, Path] = {}
        self.urls: dict[str, dict[str, str]] = {}
        for rev in ("v1", "v2"):
            image = checkout(tmp / "ci" / rev, rev,
                             placed(self.recipe.snippet, self.bucket, "unused"))
            self.urls[rev] = expected_urls(image / "static", None)
            run_ci(placed(self.recipe.build, self.bucket, "unused"), image, aws_env(endpoint),
                   log)
            self.images[rev] = image

    def replica(self, stack: contextlib.ExitStack, name: str, rev: str,
                endpoint: str) -> tuple[Replica, float]:
        root = self.tmp / "pods" / name
        root.mkdir(parents=True)
        replica = pod(name, self.images[rev], root, self.recipe.start, free_port(),
                      aws_env(endpoint))
        stack.callback(replica.stop)
        t0 = time.monotonic()
        replica.start(timeout=READY)
        return replica, time.monotonic() - t0


def check_own(replica: Replica, urls: dict[str, str]) -> float:
    """Every file of the replica's own release: 200, immutable, its
    version's bytes, in every coding; the slowest answer."""
    slowest = 0.0
    for url in urls.values():
        for coding in ("identity", "gzip", "br"):
            status, cc, body, seconds = get(replica, url, coding)
            assert (status, "immutable" in cc) == (200, True), (replica.name, url, status, cc)
            assert version_ok(url, status, cc, body), (replica.name, url)
            slowest = max(slowest, seconds)
    return slowest


def check_unknown(replica: Replica, url: str) -> tuple[int, float]:
    """A URL the replica's release does not have, with the store failing:
    an answer in bounded time, no 5xx, no cacheable bytes but the version's."""
    status, cc, body, seconds = get(replica, url)
    assert status < 500, (replica.name, url, status)
    assert version_ok(url, status, cc, body), (replica.name, url, status, cc)
    assert seconds < UNKNOWN_BOUND, (replica.name, url, seconds)
    return status, seconds


def test_the_store_stopped_during_a_rollout(tmp_path):
    log: list[str] = []
    with contextlib.ExitStack() as stack:
        bucket_stack = stack.enter_context(contextlib.ExitStack())
        endpoint = bucket_stack.enter_context(moto_server(tmp_path / "moto.log"))
        rel = Releases(tmp_path, endpoint, log)
        old, _ = rel.replica(stack, "old-v1", "v1", endpoint)
        new, _ = rel.replica(stack, "new-v2", "v2", endpoint)
        # The store is used while it is up: the old replica answers a URL of
        # the new release with the new bytes, immutable (else this test
        # would prove nothing about the store).
        probe = rel.urls["v2"]["js/app.js"]
        status, cc, body, _ = get(old, probe)
        assert (status, "immutable" in cc) == (200, True), (status, cc)
        assert version_ok(probe, status, cc, body) and b"release v2" in body

        bucket_stack.close()  # the store stops
        stopped = time.monotonic()
        own = max(check_own(old, rel.urls["v1"]), check_own(new, rel.urls["v2"]))
        unknown = []
        for _ in range(5):
            for replica, own_rev, other in ((old, "v1", "v2"), (new, "v2", "v1")):
                for path, url in rel.urls[other].items():
                    if url != rel.urls[own_rev][path] and url != probe:
                        unknown.append(check_unknown(replica, url))
        # The rollout goes on while the store is down: a new replica starts
        # and serves its release; the old one is stopped.
        third, start = rel.replica(stack, "newer-v2", "v2", f"http://127.0.0.1:{free_port()}")
        own = max(own, check_own(third, rel.urls["v2"]))
        old.stop()
        store_lines = [line for line in (old.root / "gunicorn.log").read_text(
            errors="replace").splitlines() if endpoint.rsplit(":", 1)[1] in line]
        print(f"\nstore stopped: own files at most {own * 1000:.0f} ms; "
              f"{len(unknown)} unknown URLs: statuses {sorted({s for s, _ in unknown})}, "
              f"at most {max(t for _, t in unknown) * 1000:.0f} ms; a replica started "
              f"without its store in {start:.1f}s; {len(store_lines)} log lines naming the "
              f"store in {time.monotonic() - stopped:.1f}s")
        assert own < OWN_BOUND, own
        assert unknown
        # One line per interval, not one per request.
        assert len(store_lines) < len(unknown) / 2, store_lines[:5]


def test_the_store_hanging(tmp_path):
    log: list[str] = []
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(moto_server(tmp_path / "moto.log"))
        rel = Releases(tmp_path, endpoint, log)
        silent = stack.enter_context(silent_server())
        hung = f"http://127.0.0.1:{silent.port}"
        replica, start = rel.replica(stack, "hung-v1", "v1", hung)
        # Unknown URLs, each waiting on the hung store, while the replica's
        # own files are asked for.
        results: list[tuple[int, float]] = []
        errors: list[BaseException] = []

        def ask(url: str) -> None:
            try:
                results.append(check_unknown(replica, url))
            except BaseException as exc:
                errors.append(exc)

        unknown = [u for p, u in rel.urls["v2"].items() if u != rel.urls["v1"][p]]
        threads = [threading.Thread(target=ask, args=(u,)) for u in unknown[:3]]
        for t in threads:
            t.start()
        own = 0.0
        while any(t.is_alive() for t in threads):
            own = max(own, check_own(replica, rel.urls["v1"]))
        for t in threads:
            t.join()
        assert not errors, errors
        again = [check_unknown(replica, u) for u in unknown]
        print(f"\nstore hanging: started in {start:.1f}s; own files at most "
              f"{own * 1000:.0f} ms while unknown URLs waited; unknown URLs "
              f"{sorted({s for s, _ in results + again})} in at most "
              f"{max(t for _, t in results) * 1000:.0f} ms (then at most "
              f"{max(t for _, t in again) * 1000:.0f} ms); the hung store accepted "
              f"{silent.accepted} connections")
        assert silent.accepted > 0, "the replica never asked the store: the test proves nothing"
        assert own < OWN_BOUND, own
        assert start < READY
