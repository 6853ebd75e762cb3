"""control_plane: evpn on overlays - FRR programs the remote entries, the module shapes the kernel for it: the planning
over facts (no root), the record, and the netlink messages that tell zebra's entries from the module's."""

from __future__ import annotations

import socket
import struct

import pytest
from facts import Machine, Runner
from test_planners import OV_STORE, OVERLAY, VXLAN, docker_host, host_with_overlay, link, listing
from test_recover import facts_of

from ansible_collections.cnm.network.plugins.module_utils import rtnl
from ansible_collections.cnm.network.plugins.module_utils.model import OverlayNetwork, host_veth_name
from ansible_collections.cnm.network.plugins.module_utils.records import NetworkRecord, OverlayRecord
from ansible_collections.cnm.network.plugins.module_utils.recover import rebuild
from ansible_collections.cnm.network.plugins.module_utils.store import FORMAT_VERSION

EVPN = dict(OVERLAY, control_plane="evpn")
PEERS = ["192.0.2.12", "192.0.2.13"]
GATEWAY_MAC = "02:42:0a:c8:00:01"  # 02:42 + 10.200.0.1
OV_EVPN = dict(
    OV_STORE["networks"]["ov"],
    control_plane="evpn",
    peers=[{"endpoints": [], "vtep": "192.0.2.12"}, {"endpoints": [], "vtep": "192.0.2.13"}],
)
EVPN_STORE = dict(OV_STORE, networks={"ov": OV_EVPN})
VETH = host_veth_name("ov", "netns:app")
APP_MAC, APP_IP = "02:42:0a:c8:01:00", "10.200.1.0"  # the first address of this host's ip_range
APP = {
    "default_route": True,
    "gw_priority": 0,
    "host_ifname": VETH,
    "ifname": "eth0",
    "ipv4_address": APP_IP,
    "ipv6_address": None,
    "link": "veth",
    "mac_address": APP_MAC,
    "network": "ov",
    "routes": [],
    "sandbox": "netns:app",
    "static_ipv4": False,
    "static_ipv6": False,
    "static_mac": False,
    "sysctls": {},
    "name": "app",
}


@pytest.fixture
def runner(tmp_path, monkeypatch) -> Runner:
    return Runner(tmp_path, monkeypatch)


def evpn_host(*links, **facts):
    """The host as cnm_overlay left an EVPN overlay: the gateway's MAC on br-ov, vx-ov's port suppressing ARP and
    not learning, no FDB or neighbour entries of the module's on vx-ov."""
    return docker_host(
        link(4, "br-ov", "bridge", mtu=1450, mac=GATEWAY_MAC, alias="cnm:network:ov"),
        link(5, "vx-ov", "vxlan", mtu=1450, mac="02:68:fb:0a:0a:f4", master=4, alias="cnm:overlay:ov", vxlan=VXLAN),
        *links,
        addresses={"br-ov": ["10.200.0.1/16"]},
        sysctls={
            "net/ipv4/ip_forward": "1",
            "net/ipv6/conf/br-ov/disable_ipv6": "1",
            "net/ipv6/conf/vx-ov/disable_ipv6": "1",
        },
        port_options=dict({"vx-ov": {"neigh_suppress": True, "learning": False}}, **facts.pop("port_options", {})),
        **facts,
    )


def words(run) -> list:
    return [what for _target, what in run.changes]


# ---- the overlay ----


def test_a_new_evpn_overlay_writes_no_entries_from_its_peers_and_shapes_the_port_and_the_bridge_mac(runner):
    run = runner.run(Machine(docker_host()), "cnm_overlay", peers=PEERS, **EVPN)

    assert not run.failed, run.result
    changes = words(run)
    assert not [change for change in changes if change.startswith(("add fdb", "add neighbour"))]
    create = changes.index("create vxlan vx-ov vni 4200 local 192.0.2.11 port 4789 on br-ov")
    assert changes[create + 1] == "set bridge port vx-ov neigh_suppress on learning off"
    bridge = [c for c in run.host.plan.changes if c.what == "create bridge br-ov mtu 1450"][0]
    assert bridge.apply.args[3] == GATEWAY_MAC  # the same on every host: derived from the gateway
    after = run.diff["after"]["overlay ov"]
    assert (after["fdb"], after["neighbours"]) == ([], [])
    assert after["bridge_port"] == {"neigh_suppress": True, "learning": False}
    assert run.state["networks"]["ov"]["control_plane"] == "evpn"
    assert run.result["network"]["control_plane"] == "evpn"
    assert "network ov vxlan peers only" in str(run.host.plan.changes)  # restrict_peers still names the VTEPs


