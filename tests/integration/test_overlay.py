"""Overlay networks across three namespace hosts on one underlay bridge (real VXLAN, real traffic)."""

from __future__ import annotations

import contextlib
import json

import pytest
from conftest import RUN_PREFIX, LabHost, ingress_counters, pings, sh, tcp_connects, wire_underlay

SUBNET = "10.200.0.0/16"
VTEPS = {1: "192.0.2.11", 2: "192.0.2.12", 3: "192.0.2.13"}


@contextlib.contextmanager
def three_hosts():
    """Three hosts (eth0 192.0.2.11-13) joined by a bridge in an underlay namespace, and a rogue at .99."""
    prefix = "%s-ov%s" % (RUN_PREFIX, pytest.importorskip("secrets").token_hex(2))
    underlay = prefix + "-ul"
    made = {i: LabHost("%s-h%d" % (prefix, i)) for i in VTEPS}
    rogue = LabHost(prefix + "-rogue")
    try:
        wire_underlay(underlay, [(i, host, VTEPS[i]) for i, host in made.items()] + [(99, rogue, "192.0.2.99")])
        yield made, rogue
    finally:
        for host in list(made.values()) + [rogue]:
            host.destroy()
        sh("ip netns del %s" % underlay, check=False)


@pytest.fixture
def hosts():
    with three_hosts() as made:
        yield made


@pytest.fixture(scope="module")
def bad_input_hosts():
    """The same hosts, host 1 with a bridge network ``web``, shared by the bad-input tests (built once for the
    file): each checks that it leaves them as they were."""
    with three_hosts() as (made, rogue):
        made[1].ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
        yield made, rogue


def _ov_args(i: int, peers: list) -> dict:
    return dict(name="ov", vni=4200, subnet=SUBNET, ip_range="10.200.%d.0/24" % i, local_ip=VTEPS[i], peers=peers)


def overlay(host, i: int, peers: list, **extra) -> dict:
    return host.module("cnm_overlay", **_ov_args(i, peers), **extra)


def build(made: dict) -> dict:
    """Overlay on every host, one endpoint each, then every host gets the full peer list."""
    endpoints = {}
    for i, host in made.items():
        assert not overlay(host, i, []).get("failed")
        endpoints[i] = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))["endpoint"]
    for i, host in made.items():
        host.ok(
            "cnm_overlay",
            name="ov",
            vni=4200,
            subnet=SUBNET,
            ip_range="10.200.%d.0/24" % i,
            local_ip=VTEPS[i],
            peers=peers_of(i, endpoints),
        )
    return endpoints


def peers_of(i: int, endpoints: dict, without=()) -> list:
    return [
        {"vtep": VTEPS[j], "endpoints": [{"ip": endpoints[j]["ipv4_address"], "mac": endpoints[j]["mac_address"]}]}
        for j in sorted(endpoints)
        if j != i and j not in without
    ]


def fdb(host) -> list:
    lines = host.sh("bridge fdb show dev vx-ov").stdout.splitlines()
    return sorted(line.split()[0] + " " + line.split(" dst ")[1].split()[0] for line in lines if " dst " in line)


def test_endpoints_on_three_hosts_talk_across_the_overlay(hosts):
    made, _rogue = hosts
    endpoints = build(made)
    assert [endpoints[i]["ipv4_address"] for i in (1, 2, 3)] == ["10.200.1.0", "10.200.2.0", "10.200.3.0"] or all(
        endpoints[i]["ipv4_address"].startswith("10.200.%d." % i) for i in (1, 2, 3)
    )
    for i, host in made.items():
        for j in made:
            if i != j:
                assert pings(host.sandbox("c"), endpoints[j]["ipv4_address"]), "%d -> %d" % (i, j)
    assert tcp_connects(made[1].sandbox("c"), made[3].sandbox("c"), endpoints[3]["ipv4_address"])
    # full-size frames with don't-fragment at the overlay MTU (1500 - 50) pass; one byte more does not
    assert pings(made[1].sandbox("c"), endpoints[2]["ipv4_address"], "-M do -s %d" % (1450 - 28))
    assert not pings(made[1].sandbox("c"), endpoints[2]["ipv4_address"], "-M do -s %d" % (1450 - 27))
    for i, host in made.items():  # a second run changes nothing
        assert overlay(host, i, peers_of(i, endpoints))["changed"] is False


