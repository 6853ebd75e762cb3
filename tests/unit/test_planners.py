"""Every driver's planner over facts (tests/unit/facts.py), without root: the changes Docker's scenarios plan.

Each test runs a module file's ``main()`` in check mode over a host given as literal facts (links, addresses,
routes, port flags, FDB and neighbour entries, sysctls, the nft ruleset, the store file) and asserts the planned
changes (target and words), the diff, the store as planned and the module's result. The words were learnt from the
real modules run once in a throwaway namespace on a real kernel (the check run and the real run gave the same), but
for ipvlan's, which that kernel lacks (they are the planner's); the facts after a run are what that kernel held then.
The kernel side stays tested by tests/integration.
"""

from __future__ import annotations

import ipaddress
import json
import os

import pytest
from facts import FactsSession, Machine, Runner

from ansible_collections.cnm.network.plugins.module_utils import firewall, kernel
from ansible_collections.cnm.network.plugins.module_utils.kernel import Link
from ansible_collections.cnm.network.plugins.module_utils.plan import Op

LISTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "listings")


def listing(name: str) -> dict:
    """``nft -j list ruleset`` as the real kernel printed it after a run (tests/unit/listings)."""
    with open(os.path.join(LISTINGS, "nft_%s.json" % name)) as handle:
        return json.load(handle)


def link(index: int, name: str, kind=None, mac="02:00:00:00:00:%02x", **more) -> Link:
    """A kernel.Link: up, 1500 bytes, no master, peer or alias unless given."""
    fields = dict(mtu=1500, up=True, master=None, peer_index=None, alias=None)
    fields.update(more)
    return Link(index=index, name=name, kind=kind, mac=mac % index if "%" in mac else mac, **fields)


# ---- a Docker host before any network: lo, the uplink eth0 (192.0.2.11/24, the VTEP of overlays), a LAN port lan0 ----
LO = link(1, "lo", mtu=65536, mac="00:00:00:00:00:00")
ETH0 = link(2, "eth0", mac="02:fc:00:00:00:01")
LAN0 = link(3, "lan0", mac="06:cb:b6:d9:80:cd")
HOST_ADDRESSES = {"lo": ["127.0.0.1/8", "::1/128"], "eth0": ["192.0.2.11/24"]}
# as a new namespace of this kernel has them (ping_group_range is printed with a tab)
HOST_SYSCTLS = {
    "net/ipv4/ip_forward": "0",
    "net/ipv4/ip_unprivileged_port_start": "1024",
    "net/ipv4/ping_group_range": "1\t0",
    "net/ipv6/conf/all/forwarding": "0",
    "net/ipv6/conf/all/disable_ipv6": "0",
    "net/ipv6/conf/default/disable_ipv6": "0",
    "net/ipv6/conf/lo/disable_ipv6": "0",
    "net/ipv6/conf/eth0/disable_ipv6": "0",
    "net/ipv6/conf/lan0/disable_ipv6": "0",
}


def docker_host(*links: Link, addresses=None, sysctls=None, **facts) -> FactsSession:
    """The host's namespace: lo, eth0, lan0 and ``links``, with their addresses and sysctls added to the base ones."""
    return FactsSession(
        "the host",
        (LO, ETH0, LAN0) + links,
        addresses=dict(HOST_ADDRESSES, **(addresses or {})),
        sysctls=dict(HOST_SYSCTLS, **(sysctls or {})),
        **facts,
    )


# ---- docker network create --subnet 172.30.0.0/24 web ----
WEB = {
    "bridge_name": "br-web",
    "driver": "bridge",
    "gateway": "172.30.0.1",
    "host_binding_ip": None,
    "icc": True,
    "internal": False,
    "ip_range": "172.30.0.0/24",
    "ipv6_gateway": None,
    "ipv6_masquerade": None,
    "ipv6_subnet": None,
    "masquerade": True,
    "mtu": 1500,
    "subnet": "172.30.0.0/24",
    "trusted_sources": [],
}
WEB_STORE = {"endpoints": {}, "networks": {"web": WEB}, "sysctls": {"net.ipv4.ip_forward": "0"}}
BR_WEB = link(4, "br-web", "bridge", mac="02:42:39:c7:2e:fc", alias="cnm:network:web")
WEB_FIREWALL = {
    "inet forward": [
        "cnm ports accept published #05e35308",
        "cnm forward accept replies #704e7557",
        "cnm network web inbound drop #97b8ac75",
    ],
    "inet input": [],
    "inet output": [],
    "inet postrouting": ["cnm network web masquerade #3e576a68"],
    "inet prerouting": [],
    "inet raw_prerouting": [],
}


def host_with_web(*links: Link, bridge: Link = BR_WEB, **facts) -> FactsSession:
    """The host as cnm_bridge left it: br-web with its gateway, IPv6 off on it, forwarding on."""
    return docker_host(
        bridge,
        *links,
        addresses={"br-web": ["172.30.0.1/24"]},
        sysctls={"net/ipv4/ip_forward": "1", "net/ipv6/conf/br-web/disable_ipv6": "1"},
        **facts,
    )


