"""Overlay networks with BGP EVPN as the control plane (control_plane: evpn): FRR's zebra and bgpd run inside each
namespace host (started here, as the role starts them on real hosts) and program the remote entries; the module only
shapes the kernel for them. Real VXLAN, real BGP, real traffic."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import tempfile

import pytest
from conftest import RUN_PREFIX, LabHost, pings, sh, wait_for, wire_underlay

FRR = "/usr/lib/frr"
SUBNET = "10.200.0.0/16"
GATEWAY_MAC = "02:42:0a:c8:00:01"  # 02:42 + 10.200.0.1, the gateway
VTEPS = {1: "192.0.2.11", 2: "192.0.2.12"}


def _have_frr() -> bool:
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return False
    return all(os.access(os.path.join(FRR, daemon), os.X_OK) for daemon in ("zebra", "bgpd")) and bool(
        shutil.which("vtysh")
    )


pytestmark = pytest.mark.skipif(not _have_frr(), reason="FRR (zebra, bgpd, vtysh, user frr) is not installed")


class Frr:
    """zebra and bgpd inside one lab host's namespace, their files in a directory of their own (owned by frr)."""

    def __init__(self, host: LabHost, vtep: str, peers: list) -> None:
        self.host, self.vtep, self.peers = host, vtep, peers
        self.dir = tempfile.mkdtemp(prefix="%s-frr-" % host.name)

    def start(self) -> None:
        d, name = self.dir, self.host.name
        neighbours = "".join(" neighbor %s remote-as 65000\n" % peer for peer in self.peers)
        activate = "".join("  neighbor %s activate\n" % peer for peer in self.peers)
        files = {
            "zebra.conf": "hostname %s\nlog file %s/zebra.log\n" % (name, d),
            "bgpd.conf": "hostname %s\nlog file %s/bgpd.log\nfrr defaults datacenter\nrouter bgp 65000\n"
            " bgp router-id %s\n no bgp default ipv4-unicast\n%s address-family l2vpn evpn\n%s  advertise-all-vni\n"
            " exit-address-family\n" % (name, d, self.vtep, neighbours, activate),
        }
        for file_name, text in files.items():
            with open(os.path.join(d, file_name), "w") as handle:
                handle.write(text)
        sh("chown -R frr:frr %s" % d)
        for daemon in ("zebra", "bgpd"):
            sh(
                "ip netns exec %s %s/%s -d -N %s -f %s/%s.conf -i %s/%s.pid -z %s/zserv.api --vty_socket %s -P 0 "
                "</dev/null >%s/%s.out 2>&1" % (name, FRR, daemon, name, d, daemon, d, daemon, d, d, d, daemon)
            )

    def vtysh(self, command: str):
        return json.loads(sh("vtysh --vty_socket %s -c %s" % (self.dir, "'%s'" % command)).stdout or "{}")

    def established(self) -> bool:
        peers = self.vtysh("show bgp l2vpn evpn summary json").get("peers", {})
        return sorted(peers) == sorted(self.peers) and all(p.get("state") == "Established" for p in peers.values())

    def stop(self) -> None:
        for daemon in ("bgpd", "zebra"):
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(self.dir, "%s.pid" % daemon)) as handle:
                    os.kill(int(handle.read().strip()), 15)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def two_hosts():
    """Two hosts (eth0 192.0.2.11-12) on an underlay bridge; their FRR is started by the test (Frr.start) and
    always stopped here."""
    prefix = "%s-ev%s" % (RUN_PREFIX, secrets.token_hex(2))
    underlay = prefix + "-ul"
    made = {i: LabHost("%s-h%d" % (prefix, i)) for i in VTEPS}
    frr = {i: Frr(host, VTEPS[i], [VTEPS[j] for j in VTEPS if j != i]) for i, host in made.items()}
    try:
        wire_underlay(underlay, [(i, host, VTEPS[i]) for i, host in made.items()])
        yield made, frr
    finally:
        for daemons in frr.values():
            daemons.stop()
        for host in made.values():
            sh("ip netns pids %s | xargs -r kill" % host.name, check=False)
            host.destroy()
        sh("ip netns del %s" % underlay, check=False)


@pytest.fixture
def hosts():
    with two_hosts() as made:
        yield made


