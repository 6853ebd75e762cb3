"""The store's records (records.py): each shape read by one from_dict that names the field it refuses, and written
back by one to_dict as the file has always held it."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from ansible_collections.cnm.network.plugins.module_utils.model import (
    BridgeNetwork,
    IpvlanNetwork,
    MacvlanNetwork,
    OverlayNetwork,
    network_from_record,
)
from ansible_collections.cnm.network.plugins.module_utils.records import (
    EndpointRecord,
    PortRecord,
    RecordError,
    check_network,
    copy_state,
    endpoint_key,
    state_from_dict,
    state_to_dict,
)

VETH = {
    "network": "web",
    "sandbox": "netns:a",
    "ifname": "eth0",
    "host_ifname": "ve-1234",
    "ipv4_address": "172.30.0.2",
    "ipv6_address": None,
    "mac_address": "02:42:ac:1e:00:02",
    "static_ipv4": False,
    "static_ipv6": False,
    "static_mac": False,
    "default_route": True,
    "routes": [],
    "sysctls": {},
    "gw_priority": 0,
    "link": "veth",
}
DUAL = dict(
    VETH,
    ipv6_address="fd00:30::2",
    static_ipv4=True,
    static_ipv6=True,
    static_mac=True,
    default_route=False,
    routes=[{"dst": "192.168.50.0/24", "gateway": "172.30.0.7"}, {"dst": "fd00:99::/64", "gateway": None}],
    sysctls={"net.ipv4.conf.IFNAME.rp_filter": "2"},
    gw_priority=5,
)
MACVLAN = dict(VETH, network="lan", host_ifname=None, link="macvlan", parent="eth1", shim_name="mvs-lan")
MACVLAN_NO_SHIM = dict(MACVLAN, shim_name=None)
IPVLAN = dict(VETH, network="ipl", host_ifname=None, link="ipvlan", parent="eth1.50")
PORT = {
    "host_ip": None,
    "host_port": 4000,
    "container_port": 80,
    "protocol": "tcp",
    "network": "web",
    "sandbox": "netns:a",
    "container_ip": "172.30.0.2",
    "container_ipv6": "fd00:30::2",
}


# ---- endpoints ----


@pytest.mark.parametrize(
    "written",
    [VETH, DUAL, MACVLAN, MACVLAN_NO_SHIM, IPVLAN],
    ids=["veth-ipv4", "veth-dual-routes-sysctls", "macvlan", "macvlan-no-shim", "ipvlan"],
)
def test_an_endpoint_record_reads_back_as_written(written):
    record = EndpointRecord.from_dict(json.loads(json.dumps(written)))
    assert record.to_dict() == written
    assert list(record.to_dict()) == list(written)  # in the order the file has always listed them
    assert EndpointRecord.from_dict(record.to_dict()) == record
    assert record.key == endpoint_key(written["network"], written["sandbox"])


def test_an_endpoint_keeps_only_the_fields_of_its_link_kind():
    assert "parent" not in EndpointRecord.from_dict(VETH).to_dict()
    assert EndpointRecord.from_dict(IPVLAN).to_dict()["parent"] == "eth1.50"
    assert "shim_name" not in EndpointRecord.from_dict(IPVLAN).to_dict()
    assert EndpointRecord.from_dict(MACVLAN_NO_SHIM).to_dict()["shim_name"] is None


def test_an_older_endpoint_record_takes_the_defaults_its_readers_always_assumed():
    written = {key: VETH[key] for key in ("network", "sandbox", "ifname", "link", "ipv4_address")}
    record = EndpointRecord.from_dict(written)
    assert (record.default_route, record.gw_priority, record.routes, record.sysctls) == (True, 0, (), {})
    assert (record.static_ipv4, record.static_mac, record.host_ifname, record.ipv6_address) == (
        False,
        False,
        None,
        None,
    )
    assert record.to_dict() == dict(VETH, host_ifname=None, mac_address=None)


def test_an_endpoint_record_is_replaced_never_edited():
    record = EndpointRecord.from_dict(DUAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.ifname = "eth1"  # type: ignore[misc]
    moved = dataclasses.replace(record, ipv4_address="172.30.0.9")
    assert (record.ipv4_address, moved.ipv4_address) == ("172.30.0.2", "172.30.0.9")
    assert moved.addresses == ("172.30.0.9", "fd00:30::2")
    assert isinstance(record.routes, tuple)  # routes are kept as a tuple, written as a list
    assert record.to_dict()["routes"] == DUAL["routes"]


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"ifname": None}, "endpoint.ifname must be a string, found null"),
        ({"network": 7}, "endpoint.network must be a string, found an integer"),
        ({"link": "ipip"}, "endpoint.link is 'ipip', not one of ipvlan, macvlan, veth"),
        ({"host_ifname": 3}, "endpoint.host_ifname must be a string, found an integer"),
        ({"mac_address": ["02"]}, "endpoint.mac_address must be a string, found a list"),
        ({"ipv4_address": "172.30.0.300"}, "endpoint.ipv4_address is '172.30.0.300', not an address"),
        ({"ipv6_address": 6}, "endpoint.ipv6_address must be a string, found an integer"),
        ({"static_ipv4": "yes"}, "endpoint.static_ipv4 must be true or false, found a string"),
        ({"default_route": 1}, "endpoint.default_route must be true or false, found an integer"),
        ({"gw_priority": True}, "endpoint.gw_priority must be an integer, found true or false"),
        ({"routes": {}}, "endpoint.routes must be a list, found an object"),
        ({"routes": ["10.0.0.0/8"]}, "endpoint.routes[0] must be an object, found a string"),
        ({"routes": [{"gateway": "10.0.0.1"}]}, "endpoint.routes[0].dst is missing"),
        ({"routes": [{"dst": "10.0.0.0/8", "gateway": 1}]}, "endpoint.routes[0].gateway must be a string"),
        ({"sysctls": []}, "endpoint.sysctls must be an object, found a list"),
        ({"parent": 1}, "endpoint.parent must be a string, found an integer"),
        ({"shim_name": False}, "endpoint.shim_name must be a string, found true or false"),
    ],
)
def test_each_endpoint_field_is_checked_and_named(change, problem):
    with pytest.raises(RecordError, match="^" + re.escape(problem)):
        EndpointRecord.from_dict(dict(DUAL, **change))


@pytest.mark.parametrize("field", ["network", "sandbox", "ifname", "link"])
def test_a_missing_required_endpoint_field_is_named(field):
    written = {key: value for key, value in VETH.items() if key != field}
    with pytest.raises(RecordError, match=r"^'endpoints'\['k'\]\.%s is missing$" % field):
        EndpointRecord.from_dict(written, "'endpoints'['k']")


def test_an_endpoint_that_is_not_an_object_is_named():
    with pytest.raises(RecordError, match=r"^endpoint must be an object, found a list$"):
        EndpointRecord.from_dict([])


# ---- published ports ----


def test_a_port_record_reads_back_as_written():
    record = PortRecord.from_dict(PORT)
    assert record.to_dict() == PORT and list(record.to_dict()) == list(PORT)
    assert PortRecord.from_dict(record.to_dict()) == record


def test_a_port_written_before_ipv6_is_an_ipv4_only_port():
    written = {key: value for key, value in PORT.items() if key != "container_ipv6"}
    record = PortRecord.from_dict(dict(written, host_ip="127.0.0.1"))
    assert (record.container_ip, record.container_ipv6, record.host_ip) == ("172.30.0.2", None, "127.0.0.1")


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"protocol": None}, "port.protocol must be a string, found null"),
        ({"host_port": "80"}, "port.host_port must be an integer, found a string"),
        ({"container_port": True}, "port.container_port must be an integer, found true or false"),
        ({"network": 1}, "port.network must be a string, found an integer"),
        ({"host_ip": "localhost"}, "port.host_ip is 'localhost', not an address"),
        ({"container_ip": "172.30.0"}, "port.container_ip is '172.30.0', not an address"),
        ({"container_ipv6": 6}, "port.container_ipv6 must be a string, found an integer"),
    ],
)
def test_each_port_field_is_checked_and_named(change, problem):
    with pytest.raises(RecordError, match="^" + re.escape(problem)):
        PortRecord.from_dict(dict(PORT, **change))


@pytest.mark.parametrize("field", ["network", "sandbox", "protocol", "host_port", "container_port"])
def test_a_missing_required_port_field_is_named(field):
    with pytest.raises(RecordError, match=r"^port\.%s is missing$" % field):
        PortRecord.from_dict({key: value for key, value in PORT.items() if key != field})


# ---- networks: the drivers' own records, checked here ----

NETWORK_RECORDS = {
    "bridge": BridgeNetwork.from_params({"name": "web", "subnet": "172.30.0.0/24"}).to_record(),
    "bridge-ipv6": BridgeNetwork.from_params(
        {"name": "web6", "subnet": "172.31.0.0/24", "ipv6_subnet": "fd00:31::/64", "internal": True}
    ).to_record(),
    "overlay": OverlayNetwork.from_overlay_params(
        {
            "name": "ov",
            "subnet": "10.200.0.0/24",
            "vni": 4200,
            "local_ip": "192.0.2.11",
            "peers": [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.0.9"}]}],
            "encrypted": True,
        }
    ).to_record(),
    "macvlan": MacvlanNetwork.from_params(
        {
            "name": "lan",
            "parent": "eth1",
            "subnet": "192.168.1.0/24",
            "ip_range": "192.168.1.0/25",
            "host_access": True,
            "host_access_ip": "192.168.1.250",
        }
    ).to_record(1500, False),
    "ipvlan": IpvlanNetwork.from_params(
        {"name": "iplan", "parent": "eth1.50", "subnet": "10.50.0.0/24", "ipvlan_mode": "l3"}
    ).to_record(1500, True),
}


@pytest.mark.parametrize("name", sorted(NETWORK_RECORDS))
def test_every_drivers_network_record_passes_its_check_and_reads_back(name):
    written = json.loads(json.dumps(NETWORK_RECORDS[name]))  # as the file holds it
    assert check_network(written) is written
    data = {"version": 2, "networks": {name: written}, "endpoints": {}}
    assert state_to_dict(state_from_dict(data)) == data
    network = network_from_record(name, written)
    assert network.driver == written["driver"]


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"driver": "vlan"}, "network.driver is 'vlan', not one of bridge, overlay, macvlan, ipvlan"),
        ({"driver": None}, "network.driver must be a string, found null"),
        ({"bridge_name": None}, "network.bridge_name must be a string, found null"),
        ({"mtu": "1500"}, "network.mtu must be an integer, found a string"),
        ({"subnet": "172.30.0.1/24"}, "network.subnet is '172.30.0.1/24', not an address"),
        ({"gateway": "gw"}, "network.gateway is 'gw', not an address"),
    ],
)
def test_each_checked_network_field_is_named(change, problem):
    with pytest.raises(RecordError, match="^" + re.escape(problem)):
        check_network(dict(NETWORK_RECORDS["bridge"], **change))


# ---- the whole store ----


def test_a_whole_store_reads_back_as_written():
    data = {
        "version": 2,
        "networks": {name: json.loads(json.dumps(record)) for name, record in NETWORK_RECORDS.items()},
        "endpoints": {endpoint_key(r["network"], r["sandbox"]): r for r in (DUAL, MACVLAN, IPVLAN)},
        "ports": {"tcp/*:4000": PORT},
        "sysctls": {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": None},
    }
    state = state_from_dict(data)
    assert isinstance(state["endpoints"]["web|netns:a"], EndpointRecord)
    assert isinstance(state["ports"]["tcp/*:4000"], PortRecord)
    assert state_to_dict(state) == data
    assert json.dumps(state_to_dict(state), sort_keys=True) == json.dumps(data, sort_keys=True)


def test_an_endpoint_filed_under_another_key_is_named():
    data = {"version": 2, "networks": {}, "endpoints": {"db|netns:a": VETH}}
    with pytest.raises(RecordError, match=r"^'endpoints'\['db\|netns:a'\] is filed under another key .*'web\|netns:a'"):
        state_from_dict(data)


def test_a_copy_to_plan_on_shares_the_frozen_records_and_copies_the_rest():
    state = state_from_dict(
        {
            "version": 2,
            "networks": {"web": dict(NETWORK_RECORDS["bridge"])},
            "endpoints": {"web|netns:a": VETH},
            "sysctls": {"net.ipv4.ip_forward": "0"},
        }
    )
    copied = copy_state(state)
    assert copied == state
    assert copied["endpoints"]["web|netns:a"] is state["endpoints"]["web|netns:a"]
    copied["networks"]["web"]["mtu"] = 9000
    del copied["endpoints"]["web|netns:a"]
    copied["sysctls"]["net.ipv4.ip_forward"] = "1"
    assert state["networks"]["web"]["mtu"] != 9000 and "web|netns:a" in state["endpoints"]
    assert state["sysctls"] == {"net.ipv4.ip_forward": "0"}
