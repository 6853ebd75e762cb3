# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 11, items 5 and 6: names are data, limits are refused up front.

Each bad case fails naming its option and leaves the host's kernel state and store as they were
(the snapshot of test_bad_inputs; the cases needing only ``web`` share one host, as there); the good
cases (an IPv4-only network below 1280 bytes of MTU, a host-route overlap that is asked for) work end
to end with real traffic.
"""

from __future__ import annotations

import pytest
from test_bad_inputs import DB, WEB, Case, assert_unchanged, attached, bridge, case_host, endpoint, web_and


def foreign_bridge_took_db(host):
    """Network db's bridge deleted by hand and a foreign bridge (no cnm alias) made under its name."""
    host.ok("cnm_bridge", **DB)
    host.sh("ip link del br-db && ip link add br-db type bridge")


def same_sandbox_by_path(host):
    return dict(network="web", netns_path="/run/netns/" + host.sandbox("a"))


def lan_route(host):
    """The host's LAN 10.77.0.0/16 (a connected route, as on a real host's uplink)."""
    host.ok("cnm_bridge", **WEB)
    host.sh(
        "ip link add uplink type veth peer name uplinkp && ip link set uplinkp up && ip addr add 10.77.0.5/16 dev "
        "uplink && ip link set uplink up"
    )


DB_AT = dict(name="db", subnet="172.31.0.0/24")
CASES = {
    # ---- names as data (nft/iptables wildcards, quotes, newlines) ----
    "bridge_name_nft_wildcard": Case("cnm_bridge", bridge(bridge_name="br*", **DB_AT), "bridge_name"),
    "bridge_name_iptables_wildcard": Case("cnm_bridge", bridge(bridge_name="br+", **DB_AT), "bridge_name"),
    "bridge_name_with_a_quote": Case("cnm_bridge", bridge(bridge_name='br"x', **DB_AT), "bridge_name"),
    "bridge_name_with_a_backslash": Case("cnm_bridge", bridge(bridge_name="br\\x", **DB_AT), "bridge_name"),
    "bridge_name_with_a_newline": Case("cnm_bridge", bridge(bridge_name="br-x\n", **DB_AT), "bridge_name"),
    "bridge_name_dot_dot": Case("cnm_bridge", bridge(bridge_name="..", **DB_AT), "bridge_name"),
    "network_name_with_a_newline": Case("cnm_bridge", bridge(name="db\n", subnet="172.31.0.0/24"), "name"),
    "ifname_wildcard": Case("cnm_endpoint", endpoint(ifname="e*"), "ifname"),
    "netns_with_a_newline": Case(
        "cnm_endpoint", lambda host: dict(network="web", netns=host.sandbox("a") + "\n"), "netns"
    ),
    "netns_name_too_long_for_the_alias": Case(
        "cnm_endpoint", lambda host: dict(network="web", netns=host.sandbox("a") + "n" * 235), "netns"
    ),
    "netns_name_over_name_max": Case("cnm_endpoint", lambda host: dict(network="web", netns="n" * 256), "netns"),
    "macvlan_parent_wildcard": Case(
        "cnm_macvlan", bridge(name="lan", parent="eth*", subnet="192.168.50.0/24"), "parent"
    ),
    "foreign_bridge_under_a_cnm_name": Case(
        "cnm_endpoint", endpoint(network="db"), "network", setup=web_and(foreign_bridge_took_db)
    ),
    # ---- subnets no network may use ----
    "subnet_loopback": Case("cnm_bridge", bridge(name="db", subnet="127.1.0.0/24"), "subnet"),
    "subnet_multicast": Case("cnm_bridge", bridge(name="db", subnet="239.1.0.0/24"), "subnet"),
    "subnet_link_local": Case("cnm_bridge", bridge(name="db", subnet="169.254.7.0/24"), "subnet"),
    "subnet_this_network": Case("cnm_bridge", bridge(name="db", subnet="0.0.0.0/24"), "subnet"),
    "ipv6_subnet_link_local": Case("cnm_bridge", bridge(name="db", ipv6_subnet="fe80:0:0:1::/64"), "ipv6_subnet"),
    "ipv6_subnet_multicast": Case("cnm_bridge", bridge(name="db", ipv6_subnet="ff05::/64"), "ipv6_subnet"),
    "ipv6_subnet_unspecified": Case("cnm_bridge", bridge(name="db", ipv6_subnet="::/64"), "ipv6_subnet"),
    "macvlan_subnet_loopback": Case("cnm_macvlan", bridge(name="lan", parent="lo", subnet="127.0.0.0/24"), "subnet"),
    "subnet_over_a_host_route": Case("cnm_bridge", bridge(name="db", subnet="10.77.1.0/24"), "subnet", setup=lan_route),
    # ---- endpoints ----
    "mac_of_another_endpoint": Case(
        "cnm_endpoint", endpoint("b", mac_address="02:42:ac:1e:00:02"), "mac_address", setup=web_and(attached("a"))
    ),
    "static_mac_twice": Case(
        "cnm_endpoint",
        endpoint("b", mac_address="02:00:00:00:00:63"),
        "mac_address",
        setup=web_and(attached("a", mac_address="02:00:00:00:00:63")),
    ),
    "one_sandbox_as_netns_and_netns_path": Case(
        "cnm_endpoint", same_sandbox_by_path, "netns_path", setup=web_and(attached("a"))
    ),
}


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in CASES.items()])
def test_bad_input_fails_naming_the_option_and_changes_nothing(request, case):
    host = case_host(request, case)
    args = case.args(host)
    before = host.snapshot()

    checked = host.module(case.module, check=True, **args)
    result = host.module(case.module, **args)

    assert result.get("failed") is True, result
    assert "option '%s'" % case.option in result["msg"], result["msg"]
    assert checked.get("failed") is True and checked["msg"] == result["msg"]
    assert_unchanged(host, before)