# ---- docker run --network web (the sandbox: a named namespace "app") ----
VE_APP = link(
    5, "ve-d0425991b23", "veth", mac="5a:1c:cc:f9:58:a3", master=4, peer_index=2, alias="cnm:endpoint:web|netns:app"
)
APP = {
    "default_route": True,
    "gw_priority": 0,
    "host_ifname": "ve-d0425991b23",
    "ifname": "eth0",
    "ipv4_address": "172.30.0.2",
    "ipv6_address": None,
    "link": "veth",
    "mac_address": "02:42:ac:1e:00:02",
    "network": "web",
    "routes": [],
    "sandbox": "netns:app",
    "static_ipv4": False,
    "static_ipv6": False,
    "static_mac": False,
    "sysctls": {},
    "name": "app",  # its DNS name: the namespace's own
}
# the sandbox's own settings once attached: Docker's sandbox sysctls, IPv6 off everywhere
SANDBOX_SYSCTLS = {
    "net/ipv4/ip_unprivileged_port_start": "0",
    "net/ipv4/ping_group_range": "0\t2147483647",
    "net/ipv6/conf/all/disable_ipv6": "1",
    "net/ipv6/conf/default/disable_ipv6": "1",
    "net/ipv6/conf/lo/disable_ipv6": "1",
    "net/ipv6/conf/eth0/disable_ipv6": "1",
}


def sandbox_with(inner: Link, address: str, gateway: str) -> FactsSession:
    """A sandbox holding one endpoint's interface ``inner`` (eth0) with its address and default route."""
    return FactsSession(
        "sandbox",
        (LO, inner),
        addresses={"lo": ["127.0.0.1/8"], "eth0": [address]},
        routes={"eth0": [("0.0.0.0/0", gateway)]},
        sysctls=SANDBOX_SYSCTLS,
    )


def app_sandbox() -> FactsSession:
    return sandbox_with(link(2, "eth0", "veth", mac="02:42:ac:1e:00:02", peer_index=5), "172.30.0.2/24", "172.30.0.1")


def attached_web() -> Machine:
    """The host after ``docker run --network web``: the veth on the bridge (hairpin on), the sandbox as set up."""
    return Machine(
        host_with_web(VE_APP, port_flags={"ve-d0425991b23": (False, True)}),
        sandboxes={"netns:app": app_sandbox()},
        ruleset=listing("web"),
    )


def store_of(**records) -> dict:
    """WEB_STORE with endpoint records added, keyed as the store keys them."""
    return dict(WEB_STORE, endpoints={"%s|%s" % (r["network"], r["sandbox"]): r for r in records.values()})


@pytest.fixture
def runner(tmp_path, monkeypatch) -> Runner:
    return Runner(tmp_path, monkeypatch)


def words(run) -> list:
    """The result's ``changes``: the words of the planned changes, in order."""
    return [what for _target, what in run.changes]


# ======== 1. cnm_bridge on an empty host ========


def test_a_bridge_network_on_an_empty_host_plans_the_bridge_gateway_sysctls_firewall_and_store(runner):
    run = runner.run(Machine(docker_host()), "cnm_bridge", name="web", subnet="172.30.0.0/24")

    assert not run.failed, run.result
    assert run.changes == [
        ("network web", "create bridge br-web mtu 1500"),
        ("network web", "add address 172.30.0.1/24 to br-web"),
        ("network web", "set net.ipv6.conf.br-web.disable_ipv6=1"),
        ("firewall", "apply 11 nft command(s) to the cnm tables"),
        ("sysctl net.ipv4.ip_forward", "set net.ipv4.ip_forward=1 (recorded: 0)"),
        ("store", "write the store"),
    ]
    assert run.diff == {
        "before": {
            "store": {"endpoints": {}, "networks": {}},
            "sysctl net.ipv4.ip_forward": {"net.ipv4.ip_forward": "0"},
        },
        "after": {
            "network web": {
                "bridge": "br-web",
                "mtu": 1500,
                "up": True,
                "addresses": ["172.30.0.1/24"],
                "disable_ipv6": "1",
            },
            "firewall": WEB_FIREWALL,
            "sysctl net.ipv4.ip_forward": {"net.ipv4.ip_forward": "1"},
            "store": WEB_STORE,
        },
    }
    assert run.state == dict(WEB_STORE, version=2)
    assert run.result["changed"] is True and run.result["changes"] == words(run)
    assert run.result["diff"] == run.diff
    assert run.result["network"] == dict(WEB, name="web", endpoints=0)
    assert runner.stored() is None  # check mode: the store file is not written
    # Changes as data: every change and its undo (if it has one) is an Op of a verb the run executes (Host.run_op).
    for change in run.host.plan.changes:
        for action in (change.apply, change.undo or change.apply):
            assert isinstance(action, Op), change
            verb = action.verb
            assert verb == "save_store" or verb in firewall.VERBS or hasattr(kernel.NetnsSession, verb), change


# ======== 2. a rerun: nothing on matching facts, exactly the repair of a drifted MTU ========


def test_a_bridge_network_rerun_on_matching_facts_plans_nothing(runner):
    run = runner.run(
        Machine(host_with_web(), ruleset=listing("web")),
        "cnm_bridge",
        store=WEB_STORE,
        name="web",
        subnet="172.30.0.0/24",
    )

    assert not run.failed, run.result
    assert run.changes == []
    assert run.diff == {"before": {}, "after": {}}
    assert run.state == dict(WEB_STORE, version=2)
    assert run.result["changed"] is False and run.result["network"] == dict(WEB, name="web", endpoints=0)


def test_a_bridge_whose_mtu_drifted_gets_exactly_the_repair(runner):
    drifted = link(4, "br-web", "bridge", mac="02:42:39:c7:2e:fc", alias="cnm:network:web", mtu=1400)
    machine = Machine(host_with_web(bridge=drifted), ruleset=listing("web"))

    run = runner.run(machine, "cnm_bridge", store=WEB_STORE, name="web", subnet="172.30.0.0/24")

    assert run.changes == [("network web", "set bridge br-web mtu 1500 up")]
    assert run.diff == {
        "before": {"network web": {"bridge": "br-web", "mtu": 1400, "up": True, "addresses": ["172.30.0.1/24"]}},
        "after": {"network web": {"bridge": "br-web", "mtu": 1500, "up": True, "addresses": ["172.30.0.1/24"]}},
    }
    assert run.state == dict(WEB_STORE, version=2)


