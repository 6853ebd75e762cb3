"""cnm_info on EVPN overlays: FRR's answers (one vtysh run, three JSON documents) beside the VXLAN device's FDB
(plugins/module_utils/evpn.py), and the report that holds them."""

from __future__ import annotations

import dataclasses
import json

from test_info import OV, host_facts, kinds, state

from ansible_collections.cnm.network.plugins.module_utils import evpn
from ansible_collections.cnm.network.plugins.module_utils.info import DRIFT_KINDS, InfoQuery, report, select
from ansible_collections.cnm.network.plugins.module_utils.records import PeerRecord

VTEP, MAC = "192.0.2.12", "02:42:0a:c8:02:05"
SUMMARY = {"routerId": "192.0.2.11", "as": 65000, "peers": {VTEP: {"state": "Established", "pfxRcd": 3}}}
VNIS = {"4200": {"vni": 4200, "type": "L2", "vxlanIf": "vx-ov", "remoteVteps": [VTEP]}}
MACS = {
    "4200": {
        "numMacs": 2,
        "macs": {
            "02:42:0a:c8:01:00": {"type": "local", "intf": "ve-1"},
            MAC.upper(): {"type": "remote", "remoteVtep": VTEP},
        },
    }
}
AGREED = [("00:00:00:00:00:00", VTEP), (MAC, VTEP)]


def vtysh_output(*documents) -> str:
    """What vtysh prints for several -c questions: the documents one after the other, each indented."""
    return "\n".join(json.dumps(document, indent=2) for document in documents) + "\n"


def test_one_vtysh_run_answers_sessions_vteps_and_remote_macs():
    facts = evpn.parse(vtysh_output(SUMMARY, VNIS, MACS))

    assert facts.error is None
    assert facts.sessions == {VTEP: "Established"}
    assert facts.vteps == {4200: [VTEP]}
    assert facts.macs == {4200: {MAC: VTEP}}  # remote ones only, lower case


def test_frr_that_does_not_answer_says_why():
    assert "is FRR running" in evpn.parse(vtysh_output(SUMMARY, VNIS)).error
    assert "bgpd did not answer" in evpn.parse(vtysh_output({}, VNIS, MACS)).error
    assert "not JSON" in evpn.parse("% Unknown command\n").error
    assert evpn.frr_drift(evpn.FrrFacts("vtysh (package frr) was not found"))[0][0] == "evpn_frr_unreachable"


def test_vtysh_is_asked_once_with_the_socket_directory():
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, vtysh_output(SUMMARY, VNIS, MACS), ""

    facts = evpn.read(run, "/run/cnm-network/frr/h1")

    if facts.error == "vtysh (package frr) was not found":
        assert calls == []
        return
    assert len(calls) == 1 and calls[0][1:3] == ["--vty_socket", "/run/cnm-network/frr/h1"]
    assert [calls[0][i + 1] for i, word in enumerate(calls[0]) if word == "-c"] == list(evpn.COMMANDS)


def test_kernel_and_frr_agreeing_is_no_drift():
    view, found = evpn.overlay_view("ov", 4200, "vx-ov", AGREED, evpn.parse(vtysh_output(SUMMARY, VNIS, MACS)))

    assert found == []
    assert view["remote_vteps"] == {"frr": [VTEP], "kernel": [VTEP]}
    assert view["remote_macs"]["frr"] == view["remote_macs"]["kernel"] == [{"mac": MAC, "vtep": VTEP}]


def test_ghosts_missing_entries_and_a_moved_mac_are_each_named():
    facts = evpn.parse(vtysh_output(SUMMARY, VNIS, MACS))
    moved = [("00:00:00:00:00:00", "192.0.2.99"), (MAC, "192.0.2.99"), ("02:42:0a:c8:63:63", "192.0.2.99")]

    _view, found = evpn.overlay_view("ov", 4200, "vx-ov", moved, facts)

    assert [(kind, obj) for kind, obj, _message, _want, _have in found] == [
        ("evpn_vtep_missing", "vxlan vx-ov vtep 192.0.2.12"),
        ("evpn_vtep_stale", "vxlan vx-ov vtep 192.0.2.99"),
        ("evpn_mac_missing", "fdb %s" % MAC),
        ("evpn_mac_stale", "fdb 02:42:0a:c8:63:63"),
    ]
    assert found[2][4] == {"mac": MAC, "vtep": "192.0.2.99"}  # found: where the kernel sends it instead


def test_a_vni_zebra_does_not_know_and_a_session_down():
    facts = evpn.parse(vtysh_output(dict(SUMMARY, peers={VTEP: {"state": "Active"}}), {}, {}))

    _view, found = evpn.overlay_view("ov", 4200, "vx-ov", [], facts)

    assert [kind for kind, *_rest in found] == ["evpn_vni_unknown"]
    assert evpn.frr_drift(facts) == [
        ("evpn_session_down", "bgp %s" % VTEP, "the BGP EVPN session with %s is Active, not Established" % VTEP)
    ]


def test_the_report_has_evpn_only_for_evpn_overlays_and_documents_its_drift_kinds():
    data = state({"ov": dataclasses.replace(OV, control_plane="evpn", peers=(PeerRecord(VTEP),))}, {})
    facts = host_facts()
    facts.fdb["vx-ov"], facts.neighbours["vx-ov"] = [], []  # none of the module's on an EVPN overlay
    facts.tunnel_fdb["vx-ov"] = [("00:00:00:00:00:00", VTEP)]
    facts.frr = evpn.parse(vtysh_output(SUMMARY, VNIS, MACS))
    query = InfoQuery(gather=frozenset(["peers"]))

    result = report(data, query, select(data, query), facts, {})

    assert result["evpn"]["reachable"] and result["evpn"]["sessions"][0]["established"]
    assert [n["network"] for n in result["evpn"]["networks"]] == ["ov"]
    evpn_kinds = [kind for kind in kinds(result["drift"]) if kind.startswith("evpn_")]
    assert evpn_kinds == ["evpn_mac_missing"] and set(evpn_kinds) <= set(DRIFT_KINDS)  # the MAC FRR has, not programmed
    assert "evpn" not in report(state(), query, select(state(), query), host_facts(), {})
