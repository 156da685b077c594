"""The README's rolling deploy recipe, followed literally on three hosts
behind haproxy and Varnish, under load: no page ever gets an asset of
another release.

Three "hosts" on 127.0.0.1, each a directory laid out as the recipe says
(releases/, current, shared/) running the recipe's gunicorn command with
``bustware.gunicorn_conf``; haproxy round robin with health checks over them;
Varnish with its default VCL in front of haproxy. Releases v1, v2, v3 and a
rollback to v2 are deployed with the shell commands of the README section
"Rolling deploys", taken from README.md and run as they are (``/srv/app``
replaced by the host's directory), in the recipe's order, one host at a time
where it says so. Meanwhile threads load the page and every asset it names,
every reference inside each stylesheet and every import inside each module
(the page has a module graph whose leaf changes between releases), through
Varnish, straight at each replica, and with the page from one replica and
its assets from another; every response is recorded.

Asserted zero: page loads with an asset of another release; 404 or 5xx for a
URL a page named; cacheable responses whose bytes are not the ones their
version names; URLs that returned two different cacheable bodies.

The test is proven by deliberate faults (``-m slow``: steps run host by host,
a build without --keep, HUP where the recipe says restart), each of which it
must see; run against the code before issue 10's fixes it fails too (HUP
does not deploy, old URLs get new bytes under the immutable header).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import system_tools
from examples.readme import README
from rolling_load import (
    EPOCH,
    PAGE_ASSETS,
    FixedLane,
    Load,
    Target,
    examine,
    pages_py,
    release_files,
    summary,
)
from rolling_stack import (
    Replica,
    StackError,
    base_env,
    free_port,
    haproxy_status,
    start_haproxy,
    start_varnish,
)

from bustware import Assets

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

HOSTS = ("h1", "h2", "h3")
#: The deploys: v1 is installed before the load starts, then rolled forward
#: and back.
DEPLOYS = ("v2", "v3", "v2")
#: The whole test's own deadline (pytest-timeout is the backstop).
BUDGET = 150.0
#: Page loads the load threads make, at least, in each state of the deploy.
LOADS_PER_STATE = 12
#: Seconds a host has, after the recipe's step 2, to render the new release.
SWITCH = 20.0
#: Threads loading pages through Varnish (each replica also gets one).
VARNISH_THREADS = 2
SRV = "/srv/app"

#: The app's code of each release: v3 changes it, so by the recipe v3 and
#: the rollback from it restart gunicorn where v2 reloads it with HUP (which
#: keeps the master's code). Which code rendered a page is told by its
#: ``data-code``.
CODE = {"v1": "a", "v2": "a", "v3": "b"}


def wsgi_py(snippet: str) -> str:
    """wsgi.py: the README's python snippet of the recipe, around our page."""
    return ("from bustware import Bustware\n\nimport pages\n\n\n"
            "def app(environ, start_response):\n"
            "    return pages.render(application.url, environ, start_response)\n\n\n"
            + snippet)


def write_artifacts(dest: Path, rev: str, snippet: str) -> Path:
    """What CI hands the deploy for release ``rev``: ``build/`` with the
    code and ``static/``, mtimes as a reproducible build leaves them."""
    build = dest / rev / "build"
    for rel, (data, mtime) in release_files(rev).items():
        path = build / "static" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
    for name, text in (("pages.py", pages_py(CODE[rev])), ("wsgi.py", wsgi_py(snippet))):
        (build / name).write_text(text)
        os.utime(build / name, (EPOCH, EPOCH))
    return dest / rev


# -- the recipe, from the README ----------------------------------------------


@dataclass
class Recipe:
    snippet: str         # wsgi.py
    start: str           # the gunicorn command
    everywhere: str      # step 1: on every host before step 2 anywhere
    one_at_a_time: str   # step 2: one host at a time
    settle: float        # seconds between step 1 on the last host and step 2


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Rolling deploys\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _block_after(text: str, phrase: str, lang: str) -> str:
    said = re.search(r"\s+".join(map(re.escape, phrase.split())), text)  # lines wrap anywhere
    assert said, f"README 'Rolling deploys' no longer says {phrase!r}: update this test"
    m = re.compile(rf"^```{lang}\n(.*?)^```", re.S | re.M).search(text, said.end())
    assert m, f"no ```{lang} block after {phrase!r}"
    return m[1]


