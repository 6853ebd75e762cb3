"""Desired state normalised at the edge: BridgeNetwork, EndpointSpec, routes and sysctls."""

from __future__ import annotations

import ipaddress
import re

import pytest

from ansible_collections.cnm.network.plugins.module_utils import model, netns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.model import (
    BridgeNetwork,
    EndpointSpec,
    RouteSpec,
    parse_routes,
    parse_sysctls,
)
from ansible_collections.cnm.network.plugins.module_utils.records import NetworkRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef

ip = ipaddress.ip_address
net = ipaddress.ip_network


def bridge(**params) -> BridgeNetwork:
    return BridgeNetwork.from_params(dict({"name": "web", "subnet": "172.30.0.0/24"}, **params))


def endpoint(where: str = "", **params) -> EndpointSpec:
    return EndpointSpec.from_params(dict({"network": "web", "netns": "a"}, **params), where=where)


def refused(option: str):
    """The error must start with the standard ``option 'NAME': `` prefix and name exactly this option."""
    return pytest.raises(CnmError, match="^option '%s': " % re.escape(option))


# ---- BridgeNetwork ----


def test_bridge_defaults_gateway_to_the_first_host_and_ip_range_to_the_subnet():
    network = bridge()
    assert network.gateway == ip("172.30.0.1")
    assert network.ip_range == net("172.30.0.0/24")
    assert network.bridge_name == "br-web"
    assert network.mtu == 1500
    assert (network.ipv6_subnet, network.ipv6_gateway) == (None, None)
    assert network.driver == "bridge"


def test_bridge_without_subnet_but_with_ipv6_subnet_is_ipv6_only():
    network = bridge(subnet=None, ipv6_subnet="fd00:30::/64")
    assert (network.subnet, network.gateway, network.ip_range) == (None, None, None)
    assert network.ipv6_gateway == ip("fd00:30::1")
    assert [str(a) for a in network.gateway_interfaces] == ["fd00:30::1/64"]
    record = network.to_record()
    assert (record.subnet, record.gateway, record.ip_range) == (None, None, None)
    assert BridgeNetwork.from_record("web", record) == network


def test_bridge_subnet_with_host_bits_is_normalised_to_its_network():
    assert bridge(subnet="172.30.0.77/24").subnet == net("172.30.0.0/24")


def test_bridge_ip_range_with_host_bits_is_normalised_to_its_network():
    assert bridge(ip_range="172.30.0.130/25").ip_range == net("172.30.0.128/25")


def test_bridge_ipv6_defaults_gateway_to_the_first_host():
    network = bridge(ipv6_subnet="FD00:30:0:0::/64")
    assert network.ipv6_subnet == net("fd00:30::/64")
    assert network.ipv6_gateway == ip("fd00:30::1")
    assert [str(a) for a in network.gateway_interfaces] == ["172.30.0.1/24", "fd00:30::1/64"]


def test_bridge_name_is_br_and_the_network_name_when_it_fits():
    assert bridge(name="abcdefghijkl").bridge_name == "br-abcdefghijkl"  # exactly 15 characters


def test_long_network_name_gets_a_stable_hashed_bridge_name_of_at_most_15_characters():
    long_name = "frontend-production-eu"
    name = bridge(name=long_name).bridge_name
    assert len(name) <= 15
    assert name.startswith("br-fronte-")
    assert name == model.default_bridge_name(long_name)
    assert name != model.default_bridge_name("frontend-production-us")


def test_explicit_bridge_name_is_kept():
    assert bridge(bridge_name="docker7").bridge_name == "docker7"


def test_bridge_record_round_trips():
    network = bridge(gateway="172.30.0.254", ip_range="172.30.0.128/25", ipv6_subnet="fd00:30::/64", mtu=1400)
    assert BridgeNetwork.from_record("web", network.to_record()) == network


def test_trusted_sources_and_ipv6_masquerade_round_trip_sorted_by_family():
    network = bridge(
        ipv6_subnet="fd00:30::/64",
        trusted_sources=["2001:db8:1::/48", "198.51.100.0/24", "10.0.0.0/8"],
        ipv6_masquerade=False,
    )
    assert network.trusted_sources == (net("10.0.0.0/8"), net("198.51.100.0/24"), net("2001:db8:1::/48"))
    record = network.to_record()
    assert (record.trusted_sources, record.ipv6_masquerade) == (
        ("10.0.0.0/8", "198.51.100.0/24", "2001:db8:1::/48"),
        False,
    )
    assert BridgeNetwork.from_record("web", record) == network


