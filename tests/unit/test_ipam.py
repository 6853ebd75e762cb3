"""Address allocation and MAC derivation (ipam): pure functions over ipaddress objects."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.cnm.network.plugins.module_utils import ipam
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError

ip = ipaddress.ip_address
net = ipaddress.ip_network

SUBNET = net("172.30.0.0/24")
GATEWAY = ip("172.30.0.1")


def test_allocation_returns_the_lowest_free_address():
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, []) == ip("172.30.0.2")


def test_allocation_skips_network_address_and_gateway():
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, []) not in (ip("172.30.0.0"), GATEWAY)


def test_allocation_skips_a_gateway_placed_inside_the_pool():
    pool = net("172.30.0.8/29")
    assert ipam.allocate(pool, SUBNET, ip("172.30.0.8"), []) == ip("172.30.0.9")
    assert ipam.allocate(pool, SUBNET, ip("172.30.0.9"), []) == ip(
        "172.30.0.8"
    )  # .8 is not the subnet's network address


def test_allocation_skips_gateway_and_broadcast():
    pool = net("172.30.0.252/30")  # .252 .253 .254 .255; .255 is the subnet's broadcast
    assert ipam.allocate(pool, SUBNET, ip("172.30.0.254"), [ip("172.30.0.252")]) == ip("172.30.0.253")
    with pytest.raises(CnmError, match="has no free address left"):
        ipam.allocate(pool, SUBNET, ip("172.30.0.254"), [ip("172.30.0.252"), ip("172.30.0.253")])


def test_allocation_skips_taken_addresses():
    taken = [ip("172.30.0.2"), ip("172.30.0.3"), ip("172.30.0.5")]
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, taken) == ip("172.30.0.4")


def test_allocation_fills_holes_left_by_released_addresses():
    taken = [ip("172.30.0.%d" % n) for n in (3, 4, 5)]
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, taken) == ip("172.30.0.2")


def test_allocation_stays_inside_ip_range():
    pool = net("172.30.0.128/25")
    assert ipam.allocate(pool, SUBNET, GATEWAY, []) == ip("172.30.0.128")


def test_allocation_in_a_slash_30_has_two_hosts_besides_the_gateway_reserved():
    subnet = net("10.0.0.0/30")  # .0 network, .1 gateway, .2 free, .3 broadcast
    assert ipam.allocate(subnet, subnet, ip("10.0.0.1"), []) == ip("10.0.0.2")
    with pytest.raises(CnmError, match="has no free address left"):
        ipam.allocate(subnet, subnet, ip("10.0.0.1"), [ip("10.0.0.2")])


def test_allocation_in_a_slash_31_has_no_broadcast_to_reserve():
    subnet = net("10.0.0.0/31")  # RFC 3021: no broadcast; the network address stays reserved here
    assert ipam.allocate(subnet, subnet, None, []) == ip("10.0.0.1")
    with pytest.raises(CnmError):
        ipam.allocate(subnet, subnet, ip("10.0.0.1"), [])


def test_slash_31_pool_inside_a_larger_subnet_keeps_both_addresses_usable():
    pool = net("172.30.0.8/31")
    assert ipam.allocate(pool, SUBNET, GATEWAY, [ip("172.30.0.8")]) == ip("172.30.0.9")


def test_reserved_addresses_of_a_slash_31_are_the_network_address_and_gateway_only():
    subnet = net("10.0.0.0/31")
    assert ipam.reserved_addresses(subnet, None) == {ip("10.0.0.0")}


def test_reserved_addresses_of_ipv4_are_network_broadcast_and_gateway():
    assert ipam.reserved_addresses(SUBNET, GATEWAY) == {ip("172.30.0.0"), ip("172.30.0.255"), GATEWAY}


def test_reserved_addresses_of_ipv6_have_no_broadcast():
    subnet = net("fd00:30::/64")
    assert ipam.reserved_addresses(subnet, ip("fd00:30::1")) == {ip("fd00:30::"), ip("fd00:30::1")}


def test_allocation_from_an_ipv6_pool_starts_after_the_gateway():
    subnet = net("fd00:30::/64")
    assert ipam.allocate(subnet, subnet, ip("fd00:30::1"), []) == ip("fd00:30::2")
    assert ipam.allocate(subnet, subnet, ip("fd00:30::1"), [ip("fd00:30::2")]) == ip("fd00:30::3")


def test_allocation_from_an_ipv6_pool_can_use_the_last_address():
    subnet = net("fd00:30::/126")
    taken = [ip("fd00:30::2")]
    assert ipam.allocate(subnet, subnet, ip("fd00:30::1"), taken) == ip("fd00:30::3")


def test_exhaustion_error_names_the_option_and_the_pool():
    pool = net("172.30.0.0/30")
    with pytest.raises(CnmError) as raised:
        ipam.allocate(pool, SUBNET, GATEWAY, [ip("172.30.0.2"), ip("172.30.0.3")])
    assert str(raised.value).startswith("option 'ip_range': 172.30.0.0/30 has no free address left")
    assert raised.value.details["option"] == "ip_range"


def test_exhaustion_error_uses_the_option_given_by_the_caller():
    subnet = net("fd00:30::/127")
    with pytest.raises(CnmError, match=r"^option 'ipv6_subnet': fd00:30::/127 "):
        ipam.allocate(subnet, subnet, ip("fd00:30::1"), [], option="ipv6_subnet")


# ---- static addresses ----


def test_static_address_inside_the_subnet_and_free_is_accepted():
    assert ipam.check_static(ip("172.30.0.77"), SUBNET, GATEWAY, {}, "ipv4_address", "netns:a") is None


def test_static_address_outside_the_subnet_is_refused():
    with pytest.raises(CnmError, match=r"^option 'ipv4_address': 10\.9\.9\.9 is outside subnet 172\.30\.0\.0/24$"):
        ipam.check_static(ip("10.9.9.9"), SUBNET, GATEWAY, {}, "ipv4_address", "netns:a")


@pytest.mark.parametrize("address", ["172.30.0.0", "172.30.0.255", "172.30.0.1"])
def test_static_address_that_is_reserved_is_refused(address):
    with pytest.raises(
        CnmError,
        match=r"^option 'ipv4_address': %s is reserved in subnet 172\.30\.0\.0/24" % address.replace(".", r"\."),
    ):
        ipam.check_static(ip(address), SUBNET, GATEWAY, {}, "ipv4_address", "netns:a")


def test_static_address_taken_by_another_endpoint_is_refused_naming_it():
    taken_by = {ip("172.30.0.5"): "netns:b"}
    with pytest.raises(
        CnmError, match=r"^option 'endpoints\[1\]\.ipv4_address': 172\.30\.0\.5 is already taken by endpoint netns:b$"
    ):
        ipam.check_static(ip("172.30.0.5"), SUBNET, GATEWAY, taken_by, "endpoints[1].ipv4_address", "netns:a")


def test_static_address_held_by_the_same_endpoint_is_accepted():
    taken_by = {ip("172.30.0.5"): "netns:a"}
    ipam.check_static(ip("172.30.0.5"), SUBNET, GATEWAY, taken_by, "ipv4_address", "netns:a")


def test_static_address_of_the_wrong_version_is_refused():
    with pytest.raises(
        CnmError, match=r"^option 'ipv4_address': fd00::5 is not an IPv4 address \(subnet 172\.30\.0\.0/24\)$"
    ):
        ipam.check_static(ip("fd00::5"), SUBNET, GATEWAY, {}, "ipv4_address", "netns:a")
    with pytest.raises(CnmError, match=r"^option 'ipv6_address': 172\.30\.0\.5 is not an IPv6 address"):
        ipam.check_static(ip("172.30.0.5"), net("fd00::/64"), ip("fd00::1"), {}, "ipv6_address", "netns:a")


# ---- MACs ----


def test_mac_from_ipv4_is_dockers_02_42_followed_by_the_address_bytes():
    assert ipam.mac_from_ipv4(ip("172.30.0.2")) == "02:42:ac:1e:00:02"
    assert ipam.mac_from_ipv4(ip("10.255.0.16")) == "02:42:0a:ff:00:10"


def test_mac_from_name_is_stable_and_differs_between_names():
    assert ipam.mac_from_name("bridge:web") == ipam.mac_from_name("bridge:web")
    assert ipam.mac_from_name("bridge:web") != ipam.mac_from_name("bridge:db")


@pytest.mark.parametrize("name", ["bridge:web", "x", "", "netns:a|web"])
def test_mac_from_name_is_a_locally_administered_unicast_address(name):
    mac = ipam.mac_from_name(name)
    first = int(mac[:2], 16)
    assert len(mac.split(":")) == 6 and all(len(part) == 2 for part in mac.split(":"))
    assert mac == mac.lower()
    assert first & 0x01 == 0  # unicast
    assert first & 0x02 == 0x02  # locally administered


def test_allocation_starts_at_the_floor_given_and_takes_any_container():
    """A run allocating many addresses starts each walk where the last one ended (EndpointPlanner's floor)."""
    taken = {ip("172.30.0.2"): "netns:a", ip("172.30.0.3"): "netns:b"}
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, taken) == ip("172.30.0.4")
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, taken, start=int(ip("172.30.0.9"))) == ip("172.30.0.9")
    assert ipam.allocate(SUBNET, SUBNET, GATEWAY, taken, start=0) == ip("172.30.0.4")  # below the pool: its start


def test_a_full_pool_counts_its_addresses_in_use():
    pool = ipaddress.ip_network("172.30.0.252/30")
    with pytest.raises(CnmError, match=r"has no free address left \(4 in use\)"):
        ipam.allocate(pool, SUBNET, ip("172.30.0.254"), [ip("172.30.0.252"), ip("172.30.0.253")])