def test_fdb_and_neighbours_are_exact_as_peers_come_and_go(hosts):
    made, _rogue = hosts
    endpoints = build(made)
    host = made[1]
    expected = sorted(
        [
            "00:00:00:00:00:00 192.0.2.12",
            "00:00:00:00:00:00 192.0.2.13",
            "%s 192.0.2.12" % endpoints[2]["mac_address"],
            "%s 192.0.2.13" % endpoints[3]["mac_address"],
        ]
    )
    assert fdb(host) == expected
    neigh = host.sh("ip neigh show dev vx-ov").stdout
    assert endpoints[2]["ipv4_address"] in neigh and "PERMANENT" in neigh
    result = overlay(host, 1, peers_of(1, endpoints, without=(3,)))
    assert result["changed"] and fdb(host) == sorted(
        ["00:00:00:00:00:00 192.0.2.12", "%s 192.0.2.12" % endpoints[2]["mac_address"]]
    )
    assert endpoints[3]["ipv4_address"] not in host.sh("ip neigh show dev vx-ov").stdout
    check = overlay(host, 1, peers_of(1, endpoints), check=True)
    assert check["changed"] and fdb(host) == sorted(
        ["00:00:00:00:00:00 192.0.2.12", "%s 192.0.2.12" % endpoints[2]["mac_address"]]
    )
    assert overlay(host, 1, peers_of(1, endpoints))["changes"] == check["changes"]
    assert fdb(host) == expected


def learned_on_the_tunnel(host) -> list:
    """The MACs host's bridge learnt on its VXLAN port (not the module's static entries, nor the local ones)."""
    entries = json.loads(host.sh("bridge -j fdb show br br-ov").stdout or "[]")
    return sorted(e["mac"] for e in entries if e.get("ifname") == "vx-ov" and not e.get("state") and "dst" not in e)


def test_a_pruned_peers_endpoints_are_forgotten_by_the_bridge_at_once(hosts):
    made, _rogue = hosts
    endpoints = build(made)
    host, gone = made[1], endpoints[3]["mac_address"]
    assert pings(made[3].sandbox("c"), endpoints[1]["ipv4_address"])  # host 1's bridge learns host 3's endpoint
    assert gone in learned_on_the_tunnel(host)

    check = overlay(host, 1, peers_of(1, endpoints, without=(3,)), check=True)
    pruned = overlay(host, 1, peers_of(1, endpoints, without=(3,)))

    flush = "flush learned fdb %s dev vx-ov (no longer behind a peer)" % gone
    assert flush in check["changes"] and pruned["changes"] == check["changes"]
    assert gone not in learned_on_the_tunnel(host)
    assert overlay(host, 1, peers_of(1, endpoints, without=(3,)))["changed"] is False


def test_vxlan_from_a_namespace_that_is_not_a_peer_never_reaches_the_bridge(hosts):
    made, rogue = hosts
    endpoints = build(made)
    rogue.sh(
        "ip link add vxr type vxlan id 4200 dstport 4789 local 192.0.2.99 remote 192.0.2.11 && ip addr add "
        "10.200.99.1/16 dev vxr"
        " && ip link set vxr up"
    )

    rogue_mac = json.loads(rogue.sh("ip -j link show vxr").stdout)[0]["address"]
    # only the rogue's frames: it sends from 192.0.2.99, its frames leave vxr with its MAC
    with ingress_counters(
        made[1].name,
        underlay=("eth0", "ip saddr 192.0.2.99 udp dport 4789"),
        device=("vx-ov", "ether saddr %s" % rogue_mac),
    ) as counts:
        assert not pings(rogue.name, endpoints[1]["ipv4_address"])
        seen = counts()
    assert seen["underlay"] >= 1 and seen["device"] == 0, seen  # they arrived, and none reached the device
    rules = made[1].ruleset()
    assert "network ov vxlan peers only" in rules


def test_absent_leaves_nothing_behind(hosts):
    made, _rogue = hosts
    host = made[1]
    empty = host.snapshot()
    assert not overlay(host, 1, [{"vtep": VTEPS[2], "endpoints": [{"ip": "10.200.2.9"}]}]).get("failed")
    host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))
    host.ok("cnm_overlay", name="ov", state="absent", force=True)
    host.ok("cnm_endpoint", network="none", netns=host.sandbox("c"), state="absent", delete_netns=True)
    after = host.snapshot()
    for state in (
        empty,
        after,
    ):  # flooding towards the peer resolved its VTEP on the underlay: the kernel's ARP entry, not ours
        state[host.name]["neighbours"] = [n for n in state[host.name]["neighbours"] if n[1] != "eth0"]
    assert after == empty


