"""An overlay switched from control_plane evpn back to static: refused while FRR runs in the namespace (zebra would go
on programming the VNI), and with FRR stopped what zebra left is removed - the planning over facts, and the netlink
dump that finds zebra's entries."""

from __future__ import annotations

import socket

import pytest
from facts import Machine, Runner
from test_overlay_evpn import (
    APP,
    APP_IP,
    APP_MAC,
    EVPN_STORE,
    NOARP,
    PEERS,
    PERMANENT,
    _dumping,
    _neigh,
    attached_evpn,
    evpn_host,
    words,
)
from test_planners import OVERLAY, link, listing, sandbox_with

from ansible_collections.cnm.network.plugins.module_utils import rtnl

STATIC = dict(OVERLAY, control_plane="static")
REMOTE_MAC, REMOTE_IP = "02:42:0a:c8:02:02", "10.200.2.2"
# what a zebra killed before it could withdraw them leaves: the VXLAN device's entry and the bridge's, a neighbour
ZEBRAS = {
    (socket.AF_BRIDGE, "vx-ov"): [(REMOTE_MAC, "192.0.2.12"), (REMOTE_MAC, None)],
    (socket.AF_INET, "br-ov"): [(REMOTE_MAC, REMOTE_IP)],
}


@pytest.fixture
def runner(tmp_path, monkeypatch) -> Runner:
    return Runner(tmp_path, monkeypatch)


def test_leaving_evpn_is_refused_while_zebra_runs_in_the_namespace_naming_control_plane(runner):
    machine = Machine(evpn_host(frr_daemons=[(4242, "zebra")], zebras=ZEBRAS), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=EVPN_STORE, peers=PEERS, **STATIC)

    assert run.failed, run.result
    message = run.result["msg"]
    assert message.startswith("option 'control_plane': static cannot take overlay ov off EVPN"), message
    assert "zebra pid 4242" in message and "Stop FRR for this overlay first" in message
    assert "cnm_overlay_control_plane" in message and "nothing was changed" in message
    assert run.host.plan.changes == []  # refused before anything was planned


def test_watchfrr_alone_is_refused_too_it_would_start_zebra_again(runner):
    machine = Machine(evpn_host(frr_daemons=[(77, "watchfrr")]), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=EVPN_STORE, peers=PEERS, **STATIC)

    assert run.failed and "watchfrr pid 77" in run.result["msg"], run.result


def test_with_frr_stopped_the_switch_removes_what_zebra_left_before_writing_its_own_entries(runner):
    machine = Machine(evpn_host(zebras=ZEBRAS), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=EVPN_STORE, peers=PEERS, **STATIC)

    assert not run.failed, run.result
    changes = words(run)
    left = [
        "remove neighbour %s lladdr %s dev br-ov (zebra's, no owner without FRR)" % (REMOTE_IP, REMOTE_MAC),
        "remove fdb %s dev vx-ov master (zebra's, no owner without FRR)" % REMOTE_MAC,
        "remove fdb %s dst 192.0.2.12 extern_learn (zebra's, no owner without FRR)" % REMOTE_MAC,
    ]
    assert [change for change in changes if "zebra's" in change] == left
    # the bridge's new MAC flushes its neighbours: zebra's are removed before it
    assert changes.index(left[0]) < [i for i, c in enumerate(changes) if c.startswith("set bridge br-ov address")][0]
    flood = changes.index("add fdb 00:00:00:00:00:00 dst 192.0.2.12")
    assert max(changes.index(change) for change in left) < flood  # removed before the module's own are written
    diff = run.diff
    before, after = diff["before"]["overlay ov"], diff["after"]["overlay ov"]
    assert before["zebra_neighbours"] == ["neighbour %s lladdr %s dev br-ov" % (REMOTE_IP, REMOTE_MAC)]
    assert before["zebra_fdb"] == [
        "fdb %s dev vx-ov master" % REMOTE_MAC,
        "fdb %s dst 192.0.2.12 extern_learn" % REMOTE_MAC,
    ]
    assert after["zebra_neighbours"] == after["zebra_fdb"] == []


def test_a_static_rerun_reads_neither_frr_nor_zebras_entries(runner):
    """Only the switch looks: a static overlay's rerun costs no process scan and no extra dump."""
    machine = Machine(evpn_host(frr_daemons=[(4242, "zebra")], zebras=ZEBRAS), ruleset=listing("ov"))
    static_store = dict(EVPN_STORE, networks={"ov": dict(EVPN_STORE["networks"]["ov"], control_plane="static")})

    run = runner.run(machine, "cnm_overlay", store=static_store, peers=PEERS, **STATIC)

    assert not run.failed, run.result
    assert not [change for change in words(run) if "zebra's" in change]


def test_the_zebra_dump_finds_extern_learn_and_proto_zebra_entries_of_one_device_only():
    fdb = _dumping(
        [
            _neigh(socket.AF_BRIDGE, 5, PERMANENT, rtnl.NTF_SELF, "00:00:00:00:00:00", "192.0.2.12"),  # the module's
            _neigh(socket.AF_BRIDGE, 5, PERMANENT | NOARP, rtnl.NTF_SELF, "00:00:00:00:00:00", "192.0.2.13"),  # flood
            _neigh(socket.AF_BRIDGE, 5, 0, rtnl.NTF_SELF | rtnl.NTF_EXT_LEARNED, REMOTE_MAC, "192.0.2.13"),
            _neigh(socket.AF_BRIDGE, 5, 0, rtnl.NTF_MASTER | rtnl.NTF_EXT_LEARNED, REMOTE_MAC, master=4),
            _neigh(socket.AF_BRIDGE, 6, 0, rtnl.NTF_SELF | rtnl.NTF_EXT_LEARNED, REMOTE_MAC, "192.0.2.13"),  # not vx
        ]
    )
    assert fdb.zebras(socket.AF_BRIDGE, 5) == [(REMOTE_MAC, "192.0.2.13"), (REMOTE_MAC, None)]
    neighbours = _dumping(
        [
            _neigh(socket.AF_INET, 4, PERMANENT, 0, "02:42:0a:c8:01:00", "10.200.1.0"),  # an endpoint's (the module's)
            _neigh(socket.AF_INET, 4, NOARP, rtnl.NTF_EXT_LEARNED, REMOTE_MAC, REMOTE_IP, protocol=rtnl.RTPROT_ZEBRA),
        ]
    )
    assert neighbours.zebras(socket.AF_INET, 4) == [(REMOTE_MAC, REMOTE_IP)]


def test_leaving_evpn_sets_the_bridges_new_mac_after_the_endpoints_removed_their_neighbours(runner):
    """A new MAC makes the kernel flush the bridge's neighbours, permanent ones too: the endpoints' EVPN neighbours
    are removed first, or their removal would find nothing (ENOENT) and fail the switch."""
    store = dict(EVPN_STORE, endpoints={"ov|netns:app": APP})

    machine = attached_evpn()
    inner = link(2, "eth0", "veth", mtu=1450, mac=APP_MAC, peer_index=6)
    machine.sandboxes["netns:app"] = sandbox_with(inner, APP_IP + "/16", "10.200.0.1")

    run = runner.run(machine, "cnm_overlay", store=store, peers=PEERS, **STATIC)

    assert not run.failed, run.result
    changes = words(run)
    removal = changes.index("remove neighbour %s lladdr %s" % (APP_IP, APP_MAC))
    new_mac = [i for i, change in enumerate(changes) if change.startswith("set bridge br-ov address 02:42:")]
    assert new_mac and removal < new_mac[0], changes
