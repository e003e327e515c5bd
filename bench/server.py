"""A real ``billfold serve --no-worker`` on a free port of 127.0.0.1, for the HTTP benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(database_url: str, workdir: Path, processes: int = 1) -> Iterator[str]:
    """Start the server on ``database_url`` with ``processes`` API processes, wait until
    /healthz answers, yield its base URL, then stop it. Its output goes to
    ``workdir/server.log``."""
    port = free_port()
    billfold = Path(sys.executable).with_name("billfold")
    env = os.environ | {"BILLFOLD_DATABASE_URL": database_url,
                        "BILLFOLD_DATA_DIR": str(workdir / "data"),
                        "BILLFOLD_BASE_URL": f"http://{HOST}:{port}"}
    base_url = f"http://{HOST}:{port}"
    with (workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [str(billfold), "serve", "--host", HOST, "--port", str(port), "--no-worker",
             "--processes", str(processes)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_healthy(process, base_url, workdir / "server.log")
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"billfold serve exited with {process.returncode}:\n"
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"billfold serve did not answer /healthz within {START_TIMEOUT_SECONDS} s")
