"""Advice in error messages that must work when followed literally: the
user's real paths, and a command to run as shown.

A leaf module (standard library only).
"""

from __future__ import annotations

import os

__all__ = ["missing_root", "move_aside"]


def missing_root(given: str) -> str:
    """The message for a root that does not exist. A relative root is read
    against the current directory, which differs between a shell, a
    service and a test runner: name both, so the user sees what was
    looked for."""
    path = os.path.abspath(given)
    message = f"bustware: root {given!r} does not exist; pass the directory that holds your " \
              "static files"
    if os.path.isabs(given):
        return message
    return (f"{message}. A relative root is taken from the current directory "
            f"({os.getcwd()}), so bustware looked for {path}: start the process from the "
            "directory that holds it, or pass an absolute path, such as "
            f"os.path.join(os.path.dirname(__file__), {given!r}) in the module that names it")


def move_aside(path: str) -> str:
    """A shell command that renames ``path`` to a name not yet taken beside
    it, ``<name>.damaged`` (``.damaged-2``, ...): never a deletion, and
    never over another file."""
    import shlex  # error paths only: not loaded by `import bustware`

    path = os.path.abspath(path)
    target, n = f"{path}.damaged", 1
    while os.path.lexists(target):
        n += 1
        target = f"{path}.damaged-{n}"
    return shlex.join(["mv", "--", path, target])


def start_over(manifest_path: str, build_command: str) -> str:
    """Advice for a manifest that ``bustware build`` refuses to overwrite
    (damaged, another tool's, another schema): move it aside, then build.
    The build then starts a new history; the stored objects stay where they
    are, and the moved file can still be read."""
    return (f"move it aside and build a new one (nothing is deleted): "
            f"`{move_aside(manifest_path)} && {build_command}`")


def with_roots(message: str, roots: list[str]) -> str:
    """``message`` with the ``bustware build ROOT`` placeholder of a
    manifest's advice (the manifest alone does not say which roots it was
    built from) replaced by the roots the command was given."""
    import shlex
    return message.replace("bustware build ROOT ",
                           shlex.join(["bustware", "build", *map(os.path.abspath, roots)]) + " ")