def test_an_older_record_without_the_new_keys_reads_as_the_defaults():
    written = bridge().to_record().to_dict()
    del written["trusted_sources"], written["ipv6_masquerade"]
    network = BridgeNetwork.from_record("web", NetworkRecord.from_dict(written))
    assert (network.trusted_sources, network.ipv6_masquerade) == ((), None)


def test_an_overlay_keeps_its_trusted_sources():
    overlay = model.OverlayNetwork.from_overlay_params(
        {
            "name": "ov",
            "subnet": "10.200.0.0/24",
            "vni": 42,
            "local_ip": "192.0.2.11",
            "trusted_sources": ["192.0.2.0/24"],
        }
    )
    assert overlay.to_record().trusted_sources == ("192.0.2.0/24",)


def test_bridge_alias_names_the_network():
    assert bridge().alias == "cnm:network:web"


@pytest.mark.parametrize(
    "params, option, text",
    [
        (dict(name="bad name"), "name", "is not a valid network name"),
        (dict(name="-web"), "name", "is not a valid network name"),
        (dict(name="x" * 65), "name", "at most 64"),
        (dict(name="host"), "name", "is reserved"),
        (dict(name="none"), "name", "is reserved"),
        (dict(bridge_name="br-sixteen-chars"), "bridge_name", "1 to 15 characters"),
        (dict(bridge_name="br:web"), "bridge_name", "is not a valid interface name"),
        (dict(subnet=None), "subnet", "is required"),
        (dict(subnet=None, gateway="172.30.0.1", ipv6_subnet="fd00::/64"), "gateway", "needs subnet"),
        (dict(subnet=None, ip_range="172.30.0.0/28", ipv6_subnet="fd00::/64"), "ip_range", "needs subnet"),
        (dict(subnet="172.30.0.0/33"), "subnet", "is not a valid CIDR"),
        (dict(subnet="not-a-cidr"), "subnet", "is not a valid CIDR"),
        (dict(subnet="172.30.0.0"), "subnet", "give a prefix length, e.g. 172.30.0.0/24"),
        (dict(subnet="fd00::/64"), "subnet", "is not an IPv4 CIDR"),
        (dict(subnet="172.30.0.0/31"), "subnet", "at least a /30"),
        (dict(gateway="10.9.9.1"), "gateway", "is outside subnet 172.30.0.0/24"),
        (dict(gateway="172.30.0.0"), "gateway", "is the network or broadcast address"),
        (dict(gateway="172.30.0.255"), "gateway", "is the network or broadcast address"),
        (dict(gateway="fd00::1"), "gateway", "is not an IPv4 address"),
        (dict(gateway="172.30.0.300"), "gateway", "is not a valid IP address"),
        (dict(ip_range="172.31.0.0/28"), "ip_range", "is outside subnet 172.30.0.0/24"),
        (dict(ip_range="172.30.0.0/23"), "ip_range", "is outside subnet"),
        (dict(ip_range="172.30.0.0"), "ip_range", "give a prefix length"),
        (dict(ipv6_subnet="172.31.0.0/24"), "ipv6_subnet", "is not an IPv6 CIDR"),
        (dict(ipv6_subnet="fd00::/127"), "ipv6_subnet", "at most a /126"),
        (dict(ipv6_subnet="fd00::/64", ipv6_gateway="fd01::1"), "ipv6_gateway", "is outside subnet fd00::/64"),
        (dict(ipv6_subnet="fd00::/64", ipv6_gateway="fd00::"), "ipv6_gateway", "network or broadcast"),
        (dict(ipv6_gateway="fd00::1"), "ipv6_gateway", "needs ipv6_subnet"),
        (dict(mtu=67), "mtu", "is out of range (68 to 65535)"),
        (dict(mtu=70000), "mtu", "is out of range"),
        (dict(mtu=-1), "mtu", "is out of range"),
        (dict(mtu=1279, ipv6_subnet="fd00::/64"), "mtu", "1280 to 65535 with IPv6"),
        (dict(trusted_sources="192.0.2.0/24"), "trusted_sources", "must be a list of CIDRs"),
        (dict(trusted_sources=["192.0.2.0/24", "not-a-cidr/8"]), "trusted_sources[1]", "is not a valid CIDR"),
        (
            dict(trusted_sources=["192.0.2.1"]),
            "trusted_sources[0]",
            "is not a CIDR: give an address and a prefix length",
        ),
        (
            dict(trusted_sources=["192.0.2.1/24"]),
            "trusted_sources[0]",
            "has host bits set: the network is 192.0.2.0/24",
        ),
        (dict(trusted_sources=["2001:db8::/129"]), "trusted_sources[0]", "is not a valid CIDR"),
        (dict(trusted_sources=[{"cidr": "192.0.2.0/24"}]), "trusted_sources[0]", "is not a CIDR"),
        (dict(trusted_sources=["192.0.2.0/24", "192.0.2.0/24"]), "trusted_sources", "lists one CIDR twice"),
        (
            dict(trusted_sources=["192.0.2.0/24"], internal=True),
            "trusted_sources",
            "cannot be used with internal: true",
        ),
        (dict(ipv6_masquerade=True), "ipv6_masquerade", "needs ipv6_subnet"),
        (dict(ipv6_masquerade="yes", ipv6_subnet="fd00::/64"), "ipv6_masquerade", "must be true, false or null"),
        (
            dict(ipv6_masquerade=True, ipv6_subnet="fd00::/64", internal=True),
            "ipv6_masquerade",
            "cannot be used with internal: true",
        ),
    ],
)
def test_bad_bridge_option_is_refused_naming_the_option(params, option, text):
    with refused(option) as raised:
        bridge(**params)
    assert text in str(raised.value)
    assert raised.value.details["option"] == option


