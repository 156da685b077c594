"""System programs a test needs (haproxy, Varnish, rsync): on a machine
without them the test is skipped with the exact line that installs them;
where ``CI`` is set it fails instead, so that CI never passes by skipping."""

from __future__ import annotations

import os
import shutil

import pytest


def find(program: str) -> str | None:
    # /usr/sbin holds haproxy and varnishd, and is not on every user's PATH.
    return shutil.which(program, path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def install_line(packages: list[str]) -> str:
    return f"sudo apt-get install -y {' '.join(packages)}"


def require(programs: dict[str, str]) -> None:
    """``programs`` maps each program to its Debian package."""
    missing = sorted({package for program, package in programs.items() if find(program) is None})
    if not missing:
        return
    message = (f"needs {', '.join(sorted(programs))} (Debian packages: "
               f"{install_line(missing)}; .ci/run installs them)")
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and this test {message}", pytrace=False)
    pytest.skip(f"this test {message}")