def test_a_bridge_network_rerun_with_an_endpoint_attached_plans_nothing(runner):
    run = runner.run(attached_web(), "cnm_bridge", store=store_of(app=APP), name="web", subnet="172.30.0.0/24")

    assert run.changes == []
    assert run.result["network"]["endpoints"] == 1


def test_a_lost_store_is_rebuilt_from_the_facts_and_the_rerun_plans_only_its_write(runner):
    """The store file gone while the kernel holds web and its endpoint: Host.open recovers it (recover.py reads the
    links, the sandbox and the nft ruleset through the same facts); the host sysctls' old values are not recoverable."""
    run = runner.run(attached_web(), "cnm_bridge", store=None, name="web", subnet="172.30.0.0/24")

    assert not run.failed, run.result
    assert run.changes == [("store", "write the store")]
    recovered = {key: value for key, value in store_of(app=APP).items() if key != "sysctls"}
    assert run.state == dict(recovered, version=2)
    assert runner.warnings[0].startswith(
        "the store was missing: rebuilt from the kernel: 1 networks, 1 endpoints, 0 ports"
    )


# ======== 3. cnm_endpoint: a fresh named sandbox joins the bridge ========


def test_an_endpoint_attach_of_a_fresh_sandbox_plans_veth_port_sysctls_address_route_and_store(runner):
    machine = Machine(host_with_web(), ruleset=listing("web"))

    run = runner.run(machine, "cnm_endpoint", store=WEB_STORE, network="web", netns="app")

    assert not run.failed, run.result
    endpoint, sandbox = "endpoint web on netns:app", "sandbox netns:app"
    # Docker's sandbox sysctls before the first interface: writing 'all' sets 'default' and 'lo' too, and eth0 is
    # born with IPv6 off (the sandbox's default), so none of the three needs a write of its own.
    assert run.changes == [
        ("netns app", "create network namespace app"),
        (sandbox, "set net.ipv4.ip_unprivileged_port_start=0 in app (Docker's sandbox default)"),
        (sandbox, "set net.ipv4.ping_group_range=0 2147483647 in app (Docker's sandbox default)"),
        (sandbox, "set net.ipv6.conf.all.disable_ipv6=1 in app (Docker's sandbox default)"),
        (endpoint, "create veth ve-d0425991b23 (host) / eth0 (in app)"),
        (endpoint, "set eth0 up in app"),
        (endpoint, "set bridge port ve-d0425991b23 hairpin"),
        (endpoint, "add address 172.30.0.2/24 to eth0 in app"),
        ("netns app", "set lo up in app"),
        (sandbox, "add default via 172.30.0.1 through eth0 in app (network web, gw_priority 0)"),
        ("store", "write the store"),
    ]
    docker_defaults = {
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.ipv4.ping_group_range": "0 2147483647",
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
        "net.ipv6.conf.lo.disable_ipv6": "1",
    }
    assert run.diff == {
        "before": {
            sandbox: {"default_ipv4": None, "default_ipv6": None, "sysctls": dict.fromkeys(docker_defaults)},
            "store": WEB_STORE,
        },
        "after": {
            "netns app": {"exists": True, "lo": "up"},
            endpoint: {
                "host_interface": "ve-d0425991b23",
                "bridge": "br-web",
                "port_flags": {"isolated": False, "hairpin": True},
                "interface": "eth0",
                "mac": "02:42:ac:1e:00:02",
                "mtu": 1500,
                "addresses": ["172.30.0.2/24"],
                "routes": [],
                "sysctls": {"net.ipv6.conf.IFNAME.disable_ipv6": "1"},
            },
            sandbox: {
                "default_ipv4": "default via 172.30.0.1 dev eth0",
                "default_ipv6": None,
                "sysctls": docker_defaults,
            },
            "store": store_of(app=APP),
        },
    }
    # the lease: the pool's first free address (the gateway is .1); the MAC: Docker's 02:42 + the IPv4 bytes
    record = run.state["endpoints"]["web|netns:app"]
    assert record == APP
    assert record["mac_address"] == "02:42:" + ":".join(
        "%02x" % byte for byte in ipaddress.ip_address("172.30.0.2").packed
    )
    assert run.state == dict(store_of(app=APP), version=2)
    assert run.result["endpoint"] == {
        "network": "web",
        "netns": "app",
        "sandbox": "netns:app",
        "ifname": "eth0",
        "host_ifname": "ve-d0425991b23",
        "ipv4_address": "172.30.0.2",
        "ipv6_address": None,
        "mac_address": "02:42:ac:1e:00:02",
        "name": "app",
        "aliases": [],
    }


# docker network create --subnet 172.31.0.0/24 --ipv6 --subnet fd00:31::/64 web6
WEB6 = dict(
    WEB,
    bridge_name="br-web6",
    gateway="172.31.0.1",
    ip_range="172.31.0.0/24",
    subnet="172.31.0.0/24",
    ipv6_subnet="fd00:31::/64",
    ipv6_gateway="fd00:31::1",
)
BR_WEB6 = link(6, "br-web6", "bridge", mac="02:42:39:c7:2e:fd", alias="cnm:network:web6")