def test_an_evpn_overlay_rerun_on_matching_facts_plans_nothing(runner):
    machine = Machine(evpn_host(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=EVPN_STORE, peers=PEERS, **EVPN)

    assert not run.failed, run.result
    assert run.changes == []


def test_a_static_overlay_switched_to_evpn_loses_the_modules_entries_in_place(runner):
    machine = Machine(host_with_overlay(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=OV_STORE, peers=PEERS, **EVPN)

    assert not run.failed, run.result
    changes = words(run)
    assert "set bridge br-ov address %s" % GATEWAY_MAC in changes
    assert "set bridge port vx-ov neigh_suppress on learning off" in changes
    assert {
        "remove fdb 02:42:0a:c8:02:02 dst 192.0.2.12",
        "remove fdb 00:00:00:00:00:00 dst 192.0.2.12",
        "remove fdb 00:00:00:00:00:00 dst 192.0.2.13",
        "remove neighbour 10.200.2.2 lladdr 02:42:0a:c8:02:02",
    } <= set(changes)
    assert not any(change.startswith(("create vxlan", "re-create", "create bridge")) for change in changes)
    before, after = run.diff["before"]["overlay ov"], run.diff["after"]["overlay ov"]
    assert before["bridge_port"] == {"neigh_suppress": False, "learning": True}
    assert after["bridge_port"] == {"neigh_suppress": True, "learning": False}


def test_an_evpn_overlay_switched_back_to_static_gets_its_entries_and_the_ports_defaults(runner):
    machine = Machine(evpn_host(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=EVPN_STORE, peers=PEERS, control_plane="static", **OVERLAY)

    changes = words(run)
    assert "set bridge port vx-ov neigh_suppress off learning on" in changes
    assert "add fdb 00:00:00:00:00:00 dst 192.0.2.12" in changes
    assert any(change.startswith("set bridge br-ov address 02:42:") for change in changes)
    assert "control_plane" not in run.state["networks"]["ov"]  # static: the file as before


def test_evpn_with_encryption_is_refused_naming_both_options(runner):
    run = runner.run(
        Machine(docker_host()), "cnm_overlay", peers=PEERS, encrypted=True, encryption_key="k" * 20, **EVPN
    )

    assert run.failed and "option 'control_plane'" in run.result["msg"] and "encrypted" in run.result["msg"]
    assert run.host is None or run.host.plan.changes == []


def test_an_unknown_control_plane_is_refused_by_the_argument_spec(runner):
    run = runner.run(Machine(docker_host()), "cnm_overlay", peers=PEERS, **dict(OVERLAY, control_plane="bgp"))

    assert run.failed and "control_plane" in run.result["msg"]


# ---- endpoints on an EVPN overlay ----


def test_an_endpoint_on_an_evpn_overlay_gets_a_static_fdb_entry_and_a_permanent_neighbour(runner):
    machine = Machine(evpn_host(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_endpoint", store=EVPN_STORE, network="ov", netns="app")

    assert not run.failed, run.result
    target = "endpoint ov on netns:app"
    assert (target, "add fdb %s dev %s master static" % (APP_MAC, VETH)) in run.changes
    assert (target, "add neighbour %s lladdr %s" % (APP_IP, APP_MAC)) in run.changes
    after = run.diff["after"][target]
    assert after["port_fdb"] == ["%s dev %s" % (APP_MAC, VETH)]
    assert after["bridge_neighbours"] == ["%s lladdr %s" % (APP_IP, APP_MAC)]


def test_an_endpoint_on_a_static_overlay_reads_and_writes_no_evpn_entries(runner):
    machine = Machine(host_with_overlay(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_endpoint", store=OV_STORE, network="ov", netns="app")

    assert not run.failed, run.result
    assert not [c for c in words(run) if "master static" in c or c.startswith("add neighbour")]
    assert "bridge_neighbours" not in run.diff["after"]["endpoint ov on netns:app"]


def attached_evpn(**facts) -> Machine:
    veth = link(6, VETH, "veth", mac="5a:1c:cc:f9:58:a3", master=4, peer_index=2, alias="cnm:endpoint:ov|netns:app")
    return Machine(
        evpn_host(veth, neighbours={"br-ov": [(APP_MAC, APP_IP)]}, port_fdb={VETH: [APP_MAC]}, **facts),
        ruleset=listing("ov"),
    )


def test_a_detach_from_an_evpn_overlay_removes_the_neighbour_that_outlives_the_veth(runner):
    store = dict(EVPN_STORE, endpoints={"ov|netns:app": APP})

    run = runner.run(attached_evpn(), "cnm_endpoint", store=store, network="ov", netns="app", state="absent")

    assert not run.failed, run.result
    changes = words(run)
    removal = changes.index("remove neighbour %s lladdr %s" % (APP_IP, APP_MAC))
    assert changes[removal + 1].startswith("detach app")  # the port's FDB entry goes with the veth


# ---- the record ----


def test_an_older_overlay_record_reads_as_static_and_evpn_is_written_only_when_set():
    old = NetworkRecord.from_dict(dict(OV_STORE["networks"]["ov"]))
    assert isinstance(old, OverlayRecord) and old.control_plane == "static"
    assert "control_plane" not in old.to_dict()
    evpn = NetworkRecord.from_dict(OV_EVPN)
    assert evpn.control_plane == "evpn" and evpn.to_dict()["control_plane"] == "evpn"
    network = OverlayNetwork.from_record("ov", evpn)
    assert network.evpn and network.bridge_mac == GATEWAY_MAC
    assert OverlayNetwork.from_record("ov", old).bridge_mac != GATEWAY_MAC  # static: pinned from the name


# ---- netlink: zebra's entries are never the module's; static entries of bridge ports ----

_NDMSG = struct.Struct("=BxxxiHBB")


def _neigh(family, index, state, flags, mac, dst=None, master=None, protocol=None) -> tuple:
    body = _NDMSG.pack(family, index, state, flags, 0) + rtnl.attr(rtnl.NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))
    if dst is not None:
        body += rtnl.attr(rtnl.NDA_DST, socket.inet_aton(dst))
    if master is not None:
        body += rtnl.attr(rtnl.NDA_MASTER, struct.pack("=I", master))
    if protocol is not None:
        body += rtnl.attr(rtnl.NDA_PROTOCOL, bytes([protocol]))
    return rtnl.RTM_NEWNEIGH, body


def _dumping(messages: list) -> rtnl.Rtnl:
    client = rtnl.Rtnl.__new__(rtnl.Rtnl)  # no kernel socket
    client._request = lambda kind, flags, body: iter(messages)
    return client


PERMANENT, NOARP, REACHABLE = rtnl.NUD_PERMANENT, rtnl.NUD_NOARP, 0x02


def test_the_permanent_dump_leaves_zebras_entries_out_and_noarp_ones_for_evpn():
    fdb = _dumping(
        [
            _neigh(socket.AF_BRIDGE, 5, PERMANENT, rtnl.NTF_SELF, "00:00:00:00:00:00", "192.0.2.12"),  # the module's
            _neigh(socket.AF_BRIDGE, 5, PERMANENT | NOARP, rtnl.NTF_SELF, "00:00:00:00:00:00", "192.0.2.13"),  # zebra
            _neigh(
                socket.AF_BRIDGE, 5, PERMANENT, rtnl.NTF_SELF | rtnl.NTF_EXT_LEARNED, "02:42:0a:c8:02:02", "192.0.2.13"
            ),
            _neigh(socket.AF_BRIDGE, 5, REACHABLE, rtnl.NTF_SELF, "02:42:0a:c8:02:03", "192.0.2.13"),
        ]
    )
    # an EVPN overlay's dump: zebra's flood entry (NOARP as well as permanent) and its MACs (extern_learn) left out
    assert fdb.neighbours(socket.AF_BRIDGE, 5, noarp=False) == [("00:00:00:00:00:00", "192.0.2.12")]
    # a static overlay's: a NOARP flood entry is the module's or made by hand (``bridge fdb append``), as before
    assert fdb.neighbours(socket.AF_BRIDGE, 5) == [
        ("00:00:00:00:00:00", "192.0.2.12"),
        ("00:00:00:00:00:00", "192.0.2.13"),
    ]
    neighbours = _dumping(
        [
            _neigh(socket.AF_INET, 4, PERMANENT, 0, "02:42:0a:c8:01:00", "10.200.1.0"),  # the module's
            _neigh(socket.AF_INET, 4, NOARP, rtnl.NTF_EXT_LEARNED, "02:42:0a:c8:02:02", "10.200.2.2", protocol=11),
            _neigh(socket.AF_INET, 4, PERMANENT, 0, "02:42:0a:c8:02:03", "10.200.2.3", protocol=rtnl.RTPROT_ZEBRA),
        ]
    )
    assert neighbours.neighbours(socket.AF_INET, 4) == [("02:42:0a:c8:01:00", "10.200.1.0")]


def test_the_port_fdb_dump_lists_only_static_entries_of_bridge_ports():
    client = _dumping(
        [
            _neigh(socket.AF_BRIDGE, 6, NOARP, 0, "02:42:0a:c8:01:00", master=4),  # bridge fdb add ... master static
            _neigh(socket.AF_BRIDGE, 6, PERMANENT, 0, "5a:1c:cc:f9:58:a3", master=4),  # the port's own (local)
            _neigh(socket.AF_BRIDGE, 6, REACHABLE, 0, "02:42:0a:c8:01:09", master=4),  # learnt
            _neigh(socket.AF_BRIDGE, 5, NOARP, rtnl.NTF_EXT_LEARNED, "02:42:0a:c8:02:02", master=4),  # zebra's
            _neigh(socket.AF_BRIDGE, 5, NOARP, rtnl.NTF_SELF, "02:42:0a:c8:02:03", "192.0.2.13"),  # a VTEP's
        ]
    )
    assert client.port_fdb() == {6: ["02:42:0a:c8:01:00"]}


def test_a_port_fdb_request_is_a_static_master_entry():
    kind, flags, body = rtnl.port_fdb_request(True, 6, "02:42:0A:C8:01:00")
    assert (kind, flags) == (rtnl.RTM_NEWNEIGH, rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE)
    assert _NDMSG.unpack_from(body) == (socket.AF_BRIDGE, 6, NOARP, rtnl.NTF_MASTER, 0)
    attrs = rtnl.attributes(body, _NDMSG.size)
    assert attrs[rtnl.NDA_LLADDR] == bytes([2, 0x42, 10, 200, 1, 0]) and rtnl.NDA_DST not in attrs
    assert rtnl.port_fdb_request(False, 6, "02:42:0a:c8:01:00")[:2] == (rtnl.RTM_DELNEIGH, 0)


def test_port_flags_are_set_only_as_given_and_read_with_the_kernels_defaults():
    client = rtnl.Rtnl.__new__(rtnl.Rtnl)
    sent = []
    client._ack = lambda kind, flags, body: sent.append(body)
    client.set_port_flags(5, neigh_suppress=True, learning=False)
    protinfo = rtnl.attributes(rtnl.attributes(sent[0], 16)[rtnl.IFLA_PROTINFO])
    assert protinfo == {rtnl.IFLA_BRPORT_NEIGH_SUPPRESS: b"\1", rtnl.IFLA_BRPORT_LEARNING: b"\0"}
    client.set_port_flags(6, False, True)  # isolated, hairpin: as endpoints set them
    protinfo = rtnl.attributes(rtnl.attributes(sent[1], 16)[rtnl.IFLA_PROTINFO])
    assert protinfo == {rtnl.IFLA_BRPORT_ISOLATED: b"\0", rtnl.IFLA_BRPORT_MODE: b"\1"}

    flags = rtnl.attr(rtnl.IFLA_BRPORT_NEIGH_SUPPRESS, b"\1") + rtnl.attr(rtnl.IFLA_BRPORT_MODE, b"\1")
    port = struct.pack("=BxHiII", socket.AF_BRIDGE, 0, 5, 0, 0) + rtnl.attr(
        rtnl.IFLA_PROTINFO | rtnl.NLA_F_NESTED, flags
    )
    assert _dumping([(rtnl.RTM_NEWLINK, port)]).port_flags() == {
        5: {"isolated": False, "hairpin": True, "neigh_suppress": True, "learning": True}
    }


# ---- a lost store: the VXLAN port's neigh_suppress tells an EVPN overlay ----


def test_a_lost_store_brings_an_evpn_overlay_back_as_evpn():
    params = dict(name="ov", subnet="10.99.0.0/24", vni=4242, local_ip="192.0.2.1", peers=["192.0.2.2"])
    record = OverlayNetwork.from_overlay_params(dict(params, control_plane="evpn"), underlay_mtu=1500).to_record()
    store = {"version": FORMAT_VERSION, "networks": {"ov": record.to_dict()}, "endpoints": {}}
    facts = facts_of(store, {record.vxlan_name: [["00:00:00:00:00:00", "192.0.2.2"]]})  # zebra's flood entry
    vxlan = [device for device in facts["links"] if device["kind"] == "vxlan"][0]
    vxlan["neigh_suppress"] = True
    data, report = rebuild(facts)
    assert data["networks"]["ov"] == record, report
    del vxlan["neigh_suppress"]  # a static overlay's port
    assert rebuild(facts)[0]["networks"]["ov"].control_plane == "static"
