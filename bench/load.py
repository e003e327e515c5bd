"""Load for the HTTP benchmarks: concurrent keep-alive HTTP/1.1 clients, each posting its
share of JSON bodies one after another, timing each request.

The clients share this process's one event loop and speak HTTP over plain sockets, with
every request's bytes built before the clock starts: a request costs the load generator
a few tens of microseconds, so the figures measure the server, which shares the machine's
two cores with it (httpx in eight threads cost about a millisecond a request, a third of
the server's own cost). Each client first sends a warm-up share, untimed; the timed part
starts when every client has warmed up."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT_SECONDS = 10
RESPONSE_TIMEOUT_SECONDS = 60


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, timed requests only
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # seconds from the end of the warm-up to the last response


def request_bytes(host: str, path: str, api_key: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode("latin-1") + payload


def post_all(base_url: str, path: str, api_key: str, bodies: Sequence[dict[str, Any]], *,
             clients: int, warm_up_per_client: int, expect: int = 201) -> Outcome:
    """``clients`` connections post ``bodies`` (client i takes the i-th equal share, of
    which the first ``warm_up_per_client`` are not timed). A response other than
    ``expect`` is an error, recorded with the start of its body."""
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    share = len(bodies) // clients
    requests = [[request_bytes(f"{host}:{port}", path, api_key, body)
                 for body in bodies[i * share:(i + 1) * share]] for i in range(clients)]
    return asyncio.run(_run(host, port, requests, warm_up_per_client, expect))


async def _run(host: str, port: int, requests: list[list[bytes]], warm_up: int,
               expect: int) -> Outcome:
    outcome = Outcome()
    warmed = asyncio.Barrier(len(requests) + 1)
    timed: list[list[float]] = [[] for _ in requests]

    async def client(index: int) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                CONNECT_TIMEOUT_SECONDS)
        try:
            for number, request in enumerate(requests[index]):
                if number == warm_up:
                    await warmed.wait()
                started = time.perf_counter()
                writer.write(request)
                status, body = await asyncio.wait_for(_response(reader),
                                                      RESPONSE_TIMEOUT_SECONDS)
                if number >= warm_up:
                    timed[index].append(time.perf_counter() - started)
                if status != expect:
                    outcome.errors.append(f"{status}: {body[:300].decode(errors='replace')}")
            if len(requests[index]) <= warm_up:
                await warmed.wait()
        finally:
            writer.close()

    tasks = [asyncio.create_task(client(i)) for i in range(len(requests))]
    await warmed.wait()
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    outcome.elapsed = time.perf_counter() - started
    outcome.latencies = [seconds for per_client in timed for seconds in per_client]
    return outcome


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response: its status and body (by Content-Length; the server sends one)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)
