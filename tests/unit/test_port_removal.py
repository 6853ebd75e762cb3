"""Published ports die with their endpoint (Host.drop_ports, the one way a port entry goes) and sysctl originals are
written ahead of the sysctl (issue 11); the kernel side is tested in tests/integration/test_removal.py."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from ansible_collections.cnm.network.plugins.module_utils import firewall
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord, EndpointRecord, PortRecord
from ansible_collections.cnm.network.plugins.module_utils.store import FORMAT_VERSION, Store

PORT = PortRecord(
    protocol="tcp",
    host_ip=None,
    host_port=4000,
    container_port=80,
    network="web",
    sandbox="netns:a",
    container_ip="172.30.0.2",
    container_ipv6=None,
)


def host_with(tmp_path, **data) -> Host:
    store = Store("ns", root=str(tmp_path))
    store.lock()
    store.data = dict({"version": FORMAT_VERSION, "networks": {}, "endpoints": {}}, **data)
    return Host(None, store)


def test_dropping_ports_flushes_their_conntrack_entries_and_empties_the_store_key(tmp_path):
    udp = replace(PORT, protocol="udp", host_port=53, sandbox="netns:b")
    host = host_with(tmp_path, ports={"tcp/*:4000": PORT, "udp/*:53": udp})
    assert host.ports_of("web", "netns:a") == ["tcp/*:4000"]
    assert host.drop_ports(["tcp/*:4000", "tcp/*:9"]) == ["tcp/*:4000"]
    assert host.pending.flows == {("tcp", 4000, "172.30.0.2", None)} and list(host.state["ports"]) == ["udp/*:53"]
    host.drop_ports(host.ports_of("web", "netns:b"))
    assert "ports" not in host.state


def test_ports_without_their_endpoint_or_network_go_with_a_warning(tmp_path):
    endpoint = EndpointRecord(network="web", sandbox="netns:a", ifname="eth0", link="veth", ipv4_address="172.30.0.2")
    host = host_with(
        tmp_path,
        networks={"web": {}},
        endpoints={"web|netns:a": endpoint},
        ports={
            "tcp/*:4000": PORT,
            "tcp/*:4001": replace(PORT, host_port=4001, sandbox="netns:gone"),
            "tcp/*:4002": replace(PORT, host_port=4002, network="removed"),
        },
    )
    host._drop_orphan_ports()
    assert list(host.state["ports"]) == ["tcp/*:4000"]
    assert [w.split(":")[0] for w in host.warnings] == ["published port tcp/*", "published port tcp/*"]
    assert host.pending.flows == {("tcp", 4001, "172.30.0.2", None), ("tcp", 4002, "172.30.0.2", None)}


class Crash(BaseException):
    """The module killed between two steps."""


def test_a_sysctl_original_is_in_the_store_file_before_the_sysctl_changes(tmp_path, monkeypatch):
    store = Store("ns", root=str(tmp_path))
    store.lock()
    store.data = {"version": FORMAT_VERSION, "networks": {"web": BridgeRecord(bridge_name="br-web")}, "endpoints": {}}

    class Session:
        """The host's namespace session: its sysctls in a dict (``crash``: killed at the write)."""

        def __init__(self, crash: bool) -> None:
            self.crash, self.values = crash, {"net/ipv4/ip_forward": "1"}

        def sysctl(self, path):
            return self.values.get(path)

        def write_sysctl(self, path, value):
            if self.crash:
                raise Crash()
            self.values[path] = value

    def run(session: Session) -> SimpleNamespace:  # what the firewall's verbs take of the run's Host
        return SimpleNamespace(store=store, kernel=SimpleNamespace(host=session))

    with pytest.raises(Crash):
        firewall.set_recorded_sysctl(run(Session(crash=True)), "net.ipv4.ip_forward", "1", "0")
    with open(store.path) as handle:
        assert json.load(handle)["sysctls"] == {"net.ipv4.ip_forward": "0"}
    session = Session(crash=False)
    firewall.unset_recorded_sysctl(run(session), "net.ipv4.ip_forward", "0", new=True)  # the undo: as before
    with open(store.path) as handle:
        assert "sysctls" not in json.load(handle)
    assert session.values == {"net/ipv4/ip_forward": "0"}


def test_ports_follow_their_endpoint_to_a_new_address_and_drop_a_family_it_lost(tmp_path):
    pairs = (("a", "172.30.0.9"), ("b", "172.30.0.3"))
    endpoints = {
        "web|netns:" + name: EndpointRecord("web", "netns:" + name, "eth0", "veth", ipv4_address=ip, ipv6_address=None)
        for name, ip in pairs
    }
    six = replace(PORT, host_port=4001, sandbox="netns:b", container_ip=None, container_ipv6="fd00::3")
    same = replace(PORT, host_port=4002, sandbox="netns:b", container_ip="172.30.0.3")
    host = host_with(
        tmp_path,
        networks={"web": {}},
        endpoints=endpoints,
        ports={"tcp/*:4000": PORT, "tcp/[::]:4001": six, "tcp/*:4002": same},
    )
    host._drop_orphan_ports()
    assert host.state["ports"] == {"tcp/*:4000": replace(PORT, container_ip="172.30.0.9"), "tcp/*:4002": same}
    assert host.pending.flows == {("tcp", 4000, "172.30.0.2", None), ("tcp", 4001, None, "fd00::3")}
    assert len(host.warnings) == 1 and "tcp/[::]:4001" in host.warnings[0]
    host.pending.flows.clear()
    host._drop_orphan_ports()  # a second pass changes nothing
    assert host.pending.flows == set() and len(host.state["ports"]) == 2