def test_mtu_zero_is_refused_not_replaced_by_the_default():
    with refused("mtu"):
        bridge(mtu=0)


def test_mtu_limits_are_inclusive():
    assert bridge(mtu=68).mtu == 68
    assert bridge(mtu=65535).mtu == 65535
    assert bridge(mtu=1280, ipv6_subnet="fd00::/64").mtu == 1280


# ---- EndpointSpec ----


def test_endpoint_defaults():
    spec = endpoint()
    assert spec.sandbox == SandboxRef("netns", "a")
    assert spec.state == "present" and spec.create_netns is True and spec.delete_netns is False
    assert spec.default_route is True
    assert (spec.ifname, spec.ipv4_address, spec.ipv6_address, spec.mac_address) == (None, None, None, None)
    assert spec.routes == () and spec.sysctls == ()


@pytest.mark.parametrize(
    "kind, value, key",
    [("netns", "a", "netns:a"), ("netns_path", "/proc/1/ns/net", "netns_path:/proc/1/ns/net"), ("pid", 1, "pid:1")],
)
def test_endpoint_sandbox_is_given_by_exactly_one_option(kind, value, key):
    spec = EndpointSpec.from_params({"network": "web", kind: value})
    assert spec.sandbox.kind == kind and spec.sandbox.key == key


@pytest.mark.parametrize(
    "sandbox", [{}, {"netns": "a", "pid": 1}, {"netns": "a", "netns_path": "/run/netns/a"}, {"netns": "", "pid": None}]
)
def test_endpoint_needs_exactly_one_sandbox_option(sandbox):
    with refused("netns") as raised:
        EndpointSpec.from_params(dict({"network": "web"}, **sandbox))
    assert "exactly one of netns, netns_path, pid and container" in str(raised.value)


@pytest.mark.parametrize(
    "sandbox, option, text",
    [
        ({"netns": "../x"}, "endpoints[2].netns", "is not a valid namespace name"),
        ({"pid": "abc"}, "endpoints[2].pid", "is not a process ID"),
        ({"netns_path": "run/netns/a"}, "endpoints[2].netns_path", "must be an absolute path"),
        ({"container": "-bad"}, "endpoints[2].container", "is not a container name or ID"),
        ({"netns": "a", "container_ip": "10.0.0.2"}, "endpoints[2].netns", "pid, container and container_ip"),
    ],
)
def test_one_sandbox_parser_checks_publish_info_and_the_filter_alike(sandbox, option, text):
    """cnm_port_publish, cnm_info and the declared filter name a sandbox through cnm_endpoint's parser."""
    from ansible_collections.cnm.network.plugins.module_utils.publish import PublishSpec

    with refused(option) as raised:
        PublishSpec.from_params(dict(sandbox, network="web", ports=["8080:80"]), where="endpoints[2].")
    assert text in str(raised.value)


