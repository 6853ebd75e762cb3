"""Overlay networks with BGP EVPN as the control plane (control_plane: evpn): FRR's zebra and bgpd run inside each
namespace host (started here, as the role starts them on real hosts) and program the remote entries; the module only
shapes the kernel for them. Real VXLAN, real BGP, real traffic."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import COLLECTIONS, RUN_PREFIX, LabHost, pings, sh, wait_for, wire_underlay
from test_lab import assert_ok, recap_changed, run_playbook
from test_playbooks import PLAYBOOKS, lab_of

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

    def pid(self, daemon: str) -> int:
        with open(os.path.join(self.dir, "%s.pid" % daemon)) as handle:
            return int(handle.read().strip())

    def halt(self, sig: int) -> None:
        """Stop both, returning once they are gone: SIGTERM to bgpd then zebra (a clean stop: zebra withdraws what it
        programmed when bgpd leaves), or SIGKILL to zebra then bgpd (a crash: zebra's entries stay in the kernel)."""
        for daemon in ("zebra", "bgpd") if sig == signal.SIGKILL else ("bgpd", "zebra"):
            pid = self.pid(daemon)
            os.kill(pid, sig)
            wait_for(lambda pid=pid: not os.path.exists("/proc/%d" % pid), "%s %s exits" % (self.host.name, daemon))
            os.unlink(os.path.join(self.dir, "%s.pid" % daemon))  # stop() must not signal a reused pid

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


def static_peers(endpoints: dict, i: int) -> list:
    """Host ``i``'s peers with the endpoints (cnm_endpoint's results by host) behind them."""
    return [
        {"vtep": VTEPS[j], "endpoints": [{"ip": endpoints[j]["ipv4_address"], "mac": endpoints[j]["mac_address"]}]}
        for j in VTEPS
        if j != i
    ]


def test_a_static_overlay_switched_to_evpn_loses_the_modules_entries_and_keeps_its_traffic(hosts):
    made, frr = hosts
    endpoints = {}
    for i, host in made.items():
        assert not overlay(host, i, "static", peers=[]).get("failed")
        endpoints[i] = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))["endpoint"]

    def peers(i):
        return static_peers(endpoints, i)

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


ZEBRAS_SCRIPT = r"""
import json, socket, sys
from ansible_collections.cnm.network.plugins.module_utils import rtnl
client = rtnl.Rtnl()
links = {link["name"]: link["index"] for link in client.links()}
found = []
for family, device in ((socket.AF_BRIDGE, sys.argv[2]), (socket.AF_INET, sys.argv[1])):
    for state, flags, protocol, mac, address in client._remote_entries(family, links[device]):
        if rtnl.is_zebras(flags, protocol) or (family == socket.AF_BRIDGE and state & rtnl.NUD_NOARP):
            found.append((device, mac, address))
print(json.dumps(sorted(found)))
"""


def zebras(netns: str, bridge: str = "br-ov", vxlan: str = "vx-ov") -> list:
    """What FRR's zebra wrote in a namespace, as netlink shows it (iproute2 prints a NOARP flood entry as any
    permanent one): the VXLAN device's extern_learn and NOARP FDB entries, the bridge's extern_learn or proto zebra
    neighbours; (device, MAC, VTEP or IP) each."""
    found = sh(
        "PYTHONPATH=%s %s -c %s %s %s" % (COLLECTIONS, sys.executable, shlex.quote(ZEBRAS_SCRIPT), bridge, vxlan),
        netns=netns,
    )
    return [tuple(entry) for entry in json.loads(found.stdout)]


def test_leaving_evpn_is_refused_while_frr_runs_and_once_it_stopped_leaves_nothing_of_zebras(hosts):
    """evpn -> static: refused (check mode too, nothing changed) while zebra runs; with FRR stopped - h1's killed, so
    its entries stay as after a crash, h2's stopped cleanly - the switch removes what zebra left and traffic flows on
    the module's entries."""
    made, frr = hosts
    h1, h2 = made[1], made[2]
    endpoints = {}
    for i, host in made.items():
        assert not overlay(host, i).get("failed")
        endpoints[i] = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))["endpoint"]
    for daemons in frr.values():
        daemons.start()
    c2 = endpoints[2]
    wait_for(lambda: pings(h1.sandbox("c"), c2["ipv4_address"]), "traffic over EVPN")
    remote = [
        ("br-ov", c2["mac_address"], c2["ipv4_address"]),
        ("vx-ov", "00:00:00:00:00:00", VTEPS[2]),
        ("vx-ov", c2["mac_address"], VTEPS[2]),
    ]
    wait_for(lambda: zebras(h1.name) == remote, "zebra's entries for h2's endpoint on h1")

    before = snapshot_without_underlay_arp(h1)
    for check in (True, False):
        refused = overlay(h1, 1, "static", peers=static_peers(endpoints, 1), check=check)
        message = refused.get("msg", "")
        assert refused.get("failed") and message.startswith(
            "option 'control_plane': static cannot take overlay ov off EVPN while FRR runs in this network namespace"
        ), refused
        assert "zebra pid %d" % frr[1].pid("zebra") in message and "nothing was changed" in message
    assert snapshot_without_underlay_arp(h1) == before and zebras(h1.name) == remote  # nothing half-done

    frr[1].halt(signal.SIGKILL)
    frr[2].halt(signal.SIGTERM)
    assert zebras(h1.name) == remote  # a killed zebra's entries stay
    assert zebras(h2.name) == []  # a clean stop withdraws them (bgpd first)

    before = snapshot_without_underlay_arp(h1)
    check = overlay(h1, 1, "static", peers=static_peers(endpoints, 1), check=True)
    assert check["changed"] and snapshot_without_underlay_arp(h1) == before
    switched = overlay(h1, 1, "static", peers=static_peers(endpoints, 1))
    assert not switched.get("failed"), switched
    assert switched["changes"] == check["changes"], (switched["changes"], check["changes"])
    left = [change for change in switched["changes"] if "(zebra's, no owner without FRR)" in change]
    assert left == [
        "remove neighbour %s lladdr %s dev br-ov (zebra's, no owner without FRR)"
        % (c2["ipv4_address"], c2["mac_address"]),
        "remove fdb %s dev vx-ov master (zebra's, no owner without FRR)" % c2["mac_address"],
        "remove fdb 00:00:00:00:00:00 dst %s noarp (zebra's, no owner without FRR)" % VTEPS[2],
        "remove fdb %s dst %s extern_learn (zebra's, no owner without FRR)" % (c2["mac_address"], VTEPS[2]),
    ], left
    assert zebras(h1.name) == [] and "extern_learn" not in h1.sh("bridge fdb show dev vx-ov").stdout
    assert not overlay(h2, 2, "static", peers=static_peers(endpoints, 2)).get("failed")
    for host in (h1, h2):
        assert port_flags(host, "vx-ov") == {"neigh_suppress": False, "learning": True}
        assert [n for n in bridge_neighbours(host) if "PERMANENT" in n[2] or n[3] == "zebra"] == []  # nothing of EVPN
    assert sorted(ours(vx_fdb(h1))) == sorted(
        ["%s dst %s self permanent" % (mac, VTEPS[2]) for mac in ("00:00:00:00:00:00", c2["mac_address"])]
    )
    assert pings(h1.sandbox("c"), c2["ipv4_address"]) and pings(h2.sandbox("c"), endpoints[1]["ipv4_address"])
    assert overlay(h1, 1, "static", peers=static_peers(endpoints, 1))["changed"] is False


