"""One POST to a URL a tenant chose, connected only to an address that passed
``targets.resolve_safe``.

Checking a host name and then letting the HTTP client resolve it again would leave a gap:
the name's DNS can answer with a public address for the check and with 127.0.0.1 for the
connection (DNS rebinding). So the name is resolved once, every address is judged, and
the connection pool's network backend connects to those addresses and no others. TLS is
unchanged: httpcore still sends the URL's host name as SNI and verifies the certificate
for it, and the Host header is the URL's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpcore
import httpx

from billfold.notifications import targets

TIMEOUT_SECONDS = 10.0


class PinnedBackend(httpcore.NetworkBackend):
    """Connects to the given addresses, in order, whatever host httpcore asks for."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("a pinned backend needs at least one address")
        self.addresses = list(addresses)
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self.addresses:
            try:
                return self._sockets.connect_tcp(address, port, timeout=timeout,
                                                 local_address=local_address,
                                                 socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise targets.UnsafeTarget("a webhook is never sent to a Unix socket")

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport (its request mapping and exception translation) over a
    connection pool that uses ``PinnedBackend``. httpx offers no public way to choose
    the pool's network backend, hence the replaced ``_pool``."""

    def __init__(self, addresses: Sequence[str]) -> None:
        super().__init__(retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=1,
            network_backend=PinnedBackend(addresses))


def post(url: str, *, body: bytes, headers: Mapping[str, str], allow_private: bool,
         timeout: float = TIMEOUT_SECONDS) -> int:
    """POST ``body`` to ``url`` and return the response's status code. Redirects are not
    followed and the response body is not read. Raises UnsafeTarget or
    UnresolvableTarget before any connection is made to an address that is not allowed,
    and httpx.HTTPError when the request fails."""
    parts = targets.check_url(url)
    port = parts.port or targets.DEFAULT_PORTS[parts.scheme]
    addresses = targets.resolve_safe(parts.hostname or "", port, allow_private=allow_private)
    # No environment proxies (trust_env): a proxy would make its own DNS lookup.
    with httpx.Client(transport=PinnedTransport(addresses), follow_redirects=False,
                      timeout=timeout, trust_env=False) as client, \
            client.stream("POST", url, content=body, headers=dict(headers)) as response:
        return response.status_code