def overlay(host, i: int, control_plane: str = "evpn", peers=None, **extra) -> dict:
    """cnm_overlay ``ov`` on host ``i``; with EVPN the peers are only the other VTEPs (restrict_peers)."""
    if peers is None:
        peers = [VTEPS[j] for j in VTEPS if j != i]
    return host.module(
        "cnm_overlay",
        name="ov",
        vni=4200,
        subnet=SUBNET,
        ip_range="10.200.%d.0/24" % i,
        local_ip=VTEPS[i],
        peers=peers,
        control_plane=control_plane,
        **extra,
    )


def vx_fdb(host) -> list:
    """The VXLAN device's FDB entries towards VTEPs, each as ``bridge fdb`` shows it."""
    return sorted(line.strip() for line in host.sh("bridge fdb show dev vx-ov").stdout.splitlines() if " dst " in line)


def ours(entries: list) -> list:
    """The entries the module would have written: permanent ones that are not zebra's (extern_learn)."""
    return [entry for entry in entries if "extern_learn" not in entry and "permanent" in entry]


def bridge_neighbours(host) -> list:
    return sorted(
        (n["dst"], n.get("lladdr"), tuple(n.get("state", [])), n.get("protocol"))
        for n in json.loads(host.sh("ip -j neigh show dev br-ov").stdout or "[]")
        if not n["dst"].startswith("fe80:")
    )


def port_flags(host, device: str) -> dict:
    port = json.loads(host.sh("bridge -d -j link show dev %s" % device).stdout)[0]
    return {key: port.get(key) for key in ("neigh_suppress", "learning")}


def mac_of(host, device: str) -> str:
    return json.loads(host.sh("ip -j link show %s" % device).stdout)[0]["address"]


def snapshot_without_underlay_arp(host) -> dict:
    state = host.snapshot()
    # flooding resolved the peer's VTEP on the underlay: the kernel's ARP entry on eth0, not the module's
    state[host.name]["neighbours"] = [n for n in state[host.name]["neighbours"] if n[1] != "eth0"]
    return state


def test_an_endpoint_attached_on_one_host_is_reached_from_the_other_with_no_run_there(hosts):
    made, frr = hosts
    h1, h2 = made[1], made[2]
    empty = snapshot_without_underlay_arp(h1)
    check = overlay(h1, 1, check=True)
    assert check["changed"] and not check.get("failed"), check
    assert snapshot_without_underlay_arp(h1) == empty  # check mode changes nothing
    first = overlay(h1, 1)
    assert first["changed"] and first["changes"] == check["changes"], (first, check)
    assert first["network"]["control_plane"] == "evpn"
    assert "set bridge port vx-ov neigh_suppress on learning off" in first["changes"]
    assert overlay(h1, 1)["changed"] is False
    assert not overlay(h2, 2).get("failed")
    for host in (h1, h2):
        assert port_flags(host, "vx-ov") == {"neigh_suppress": True, "learning": False}
        assert mac_of(host, "br-ov") == GATEWAY_MAC  # the distributed gateway answers the same everywhere
        assert ours(vx_fdb(host)) == []  # nothing from the peers: FRR's to program
    for daemons in frr.values():
        daemons.start()
    wait_for(lambda: all(daemons.established() for daemons in frr.values()), "the EVPN sessions are established")

    c2 = h2.ok("cnm_endpoint", network="ov", netns=h2.sandbox("c"))["endpoint"]
    attach = dict(network="ov", netns=h1.sandbox("c"))
    check = h1.module("cnm_endpoint", check=True, **attach)
    assert check["changed"] and not [n for n in bridge_neighbours(h1) if "PERMANENT" in n[2]]  # zebra's may be there
    c1 = h1.ok("cnm_endpoint", **attach)
    assert c1["changes"] == check["changes"] and c1["diff"] == check["diff"]
    mac, ip = c1["endpoint"]["mac_address"], c1["endpoint"]["ipv4_address"]
    port = c1["endpoint"]["host_ifname"] if "host_ifname" in c1["endpoint"] else None
    assert "add neighbour %s lladdr %s" % (ip, mac) in c1["changes"]
    assert any(change.startswith("add fdb %s dev " % mac) for change in c1["changes"])
    after = c1["diff"]["after"]["endpoint ov on netns:%s" % h1.sandbox("c")]
    assert after["bridge_neighbours"] == ["%s lladdr %s" % (ip, mac)]
    assert (ip, mac, ("PERMANENT",), None) in bridge_neighbours(h1)
    static = [line for line in h1.sh("bridge fdb show br br-ov").stdout.splitlines() if line.startswith(mac)]
    assert any("static" in line and (port is None or port in line) for line in static), static
    rerun = h1.module("cnm_endpoint", **attach)
    assert rerun["changed"] is False, rerun["changes"]

    # h2 learns c1 from BGP alone: zebra's entries, and traffic
    wait_for(lambda: any(line.startswith(mac) and "extern_learn" in line for line in vx_fdb(h2)), "c1's MAC on h2")
    wait_for(lambda: pings(h2.sandbox("c"), ip), "h2's endpoint reaches c1")
    assert pings(h1.sandbox("c"), c2["ipv4_address"])
    zebras = [n for n in bridge_neighbours(h2) if n[0] == ip]
    assert zebras and zebras[0][3] == "zebra", bridge_neighbours(h2)

    # reruns on h2 leave zebra's entries alone (the module's dump does not see them)
    flood = "00:00:00:00:00:00 dst %s self permanent" % VTEPS[1]  # zebra's (type-3), NOARP as well as permanent
    wait_for(lambda: flood in vx_fdb(h2), "zebra's flood entry towards h1 on h2")
    fdb_before, neighbours_before = vx_fdb(h2), bridge_neighbours(h2)
    assert any("extern_learn" in line for line in fdb_before)
    assert overlay(h2, 2)["changed"] is False
    assert h2.module("cnm_endpoint", network="ov", netns=h2.sandbox("c"))["changed"] is False
    assert vx_fdb(h2) == fdb_before and bridge_neighbours(h2) == neighbours_before

    # the detach withdraws it everywhere
    detach = h1.ok("cnm_endpoint", network="ov", netns=h1.sandbox("c"), state="absent", delete_netns=True)
    assert "remove neighbour %s lladdr %s" % (ip, mac) in detach["changes"]
    assert all(n[0] != ip for n in bridge_neighbours(h1))
    wait_for(lambda: not any(line.startswith(mac) for line in vx_fdb(h2)), "c1's MAC withdrawn on h2")
    wait_for(lambda: all(n[0] != ip for n in bridge_neighbours(h2)), "c1's neighbour withdrawn on h2")

    # absent leaves nothing (links, entries, rules, store)
    h1.ok("cnm_overlay", name="ov", state="absent", force=True)
    assert snapshot_without_underlay_arp(h1) == empty


