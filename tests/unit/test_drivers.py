"""The driver table: every network class is found by its record's driver, and what depends on the driver asks it."""

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.cnm.network.plugins.module_utils import attach, drivers, records
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.model import (
    LINK_KINDS,
    NETWORKS,
    BridgeNetwork,
    IpvlanNetwork,
    MacvlanNetwork,
    OverlayNetwork,
    check_driver,
    network_devices,
    network_from_record,
)

BRIDGE = BridgeNetwork.from_params({"name": "web", "subnet": "172.30.0.0/24"})
OVERLAY = OverlayNetwork.from_overlay_params(
    {
        "name": "ov",
        "subnet": "10.200.0.0/24",
        "vni": 4200,
        "local_ip": "192.0.2.11",
        "peers": [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.0.9"}]}],
        "encrypted": True,
    }
)
MACVLAN = MacvlanNetwork.from_params({"name": "lan", "parent": "eth1", "subnet": "192.168.1.0/24"})
IPVLAN = IpvlanNetwork.from_params(
    {"name": "iplan", "parent": "eth1.50", "subnet": "10.50.0.0/24", "ipvlan_mode": "l3"}
)


def test_every_driver_has_its_class_its_link_and_its_restore_planner():
    assert set(NETWORKS) == {"bridge", "overlay", "macvlan", "ipvlan"}
    assert set(drivers.RESTORE) == set(NETWORKS)
    assert set(attach.LINKS) == set(LINK_KINDS) == {"veth", "macvlan", "ipvlan"}
    assert records.DRIVERS == tuple(NETWORKS)
    assert set(records.LINK_FIELDS) == set(LINK_KINDS)  # the fields each link kind keeps for its detach


@pytest.mark.parametrize(
    "network, record",
    [
        (BRIDGE, BRIDGE.to_record()),
        (OVERLAY, OVERLAY.to_record()),
        (MACVLAN, MACVLAN.to_record(1500, False)),
        (IPVLAN, IPVLAN.to_record(1500, True)),
    ],
    ids=["bridge", "overlay", "macvlan", "ipvlan"],
)
def test_a_record_reads_back_as_its_drivers_network(network, record):
    assert record.driver == network.driver
    again = network_from_record(network.name, record)
    assert type(again) is type(network)
    if isinstance(network, (MacvlanNetwork, IpvlanNetwork)):  # the record holds the MTU in force, not the one asked
        assert again == type(network).from_params(dict(record.to_dict(), name=network.name))
        assert again.to_record(record.mtu, record.vlan_created) == dataclasses.replace(record, mtu_set=True)
    else:
        assert again == network
        assert again.to_record() == record


def test_an_overlay_record_keeps_its_encryption_and_its_peers():
    record = OVERLAY.to_record()
    assert record.encrypted is True
    assert record.to_dict()["peers"] == [
        {"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.0.9", "mac": "02:42:0a:c8:00:09"}]}
    ]
    clear = OverlayNetwork.from_record("ov", dataclasses.replace(record, encrypted=False)).to_record()
    assert "encrypted" not in clear.to_dict()


def test_endpoints_join_by_the_link_of_their_networks_driver():
    assert (BRIDGE.link, OVERLAY.link, MACVLAN.link, IPVLAN.link) == ("veth", "veth", "macvlan", "ipvlan")
    assert attach.LINKS[MACVLAN.link] is attach.MacvlanLink and attach.LINKS[IPVLAN.link] is attach.IpvlanLink


def test_the_devices_of_a_record_are_its_drivers():
    assert network_devices(OVERLAY.to_record()) == [("bridge", "br-ov", "bridge"), ("vxlan", "vx-ov", "vxlan")]
    with_shim = MacvlanNetwork.from_params(
        {
            "name": "lan",
            "parent": "eth1",
            "subnet": "192.168.1.0/24",
            "ip_range": "192.168.1.128/25",
            "host_access": True,
            "host_access_ip": "192.168.1.2",
        }
    )
    assert network_devices(with_shim.to_record(1500, False)) == [
        ("shim", with_shim.shim_name, "macvlan"),
        ("parent", "eth1", None),
    ]
    assert network_devices(IPVLAN.to_record(1500, True)) == [("parent", "eth1.50", None)]
    assert network_devices(BRIDGE.to_record()) == [("bridge", "br-web", "bridge")]


def test_only_networks_that_allow_it_take_published_ports():
    assert BRIDGE.no_ports is None and OVERLAY.no_ports is None
    assert "Docker ignores -p on macvlan" in MACVLAN.no_ports
    assert "Docker ignores -p on ipvlan" in IPVLAN.no_ports


def test_a_passthru_macvlan_alone_shares_its_mac():
    assert BRIDGE.unique_macs and MACVLAN.unique_macs
    passthru = MacvlanNetwork.from_params(
        {"name": "pt", "parent": "eth1", "subnet": "192.168.1.0/24", "mode": "passthru"}
    )
    assert not passthru.unique_macs
    assert not IPVLAN.unique_macs  # every ipvlan link has its parent's MAC


def test_a_name_belongs_to_one_driver():
    check_driver("web", None, "macvlan")
    check_driver("web", BRIDGE.to_record(), "bridge")
    with pytest.raises(CnmError, match="^option 'name': .*is a network of driver bridge, not macvlan; remove it first"):
        check_driver("web", BRIDGE.to_record(), "macvlan")
    with pytest.raises(CnmError, match="is a network of driver macvlan, not overlay$"):
        check_driver("lan", MACVLAN.to_record(1500, False), "overlay", removing=True)


def test_ipvlan_modes_and_flags_follow_docker():
    default = IpvlanNetwork.from_params({"name": "iplan", "parent": "eth1", "subnet": "192.168.1.0/24"})
    assert (default.mode, default.flag, default.link_mode, default.default_on_link) == (
        "l2",
        "bridge",
        "l2 bridge",
        False,
    )
    assert str(default.gateway) == "192.168.1.1"
    assert IPVLAN.default_on_link and IPVLAN.vlan == ("eth1", 50)
    assert IPVLAN.to_record(1500, True).default_on_link is True
    for option, value in (("ipvlan_mode", "l4"), ("ipvlan_flag", "open")):
        with pytest.raises(CnmError, match="^option '%s': %s is not one of" % (option, value)):
            IpvlanNetwork.from_params({"name": "iplan", "parent": "eth1", "subnet": "192.168.1.0/24", option: value})
    with pytest.raises(CnmError, match="^option 'parent': "):
        IpvlanNetwork.from_params({"name": "iplan", "subnet": "192.168.1.0/24"})