def test_a_publish_item_names_a_container_or_an_address_as_its_endpoint():
    from ansible_collections.cnm.network.plugins.module_utils.publish import PublishSpec

    spec = PublishSpec.from_params(
        {"network": "web", "container": "web1", "container_runtime": "podman", "ports": ["8080:80"]}
    )
    assert spec.sandbox == SandboxRef("container", "web1", "podman") and spec.container_ip is None
    spec = PublishSpec.from_params({"network": "web", "container_ip": "10.0.0.2", "ports": ["8080:80"]})
    assert spec.sandbox is None and str(spec.container_ip) == "10.0.0.2"


def test_empty_sandbox_options_do_not_count_as_given():
    assert EndpointSpec.from_params({"network": "web", "netns": "", "pid": 7}).sandbox == SandboxRef("pid", "7")


def test_endpoint_compares_equal_whatever_its_where_prefix():
    assert endpoint() == endpoint(where="endpoints[4].")


@pytest.mark.parametrize(
    "params, option, text",
    [
        (dict(network=None), "network", "is required"),
        (dict(network="bad name"), "network", "is not a valid network name"),
        (dict(netns="x/y"), "netns", "no '/'"),
        (dict(netns="ns\n"), "netns", "no '/' or whitespace"),
        (dict(netns="n" * 256), "netns", "at most 255 bytes"),
        (dict(netns="n" * 240), "netns", "the kernel keeps at most 255"),
        (dict(netns=None, netns_path="/run/netns/a\nb"), "netns_path", "must be printable"),
        (dict(netns=None, container="web\n"), "container", "is not a container name"),
        (dict(ifname="e*"), "ifname", "no wildcard, quote"),
        (dict(ifname="br+"), "ifname", "no wildcard, quote"),
        (dict(ifname='a"b'), "ifname", "no wildcard, quote"),
        (dict(ifname="eth0\n"), "ifname", "no wildcard, quote"),
        (dict(netns=".."), "netns", "no '/'"),
        (dict(netns=None, pid=0), "pid", "is not a process ID"),
        (dict(netns=None, pid=-3), "pid", "is not a process ID"),
        (dict(netns=None, pid="12a"), "pid", "is not a process ID"),
        (dict(netns=None, netns_path="run/netns/a"), "netns_path", "must be an absolute path"),
        (dict(network="host", netns=None, pid=1), "pid", "give 'netns'"),
        (dict(network="host", netns=None, netns_path="/proc/1/ns/net"), "netns_path", "give 'netns'"),
        (dict(ifname="eth0123456789abc"), "ifname", "1 to 15 characters"),
        (dict(ifname="eth 0"), "ifname", "no wildcard, quote, '/' or whitespace"),
        (dict(ifname="lo"), "ifname", "is the loopback interface"),
        (dict(ipv4_address="172.30.0.300"), "ipv4_address", "is not a valid IP address"),
        (dict(ipv4_address="fd00::5"), "ipv4_address", "is not an IPv4 address"),
        (dict(ipv4_address="172.30.0.5/24"), "ipv4_address", "is not a valid IP address"),
        (dict(ipv6_address="172.30.0.5"), "ipv6_address", "is not an IPv6 address"),
        (dict(mac_address="02:42:ac:1e:00"), "mac_address", "is not a MAC address"),
        (dict(mac_address="02:42:ac:1e:00:zz"), "mac_address", "is not a MAC address"),
        (dict(mac_address="03:42:ac:1e:00:02"), "mac_address", "is a multicast MAC address"),
        (dict(mac_address="FF:FF:FF:FF:FF:FF"), "mac_address", "is a multicast MAC address"),
        (dict(routes=[{"gateway": "172.30.0.1"}]), "routes[0]", "must be a dict with 'dst'"),
        (dict(routes=[42]), "routes[0]", "must be a dict with 'dst'"),
        (dict(routes=["10.0.0.0/8", {"dst": "10.1.0.0"}]), "routes[1].dst", "give a prefix length"),
        (dict(routes=[{"dst": "10.0.0.0/8", "gateway": "fd00::1"}]), "routes[0].gateway", "is not an IPv4 address"),
        (dict(routes=["10.0.0.0/8", "10.0.0.0/8"]), "routes", "lists one destination twice"),
        (dict(sysctls={"kernel.panic": 1}), "sysctls", "is not a network sysctl"),
        (dict(sysctls={"net/ipv4/ip_forward": 1}), "sysctls", "is not a network sysctl"),
        (dict(network="none", ifname="eth0"), "ifname", "cannot be used with network 'none'"),
        (dict(network="none", ipv4_address="172.30.0.5"), "ipv4_address", "cannot be used with network 'none'"),
        (dict(network="host", mac_address="02:42:00:00:00:01"), "mac_address", "cannot be used with network 'host'"),
        (dict(network="host", sysctls={"net.ipv4.ip_forward": 1}), "sysctls", "cannot be used with network 'host'"),
        (dict(network="none", routes=["10.0.0.0/8"]), "routes", "cannot be used with network 'none'"),
    ],
)
def test_bad_endpoint_option_is_refused_naming_the_option(params, option, text):
    with refused(option) as raised:
        endpoint(**params)
    assert text in str(raised.value)
    assert raised.value.details["option"] == option