# --- the role: one variable takes a lab off EVPN --------------------------------------------------------------------


@pytest.fixture
def lab3(tmp_path: Path):
    with lab_of(tmp_path, 3) as made:
        yield made


def frr_daemons(netns: str) -> list:
    """The FRR daemons running in a namespace."""
    names = []
    for pid in sh("ip netns pids %s" % netns).stdout.split():
        with contextlib.suppress(OSError), open("/proc/%s/comm" % pid) as handle:
            names.append(handle.read().strip())
    return sorted(name for name in names if name in ("zebra", "bgpd", "watchfrr"))


def recap_failed(result) -> dict:
    return {host: int(failed) for host, failed in re.findall(r"^(\S+)\s+:.*\sfailed=(\d+)", result.stdout, re.M)}


def lab_port_flags(netns: str) -> dict:
    port = json.loads(sh("bridge -d -j link show dev vx-ov0", netns=netns).stdout)[0]
    return {key: port.get(key) for key in ("neigh_suppress", "learning")}


def test_the_role_takes_a_lab_off_evpn_with_one_variable_stopping_frr_first(lab3, tmp_path: Path):
    """evpn -> static by cnm_overlay_control_plane alone: refused on a host whose FRR serves another EVPN overlay,
    predicted by check mode on the others without a change; then FRR stopped on every host and the overlay converged
    on the module's entries (the role's own check pings across), nothing of zebra's left; a rerun changes nothing."""
    prefix, inventory, env = lab3
    hosts = ["%s-%s" % (prefix, name) for name in ("h1", "h2", "h3")]

    def overlay_play(*extra):
        return run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, *extra)

    evpn, static = ("-e", "cnm_overlay_control_plane=evpn"), ("-e", "cnm_overlay_control_plane=static")
    assert_ok(overlay_play(*evpn))
    assert [frr_daemons(host) for host in hosts] == [["bgpd", "zebra"]] * 3

    # h1's FRR serves a second EVPN overlay too: stopping it would take that one down
    second = tmp_path / "second.yml"
    second.write_text(
        "- hosts: h1\n  gather_facts: false\n  tasks:\n    - cnm.network.cnm_overlay:\n        name: ov1\n"
        "        state: '{{ state }}'\n        vni: 4201\n        subnet: 10.201.0.0/16\n"
        "        ip_range: 10.201.1.0/24\n        local_ip: 192.0.2.11\n"
        "        control_plane: evpn\n        peers: []\n"
    )
    assert_ok(run_playbook(second, str(inventory), env, "-e", "state=present"))
    check = overlay_play("--check", *static)
    assert check.returncode != 0 and recap_failed(check) == {"h1": 1, "h2": 0, "h3": 0}, check.stdout
    assert "overlay ov0 cannot leave EVPN on h1 while this host's FRR serves EVPN overlay ov1 too" in " ".join(
        check.stdout.split()
    ), check.stdout
    # h2 and h3: check mode says FRR would be stopped first, and stops there; nothing changed anywhere
    assert [frr_daemons(host) for host in hosts] == [["bgpd", "zebra"]] * 3
    assert all(lab_port_flags(host)["neigh_suppress"] for host in hosts)
    assert_ok(run_playbook(second, str(inventory), env, "-e", "state=absent"))

    switched = overlay_play(*static)
    assert_ok(switched)  # the role's own check crossed the hosts over the module's entries
    assert "UNREACHABLE" not in switched.stdout and ": reachable" in switched.stdout
    for host in hosts:
        assert frr_daemons(host) == [] and not os.path.exists("/run/cnm-network/frr/%s" % host)
        assert zebras(host, "br-ov0", "vx-ov0") == []
        assert lab_port_flags(host) == {"neigh_suppress": False, "learning": True}
    rerun = overlay_play(*static)
    assert_ok(rerun)
    assert recap_changed(rerun) == {"h1": 0, "h2": 0, "h3": 0}
