"""A real S3 server for the tests: moto's standalone server on a free
127.0.0.1 port, speaking the REST API over HTTP, stopped at the end even on
failure. Skipped locally when moto is missing; a failure under ``CI``."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, serving

INSTALL = "pip install boto3 'moto[server]'"
_buckets = itertools.count()


def need_moto() -> None:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        message = f"the S3 store tests need boto3 and moto's server ({INSTALL}): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def moto_server(log: Path, *, env: dict[str, str] | None = None,
                timeout: float = 30.0) -> Iterator[str]:
    """Run ``moto_server`` until it answers; yield its endpoint URL; stop it.
    Its request log goes to ``log`` (a pipe would fill and stall it)."""
    need_moto()
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving(argv, port, env={**os.environ, **(env or {})}, timeout=timeout,
                 log=log) as server:
        yield server.url


def aws_env(endpoint: str, key: str = "testing", secret: str = "testing") -> dict[str, str]:
    """The standard AWS variables pointing at ``endpoint``, and none of the
    user's own configuration."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true"}


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def admin_client(endpoint: str, key: str = "testing", secret: str = "testing"):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def new_bucket(client) -> str:
    name = f"bust-{os.getpid()}-{next(_buckets)}"
    client.create_bucket(Bucket=name)
    return name


class Silent:
    """A port that accepts connections and never answers (a hung store),
    and how many connections it has accepted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0


@contextlib.contextmanager
def silent_server() -> Iterator[Silent]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    silent = Silent(listener.getsockname()[1])
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            silent.accepted += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
