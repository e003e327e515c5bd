"""Where Billfold may send a request or a payer (DESIGN.md decision 10).

``check_url`` and ``matches_origin`` judge a URL's text: a ReturnURL or PostBackURL must
name exactly one of the tenant's allowed origins. ``resolve_safe`` judges where a host
really is: webhooks and postbacks must not reach loopback, private or link-local networks
(server-side request forgery) unless the caller allows it, and never a cloud metadata
service. Which origins and whether private targets are allowed is the tenant's business;
callers pass it in."""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import SplitResult, urlsplit

from billfold.core.errors import BillfoldError, FieldError

MAX_URL_LENGTH = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}
# Instance metadata services hand out cloud credentials: no tenant setting unlocks them.
# AWS (IPv4 and Nitro IPv6), Alibaba Cloud, and the AWS ECS task metadata endpoint.
METADATA_ADDRESSES = frozenset(ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"))
SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
# Lower-case names, digits, "-" and "_" (some DNS labels use it); percent-encoding and
# anything else a parser could read two ways is refused.
_HOST_NAME = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,252}")
# RFC 6761: these names are loopback whatever a resolver says, and a resolver may send
# them to DNS (which this check must not depend on).
_LOOPBACK_NAMES = re.compile(r"(.+\.)?localhost")

Address = IPv4Address | IPv6Address


class UnsafeTarget(BillfoldError):
    """A URL or address Billfold will not send to or redirect to."""

    def __init__(self, detail: str, field_name: str | None = None) -> None:
        super().__init__(
            detail=detail, code="unsafe_target", status=422, title="Unsafe target",
            errors=[FieldError(field_name, detail, "unsafe_target")] if field_name else [])

    def on_field(self, field_name: str) -> UnsafeTarget:
        """The same refusal, naming the request field that held the URL."""
        return UnsafeTarget(self.detail, field_name)


class UnresolvableTarget(BillfoldError):
    """The host has no address now; it may have one later."""

    def __init__(self, host: str, field_name: str | None = None) -> None:
        detail = f"{host} does not resolve to an address"
        super().__init__(
            detail=detail, code="unresolvable_target", status=422, title="Unresolvable target",
            errors=[FieldError(field_name, detail, "unresolvable_target")] if field_name else [])