@pytest.mark.parametrize(
    "params, option",
    [
        (dict(ipv4_address="fd00::5"), "endpoints[3].ipv4_address"),
        (dict(netns=None), "endpoints[3].netns"),
        (dict(ifname="lo"), "endpoints[3].ifname"),
        (dict(mac_address="01:00:5e:00:00:01"), "endpoints[3].mac_address"),
        (dict(routes=[{"dst": "10.0.0.0/8", "gateway": "nope"}]), "endpoints[3].routes[0].gateway"),
        (dict(sysctls={"vm.swappiness": 1}), "endpoints[3].sysctls"),
        (dict(network=None), "endpoints[3].network"),
    ],
)
def test_batch_item_errors_name_the_item(params, option):
    with refused(option):
        endpoint(where="endpoints[3].", **params)


def test_endpoint_addresses_are_parsed():
    spec = endpoint(ipv4_address="172.30.0.5", ipv6_address="FD00:30::5")
    assert spec.ipv4_address == ip("172.30.0.5") and spec.ipv6_address == ip("fd00:30::5")


@pytest.mark.parametrize(
    "given", ["02:42:AC:1E:00:02", "02-42-ac-1e-00-02", " 02:42:ac:1e:00:02 ", "02-42-AC-1E-00-02"]
)
def test_endpoint_mac_is_normalised_to_lower_case_with_colons(given):
    assert endpoint(mac_address=given).mac_address == "02:42:ac:1e:00:02"


def test_all_zero_mac_is_refused():
    with refused("mac_address"):
        endpoint(mac_address="00:00:00:00:00:00")


def test_host_network_accepts_a_netns_name():
    spec = endpoint(network="host", netns="myhost")
    assert spec.network == "host" and spec.sandbox == SandboxRef("netns", "myhost")


def test_none_network_accepts_any_sandbox_kind():
    assert endpoint(network="none", netns=None, pid=1).sandbox == SandboxRef("pid", "1")


def test_endpoint_flags_follow_the_options():
    spec = endpoint(create_netns=False, delete_netns=True, default_route=False, state="absent")
    assert (spec.create_netns, spec.delete_netns, spec.default_route, spec.state) == (False, True, False, "absent")


def test_unset_flags_keep_their_defaults():
    spec = endpoint(create_netns=None, default_route=None, state=None)
    assert (spec.create_netns, spec.default_route, spec.state) == (True, True, "present")


def test_endpoint_routes_and_sysctls_are_normalised():
    spec = endpoint(
        routes=["default", {"dst": "10.99.0.0/16", "gateway": "172.30.0.254"}],
        sysctls={"net.ipv4.conf.IFNAME.rp_filter": 2},
    )
    assert spec.routes == (RouteSpec(net("0.0.0.0/0"), None), RouteSpec(net("10.99.0.0/16"), ip("172.30.0.254")))
    assert spec.sysctls == (("net.ipv4.conf.IFNAME.rp_filter", "2"),)


# ---- routes and sysctls ----


def test_route_default_without_gateway_is_the_ipv4_default():
    assert parse_routes("routes", ["default"]) == (RouteSpec(net("0.0.0.0/0"), None),)


def test_route_default_with_an_ipv6_gateway_is_the_ipv6_default():
    assert parse_routes("routes", [{"dst": "default", "gateway": "fd00:30::1"}]) == (
        RouteSpec(net("::/0"), ip("fd00:30::1")),
    )


def test_ipv4_and_ipv6_defaults_can_both_be_listed():
    routes = parse_routes(
        "routes", [{"dst": "default", "gateway": "172.30.0.1"}, {"dst": "default", "gateway": "fd00:30::1"}]
    )
    assert [r.dst for r in routes] == [net("0.0.0.0/0"), net("::/0")]


def test_route_destinations_are_normalised():
    routes = parse_routes("routes", ["10.99.1.7/16", {"dst": "FD00:99::1/48"}])
    assert [r.dst for r in routes] == [net("10.99.0.0/16"), net("fd00:99::/48")]
    assert [r.to_record() for r in routes] == [
        {"dst": "10.99.0.0/16", "gateway": None},
        {"dst": "fd00:99::/48", "gateway": None},
    ]


