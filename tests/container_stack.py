"""The README's "Containers and PaaS" recipe, as the container tests follow
it (tests/test_container_rollout.py, tests/test_container_store_faults.py):
its blocks taken from README.md, releases built into the bucket from a fresh
checkout as CI does, images, and replicas ("pods") each running in its own
copy of its image.

Only the placeholders are replaced: the bucket ``my-bucket`` by the test's
bucket, ``https://cdn.example.com`` by the address the test's CDN has, and
gunicorn's ``--bind 0.0.0.0:8000`` by the replica's free port.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from examples.readme import README
from rolling_load import PAGE_ASSETS, VERSIONED, pages_py, release_files
from rolling_stack import Replica, StackError, base_env

from bustware import Assets

BUCKET = "my-bucket"
CDN_URL = "https://cdn.example.com"
BIND = "--bind 0.0.0.0:8000"


# -- the recipe, from the README ----------------------------------------------


@dataclass
class Recipe:
    build: str            # the CI job's commands, from the checkout
    snippet: str          # wsgi.py
    start: str            # the container's command
    max_surge: int        # the Deployment's rolling update
    max_unavailable: int
    readiness: str        # the readiness probe's path
    store: str            # the s3:// URL the build and the replicas use
    cdn_build: str        # the same with the CDN ("CDN" section)
    cdn_snippet: str
    cdn_policy: str       # the bucket policy that lets the CDN read


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def _one(blocks: list[str], what: str) -> str:
    assert len(blocks) == 1, f"README: expected one {what}, found {len(blocks)}: update the test"
    return blocks[0]


def _squash(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def readme_recipe() -> Recipe:
    """The recipe's blocks. A README that changes their shape fails here,
    not silently; the CDN section's variant must be the recipe plus the CDN
    address, nothing else."""
    text = section("Containers and PaaS")
    build = _one([b for b in _blocks(text, "sh") if "bustware build" in b],
                 "```sh block with bustware build")
    snippet = _one([b for b in _blocks(text, "python") if b.startswith("# wsgi.py")],
                   "```python block starting '# wsgi.py'")
    command = "gunicorn -c python:bustware.gunicorn_conf"
    start = _one([b for b in _blocks(text, "sh") if command in b],
                 "```sh block with the gunicorn command")
    yaml = _one([b for b in _blocks(text, "yaml") if "kind: Deployment" in b], "Deployment")
    surge = re.search(r"maxSurge:\s*(\d+)", yaml)
    unavailable = re.search(r"maxUnavailable:\s*(\d+)", yaml)
    probe = re.search(r"readinessProbe:\s*\n\s*httpGet:\s*\{path:\s*(\S+?),", yaml)
    assert surge and unavailable and probe, yaml
    store = re.search(r"--store (s3://\S+)", build)
    assert store and f'store="{store[1]}"' in snippet, (build, snippet)
    assert BIND in start, start
    cdn = section("CDN")
    cdn_build = _one([b for b in _blocks(cdn, "sh") if "bustware build" in b],
                     "```sh block with bustware build in CDN")
    cdn_snippet = _one([b for b in _blocks(cdn, "python") if b.startswith("# wsgi.py")],
                       "```python block starting '# wsgi.py' in CDN")
    assert _squash(cdn_build.replace(f" --base-url {CDN_URL}", "")) == _squash(build), cdn_build
    assert _squash(cdn_snippet.replace(f', base_url="{CDN_URL}"', "")) == _squash(snippet), \
        cdn_snippet
    policy = _one([b for b in _blocks(cdn, "json") if "s3:GetObject" in b], "bucket policy")
    return Recipe(build=build, snippet=snippet, start=start, max_surge=int(surge[1]),
                  max_unavailable=int(unavailable[1]), readiness=probe[1], store=store[1],
                  cdn_build=cdn_build, cdn_snippet=cdn_snippet, cdn_policy=policy)


def placed(text: str, bucket: str, cdn: str) -> str:
    """``text`` with the placeholders replaced by the test's bucket and CDN."""
    assert f"s3://{BUCKET}/" in text or f":::{BUCKET}/" in text, text
    return (text.replace(f"s3://{BUCKET}/", f"s3://{bucket}/")
            .replace(f":::{BUCKET}/", f":::{bucket}/").replace(CDN_URL, cdn))


# -- releases and images --------------------------------------------------------


def wsgi_py(snippet: str) -> str:
    """wsgi.py: the README's snippet, around the test's page."""
    return ("from bustware import Bustware\n\nimport pages\n\n\n"
            "def app(environ, start_response):\n"
            "    return pages.render(application.url, environ, start_response)\n\n\n"
            + snippet)


def checkout(dest: Path, rev: str, snippet: str) -> Path:
    """A fresh checkout of release ``rev`` in ``dest``, as a CI runner has:
    the code and ``static/``, mtimes of now (git sets none)."""
    for rel, (data, _mtime) in release_files(rev).items():
        path = dest / "static" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (dest / "pages.py").write_text(pages_py(rev))
    (dest / "wsgi.py").write_text(wsgi_py(snippet))
    return dest


def expected_urls(static: Path, base_url: str | None) -> dict[str, str]:
    """Each logical path's URL in a release, computed by bustware itself
    from the release's files (a scan, not the build's manifest)."""
    assets = Assets(static, base_url=base_url) if base_url else Assets(static)
    return {path: assets.url(path) for path in PAGE_ASSETS}


def run_ci(commands: str, cwd: Path, env: dict[str, str], log: list[str]) -> None:
    """The CI job's commands, with bash, as the job runs them."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=cwd,
                          env=base_env(**env), capture_output=True, text=True, timeout=90)
    log.append(f"$ ({cwd.name}) {commands.strip()}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise StackError(f"the CI job failed with {done.returncode}:\n{commands}\n"
                         f"{done.stdout}{done.stderr}")


def copy_image(image: Path, dest: Path) -> Path:
    """A container's filesystem: its own copy of the image, mtimes kept (as
    layers keep them)."""
    subprocess.run(["cp", "-a", f"{image}/.", str(dest)], check=True, timeout=60,
                   capture_output=True)
    return dest


def pod(name: str, image: Path, root: Path, start: str, port: int,
        env: dict[str, str]) -> Replica:
    """A replica of ``image``: its own directory (a copy of the image), its
    own temporary and cache directories, the recipe's command on ``port``,
    one worker (the machine is shared)."""
    fs = copy_image(image, root / "app")
    for d in ("tmp", "home"):
        (root / d).mkdir()
    own = {"TMPDIR": str(root / "tmp"), "HOME": str(root / "home"),
           "XDG_CACHE_HOME": str(root / "home" / ".cache")}
    return Replica(name, root, start.replace(BIND, f"--bind 127.0.0.1:{port}"), port,
                   cwd=fs, env={**env, **own}, workers=1)


def version_matches(url: str, body: bytes) -> bool:
    """Whether ``body`` is the bytes the version in ``url`` names."""
    m = VERSIONED.search(url.split("?")[0])
    return bool(m) and hashlib.sha256(body).hexdigest().startswith(m[1])


# -- the cluster -------------------------------------------------------------------


class Endpoints:
    """The service's endpoints: the replicas that are ready and not
    terminating, in the order they became ready."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: list[Replica] = []

    def add(self, replica: Replica) -> None:
        with self._lock:
            self._ready.append(replica)

    def remove(self, replica: Replica) -> None:
        with self._lock:
            self._ready.remove(replica)

    def now(self) -> list[Replica]:
        with self._lock:
            return list(self._ready)