def test_options_left_out_keep_the_overlays_values(hosts):
    made, _rogue = hosts
    host = made[1]
    peers = [{"vtep": VTEPS[2], "endpoints": [{"ip": "10.200.2.9"}]}]
    host.ok("cnm_overlay", **dict(_ov_args(1, peers), mtu=1400, port=4790, icc=False))
    host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))

    predicted = host.module("cnm_overlay", check=True, name="ov")
    rerun = host.module("cnm_overlay", name="ov")  # vni, subnet, local_ip, peers, mtu, port, icc: as they are
    assert (predicted["changed"], rerun["changed"], rerun["changes"]) == (False, False, []), rerun["changes"]
    network = rerun["network"]
    assert (network["mtu"], network["port"], network["icc"], len(network["peers"])) == (1400, 4790, False, 1)
    assert json.loads(host.in_sandbox("c", "ip -j link show eth0").stdout)[0]["mtu"] == 1400

    new_peers = host.ok("cnm_overlay", name="ov", peers=[VTEPS[3]])  # only the peers change
    assert [change for change in new_peers["changes"] if "mtu" in change] == []
    assert new_peers["network"]["mtu"] == 1400 and new_peers["network"]["port"] == 4790


BAD = {
    "vni_zero": (dict(vni=0), "vni"),
    "vni_too_big": (dict(vni=16777216), "vni"),
    "port_zero_is_not_the_default": (dict(port=0), "port"),  # was silently 4789
    "local_ip_not_on_this_host": (dict(local_ip="192.0.2.50"), "local_ip"),
    "local_ip_not_an_address": (dict(local_ip="vtep1"), "local_ip"),
    "mtu_over_what_the_underlay_allows": (dict(mtu=1451), "mtu"),
    "ip_range_outside_subnet": (dict(ip_range="10.201.0.0/24"), "ip_range"),
    "peer_equal_to_local_ip": (dict(peers=["192.0.2.11"]), "peers[0].vtep"),
    "peer_not_an_address": (dict(peers=["far-away"]), "peers[0].vtep"),
    "peer_listed_twice": (dict(peers=["192.0.2.12", {"vtep": "192.0.2.12"}]), "peers"),
    "peer_endpoint_bad_mac": (
        dict(peers=[{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.2.9", "mac": "zz"}]}]),
        "peers[0].endpoints[0].mac",
    ),
    "encrypted_on_this_kernel": (dict(encrypted=True, encryption_key="0123456789abcdef"), "encrypted"),
    "subnet_overlaps_a_bridge_network": (dict(subnet="172.30.0.0/16", ip_range=None), "subnet"),
}


@pytest.mark.parametrize("args, option", list(BAD.values()), ids=list(BAD))
def test_bad_overlay_input_fails_naming_the_option_and_changes_nothing(bad_input_hosts, args, option):
    made, _rogue = bad_input_hosts
    host = made[1]
    before = host.snapshot()
    params = dict(name="ov", vni=4200, subnet=SUBNET, ip_range="10.200.1.0/24", local_ip=VTEPS[1], peers=[])
    params.update(args)
    result = host.module("cnm_overlay", **{k: v for k, v in params.items() if v is not None})
    assert result.get("failed") and "option '%s'" % option in result["msg"], result
    assert host.snapshot() == before


def test_a_vxlan_port_in_use_by_another_device_is_refused(hosts):
    made, _rogue = hosts
    host = made[1]
    host.sh("ip link add vxm type vxlan id 4200 dstport 4789 local 192.0.2.11")
    before = host.snapshot()
    result = overlay(host, 1, [])
    assert result.get("failed") and "option 'port'" in result["msg"] and "vxm" in result["msg"]
    assert host.snapshot() == before


def test_encrypted_without_a_key_is_refused_by_the_argument_spec(bad_input_hosts):
    made, _rogue = bad_input_hosts
    result = overlay(made[1], 1, [], encrypted=True)
    assert result.get("failed") and "encryption_key" in result["msg"]