def test_no_routes_is_an_empty_tuple():
    assert parse_routes("routes", None) == () and parse_routes("routes", []) == ()


def test_ipv6_route_with_an_ipv4_gateway_is_refused():
    with refused("routes[0].gateway"):
        parse_routes("routes", [{"dst": "fd00:99::/48", "gateway": "172.30.0.1"}])


def test_sysctls_are_sorted_and_booleans_become_numbers():
    assert parse_sysctls("sysctls", {"net.ipv6.conf.all.disable_ipv6": True, "net.ipv4.conf.IFNAME.rp_filter": 2}) == (
        ("net.ipv4.conf.IFNAME.rp_filter", "2"),
        ("net.ipv6.conf.all.disable_ipv6", "1"),
    )


def test_no_sysctls_is_an_empty_tuple():
    assert parse_sysctls("sysctls", None) == ()


# ---- names ----


def test_host_veth_name_is_stable_short_and_distinct_per_sandbox():
    first = model.host_veth_name("web", "netns:a")
    assert first == model.host_veth_name("web", "netns:a")
    assert first.startswith("ve-") and len(first) <= 15
    assert first != model.host_veth_name("web", "netns:b")
    assert first != model.host_veth_name("db", "netns:a")


@pytest.mark.parametrize("name", ["eth0", "a", "x" * 15, "veth.100", "br-web_1"])
def test_valid_interface_names_are_accepted(name):
    assert model.check_ifname("ifname", name) == name


@pytest.mark.parametrize("name", ["", "x" * 16, ".", "..", "a/b", "a:b", "a%b", "a b", "a\tb"])
def test_invalid_interface_names_are_refused(name):
    with refused("ifname"):
        model.check_ifname("ifname", name)


# ---- containers as sandboxes (container, container_runtime) ----


class FakeRuntime:
    """Stands in for AnsibleModule: get_bin_path and run_command of a container runtime's CLI."""

    def __init__(self, containers=None, installed=("docker", "podman"), failure=None):
        self.containers = containers or {}  # name -> (id, pid, status)
        self.installed = installed
        self.failure = failure  # (rc, stderr): the daemon cannot be reached
        self.calls = []

    def get_bin_path(self, name):
        return "/usr/bin/" + name if name in self.installed else None

    def run_command(self, argv, check_rc=False):
        self.calls.append(argv)
        if self.failure:
            return self.failure[0], "", self.failure[1]
        names = argv[argv.index("--format") + 2 :]
        out, err = [], []
        for name in names:
            if name in self.containers:
                cid, pid, status = self.containers[name]
                out.append("%s %d %s /%s" % (cid, pid, status, name))
            else:
                err.append("Error response from daemon: No such container: %s" % name)
        return (1 if err else 0), "".join(line + "\n" for line in out), "\n".join(err)


@pytest.fixture
def runtime():
    fake = FakeRuntime(
        {"web1": ("a" * 64, 4242, "running"), "web2": ("b" * 64, 4343, "running"), "old": ("c" * 64, 0, "exited")}
    )
    netns.CONTAINERS.attach(fake)
    yield fake
    netns.CONTAINERS.attach(None)


def test_endpoint_container_defaults_to_docker_and_is_keyed_by_runtime_and_name():
    spec = EndpointSpec.from_params({"network": "web", "container": "web1"})
    assert spec.sandbox == SandboxRef("container", "web1", "docker")
    assert spec.sandbox.key == "container:docker/web1"
    podman = EndpointSpec.from_params({"network": "web", "container": "web1", "container_runtime": "podman"})
    assert podman.sandbox.key == "container:podman/web1"


@pytest.mark.parametrize(
    "key", ["container:docker/web1", "container:podman/a.b_c-1", "netns:a", "pid:12", "netns_path:/proc/1/ns/net"]
)
def test_sandbox_keys_round_trip(key):
    assert SandboxRef.from_key(key).key == key


def test_container_runtime_is_ignored_for_other_sandboxes_of_a_batch():
    """The top-level container_runtime is every item's default, also of items that give a netns."""
    assert EndpointSpec.from_params(
        {"network": "web", "netns": "a", "container_runtime": "podman"}
    ).sandbox == SandboxRef("netns", "a")