def readme_recipe() -> Recipe:
    """The recipe's blocks, found by the words that introduce them. A
    README that changes their shape fails here, not silently."""
    text = _section()
    python = re.findall(r"^```python\n(# wsgi\.py\n.*?)^```", text, re.S | re.M)
    assert len(python) == 1, "one ```python block starting '# wsgi.py' in the recipe"
    starts = [b for b in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
              if "gunicorn -c python:bustware.gunicorn_conf" in b]
    assert len(starts) == 1, "one ```sh block with the recipe's gunicorn command"
    settle = re.search(r"at\s+least\s+`discover_interval`\s+\((\d+(?:\.\d+)?)\s+s\)\s+after\s+"
                       r"step\s+1", text)
    assert settle, "the recipe says how long after step 1 step 2 starts"
    assert HUP in text, f"the recipe's step 2 no longer says {HUP}"
    return Recipe(
        snippet=python[0],
        start=starts[0],
        everywhere=_block_after(text, "**Step 1, on every host**", "sh"),
        one_at_a_time=_block_after(text, "**Step 2, one host at a time**", "sh"),
        settle=float(settle[1]),
    )


HUP = 'kill -HUP "$(cat /srv/app/gunicorn.pid)"'


def on_host(commands: str, host: Path) -> str:
    assert SRV in commands, commands
    return commands.replace(SRV, str(host))


def run_step(commands: str, host: Path, rev: str, cwd: Path, log: list[str]) -> None:
    """Run the recipe's commands with bash, as an operator pastes them."""
    script = on_host(commands, host)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                          env=base_env(REV=rev), capture_output=True, text=True, timeout=60)
    log.append(f"$ REV={rev} ({host.name}) {script.strip()}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise StackError(f"recipe step failed on {host.name} with {done.returncode}:\n"
                         f"{script}\n{done.stdout}{done.stderr}")


# -- the load ------------------------------------------------------------------


def expected_urls(artifacts: Path) -> dict[str, str]:
    """Each logical path's URL in a release, computed by bustware itself
    from the release's files."""
    assets = Assets(artifacts / "build" / "static")
    return {path: assets.url(path) for path in PAGE_ASSETS}


def wait_serving(replica: Replica, urls: dict[str, str], deadline: float) -> None:
    """Until the replica's pages name ``urls`` on several fresh connections
    (both workers answer)."""
    want = set(urls.values())
    seen_ok = 0
    last = None
    while seen_ok < 6:
        if time.monotonic() > deadline:
            raise StackError(f"{replica.name} still renders {last} after the recipe, "
                             f"not {sorted(want)}")
        target = Target(replica.name, replica.port)
        try:
            _r, body = target.get("/")
            last = set(re.findall(r'href="([^"]+)"', body.decode()))
            seen_ok = seen_ok + 1 if last == want else 0
        except (OSError, http.client.HTTPException):
            seen_ok = 0
        finally:
            target.close()
        if seen_ok == 0:
            time.sleep(0.1)


def wait_in_rotation(work: Path, replica: Replica, deadline: float) -> None:
    """Until haproxy's health check has the replica UP."""
    while (status := haproxy_status(work).get(replica.name)) != "UP":
        if time.monotonic() > deadline:
            raise StackError(f"haproxy still has {replica.name} {status}")
        time.sleep(0.1)


def wait_gone(pids: set[int], what: str, deadline: float) -> None:
    while pids := {p for p in pids if Path(f"/proc/{p}").exists()
                   and "zombie" not in _state(p)}:
        if time.monotonic() > deadline:
            raise StackError(f"{what}: processes {sorted(pids)} did not stop")
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


