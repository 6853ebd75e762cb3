"""Macvlan networks normalised at the edge: MacvlanNetwork, IFACE.VID parents, host access."""

from __future__ import annotations

import ipaddress
import re

import pytest

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.model import MacvlanNetwork, default_shim_name, vlan_parent

BASE = {"name": "lan", "parent": "eth1", "subnet": "192.168.1.0/24"}


def macvlan(**params) -> MacvlanNetwork:
    return MacvlanNetwork.from_params(dict(BASE, **params))


def refused(option: str):
    return pytest.raises(CnmError, match="^option '%s': " % re.escape(option))


def test_defaults_follow_docker():
    network = macvlan()
    assert (network.mode, network.gateway, network.ip_range) == (
        "bridge",
        ipaddress.ip_address("192.168.1.1"),
        ipaddress.ip_network("192.168.1.0/24"),
    )
    assert network.mtu is None and not network.host_access and network.shim_name is None and network.vlan is None


def test_record_round_trip_keeps_everything():
    network = macvlan(
        ip_range="192.168.1.192/27",
        host_access=True,
        host_access_ip="192.168.1.10",
        ipv6_subnet="fd00:1::/64",
        mtu=1400,
    )
    record = network.to_record(1400, False)
    assert record.driver == "macvlan" and record.mtu_set is True and record.shim_name == default_shim_name("lan")
    assert MacvlanNetwork.from_record("lan", record) == network


@pytest.mark.parametrize(
    "parent, expected", [("eth1.10", ("eth1", 10)), ("bond0.4094", ("bond0", 4094)), ("eth1", None), ("eth1.x", None)]
)
def test_vlan_parent_form(parent, expected):
    assert vlan_parent(parent) == expected


def test_shim_name_fits_an_interface_name():
    assert len(default_shim_name("a-very-long-network-name-indeed")) <= 15
    assert default_shim_name("a") != default_shim_name("b")


@pytest.mark.parametrize(
    "params, option",
    [
        ({"parent": None}, "parent"),
        ({"parent": "eth1.0"}, "parent"),
        ({"parent": "eth1.4095"}, "parent"),
        ({"parent": "a-name-longer-than-15"}, "parent"),
        ({"mode": "source"}, "mode"),
        ({"subnet": None}, "subnet"),
        ({"subnet": "192.168.1.0/31"}, "subnet"),
        ({"gateway": "10.0.0.1"}, "gateway"),
        ({"ip_range": "10.0.0.0/28"}, "ip_range"),
        ({"ipv6_gateway": "fd00::1"}, "ipv6_gateway"),
        ({"mtu": 20}, "mtu"),
        ({"host_access": True}, "host_access_ip"),
        (
            {"host_access": True, "host_access_ip": "192.168.1.20"},
            "host_access_ip",
        ),  # inside ip_range (the whole subnet)
        (
            {"host_access": True, "host_access_ip": "192.168.1.1", "ip_range": "192.168.1.128/25"},
            "host_access_ip",
        ),  # the gateway
        (
            {"host_access": True, "host_access_ip": "10.1.1.1", "ip_range": "192.168.1.128/25"},
            "host_access_ip",
        ),  # outside the subnet
        (
            {"host_access": True, "host_access_ip": "192.168.1.20", "ip_range": "192.168.1.128/25", "mode": "private"},
            "host_access",
        ),
        ({"host_access_ip": "192.168.1.20"}, "host_access_ip"),
        ({"name": "host"}, "name"),
    ],
)
def test_bad_inputs_name_their_option(params, option):
    with refused(option):
        macvlan(**params)
