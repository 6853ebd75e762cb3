"""Bad inputs on the real kernel: each fails, names the option at fault, and changes nothing.

Every case runs in a throwaway host that already holds a valid network ``web`` (172.30.0.0/24)
and whatever else the case needs; the host's kernel state and store are compared before and
after the failing run. The cases that need only ``web`` share one such host (built once for the
file): each one's comparison proves it left the host as it found it for the next.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

WEB = dict(name="web", subnet="172.30.0.0/24")
DB = dict(name="db", subnet="172.31.0.0/24")
NO_SUCH_PID = 4194305  # above PID_MAX_LIMIT (2^22): no process can have it


def web_only(host) -> None:
    host.ok("cnm_bridge", **WEB)


@dataclass(frozen=True)
class Case:
    """A bad module run: the set-up before it, the module and its arguments, the option at fault."""

    module: str
    args: Callable  # host -> the module's arguments
    option: str
    setup: Callable = field(default=web_only)


def web_and(*more: Callable) -> Callable:
    def setup(host):
        host.ok("cnm_bridge", **WEB)
        for step in more:
            step(host)

    return setup


def attached(short: str, **extra) -> Callable:
    return lambda host: host.ok("cnm_endpoint", network=extra.pop("network", "web"), netns=host.sandbox(short), **extra)


def bridge(**args) -> Callable:
    return lambda host: args


def endpoint(short: str = "a", **args) -> Callable:
    return lambda host: dict({"network": "web", "netns": host.sandbox(short)}, **args)


def batch(*items: dict, **top) -> Callable:
    """Items name their sandbox by its short name under ``sb``."""

    def args(host):
        endpoints = []
        for item in items:
            item = dict(item)
            if "sb" in item:
                item["netns"] = host.sandbox(item.pop("sb"))
            endpoints.append(item)
        return dict({"network": "web", "endpoints": endpoints}, **top)

    return args


def exhausted_setup(host):
    host.ok("cnm_bridge", ip_range="172.30.0.0/30", **WEB)  # .0 network, .1 gateway: .2 and .3 are left
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])


def assert_unchanged(host, before: dict, timeout: float = 5.0) -> None:
    """The host's snapshot equals ``before`` once the kernel's asynchronous carrier updates settle.

    A bridge loses carrier shortly after an undone veth leaves it, and its routes' ``linkdown`` flag
    follows: poll briefly rather than compare a half-settled state. A real difference never settles.
    """
    deadline = time.monotonic() + timeout
    after = host.snapshot()
    while after != before and time.monotonic() < deadline:
        time.sleep(0.1)
        after = host.snapshot()
    assert after == before


CASES = {
    # ---- cnm_bridge ----
    "invalid_cidr": Case("cnm_bridge", bridge(name="db", subnet="172.31.0.0/33"), "subnet"),
    "cidr_garbage": Case("cnm_bridge", bridge(name="db", subnet="172.31.0.x/24"), "subnet"),
    "subnet_without_prefix": Case("cnm_bridge", bridge(name="db", subnet="172.31.0.0"), "subnet"),
    "ipv6_subnet_given_as_subnet": Case("cnm_bridge", bridge(name="db", subnet="fd00:31::/64"), "subnet"),
    "subnet_too_small": Case("cnm_bridge", bridge(name="db", subnet="172.31.0.0/31"), "subnet"),
    "gateway_outside_subnet": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", gateway="172.32.0.1"), "gateway"
    ),
    "gateway_is_network_address": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", gateway="172.31.0.0"), "gateway"
    ),
    "gateway_is_broadcast_address": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", gateway="172.31.0.255"), "gateway"
    ),
    "existing_network_moved_to_gateway_outside": Case("cnm_bridge", bridge(gateway="10.9.9.1", **WEB), "gateway"),
    "ip_range_outside_subnet": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", ip_range="172.31.1.0/28"), "ip_range"
    ),
    "bridge_name_over_15_chars": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", bridge_name="br-db-is-too-long"), "bridge_name"
    ),
    "bridge_name_of_another_network": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", bridge_name="br-web"), "bridge_name"
    ),
    "bridge_name_changed_on_existing_network": Case("cnm_bridge", bridge(bridge_name="br-web2", **WEB), "bridge_name"),
    "bridge_name_of_a_foreign_link": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", bridge_name="lo"), "bridge_name"
    ),
    "mtu_zero": pytest.param(Case("cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", mtu=0), "mtu")),
    "mtu_70000": Case("cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", mtu=70000), "mtu"),
    "mtu_below_1280_with_ipv6": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", ipv6_subnet="fd00:31::/64", mtu=1279), "mtu"
    ),
    "ipv6_subnet_too_small": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", ipv6_subnet="fd00:31::/127"), "ipv6_subnet"
    ),
    "ipv6_gateway_without_ipv6_subnet": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", ipv6_gateway="fd00:31::1"), "ipv6_gateway"
    ),
    "overlapping_subnet": Case("cnm_bridge", bridge(name="db", subnet="172.30.0.128/25"), "subnet"),
    "overlapping_ipv6_subnet": Case(
        "cnm_bridge",
        bridge(name="db", subnet="172.31.0.0/24", ipv6_subnet="fd00:30:0:0:1::/80"),
        "ipv6_subnet",
        setup=lambda host: host.ok("cnm_bridge", ipv6_subnet="fd00:30::/64", **WEB),
    ),
    "trusted_source_not_a_cidr": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", trusted_sources=["not-a-cidr/8"]), "trusted_sources[0]"
    ),
    "trusted_source_without_prefix": Case(
        "cnm_bridge", bridge(name="db", subnet="172.31.0.0/24", trusted_sources=["192.0.2.1"]), "trusted_sources[0]"
    ),
    "trusted_source_with_host_bits": Case(
        "cnm_bridge",
        bridge(name="db", subnet="172.31.0.0/24", trusted_sources=["192.0.2.0/24", "2001:db8::1/64"]),
        "trusted_sources[1]",
    ),
    "trusted_source_ipv6_prefix_129": Case(
        "cnm_bridge", bridge(trusted_sources=["2001:db8::/129"], **WEB), "trusted_sources[0]"
    ),
    "trusted_source_listed_twice": Case(
        "cnm_bridge", bridge(trusted_sources=["192.0.2.0/24", "192.0.2.0/24"], **WEB), "trusted_sources"
    ),
    "trusted_sources_on_an_internal_network": Case(
        "cnm_bridge",
        bridge(name="db", subnet="172.31.0.0/24", internal=True, trusted_sources=["192.0.2.0/24"]),
        "trusted_sources",
    ),
    "ipv6_masquerade_without_ipv6_subnet": Case("cnm_bridge", bridge(ipv6_masquerade=False, **WEB), "ipv6_masquerade"),
    "ipv6_masquerade_on_an_internal_network": Case(
        "cnm_bridge",
        bridge(name="db", subnet="172.31.0.0/24", ipv6_subnet="fd00:31::/64", internal=True, ipv6_masquerade=True),
        "ipv6_masquerade",
    ),
    "network_named_host": Case("cnm_bridge", bridge(name="host", subnet="172.31.0.0/24"), "name"),
    "network_name_with_a_slash": Case("cnm_bridge", bridge(name="a/b", subnet="172.31.0.0/24"), "name"),
    "subnet_change_strands_an_endpoint": Case(
        "cnm_bridge", bridge(name="web", subnet="172.30.1.0/24"), "subnet", setup=web_and(attached("a"))
    ),
    "absent_with_endpoints_attached": Case(
        "cnm_bridge", bridge(name="web", state="absent"), "state", setup=web_and(attached("a"))
    ),
    # ---- cnm_endpoint: the sandbox ----
    "unknown_network": Case("cnm_endpoint", endpoint(network="nosuchnet"), "network"),
    "missing_sandbox_with_create_netns_false": Case("cnm_endpoint", endpoint(create_netns=False), "netns"),
    "pid_of_no_process": Case("cnm_endpoint", lambda host: dict(network="web", pid=NO_SUCH_PID), "pid"),
    "pid_zero": Case("cnm_endpoint", lambda host: dict(network="web", pid=0), "pid"),
    "netns_path_relative": Case(
        "cnm_endpoint", lambda host: dict(network="web", netns_path="run/netns/x"), "netns_path"
    ),
    "netns_path_missing": Case(
        "cnm_endpoint", lambda host: dict(network="web", netns_path="/run/netns/cnm-no-such-sandbox"), "netns_path"
    ),
    "netns_path_not_a_namespace": Case(
        "cnm_endpoint", lambda host: dict(network="web", netns_path="/proc/version"), "netns_path"
    ),
    "netns_with_a_slash": Case("cnm_endpoint", lambda host: dict(network="web", netns="a/b"), "netns"),
    "host_mode_with_pid": Case("cnm_endpoint", lambda host: dict(network="host", pid=1), "pid"),
    "host_mode_on_a_name_taken_by_a_sandbox": Case(
        "cnm_endpoint", endpoint(network="host"), "netns", setup=web_and(attached("a"))
    ),
    "none_mode_on_a_sandbox_with_interfaces": Case(
        "cnm_endpoint", endpoint(network="none"), "netns", setup=web_and(attached("a"))
    ),
    # ---- cnm_endpoint: addresses ----
    "address_outside_subnet": Case("cnm_endpoint", endpoint(ipv4_address="172.31.0.5"), "ipv4_address"),
    "address_taken_by_another_endpoint": Case(
        "cnm_endpoint",
        endpoint("b", ipv4_address="172.30.0.7"),
        "ipv4_address",
        setup=web_and(attached("a", ipv4_address="172.30.0.7")),
    ),
    "address_is_the_gateway": Case("cnm_endpoint", endpoint(ipv4_address="172.30.0.1"), "ipv4_address"),
    "address_is_the_broadcast": Case("cnm_endpoint", endpoint(ipv4_address="172.30.0.255"), "ipv4_address"),
    "ipv6_address_as_ipv4_address": Case("cnm_endpoint", endpoint(ipv4_address="fd00:30::5"), "ipv4_address"),
    "address_with_a_prefix": Case("cnm_endpoint", endpoint(ipv4_address="172.30.0.5/24"), "ipv4_address"),
    "ipv6_address_without_ipv6_subnet": Case("cnm_endpoint", endpoint(ipv6_address="fd00:30::5"), "ipv6_address"),
    "ipv6_address_outside_ipv6_subnet": Case(
        "cnm_endpoint",
        endpoint(ipv6_address="fd00:99::5"),
        "ipv6_address",
        setup=lambda host: host.ok("cnm_bridge", ipv6_subnet="fd00:30::/64", **WEB),
    ),
    "exhausted_ip_range": Case("cnm_endpoint", endpoint("c"), "ip_range", setup=exhausted_setup),
    # ---- cnm_endpoint: interface, MAC, routes, sysctls ----
    "ifname_over_15_chars": Case("cnm_endpoint", endpoint(ifname="eth-is-too-long0"), "ifname"),
    "ifname_lo": Case("cnm_endpoint", endpoint(ifname="lo"), "ifname"),
    "ifname_with_a_colon": Case("cnm_endpoint", endpoint(ifname="eth0:1"), "ifname"),
    "ifname_taken_by_another_interface": Case(
        "cnm_endpoint",
        endpoint(network="db", ifname="eth0"),
        "ifname",
        setup=web_and(attached("a"), lambda host: host.ok("cnm_bridge", **DB)),
    ),
    "ifname_on_network_none": Case("cnm_endpoint", endpoint(network="none", ifname="eth0"), "ifname"),
    "bad_mac": Case("cnm_endpoint", endpoint(mac_address="02:42:ac:1e:00"), "mac_address"),
    "mac_with_bad_digits": Case("cnm_endpoint", endpoint(mac_address="02:42:ac:1e:00:gg"), "mac_address"),
    "all_zero_mac": pytest.param(Case("cnm_endpoint", endpoint(mac_address="00:00:00:00:00:00"), "mac_address")),
    "multicast_mac": Case("cnm_endpoint", endpoint(mac_address="01:00:5e:00:00:01"), "mac_address"),
    "route_gateway_off_the_network": Case(
        "cnm_endpoint", endpoint(routes=[dict(dst="10.99.0.0/16", gateway="10.0.0.1")]), "routes[0].gateway"
    ),
    "route_repeats_the_default_route": Case(
        "cnm_endpoint", endpoint(routes=[dict(dst="default", gateway="172.30.0.254")]), "routes[0].dst"
    ),
    "route_dst_without_prefix": Case("cnm_endpoint", endpoint(routes=[dict(dst="10.99.0.0")]), "routes[0].dst"),
    "route_listed_twice": Case(
        "cnm_endpoint", endpoint(routes=[dict(dst="10.99.0.0/16"), dict(dst="10.99.0.0/16")]), "routes"
    ),
    "sysctl_not_under_net": Case("cnm_endpoint", endpoint(sysctls={"kernel.panic": 1}), "sysctls"),
    "sysctl_that_does_not_exist": pytest.param(
        Case("cnm_endpoint", endpoint(sysctls={"net.ipv4.conf.IFNAME.no_such_knob": 1}), "sysctls")
    ),
    "sysctl_value_the_kernel_refuses": pytest.param(
        Case("cnm_endpoint", endpoint(sysctls={"net.ipv4.conf.IFNAME.rp_filter": "strict"}), "sysctls")
    ),
    "sysctls_on_network_host": Case(
        "cnm_endpoint", endpoint(network="host", sysctls={"net.ipv4.ip_forward": 1}), "sysctls"
    ),
    # ---- cnm_endpoint: batches ----
    "duplicate_ifname_in_one_sandbox": Case(
        "cnm_endpoint",
        batch(dict(sb="a", ifname="eth0"), dict(sb="a", network="db", ifname="eth0")),
        "endpoints[1].ifname",
        setup=web_and(lambda host: host.ok("cnm_bridge", **DB)),
    ),
    "same_sandbox_twice": Case("cnm_endpoint", batch(dict(sb="a"), dict(sb="a")), "endpoints[1].netns"),
    "item_with_two_sandboxes": Case("cnm_endpoint", batch(dict(sb="a", pid=1)), "endpoints[0].netns"),
    "item_2_outside_the_subnet": Case(
        "cnm_endpoint",
        batch(dict(sb="a"), dict(sb="b"), dict(sb="c", ipv4_address="10.9.9.9")),
        "endpoints[2].ipv4_address",
    ),
    "item_2_takes_the_address_of_item_0": Case(
        "cnm_endpoint",
        batch(dict(sb="a", ipv4_address="172.30.0.9"), dict(sb="b"), dict(sb="c", ipv4_address="172.30.0.9")),
        "endpoints[2].ipv4_address",
    ),
    "item_2_is_the_gateway": Case(
        "cnm_endpoint",
        batch(dict(sb="a"), dict(sb="b"), dict(sb="c", ipv4_address="172.30.0.1")),
        "endpoints[2].ipv4_address",
    ),
    "item_2_on_an_unknown_network": Case(
        "cnm_endpoint", batch(dict(sb="a"), dict(sb="b"), dict(sb="c", network="nosuchnet")), "endpoints[2].network"
    ),
    "item_2_route_off_the_network": Case(
        "cnm_endpoint",
        batch(dict(sb="a"), dict(sb="b"), dict(sb="c", routes=[dict(dst="10.99.0.0/16", gateway="192.0.2.1")])),
        "endpoints[2].routes[0].gateway",
    ),
    "item_2_exhausts_the_ip_range": Case(
        "cnm_endpoint",
        batch(dict(sb="c"), dict(sb="d"), dict(sb="e")),
        "ip_range",
        setup=lambda host: host.ok("cnm_bridge", ip_range="172.30.0.0/30", **WEB),
    ),
}


def case_params() -> list:
    params = []
    for name, case in CASES.items():
        if isinstance(case, Case):
            params.append(pytest.param(case, id=name))
        else:  # a pytest.param already, with marks
            params.append(pytest.param(*case.values, marks=case.marks, id=name))
    return params


def shared_web_host(request):
    """The test file's shared host (conftest's ``shared_host``) holding only ``web``, made by the first test asking.

    Shared by the tests that need nothing else: each checks that it leaves the host unchanged.
    """
    host = request.getfixturevalue("shared_host")
    if "web" not in host.store().get("networks", {}):
        web_only(host)
    return host


@pytest.fixture
def web_host(request):
    return shared_web_host(request)


def case_host(request, case: Case):
    """The shared host for a case with the common set-up, else a fresh host with the case's own set-up."""
    if case.setup is web_only:
        return shared_web_host(request)
    host = request.getfixturevalue("host")
    case.setup(host)
    return host