def test_a_static_overlay_switched_to_evpn_loses_the_modules_entries_and_keeps_its_traffic(hosts):
    made, frr = hosts
    endpoints = {}
    for i, host in made.items():
        assert not overlay(host, i, "static", peers=[]).get("failed")
        endpoints[i] = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))["endpoint"]

    def peers(i):
        return [
            {"vtep": VTEPS[j], "endpoints": [{"ip": endpoints[j]["ipv4_address"], "mac": endpoints[j]["mac_address"]}]}
            for j in VTEPS
            if j != i
        ]

    for i, host in made.items():
        assert not overlay(host, i, "static", peers=peers(i)).get("failed")
    assert pings(made[1].sandbox("c"), endpoints[2]["ipv4_address"])
    assert len(ours(vx_fdb(made[1]))) == 2  # the flood entry and the peer's endpoint
    static_mac = mac_of(made[1], "br-ov")

    h1 = made[1]
    before = snapshot_without_underlay_arp(h1)
    check = overlay(h1, 1, peers=peers(1), check=True)
    assert check["changed"] and snapshot_without_underlay_arp(h1) == before
    switched = overlay(h1, 1, peers=peers(1))
    assert switched["changes"] == check["changes"], (switched, check)
    assert "set bridge br-ov address %s" % GATEWAY_MAC in switched["changes"]
    assert any(change.startswith("remove fdb 00:00:00:00:00:00 dst") for change in switched["changes"])
    assert ours(vx_fdb(h1)) == [] and "PERMANENT" not in h1.sh("ip neigh show dev vx-ov").stdout
    assert mac_of(h1, "br-ov") == GATEWAY_MAC != static_mac
    assert port_flags(h1, "vx-ov") == {"neigh_suppress": True, "learning": False}
    # its attached endpoint now has what zebra advertises (followed from the network's change)
    c1 = endpoints[1]
    assert (c1["ipv4_address"], c1["mac_address"], ("PERMANENT",), None) in bridge_neighbours(h1)
    assert overlay(h1, 1, peers=peers(1))["changed"] is False
    assert h1.module("cnm_endpoint", network="ov", netns=h1.sandbox("c"))["changed"] is False
    assert not overlay(made[2], 2, peers=peers(2)).get("failed")

    for daemons in frr.values():
        daemons.start()
    wait_for(lambda: pings(made[2].sandbox("c"), c1["ipv4_address"]), "traffic flows again over EVPN")
    assert pings(h1.sandbox("c"), endpoints[2]["ipv4_address"])
    assert overlay(h1, 1, peers=peers(1))["changed"] is False

    # a lost store comes back as EVPN (the VXLAN port suppresses ARP), and cnm_info sees no drift in zebra's entries
    os.unlink(os.path.join(h1.store_path(), "state.json"))
    info = h1.ok("cnm_info", frr_vty_socket=frr[1].dir)
    assert [(n["name"], n["control_plane"]) for n in info["networks"]] == [("ov", "evpn")]
    assert info["drift"] == [] and info["evpn"]["reachable"], info["drift"]  # FRR and the kernel agree too
    assert overlay(h1, 1, peers=peers(1))["changes"] == ["write the store"]
    assert overlay(h1, 1, peers=peers(1))["changed"] is False


