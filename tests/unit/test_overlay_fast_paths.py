"""The fast ways an overlay's thousands of peers' endpoints are read (issue 14: an unchanged rerun of 10,000 endpoints):
each must accept and refuse exactly what the plain way does, with the same words."""

from __future__ import annotations

import ipaddress
import itertools
import re
import socket
import struct

import pytest

from ansible_collections.cnm.network.plugins.module_utils import model, overlay, rtnl
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.ipam import mac_from_ipv4
from ansible_collections.cnm.network.plugins.module_utils.plan import Plan
from ansible_collections.cnm.network.plugins.module_utils.records import PeerRecord, RecordError

# Texts around the edges of a dotted quad: leading zeros, too few or many parts, spaces, signs, other digits, IPv6.
OCTETS = ["0", "00", "1", "01", "255", "256", "0255", "2555", "", " 1", "1 ", "+1", "-1", "\u0663"]
ODD = [
    "1.2.3",
    "1.2.3.4.",
    ".1.2.3.4",
    "1.2.3.4/32",
    "1.2.3.4%eth0",
    "0x1.2.3.4",
    "1.2.3.4\x00",
    "::1",
    "::ffff:1.2.3.4",
    "3232235777",
    "",
]
TEXTS = (
    [".".join(parts) for parts in itertools.product(OCTETS[:8], repeat=4)][::7]
    + [".".join(("10", octet, "0", "1")) for octet in OCTETS]
    + ODD
)


