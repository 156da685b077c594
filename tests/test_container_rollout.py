"""The README's "Containers and PaaS" recipe, followed literally in a
Kubernetes-style rolling update under load, with a bucket and no shared
disk: no page ever gets an asset of another release.

moto's S3 server is the bucket. Each release (v1, v2, v3) is built into it
by the recipe's CI commands (the CDN section's variant, with the CDN
address), from a fresh checkout; the checkout after the build is the image.
Each replica is its own copy of its image (no directory shared between
replicas), running the recipe's gunicorn command with the AWS variables the
Secret gives. haproxy (round robin, health checks) is the service, Varnish
is in front of it. The Deployment's strategy (maxSurge 1, maxUnavailable 0,
read from the README) rolls v1 -> v2 -> v3 -> a rollback to v2, which is a
redeploy of the v2 image and no build: one new replica started and in
rotation, then one old one taken out and stopped, and again.

Meanwhile threads load the page and every asset it names, and every
reference inside each stylesheet: through Varnish; straight at the
replicas, with the page and its assets from one replica or from two; and
with the page from a replica and its assets from the bucket's CDN-origin
keys, fetched as a CDN whose origin is the bucket fetches them
(``http://127.0.0.1:MOTOPORT/BUCKET/PREFIX/static/...``), the pages naming
the CDN through ``base_url=``.

Asserted zero: page loads with an asset of another release; 404 or 5xx for a
URL a page named (any miss at the CDN-origin keys); cacheable responses whose
bytes are not the ones their version names; URLs that returned two different
cacheable bodies; CDN-origin responses without the immutable header, their
type, or with a Content-Encoding.

Proven by deliberate faults (``-m slow``): v2 built without ``--store``; v2's
manifest in the bucket before its objects (the build's new objects and
CDN-origin keys deleted after it, before the rollout: the bucket as a build
that writes its manifest first leaves it until its uploads finish).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import time
from pathlib import Path

import pytest
import system_tools
from container_stack import (
    Endpoints,
    Recipe,
    checkout,
    expected_urls,
    placed,
    pod,
    readme_recipe,
    run_ci,
)
from rolling_load import CDN, FixedLane, Lane, Load, Target, examine, summary
from rolling_stack import (
    Replica,
    StackError,
    free_port,
    haproxy_server,
    haproxy_status,
    start_haproxy,
    start_varnish,
)
from s3server import admin_client, aws_env, moto_server

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

REPLICAS = 3
#: v1 is running before the load starts; then these images, in turn.
DEPLOYS = ("v2", "v3", "v2")
#: The whole test's own deadline (pytest-timeout is the backstop).
BUDGET = 200.0
#: Page loads the load makes, at least, after each step of the rollout.
LOADS_PER_STEP = 8
#: Seconds a new replica has to start and pass its readiness probe.
READY = 30.0
CODE = {"v1": "v1", "v2": "v2", "v3": "v3"}
PREFIX_STORE = re.compile(r"s3://([^/\s]+)/(\S+)")
FAULTS = ("no-store", "manifest-first")


class PodLane(Lane):
    """A load thread aimed at the service's endpoints as they are now: the
    n-th page from one replica, its assets from the same replica, from the
    next one, or (``cdn``) from the CDN-origin keys."""

    def __init__(self, name: str, endpoints: Endpoints, first: int,
                 cdn: Target | None = None) -> None:
        self.name = name
        self.endpoints = endpoints
        self.first = first
        self.cdn = cdn
        self.targets: dict[str, Target] = {}

    def _target(self, replica: Replica) -> Target:
        if replica.name not in self.targets:
            self.targets[replica.name] = Target(replica.name, replica.port)
        return self.targets[replica.name]

    def pick(self, n: int) -> tuple[Target, Target] | None:
        ready = self.endpoints.now()
        if not ready:
            return None
        page = ready[(self.first + n) % len(ready)]
        if self.cdn is not None:
            return self._target(page), self.cdn
        assets = page if n % 2 == 0 else ready[(self.first + n + 1) % len(ready)]
        return self._target(page), self._target(assets)

    def close(self) -> None:
        for t in self.targets.values():
            t.close()
        if self.cdn is not None:
            self.cdn.close()


class Rollout:
    """The bucket's releases, the images, the replicas and the service."""

    def __init__(self, tmp_path: Path, recipe: Recipe, endpoint: str, bucket: str,
                 stack: contextlib.ExitStack, fault: str | None) -> None:
        self.tmp = tmp_path
        self.recipe = recipe
        self.endpoint = endpoint
        self.bucket = bucket
        self.stack = stack
        self.fault = fault
        self.env = aws_env(endpoint)
        self.cdn_url = endpoint  # the CDN's address, as pages name it
        self.log: list[str] = []
        self.images: dict[str, Path] = {}
        self.expected: dict[str, dict[str, str]] = {}
        self.endpoints = Endpoints()
        self.slots = {f"s{i}": free_port() for i in range(REPLICAS + recipe.max_surge)}
        self.free = list(self.slots)
        self.slot_of: dict[str, str] = {}
        self.release_of: dict[str, str] = {}
        self.count = 0
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.load: Load | None = None
        self.report: list[str] = []

    def build(self, rev: str) -> None:
        """The CI job of ``rev``: a fresh checkout, the recipe's commands in
        it; the checkout after them is the image."""
        snippet = placed(self.recipe.cdn_snippet, self.bucket, self.cdn_url)
        image = checkout(self.tmp / "ci" / rev, rev, snippet)
        self.expected[rev] = expected_urls(image / "static", self.cdn_url)
        commands = placed(self.recipe.cdn_build, self.bucket, self.cdn_url)
        if self.fault == "no-store" and rev == "v2":
            store = PREFIX_STORE.search(commands)[0]
            commands = commands.replace(f" --store {store}", "", 1)
            assert "bustware build" in commands and store not in commands.split("\n")[0], commands
        before = self.keys() if self.fault == "manifest-first" else set()
        t0 = time.monotonic()
        run_ci(commands, image, self.env, self.log)
        self.report.append(f"build {rev}: {time.monotonic() - t0:.1f}s")
        if self.fault == "manifest-first" and rev == "v2":
            # The bucket as a build that wrote its manifest before its
            # objects leaves it: the manifest names what is not there.
            m = PREFIX_STORE.search(commands)
            added = sorted(self.keys() - before - {f"{m[2]}/manifest.json"})
            assert added, "the v2 build added no object"
            client = admin_client(self.endpoint)
            for key in added:
                client.delete_object(Bucket=self.bucket, Key=key)
            self.report.append(f"fault: deleted the {len(added)} keys the v2 build added")
        self.images[rev] = image

    def keys(self) -> set[str]:
        client = admin_client(self.endpoint)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def start_replica(self, rev: str, deadline: float) -> Replica:
        """A new replica of image ``rev`` in a free slot, started and ready:
        its readiness probe answers 200 and haproxy has it UP."""
        self.count += 1
        name = f"pod{self.count}-{rev}"
        slot = self.free.pop(0)
        root = self.tmp / "pods" / name
        root.mkdir(parents=True)
        replica = pod(name, self.images[rev], root, self.recipe.start, self.slots[slot],
                      self.env)
        self.stack.callback(replica.stop)
        self.slot_of[name] = slot
        self.release_of[name] = rev
        replica.start(timeout=READY)
        self.wait_ready(replica, rev, min(deadline, time.monotonic() + READY))
        haproxy_server(self.work, slot, True)
        while (status := haproxy_status(self.work).get(slot)) != "UP":
            if time.monotonic() > deadline:
                raise StackError(f"haproxy still has {name} ({slot}) {status}")
            time.sleep(0.05)
        self.endpoints.add(replica)
        return replica

    def wait_ready(self, replica: Replica, rev: str, deadline: float) -> None:
        """The readiness probe, and then the page naming ``rev``'s URLs."""
        want = set(self.expected[rev].values())
        while True:
            target = Target(replica.name, replica.port)
            try:
                probe, _ = target.get(self.recipe.readiness)
                page, body = target.get("/")
                if probe.status == 200 and page.status == 200:
                    got = set(re.findall(r'href="([^"]+)"', body.decode()))
                    if got != want:
                        raise StackError(f"{replica.name} renders {sorted(got)}, "
                                         f"not {rev}'s {sorted(want)}")
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                target.close()
            if time.monotonic() > deadline:
                raise StackError(f"{replica.name} not ready in time:\n"
                                 f"{replica.proc.output() if replica.proc else ''}")
            time.sleep(0.1)

    def stop_replica(self, replica: Replica) -> None:
        """Out of the endpoints and out of rotation first, then a graceful
        stop (SIGTERM), as Kubernetes terminates a pod."""
        self.endpoints.remove(replica)
        if self.load is not None:
            self.load.down.add(replica.name)
        slot = self.slot_of.pop(replica.name)
        haproxy_server(self.work, slot, False)
        replica.stop()
        self.free.append(slot)

    def rolling_update(self, rev: str, deadline: float) -> None:
        """The Deployment's strategy: at most ``maxSurge`` replicas above the
        count, none below it (``maxUnavailable`` 0)."""
        assert (self.recipe.max_surge, self.recipe.max_unavailable) == (1, 0), \
            "the test rolls by maxSurge 1, maxUnavailable 0: update it with the README"
        assert self.load is not None
        for old in self.endpoints.now():
            self.start_replica(rev, deadline)
            self.load.wait_loads(LOADS_PER_STEP, deadline)
            self.stop_replica(old)
            self.load.wait_loads(LOADS_PER_STEP, deadline)