def test_evpn_with_encryption_is_refused_naming_both_options(hosts):
    made, _frr = hosts
    host = made[1]
    before = host.snapshot()
    result = overlay(host, 1, encrypted=True, encryption_key="0123456789abcdef")
    assert result.get("failed") and "option 'control_plane'" in result["msg"] and "encrypted" in result["msg"]
    result = overlay(host, 1, "bgp")
    assert result.get("failed") and "control_plane" in result["msg"], result
    assert host.snapshot() == before


def evpn_report(host, frr: Frr) -> dict:
    info = host.ok("cnm_info", network=["ov"], gather=["peers"], frr_vty_socket=frr.dir)
    return dict(info["evpn"], drift=sorted((d["kind"], d["object"]) for d in info["drift"]))


def test_cnm_info_reports_frrs_sessions_and_entries_and_where_the_kernel_disagrees(hosts):
    made, frr = hosts
    endpoints = {}
    for i, host in made.items():
        assert not overlay(host, i).get("failed")
        endpoints[i] = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))["endpoint"]
    for daemons in frr.values():
        daemons.start()
    wait_for(lambda: all(daemons.established() for daemons in frr.values()), "the EVPN sessions are established")
    h1, remote_mac = made[1], endpoints[2]["mac_address"]
    wait_for(lambda: any(line.startswith(remote_mac) for line in vx_fdb(h1)), "h2's endpoint programmed on h1")
    wait_for(lambda: VTEPS[2] in evpn_report(h1, frr[1])["networks"][0]["remote_vteps"]["kernel"], "flood entry")

    report = evpn_report(h1, frr[1])
    assert report["reachable"] and report["sessions"] == [
        {"peer": VTEPS[2], "state": "Established", "established": True}
    ]
    network = report["networks"][0]
    assert (network["vni"], network["vni_known"]) == (4200, True)
    assert network["remote_vteps"] == {"frr": [VTEPS[2]], "kernel": [VTEPS[2]]}
    assert network["remote_macs"]["frr"] == network["remote_macs"]["kernel"] == [{"mac": remote_mac, "vtep": VTEPS[2]}]
    assert report["drift"] == []

    # ghosts as a SIGKILLed zebra leaves them: a flood entry and a MAC towards a VTEP FRR never heard of
    ghost = "02:42:0a:c8:63:63"
    h1.sh("bridge fdb append 00:00:00:00:00:00 dev vx-ov dst 192.0.2.99 self permanent")
    h1.sh("bridge fdb add %s dev vx-ov dst 192.0.2.99 self extern_learn" % ghost)
    assert evpn_report(h1, frr[1])["drift"] == [
        ("evpn_mac_stale", "fdb %s" % ghost),
        ("evpn_vtep_stale", "vxlan vx-ov vtep 192.0.2.99"),
    ]

    # bgpd gone on h2: h1's session is down (and zebra withdraws h2's entries)
    frr[2].stop()
    wait_for(
        lambda: ("evpn_session_down", "bgp %s" % VTEPS[2]) in evpn_report(h1, frr[1])["drift"],
        "h1 reports its session with h2 down",
    )
    # FRR gone on h1: said once, no guess about the entries
    frr[1].stop()
    report = evpn_report(h1, frr[1])
    assert not report["reachable"] and report["error"] and report["drift"] == [("evpn_frr_unreachable", "frr")]
    assert report["networks"][0]["remote_macs"]["frr"] is None
