"""The internal-address policy as pure logic (the HTTP tests prove it on real sockets)."""

import asyncio
import ipaddress

import pytest

from newsradar.netguard import AddressPolicy, ForbiddenAddress, GuardedResolver, is_forbidden, literal_ip

FORBIDDEN = [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1", "100.127.255.254",  # CGNAT
    "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "198.18.0.1",
    "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1",  # NAT64 wrapping internal / local-use NAT64
    "2002:7f00:1::1", "2002:c0a8:101::1",  # 6to4 of 127.0.0.1 / 192.168.1.1
    "::127.0.0.1",  # IPv4-compatible
    "2001:db8::1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8",
           "2002:808:808::1", "100.128.0.1", "172.32.0.1"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_internal_addresses_are_forbidden(address):
    assert is_forbidden(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert not is_forbidden(address)


@pytest.mark.parametrize(
    "host, expected",
    [
        ("2130706433", "127.0.0.1"),  # decimal
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0x7f.0.0.1", "127.0.0.1"),  # hex
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # short form
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("169.254.169.254.", "169.254.169.254"),
        ("example.org", None),
        ("deadbeef.example", None),
        ("1.2.3.4.5", None),
    ],
)
def test_literal_ip_reads_every_spelling(host, expected):
    got = literal_ip(host)
    assert (str(got) if got is not None else None) == (str(ipaddress.ip_address(expected)) if expected else None)


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/", "http://0177.0.0.1:8080/feed", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b::a00:1]/", "http://１２７.０.０.１/", "http://169.254.169.254/latest/meta-data/",
        "http://[::]/", "http://100.64.0.1/",
    ],
)
def test_check_url_refuses_literal_internal_addresses(url):
    with pytest.raises(ForbiddenAddress, match="internal address"):
        AddressPolicy().check_url(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://example.org/", "http:///x"])
def test_check_url_refuses_other_schemes_and_hostless(url):
    with pytest.raises(ForbiddenAddress):
        AddressPolicy().check_url(url)


def test_allow_private_networks_and_exact_exemptions():
    AddressPolicy(allow_private_networks=True).check_url("http://127.0.0.1:8080/")
    policy = AddressPolicy.exempting([("127.0.0.1", 8080)])
    policy.check_url("http://127.0.0.1:8080/feed")
    with pytest.raises(ForbiddenAddress):
        policy.check_url("http://127.0.0.1:8081/feed")  # same host, other port
    with pytest.raises(ForbiddenAddress):
        policy.check_url("http://2130706433:8081/")


def test_resolver_refuses_a_name_that_resolves_inside():
    async def resolve(host):
        return await GuardedResolver(AddressPolicy()).resolve(host, 80)

    with pytest.raises(ForbiddenAddress, match="localhost"):
        asyncio.run(resolve("localhost"))
    # A legacy spelling that reaches the resolver as a "name" is judged as the address it is.
    with pytest.raises(ForbiddenAddress):
        asyncio.run(resolve("2130706433"))
