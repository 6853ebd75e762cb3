"""Published ports normalised at the edge: Docker's -p strings and dicts as one PortMapping per host port."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
import struct

import pytest

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.listeners import (
    INET_DIAG_SKV6ONLY,
    Listener,
    _slot,
    clashing,
    decode_socket,
)
from ansible_collections.cnm.network.plugins.module_utils.ports import (
    PortMapping,
    binding_slots,
    canonical_host_ip,
    docker_form,
    entry_slots,
    parse_port,
    parse_ports,
    slots_cover,
    slots_overlap,
)
from ansible_collections.cnm.network.plugins.module_utils.records import PortRecord

ip = ipaddress.ip_address


def one(item) -> PortMapping:
    mappings = parse_port(item, "ports[0]")
    assert len(mappings) == 1
    return mappings[0]


def refused(option: str, *words: str):
    """The error must start with ``option 'NAME': `` for exactly this option and contain every word given."""
    pattern = "^option '%s': " % re.escape(option) + "".join("(?=.*%s)" % re.escape(word) for word in words)
    return pytest.raises(CnmError, match=pattern)


# ---- Docker's string forms ----


@pytest.mark.parametrize(
    "item, expected",
    [
        ("4000:80", PortMapping(None, 4000, 80, "tcp")),
        ("4000:80/udp", PortMapping(None, 4000, 80, "udp")),
        ("4000:80/sctp", PortMapping(None, 4000, 80, "sctp")),
        ("53:53/udp", PortMapping(None, 53, 53, "udp")),
        ("127.0.0.1:4000:80", PortMapping(ip("127.0.0.1"), 4000, 80, "tcp")),
        ("127.0.0.1:4000:80/tcp", PortMapping(ip("127.0.0.1"), 4000, 80, "tcp")),
        ("0.0.0.0:53:53/udp", PortMapping(ip("0.0.0.0"), 53, 53, "udp")),
        ("[2001:db8::1]:4000:80", PortMapping(ip("2001:db8::1"), 4000, 80, "tcp")),
        ("[2001:DB8::7]:443:8443/tcp", PortMapping(ip("2001:db8::7"), 443, 8443, "tcp")),
        ("[::]:53:53/udp", PortMapping(ip("::"), 53, 53, "udp")),
        ("  4000:80/UDP ", PortMapping(None, 4000, 80, "udp")),
        (":4000:80", PortMapping(None, 4000, 80, "tcp")),
        ("1:65535", PortMapping(None, 1, 65535, "tcp")),
    ],
)
def test_docker_string_parses_to_one_mapping(item, expected):
    assert one(item) == expected


def test_protocol_defaults_to_tcp_and_is_lower_cased():
    assert one("4000:80").protocol == "tcp"
    assert one("4000:80/SCTP").protocol == "sctp"


def test_range_expands_to_one_mapping_per_port():
    mappings = parse_port("8000-8010:80-90", "ports[0]")
    assert len(mappings) == 11
    assert [(m.host_port, m.container_port) for m in mappings] == [(8000 + n, 80 + n) for n in range(11)]
    assert {m.protocol for m in mappings} == {"tcp"}
    assert {m.host_ip for m in mappings} == {None}


def test_range_keeps_the_host_ip_and_protocol_on_every_mapping():
    mappings = parse_port("[2001:db8::1]:5000-5002:6000-6002/udp", "ports[0]")
    assert [docker_form(m) for m in mappings] == [
        "[2001:db8::1]:5000:6000/udp",
        "[2001:db8::1]:5001:6001/udp",
        "[2001:db8::1]:5002:6002/udp",
    ]


def test_range_of_one_port_is_one_mapping():
    assert parse_port("8000-8000:80-80", "ports[0]") == [PortMapping(None, 8000, 80, "tcp")]


def test_range_of_exactly_1000_ports_is_accepted():
    mappings = parse_port("20000-20999:30000-30999", "ports[0]")
    assert len(mappings) == 1000
    assert mappings[-1] == PortMapping(None, 20999, 30999, "tcp")


# ---- the dict form ----


@pytest.mark.parametrize(
    "item, expected",
    [
        ({"host_port": 4000, "container_port": 80}, PortMapping(None, 4000, 80, "tcp")),
        ({"host_port": "4000", "container_port": "80", "protocol": "udp"}, PortMapping(None, 4000, 80, "udp")),
        (
            {"host_ip": "127.0.0.1", "host_port": 4000, "container_port": 80, "protocol": "tcp"},
            PortMapping(ip("127.0.0.1"), 4000, 80, "tcp"),
        ),
        (
            {"host_ip": "2001:db8::1", "host_port": 53, "container_port": 53, "protocol": "UDP"},
            PortMapping(ip("2001:db8::1"), 53, 53, "udp"),
        ),
        (
            {"host_ip": "[2001:db8::1]", "host_port": 53, "container_port": 53},
            PortMapping(ip("2001:db8::1"), 53, 53, "tcp"),
        ),
        (
            {"host_ip": None, "host_port": 4000, "container_port": 80, "protocol": None},
            PortMapping(None, 4000, 80, "tcp"),
        ),
        ({"host_ip": "", "host_port": 4000, "container_port": 80}, PortMapping(None, 4000, 80, "tcp")),
    ],
)
def test_dict_parses_to_one_mapping(item, expected):
    assert one(item) == expected


def test_dict_ranges_expand_like_the_string_form():
    item = {"host_ip": "10.0.0.5", "host_port": "8000-8002", "container_port": "80-82", "protocol": "sctp"}
    assert parse_port(item, "ports[0]") == parse_port("10.0.0.5:8000-8002:80-82/sctp", "ports[0]")


# ---- refused items ----


@pytest.mark.parametrize(
    "item, option, words",
    [
        # no host port: Docker's ephemeral ports cannot be declared
        ("80", "ports[0].host_port", ("required", "'80:80'")),
        ("80/udp", "ports[0].host_port", ("required", "'80:80/udp'")),
        ("127.0.0.1::80", "ports[0].host_port", ("required", "'127.0.0.1:80:80'")),
        ("[::1]::53/udp", "ports[0].host_port", ("required", "'[::1]:53:53/udp'")),
        ({"container_port": 80}, "ports[0].host_port", ("required", "host_port")),
        ({"host_port": None, "container_port": 80}, "ports[0].host_port", ("required",)),
        (80, "ports[0].host_port", ("required", "'80:80'")),
        # out of range
        ("0:80", "ports[0].host_port", ("0 is out of range (1 to 65535)",)),
        ("4000:0", "ports[0].container_port", ("0 is out of range (1 to 65535)",)),
        ("70000:80", "ports[0].host_port", ("70000 is out of range (1 to 65535)",)),
        ("4000:65536", "ports[0].container_port", ("65536 is out of range",)),
        ("65530-65540:80-90", "ports[0].host_port", ("65530-65540 is out of range",)),
        ({"host_port": 70000, "container_port": 80}, "ports[0].host_port", ("70000 is out of range",)),
        ({"host_port": 4000, "container_port": 0}, "ports[0].container_port", ("0 is out of range",)),
        # not numbers
        ("http:80", "ports[0].host_port", ("http is not a port number",)),
        ("4000:www", "ports[0].container_port", ("www is not a port number",)),
        ("4000:8o", "ports[0].container_port", ("not a port number",)),
        ("80-:80", "ports[0].host_port", ("not a port number",)),
        ({"host_port": "four", "container_port": 80}, "ports[0].host_port", ("four is not a port number",)),
        ({"host_port": 4000, "container_port": 80.5}, "ports[0].container_port", ("not a port number",)),
        ({"host_port": True, "container_port": 80}, "ports[0].host_port", ("True is not a port number",)),
        ({"host_port": -1, "container_port": 80}, "ports[0].host_port", ("not a port number",)),
        # reversed ranges
        ("8010-8000:80-90", "ports[0].host_port", ("8010-8000 is a reversed range", "8000-8010")),
        ("8000-8010:90-80", "ports[0].container_port", ("90-80 is a reversed range", "80-90")),
        ({"host_port": "8010-8000", "container_port": "80-90"}, "ports[0].host_port", ("reversed range",)),
        # range lengths differ
        (
            "8000-8010:80",
            "ports[0].container_port",
            ("1 port", "8000-8010 is 11 ports", "same length", "Docker would pick"),
        ),
        ("8000-8010:80-85", "ports[0].container_port", ("6 ports", "11 ports", "same length")),
        ("4000:80-90", "ports[0].container_port", ("11 ports", "4000 is 1 port", "same length")),
        ({"host_port": "8000-8001", "container_port": 80}, "ports[0].container_port", ("same length",)),
        # too many ports: each one is a firewall rule
        (
            "1-1001:1-1001",
            "ports[0].host_port",
            ("1001 ports", "more than 1000", "each published port is its own firewall rule"),
        ),
        ("1-65535:1-65535", "ports[0].host_port", ("65535 ports", "more than 1000")),
        (
            {"host_port": 4000, "container_port": "2000-4000"},
            "ports[0].container_port",
            ("2001 ports", "firewall rule"),
        ),
        # protocols
        ("4000:80/icmp", "ports[0].protocol", ("icmp is not a protocol", "tcp, udp, sctp")),
        ("4000:80/", "ports[0].protocol", ("'' is not a protocol",)),
        (
            {"host_port": 4000, "container_port": 80, "protocol": "http"},
            "ports[0].protocol",
            ("http is not a protocol",),
        ),
        # host_ip
        ("localhost:4000:80", "ports[0].host_ip", ("localhost is not an IP address",)),
        ("256.0.0.1:4000:80", "ports[0].host_ip", ("256.0.0.1 is not an IP address",)),
        ("[nope]:4000:80", "ports[0].host_ip", ("not an IP address",)),
        (
            {"host_ip": "eth0", "host_port": 4000, "container_port": 80},
            "ports[0].host_ip",
            ("eth0 is not an IP address",),
        ),
        (
            {"host_ip": "10.0.0.0/8", "host_port": 4000, "container_port": 80},
            "ports[0].host_ip",
            ("not an IP address",),
        ),
        (
            {"host_ip": "fe80::1%eth0", "host_port": 4000, "container_port": 80},
            "ports[0].host_ip",
            ("zone index", "%eth0"),
        ),
        # missing container port
        ({"host_port": 4000}, "ports[0].container_port", ("None is required",)),
        ({"host_port": 4000, "container_port": ""}, "ports[0].container_port", ("required",)),
        ("4000:", "ports[0].container_port", ("required", "without a container port")),
        # ambiguous IPv6 without brackets
        ("::1:4000:80", "ports[0]", ("is ambiguous", "brackets", "[::1]:4000:80")),
        ("2001:db8::7:443:8443/tcp", "ports[0]", ("is ambiguous", "[2001:db8::7]:443:8443/tcp")),
        # unparsable strings and wrong types name the item itself
        ("", "ports[0]", ("is not a port mapping",)),
        ("tcp/4000/80", "ports[0]", ("is not a port mapping",)),
        ("[::1:4000:80", "ports[0]", ("is not a port mapping", "[2001:db8::1]:4000:80")),
        ("[::1]4000:80", "ports[0]", ("is not a port mapping",)),
        ("[::1]:4000:80:90", "ports[0]", ("is not a port mapping",)),
        (None, "ports[0]", ("must be a string",)),
        (["4000", "80"], "ports[0]", ("must be a string",)),
        (True, "ports[0]", ("must be a string",)),
        (0, "ports[0]", ("is not a port mapping",)),
        ({"host_port": 4000, "container_port": 80, "hostip": "127.0.0.1"}, "ports[0]", ("unknown keys hostip",)),
    ],
)
def test_bad_item_is_refused_naming_the_sub_field(item, option, words):
    with refused(option, *words):
        parse_port(item, "ports[0]")


def test_unquoted_yaml_base_60_number_is_refused_with_the_reading_explained():
    # PyYAML reads an unquoted 4000:53 as 4000 * 60 + 53.
    with refused("ports[0]", "base-60", "4000:53", "quote it"):
        parse_port(240053, "ports[0]")


def test_error_names_the_option_given():
    with refused("published[7].host_port"):
        parse_port("0:80", "published[7]")


# ---- PortMapping: key, family, docker_form ----


@pytest.mark.parametrize(
    "item, key, family",
    [
        ("4000:80", "tcp/*:4000", None),
        ("0.0.0.0:4000:80", "tcp/0.0.0.0:4000", 4),
        ("127.0.0.1:4000:80", "tcp/127.0.0.1:4000", 4),
        ("[2001:db8::2]:53:53/udp", "udp/[2001:db8::2]:53", 6),
        ("[::]:53:53/udp", "udp/[::]:53", 6),
        ("[2001:0DB8::0001]:132:132/sctp", "sctp/[2001:db8::1]:132", 6),
    ],
)
def test_key_names_the_host_side_and_family_its_address_family(item, key, family):
    mapping = one(item)
    assert mapping.key == key
    assert mapping.family == family


def test_key_ignores_the_container_port():
    assert one("4000:80").key == one("4000:8080").key


@pytest.mark.parametrize(
    "item, form",
    [
        ("4000:80", "4000:80/tcp"),
        ("127.0.0.1:4000:80", "127.0.0.1:4000:80/tcp"),
        ("0.0.0.0:53:53/udp", "0.0.0.0:53:53/udp"),
        ("[2001:db8::1]:4000:80/sctp", "[2001:db8::1]:4000:80/sctp"),
        (
            {"host_ip": "2001:db8::1", "host_port": "53", "container_port": 5353, "protocol": "UDP"},
            "[2001:db8::1]:53:5353/udp",
        ),
    ],
)
def test_docker_form_round_trips(item, form):
    mapping = one(item)
    assert docker_form(mapping) == form
    assert one(form) == mapping


def test_mapping_is_frozen_and_hashable():
    mapping = one("4000:80")
    with pytest.raises(dataclasses.FrozenInstanceError):
        mapping.host_port = 4001
    assert len({mapping, one("4000:80/tcp")}) == 1


def test_to_record_holds_plain_values():
    assert one("[2001:db8::1]:4000:80/udp").to_record() == {
        "host_ip": "2001:db8::1",
        "host_port": 4000,
        "container_port": 80,
        "protocol": "udp",
    }
    assert one("4000:80").to_record()["host_ip"] is None


# ---- parse_ports: the whole list ----


def test_ports_list_concatenates_items_in_order():
    mappings = parse_ports(
        ["127.0.0.1:4000:80/tcp", {"host_port": "8000-8001", "container_port": "90-91"}, "53:53/udp"]
    )
    assert [docker_form(m) for m in mappings] == ["127.0.0.1:4000:80/tcp", "8000:90/tcp", "8001:91/tcp", "53:53/udp"]
    assert isinstance(mappings, tuple)


def test_no_ports_is_an_empty_tuple():
    assert parse_ports(None) == ()
    assert parse_ports([]) == ()


@pytest.mark.parametrize(
    "items",
    [
        ["4000:80", "4000:80/udp", "4000:80/sctp"],
        ["127.0.0.1:4000:80", "127.0.0.2:4000:80"],
        ["127.0.0.1:4000:80", "[2001:db8::1]:4000:80"],
        ["0.0.0.0:4000:80", "[::]:4000:81"],
        ["0.0.0.0:4000:80", "[2001:db8::1]:4000:81"],
        ["4000:80", "4001:80"],
        ["8000-8010:80-90", "8011-8020:80-89"],
    ],
)
def test_same_host_port_on_other_protocols_addresses_or_families_is_allowed(items):
    assert len(parse_ports(items)) >= len(items)


@pytest.mark.parametrize(
    "items, later, earlier",
    [
        (["4000:80", "4000:80"], "ports[1]", "ports[0]"),
        (["4000:80", "4000:8080"], "ports[1]", "ports[0]"),
        (["53:53/udp", "0.0.0.0:53:5353/udp"], "ports[1]", "ports[0]"),
        (["[2001:db8::1]:4000:80", "4000:81"], "ports[1]", "ports[0]"),
        (["127.0.0.1:4000:80", "0.0.0.0:4000:81"], "ports[1]", "ports[0]"),
        (["[::]:4000:80", "[2001:db8::1]:4000:81"], "ports[1]", "ports[0]"),
        (["127.0.0.1:4000:80", "9000:90", "127.0.0.1:4000:81"], "ports[2]", "ports[0]"),
        (["8000-8010:80-90", "8005:8080"], "ports[1]", "ports[0]"),
        (
            [
                {"host_port": 4000, "container_port": 80},
                {"host_ip": "2001:db8::1", "host_port": "4000", "container_port": "81"},
            ],
            "ports[1]",
            "ports[0]",
        ),
    ],
)
def test_overlapping_host_ports_are_refused_naming_both_items(items, later, earlier):
    with refused(later, "overlaps %s" % earlier):
        parse_ports(items)


def test_overlap_message_shows_both_mappings_in_docker_form():
    with refused("ports[1]", "0.0.0.0:8005:8080/tcp overlaps ports[0] (8005:85/tcp)"):
        parse_ports(["8000-8010:80-90", "0.0.0.0:8005:8080"])


def test_parse_ports_uses_the_option_name_given():
    with refused("published[1]", "overlaps published[0]"):
        parse_ports(["4000:80", "4000:80"], option="published")
    with refused("published[0].protocol"):
        parse_ports(["4000:80/icmp"], option="published")


@pytest.mark.parametrize("items", ["4000:80", {"host_port": 4000, "container_port": 80}, 4000])
def test_ports_must_be_a_list(items):
    with refused("ports", "must be a list"):
        parse_ports(items)


# ---- IPv6 bindings: the host addresses a binding takes, per family (Docker 27+'s sortAndNormPBs) ----

V4, V6 = ip("0.0.0.0"), ip("::")


@pytest.mark.parametrize(
    "host_ip, ipv4, ipv6, expected",
    [
        (None, True, False, {(4, V4)}),  # P:C of an IPv4-only endpoint: 0.0.0.0 only
        (None, True, True, {(4, V4), (6, V6)}),  # P:C of a dual-stack endpoint: 0.0.0.0 and [::]
        (None, False, True, {(6, V6)}),  # P:C of an IPv6-only endpoint: [::] only
        (V4, True, True, {(4, V4)}),
        (V6, True, True, {(6, V6)}),
        (ip("2001:db8::1"), True, True, {(6, ip("2001:db8::1"))}),
    ],
)
def test_binding_slots_follow_the_endpoint_families(host_ip, ipv4, ipv6, expected):
    assert binding_slots(host_ip, ipv4, ipv6) == frozenset(expected)


@pytest.mark.parametrize(
    "host_ip, ipv4, ipv6, expected",
    [
        ("0.0.0.0", True, False, None),  # 0.0.0.0:P:C and P:C are one binding without IPv6
        (None, True, False, None),
        (None, True, True, None),
        ("0.0.0.0", True, True, "0.0.0.0"),  # with IPv6, 0.0.0.0 is only half of P:C
        ("::", True, True, "::"),
        ("::", False, True, "::"),  # P:C of an IPv6-only endpoint is [::]:P:C
        (None, False, True, "::"),
        ("127.0.0.1", True, True, "127.0.0.1"),
        ("2001:db8::1", True, True, "2001:db8::1"),
    ],
)
def test_canonical_host_ip_gives_one_spelling_per_binding(host_ip, ipv4, ipv6, expected):
    result = canonical_host_ip(ip(host_ip) if host_ip else None, ipv4, ipv6)
    assert result == (ip(expected) if expected else None)


@pytest.mark.parametrize(
    "first, second, overlap",
    [
        ({(4, V4)}, {(6, V6)}, False),  # a v4-only and a v6-only binding of one port do not clash
        ({(4, V4)}, {(4, ip("127.0.0.1"))}, True),
        ({(6, V6)}, {(6, ip("2001:db8::1"))}, True),
        ({(6, ip("2001:db8::1"))}, {(6, ip("2001:db8::2"))}, False),
        ({(4, V4), (6, V6)}, {(6, ip("2001:db8::2"))}, True),
        ({(4, ip("127.0.0.1"))}, {(6, ip("2001:db8::2"))}, False),
    ],
)
def test_slots_overlap_per_family(first, second, overlap):
    assert slots_overlap(frozenset(first), frozenset(second)) is overlap
    assert slots_overlap(frozenset(second), frozenset(first)) is overlap


def test_slots_cover_means_every_address_is_claimed():
    both = binding_slots(None, True, True)
    assert slots_cover(both, frozenset({(4, V4)})) and slots_cover(both, frozenset({(6, ip("2001:db8::1"))}))
    assert not slots_cover(frozenset({(4, V4)}), both)
    assert not slots_cover(frozenset({(4, ip("127.0.0.1"))}), frozenset({(4, V4)}))


def test_entry_slots_of_an_entry_written_before_ipv6_is_ipv4_only():
    written = {
        "host_ip": None,
        "host_port": 4000,
        "container_port": 80,
        "protocol": "tcp",
        "container_ip": "172.30.0.2",
    }
    old = PortRecord.from_dict(dict(written, network="web", sandbox="netns:a"))
    assert entry_slots(old) == frozenset({(4, V4)})
    assert entry_slots(dataclasses.replace(old, container_ipv6="fd00::2")) == frozenset({(4, V4), (6, V6)})
    assert entry_slots(
        dataclasses.replace(old, container_ip=None, container_ipv6="fd00::2", host_ip="::")
    ) == frozenset({(6, V6)})


@pytest.mark.parametrize(
    "item, option, words",
    [
        ("[::1]:80:80", "ports[0].host_ip", ("IPv6 loopback", "127.0.0.1")),
        ({"host_ip": "::1", "host_port": 80, "container_port": 80}, "ports[0].host_ip", ("IPv6 loopback",)),
        ("[::ffff:127.0.0.1]:80:80", "ports[0].host_ip", ("IPv4-mapped", "127.0.0.1")),
        ("[127.0.0.1]:80:80", "ports[0].host_ip", ("brackets", "IPv6 only", "127.0.0.1")),
        ("2001:db8::1]:80:80", "ports[0]", ("unbalanced brackets",)),
        ("[2001:db8::1]]:80:80", "ports[0]", ("is not a port mapping",)),
        ("[[2001:db8::1]:80:80", "ports[0].host_ip", ("is not an IP address",)),
        ("[]:80:80", "ports[0].host_ip", ("is not an IP address",)),
    ],
)
def test_bad_ipv6_forms_are_refused_naming_the_option(item, option, words):
    with refused(option, *words):
        parse_port(item, "ports[0]")


# ---- listening sockets, as sock_diag reports them ----


def diag_message(family, address, port, inode, v6only=None):
    """An inet_diag_msg as the kernel sends it (sockid in network order), with SKV6ONLY when given."""
    raw = ipaddress.ip_address(address).packed.ljust(16, b"\0")
    payload = struct.pack("=BBBB", family, 10, 0, 0) + struct.pack("!HH", port, 0) + raw + bytes(16)
    payload += struct.pack("=I8sIIIII", 0, bytes(8), 0, 0, 0, 0, inode)
    if v6only is not None:
        payload += struct.pack("=HHB3x", 5, INET_DIAG_SKV6ONLY, int(v6only))
    return payload


@pytest.mark.parametrize(
    "family, address, v6only, expected",
    [
        (socket.AF_INET, "127.0.0.1", None, (4, ip("127.0.0.1"))),
        (socket.AF_INET, "0.0.0.0", None, (4, V4)),
        (socket.AF_INET6, "::", False, (6, V6)),
        (socket.AF_INET6, "2001:db8::1", True, (6, ip("2001:db8::1"))),
        (socket.AF_INET6, "::ffff:127.0.0.1", False, (4, ip("127.0.0.1"))),  # an IPv4-mapped address is IPv4
    ],
)
def test_sock_diag_messages_are_read_per_family(family, address, v6only, expected):
    found, port, inode, only = decode_socket(family, diag_message(family, address, 4000, 77, v6only))
    assert (_slot(found), port, inode, only) == (expected, 4000, "77", bool(v6only))


def test_a_v6only_socket_on_any_address_leaves_ipv4_free():
    v6only = [Listener("tcp", (6, V6), 4000, "4", v6only=True)]
    assert clashing(v6only, "tcp", 4000, binding_slots(None, True, False)) is None
    assert clashing(v6only, "tcp", 4000, binding_slots(None, True, True)) == v6only[0]


def test_a_listener_clashes_per_family():
    v6_only = [Listener("tcp", (6, ip("2001:db8::1")), 4000, "1")]
    dual = [Listener("tcp", (6, V6), 4000, "2")]  # a [::] socket takes IPv4 too (bindv6only=0)
    v4 = [Listener("tcp", (4, ip("127.0.0.1")), 4000, "3")]
    assert clashing(v6_only, "tcp", 4000, binding_slots(None, True, False)) is None
    assert clashing(v6_only, "tcp", 4000, binding_slots(None, True, True)) == v6_only[0]
    assert clashing(dual, "tcp", 4000, binding_slots(None, True, False)) == dual[0]
    assert clashing(v4, "tcp", 4000, binding_slots(V6, True, True)) is None
    assert clashing(v4, "udp", 4000, binding_slots(None, True, True)) is None
    assert clashing(v4, "tcp", 4001, binding_slots(None, True, True)) is None
