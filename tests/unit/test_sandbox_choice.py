"""The sandbox's gateway choice (Docker's Endpoint.Less + getGatewayEndpoint) and its sysctls, as pure logic."""

from __future__ import annotations

import pytest

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, IpvlanRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import (
    Candidate,
    choose_gateways,
    gateway_candidates,
    parse_gw_priority,
    same_value,
    sandbox_sysctls,
)

V4 = {4: "172.30.0.1"}
DUAL = {4: "172.31.0.1", 6: "fd00:31::1"}
V6 = {6: "fd00:32::1"}


def names(chosen):
    return {version: (c.network if c else None) for version, c in chosen.items()}


def test_name_order_breaks_a_tie():
    assert names(
        choose_gateways([Candidate("eth0", "web", gateways=V4), Candidate("eth1", "db", gateways=dict(V4))])
    ) == {4: "db", 6: None}


def test_highest_priority_wins_over_the_name():
    chosen = choose_gateways([Candidate("eth0", "web", 1, gateways=V4), Candidate("eth1", "db", gateways=V4)])
    assert names(chosen) == {4: "web", 6: None}


def test_negative_priority_still_holds_it_when_alone():
    assert names(choose_gateways([Candidate("eth0", "web", -5, gateways=V4)])) == {4: "web", 6: None}


def test_dual_stack_before_single_stack_at_equal_priority():
    chosen = choose_gateways([Candidate("eth0", "alpha", gateways=V4), Candidate("eth1", "beta", gateways=DUAL)])
    assert names(chosen) == {4: "beta", 6: "beta"}


def test_versions_are_chosen_separately():
    chosen = choose_gateways([Candidate("eth0", "alpha", 3, gateways=V4), Candidate("eth1", "beta", gateways=DUAL)])
    assert names(chosen) == {4: "alpha", 6: "beta"}
    chosen = choose_gateways([Candidate("eth0", "a4", gateways=V4), Candidate("eth1", "z6", gateways=V6)])
    assert names(chosen) == {4: "a4", 6: "z6"}


def test_without_gateways_nobody_holds_it():
    assert names(choose_gateways([Candidate("eth0", "internal", 9, internal=True)])) == {4: None, 6: None}
    assert names(choose_gateways([])) == {4: None, 6: None}


def test_internal_sorts_after_non_internal():
    chosen = choose_gateways([Candidate("eth0", "a", internal=True, gateways=V4), Candidate("eth1", "b", gateways=V4)])
    assert names(chosen) == {4: "b", 6: None}


def test_detaching_the_holder_moves_it_to_the_next():
    web, db, cache = (
        Candidate("eth0", "web", 10, gateways=V4),
        Candidate("eth1", "db", gateways=V4),
        Candidate("eth2", "cache", gateways=V4),
    )
    assert choose_gateways([web, db, cache])[4] is web
    assert choose_gateways([db, cache])[4] is cache


@pytest.mark.parametrize(
    "value, number",
    [(None, 0), (0, 0), (7, 7), (-3, -3), ("12", 12), (" -1 ", -1), (2**63 - 1, 2**63 - 1), (-(2**63), -(2**63))],
)
def test_gw_priority_accepts_docker_ints(value, number):
    assert parse_gw_priority("gw_priority", value) == number


@pytest.mark.parametrize(
    "value, words",
    [
        (True, "not an integer"),
        ("high", "not an integer"),
        ("1.5", "not an integer"),
        (1.5, "not an integer"),
        (2**63, "out of range"),
        (-(2**63) - 1, "out of range"),
    ],
)
def test_gw_priority_refuses_naming_the_option(value, words):
    with pytest.raises(CnmError) as raised:
        parse_gw_priority("endpoints[2].gw_priority", value)
    assert "option 'endpoints[2].gw_priority'" in str(raised.value) and words in str(raised.value)


def test_sysctls_without_ipv6_turn_it_off_all_first():
    assert sandbox_sysctls(False, ()) == [
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv4.ping_group_range", "0 2147483647"),
        ("net.ipv6.conf.all.disable_ipv6", "1"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
        ("net.ipv6.conf.lo.disable_ipv6", "1"),
    ]


def test_sysctls_with_ipv6_only_turn_lo_on():
    assert sandbox_sysctls(True, ())[2:] == [("net.ipv6.conf.lo.disable_ipv6", "0")]


def test_sysctls_overridden_and_kernel_without_ipv6():
    assert sandbox_sysctls(False, {"net.ipv4.ping_group_range", "net.ipv6.conf.all.disable_ipv6"}, True) == [
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
        ("net.ipv6.conf.lo.disable_ipv6", "1"),
    ]
    assert [name for name, _value in sandbox_sysctls(False, (), kernel_ipv6=False)] == [
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
    ]


def test_values_compare_by_words():
    assert same_value("0\t2147483647", "0 2147483647") and not same_value("1\t0", "0 2147483647")
    assert same_value(None, None) and not same_value(None, "0")


def test_an_ipvlan_l3_endpoint_holds_its_default_routes_through_its_interface():
    """Docker's ipvlan l3: ``default dev eth0`` for each family the endpoint has, with no gateway."""
    networks = {
        "routed": IpvlanRecord(parent="eth1", gateway="10.50.0.1", ipv6_gateway="fd00:50::1", default_on_link=True),
        "lan": IpvlanRecord(parent="eth2", gateway="192.168.1.1", default_on_link=False),
    }
    records = [
        EndpointRecord("routed", "netns:s", "eth0", "ipvlan", ipv4_address="10.50.0.2", ipv6_address="fd00:50::2"),
        EndpointRecord("lan", "netns:s", "eth1", "ipvlan", ipv4_address="192.168.1.2", gw_priority=5),
    ]
    candidates, explicit = gateway_candidates(records, networks)
    assert explicit == set()
    assert [(c.name, c.gateways) for c in candidates] == [("eth0", {4: None, 6: None}), ("eth1", {4: "192.168.1.1"})]
    chosen = choose_gateways(candidates)
    assert (chosen[4].name, chosen[6].name) == ("eth1", "eth0")