def _plain_ipv4(text: str):
    """What ipaddress makes of a text: the canonical text, or the words of its refusal."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "not valid"
    return str(address) if address.version == 4 else "not IPv4"


def _outcome(call, *args):
    try:
        return call(*args)
    except CnmError as exc:
        return "refused: %s" % exc


def test_an_ipv4_text_is_taken_or_refused_as_ipaddress_does():
    for text in TEXTS:
        plain = _plain_ipv4(text)
        fast = _outcome(model.ipv4_text, "peers[0].endpoints[0].ip", text)
        if plain in ("not valid", "not IPv4"):
            assert fast == "refused: option 'peers[0].endpoints[0].ip': %s is %s" % (
                text,
                "not a valid IP address" if plain == "not valid" else "not an IPv4 address",
            ), text
        else:
            assert fast == (plain, ipaddress.IPv4Address(plain).packed), text
        address = _outcome(model.parse_address, "local_ip", text, 4)
        assert (str(address) if isinstance(address, ipaddress.IPv4Address) else "refused") == (
            plain if plain not in ("not valid", "not IPv4") else "refused"
        ), text


def test_parse_address_still_takes_what_is_not_a_text():
    assert model.parse_address("local_ip", ipaddress.IPv4Address("192.0.2.1"), 4) == ipaddress.IPv4Address("192.0.2.1")
    assert model.ipv4_text("x", ipaddress.IPv4Address("10.0.0.1")) == ("10.0.0.1", bytes([10, 0, 0, 1]))
    with pytest.raises(CnmError, match="option 'x': 5 is not a valid IP address"):
        model.ipv4_text("x", 5)
    assert model.parse_address("ipv6_gateway", "2001:db8::1", 6) == ipaddress.ip_address("2001:db8::1")


def _plain_peers(items, local_ip):
    """parse_peers as it read the peers before its fast way (ipaddress objects, every option named), as texts."""
    peers = []
    for number, item in enumerate(items or ()):
        where = "peers[%d]" % number
        item = item if isinstance(item, dict) else {"vtep": item}
        vtep = model.parse_address(where + ".vtep", item.get("vtep"), 4)
        endpoints, names = [], []
        for index, endpoint in enumerate(item.get("endpoints") or ()):
            at = "%s.endpoints[%d]" % (where, index)
            endpoint = endpoint if isinstance(endpoint, dict) else {"ip": endpoint}
            address = ipaddress.ip_address(str(endpoint.get("ip")))
            mac = model.parse_mac(at + ".mac", endpoint["mac"]) if endpoint.get("mac") else mac_from_ipv4(address)
            endpoints.append((address, mac))
            name = model.check_dns_name(at + ".name", endpoint["name"]) if endpoint.get("name") is not None else None
            aliases = model.check_aliases(at + ".aliases", endpoint.get("aliases") or [])
            if name is not None or aliases:
                names.append((address, name, aliases))
        peers.append(
            (
                str(vtep),
                tuple((str(a), m) for a, m in sorted(endpoints)),
                tuple((str(a), n, al) for a, n, al in sorted(names, key=lambda entry: entry[0])),
            )
        )
    return tuple(sorted(peers, key=lambda peer: ipaddress.ip_address(peer[0])))


def _texts(peers):
    return tuple((str(peer.vtep), peer.endpoints, peer.names) for peer in peers)


MACS = ["02:42:0a:00:00:09", "02-42-0A-00-00-0A", " 02:42:0a:00:00:0b ", "AA:bb:cc:dd:ee:fe", "0e:00:00:00:00:01"]


def test_peers_read_the_fast_way_are_what_the_plain_way_reads():
    items = [
        {
            "vtep": "192.0.2.13",
            "endpoints": [
                {"ip": "10.0.0.10", "mac": MACS[0]},
                {"ip": "10.0.0.9", "mac": MACS[1]},  # sorted as addresses: .9 before .10 (not as texts)
                {"ip": "10.0.0.100", "mac": MACS[2], "name": "web"},
                "10.0.0.2",  # a bare address: its MAC derived
                {"ip": "10.0.0.1", "mac": MACS[3], "aliases": ["api", "API", "db"]},
                {"ip": "10.0.0.3", "mac": "", "name": "x", "aliases": None},
                {"ip": "10.0.0.4", "mac": MACS[4], "aliases": []},
            ],
        },
        "192.0.2.9",
        {"vtep": "192.0.2.100", "endpoints": [{"ip": "10.1.0.1", "name": "b"}, {"ip": "10.0.255.255", "name": "a"}]},
    ]
    local = ipaddress.IPv4Address("192.0.2.11")
    fast = model.parse_peers("peers", items, local)
    assert _texts(fast) == _plain_peers(items, local)
    assert [address for address, _mac in fast[1].endpoints] == [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.9",
        "10.0.0.10",
        "10.0.0.100",
    ]
    assert dict(fast[1].endpoints)["10.0.0.9"] == "02:42:0a:00:00:0a" and dict(fast[1].endpoints)["10.0.0.2"] == (
        "02:42:0a:00:00:02"
    )
    # the record keeps the texts as they are
    record = model.OverlayNetwork.from_overlay_params(
        dict(name="ov", subnet="10.0.0.0/8", vni=42, local_ip="192.0.2.11", peers=items)
    ).to_record()
    assert [(peer.vtep, peer.endpoints, peer.names) for peer in record.peers] == list(_plain_peers(items, local))


@pytest.mark.parametrize(
    "endpoint, option, words",
    [
        ({"ip": "10.0.0.01"}, "peers[0].endpoints[1].ip", "10.0.0.01 is not a valid IP address"),
        ({"ip": "2001:db8::1"}, "peers[0].endpoints[1].ip", "2001:db8::1 is not an IPv4 address"),
        ({"ip": None}, "peers[0].endpoints[1].ip", "None is not a valid IP address"),
        ({"ip": 167772161}, "peers[0].endpoints[1].ip", "167772161 is not a valid IP address"),
        ({"ip": "10.0.0.2", "mac": "03:42:0a:00:00:02"}, "peers[0].endpoints[1].mac", "is a multicast MAC address"),
        ({"ip": "10.0.0.2", "mac": "00:00:00:00:00:00"}, "peers[0].endpoints[1].mac", "is the all-zero MAC address"),
        ({"ip": "10.0.0.2", "mac": "02:42:0a:00:00"}, "peers[0].endpoints[1].mac", "is not a MAC address"),
        ({"ip": "10.0.0.2", "mac": 5}, "peers[0].endpoints[1].mac", "5 is not a MAC address"),
        ({"ip": "10.0.0.2", "name": "bad name"}, "peers[0].endpoints[1].name", "is not a DNS name"),
        ({"ip": "10.0.0.2", "aliases": "api"}, "peers[0].endpoints[1].aliases", "must be a list"),
        ({"ip": "10.0.0.2", "name": "ok", "aliases": ["-x"]}, "peers[0].endpoints[1].aliases[0]", "not a DNS name"),
    ],
)
def test_a_bad_endpoint_is_refused_naming_its_option(endpoint, option, words):
    items = [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.0.0.1"}, endpoint]}]
    with pytest.raises(CnmError) as raised:
        model.parse_peers("peers", items, ipaddress.IPv4Address("192.0.2.11"))
    assert str(raised.value).startswith("option '%s': " % option) and words in str(raised.value)


@pytest.mark.parametrize("mac", ["02:42:0a:00:00:02", "FE:42:0A:00:00:02", "fe-42-0a-00-00-02", "ff:ff:ff:ff:ff:ff"])
def test_a_mac_is_read_the_fast_way_only_when_parse_mac_would_keep_it(mac):
    items = [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.0.0.1", "mac": mac}]}]
    expected = _outcome(lambda: model.parse_mac("peers[0].endpoints[0].mac", mac))
    got = _outcome(lambda: model.parse_peers("peers", items, None)[0].endpoints[0][1])
    assert got == expected


# ---- the store's peers: a well-formed {ip, mac} entry is taken at once, anything else checked field by field ----


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"ip": "10.0.0.01", "mac": "02:42:0a:00:00:01"}, "peer.endpoints[1].ip is '10.0.0.01', not an address"),
        ({"ip": 5, "mac": "02:42:0a:00:00:01"}, "peer.endpoints[1].ip must be a string, found an integer"),
        ({"ip": "10.0.0.1", "mac": None}, "peer.endpoints[1].mac must be a string, found null"),
        ({"ip": "10.0.0.1", "name": "x"}, "peer.endpoints[1].mac is missing"),
        ({"mac": "02:42:0a:00:00:01", "name": "x"}, "peer.endpoints[1].ip is missing"),
    ],
)
def test_a_damaged_peer_entry_in_the_store_is_still_named(entry, words):
    with pytest.raises(RecordError, match=re.escape(words)):
        PeerRecord.from_dict(
            {"vtep": "192.0.2.12", "endpoints": [{"ip": "10.0.0.2", "mac": "02:42:0a:00:00:02"}, entry]}
        )


def test_store_peers_read_back_as_written():
    data = {
        "vtep": "192.0.2.12",
        "endpoints": [
            {"ip": "10.0.0.2", "mac": "02:42:0a:00:00:02"},
            {"ip": "2001:db8::1", "mac": "02:42:0a:00:00:03"},  # the store takes either family, as it always did
            {"ip": "10.0.0.4", "mac": "02:42:0a:00:00:04", "name": "web", "aliases": ["api"]},
        ],
    }
    record = PeerRecord.from_dict(data)
    assert record.to_dict() == data
    assert record.names == (("10.0.0.4", "web", ("api",)),)


# ---- the kernel's dumps: the three attributes read in one pass as attributes() reads them ----


def _neigh(ifindex: int, state: int, flags: int, attrs: list) -> bytes:
    body = struct.pack("=BxxxiHBB", socket.AF_INET, ifindex, state, flags, 0)
    for kind, payload in attrs:
        body += rtnl.attr(kind, payload)
    return body


class DumpSocket:
    """Answers one dump request with ``messages`` (bodies of RTM_NEWNEIGH), two to a datagram, then NLMSG_DONE."""

    def __init__(self, messages: list) -> None:
        self.messages = messages
        self.queue: list = []

    def send(self, data: bytes) -> int:
        sequence = struct.unpack_from("=IHHII", data)[3]
        framed = [struct.pack("=IHHII", 16 + len(m), rtnl.RTM_NEWNEIGH, 2, sequence, 0) + m for m in self.messages]
        framed.append(struct.pack("=IHHII", 16, rtnl.NLMSG_DONE, 2, sequence, 0))
        self.queue = [b"".join(framed[i : i + 2]) for i in range(0, len(framed), 2)]
        return len(data)

    def recv(self, _size: int) -> bytes:
        return self.queue.pop(0)


def _plain_remote_entries(messages: list, index: int) -> list:
    """_remote_entries as it read each message before (the attributes() dict)."""
    found = []
    for payload in messages:
        _family, ifindex, state, flags, _type = struct.unpack_from("=BxxxiHBB", payload)
        if ifindex != index:
            continue
        attrs = rtnl.attributes(payload, 12)
        raw = attrs.get(rtnl.NDA_DST)
        if raw:
            address = socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)
            lladdr = attrs.get(rtnl.NDA_LLADDR)
            mac = ":".join("%02x" % b for b in lladdr) if lladdr else None
            found.append((state, flags, attrs.get(rtnl.NDA_PROTOCOL), mac, address))
    return found


def test_the_dump_of_a_device_reads_its_entries_as_before():
    dst, mac = socket.inet_pton(socket.AF_INET, "10.0.0.1"), bytes([2, 0x42, 10, 0, 0, 1])
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    messages = [
        _neigh(4, 0x80, 0, [(rtnl.NDA_DST, dst), (rtnl.NDA_LLADDR, mac), (4, b"\0" * 4), (3, b"\0" * 16)]),
        _neigh(4, 0x80, 0, [(rtnl.NDA_LLADDR, mac), (rtnl.NDA_DST, v6), (rtnl.NDA_PROTOCOL, bytes([11]))]),
        _neigh(4, 0x80, 0, [(rtnl.NDA_DST | 0x8000, dst), (rtnl.NDA_DST, v6)]),  # the first of a type; no MAC
        _neigh(4, 0x80, 0x10, [(rtnl.NDA_LLADDR, mac)]),  # no address: the device's own entry, not listed
        _neigh(5, 0x80, 0, [(rtnl.NDA_DST, dst), (rtnl.NDA_LLADDR, mac)]),  # another device
        _neigh(4, 0x80, 0, [(rtnl.NDA_LLADDR, bytes([1, 2]))]) + struct.pack("=HH", 2, 1),  # a truncated attribute
        _neigh(4, 0x40, 0, [(rtnl.NDA_DST, dst), (rtnl.NDA_LLADDR, bytes(range(8)))]),
    ]
    netlink = rtnl.Rtnl.__new__(rtnl.Rtnl)  # no kernel socket
    netlink.sock, netlink.sequence, netlink._batch_messages = DumpSocket(messages), 0, 0
    entries = list(netlink._remote_entries(socket.AF_INET, 4))
    assert entries == _plain_remote_entries(messages, 4)
    assert [entry[3:] for entry in entries] == [
        ("02:42:0a:00:00:01", "10.0.0.1"),
        ("02:42:0a:00:00:01", "2001:db8::1"),
        (None, "10.0.0.1"),
        ("00:01:02:03:04:05:06:07", "10.0.0.1"),
    ]


# ---- planning: only the entries that differ become changes, in the order the plain sync gave them ----


@pytest.mark.parametrize("seed", range(6))
def test_syncing_an_overlays_entries_plans_what_the_plain_sync_planned(seed):
    pairs = [("02:42:0a:00:00:%02x" % (n * 7 % 40), "192.0.2.%d" % (10 + n % 3)) for n in range(40)]
    present = set(pairs[seed : seed + 20])
    wanted = set(pairs[seed * 3 : seed * 3 + 25])

    class Host:
        plan = Plan()

    overlay._sync_entries(Host, "overlay ov", None, {}, "add_fdb", "vx-ov", present, wanted)
    plain = Plan()
    plain.sync(
        "overlay ov",
        None,
        {},
        "host",
        "add_fdb",
        [("vx-ov",) + e for e in sorted(present)],
        [("vx-ov",) + e for e in sorted(wanted)],
    )
    assert [change.apply for change in Host.plan.changes] == [change.apply for change in plain.changes]
    assert [change.what for change in Host.plan.changes] == [change.what for change in plain.changes]


def test_the_bridges_learnt_macs_are_read_only_when_an_endpoint_went():
    network = model.OverlayNetwork.from_overlay_params(
        dict(
            name="ov",
            subnet="10.0.0.0/8",
            vni=42,
            local_ip="192.0.2.11",
            peers=[{"vtep": "192.0.2.12", "endpoints": ["10.0.0.2", "10.0.0.3"]}],
        )
    )
    asked = []

    def learned():
        asked.append(True)
        return ["02:42:0A:00:00:04", "02:42:0a:00:00:02"]

    assert overlay._learned_of_gone_endpoints(learned, network.to_record(), network) == [] and not asked
    gone = model.OverlayNetwork.from_overlay_params(
        dict(
            name="ov",
            subnet="10.0.0.0/8",
            vni=42,
            local_ip="192.0.2.11",
            peers=[{"vtep": "192.0.2.12", "endpoints": ["10.0.0.3", "10.0.0.4"]}],
        )
    )
    assert overlay._learned_of_gone_endpoints(learned, gone.to_record(), network) == ["02:42:0a:00:00:04"]
    assert asked
