"""Where Billfold may connect or send a payer: URL checks, allowed-origin matching against
ReturnURL-style attacks, and the address check against server-side request forgery, proved
by a listener that must never see a connection. Nothing here needs external DNS."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any

import httpx
import pytest

from billfold.notifications import pinned_http, targets
from billfold.notifications.targets import UnsafeTarget

ALLOWED = ["https://shop.example.com"]

# Every one names loopback, a private or otherwise internal network, or a metadata
# service, spelled the ways a resolver or an IP parser accepts.
SSRF_HOSTS = [
    "127.0.0.1", "127.1", "127.0.1", "0x7f.0.0.1", "0x7f.1", "0x7f000001", "2130706433",
    "017700000001", "0177.0.0.1", "0177.1", "127.255.255.254", "localhost", "LOCALHOST.",
    "localhost.", "api.localhost", "127.0.0.1.nip.io", "10-0-0-1.sslip.io",
    "169.254.169.254.nip.io", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::]", "0.0.0.0", "0", "[::]",  # noqa: S104 (targets, not bindings)
    "10.0.0.1", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "[fe80::1]", "[fc00::1]", "[fd12:3456::1]", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "169.254.169.254", "169.254.170.2", "100.100.100.200",
    "[fd00:ec2::254]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]", "[::ffff:10.0.0.1]", "0251.0376.0251.0376",
    "2852039166", "192.0.2.1", "198.18.0.1",
]

# Each must fail to match https://shop.example.com.
RETURN_URL_ATTACKS = [
    "https://shop.example.com.evil.com",
    "https://shop.example.com@evil.com",
    "https://user:pass@shop.example.com",
    "https://shop.example.com:443@evil.com",
    "https://evil.com#@shop.example.com",
    "https://evil.com?@shop.example.com",
    "https://evil.com/https://shop.example.com",
    "//evil.com",
    "//shop.example.com",
    "https:evil.com",
    "https:/shop.example.com",
    "https:///shop.example.com",
    "javascript:alert(1)",
    "javascript://shop.example.com/%0Aalert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "https://shop.example.com:444",
    "https://shop.example.com:0",
    "https://shop.example.com:99999",
    "https://shop.example.com:443:444",
    "http://shop.example.com",
    "ftp://shop.example.com",
    "wss://shop.example.com",
    "https://shop.example.com\\@evil.com",
    "https://shop.example.com\\evil.com",
    "https://evil.com\\shop.example.com",
    "https://evil.com:443\\@shop.example.com",
    "https://shop.exa\tmple.com",
    "https://shop.example.com\n.evil.com",
    "https://\nshop.example.com",
    "https://shop.example.com\r\n@evil.com",
    "https://shop.example.com\x00.evil.com",
    "\x01https://shop.example.com",
    " https://shop.example.com",
    "https://shop.example.com /x",
    "https://shop.ex\u0430mple.com",  # Cyrillic a
    "https://\u0455hop.example.com",  # Cyrillic dze
    "https://\uff53hop.example.com",  # fullwidth s
    "https://shop.example.com\u3002evil.com",  # ideographic full stop
    "https://%73hop.example.com",
    "https://shop%2Eexample%2Ecom",
    "https://shop.example.com%2F@evil.com",
    "https://shop.example.com./x",
    "https://[::1]",
    "",
    "/return",
    "return?x=1",
    "../return",
    "?next=https://shop.example.com",
]


# What wildcard DNS services such as nip.io answer, so no test needs the network.
WILDCARD_DNS = {"127.0.0.1.nip.io": "127.0.0.1", "10-0-0-1.sslip.io": "10.0.0.1",
                "169.254.169.254.nip.io": "169.254.169.254"}


@pytest.fixture(autouse=True)
def wildcard_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in WILDCARD_DNS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (WILDCARD_DNS[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def refusal(call: Any, *args: Any, **kwargs: Any) -> str | None:
    try:
        call(*args, **kwargs)
    except UnsafeTarget as exc:
        return exc.detail
    return None


class Listener:
    """A TCP port that records connection attempts without answering them."""

    def __init__(self) -> None:
        self.ipv4 = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.ipv4.getsockname()[1])
        self.sockets = [self.ipv4]
        with suppress(OSError):  # no IPv6 here: the IPv4 listener still counts
            self.sockets.append(socket.create_server(("::1", self.port),
                                                     family=socket.AF_INET6))
        for listening in self.sockets:
            listening.setblocking(False)

    def accepted(self) -> int:
        count = 0
        for listening in self.sockets:
            while True:
                try:
                    connection, _ = listening.accept()
                except BlockingIOError:
                    break
                connection.close()
                count += 1
        return count

    def close(self) -> None:
        for listening in self.sockets:
            listening.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


def attempt(host: str, port: int, *, allow_private: bool) -> None:
    pinned_http.post(f"http://{host}:{port}/hook", body=b"{}", headers={},
                     allow_private=allow_private, timeout=0.5)


class TestServerSideRequestForgery:
    def test_has_enough_spellings(self):
        assert len(SSRF_HOSTS) >= 30

    def test_no_spelling_of_an_internal_address_gets_a_connection(self, listener):
        not_refused = [host for host in SSRF_HOSTS
                       if refusal(attempt, host, listener.port, allow_private=False) is None]

        assert not_refused == []
        assert listener.accepted() == 0

    @pytest.mark.parametrize("host", SSRF_HOSTS)
    def test_resolve_safe_refuses(self, host):
        port = 443
        assert refusal(targets.resolve_safe, host, port, allow_private=False) is not None

    def test_the_listener_does_count_connections(self, listener):
        with pytest.raises(httpx.TimeoutException):
            attempt("127.0.0.1", listener.port, allow_private=True)

        assert listener.accepted() == 1

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.1",
                                      "[::ffff:192.168.0.1]"])
    def test_allow_private_admits_private_addresses(self, host):
        assert targets.resolve_safe(host, 80, allow_private=True)

    @pytest.mark.parametrize("host", ["169.254.169.254", "[fd00:ec2::254]", "100.100.100.200",
                                      "169.254.170.2", "[::ffff:169.254.169.254]",
                                      "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]",
                                      "2852039166", "169.254.169.254.nip.io"])
    def test_allow_private_never_admits_a_metadata_service(self, host):
        detail = refusal(targets.resolve_safe, host, 80, allow_private=True)

        assert "metadata" in (detail or "")

    @pytest.mark.parametrize("host", ["8.8.8.8", "[2001:4860:4860::8888]", "[::ffff:8.8.8.8]",
                                      "[64:ff9b::808:808]", "[2002:808:808::]"])
    def test_public_addresses_pass_in_any_spelling(self, host):
        assert targets.resolve_safe(host, 443, allow_private=False)

    def test_the_refusal_says_which_address_and_why(self):
        detail = refusal(targets.resolve_safe, "0x7f.1", 80, allow_private=False)

        assert detail == "0x7f.1 resolves to 127.0.0.1, a loopback address"

    def test_an_embedded_address_is_named(self):
        detail = refusal(targets.resolve_safe, "::ffff:10.0.0.1", 80, allow_private=False)

        assert detail == "::ffff:10.0.0.1 resolves to ::ffff:10.0.0.1, an IPv6 form of " \
                         "10.0.0.1, a private address"

    def test_a_name_that_does_not_resolve_is_unresolvable(self):
        with pytest.raises(targets.UnresolvableTarget):
            targets.resolve_safe("no-such-host.invalid", 443, allow_private=False)

    def test_one_unsafe_address_among_safe_ones_refuses_the_host(self, monkeypatch):
        def answers(host: str, port: int, **_: Any) -> list[Any]:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                    for address in ("8.8.8.8", "10.1.2.3")]

        monkeypatch.setattr(targets.socket, "getaddrinfo", answers)

        detail = refusal(targets.resolve_safe, "mixed.example", 443, allow_private=False)

        assert detail == "mixed.example resolves to 10.1.2.3, a private address"


class TestAddressPinning:
    def test_the_connection_goes_to_the_address_that_was_checked(self, monkeypatch):
        """A rebinding DNS answers the check with one address and a second lookup with
        another; the request must reach the first, and the name is looked up once."""
        real = socket.getaddrinfo  # what the wildcard_dns fixture installed
        lookups: list[str] = []

        def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
            if host != "rebind.example":
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        with receiver() as received:
            status = pinned_http.post(f"http://rebind.example:{received.port}/hook",
                                      body=b"{}", headers={}, allow_private=True)

        assert status == 204
        assert lookups == ["rebind.example"]
        assert received.hosts == [f"rebind.example:{received.port}"]

    def test_redirects_are_not_followed(self):
        with receiver() as target, receiver(status=302) as redirecting:
            redirecting.location = f"http://127.0.0.1:{target.port}/elsewhere"
            status = pinned_http.post(f"http://127.0.0.1:{redirecting.port}/hook", body=b"{}",
                                      headers={}, allow_private=True)

        assert status == 302
        assert (len(redirecting.hosts), target.hosts) == (1, [])


class Received:
    def __init__(self, port: int, status: int) -> None:
        self.port, self.status = port, status
        self.hosts: list[str] = []
        self.location = ""


@contextmanager
def receiver(status: int = 204) -> Iterator[Received]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    received = Received(int(server.server_address[1]), status)
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        received: Received = self.server.received  # type: ignore[attr-defined]
        received.hosts.append(self.headers["Host"])
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(received.status)
        if received.location:
            self.send_header("Location", received.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TestMatchesOrigin:
    def test_has_enough_attacks(self):
        assert len(RETURN_URL_ATTACKS) >= 30

    @pytest.mark.parametrize("url", RETURN_URL_ATTACKS)
    def test_an_attack_does_not_match(self, url):
        assert targets.matches_origin(url, ALLOWED) is False

    @pytest.mark.parametrize("url", ["https://shop.example.com/return?x=1",
                                     "https://SHOP.example.com:443/x",
                                     "https://shop.example.com",
                                     "HTTPS://shop.example.com/#done"])
    def test_the_allowed_origin_matches_with_any_path(self, url):
        assert targets.matches_origin(url, ALLOWED) is True

    def test_nothing_matches_when_nothing_is_allowed(self):
        assert targets.matches_origin("https://shop.example.com/", []) is False


class TestOriginOf:
    @pytest.mark.parametrize(("url", "origin"), [
        ("HTTPS://Shop.Example.COM:443/path?q=1", "https://shop.example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://example.com:8080/", "http://example.com:8080"),
        ("https://example.com:80/", "https://example.com:80"),
        ("http://[0:0:0:0:0:0:0:1]:8080/x", "http://[::1]:8080"),
        ("https://[2001:DB8::1]/", "https://[2001:db8::1]"),
    ])
    def test_is_lower_case_without_the_default_port(self, url, origin):
        assert targets.origin_of(url) == origin


class TestCheckUrl:
    def test_returns_the_parts(self):
        parts = targets.check_url("https://hooks.example.com:8443/billfold?x=1")

        assert (parts.hostname, parts.port, parts.path) == ("hooks.example.com", 8443, "/billfold")

    @pytest.mark.parametrize(("url", "why"), [
        ("", "empty"),
        ("https://example.com/" + "a" * 2000, "longer than 2000"),
        ("ftp://example.com/", "http:// or https://"),
        ("https://user@example.com/", "user name or password"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com\\@x/", "backslash"),
        ("https://ex\u00e4mple.com/", "ASCII"),
        ("https:///x", "names no host"),
        ("https://example.com:http/", "port"),
        ("https://[not-v6]/", "does not parse"),
        ("https://[192.168.0.1]/", "cannot be in brackets"),
        ("https://[v1.fe]/", "not an IPv6 address"),
        ("https://exa!mple.com/", "not a valid host name"),
    ])
    def test_refuses_and_says_why(self, url, why):
        detail = refusal(targets.check_url, url)

        assert why in (detail or "")

    def test_allows_2000_characters(self):
        url = "https://example.com/" + "a" * 1980

        assert targets.check_url(url).hostname == "example.com"


class TestCheckTarget:
    def test_resolves_when_private_targets_are_not_allowed(self):
        with pytest.raises(UnsafeTarget, match="loopback"):
            targets.check_target("http://localhost:8080/hook", allow_private=False)

    def test_only_a_literal_address_is_judged_when_private_targets_are_allowed(self):
        assert targets.check_target("http://localhost:8080/hook", allow_private=True)
        with pytest.raises(UnsafeTarget, match="metadata"):
            targets.check_target("http://169.254.169.254/latest/", allow_private=True)

    def test_the_refusal_can_name_its_field(self):
        with pytest.raises(UnsafeTarget) as refused:
            targets.check_target("http://10.0.0.1/", allow_private=False)

        named = refused.value.on_field("url")
        assert (named.status, named.code, [e.field for e in named.errors]) == (
            422, "unsafe_target", ["url"])


class TestCheckLiteral:
    """The check of a postback URL given with a request: no resolver is asked."""

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0x7f.0.0.1", "2130706433",
                                      "[::1]", "[::ffff:127.0.0.1]", "localhost",
                                      "shop.localhost", "10.0.0.1", "192.168.1.1",
                                      "169.254.169.254"])
    def test_a_literal_or_loopback_host_is_refused(self, host, monkeypatch):
        monkeypatch.setattr(socket, "getaddrinfo", _no_resolver)
        with pytest.raises(UnsafeTarget):
            targets.check_literal(f"http://{host}:8080/postback", allow_private=False)

    def test_with_private_targets_allowed_only_metadata_is_refused(self, monkeypatch):
        monkeypatch.setattr(socket, "getaddrinfo", _no_resolver)
        assert targets.check_literal("http://127.1:8080/", allow_private=True)
        assert targets.check_literal("http://localhost/", allow_private=True)
        with pytest.raises(UnsafeTarget, match="metadata"):
            targets.check_literal("http://[::ffff:169.254.169.254]/", allow_private=True)

    def test_a_name_is_left_to_the_send(self, monkeypatch):
        monkeypatch.setattr(socket, "getaddrinfo", _no_resolver)
        assert targets.check_literal("https://erp.biller.example/postbacks",
                                     allow_private=False).hostname == "erp.biller.example"


def _no_resolver(*_: Any, **__: Any) -> Any:
    raise AssertionError("check_literal asked the resolver")


class TestUnsafeReason:
    @pytest.mark.parametrize(("address", "reason"), [
        ("127.0.0.1", "a loopback address"),
        ("0.0.0.0", "the unspecified address"),  # noqa: S104
        ("169.254.1.1", "a link-local address"),
        ("239.1.1.1", "a multicast address"),
        ("100.127.255.254", "in the shared address space 100.64.0.0/10"),
        ("172.31.0.1", "a private address"),
        ("fc00::1", "a private address"),
        ("64:ff9b:1::1", "a reserved address"),
        ("8.8.8.8", None),
    ])
    def test_names_the_kind_of_address(self, address, reason):
        assert targets.unsafe_reason(ip_address(address), allow_private=False) == reason