@pytest.mark.parametrize(
    "params, option, text",
    [
        (dict(netns=None, container="web/1"), "container", "is not a container name or ID"),
        (dict(netns=None, container="-x"), "container", "is not a container name or ID"),
        (dict(netns=None, container="x" * 129), "container", "is not a container name or ID"),
        (
            dict(netns=None, container="web1", container_runtime="lxc"),
            "container_runtime",
            "is not a supported container runtime (docker, podman)",
        ),
        (dict(container="web1"), "netns", "exactly one of netns, netns_path, pid and container"),
        (dict(network="host", netns=None, container="web1"), "container", "give 'netns'"),
    ],
)
def test_bad_container_option_is_refused_naming_the_option(params, option, text):
    with refused(option) as raised:
        endpoint(**params)
    assert text in str(raised.value)


def test_batch_container_errors_name_the_item():
    with refused("endpoints[2].container"):
        endpoint(where="endpoints[2].", netns=None, container="a b")


@pytest.mark.parametrize(
    "params, option",
    [
        ({"container_runtime": "podman", "netns": "a"}, "container_runtime"),
        ({"container_runtime": "podman", "endpoints": [{"netns": "a"}]}, "container_runtime"),
        (
            {"container": "web1", "endpoints": [{"netns": "a", "container_runtime": "podman"}]},
            "endpoints[0].container_runtime",
        ),
        (
            {"endpoints": [{"container": "web1"}, {"pid": 3, "container_runtime": "docker"}]},
            "endpoints[1].container_runtime",
        ),
    ],
)
def test_container_runtime_without_container_is_refused(params, option):
    with refused(option):
        model.check_container_runtime(params)


@pytest.mark.parametrize(
    "params",
    [
        {"container": "web1", "container_runtime": "podman"},
        {"container_runtime": "podman", "endpoints": [{"container": "a"}, {"netns": "b"}]},
        {
            "container": "web1",
            "endpoints": [{"container_runtime": "podman"}],
        },  # the item inherits the top-level container
        {"netns": "a"},
    ],
)
def test_container_runtime_with_a_container_is_accepted(params):
    model.check_container_runtime(params)


def test_one_inspect_call_resolves_every_container_of_a_batch(runtime):
    refs = [SandboxRef("container", name, "docker") for name in ("web2", "web1", "old", "gone")]
    netns.prefetch_containers([(ref, "container_runtime") for ref in refs], ["netns:x", "container:docker/web1"])
    assert len(runtime.calls) == 1
    assert runtime.calls[0][:5] == ["/usr/bin/docker", "container", "inspect", "--format", netns.INSPECT_FORMAT]
    assert sorted(runtime.calls[0][5:]) == ["gone", "old", "web1", "web2"]
    assert netns.sandbox_path(refs[0]) == "/proc/4343/ns/net" and netns.sandbox_path(refs[1]) == "/proc/4242/ns/net"
    assert not netns.sandbox_exists(refs[2]) and not netns.sandbox_exists(refs[3])  # stopped, unknown: no namespace
    assert len(runtime.calls) == 1  # everything came from the one call


def test_a_stopped_or_unknown_container_is_a_clear_error_naming_the_option(runtime):
    with refused("endpoints[1].container") as raised:
        netns.check_running(SandboxRef("container", "old", "docker"), "endpoints[1].container")
    assert "is not running (docker status: exited)" in str(raised.value)
    with refused("container") as raised:
        netns.check_running(SandboxRef("container", "gone", "docker"), "container")
    assert "is not a docker container on this host (no such container)" in str(raised.value)


def test_a_missing_runtime_is_an_error_naming_container_runtime_when_asked_for(runtime):
    runtime.installed = ("docker",)
    with refused("endpoints[0].container_runtime") as raised:
        netns.prefetch_containers([(SandboxRef("container", "web1", "podman"), "endpoints[0].container_runtime")])
    assert "the 'podman' command was not found" in str(raised.value)
    # A stored endpoint of a runtime that is no longer installed: its container is gone (the lease can be reclaimed).
    assert not netns.sandbox_exists(SandboxRef.from_key("container:podman/web1"))
    assert runtime.calls == []


def test_an_unreachable_engine_is_an_error_not_a_vanished_container(runtime):
    runtime.failure = (
        1,
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
    )
    with refused("container_runtime") as raised:
        netns.sandbox_exists(SandboxRef.from_key("container:docker/web1"))
    assert "Cannot connect to the Docker daemon" in str(raised.value)