def test_a_fresh_sandbox_on_an_ipv4_and_a_dual_stack_network_gets_its_sysctls_before_its_first_interface(runner):
    host = docker_host(
        BR_WEB,
        BR_WEB6,
        addresses={"br-web": ["172.30.0.1/24"], "br-web6": ["172.31.0.1/24", "fd00:31::1/64"]},
        sysctls={"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1"},
    )
    store = dict(WEB_STORE, networks={"web": WEB, "web6": WEB6})
    endpoints = [{"network": "web", "netns": "both"}, {"network": "web6", "netns": "both"}]

    run = runner.run(Machine(host, ruleset=listing("web")), "cnm_endpoint", store=store, endpoints=endpoints)

    assert not run.failed, run.result
    sandbox = "sandbox netns:both"
    # The list says the sandbox will have IPv6: Docker then sets only lo's IPv6 on (no 'all'/'default' off), before
    # the first interface. A namespace this run creates has no defaults to read: each interface gets its own write.
    assert [change for change in run.changes if "set net." in change[1] or "create veth" in change[1]] == [
        (sandbox, "set net.ipv4.ip_unprivileged_port_start=0 in both (Docker's sandbox default)"),
        (sandbox, "set net.ipv4.ping_group_range=0 2147483647 in both (Docker's sandbox default)"),
        (sandbox, "set net.ipv6.conf.lo.disable_ipv6=0 in both (Docker's sandbox default)"),
        ("endpoint web on netns:both", "create veth ve-38e196ad3ce (host) / eth0 (in both)"),
        ("endpoint web on netns:both", "option 'endpoints[0].sysctls': set net.ipv6.conf.eth0.disable_ipv6=1 in both"),
        ("endpoint web6 on netns:both", "create veth ve-bf1fb4957d5 (host) / eth1 (in both)"),
        ("endpoint web6 on netns:both", "option 'endpoints[1].sysctls': set net.ipv6.conf.eth1.disable_ipv6=0 in both"),
    ]


def test_a_second_sandbox_takes_the_next_address_and_its_mac(runner):
    run = runner.run(attached_web(), "cnm_endpoint", store=store_of(app=APP), network="web", netns="db")

    record = run.state["endpoints"]["web|netns:db"]
    assert (record["ipv4_address"], record["mac_address"], record["host_ifname"]) == (
        "172.30.0.3",
        "02:42:ac:1e:00:03",
        "ve-7f458a34079",
    )
    assert run.state["endpoints"]["web|netns:app"] == APP  # the first endpoint is left alone
    assert ("endpoint web on netns:db", "add address 172.30.0.3/24 to eth0 in db") in run.changes


def test_an_endpoint_rerun_on_matching_facts_plans_nothing(runner):
    run = runner.run(attached_web(), "cnm_endpoint", store=store_of(app=APP), network="web", netns="app")

    assert not run.failed, run.result
    assert run.changes == []
    assert run.state == dict(store_of(app=APP), version=2)
    assert run.result["endpoint"]["ipv4_address"] == "172.30.0.2"


def test_an_endpoint_whose_address_and_hairpin_were_lost_gets_exactly_their_repair(runner):
    """Its address flushed out of band (the default route went with it) and hairpin turned off on the port."""
    emptied = FactsSession(
        "sandbox",
        (LO, link(2, "eth0", "veth", mac="02:42:ac:1e:00:02", peer_index=5)),
        addresses={"lo": ["127.0.0.1/8"]},
        sysctls=SANDBOX_SYSCTLS,
    )
    machine = Machine(
        host_with_web(VE_APP, port_flags={"ve-d0425991b23": (False, False)}),
        sandboxes={"netns:app": emptied},
        ruleset=listing("web"),
    )

    run = runner.run(machine, "cnm_endpoint", store=store_of(app=APP), network="web", netns="app")

    assert run.changes == [
        ("endpoint web on netns:app", "set bridge port ve-d0425991b23 hairpin, not isolated"),
        ("endpoint web on netns:app", "add address 172.30.0.2/24 to eth0 in app"),
        ("sandbox netns:app", "add default via 172.30.0.1 through eth0 in app (network web, gw_priority 0)"),
    ]
    before, after = run.diff["before"], run.diff["after"]
    assert before["endpoint web on netns:app"]["port_flags"] == {"isolated": False, "hairpin": False}
    assert (before["endpoint web on netns:app"]["addresses"], after["endpoint web on netns:app"]["addresses"]) == (
        [],
        ["172.30.0.2/24"],
    )
    assert (before["sandbox netns:app"]["default_ipv4"], after["sandbox netns:app"]["default_ipv4"]) == (
        None,
        "default via 172.30.0.1 dev eth0",
    )
    assert "store" not in after  # the store already describes the endpoint


# ======== 4. cnm_endpoint state=absent: the kernel holds the endpoint ========


def test_a_detach_plans_the_veth_delete_the_conntrack_flush_and_the_lease_release(runner):
    run = runner.run(
        attached_web(), "cnm_endpoint", store=store_of(app=APP), network="web", netns="app", state="absent"
    )

    assert not run.failed, run.result
    assert run.changes == [
        ("endpoint web on netns:app", "detach app (its veth ve-d0425991b23 goes with the others)"),
        ("veths", "delete 1 veth(s) in one request (link group 1668181248)"),
        ("conntrack", "flush the conntrack entries of 1 address(es) of endpoints that left"),
        ("store", "write the store"),
    ]
    assert run.diff == {
        "before": {
            "endpoint web on netns:app": {"host_interface": "ve-d0425991b23", "interface": "eth0"},
            "veths": {"veths": ["ve-d0425991b23"]},
            "store": store_of(app=APP),
        },
        "after": {"store": WEB_STORE},
    }
    assert run.state == dict(WEB_STORE, version=2)
    assert run.host.pending.addresses == {"172.30.0.2"}
    assert run.result["endpoint"] == {"network": "web", "sandbox": "netns:app", "state": "absent"}


def test_a_detach_with_delete_netns_also_deletes_the_sandbox(runner):
    run = runner.run(
        attached_web(),
        "cnm_endpoint",
        store=store_of(app=APP),
        network="web",
        netns="app",
        state="absent",
        delete_netns=True,
    )

    assert run.changes[-3:] == [
        ("netns app", "delete network namespace app"),
        ("conntrack", "flush the conntrack entries of 1 address(es) of endpoints that left"),
        ("store", "write the store"),
    ]


