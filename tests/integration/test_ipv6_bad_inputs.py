# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad inputs of issue 10's new forms that the other test files do not cover (IPv6 ``-p``, ``trusted_sources``).

Each fails naming its option and leaves the kernel and the store as they were (the host's snapshot:
links, addresses, routes, the whole ruleset, forwarding, the store).
"""

from __future__ import annotations

import pytest
from conftest import RUN_PREFIX, LabHost, _counter

H6 = "2001:db8:1::1"


@pytest.fixture(scope="module")
def dual():
    """A host with an IPv6 address and a dual-stack network (a, b; b publishes 4100:80 on both families);
    one for the module, since a bad input changes nothing (each test checks it)."""
    host = LabHost("%s-%d" % (RUN_PREFIX, next(_counter)))
    try:
        yield _build(host)
    finally:
        host.destroy()


def _build(host: LabHost) -> LabHost:
    host.sh(
        "ip link add uplink type veth peer name uplinkp && ip link set uplinkp up && ip addr add 203.0.113.1/24 dev "
        "uplink"
        " && ip -6 addr add %s/64 dev uplink nodad && ip link set uplink up" % H6
    )
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="2001:db8:30::/64")
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("b"), ports=["4100:80"])
    return host


# The other forms (loopback, brackets, addresses not on the host, endpoints without IPv6, trusted_sources,
# gw_priority) are in test_port_bad_inputs.py, test_bad_inputs.py and test_endpoint*.py of their branches;
# these are the ones not covered there: the IPv6 side of a plain binding held by another endpoint.
PORT_CASES = {  # ports asked for endpoint a
    "ipv6_side_of_a_plain_binding_taken": (["[::]:4100:80"], "ports[0]"),
    "ipv6_host_address_of_a_plain_binding_taken": (["[%s]:4100:80" % H6], "ports[0]"),
    "ipv6_side_taken_by_a_range": (["[::]:4099-4101:80-82"], "ports[0]"),
}


@pytest.mark.parametrize("ports, option", list(PORT_CASES.values()), ids=list(PORT_CASES))
def test_bad_ipv6_port_fails_naming_the_option_and_changes_nothing(dual, ports, option):
    before = dual.snapshot()
    result = dual.module("cnm_port_publish", network="web", netns=dual.sandbox("a"), ports=ports)
    assert result.get("failed") is True, result
    assert "option '%s" % option in result["msg"], result["msg"]
    assert dual.snapshot() == before


NETWORK_CASES = {  # options of a new network "t"
    "trusted_source_ipv4_prefix_too_long": (dict(trusted_sources=["10.0.0.0/33"]), "trusted_sources[0]"),
}


@pytest.mark.parametrize("args, option", list(NETWORK_CASES.values()), ids=list(NETWORK_CASES))
def test_bad_network_option_fails_naming_it_and_changes_nothing(dual, args, option):
    before = dual.snapshot()
    result = dual.module("cnm_bridge", name="t", subnet="172.30.2.0/24", ipv6_subnet="2001:db8:32::/64", **args)
    assert result.get("failed") is True, result
    assert option in result["msg"], result["msg"]
    assert dual.snapshot() == before
