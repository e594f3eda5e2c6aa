"""SSRF guard: checks only; nothing here opens a connection."""

from __future__ import annotations

import ipaddress
import time

import pytest

from tests.webhooks_lib.fakes import LOOPBACK_CIDRS, FakeResolver
from webhooks.ssrf import (
    BlockedAddressError,
    HostResolutionError,
    SSRFPolicy,
    UnsafeURLError,
    parse_webhook_url,
    refusal_reason,
)


@pytest.fixture
def strict_policy() -> SSRFPolicy:
    """Production defaults: no allowlist."""
    return SSRFPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.8.9.10:8080/hook",
        "http://10.0.0.1/hook",
        "https://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private address
        "http://[::ffff:7f00:1]/hook",  # IPv4-mapped loopback, hex form
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata address
        "http://[2002:c0a8:0101::1]/hook",  # 6to4 of 192.168.1.1
        "http://[fd00:ec2::254]/hook",
        "http://[fe80::1]/hook",
        "http://100.64.0.1/hook",  # carrier-grade NAT
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        "http://224.0.0.1/hook",
        "http://[ff02::1]/hook",
        "http://240.0.0.1/hook",
        "http://192.0.0.192/hook",  # Oracle Cloud metadata
    ],
)
async def test_internal_addresses_are_refused_without_an_allowlist(
    strict_policy: SSRFPolicy, url: str
) -> None:
    with pytest.raises(BlockedAddressError):
        await strict_policy.check_url(url)


@pytest.mark.parametrize("address", ["fec0::1", "fec0:0:0:1::a", "feff:ffff::1"])
async def test_deprecated_site_local_ipv6_addresses_are_refused(
    strict_policy: SSRFPolicy, address: str
) -> None:
    # fec0::/10 (RFC 3879): Python counts it global, yet some networks still route it inside.
    assert refusal_reason(ipaddress.ip_address(address)) == "a site-local address"
    with pytest.raises(BlockedAddressError):
        await strict_policy.check_url(f"http://[{address}]/hook")


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://017700000001/"]
)
async def test_numeric_spellings_of_loopback_are_refused(
    strict_policy: SSRFPolicy, url: str
) -> None:
    # getaddrinfo turns these into 127.0.0.1 (locally, no DNS); the check sees that answer
    with pytest.raises(UnsafeURLError):
        await strict_policy.check_url(url)


async def test_a_hostname_resolving_to_loopback_is_refused(strict_policy: SSRFPolicy) -> None:
    # Given localhost (resolved through /etc/hosts, no network) and no allowlist
    with pytest.raises(BlockedAddressError, match="loopback"):
        await strict_policy.check_url("http://localhost:8080/hook")


async def test_a_hostname_resolving_to_a_private_address_is_refused() -> None:
    resolver = FakeResolver({"hooks.corp.test": [["10.1.2.3"]]})
    policy = SSRFPolicy(resolver=resolver)

    with pytest.raises(BlockedAddressError, match="private"):
        await policy.check_url("https://hooks.corp.test/hook")
    assert resolver.calls == ["hooks.corp.test"]


async def test_one_private_record_among_public_ones_refuses_the_host() -> None:
    resolver = FakeResolver({"mixed.test": [["93.184.216.34", "10.0.0.1"]]})
    policy = SSRFPolicy(resolver=resolver)

    with pytest.raises(BlockedAddressError):
        await policy.check_url("https://mixed.test/hook")


async def test_a_public_hostname_passes() -> None:
    policy = SSRFPolicy(resolver=FakeResolver({"hooks.example.test": [["93.184.216.34"]]}))

    parsed = await policy.check_url("https://Hooks.Example.Test/in?x=1")

    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "hooks.example.test", 443)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("http://user:pass@example.com/hook", "username or password"),
        ("https://token@example.com/hook", "username or password"),
        ("http:///hook", "host"),
        ("", "required"),
        ("http://example.com/" + "a" * 3000, "longer"),
        ("http://example.com:99999/hook", "port"),
        ("http://example.com:0/hook", "port"),
        ("https://example.com:-1/hook", "port"),
    ],
)
async def test_malformed_urls_are_refused_before_any_lookup(url: str, message: str) -> None:
    resolver = FakeResolver()
    policy = SSRFPolicy(resolver=resolver)

    with pytest.raises(UnsafeURLError, match=message):
        await policy.check_url(url)
    assert resolver.calls == []


async def test_the_allowlist_admits_loopback_receivers() -> None:
    policy = SSRFPolicy.from_cidrs(LOOPBACK_CIDRS)

    assert (await policy.check_url("http://127.0.0.1:9000/hook")).port == 9000
    assert (await policy.check_url("http://localhost:9000/hook")).host == "localhost"
    assert await policy.check_url("http://[::ffff:127.0.0.1]:9000/hook")


async def test_the_allowlist_admits_nothing_beyond_its_networks() -> None:
    policy = SSRFPolicy.from_cidrs("127.0.0.0/8")

    with pytest.raises(BlockedAddressError):
        await policy.check_url("http://10.0.0.1/hook")


async def test_metadata_addresses_stay_refused_even_inside_an_allowlisted_network() -> None:
    policy = SSRFPolicy.from_cidrs(["169.254.0.0/16", "fd00::/8"])

    assert await policy.check_url("http://169.254.1.1/hook")
    with pytest.raises(BlockedAddressError, match="metadata"):
        await policy.check_url("http://169.254.169.254/hook")
    with pytest.raises(BlockedAddressError, match="metadata"):
        await policy.check_url("http://[fd00:ec2::254]/hook")


async def test_the_refusal_message_does_not_reveal_the_resolved_address() -> None:
    policy = SSRFPolicy(resolver=FakeResolver({"db.internal.test": [["10.9.8.7"]]}))

    with pytest.raises(BlockedAddressError) as excinfo:
        await policy.check_url("http://db.internal.test/hook")

    assert "10.9.8.7" not in str(excinfo.value)
    assert excinfo.value.address == ipaddress.ip_address("10.9.8.7")


async def test_an_unresolvable_host_is_refused() -> None:
    policy = SSRFPolicy(resolver=FakeResolver())

    with pytest.raises(HostResolutionError, match="does not resolve"):
        await policy.check_url("https://nowhere.test/hook")


async def test_a_slow_resolver_is_cut_off() -> None:
    policy = SSRFPolicy(
        resolver=FakeResolver({"slow.test": [["93.184.216.34"]]}, delay=5), resolve_timeout=0.1
    )

    started = time.monotonic()
    with pytest.raises(HostResolutionError, match="in time"):
        await policy.check_url("https://slow.test/hook")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_have_no_refusal_reason(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_cidrs_parse_from_a_comma_separated_setting() -> None:
    policy = SSRFPolicy.from_cidrs(" 127.0.0.0/8, ::1/128 ,")

    assert [str(n) for n in policy.allowed_networks] == ["127.0.0.0/8", "::1/128"]


def test_an_invalid_cidr_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        SSRFPolicy.from_cidrs(["not-a-network"])


def test_the_url_is_parsed_like_the_http_client_does() -> None:
    parsed = parse_webhook_url("HTTPS://[2606:4700::1111]:8443/a")

    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "2606:4700::1111", 8443)
    assert parsed.host_address == ipaddress.ip_address("2606:4700::1111")
