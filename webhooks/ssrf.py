"""Keep webhook deliveries away from the service's own network (SSRF guard).

A webhook URL is chosen by a customer, so without a guard it is a way to make passgate send
requests to its database, its cloud metadata service or anything else on the private network.
The guard runs twice:

- when an endpoint is created or its URL changed: :meth:`SSRFPolicy.check_url` (shape + DNS);
- on every new connection: :meth:`SSRFPolicy.resolve_checked`, used by the transport's network
  backend, which then connects to the very address it checked. Re-resolving at connect time is
  what defeats DNS rebinding (a name that resolved to a public address at creation and to
  ``10.0.0.1`` later).

Every resolved address must pass; one refused address refuses the whole host, so a name with
mixed public and private records can't be used to race the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

__all__ = [
    "METADATA_ADDRESSES",
    "BlockedAddressError",
    "HostResolutionError",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "SSRFPolicy",
    "UnsafeURLError",
    "WebhookURL",
    "parse_webhook_url",
    "refusal_reason",
    "resolve_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_URL_LENGTH = 2048
DEFAULT_RESOLVE_TIMEOUT = 2.0

# Cloud metadata and host-agent endpoints. Refused even when an allowlist covers them: no
# webhook receiver lives there, and they hand out credentials.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS VPC DNS
        "168.63.129.16",  # Azure wire server (a public-looking address)
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS VPC DNS over IPv6
    )
)

_CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeURLError(ValueError):
    """A webhook URL that passgate refuses to call; ``str(exc)`` is safe to show the user.

    The message never names the resolved address (that would turn the check into a probe of
    internal DNS); ``address`` keeps it for logs.
    """

    def __init__(self, message: str, *, address: IPAddress | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.address = address


class BlockedAddressError(UnsafeURLError):
    """The host is, or resolves to, an address webhooks may not reach."""


class HostResolutionError(UnsafeURLError):
    """The host did not resolve (in time). At creation a refusal; at delivery a DNS failure."""


@dataclass(frozen=True, slots=True)
class WebhookURL:
    """The parts of a webhook URL that the guard needs."""

    url: str
    scheme: str
    host: str
    port: int

    @property
    def host_address(self) -> IPAddress | None:
        """The host as an address when the URL names one literally."""
        return _parse_ip(self.host)


def parse_webhook_url(url: str) -> WebhookURL:
    """Check a URL's shape (no DNS): http(s) only, a host, no credentials.

    Parsed with ``httpx`` so the guard sees the host exactly as the client will.
    """
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURLError("Webhook URL is required.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"Webhook URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise UnsafeURLError("Webhook URL is not a valid URL.") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURLError("Webhook URL must use http or https.")
    if parsed.userinfo:
        raise UnsafeURLError("Webhook URL must not contain a username or password.")
    host = parsed.raw_host.decode("ascii").strip("[]").rstrip(".").lower()
    if not host:
        raise UnsafeURLError("Webhook URL must name a host.")
    # httpx parses any integer as a port (0, -1, 99999): such a URL could never be delivered.
    if parsed.port is not None and not 1 <= parsed.port <= 65_535:
        raise UnsafeURLError("Webhook URL port must be between 1 and 65535.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return WebhookURL(url=str(parsed), scheme=parsed.scheme, host=host, port=port)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is no place for a webhook (``"loopback"``, ...), or ``None`` when public."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "a scoped (link-local) address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # The packet ends up at the IPv4 address, so that is the one to judge.
            return refusal_reason(embedded)
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        # fec0::/10, deprecated (RFC 3879) but still routed inside some networks; Python
        # counts it neither private nor reserved, so is_global alone would let it through.
        (
            isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local,
            "a site-local address",
        ),
        (
            isinstance(ip, ipaddress.IPv4Address) and ip in _CARRIER_GRADE_NAT,
            "a shared (CGNAT) address",
        ),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every A/AAAA address of ``host``, in resolver order, without duplicates.

    The default resolver (``getaddrinfo`` in a thread); the policy bounds it in time. Tests swap
    it for a fake through ``SSRFPolicy(resolver=...)`` instead of touching real DNS.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostResolutionError("Webhook host does not resolve.") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = _parse_ip(str(sockaddr[0]))
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    return addresses


def _parse_networks(cidrs: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        if isinstance(cidr, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(cidr)
            continue
        text = cidr.strip()
        if text:
            # strict=False: "127.0.0.1/8" is a common way to write 127.0.0.0/8.
            networks.append(ipaddress.ip_network(text, strict=False))
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class SSRFPolicy:
    """Which addresses webhooks may reach: public ones, plus ``allowed_networks``.

    Build it from ``PASSGATE_WEBHOOK_ALLOWED_CIDRS`` with :meth:`from_cidrs`; tests allow
    ``127.0.0.0/8`` to reach receivers on the loopback interface.
    """

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT
    resolver: Resolver | None = field(default=None, compare=False)

    @classmethod
    def from_cidrs(
        cls,
        cidrs: Iterable[str | IPNetwork] | str = (),
        *,
        resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
        resolver: Resolver | None = None,
    ) -> SSRFPolicy:
        """Parse CIDRs (an iterable, or one comma-separated string); raises ``ValueError``."""
        items = cidrs.split(",") if isinstance(cidrs, str) else cidrs
        return cls(_parse_networks(items), resolve_timeout, resolver)

    def is_allowlisted(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                candidates.append(embedded)
        return any(
            c.version == net.version and c in net
            for c in candidates
            for net in self.allowed_networks
        )

    def check_address(self, ip: IPAddress) -> None:
        """Raise :class:`BlockedAddressError` unless webhooks may connect to ``ip``."""
        reason = refusal_reason(ip)
        if reason is None:
            return
        if reason != "a cloud metadata address" and self.is_allowlisted(ip):
            return
        raise BlockedAddressError(
            f"Webhook URL points to {reason}, which webhooks may not reach.", address=ip
        )

    async def resolve_checked(
        self, host: str, port: int, *, max_seconds: float | None = None
    ) -> list[IPAddress]:
        """Resolve ``host`` (bounded in time) and check every address; return them all.

        ``max_seconds`` shortens the policy's own limit (the transport passes what is left of its
        connect timeout).
        """
        literal = _parse_ip(host.strip("[]"))
        if literal is not None:
            self.check_address(literal)
            return [literal]
        limit = self.resolve_timeout
        if max_seconds is not None:
            limit = min(limit, max_seconds)
        resolver = self.resolver or resolve_host
        try:
            async with asyncio.timeout(limit):
                addresses = await resolver(host, port)
        except TimeoutError:
            # getaddrinfo's worker thread can't be cancelled; it finishes in the background
            # and its answer is dropped.
            raise HostResolutionError("Webhook host did not resolve in time.") from None
        except (OSError, UnicodeError) as exc:
            raise HostResolutionError("Webhook host does not resolve.") from exc
        if not addresses:
            raise HostResolutionError("Webhook host has no addresses.")
        for ip in addresses:
            self.check_address(ip)
        return addresses

    async def check_url(self, url: str) -> WebhookURL:
        """Full check for endpoint creation or a URL change: shape, DNS, every address.

        Raises :class:`UnsafeURLError` (map it to ``VALIDATION_ERROR``).
        """
        parsed = parse_webhook_url(url)
        await self.resolve_checked(parsed.host, parsed.port)
        return parsed