#: Deliberate faults, each of which the test must see (test_the_test_sees):
#: "steps-per-host": both steps on one host, then the next host (new pages
#: reach hosts whose store has no new build); "no-keep": the build without
#: --keep (no old bytes, no new ones for discovery); "hup-code": HUP where the
#: recipe says restart, for a release that changes code.
FAULTS = ("steps-per-host", "no-keep", "hup-code")


def rolling_deploy(tmp_path: Path, recipe: Recipe, stack: contextlib.ExitStack,
                   report: list[str], problems: list[str],
                   fault: str | None = None) -> tuple[Load, dict]:
    """Install v1, start the stack and the load, deploy DEPLOYS by the
    recipe; return the load (stopped) and figures. What went wrong with the
    deploy itself goes to ``problems``."""
    deadline = time.monotonic() + BUDGET
    work = tmp_path / "work"
    work.mkdir()
    artifacts = {rev: write_artifacts(tmp_path / "artifacts", rev, recipe.snippet)
                 for rev in ("v1", "v2", "v3")}
    expected = {rev: expected_urls(a) for rev, a in artifacts.items()}
    everywhere = recipe.everywhere
    if fault == "no-keep":
        assert " --keep 3" in everywhere, everywhere
        everywhere = everywhere.replace(" --keep 3", "")
    replicas = []
    for name in HOSTS:
        root = tmp_path / name
        # The layout the recipe gives each host (rsync makes only the last
        # directory of its destination).
        (root / "releases").mkdir(parents=True)
        (root / "shared" / "bustware").mkdir(parents=True)
        port = free_port()
        start = on_host(recipe.start, root)
        assert "--bind 0.0.0.0:8000" in start, recipe.start
        start = start.replace("--bind 0.0.0.0:8000", f"--bind 127.0.0.1:{port}")
        replicas.append(Replica(name, root, start, port))
    log: list[str] = []

    def step1(rev: str, replica: Replica) -> None:
        run_step(everywhere, replica.root, rev, artifacts[rev], log)
        # The release's wsgi.py holds the recipe's snippet: with this
        # host's paths.
        wsgi = replica.root / "releases" / rev / "wsgi.py"
        wsgi.write_text(on_host(wsgi_py(recipe.snippet), replica.root))

    def step2(rev: str, replica: Replica, restart: bool) -> set[int]:
        """Step 2 on one host; returns the workers it replaced."""
        old_workers = replica.workers()
        run_step(recipe.one_at_a_time.replace(HUP, "true") if restart else recipe.one_at_a_time,
                 replica.root, rev, artifacts[rev], log)
        if restart:
            load.down.add(replica.name)
            t0 = time.monotonic()
            replica.stop()
            t1 = time.monotonic()
            replica.start()
            load.down.discard(replica.name)
            report.append(f"  {replica.name} restart: stop {t1 - t0:.1f}s, "
                          f"start {time.monotonic() - t1:.1f}s")
        try:
            wait_serving(replica, expected[rev], min(deadline, time.monotonic() + SWITCH))
            # One host at a time: the next one goes out of rotation only
            # when this one is back in.
            wait_in_rotation(work, replica, min(deadline, time.monotonic() + SWITCH))
        except StackError as exc:  # counted; the deploy goes on, as an operator's would
            problems.append(f"{rev}: {exc}")
        return old_workers

    # v1: step 1 on every host, then step 2, where the service starts by
    # the recipe's command (nothing to HUP yet).
    for replica in replicas:
        step1("v1", replica)
    for replica in replicas:
        run_step(recipe.one_at_a_time.replace(HUP, "true"), replica.root, "v1",
                 artifacts["v1"], log)
        stack.callback(replica.stop)
        replica.start()
        wait_serving(replica, expected["v1"], deadline)
    haproxy, lb_port = start_haproxy(work, {r.name: r.port for r in replicas})
    stack.callback(haproxy.stop)
    haproxy.wait_listening(lb_port, 20)
    for replica in replicas:
        wait_in_rotation(work, replica, deadline)
    varnish, cache_port = start_varnish(work, lb_port)
    stack.callback(varnish.stop)
    varnish.wait_listening(cache_port, 30)

    lanes = []
    for _ in range(VARNISH_THREADS):
        cache = Target("varnish", cache_port)
        lanes.append(FixedLane(cache, [cache]))
    for i, r in enumerate(replicas):
        own = Target(r.name, r.port)
        other = replicas[(i + 1) % len(replicas)]
        lanes.append(FixedLane(own, [own, Target(other.name, other.port)]))
    load = Load(expected, lanes)
    stack.callback(load.finish)
    started = time.monotonic()
    load.start()
    previous = "v1"
    try:
        load.wait_loads(LOADS_PER_STATE, deadline)
        for rev in DEPLOYS:
            t0 = time.monotonic()
            # "HUP does not load new Python code: when the release changes
            # code, restart the service on that host instead of HUP (stop
            # gunicorn, wait for it to exit, start it as above)".
            restart = CODE[rev] != CODE[previous] and fault != "hup-code"
            replaced = []
            if fault == "steps-per-host":
                for replica in replicas:
                    step1(rev, replica)
                    replaced.append(step2(rev, replica, restart))
                    load.wait_loads(LOADS_PER_STATE, deadline)
            else:
                for replica in replicas:           # step 1, on every host
                    step1(rev, replica)
                    load.wait_loads(LOADS_PER_STATE, deadline)
                time.sleep(recipe.settle)          # the wait the recipe asks for
                for replica in replicas:           # step 2, one host at a time
                    replaced.append(step2(rev, replica, restart))
                    load.wait_loads(LOADS_PER_STATE, deadline)
            # "Start the next deploy only when every process of the one
            # before has stopped."
            for old in replaced:
                wait_gone(old, f"workers before {rev}", deadline)
            report.append(f"deploy {rev} ({'restart' if restart else 'HUP'}): "
                          f"{time.monotonic() - t0:.1f}s")
            previous = rev
        load.wait_loads(LOADS_PER_STATE, deadline)
    except StackError as exc:
        problems.append(str(exc))
    load.finish()
    figures = {"load seconds": round(time.monotonic() - started, 1)}
    (work / "recipe.log").write_text("\n".join(log))
    return load, figures