def test_foreign_bridge_is_named_in_the_error(host):
    foreign_bridge_took_db(host)
    result = host.module("cnm_endpoint", network="db", netns=host.sandbox("a"))
    assert (
        result.get("failed") is True and "device br-db" in result["msg"] and "without a cnm alias" in result["msg"]
    ), result


def test_host_route_overlap_is_accepted_when_asked_for(host):
    lan_route(host)
    refused = host.module("cnm_bridge", name="db", subnet="10.77.1.0/24")
    assert refused.get("failed") and "the host's route to 10.77.0.0/16 dev uplink" in refused["msg"], refused
    assert "allow_host_route_overlap" in refused["msg"]

    first = host.ok("cnm_bridge", name="db", subnet="10.77.1.0/24", allow_host_route_overlap=True)
    again = host.ok("cnm_bridge", name="db", subnet="10.77.1.0/24", allow_host_route_overlap=True)

    assert first["changed"] is True and again["changed"] is False
    host.ok("cnm_endpoint", network="db", netns=host.sandbox("a"))
    assert host.in_sandbox("a", "ping -c1 -W2 10.77.1.1").returncode == 0


@pytest.mark.parametrize("mtu", [576, 1279])
def test_ipv4_only_network_below_1280_works_end_to_end(host, mtu):
    args = dict(name="small", subnet="172.29.0.0/24", mtu=mtu)
    checked = host.module("cnm_bridge", check=True, **args)
    assert checked.get("failed") is not True and checked["changed"] is True, checked
    host.ok("cnm_bridge", **args)
    host.ok("cnm_endpoint", network="small", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])

    payload = mtu - 28  # a full-size unfragmented IPv4 echo: 20 bytes of IP, 8 of ICMP
    assert host.in_sandbox("a", "ping -c1 -W2 -M do -s %d 172.29.0.3" % payload).returncode == 0
    assert host.in_sandbox("a", "ping -c1 -W2 -M do -s %d 172.29.0.3" % (payload + 1), check=False).returncode != 0
    assert " mtu %d " % mtu in host.in_sandbox("a", "ip -o link show eth0").stdout
    assert host.module("cnm_bridge", **args)["changed"] is False
    again = host.module(
        "cnm_endpoint", network="small", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))]
    )
    assert again.get("failed") is not True and again["changed"] is False, again


def test_a_host_route_added_later_never_fails_a_rerun(host):
    """Docker checks the host's routes when a network is made, never afterwards: a route the host gets later (a VPN)
    leaves the existing network alone, while a new network over it is still refused."""
    host.ok("cnm_bridge", name="db", subnet="10.77.1.0/24")
    lan_route(host)
    assert host.ok("cnm_bridge", name="db", subnet="10.77.1.0/24")["changed"] is False
    refused = host.module("cnm_bridge", name="app", subnet="10.77.2.0/24")
    assert refused.get("failed") and "the host's route to 10.77.0.0/16" in refused["msg"], refused