@pytest.mark.parametrize("case", case_params())
def test_bad_input_fails_naming_the_option_and_changes_nothing(request, case):
    host = case_host(request, case)
    args = case.args(host)
    before = host.snapshot()

    result = host.module(case.module, **args)

    assert result.get("failed") is True, result
    assert "option '%s'" % case.option in result["msg"], result["msg"]
    assert_unchanged(host, before)


KERNEL_REFUSES = [
    pytest.param(
        dict(sysctls={"net.ipv4.conf.IFNAME.rp_filter": "strict"}),
        "option 'sysctls': set net.ipv4.conf.eth0.rp_filter=strict",
        id="interface_sysctl_value_refused",
    ),
    pytest.param(
        dict(sysctls={"net.ipv4.ip_forward": "yes"}),
        "option 'sysctls': set net.ipv4.ip_forward=yes",
        id="namespace_sysctl_value_refused",
    ),
]


@pytest.mark.parametrize("args, failed_change", KERNEL_REFUSES)
def test_input_the_kernel_refuses_is_undone_completely(web_host, args, failed_change):
    host = web_host
    before = host.snapshot()

    result = host.module("cnm_endpoint", network="web", netns=host.sandbox("a"), **args)

    assert result.get("failed") is True, result
    assert result["msg"].startswith(failed_change) and "failed:" in result["msg"] and "; undid " in result["msg"], (
        result["msg"]
    )
    assert "undo incomplete" not in result["msg"]
    assert_unchanged(host, before)