def check_url(url: str) -> SplitResult:
    """``url`` split, if it is an absolute http(s) URL naming a host, without user info,
    of at most 2000 characters. Whitespace, control characters and backslashes are
    refused before parsing: ``urlsplit`` silently drops tabs and newlines, and browsers
    read a backslash as a slash, so either would let the text say one host and mean another."""
    if not url:
        raise UnsafeTarget("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c <= " " or c in "\x7f\\" for c in url):
        raise UnsafeTarget("the URL contains whitespace, a control character or a backslash")
    if not url.isascii():
        raise UnsafeTarget("the URL must be ASCII (write an international domain in punycode)")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeTarget(f"the URL does not parse: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise UnsafeTarget("the URL must start with http:// or https://")
    _check_netloc(parts)
    return parts


def _check_netloc(parts: SplitResult) -> None:
    if "@" in parts.netloc:
        raise UnsafeTarget("the URL may not carry a user name or password")
    if "%" in parts.netloc:
        raise UnsafeTarget("the URL's host may not be percent-encoded")
    host = parts.hostname
    if not host:
        raise UnsafeTarget("the URL names no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise UnsafeTarget("the URL's port must be a number from 1 to 65535")
    if parts.netloc.startswith("["):
        if not isinstance(_ip_or_none(host), IPv6Address):
            raise UnsafeTarget("the URL's host in brackets is not an IPv6 address")
    elif not _HOST_NAME.fullmatch(host):
        raise UnsafeTarget("the URL's host is not a valid host name")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: lower case, default port dropped, IPv6 in
    brackets in its shortest form. Raises UnsafeTarget like ``check_url``."""
    parts = check_url(url)
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        host = f"[{IPv6Address(host).compressed}]"
    port = parts.port
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def matches_origin(url: str, allowed_origins: Sequence[str]) -> bool:
    """Whether ``url`` is absolute and its scheme, host and port are exactly those of one of
    ``allowed_origins`` (each already in ``origin_of`` form). Anything unparseable or
    ambiguous does not match."""
    try:
        origin = origin_of(url)
    except UnsafeTarget:
        return False
    return origin in allowed_origins


def resolve_safe(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, if all of them are safe
    to connect to; otherwise UnsafeTarget naming the first that is not. Numeric spellings
    (``127.1``, ``0x7f.0.0.1``, ``2130706433``) need no special case: the resolver turns
    them into the address they mean, and the address is what is judged.

    Connect only to the addresses returned: resolving again could give different ones."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not allow_private and _LOOPBACK_NAMES.fullmatch(name.lower().rstrip(".")):
        raise UnsafeTarget(f"{host} is a loopback name")
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnresolvableTarget(host) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnresolvableTarget(host)
    for text in addresses:
        reason = unsafe_reason(ip_address(text.partition("%")[0]), allow_private=allow_private)
        if reason is not None:
            raise UnsafeTarget(f"{host} resolves to {text}, {reason}")
    return addresses


def check_target(url: str, *, allow_private: bool) -> SplitResult:
    """The check when a target URL is saved: ``check_url``, then ``resolve_safe`` on its
    host, so an obviously unsafe URL is refused at once. Where private targets are allowed
    only a literal IP address is judged (a metadata address is still refused) and nothing
    is resolved. Every send checks again, on the addresses it connects to."""
    parts = check_url(url)
    host = parts.hostname or ""
    if not allow_private:
        resolve_safe(host, parts.port or DEFAULT_PORTS[parts.scheme], allow_private=False)
    elif (address := _ip_or_none(host)) is not None and (
            reason := unsafe_reason(address, allow_private=True)) is not None:
        raise UnsafeTarget(f"{host} is {reason}")
    return parts


def check_literal(url: str, *, allow_private: bool) -> SplitResult:
    """The check when a postback URL is given with a request, which must not wait on a
    resolver: ``check_url``, then the host judged only where no resolving is needed — a
    loopback name, or a literal address in any spelling the resolver takes (``127.1``,
    ``0x7f.0.0.1``, ``2130706433``). A name is judged when the postback is sent."""
    parts = check_url(url)
    host = parts.hostname or ""
    if not allow_private and _LOOPBACK_NAMES.fullmatch(host.lower().rstrip(".")):
        raise UnsafeTarget(f"{host} is a loopback name")
    address = _ip_or_none(host) or _ipv4_spelling(host)
    if address is not None and (
            reason := unsafe_reason(address, allow_private=allow_private)) is not None:
        raise UnsafeTarget(f"{host} is {reason}")
    return parts


def _ipv4_spelling(host: str) -> IPv4Address | None:
    """``host`` as the IPv4 address the resolver would read it as (inet_aton's forms)."""
    try:
        return IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def unsafe_reason(address: Address, *, allow_private: bool) -> str | None:
    """Why Billfold must not connect to ``address``, or None if it may."""
    embedded = _embedded_ipv4(address)
    if address in METADATA_ADDRESSES or embedded in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    if embedded is not None:
        # The packets go to the IPv4 address inside, so that is the one to judge. This
        # also keeps IPv4-mapped addresses independent of the Python version's opinion
        # of them (3.11.10 changed it).
        reason = _non_public_reason(embedded)
        return None if reason is None else f"an IPv6 form of {embedded}, {reason}"
    return _non_public_reason(address)


def _non_public_reason(address: Address) -> str | None:
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in SHARED_ADDRESS_SPACE, "in the shared address space 100.64.0.0/10"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a globally routable address"),
    )
    return next((reason for unsafe, reason in checks if unsafe), None)


def _embedded_ipv4(address: Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``) or 6to4 (``2002:ab:cd::``)."""
    if not isinstance(address, IPv6Address) or address.is_loopback or address.is_unspecified:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if int(address) >> 32 == 0 or address in NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def _ip_or_none(text: str) -> Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None
