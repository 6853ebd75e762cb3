"""A removal that fails late leaves the store describing the kernel (issue 11, item 3).

Every removal path with ports published on all addresses, on 127.0.0.1 and over UDP: cnm_bridge absent with
force (endpoints attached), cnm_overlay absent force, cnm_macvlan absent force (its sandbox also publishes on a
bridge network, whose ports must survive), cnm_endpoint absent (a detach, and a detach that deletes the
namespace) and cnm_port_publish absent. Each run is made to fail (``CNM_FAIL_AT=change:N`` raises an OSError
just before the Nth change) right after every step that cannot be undone (a bridge, veth, macvlan, shim or
namespace deleted) and at the store write, the last change; ``CNM_FAULTS_EVERY=1`` fails it at every change.

After each failed run the store equals what the kernel holds, checked twice: by cnm_info (no drift) and
directly (cnm devices by their aliases, nft map elements, sandboxes against the store's records). The next run
converges, the run after it changes nothing, and the removed ports no longer answer the LAN.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import sh
from test_ports import HOST, ask, servers, wait_answer  # noqa: F401 pylint: disable=unused-import

PORTS = ["4000:80", "127.0.0.1:4001:80", "5353:53/udp"]
PORTS_B = ["4100:80", "127.0.0.1:4101:80", "5454:53/udp"]  # b's, published with no server behind them
EVERY = os.environ.get("CNM_FAULTS_EVERY") == "1"
OVERLAY = dict(name="ov", vni=4300, subnet="10.201.0.0/24", local_ip=HOST, peers=[])
MACVLAN = dict(
    name="lan",
    parent="mv0",
    subnet="192.168.60.0/24",
    gateway="192.168.60.1",
    ip_range="192.168.60.64/28",
    host_access=True,
    host_access_ip="192.168.60.100",
)


@pytest.fixture
def lab(host, world, servers):  # noqa: F811 - the fixture of test_ports
    """Sandboxes a and b (made here, so they outlive the networks); a serves TCP 80 and UDP 53."""
    for short in ("a", "b"):
        sh("ip netns add %s && ip -n %s link set lo up" % (host.sandbox(short), host.sandbox(short)))
    servers(host.sandbox("a"), "tcp", 80, "web-a")
    servers(host.sandbox("a"), "udp", 53, "dns-a")
    return host


def build(host, driver: str = "bridge") -> None:
    """Network web (a bridge, or overlay ov) with a and b attached and publishing; a answers on its ports."""
    if driver == "overlay":
        host.ok("cnm_overlay", **OVERLAY)
    else:
        host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    network = "ov" if driver == "overlay" else "web"
    host.ok("cnm_endpoint", network=network, endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])
    host.ok("cnm_port_publish", network=network, netns=host.sandbox("a"), ports=PORTS)
    host.ok("cnm_port_publish", network=network, netns=host.sandbox("b"), ports=PORTS_B)
    if driver == "macvlan":
        host.ok("cnm_macvlan", **MACVLAN)
        host.ok(
            "cnm_endpoint",
            network="lan",
            endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))],
            default_route=False,
        )  # the replies of a's ports go through the host
    answers_on_its_ports(host)


def answers_on_its_ports(host) -> None:
    lan = host.sandbox("lan")
    assert wait_answer(lan, "tcp", HOST, 4000, "web-a") == "web-a"
    assert wait_answer(host.name, "tcp", "127.0.0.1", 4001, "web-a") == "web-a"
    assert wait_answer(lan, "udp", HOST, 5353, "dns-a") == "dns-a"


def aliases(host, netns: str) -> dict:
    return {
        link.get("ifalias"): link["ifname"]
        for link in json.loads(sh("ip -j link show", netns=netns).stdout)
        if (link.get("ifalias") or "").startswith("cnm:")
    }


def published(host) -> set:
    """(protocol, host port) of every element of the published-port maps in table inet cnm."""
    text = host.sh("nft list table inet cnm", check=False).stdout
    return {(protocol, int(port)) for protocol, port in re.findall(r"\b(tcp|udp) \. (?:\S+ \. )?(\d+) :", text)}


def stored_ports(store: dict) -> set:
    return {(entry["protocol"], entry["host_port"]) for entry in store.get("ports", {}).values()}


def assert_store_is_kernel(host, message: str = "") -> None:
    """The store lists exactly the cnm objects the kernel holds, and cnm_info sees no drift but the devices of the
    networks the failure ``message`` says are partly removed (an overlay whose bridge went, not yet its VXLAN
    device): those stay listed, so the next run removes the rest."""
    store = host.store() or {"networks": {}, "endpoints": {}}
    devices = aliases(host, host.name)
    owners = ("cnm:network:", "cnm:overlay:", "cnm:shim:")
    kernel_networks = {alias.split(":", 2)[2] for alias in devices if alias.startswith(owners)}
    deviceless = {name for name, r in store["networks"].items() if r["driver"] == "macvlan" and not r.get("shim_name")}
    assert kernel_networks == set(store["networks"]) - deviceless
    held = {alias[len("cnm:endpoint:") :] for alias in devices if alias.startswith("cnm:endpoint:")}
    for short in ("a", "b"):
        if os.path.exists("/run/netns/%s" % host.sandbox(short)):
            held |= {
                alias[len("cnm:endpoint:") :]
                for alias, name in aliases(host, host.sandbox(short)).items()
                if alias.startswith("cnm:endpoint:") and name != "lo"
            }
    assert held == set(store["endpoints"]), (held, store["endpoints"])
    assert published(host) == stored_ports(store)
    partly = re.search(r"; ([^;]*) partly removed", message)
    networks = set(re.findall(r"network ([^, ]+)", partly.group(1))) if partly else set()
    drift = host.ok("cnm_info")["drift"]
    allowed = {("network_device_missing", name) for name in networks}
    assert [d for d in drift if (d["kind"], d["network"]) not in allowed] == [], drift
    assert bool(drift) == bool(networks), (drift, message)


def fail_points(changes: list, every: bool = EVERY) -> list:
    """Right after every change that cannot be undone, and the store write (the last change); or every change."""
    if every:
        return list(range(1, len(changes) + 1))
    after = {index + 2 for index, what in enumerate(changes) if what.startswith("delete ")}
    return sorted(n for n in after | {len(changes)} if n <= len(changes))


def fail_and_converge(host, monkeypatch, module: str, args: dict, rebuild, gone: set, every: bool = EVERY) -> int:
    """For each fail point of the removal: fail it there, check the store against the kernel, converge, rebuild.
    Returns how many failed runs were checked."""
    changes = host.ok(module, check=True, **args)["changes"]
    points = fail_points(changes, every)
    assert points
    for number in points:
        monkeypatch.setenv("CNM_FAIL_AT", "change:%d" % number)
        try:
            failed = host.module(module, **args)
        finally:
            monkeypatch.delenv("CNM_FAIL_AT")
        assert failed.get("failed") and "injected failure" in failed["msg"], (number, changes, failed)
        assert failed["msg"].startswith(changes[number - 1] + " failed"), failed["msg"]
        assert_store_is_kernel(host, failed["msg"])
        host.ok(module, **args)
        again = host.ok(module, **args)
        assert again["changed"] is False and again["changes"] == [], again
        assert_store_is_kernel(host)
        assert not published(host) & gone
        lan = host.sandbox("lan")
        if ("tcp", 4000) in gone:
            assert ask(lan, "tcp", HOST, 4000) == "unreachable" and ask(lan, "udp", HOST, 5353) == "unreachable"
        rebuild()
    return len(points)


def test_failed_force_removal_of_a_bridge_network(lab, monkeypatch):
    build(lab)
    args = dict(name="web", state="absent", force=True)
    gone = {("tcp", 4000), ("tcp", 4001), ("udp", 5353), ("tcp", 4100), ("tcp", 4101), ("udp", 5454)}
    assert fail_and_converge(lab, monkeypatch, "cnm_bridge", args, lambda: build(lab), gone) >= 3


def test_failed_force_removal_of_an_overlay_network(lab, monkeypatch):
    build(lab, "overlay")
    args = dict(name="ov", state="absent", force=True)
    gone = {("tcp", 4000), ("tcp", 4001), ("udp", 5353), ("tcp", 4100), ("tcp", 4101), ("udp", 5454)}
    assert fail_and_converge(lab, monkeypatch, "cnm_overlay", args, lambda: build(lab, "overlay"), gone) >= 4


def test_failed_force_removal_of_a_macvlan_network_keeps_the_bridge_ports(lab, monkeypatch):
    """The macvlan network is on a second LAN (parent mv0, a veth to namespace mvlan), with its host-access shim."""
    mvlan = lab.sandbox("mvlan")
    sh("ip netns add %s && ip link add mv0 netns %s type veth peer name eth0 netns %s" % (mvlan, lab.name, mvlan))
    lab.sh("ip link set mv0 up")
    sh("ip link set lo up && ip addr add 192.168.60.1/24 dev eth0 && ip link set eth0 up", netns=mvlan)
    build(lab, "macvlan")
    args = dict(name="lan", state="absent", force=True)

    def rebuild():
        answers_on_its_ports(lab)  # the ports on web never stopped
        lab.ok("cnm_macvlan", **MACVLAN)
        lab.ok(
            "cnm_endpoint",
            network="lan",
            endpoints=[dict(netns=lab.sandbox("a")), dict(netns=lab.sandbox("b"))],
            default_route=False,
        )

    assert fail_and_converge(lab, monkeypatch, "cnm_macvlan", args, rebuild, set()) >= 3


def test_failed_detach_of_an_endpoint_with_ports(lab, monkeypatch):
    build(lab)
    args = dict(network="web", netns=lab.sandbox("a"), state="absent")

    def rebuild():
        lab.ok("cnm_endpoint", network="web", netns=lab.sandbox("a"))
        lab.ok("cnm_port_publish", network="web", netns=lab.sandbox("a"), ports=PORTS)
        answers_on_its_ports(lab)

    gone = {("tcp", 4000), ("tcp", 4001), ("udp", 5353)}
    assert fail_and_converge(lab, monkeypatch, "cnm_endpoint", args, rebuild, gone) >= 2
    assert {("tcp", 4100), ("tcp", 4101), ("udp", 5454)} <= stored_ports(lab.store())  # b's stayed throughout


def test_failed_detach_that_deletes_the_namespace(lab, monkeypatch):
    build(lab)
    args = dict(network="web", netns=lab.sandbox("b"), state="absent", delete_netns=True)

    def rebuild():
        lab.ok("cnm_endpoint", network="web", netns=lab.sandbox("b"))  # creates the namespace again
        lab.ok("cnm_port_publish", network="web", netns=lab.sandbox("b"), ports=PORTS_B)

    gone = {("tcp", 4100), ("tcp", 4101), ("udp", 5454)}
    assert fail_and_converge(lab, monkeypatch, "cnm_endpoint", args, rebuild, gone) >= 3
    answers_on_its_ports(lab)  # a's ports never stopped


def test_failed_unpublish(lab, monkeypatch):
    build(lab)
    args = dict(network="web", netns=lab.sandbox("a"), state="absent")

    def rebuild():
        lab.ok("cnm_port_publish", network="web", netns=lab.sandbox("a"), ports=PORTS)
        answers_on_its_ports(lab)

    gone = {("tcp", 4000), ("tcp", 4001), ("udp", 5353)}
    # no step of it lacks an undo: it is failed at every change
    assert fail_and_converge(lab, monkeypatch, "cnm_port_publish", args, rebuild, gone, every=True) >= 3
