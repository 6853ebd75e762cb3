"""What a network module's run keeps when it leaves options out (plugins/module_utils/omitted.py)."""

from ansible_collections.cnm.network.plugins.module_utils.omitted import keep_omitted
from ansible_collections.cnm.network.plugins.module_utils.records import (
    BridgeRecord,
    MacvlanRecord,
    OverlayRecord,
)

WEB = BridgeRecord(
    subnet="172.30.0.0/24",
    gateway="172.30.0.254",
    ip_range="172.30.0.128/25",
    ipv6_subnet="fd00:30::/64",
    ipv6_gateway="fd00:30::1",
    mtu=9000,
    bridge_name="br-custom",
    masquerade=False,
    icc=False,
    dns=True,
    dns_servers=("192.0.2.53",),
    trusted_sources=("198.51.100.0/24",),
)


def params(**given):
    """The module's options as AnsibleModule gives them: None for every option left out."""
    names = ("subnet", "gateway", "ip_range", "ipv6_subnet", "ipv6_gateway", "mtu", "bridge_name", "masquerade")
    names += ("ipv6_masquerade", "trusted_sources", "internal", "icc", "dns", "dns_servers", "host_binding_ip")
    return dict({name: None for name in names}, name="web", **given)


def test_a_new_network_gets_the_documented_defaults():
    options = keep_omitted(params(subnet="10.1.0.0/24"), None, "bridge")

    assert options["mtu"] == 1500 and options["masquerade"] is True and options["icc"] is True
    assert options["internal"] is False and options["dns"] is False
    assert options["bridge_name"] is None and options["gateway"] is None and options["ipv6_subnet"] is None


def test_a_rerun_without_options_keeps_every_value_of_the_network():
    options = keep_omitted(params(), WEB, "bridge")

    for name in ("subnet", "gateway", "ip_range", "ipv6_subnet", "ipv6_gateway", "mtu", "bridge_name", "masquerade"):
        assert options[name] == getattr(WEB, name), name
    assert options["icc"] is False and options["dns"] is True
    assert options["dns_servers"] == ["192.0.2.53"] and options["trusted_sources"] == ["198.51.100.0/24"]


def test_given_options_win_over_the_network():
    options = keep_omitted(params(mtu=1400, masquerade=True, dns_servers=[]), WEB, "bridge")

    assert options["mtu"] == 1400 and options["masquerade"] is True and options["dns_servers"] == []
    assert options["icc"] is False  # still kept


def test_gateway_and_ip_range_are_kept_while_their_subnet_stays_the_same():
    same = keep_omitted(params(subnet="172.30.0.0/24"), WEB, "bridge")
    moved = keep_omitted(params(subnet="172.31.0.0/24"), WEB, "bridge")

    assert (same["gateway"], same["ip_range"]) == ("172.30.0.254", "172.30.0.128/25")
    assert (moved["gateway"], moved["ip_range"]) == (None, None)  # the new subnet's defaults
    assert moved["ipv6_subnet"] == "fd00:30::/64" and moved["ipv6_gateway"] == "fd00:30::1"


def test_an_empty_subnet_removes_it_and_its_gateway():
    options = keep_omitted(params(ipv6_subnet=""), WEB, "bridge")

    assert options["ipv6_subnet"] == "" and options["ipv6_gateway"] is None
    assert options["subnet"] == "172.30.0.0/24"


def test_a_kept_value_that_needs_a_switch_turned_off_goes_with_it():
    no_dns = keep_omitted(params(dns=False), WEB, "bridge")
    internal = keep_omitted(params(internal=True), WEB, "bridge")

    assert no_dns["dns_servers"] is None
    assert internal["trusted_sources"] is None


def test_a_value_given_with_its_switch_off_is_still_given_so_the_planner_refuses_it():
    options = keep_omitted(params(dns=False, dns_servers=["192.0.2.1"]), WEB, "bridge")

    assert options["dns_servers"] == ["192.0.2.1"]


def test_another_drivers_network_keeps_nothing():
    options = keep_omitted(dict(params(), vni=None, local_ip=None, peers=None), WEB, "overlay")

    assert options["mtu"] is None and options["subnet"] is None and options["masquerade"] is True


def test_an_overlay_keeps_an_mtu_asked_for_but_not_one_that_follows_the_underlay():
    base = dict(subnet="10.200.0.0/16", vni=42, local_ip="192.0.2.11", vxlan_name="vx-ov", bridge_name="br-ov")
    followed = OverlayRecord(mtu=1450, **base)
    asked = OverlayRecord(mtu=1400, mtu_set=True, **base)
    given = dict(params(), name="ov", vni=None, local_ip=None, peers=None, port=None, control_plane=None)

    assert keep_omitted(given, followed, "overlay")["mtu"] is None
    assert keep_omitted(given, asked, "overlay")["mtu"] == 1400
    assert keep_omitted(given, asked, "overlay")["vni"] == 42 and keep_omitted(given, asked, "overlay")["port"] == 4789


def test_an_overlays_peers_and_control_plane_are_kept():
    record = OverlayRecord(
        subnet="10.200.0.0/16",
        vni=42,
        local_ip="192.0.2.11",
        vxlan_name="vx-ov",
        bridge_name="br-ov",
        control_plane="evpn",
        peers=(),
    )
    given = dict(params(), name="ov", vni=None, local_ip=None, peers=None, port=None, control_plane=None)

    options = keep_omitted(given, record, "overlay")

    assert options["control_plane"] == "evpn" and options["peers"] == []


def test_a_macvlan_network_keeps_its_mode_and_an_mtu_that_follows_the_parent_keeps_following():
    record = MacvlanRecord(subnet="192.168.1.0/24", parent="eth1", mtu=1500, mtu_set=False, mode="private")
    given = dict(name="lan", parent=None, mode=None, mtu=None, host_access=None, host_access_ip=None, shim_name=None)
    given.update(subnet=None, gateway=None, ip_range=None, ipv6_subnet=None, ipv6_gateway=None)

    options = keep_omitted(given, record, "macvlan")

    assert options["mode"] == "private" and options["parent"] == "eth1" and options["mtu"] is None
    assert options["host_access"] is False and options["subnet"] == "192.168.1.0/24"