# ======== 5. cnm_overlay: FDB and neighbour entries from the peers ========

OVERLAY = dict(name="ov", vni=4200, subnet="10.200.0.0/16", ip_range="10.200.1.0/24", local_ip="192.0.2.11")
PEERS = [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.2.2"}]}, "192.0.2.13"]
OV = {
    "bridge_name": "br-ov",
    "driver": "overlay",
    "gateway": "10.200.0.1",
    "host_binding_ip": None,
    "icc": True,
    "internal": False,
    "ip_range": "10.200.1.0/24",
    "ipv6_gateway": None,
    "ipv6_masquerade": None,
    "ipv6_subnet": None,
    "local_ip": "192.0.2.11",
    "masquerade": True,
    "mtu": 1450,
    "peers": [
        {"endpoints": [{"ip": "10.200.2.2", "mac": "02:42:0a:c8:02:02"}], "vtep": "192.0.2.12"},
        {"endpoints": [], "vtep": "192.0.2.13"},
    ],
    "port": 4789,
    "restrict_peers": True,
    "subnet": "10.200.0.0/16",
    "trusted_sources": [],
    "vni": 4200,
    "vxlan_name": "vx-ov",
}
OV_STORE = {"endpoints": {}, "networks": {"ov": OV}, "sysctls": {"net.ipv4.ip_forward": "0"}}
VXLAN = {"vni": 4200, "local": "192.0.2.11", "port": 4789, "learning": False, "proxy": True}


def host_with_overlay(**facts) -> FactsSession:
    """The host as cnm_overlay left it with PEERS: br-ov, vx-ov on it with the peers' FDB and neighbour entries."""
    return docker_host(
        link(4, "br-ov", "bridge", mtu=1450, mac="02:42:be:b0:3c:29", alias="cnm:network:ov"),
        link(5, "vx-ov", "vxlan", mtu=1450, mac="02:68:fb:0a:0a:f4", master=4, alias="cnm:overlay:ov", vxlan=VXLAN),
        addresses={"br-ov": ["10.200.0.1/16"]},
        sysctls={
            "net/ipv4/ip_forward": "1",
            "net/ipv6/conf/br-ov/disable_ipv6": "1",
            "net/ipv6/conf/vx-ov/disable_ipv6": "1",
        },
        fdb={
            "vx-ov": [
                ("02:42:0a:c8:02:02", "192.0.2.12"),
                ("00:00:00:00:00:00", "192.0.2.12"),
                ("00:00:00:00:00:00", "192.0.2.13"),
            ]
        },
        neighbours={"vx-ov": [("02:42:0a:c8:02:02", "10.200.2.2")]},
        **facts,
    )


def test_an_overlay_plans_a_flood_entry_per_peer_and_entries_per_remote_endpoint(runner):
    run = runner.run(Machine(docker_host()), "cnm_overlay", peers=PEERS, **OVERLAY)

    assert not run.failed, run.result
    assert run.changes == [
        ("network ov", "create bridge br-ov mtu 1450"),
        ("network ov", "add address 10.200.0.1/16 to br-ov"),
        ("network ov", "set net.ipv6.conf.br-ov.disable_ipv6=1"),
        ("overlay ov", "create vxlan vx-ov vni 4200 local 192.0.2.11 port 4789 on br-ov"),
        ("overlay ov", "add fdb 00:00:00:00:00:00 dst 192.0.2.12"),
        ("overlay ov", "add fdb 00:00:00:00:00:00 dst 192.0.2.13"),
        ("overlay ov", "add fdb 02:42:0a:c8:02:02 dst 192.0.2.12"),
        ("overlay ov", "add neighbour 10.200.2.2 lladdr 02:42:0a:c8:02:02"),
        ("overlay ov", "set net.ipv6.conf.vx-ov.disable_ipv6=1"),
        ("firewall", "apply 12 nft command(s) to the cnm tables"),
        ("sysctl net.ipv4.ip_forward", "set net.ipv4.ip_forward=1 (recorded: 0)"),
        ("store", "write the store"),
    ]
    assert run.diff["after"]["overlay ov"] == dict(
        VXLAN,
        device="vx-ov",
        mtu=1450,
        mac="02:68:fb:0a:0a:f4",
        fdb=[
            ("00:00:00:00:00:00", "192.0.2.12"),
            ("00:00:00:00:00:00", "192.0.2.13"),
            ("02:42:0a:c8:02:02", "192.0.2.12"),
        ],
        neighbours=[("02:42:0a:c8:02:02", "10.200.2.2")],
        disable_ipv6="1",
    )
    assert "overlay ov" not in run.diff["before"]  # a new device
    assert run.state == dict(OV_STORE, version=2)


def test_an_overlay_rerun_on_matching_facts_plans_nothing(runner):
    machine = Machine(host_with_overlay(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=OV_STORE, peers=PEERS, **OVERLAY)

    assert run.changes == []
    assert run.state == dict(OV_STORE, version=2)


def test_an_overlay_peer_removed_takes_its_fdb_and_neighbour_entries_along(runner):
    machine = Machine(host_with_overlay(), ruleset=listing("ov"))

    run = runner.run(machine, "cnm_overlay", store=OV_STORE, peers=["192.0.2.13"], **OVERLAY)

    assert run.changes == [
        ("overlay ov", "remove fdb 00:00:00:00:00:00 dst 192.0.2.12"),
        ("overlay ov", "remove fdb 02:42:0a:c8:02:02 dst 192.0.2.12"),
        ("overlay ov", "remove neighbour 10.200.2.2 lladdr 02:42:0a:c8:02:02"),
        ("firewall", "apply 2 nft command(s) to the cnm tables"),  # the VXLAN filter names the peers left
        ("store", "write the store"),
    ]
    before, after = run.diff["before"]["overlay ov"], run.diff["after"]["overlay ov"]
    assert before["fdb"] == [
        ("00:00:00:00:00:00", "192.0.2.12"),
        ("00:00:00:00:00:00", "192.0.2.13"),
        ("02:42:0a:c8:02:02", "192.0.2.12"),
    ]
    assert (after["fdb"], after["neighbours"]) == ([("00:00:00:00:00:00", "192.0.2.13")], [])
    assert run.state["networks"]["ov"]["peers"] == [{"endpoints": [], "vtep": "192.0.2.13"}]


def test_a_removed_peer_s_endpoints_are_forgotten_by_the_bridge_at_once(runner):
    # the bridge learnt the removed peer's endpoint and one it never listed (a VTEP given without endpoints)
    learned = {"vx-ov": ["02:42:0a:c8:02:02", "02:42:0a:c8:03:07"]}
    machine = Machine(host_with_overlay(learned_fdb=learned), ruleset=listing("ov"))

    removed = runner.run(machine, "cnm_overlay", store=OV_STORE, peers=["192.0.2.13"], **OVERLAY)
    kept = runner.run(machine, "cnm_overlay", store=OV_STORE, peers=PEERS, **OVERLAY)

    flush = ("overlay ov", "flush learned fdb 02:42:0a:c8:02:02 dev vx-ov (no longer behind a peer)")
    assert flush in removed.changes and [c for c in removed.changes if "learned" in c[1]] == [flush]
    change = [c for c in removed.host.plan.changes if c.what == flush[1]][0]
    assert change.undo is None  # nothing to put back: the bridge learns it again if it ever comes
    assert kept.changes == []


def test_an_encrypted_overlay_on_a_kernel_without_esp_is_refused_naming_what_it_lacks(runner):
    machine = Machine(docker_host(), ciphers=frozenset({"gcm(aes)"}), xfrm=True)  # no esp4 module

    run = runner.run(machine, "cnm_overlay", peers=PEERS, encrypted=True, encryption_key="k" * 20, **OVERLAY)

    assert run.failed and run.changes == []
    assert "encrypted" in run.result["msg"] and "this kernel lacks: ESP (esp4);" in run.result["msg"]


def test_an_encrypted_overlay_plans_its_ipsec_and_brings_the_vxlan_up_after_the_firewall(runner):
    machine = Machine(docker_host(), modules=frozenset({"esp4", "gcm"}), xfrm=True)

    run = runner.run(machine, "cnm_overlay", peers=PEERS, encrypted=True, encryption_key="k" * 20, **OVERLAY)

    assert not run.failed, run.result
    changes = [what for _target, what in run.changes]
    assert changes[0] == "create bridge br-ov mtu 1416"  # 1500 less VXLAN's 50 and ESP's 34
    ipsec = [what for target, what in run.changes if target == "overlay ov ipsec"]
    assert [what.split(" spi ")[0] for what in ipsec if "state" in what] == [
        "add xfrm state 192.0.2.11 -> 192.0.2.12 esp",
        "add xfrm state 192.0.2.12 -> 192.0.2.11 esp",
        "add xfrm state 192.0.2.11 -> 192.0.2.13 esp",
        "add xfrm state 192.0.2.13 -> 192.0.2.11 esp",
    ]
    assert len(ipsec) == 8  # and a policy each way per peer
    create = "create vxlan vx-ov vni 4200 local 192.0.2.11 port 4789 on br-ov (down until its firewall rules are in "
    assert changes.index(create + "place)") == changes.index(ipsec[-1]) + 1  # its first packet is already in ESP
    firewall = next(n for n, what in enumerate(changes) if what.startswith("apply "))
    assert changes[firewall + 1 :] == [
        "set net.ipv4.ip_forward=1 (recorded: 0)",
        "set vxlan vx-ov up (the drop of clear VXLAN is in place)",
        "write the store",
    ]


# ======== 6. macvlan and ipvlan: networks on a parent, endpoints born in the sandbox ========

LAN = dict(name="lan", parent="lan0", subnet="192.168.50.0/24", gateway="192.168.50.1", ip_range="192.168.50.64/28")
LAN_RECORD = {
    "driver": "macvlan",
    "gateway": "192.168.50.1",
    "host_access": False,
    "host_access_ip": None,
    "ip_range": "192.168.50.64/28",
    "ipv6_gateway": None,
    "ipv6_subnet": None,
    "mode": "bridge",
    "mtu": 1500,
    "mtu_set": False,
    "parent": "lan0",
    "shim_name": None,
    "subnet": "192.168.50.0/24",
    "vlan_created": False,
}
LAN_STORE = {"endpoints": {}, "networks": {"lan": LAN_RECORD}}
LAN_ENDPOINT = {
    "default_route": True,
    "gw_priority": 0,
    "host_ifname": None,
    "ifname": "eth0",
    "ipv4_address": "192.168.50.64",
    "ipv6_address": None,
    "link": "macvlan",
    "mac_address": "02:42:c0:a8:32:40",
    "network": "lan",
    "parent": "lan0",
    "routes": [],
    "sandbox": "netns:m",
    "shim_name": None,
    "static_ipv4": False,
    "static_ipv6": False,
    "static_mac": False,
    "sysctls": {},
    "name": "m",
}


def test_a_macvlan_network_plans_only_its_store_record(runner):
    run = runner.run(Machine(docker_host()), "cnm_macvlan", **LAN)

    assert not run.failed, run.result
    assert run.changes == [("store", "write the store")]  # no device: endpoints are links on the parent
    assert run.diff == {"before": {"store": {"endpoints": {}, "networks": {}}}, "after": {"store": LAN_STORE}}
    assert run.state == dict(LAN_STORE, version=2)


def test_a_macvlan_endpoint_is_born_in_its_sandbox_with_the_mac_of_its_address(runner):
    run = runner.run(Machine(docker_host()), "cnm_endpoint", store=LAN_STORE, network="lan", netns="m")

    assert not run.failed, run.result
    endpoint, sandbox = "endpoint lan on netns:m", "sandbox netns:m"
    assert run.changes == [
        ("netns m", "create network namespace m"),
        (sandbox, "set net.ipv4.ip_unprivileged_port_start=0 in m (Docker's sandbox default)"),
        (sandbox, "set net.ipv4.ping_group_range=0 2147483647 in m (Docker's sandbox default)"),
        (sandbox, "set net.ipv6.conf.all.disable_ipv6=1 in m (Docker's sandbox default)"),
        (endpoint, "create macvlan eth0 (mode bridge on lan0) in m"),
        (endpoint, "add address 192.168.50.64/24 to eth0 in m"),
        ("netns m", "set lo up in m"),
        (sandbox, "add default via 192.168.50.1 through eth0 in m (network lan, gw_priority 0)"),
        ("store", "write the store"),
    ]
    assert run.diff["after"][endpoint] == {
        "parent": "lan0",
        "mode": "bridge",
        "interface": "eth0",
        "mac": "02:42:c0:a8:32:40",
        "mtu": 1500,
        "addresses": ["192.168.50.64/24"],
        "routes": [],
        "sysctls": {"net.ipv6.conf.IFNAME.disable_ipv6": "1"},
    }
    assert run.state == dict(LAN_STORE, endpoints={"lan|netns:m": LAN_ENDPOINT}, version=2)


def macvlan_attached() -> Machine:
    inner = link(
        2, "eth0", "macvlan", mac="02:42:c0:a8:32:40", peer_index=3, alias="cnm:endpoint:lan|netns:m", mode="bridge"
    )
    return Machine(docker_host(), sandboxes={"netns:m": sandbox_with(inner, "192.168.50.64/24", "192.168.50.1")})


def test_a_macvlan_endpoint_rerun_on_matching_facts_plans_nothing(runner):
    store = dict(LAN_STORE, endpoints={"lan|netns:m": LAN_ENDPOINT})

    run = runner.run(macvlan_attached(), "cnm_endpoint", store=store, network="lan", netns="m")

    assert run.changes == []


def test_a_macvlan_endpoint_detach_deletes_the_link_in_its_sandbox(runner):
    store = dict(LAN_STORE, endpoints={"lan|netns:m": LAN_ENDPOINT})

    run = runner.run(macvlan_attached(), "cnm_endpoint", store=store, network="lan", netns="m", state="absent")

    assert run.changes == [
        ("endpoint lan on netns:m", "delete macvlan eth0 in m"),
        ("conntrack", "flush the conntrack entries of 1 address(es) of endpoints that left"),
        ("store", "write the store"),
    ]
    assert run.diff["before"]["endpoint lan on netns:m"] == {"interface": "eth0", "parent": "lan0"}
    assert run.state == dict(LAN_STORE, version=2)


def test_macvlan_host_access_plans_the_shim_its_address_and_the_route_to_the_pool(runner):
    run = runner.run(
        Machine(docker_host()), "cnm_macvlan", store=LAN_STORE, host_access=True, host_access_ip="192.168.50.250", **LAN
    )

    assert run.changes == [
        ("network lan", "create host-access shim mvs-6999b006eec on lan0 (macvlan bridge) mtu 1500"),
        ("network lan", "add address 192.168.50.250/32 to mvs-6999b006eec"),
        ("network lan", "add route 192.168.50.64/28 through mvs-6999b006eec"),
        ("store", "write the store"),
    ]
    assert run.diff["after"]["network lan"] == {
        "shim": "mvs-6999b006eec",
        "parent": "lan0",
        "mtu": 1500,
        "addresses": ["192.168.50.250/32"],
        "routes": ["192.168.50.64/28"],
    }
    assert run.state["networks"]["lan"] == dict(
        LAN_RECORD, host_access=True, host_access_ip="192.168.50.250", shim_name="mvs-6999b006eec"
    )


IPL = dict(name="ipl", parent="lan0", subnet="192.168.60.0/24")


def test_an_ipvlan_network_is_refused_on_a_kernel_without_the_driver(runner):
    run = runner.run(Machine(docker_host()), "cnm_ipvlan", **IPL)  # no "ipvlan" in Machine.modules

    assert run.failed
    assert run.result["msg"].startswith("option 'name': ipl needs the kernel's ipvlan driver, which this kernel lacks")
    assert run.changes == []
    assert runner.stored() is None


IPL_RECORD = {
    "driver": "ipvlan",
    "parent": "lan0",
    "subnet": "192.168.60.0/24",
    "gateway": "192.168.60.1",
    "ip_range": "192.168.60.0/24",
    "ipv6_subnet": None,
    "ipv6_gateway": None,
    "mtu": 1500,
    "mtu_set": False,
    "vlan_created": False,
    "ipvlan_mode": "l2",
    "ipvlan_flag": "bridge",
    "default_on_link": False,
}
IPL_ENDPOINT = {
    "network": "ipl",
    "sandbox": "netns:i",
    "ifname": "eth0",
    "host_ifname": None,
    "ipv4_address": "192.168.60.2",
    "ipv6_address": None,
    "mac_address": "06:cb:b6:d9:80:cd",  # the parent's: every ipvlan of a parent has its MAC
    "static_ipv4": False,
    "static_ipv6": False,
    "static_mac": False,
    "default_route": True,
    "routes": [],
    "sysctls": {},
    "gw_priority": 0,
    "link": "ipvlan",
    "parent": "lan0",
    "name": "i",
}


def test_an_ipvlan_network_on_a_kernel_with_the_driver_plans_only_its_store_record(runner):
    run = runner.run(Machine(docker_host(), modules=frozenset({"ipvlan"})), "cnm_ipvlan", **IPL)

    assert not run.failed, run.result
    assert run.changes == [("store", "write the store")]
    assert run.state == {"version": 2, "networks": {"ipl": IPL_RECORD}, "endpoints": {}}


def test_an_ipvlan_endpoint_is_born_in_its_sandbox_with_the_parents_mac(runner):
    machine = Machine(docker_host(), modules=frozenset({"ipvlan"}))
    store = {"networks": {"ipl": IPL_RECORD}, "endpoints": {}}

    run = runner.run(machine, "cnm_endpoint", store=store, network="ipl", netns="i")

    assert not run.failed, run.result
    endpoint, sandbox = "endpoint ipl on netns:i", "sandbox netns:i"
    assert run.changes == [
        ("netns i", "create network namespace i"),
        (sandbox, "set net.ipv4.ip_unprivileged_port_start=0 in i (Docker's sandbox default)"),
        (sandbox, "set net.ipv4.ping_group_range=0 2147483647 in i (Docker's sandbox default)"),
        (sandbox, "set net.ipv6.conf.all.disable_ipv6=1 in i (Docker's sandbox default)"),
        (endpoint, "create ipvlan eth0 (mode l2 bridge on lan0) in i"),
        (endpoint, "add address 192.168.60.2/24 to eth0 in i"),
        ("netns i", "set lo up in i"),
        (sandbox, "add default via 192.168.60.1 through eth0 in i (network ipl, gw_priority 0)"),
        ("store", "write the store"),
    ]
    assert run.diff["after"][endpoint] == {
        "parent": "lan0",
        "mode": "l2 bridge",
        "interface": "eth0",
        "mac": LAN0.mac,
        "mtu": 1500,
        "addresses": ["192.168.60.2/24"],
        "routes": [],
        "sysctls": {"net.ipv6.conf.IFNAME.disable_ipv6": "1"},
    }
    assert run.state == {"version": 2, "networks": {"ipl": IPL_RECORD}, "endpoints": {"ipl|netns:i": IPL_ENDPOINT}}


# ======== 7. bad input: refused while planning, naming the option, nothing planned ========


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        (
            "cnm_bridge",
            dict(name="bad", subnet="172.31.0.0/24", gateway="10.9.9.1"),
            "option 'gateway': 10.9.9.1 is outside subnet 172.31.0.0/24",
        ),
        (
            "cnm_bridge",
            dict(name="lan", subnet="192.0.2.0/25"),
            "option 'subnet': 192.0.2.0/25 overlaps the host's route to 192.0.2.0/24 dev eth0",
        ),
        (
            "cnm_bridge",
            dict(name="web2", subnet="172.30.0.0/16"),
            "option 'subnet': 172.30.0.0/16 overlaps network web (172.30.0.0/24)",
        ),
        (
            "cnm_endpoint",
            dict(network="web", netns="app", ipv4_address="10.1.2.3"),
            "option 'ipv4_address': 10.1.2.3 is outside subnet 172.30.0.0/24",
        ),
        (
            "cnm_endpoint",
            dict(network="web", netns="app", routes=[{"dst": "10.9.0.0/16", "gateway": "10.1.1.1"}]),
            "option 'routes[0].gateway': 10.1.1.1 is not on the network web (172.30.0.0/24)",
        ),
        ("cnm_macvlan", dict(LAN, mtu=9000), "option 'mtu': 9000 is larger than the MTU of parent lan0 (1500)"),
        (
            "cnm_overlay",
            dict(OVERLAY, local_ip="192.0.2.50"),
            "option 'local_ip': 192.0.2.50 is not an address of this host",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_option_with_no_change_planned(runner, module, args, message):
    run = runner.run(attached_web(), module, store=store_of(app=APP), **args)

    assert run.failed
    assert run.result["msg"].startswith(message), run.result["msg"]
    assert run.changes == []
    assert "changes" not in run.result
    assert runner.stored() == dict(store_of(app=APP), version=2)  # the store file as it was


def test_a_refusal_after_a_planned_change_leaves_it_unexecuted(runner):
    """A fresh sandbox's namespace is planned before its address is checked: the refusal comes with that change in
    the plan, which is never executed (a planner that wrote would have failed with PlanningWrite)."""
    machine = Machine(host_with_web(), ruleset=listing("web"))

    run = runner.run(machine, "cnm_endpoint", store=WEB_STORE, network="web", netns="new", ipv4_address="10.1.2.3")

    assert run.result["msg"] == "option 'ipv4_address': 10.1.2.3 is outside subnet 172.30.0.0/24"
    assert run.changes == [("netns new", "create network namespace new")]
    assert "changes" not in run.result


def test_check_mode_reports_an_attach_to_a_network_an_earlier_task_creates(runner):
    run = runner.run(attached_web(), "cnm_endpoint", store=store_of(app=APP), network="later", netns="app")

    assert not run.failed, run.result
    assert run.changes == [("endpoint later on netns:app", "attach app to network later (created by an earlier task)")]
    assert (
        runner.warnings
        == run.host.warnings
        == [
            "network later does not exist yet; in check mode this is reported as it would be done once an earlier task "
            "creates it"
        ]
    )
    assert run.state == dict(store_of(app=APP), version=2)