def deploy_and_examine(tmp_path: Path, fault: str | None = None):
    system_tools.require({"haproxy": "haproxy", "varnishd": "varnish", "rsync": "rsync"})
    recipe = readme_recipe()
    report: list[str] = []
    problems: list[str] = []
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        load, figures = rolling_deploy(tmp_path, recipe, stack, report, problems, fault)
    figures["test seconds"] = round(time.monotonic() - t0, 1)
    findings = examine(load.loads, CODE)
    text = "\n".join([*report, *problems, summary(findings, load, figures)])
    print(f"\nrolling deploy, fault={fault}:\n{text}")
    assert not load.crashed, load.crashed
    assert findings.page_loads["varnish"] >= LOADS_PER_STATE, text
    return findings, load, problems, text


def test_rolling_deploy_behind_haproxy_and_varnish(tmp_path):
    findings, load, problems, text = deploy_and_examine(tmp_path)
    assert not problems, text
    assert all(n == 0 for n in findings.zero().values()), text
    assert not load.outside_restart, text
    # The loads did follow the module graph down to its leaf.
    leaves = {f.url for page in load.loads for f in page.fetches if "/js/lib/leaf." in f.url}
    assert len(leaves) >= 3, (sorted(leaves), text)  # the leaf of v1, v2 and v3


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_the_test_sees_a_faulty_deploy(tmp_path, fault):
    """The test itself, proven: each deliberate fault gives counts above zero
    where the recipe gives none."""
    findings, _, _, text = deploy_and_examine(tmp_path, fault)
    seen = findings.zero()
    if fault == "hup-code":
        assert seen["pages rendered by another release's code"] > 0, text
    else:
        assert seen["page loads with an asset of another release"] > 0, text
