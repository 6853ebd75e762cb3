# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad inputs of issue 10's new forms (IPv6 ``-p``, ``trusted_sources``, ``ipv6_masquerade``, ``gw_priority``).

Each fails naming its option and leaves the kernel and the store as they were (the host's snapshot:
links, addresses, routes, the whole ruleset, forwarding, the store).
"""

from __future__ import annotations

import pytest
from conftest import RUN_PREFIX, LabHost, _counter

H6 = "2001:db8:1::1"


@pytest.fixture(scope="module")
def dual():
    """A host with an IPv6 address, a dual-stack network (a, b; b publishes 4100:80 on both families)
    and an IPv4-only one (c); one for the module, since a bad input changes nothing (each test checks it)."""
    host = LabHost("%s-%d" % (RUN_PREFIX, next(_counter)))
    try:
        yield _build(host)
    finally:
        host.destroy()


def _build(host: LabHost) -> LabHost:
    host.sh("ip link add uplink type veth peer name uplinkp && ip link set uplinkp up && ip addr add 203.0.113.1/24 dev uplink"
            " && ip -6 addr add %s/64 dev uplink nodad && ip link set uplink up" % H6)
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="2001:db8:30::/64")
    host.ok("cnm_bridge", name="v4only", subnet="172.30.1.0/24")
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])
    host.ok("cnm_endpoint", network="v4only", netns=host.sandbox("c"))
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("b"), ports=["4100:80"])
    return host


PORT_CASES = {  # ports of endpoint a (network web), or c (v4only) when the sandbox is given
    "ipv6_loopback": (["[::1]:4000:80"], "a", "ports[0]"),
    "ipv6_loopback_dict": ([dict(host_ip="::1", host_port=4000, container_port=80)], "a", "ports[0]"),
    "unclosed_bracket": (["[%s:4000:80" % H6], "a", "ports[0]"),
    "not_an_ipv6_address": (["[zz::1]:4000:80"], "a", "ports[0]"),
    "ipv6_address_not_on_this_host": (["[2001:db8:9::9]:4000:80"], "a", "ports[0]"),
    "all_ipv6_addresses_without_container_ipv6": (["[::]:4000:80"], "c", "ports[0]"),
    "ipv6_host_address_without_container_ipv6": (["[%s]:4000:80" % H6], "c", "ports[0]"),
    "ipv6_side_of_a_plain_binding_taken": (["[::]:4100:80"], "a", "ports[0]"),
    "ipv6_host_address_of_a_plain_binding_taken": (["[%s]:4100:80" % H6], "a", "ports[0]"),
}


@pytest.mark.parametrize("ports, sandbox, option", list(PORT_CASES.values()), ids=list(PORT_CASES))
def test_bad_ipv6_port_fails_naming_the_option_and_changes_nothing(dual, ports, sandbox, option):
    network = "web" if sandbox != "c" else "v4only"
    before = dual.snapshot()
    result = dual.module("cnm_port_publish", network=network, netns=dual.sandbox(sandbox), ports=ports)
    assert result.get("failed") is True, result
    assert "option '%s" % option in result["msg"], result["msg"]
    assert dual.snapshot() == before


NETWORK_CASES = {  # options of a new network "t"
    "trusted_source_not_a_cidr": (dict(trusted_sources=["bogus"]), "trusted_sources[0]"),
    "trusted_source_ipv4_prefix_too_long": (dict(trusted_sources=["10.0.0.0/33"]), "trusted_sources[0]"),
    "trusted_source_ipv6_prefix_too_long": (dict(trusted_sources=["2001:db8::/129"]), "trusted_sources[0]"),
    "trusted_source_second_item_bad": (dict(trusted_sources=["203.0.113.0/24", "2001:db8::zz/64"]), "trusted_sources[1]"),
    "ipv6_masquerade_not_a_bool": (dict(ipv6_masquerade="sometimes"), "ipv6_masquerade"),
}


@pytest.mark.parametrize("args, option", list(NETWORK_CASES.values()), ids=list(NETWORK_CASES))
def test_bad_network_option_fails_naming_it_and_changes_nothing(dual, args, option):
    before = dual.snapshot()
    result = dual.module("cnm_bridge", name="t", subnet="172.30.2.0/24", ipv6_subnet="2001:db8:32::/64", **args)
    assert result.get("failed") is True, result
    assert option in result["msg"], result["msg"]
    assert dual.snapshot() == before


def test_gw_priority_not_an_integer_fails_naming_it_and_changes_nothing(dual):
    before = dual.snapshot()
    result = dual.module("cnm_endpoint", network="v4only", netns=dual.sandbox("d"), gw_priority="first")
    assert result.get("failed") is True, result
    assert "gw_priority" in result["msg"], result["msg"]
    assert dual.snapshot() == before