def container_rollout(tmp_path: Path, fault: str | None = None):
    system_tools.require({"haproxy": "haproxy", "varnishd": "varnish"})
    recipe = readme_recipe()
    t0 = time.monotonic()
    deadline = t0 + BUDGET
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(moto_server(tmp_path / "moto.log"))
        store = PREFIX_STORE.search(recipe.store)
        bucket = f"bust-rollout-{free_port()}"
        admin = admin_client(endpoint)
        admin.create_bucket(Bucket=bucket)
        # The CDN section's bucket policy: the CDN (the load's "cdn"
        # target, which asks without credentials) may read the CDN-origin
        # keys and nothing else.
        admin.put_bucket_policy(Bucket=bucket, Policy=placed(recipe.cdn_policy, bucket, ""))
        roll = Rollout(tmp_path, recipe, endpoint, bucket, stack, fault)
        haproxy, lb_port = start_haproxy(roll.work, roll.slots)
        stack.callback(haproxy.stop)
        haproxy.wait_listening(lb_port, 20)
        for slot in roll.slots:  # empty slots are out of rotation
            haproxy_server(roll.work, slot, False)
        varnish, cache_port = start_varnish(roll.work, lb_port)
        stack.callback(varnish.stop)
        varnish.wait_listening(cache_port, 30)

        roll.build("v1")
        for _ in range(REPLICAS):
            roll.start_replica("v1", deadline)
        cdn_origin = f"/{bucket}/{store[2]}"
        lanes: list[Lane] = [FixedLane(cache, [cache]) for cache in
                             (Target("varnish", cache_port), Target("varnish", cache_port))]
        lanes += [PodLane(f"replicas-{i}", roll.endpoints, i) for i in range(2)]
        lanes.append(PodLane("cdn", roll.endpoints, 2,
                             cdn=Target(CDN, int(endpoint.rsplit(":", 1)[1]), cdn_origin)))
        load = Load(roll.expected, lanes)
        roll.load = load
        stack.callback(load.finish)
        started = time.monotonic()
        load.start()
        try:
            load.wait_loads(LOADS_PER_STEP, deadline)
            for rev in DEPLOYS:
                t1 = time.monotonic()
                if rev not in roll.images:  # a rollback redeploys an image
                    roll.build(rev)
                    # The expected URLs of a release are known once it is
                    # built; the load reads them when a page comes back.
                    load.release_of = {frozenset(urls.values()): r
                                       for r, urls in roll.expected.items()}
                roll.rolling_update(rev, deadline)
                roll.report.append(f"rollout {rev}: {time.monotonic() - t1:.1f}s")
            load.wait_loads(LOADS_PER_STEP, deadline)
        except StackError as exc:
            problems.append(str(exc))
        load.finish()
        figures = {"load seconds": round(time.monotonic() - started, 1)}
        (roll.work / "ci.log").write_text("\n".join(roll.log))
    figures["test seconds"] = round(time.monotonic() - t0, 1)
    findings = examine(load.loads, CODE)
    text = "\n".join([*roll.report, *problems, summary(findings, load, figures)])
    print(f"\ncontainer rollout, fault={fault}:\n{text}")
    assert not load.crashed, load.crashed
    return findings, load, problems, text


def test_container_rollout_with_a_bucket_and_a_cdn(tmp_path):
    findings, load, problems, text = container_rollout(tmp_path)
    assert not problems, text
    assert findings.page_loads["varnish"] >= LOADS_PER_STEP, text
    assert findings.page_loads["assets from the CDN-origin keys"] >= LOADS_PER_STEP, text
    assert all(n == 0 for n in findings.zero().values()), text
    assert not load.outside_restart, text


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_the_test_sees_a_faulty_container_rollout(tmp_path, fault):
    """The test itself, proven: each deliberate fault gives counts above
    zero where the recipe gives none."""
    findings, _, _, text = container_rollout(tmp_path, fault)
    seen = findings.zero()
    assert seen["page loads with an asset of another release"] > 0, text
    assert seen["404 or 5xx for a URL a page named"] > 0, text
