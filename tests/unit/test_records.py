"""The store's records (records.py): each shape read by one from_dict that names the field it refuses, and written
back by one to_dict as the file has always held it."""

from __future__ import annotations

import dataclasses
import json
import os
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
    BridgeRecord,
    EndpointRecord,
    IpvlanRecord,
    MacvlanRecord,
    NetworkRecord,
    OverlayRecord,
    ParentRecord,
    PortRecord,
    RecordError,
    copy_state,
    endpoint_key,
    state_from_dict,
    state_to_dict,
)
from ansible_collections.cnm.network.plugins.module_utils.store import Store

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


# ---- networks: one record class per driver, read by NetworkRecord.from_dict ----

# Each driver's records as the drivers wrote them before they were typed (model.py's to_record dicts, keys in their
# order): the file format those records keep.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "network_records.json")) as _golden:
    WRITTEN = json.load(_golden)
NETWORK_RECORDS = {
    "bridge": BridgeNetwork.from_params({"name": "web", "subnet": "172.30.0.0/24"}).to_record(),
    "bridge-ipv6": BridgeNetwork.from_params(
        {"name": "web6", "subnet": "172.31.0.0/24", "ipv6_subnet": "fd00:31::/64", "internal": True}
    ).to_record(),
    "bridge-full": BridgeNetwork.from_params(
        {
            "name": "pub",
            "bridge_name": "br-pub",
            "ipv6_subnet": "fd00:32::/64",
            "mtu": 9000,
            "masquerade": False,
            "icc": False,
            "host_binding_ip": "192.0.2.5",
            "trusted_sources": ["198.51.100.0/24", "2001:db8::/48"],
            "ipv6_masquerade": True,
        }
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
    "overlay-clear": OverlayNetwork.from_overlay_params(
        {
            "name": "ov2",
            "subnet": "10.201.0.0/24",
            "vni": 4201,
            "local_ip": "192.0.2.11",
            "port": 4790,
            "restrict_peers": False,
            "peers": ["192.0.2.13"],
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
    "macvlan-private": MacvlanNetwork.from_params(
        {
            "name": "lan2",
            "parent": "eth2",
            "subnet": "192.168.2.0/24",
            "mode": "private",
            "mtu": 1400,
            "ipv6_subnet": "fd00:2::/64",
        }
    ).to_record(1400, False),
    "ipvlan": IpvlanNetwork.from_params(
        {"name": "iplan", "parent": "eth1.50", "subnet": "10.50.0.0/24", "ipvlan_mode": "l3"}
    ).to_record(1500, True),
}
RECORD_CLASSES = {
    "bridge": BridgeRecord,
    "overlay": OverlayRecord,
    "macvlan": MacvlanRecord,
    "ipvlan": IpvlanRecord,
}


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_every_drivers_network_record_reads_back_as_written(name):
    written = WRITTEN[name]
    record = NetworkRecord.from_dict(written)
    assert isinstance(record, RECORD_CLASSES[written["driver"]]) and record.driver == written["driver"]
    assert record.to_dict() == written
    assert list(record.to_dict()) == list(written)  # the keys in the order they always had
    assert json.dumps(record.to_dict()) == json.dumps(written)
    assert NETWORK_RECORDS[name] == record  # what the driver writes today
    data = {"version": 2, "networks": {name: written}, "endpoints": {}}
    assert state_to_dict(state_from_dict(data)) == data
    network = network_from_record(name, record)
    assert network.driver == written["driver"]


def test_a_store_file_of_every_driver_loads_and_saves_byte_for_byte(tmp_path):
    store = Store("cookie-1", root=str(tmp_path))
    os.makedirs(store.directory)
    with open(store.path, "w") as handle:
        handle.write(json.dumps({"version": 2, "networks": WRITTEN, "endpoints": {}}, sort_keys=True))
    with open(store.path, "rb") as handle:
        before = handle.read()
    store.load()
    assert all(isinstance(record, NetworkRecord) for record in store.networks.values())
    os.unlink(store.path)
    store.save()
    with open(store.path, "rb") as handle:
        assert handle.read() == before


def test_a_record_of_another_driver_is_refused_by_a_drivers_class():
    with pytest.raises(RecordError, match=r"^network.driver is 'macvlan', not one of bridge, overlay$"):
        BridgeRecord.from_dict(WRITTEN["macvlan"])
    ipvlan = ParentRecord.from_dict(WRITTEN["ipvlan"])
    assert isinstance(ipvlan, IpvlanRecord) and ipvlan.driver == "ipvlan"


def test_fields_an_older_record_lacks_take_the_drivers_defaults():
    bridge = NetworkRecord.from_dict({"driver": "bridge", "bridge_name": "br-web", "subnet": "172.30.0.0/24"})
    assert (bridge.masquerade, bridge.internal, bridge.icc, bridge.trusted_sources) == (True, False, True, ())
    assert bridge.ipv6_masquerade is None and bridge.mtu is None
    macvlan = NetworkRecord.from_dict({"driver": "macvlan", "parent": "eth1"})
    assert (macvlan.mode, macvlan.mtu_set, macvlan.vlan_created, macvlan.shim_name) == ("bridge", True, False, None)


def test_records_are_frozen_and_replaced_not_edited():
    record = NetworkRecord.from_dict(WRITTEN["overlay-clear"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.encrypted = True
    encrypted = dataclasses.replace(record, encrypted=True)
    assert encrypted.to_dict() == dict(WRITTEN["overlay-clear"], encrypted=True)
    assert "encrypted" not in record.to_dict()  # only an encrypted overlay says so


_WRONG = [
    # (record, change, the error): the fields every driver has, then each driver's own
    ("bridge", {"driver": "vlan"}, "network.driver is 'vlan', not one of bridge, overlay, macvlan, ipvlan"),
    ("bridge", {"driver": None}, "network.driver must be a string, found null"),
    ("bridge", {"bridge_name": None}, "network.bridge_name must be a string, found null"),
    ("bridge", {"mtu": "1500"}, "network.mtu must be an integer, found a string"),
    ("bridge", {"mtu": True}, "network.mtu must be an integer, found true or false"),
    ("bridge", {"subnet": "172.30.0.1/24"}, "network.subnet is '172.30.0.1/24', not an address"),
    ("bridge", {"gateway": "gw"}, "network.gateway is 'gw', not an address"),
    ("bridge", {"ip_range": 7}, "network.ip_range must be a string, found an integer"),
    ("bridge", {"ipv6_subnet": "fd00::1/64"}, "network.ipv6_subnet is 'fd00::1/64', not an address"),
    ("bridge", {"ipv6_gateway": "x"}, "network.ipv6_gateway is 'x', not an address"),
    ("bridge", {"masquerade": None}, "network.masquerade must be true or false, found null"),
    ("bridge", {"internal": "no"}, "network.internal must be true or false, found a string"),
    ("bridge", {"icc": 1}, "network.icc must be true or false, found an integer"),
    ("bridge", {"host_binding_ip": "localhost"}, "network.host_binding_ip is 'localhost', not an address"),
    ("bridge", {"trusted_sources": "10.0.0.0/8"}, "network.trusted_sources must be a list, found a string"),
    ("bridge", {"trusted_sources": [8]}, "network.trusted_sources[0] must be a string, found an integer"),
    ("bridge", {"ipv6_masquerade": "yes"}, "network.ipv6_masquerade must be true or false, found a string"),
    ("overlay", {"vni": "4200"}, "network.vni must be an integer, found a string"),
    ("overlay", {"vni": None}, "network.vni must be an integer, found null"),
    ("overlay", {"local_ip": None}, "network.local_ip must be a string, found null"),
    ("overlay", {"local_ip": "192.0.2"}, "network.local_ip is '192.0.2', not an address"),
    ("overlay", {"port": "4789"}, "network.port must be an integer, found a string"),
    ("overlay", {"vxlan_name": 5}, "network.vxlan_name must be a string, found an integer"),
    ("overlay", {"restrict_peers": None}, "network.restrict_peers must be true or false, found null"),
    ("overlay", {"encrypted": "yes"}, "network.encrypted must be true or false, found a string"),
    ("overlay", {"peers": {}}, "network.peers must be a list, found an object"),
    ("overlay", {"peers": ["192.0.2.12"]}, "network.peers[0] must be an object, found a string"),
    ("overlay", {"peers": [{"endpoints": []}]}, "network.peers[0].vtep is missing"),
    ("overlay", {"peers": [{"vtep": "a"}]}, "network.peers[0].vtep is 'a', not an address"),
    ("overlay", {"peers": [{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.0.0.1"}]}]}, "peers[0].endpoints[0].mac"),
    ("macvlan", {"parent": None}, "network.parent must be a string, found null"),
    ("macvlan", {"mtu_set": None}, "network.mtu_set must be true or false, found null"),
    ("macvlan", {"vlan_created": "no"}, "network.vlan_created must be true or false, found a string"),
    ("macvlan", {"mode": 1}, "network.mode must be a string, found an integer"),
    ("macvlan", {"host_access": None}, "network.host_access must be true or false, found null"),
    ("macvlan", {"host_access_ip": "lan"}, "network.host_access_ip is 'lan', not an address"),
    ("macvlan", {"shim_name": []}, "network.shim_name must be a string, found a list"),
    ("ipvlan", {"ipvlan_mode": None}, "network.ipvlan_mode must be a string, found null"),
    ("ipvlan", {"ipvlan_flag": 2}, "network.ipvlan_flag must be a string, found an integer"),
    ("ipvlan", {"default_on_link": "yes"}, "network.default_on_link must be true or false, found a string"),
]


@pytest.mark.parametrize("name, change, problem", _WRONG, ids=["%s-%s" % (case[0], *case[1]) for case in _WRONG])
def test_each_network_field_is_checked_and_named(name, change, problem):
    with pytest.raises(RecordError, match=re.escape(problem)):
        NetworkRecord.from_dict(dict(WRITTEN[name], **change))


@pytest.mark.parametrize("field", ["driver", "bridge_name", "vni", "local_ip", "vxlan_name"])
def test_a_missing_required_overlay_field_is_named(field):
    with pytest.raises(RecordError, match=r"^network\.%s is missing$" % field):
        NetworkRecord.from_dict({key: value for key, value in WRITTEN["overlay"].items() if key != field})


# ---- the whole store ----


def test_a_whole_store_reads_back_as_written():
    data = {
        "version": 2,
        "networks": WRITTEN,
        "endpoints": {endpoint_key(r["network"], r["sandbox"]): r for r in (DUAL, MACVLAN, IPVLAN)},
        "ports": {"tcp/*:4000": PORT},
        "sysctls": {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": None},
    }
    state = state_from_dict(data)
    assert isinstance(state["endpoints"]["web|netns:a"], EndpointRecord)
    assert isinstance(state["ports"]["tcp/*:4000"], PortRecord)
    assert state["networks"] == NETWORK_RECORDS
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
            "networks": {"web": WRITTEN["bridge"]},
            "endpoints": {"web|netns:a": VETH},
            "sysctls": {"net.ipv4.ip_forward": "0"},
        }
    )
    copied = copy_state(state)
    assert copied == state
    assert copied["endpoints"]["web|netns:a"] is state["endpoints"]["web|netns:a"]
    assert copied["networks"]["web"] is state["networks"]["web"]
    copied["networks"]["web"] = dataclasses.replace(copied["networks"]["web"], mtu=9000)
    del copied["endpoints"]["web|netns:a"]
    copied["sysctls"]["net.ipv4.ip_forward"] = "1"
    assert state["networks"]["web"].mtu != 9000 and "web|netns:a" in state["endpoints"]
    assert state["sysctls"] == {"net.ipv4.ip_forward": "0"}