def test_failed_attach_to_an_existing_sandbox_restores_its_sysctls(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_bridge", **DB)
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))
    forward = "cat /proc/sys/net/ipv4/ip_forward"
    assert host.in_sandbox("a", forward).stdout.strip() == "0"
    before = host.snapshot()

    # sorted by name, ip_forward is written first; the kernel then refuses the value of the IPv6 knob
    result = host.module(
        "cnm_endpoint",
        network="db",
        netns=host.sandbox("a"),
        sysctls={"net.ipv4.ip_forward": 1, "net.ipv6.conf.IFNAME.accept_dad": "bogus"},
    )

    assert result.get("failed") is True and "; undid " in result["msg"], result
    assert_unchanged(host, before)
    assert host.in_sandbox("a", forward).stdout.strip() == "0"


def test_bad_batch_item_applies_none_of_the_items_before_it(host):
    host.ok("cnm_bridge", **WEB)
    names = [host.sandbox(short) for short in ("a", "b", "c")]

    result = host.module(
        "cnm_endpoint",
        network="web",
        endpoints=[dict(netns=names[0]), dict(netns=names[1]), dict(netns=names[2], ipv4_address="172.30.0.1")],
    )

    assert result.get("failed") is True and result["msg"].startswith(
        "option 'endpoints[2].ipv4_address': 172.30.0.1 "
    ), result
    assert host.namespaces() == [host.name]  # sandboxes a and b were not even created
    assert host.store()["endpoints"] == {}
    assert [name for name in host.links() if name.startswith("ve-")] == []


