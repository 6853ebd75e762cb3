"""Unit tests: the overlay filters (plugins/filter/overlay.py), the inventory arithmetic of a multi-host overlay."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random

import pytest
from ansible.errors import AnsibleFilterError
from conftest import load_filter

overlay = load_filter("overlay")
FilterModule = overlay.FilterModule
mac_from_ip = overlay.mac_from_ip
overlay_peers = overlay.overlay_peers
overlay_slice = overlay.overlay_slice
overlay_slices = overlay.overlay_slices
vtep_address = overlay.vtep_address

SUBNET = "10.200.0.0/24"  # default prefix: /28 slices, slice 0 kept back, 15 slots
SLOTS = 15


def home_slot(name: str, slots: int = SLOTS) -> int:
    """The documented rule: SHA-256 of the host name, as an integer, modulo slots, counted from slice 1."""
    return 1 + int.from_bytes(hashlib.sha256(name.encode()).digest(), "big") % slots


def slice_index(cidr: str, subnet: str = SUBNET) -> int:
    network = ipaddress.ip_network(subnet)
    piece = ipaddress.ip_network(cidr)
    return (int(piece.network_address) - int(network.network_address)) // piece.num_addresses


def colliding_pair(slots: int = SLOTS, home: int | None = None) -> tuple[str, str]:
    """Two host names with the same home slot (the one with the lower hash first)."""
    by_home: dict[int, str] = {}
    for number in range(10000):
        name = "node%d" % number
        slot = home_slot(name, slots)
        if home is not None and slot != home:
            continue
        if slot in by_home:
            pair = sorted([by_home[slot], name], key=lambda host: hashlib.sha256(host.encode()).digest())
            return pair[0], pair[1]
        by_home[slot] = name
    raise AssertionError("no colliding names found")


def random_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "h-%08x" % rng.getrandbits(32)
        if name not in names:
            names.append(name)
    return names


# --- mac_from_ip -------------------------------------------------------------------------------------


def test_mac_from_ip_is_02_42_followed_by_the_four_address_bytes():
    assert mac_from_ip("10.200.2.10") == "02:42:0a:c8:02:0a"
    assert mac_from_ip("172.17.0.2") == "02:42:ac:11:00:02"
    assert mac_from_ip("255.255.255.254") == "02:42:ff:ff:ff:fe"


def test_mac_from_ip_drops_a_prefix_length_and_accepts_address_objects():
    assert mac_from_ip("10.200.2.10/16") == "02:42:0a:c8:02:0a"
    assert mac_from_ip(ipaddress.IPv4Address("10.200.2.10")) == "02:42:0a:c8:02:0a"


@pytest.mark.parametrize(
    "value, words",
    [
        ("2001:db8::1", ["2001:db8::1", "IPv6"]),
        ("10.200.2.300", ["10.200.2.300", "not an IPv4 address"]),
        ("web1", ["web1", "not an IPv4 address"]),
        ("", ["not an IPv4 address"]),
        (None, ["None", "not an IPv4 address"]),
        (167772161, ["167772161", "not an IPv4 address"]),
    ],
)
def test_mac_from_ip_refuses_what_is_not_an_ipv4_address_naming_the_value(value, words):
    with pytest.raises(AnsibleFilterError) as error:
        mac_from_ip(value)
    assert "cnm.network.mac_from_ip" in str(error.value)
    for word in words:
        assert word in str(error.value)


# --- overlay_slice: placement --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subnet, count, prefix",
    [
        ("10.200.0.0/24", 15, None),
        ("10.200.0.0/16", 10, None),
        ("10.200.0.0/16", 200, 24),
        ("172.30.0.0/20", 7, "/25"),
        ("fd00:200::/64", 15, None),
    ],
)
def test_slices_lie_inside_the_subnet_and_never_overlap(subnet, count, prefix):
    hosts = ["node%d" % number for number in range(1, count + 1)]
    network = ipaddress.ip_network(subnet)

    slices = overlay_slices(subnet, hosts, prefix=prefix)

    assert sorted(slices) == sorted(hosts)
    pieces = [ipaddress.ip_network(cidr) for cidr in slices.values()]
    assert all(piece.subnet_of(network) for piece in pieces)
    assert len(set(pieces)) == len(pieces)
    for first in pieces:
        for second in pieces:
            assert first is second or not first.overlaps(second)


def test_first_slice_with_network_address_and_gateway_is_never_handed_out():
    hosts = ["node%d" % number for number in range(1, SLOTS + 1)]  # every slot taken

    slices = overlay_slices(SUBNET, hosts)

    assert sorted(slice_index(cidr) for cidr in slices.values()) == list(range(1, 16))
    gateway = ipaddress.ip_address("10.200.0.1")
    assert not any(gateway in ipaddress.ip_network(cidr) for cidr in slices.values())


@pytest.mark.parametrize(
    "subnet, expected_prefix",
    [
        ("10.200.0.0/16", 20),
        ("10.200.0.0/24", 28),
        ("10.200.0.0/26", 28),
        ("10.0.0.0/8", 12),
        ("fd00:200::/64", 68),
        ("fd00:200::/120", 124),
    ],
)
def test_default_prefix_is_four_bits_longer_but_leaves_at_least_16_addresses(subnet, expected_prefix):
    cidr = overlay_slice(subnet, "node1", ["node1"])

    assert ipaddress.ip_network(cidr).prefixlen == expected_prefix


def test_slice_is_the_same_whatever_the_order_of_hosts():
    hosts = ["node%d" % number for number in range(1, 13)]
    expected = overlay_slices(SUBNET, hosts)
    rng = random.Random(4)

    for _round in range(5):
        shuffled = hosts[:]
        rng.shuffle(shuffled)
        assert overlay_slices(SUBNET, shuffled) == expected
        assert {host: overlay_slice(SUBNET, host, shuffled) for host in hosts} == expected


def test_overlay_slice_of_each_host_is_its_entry_in_overlay_slices():
    hosts = ["node%d" % number for number in range(1, 11)]

    slices = overlay_slices("10.200.0.0/16", hosts, 24)

    for host in hosts:
        assert overlay_slice("10.200.0.0/16", host, hosts, 24) == slices[host]


def test_newcomer_that_sorts_first_moves_no_one():
    # With slices handed out by position in the sorted list, "aaa..." would shift every other host by one.
    hosts = ["node%d" % number for number in range(1, 6)]
    before = overlay_slices(SUBNET, hosts)
    taken = {slice_index(cidr) for cidr in before.values()}
    newcomer = next("aaa%d" % number for number in range(1000) if home_slot("aaa%d" % number) not in taken)

    after = overlay_slices(SUBNET, [newcomer] + hosts)

    assert {host: after[host] for host in hosts} == before
    assert slice_index(after[newcomer]) == home_slot(newcomer)


# --- overlay_slice: stability ------------------------------------------------------------------------


def test_three_hosts_keep_their_slices_when_seven_more_join():
    first = ["host1", "host2", "host3"]
    joined = first + ["host%d" % number for number in range(4, 11)]
    before = overlay_slices(SUBNET, first)

    after = overlay_slices(SUBNET, joined)

    assert {host: after[host] for host in first} == before
    # the ten hosts did collide (two home slots are shared): the resolution was exercised
    assert len({home_slot(host) for host in joined}) < len(joined)


def test_hosts_keep_their_slices_when_one_leaves():
    hosts = ["host%d" % number for number in range(1, 11)]
    before = overlay_slices(SUBNET, hosts)
    remaining = [host for host in hosts if host != "host2"]

    after = overlay_slices(SUBNET, remaining)

    assert after == {host: before[host] for host in remaining}


def test_only_hosts_that_lost_a_collision_may_move_when_a_host_leaves():
    hosts = ["host%d" % number for number in range(1, 11)]
    before = overlay_slices(SUBNET, hosts)

    for leaving in hosts:
        remaining = [host for host in hosts if host != leaving]
        after = overlay_slices(SUBNET, remaining)
        moved = [host for host in remaining if after[host] != before[host]]
        assert all(slice_index(before[host]) != home_slot(host) for host in moved)


def test_host_in_its_home_slot_moves_only_for_a_newcomer_with_the_same_home_and_a_lower_hash():
    rng = random.Random(20260)
    for _trial in range(300):
        names = random_names(rng, rng.randint(1, 12))
        group, newcomer = names[:-1] or names, names[-1]
        if newcomer in group:
            continue
        before = overlay_slices(SUBNET, group)

        after = overlay_slices(SUBNET, group + [newcomer])

        for host in group:
            if slice_index(before[host]) != home_slot(host) or after[host] == before[host]:
                continue
            assert home_slot(newcomer) == home_slot(host)
            assert hashlib.sha256(newcomer.encode()).digest() < hashlib.sha256(host.encode()).digest()


def test_host_in_its_home_slot_never_moves_when_a_host_leaves():
    rng = random.Random(4789)
    for _trial in range(300):
        group = random_names(rng, rng.randint(2, 15))
        leaving = rng.choice(group)
        before = overlay_slices(SUBNET, group)

        after = overlay_slices(SUBNET, [host for host in group if host != leaving])

        for host in group:
            if host != leaving and slice_index(before[host]) == home_slot(host):
                assert after[host] == before[host]


def test_pinned_slices_never_move_whoever_joins_or_leaves():
    pinned = {"db1": 3, "db2": 7}
    rng = random.Random(7)
    for _trial in range(50):
        others = random_names(rng, rng.randint(0, 13))
        hosts = dict(pinned, **{name: None for name in others})

        slices = overlay_slices(SUBNET, hosts)

        assert slices["db1"] == "10.200.0.48/28"
        assert slices["db2"] == "10.200.0.112/28"
        assert all(slice_index(slices[name]) not in (0, 3, 7) for name in others)


# --- overlay_slice: collisions ----------------------------------------------------------------------


def test_collision_goes_to_the_lower_hash_and_the_other_host_takes_the_next_slot():
    winner, loser = colliding_pair(home=5)

    for hosts in ([winner, loser], [loser, winner]):
        slices = overlay_slices(SUBNET, hosts)
        assert slice_index(slices[winner]) == 5
        assert slice_index(slices[loser]) == 6


def test_collision_at_the_last_slot_wraps_around_to_slot_one():
    winner, loser = colliding_pair(home=SLOTS)

    slices = overlay_slices(SUBNET, [loser, winner])

    assert slice_index(slices[winner]) == SLOTS
    assert slice_index(slices[loser]) == 1


def test_collision_loser_goes_past_slots_already_given_in_earlier_rounds():
    winner, loser = colliding_pair(home=5)
    # a third host whose home is the loser's next slot keeps it: it got it in round 0, before the loser asked
    third = next("x%d" % number for number in range(10000) if home_slot("x%d" % number) == 6)

    slices = overlay_slices(SUBNET, [winner, loser, third])

    assert [slice_index(slices[host]) for host in (winner, third, loser)] == [5, 6, 7]


def test_collisions_are_resolved_the_same_way_every_time():
    hosts = ["node%d" % number for number in range(1, 16)]

    results = {tuple(sorted(overlay_slices(SUBNET, hosts).items())) for _run in range(3)}

    assert len(results) == 1


def test_without_hosts_a_host_gets_its_home_slice():
    assert slice_index(overlay_slice(SUBNET, "node7")) == home_slot("node7")


# --- overlay_slice: options and refusals -------------------------------------------------------------


def test_slots_keeps_hash_placement_to_the_first_slices():
    hosts = ["node%d" % number for number in range(1, 6)]

    slices = overlay_slices("10.200.0.0/16", hosts, prefix=24, slots=8)

    assert all(1 <= slice_index(cidr, "10.200.0.0/16") <= 8 for cidr in slices.values())


def test_pinned_and_hashed_hosts_share_the_subnet():
    slices = overlay_slices(SUBNET, {"node1": 1, "node2": 2, "node3": None, "node4": None})

    assert slices["node1"] == "10.200.0.16/28"
    assert slices["node2"] == "10.200.0.32/28"
    assert {slice_index(slices["node3"]), slice_index(slices["node4"])}.isdisjoint({0, 1, 2})


def test_more_hosts_than_slots_of_a_given_prefix_is_refused():
    hosts = ["node%d" % number for number in range(1, 17)]

    with pytest.raises(AnsibleFilterError) as error:
        overlay_slice(SUBNET, "node1", hosts, prefix=28)

    assert "16 hosts need a slice but only 15 of the 15 slots are free" in str(error.value)
    assert "slices of /28 in 10.200.0.0/24" in str(error.value)


def test_more_hashed_hosts_than_slots_left_by_pinned_ones_is_refused():
    hosts = dict({"node%d" % number: None for number in range(1, 15)}, db1=4)
    hosts["db2"] = 9

    with pytest.raises(AnsibleFilterError, match="14 hosts need a slice but only 13 of the 15 slots are free"):
        overlay_slices(SUBNET, hosts, prefix=28)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subnet": "10.200.0.0/33"}, "subnet '10.200.0.0/33' is not a network"),
        ({"subnet": "10.200.0.1/24"}, "has host bits set"),
        ({"subnet": ["10.200.0.0/24"]}, "is not a network in CIDR notation"),
        ({"subnet": "10.200.0.0/31", "hosts": ["node1", "node2"]}, "subnet 10.200.0.0/31 cannot hold 2 host(s)"),
        ({"subnet": "10.200.0.7/32", "hosts": ["node1"]}, "subnet 10.200.0.7/32 cannot hold 1 host(s)"),
        ({"prefix": 24}, "prefix /24 must be longer than the subnet's /24"),
        ({"prefix": 33}, "prefix /33 must be longer than the subnet's /24 and at most /32"),
        ({"prefix": "big"}, "prefix 'big' is not an integer"),
        ({"slots": 0}, "slots 0 must be within 1..15"),
        ({"slots": 16}, "slots 16 must be within 1..15"),
        ({"host": "node9"}, "host node9 is not in hosts"),
        ({"host": ""}, "host '' is not a host name"),
        ({"hosts": "node1"}, "hosts must be a list of host names or a dict"),
        ({"hosts": ["node1", 7]}, "host name 7 is not a non-empty string"),
        (
            {"hosts": {"node1": 0}},
            "index 0 of host node1 is outside 1..15 (slice 0 holds the network and gateway addresses)",
        ),
        ({"hosts": {"node1": 16}}, "index 16 of host node1 is outside 1..15"),
        ({"hosts": {"node1": "2"}}, "index '2' of host node1 is not an integer"),
        ({"hosts": {"node1": 2, "node2": 2}}, "hosts node1 and node2 both ask for slice index 2"),
    ],
)
def test_bad_slice_inputs_are_refused_with_a_clear_message(kwargs, message):
    args = {"subnet": SUBNET, "host": "node1", "hosts": ["node1", "node2"]}
    args.update(kwargs)

    with pytest.raises(AnsibleFilterError) as error:
        overlay_slice(args.pop("subnet"), args.pop("host"), **args)

    assert str(error.value).startswith("cnm.network.overlay_slice: ")
    assert message in str(error.value)


@pytest.mark.parametrize(
    "subnet, count, prefix",
    [
        ("10.200.0.0/16", 1, 20),
        ("10.200.0.0/16", 15, 20),  # up to 15 hosts: subnet prefix + 4, as always
        ("10.200.0.0/16", 16, 21),
        ("10.200.0.0/16", 31, 21),
        ("10.200.0.0/16", 32, 22),
        ("10.200.0.0/16", 50, 22),
        ("10.200.0.0/16", 1000, 26),
        ("10.200.0.0/24", 3, 28),  # never slices of fewer than 16 addresses while the group fits in them
        ("10.200.0.0/24", 16, 29),  # ... but the group decides when it does not
        ("10.200.0.0/24", 255, 32),  # one address each: the most a /24 can hold
        ("10.200.0.0/29", 1, 30),
        ("fd00:200::/64", 100, 71),
    ],
)
def test_default_prefix_grows_with_the_group(subnet, count, prefix):
    hosts = ["node%d" % number for number in range(count)]

    slices = overlay_slices(subnet, hosts)

    assert {ipaddress.ip_network(cidr).prefixlen for cidr in slices.values()} == {prefix}
    network = ipaddress.ip_network(subnet)
    assert all(ipaddress.ip_network(cidr).subnet_of(network) for cidr in slices.values())
    assert len(set(slices.values())) == count
    assert str(next(network.subnets(new_prefix=prefix))) not in slices.values()  # slice 0 is never handed out


def test_a_group_too_large_for_the_subnet_is_refused_naming_the_numbers():
    with pytest.raises(AnsibleFilterError) as error:
        overlay_slices("10.200.0.0/24", ["node%d" % number for number in range(256)])

    assert "subnet 10.200.0.0/24 cannot hold 256 host(s): it has 256 addresses" in str(error.value)


def test_hosts_keep_their_slices_while_the_group_grows_within_its_size_class():
    group = ["node%d" % number for number in range(16)]
    newcomers = ["node%d" % number for number in range(16, 31)]
    before = overlay_slices("10.200.0.0/16", group)
    after = overlay_slices("10.200.0.0/16", group + newcomers)

    def digest(name):
        return hashlib.sha256(name.encode()).digest()

    at_home = [name for name in group if slice_index(before[name], "10.200.0.0/16") == home_slot(name, 31)]
    # a host in its home slot keeps it unless a newcomer with the same home slot and a lower hash arrives
    safe = [
        name
        for name in at_home
        if not any(home_slot(new, 31) == home_slot(name, 31) and digest(new) < digest(name) for new in newcomers)
    ]
    assert len(safe) >= 8
    assert all(after[name] == before[name] for name in safe)
    assert all(cidr.endswith("/21") for cidr in after.values())


def test_overlay_slices_needs_hosts():
    with pytest.raises(AnsibleFilterError, match="hosts is required"):
        overlay_slices(SUBNET, None)


# --- vtep_address ----------------------------------------------------------------------------------


def test_vtep_address_is_the_hosts_underlay_address():
    assert vtep_address({"inventory_hostname": "node1", "cnm_underlay_ip": "192.0.2.11"}) == "192.0.2.11"
    assert vtep_address({"inventory_hostname": "node1", "cnm_underlay_ip": " 192.0.2.11/24 "}) == "192.0.2.11"
    assert vtep_address({"inventory_hostname": "node1", "vxlan_ip": "198.51.100.7"}, "vxlan_ip") == "198.51.100.7"


@pytest.mark.parametrize(
    "host_vars, message",
    [
        ({"inventory_hostname": "node2"}, "host node2 has no cnm_underlay_ip (its VTEP address on the underlay)"),
        ({"inventory_hostname": "node2", "cnm_underlay_ip": ""}, "host node2 has no cnm_underlay_ip"),
        (
            {"inventory_hostname": "node2", "cnm_underlay_ip": "2001:db8::2"},
            "host node2: cnm_underlay_ip 2001:db8::2 is an IPv6 address",
        ),
        (
            {"inventory_hostname": "node2", "cnm_underlay_ip": "192.0.2.300"},
            "host node2: cnm_underlay_ip '192.0.2.300' is not an IPv4 address",
        ),
        (
            {"inventory_hostname": "node2", "cnm_underlay_ip": "127.0.0.1"},
            "host node2: cnm_underlay_ip 127.0.0.1 cannot be a VTEP address",
        ),
        ({"inventory_hostname": "node2", "cnm_underlay_ip": "239.1.1.1"}, "cannot be a VTEP address"),
        ({"inventory_hostname": "node2", "cnm_underlay_ip": "0.0.0.0"}, "cannot be a VTEP address"),
        ({"cnm_underlay_ip": "no"}, "host (unnamed host): cnm_underlay_ip 'no' is not an IPv4 address"),
        ("192.0.2.11", "input must be one host's variables"),
    ],
)
def test_vtep_address_refuses_missing_or_invalid_addresses_naming_the_host(host_vars, message):
    with pytest.raises(AnsibleFilterError) as error:
        vtep_address(host_vars)

    assert str(error.value).startswith("cnm.network.vtep_address: ")
    assert message in str(error.value)


# --- overlay_peers ---------------------------------------------------------------------------------


def lab_hosts() -> dict:
    return {
        "node1": {
            "inventory_hostname": "node1",
            "cnm_underlay_ip": "192.0.2.11",
            "cnm_overlay_endpoints": [{"ip": "10.200.1.10"}],
        },
        "node2": {
            "inventory_hostname": "node2",
            "cnm_underlay_ip": "192.0.2.12",
            "cnm_overlay_endpoints": [{"ip": "10.200.2.10"}],
        },
        "node3": {"inventory_hostname": "node3", "cnm_underlay_ip": "192.0.2.13"},
    }


def test_peers_are_the_other_hosts_in_cnm_overlay_shape():
    peers = overlay_peers(lab_hosts(), "node1")

    assert peers == [
        {"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a"}]},
        {"vtep": "192.0.2.13", "endpoints": []},
    ]


def test_peers_carry_the_endpoints_dns_names_when_they_have_some():
    hosts = lab_hosts()
    hosts["node2"]["cnm_overlay_endpoints"] = [
        {"ipv4_address": "10.200.2.10", "name": "api", "aliases": ["backend"], "netns": "n2"},
        {"ipv4_address": "10.200.2.11", "name": None, "aliases": []},
    ]

    assert overlay_peers(hosts, "node1")[0]["endpoints"] == [
        {"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a", "name": "api", "aliases": ["backend"]},
        {"ip": "10.200.2.11", "mac": "02:42:0a:c8:02:0b"},
    ]


def test_peers_exclude_the_host_itself():
    hosts = lab_hosts()

    for name, host_vars in hosts.items():
        vteps = [peer["vtep"] for peer in overlay_peers(hosts, name)]
        assert host_vars["cnm_underlay_ip"] not in vteps
        assert len(vteps) == 2


def test_peers_are_sorted_by_vtep_address_numerically():
    hosts = {
        "a": {"cnm_underlay_ip": "192.0.2.100"},
        "b": {"cnm_underlay_ip": "192.0.2.9"},
        "c": {"cnm_underlay_ip": "10.0.0.1"},
        "d": {"cnm_underlay_ip": "192.0.2.12"},
        "e": {"cnm_underlay_ip": "198.51.100.1"},
    }

    peers = overlay_peers(hosts, "e")

    assert [peer["vtep"] for peer in peers] == ["10.0.0.1", "192.0.2.9", "192.0.2.12", "192.0.2.100"]


def test_endpoints_are_sorted_by_address_and_macs_derived_or_kept_in_lower_case():
    hosts = lab_hosts()
    hosts["node2"]["cnm_overlay_endpoints"] = [
        "10.200.2.100",
        {"ip": "10.200.2.9/16", "mac": "02:AA:BB:CC:DD:EE"},
        {"ip": "10.200.2.10", "mac": "02-00-00-00-02-10"},
    ]

    peers = overlay_peers(hosts, "node1")

    assert peers[0]["endpoints"] == [
        {"ip": "10.200.2.9", "mac": "02:aa:bb:cc:dd:ee"},
        {"ip": "10.200.2.10", "mac": "02:00:00:00:02:10"},
        {"ip": "10.200.2.100", "mac": "02:42:0a:c8:02:64"},
    ]


def test_cnm_endpoint_results_can_be_the_endpoints():
    hosts = lab_hosts()
    hosts["node2"]["cnm_overlay_endpoints"] = [
        {
            "network": "overlay0",
            "netns": "web1",
            "ifname": "eth0",
            "ipv4_address": "10.200.2.10",
            "mac_address": "02:42:0a:c8:02:0a",
        },
        {"network": "overlay0", "netns": "web2", "ipv4_address": "10.200.2.11"},
        {"network": "overlay0", "netns": "old", "ipv4_address": "10.200.2.12", "state": "absent"},
    ]

    peers = overlay_peers(hosts, "node1")

    assert peers[0]["endpoints"] == [
        {"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a"},
        {"ip": "10.200.2.11", "mac": "02:42:0a:c8:02:0b"},
    ]


def test_a_list_of_hostvars_gives_the_same_peers_as_a_dict():
    hosts = lab_hosts()

    assert overlay_peers(list(hosts.values()), "node2") == overlay_peers(hosts, "node2")


def test_generators_from_jinja_map_and_select_are_lists_of_hosts():
    hosts = lab_hosts()

    peers = overlay_peers((host_vars for host_vars in hosts.values()), "node2", hosts=(name for name in hosts))

    assert peers == overlay_peers(hosts, "node2")
    assert overlay_slice(SUBNET, "node1", (name for name in hosts)) == overlay_slice(SUBNET, "node1", list(hosts))


def test_hosts_picks_the_group_out_of_all_hostvars():
    hostvars = dict(lab_hosts(), outsider={"inventory_hostname": "outsider"})  # no VTEP: not part of the overlay

    peers = overlay_peers(hostvars, "node3", hosts=["node1", "node2", "node3"])

    assert [peer["vtep"] for peer in peers] == ["192.0.2.11", "192.0.2.12"]


def test_peers_use_the_variables_named_by_the_caller():
    hosts = {"a": {"ul": "192.0.2.1", "eps": ["10.9.0.2"]}, "b": {"ul": "192.0.2.2", "eps": None}}

    peers = overlay_peers(hosts, "b", vtep_var="ul", endpoints_var="eps")

    assert peers == [{"vtep": "192.0.2.1", "endpoints": [{"ip": "10.9.0.2", "mac": "02:42:0a:09:00:02"}]}]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"node3": {"cnm_underlay_ip": "192.0.2.12"}},
            "hosts node2 and node3 have the same VTEP address 192.0.2.12 (cnm_underlay_ip)",
        ),
        (
            {"node2": {"cnm_underlay_ip": "192.0.2.11"}},
            "host node2 has the VTEP address 192.0.2.11 of host node1 itself (cnm_underlay_ip)",
        ),
        (
            {"node3": {"cnm_underlay_ip": "192.0.2.11/24"}},
            "host node3 has the VTEP address 192.0.2.11 of host node1 itself",
        ),
        ({"node3": {"cnm_underlay_ip": None}}, "host node3 has no cnm_underlay_ip"),
        (
            {"node3": {"cnm_overlay_endpoints": ["10.200.2.10"]}},
            "endpoint ip 10.200.2.10 is listed on hosts node2 and node3 (cnm_overlay_endpoints)",
        ),
        (
            {"node3": {"cnm_overlay_endpoints": ["10.200.3.1", "10.200.3.1/16"]}},
            "endpoint ip 10.200.3.1 is listed twice on host node3",
        ),
        (
            {"node3": {"cnm_overlay_endpoints": [{"ip": "10.200.3.1", "mac": "02:42:0a:c8:02:0a"}]}},
            "endpoint mac 02:42:0a:c8:02:0a is listed on hosts node2 and node3",
        ),
        (
            {"node3": {"cnm_overlay_endpoints": [{"ip": "10.200.3.1", "mac": "zz"}]}},
            "host node3: cnm_overlay_endpoints item 1 mac 'zz' is not a MAC address",
        ),
        (
            {"node3": {"cnm_overlay_endpoints": [{"ip": "10.200.3.1", "mac": "01:00:5e:00:00:01"}]}},
            "is a multicast MAC address",
        ),
        (
            {"node3": {"cnm_overlay_endpoints": [{"netns": "web9"}]}},
            "host node3: cnm_overlay_endpoints item 1 has no ip",
        ),
        ({"node3": {"cnm_overlay_endpoints": ["fd00::3"]}}, "fd00::3 is an IPv6 address; give its mac"),
        (
            {"node3": {"cnm_overlay_endpoints": ["10.200.3.999"]}},
            "host node3: cnm_overlay_endpoints item 1 ip '10.200.3.999' is not an IP address",
        ),
        (
            {"node3": {"cnm_overlay_endpoints": "10.200.3.1"}},
            "host node3: cnm_overlay_endpoints must be a list of endpoints, not str",
        ),
    ],
)
def test_bad_peer_inputs_are_refused_naming_the_hosts(change, message):
    hosts = lab_hosts()
    for name, values in change.items():
        hosts[name].update(values)

    with pytest.raises(AnsibleFilterError) as error:
        overlay_peers(hosts, "node1")

    assert str(error.value).startswith("cnm.network.overlay_peers: ")
    assert message in str(error.value)


@pytest.mark.parametrize(
    "hosts_vars, self_host, kwargs, message",
    [
        (lab_hosts(), "node9", {}, "host 'node9' is not among the hosts given"),
        (lab_hosts(), "node1", {"hosts": ["node1", "node9"]}, "hosts node9 are not in the input"),
        (lab_hosts(), "node1", {"hosts": "node1"}, "hosts must be a list of host names"),
        (
            [{"cnm_underlay_ip": "192.0.2.1"}],
            "node1",
            {},
            "item 1 of the input is not a host's variables with inventory_hostname",
        ),
        (list(lab_hosts().values()) * 2, "node1", {}, "host node1 appears more than once in the input"),
        ({"node1": "192.0.2.11"}, "node1", {}, "the variables of host node1 are not a dict (str)"),
        ("node1", "node1", {}, "input must be a dict of host name -> hostvars or a list of hostvars, not str"),
    ],
)
def test_malformed_peer_inputs_are_refused(hosts_vars, self_host, kwargs, message):
    with pytest.raises(AnsibleFilterError) as error:
        overlay_peers(hosts_vars, self_host, **kwargs)

    assert message in str(error.value)


# --- the plugin --------------------------------------------------------------------------------------


def test_filter_module_offers_every_filter_with_a_documentation_file():
    filters = FilterModule().filters()

    assert sorted(filters) == [
        "mac_from_ip",
        "overlay_check_pairs",
        "overlay_peers",
        "overlay_slice",
        "overlay_slices",
        "vtep_address",
    ]
    for name in filters:
        with open(os.path.join(os.path.dirname(overlay.__file__), name + ".yml")) as docs:
            assert "  name: %s\n" % name in docs.read()


# ---- overlay_check_pairs ----

overlay_check_pairs = overlay.overlay_check_pairs


def addresses(host: int, endpoints: int) -> list:
    return [{"ip": "10.200.%d.%d" % (host, n)} for n in range(endpoints, 0, -1)]  # highest first: order is no hint


def ring_peers(count: int, endpoints: int = 2) -> list:
    """``count`` hosts h0..h(count-1), VTEP 192.0.2.(10+i), endpoints 10.200.i.(1..endpoints)."""
    return [{"vtep": "192.0.2.%d" % (10 + i), "endpoints": addresses(i, endpoints)} for i in range(count)]


def check_of(host: int, count: int, hosts=3, full=False) -> list:
    everyone = ring_peers(count)
    local = [{"netns": "h%d-app%d" % (host, n), "ipv4_address": "10.200.%d.%d" % (host, n)} for n in (1, 2)]
    others = [peer for i, peer in enumerate(everyone) if i != host]
    return overlay_check_pairs(local, others, everyone[host]["vtep"], hosts, full)


def test_the_check_pings_the_next_hosts_of_the_ring_from_one_endpoint():
    pairs = check_of(3, 5, hosts=2)
    assert pairs == [{"netns": "h3-app1", "ip": "10.200.4.1"}, {"netns": "h3-app1", "ip": "10.200.0.1"}]
    assert len(check_of(0, 3)) == 2  # fewer hosts than the sample: each of the others once


def test_every_host_is_reached_from_as_many_others_and_the_check_grows_linearly():
    for count in (2, 5, 50):
        reached: dict = {}
        for host in range(count):
            for pair in check_of(host, count, hosts=3):
                reached.setdefault(pair["ip"], []).append(host)
        assert sorted(reached) == sorted("10.200.%d.1" % i for i in range(count))
        assert {len(sources) for sources in reached.values()} == {min(3, count - 1)}
        assert sum(len(sources) for sources in reached.values()) == count * min(3, count - 1)


def test_full_is_the_whole_matrix():
    pairs = check_of(1, 4, full=True)
    assert len(pairs) == 2 * 3 * 2
    assert pairs[0] == {"netns": "h1-app1", "ip": "10.200.0.1"}


def test_no_local_endpoint_in_a_namespace_checks_nothing_and_hosts_without_endpoints_are_skipped():
    assert overlay_check_pairs([{"ipv4_address": "10.200.0.1"}], ring_peers(3), "192.0.2.99") == []
    peers = ring_peers(3) + [{"vtep": "192.0.2.50", "endpoints": []}]
    assert [p["ip"] for p in overlay_check_pairs([{"netns": "x"}], peers, "192.0.2.99", 9)] == [
        "10.200.0.1",
        "10.200.1.1",
        "10.200.2.1",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (([], [], "192.0.2.1", 0), "hosts must be 1 or more, not 0"),
        (([], [], "192.0.2.1", "many"), "hosts 'many' is not an integer"),
        (([], [], "nowhere"), "local_vtep 'nowhere' is not an IPv4 address"),
        (([], ["192.0.2.2"], "192.0.2.1"), "each peer must be a dict with vtep and endpoints"),
        (([], [{"vtep": "192.0.2.2", "endpoints": [{"ip": "x"}]}], "192.0.2.1"), "a peer's endpoint ip 'x'"),
    ],
)
def test_overlay_check_pairs_bad_inputs(args, message):
    with pytest.raises(AnsibleFilterError, match="cnm.network.overlay_check_pairs: " + message):
        overlay_check_pairs(*args)