def test_inspect_output_is_matched_by_name_or_id_when_some_names_are_unknown():
    from ansible_collections.cnm.network.plugins.module_utils.netns import parse_inspect

    out = "%s 11 running /web1\n%s 0 created web2\n" % ("a" * 64, "b" * 64)
    found = parse_inspect(
        "docker", ["bbbb", "nope", "web1"], 1, out, "Error: No such container: nope", "container_runtime"
    )
    assert found[("docker", "web1")].pid == 11 and found[("docker", "bbbb")].status == "created"
    assert found[("docker", "nope")] is None
    with refused("container_runtime"):
        parse_inspect("docker", ["web1"], 0, "garbage\n", "", "container_runtime")


# ---- issue 11: names as data, limits up front ----
@pytest.mark.parametrize(
    "name",
    [
        "br*",
        "br+",
        'br"x',
        "br'x",
        "br\\x",
        "br x",
        "br\tx",
        "br-x\n",
        "a/b",
        "a:b",
        "a%d",
        "..",
        ".",
        "",
        "brü",
        "b" * 16,
    ],
)
def test_interface_names_outside_the_allow_list_are_refused(name):
    with refused("bridge_name"):
        model.check_ifname("bridge_name", name)


@pytest.mark.parametrize("name", ["br-web", "eth0", "eth0.100", "a_b", "x" * 15, "1"])
def test_plain_interface_names_pass(name):
    assert model.check_ifname("bridge_name", name) == name


def test_unprintable_names_are_shown_escaped():
    with refused("bridge_name") as raised:
        model.check_ifname("bridge_name", "br\n")
    assert "'br\\n'" in str(raised.value)


@pytest.mark.parametrize(
    "subnet, option",
    [
        ("127.0.0.0/8", "subnet"),
        ("127.1.2.0/24", "subnet"),
        ("224.0.0.0/24", "subnet"),
        ("239.255.0.0/16", "subnet"),
        ("169.254.0.0/24", "subnet"),
        ("0.0.0.0/24", "subnet"),
        ("0.0.0.0/0", "subnet"),
        ("255.255.255.0/24", "subnet"),
    ],
)
def test_reserved_ipv4_subnets_are_refused(subnet, option):
    with refused(option):
        bridge(subnet=subnet)


@pytest.mark.parametrize("subnet", ["::/64", "fe80::/64", "fe80:0:0:1::/64", "ff02::/64", "ff05::/16"])
def test_reserved_ipv6_subnets_are_refused(subnet):
    with refused("ipv6_subnet"):
        bridge(ipv6_subnet=subnet)


def test_ordinary_subnets_pass_the_scope_check():
    for subnet in ("10.0.0.0/8", "172.30.0.0/24", "192.168.0.0/16", "100.64.0.0/10", "fd00::/64", "2001:db8::/64"):
        model.check_subnet_scope("subnet", ipaddress.ip_network(subnet))


@pytest.mark.parametrize(
    "mtu, ipv6, ok",
    [
        (68, False, True),
        (576, False, True),
        (1279, False, True),
        (1279, True, False),
        (1280, True, True),
        (67, False, False),
        (65536, False, False),
        (True, False, False),
    ],
)
def test_mtu_against_the_address_families(mtu, ipv6, ok):
    if ok:
        assert model.check_mtu("mtu", mtu, ipv6) == mtu
    else:
        with refused("mtu"):
            model.check_mtu("mtu", mtu, ipv6)


def test_bridge_port_limit_is_the_kernels():
    model.check_port_count("network", "web", "br-web", 1022, 1)  # the 1023rd port: the last the kernel numbers
    with refused("endpoints[7].network") as raised:
        model.check_port_count("endpoints[7].network", "web", "br-web", 1023, 1)
    assert "port 1024 of bridge br-web" in str(raised.value) and "at most 1023" in str(raised.value)


def test_alias_length_follows_the_kernel_limit():
    fits = "n" * (model.IFALIASZ - len(model.ENDPOINT_ALIAS_PREFIX + "web|netns:"))
    assert endpoint(netns=fits).sandbox.value == fits
    with refused("netns") as raised:
        endpoint(netns=fits + "n")
    assert "256 bytes" in str(raised.value)


def overlay(**params):
    base = dict(name="ov", subnet="10.200.0.0/16", vni=42, local_ip="192.0.2.11")
    return model.OverlayNetwork.from_overlay_params(dict(base, **params))


def test_overlay_port_zero_is_refused_not_defaulted():
    assert overlay().port == 4789 and overlay(port=None).port == 4789
    with refused("port"):
        overlay(port=0)