def test_the_same_bad_input_fails_the_same_way_in_check_mode(web_host):
    host = web_host
    before = host.snapshot()

    checked = host.module("cnm_endpoint", check=True, network="web", netns=host.sandbox("a"), ipv4_address="172.30.0.1")
    real = host.module("cnm_endpoint", network="web", netns=host.sandbox("a"), ipv4_address="172.30.0.1")

    assert checked.get("failed") is True and real.get("failed") is True
    assert checked["msg"] == real["msg"]
    assert_unchanged(host, before)


ARGUMENT_SPEC_CASES = [
    pytest.param("cnm_bridge", dict(WEB, state="bogus"), "state", id="bridge_state_bogus"),
    pytest.param("cnm_bridge", dict(WEB, mtu="abc"), "mtu", id="bridge_mtu_not_a_number"),
    pytest.param("cnm_bridge", dict(WEB, force="maybe"), "force", id="bridge_force_not_a_bool"),
    pytest.param("cnm_bridge", dict(WEB, subnett="172.30.0.0/24"), "subnett", id="bridge_unknown_option"),
    pytest.param("cnm_bridge", dict(name="db"), "subnet", id="bridge_present_without_subnet"),
    pytest.param("cnm_bridge", dict(subnet="172.31.0.0/24"), "name", id="bridge_without_name"),
    pytest.param("cnm_endpoint", dict(network="web", netns="x", state="bogus"), "state", id="endpoint_state_bogus"),
    pytest.param("cnm_endpoint", dict(network="web", pid="abc"), "pid", id="endpoint_pid_not_a_number"),
    pytest.param("cnm_endpoint", dict(network="web", netns="x", pid=1), "pid", id="endpoint_netns_and_pid"),
    pytest.param(
        "cnm_endpoint",
        dict(network="web", netns="x", sysctls="net.ipv4.ip_forward"),
        "sysctls",
        id="endpoint_sysctls_not_a_dict",
    ),
    pytest.param(
        "cnm_endpoint",
        dict(network="web", netns="x", routes=[dict(gateway="172.30.0.1")]),
        "dst",
        id="endpoint_route_without_dst",
    ),
    pytest.param(
        "cnm_endpoint",
        dict(network="web", netns="x", create_netns="perhaps"),
        "create_netns",
        id="endpoint_create_netns_not_a_bool",
    ),
    pytest.param(
        "cnm_endpoint",
        dict(network="web", endpoints=[dict(netns="x", colour="red")]),
        "colour",
        id="endpoint_item_unknown_option",
    ),
    pytest.param("cnm_endpoint", dict(netns="x"), "endpoints", id="endpoint_neither_network_nor_endpoints"),
]


@pytest.mark.parametrize("module, args, option", ARGUMENT_SPEC_CASES)
def test_argument_spec_error_fails_naming_the_option(web_host, module, args, option):
    host = web_host
    before = host.snapshot()

    result = host.module(module, **args)

    assert result.get("failed") is True, result
    assert re.search(r"\b%s\b" % re.escape(option), result["msg"]), result["msg"]
    assert_unchanged(host, before)
