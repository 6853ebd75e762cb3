"""The rtnetlink reader's encoding and decoding of attributes and link messages (no kernel)."""

from __future__ import annotations

import struct

from ansible_collections.cnm.network.plugins.module_utils import rtnl


def test_attributes_are_padded_to_four_bytes_and_read_back():
    body = rtnl.attr(rtnl.IFLA_IFNAME, b"eth0\0") + rtnl.attr(rtnl.IFLA_MTU, struct.pack("=I", 1450))
    assert len(rtnl.attr(rtnl.IFLA_IFNAME, b"eth0\0")) == 12  # 4 header + 5 payload + 3 padding
    parsed = rtnl.attributes(body)
    assert parsed[rtnl.IFLA_IFNAME] == b"eth0\0" and struct.unpack("=I", parsed[rtnl.IFLA_MTU])[0] == 1450


def test_nested_flag_is_ignored_when_reading_attribute_types():
    nested = struct.pack("=HH", 4 + 8, rtnl.IFLA_LINKINFO | 0x8000) + rtnl.attr(rtnl.IFLA_INFO_KIND, b"veth")
    assert rtnl.IFLA_LINKINFO in rtnl.attributes(nested)


def test_a_truncated_attribute_ends_the_walk():
    assert rtnl.attributes(struct.pack("=HH", 2, 1)) == {}


def test_link_message_is_decoded_into_the_fields_the_core_uses():
    header = struct.pack("=BxHiII", 0, 1, 7, 0x1, 0)
    info = rtnl.attr(rtnl.IFLA_INFO_KIND, b"veth\0")
    body = header + b"".join(
        [
            rtnl.attr(rtnl.IFLA_IFNAME, b"ve-abc\0"),
            rtnl.attr(rtnl.IFLA_MTU, struct.pack("=I", 1500)),
            rtnl.attr(rtnl.IFLA_ADDRESS, bytes([2, 0x42, 10, 0, 0, 2])),
            rtnl.attr(rtnl.IFLA_MASTER, struct.pack("=I", 3)),
            rtnl.attr(rtnl.IFLA_LINK, struct.pack("=I", 2)),
            rtnl.attr(rtnl.IFLA_IFALIAS, b"cnm:endpoint:web|netns:a"),
            rtnl.attr(rtnl.IFLA_GROUP, struct.pack("=I", 9)),
            rtnl.attr(rtnl.IFLA_OPERSTATE, bytes([6])),  # IF_OPER_UP
            rtnl.attr(rtnl.IFLA_LINKINFO, info),
        ]
    )
    link = rtnl._link(body)
    assert link == {
        "index": 7,
        "name": "ve-abc",
        "kind": "veth",
        "mtu": 1500,
        "mac": "02:42:0a:00:00:02",
        "up": True,
        "master": 3,
        "peer_index": 2,
        "alias": "cnm:endpoint:web|netns:a",
        "group": 9,
        "vxlan": None,
        "mode": None,
        "ipv6_disabled": None,
        "operstate": "up",
    }


def test_macvlan_and_vlan_links_carry_their_mode():
    def link(kind: bytes, data: bytes) -> dict:
        info = rtnl.attr(rtnl.IFLA_INFO_KIND, kind + b"\0") + rtnl.attr(rtnl.IFLA_INFO_DATA, data)
        return rtnl._link(
            struct.pack("=BxHiII", 0, 1, 5, 0, 0)
            + rtnl.attr(rtnl.IFLA_IFNAME, b"x\0")
            + rtnl.attr(rtnl.IFLA_LINKINFO, info)
        )

    for mode, number in (("private", 1), ("vepa", 2), ("bridge", 4), ("passthru", 8)):
        assert link(b"macvlan", rtnl.attr(rtnl.IFLA_MACVLAN_MODE, struct.pack("=I", number)))["mode"] == mode
    assert link(b"vlan", rtnl.attr(rtnl.IFLA_VLAN_ID, struct.pack("=H", 10)))["mode"] == "vlan 10"
    for mode, number in (("l2", 0), ("l3", 1), ("l3s", 2)):
        for flag, bits in (("bridge", 0), ("private", 1), ("vepa", 2)):
            data = rtnl.attr(rtnl.IFLA_IPVLAN_MODE, struct.pack("=H", number))
            data += rtnl.attr(rtnl.IFLA_IPVLAN_FLAGS, struct.pack("=H", bits))
            assert link(b"ipvlan", data)["mode"] == "%s %s" % (mode, flag)


def test_link_without_optional_attributes_has_empty_fields():
    link = rtnl._link(struct.pack("=BxHiII", 0, 772, 1, 0, 0) + rtnl.attr(rtnl.IFLA_IFNAME, b"lo\0"))
    assert (link["name"], link["kind"], link["master"], link["alias"], link["group"], link["up"]) == (
        "lo",
        None,
        None,
        None,
        0,
        False,
    )


def test_ipv6_disabled_is_read_from_the_links_ipv6_settings():
    def link(af_spec: bytes) -> dict:
        header = struct.pack("=BxHiII", 0, 1, 4, 0, 0) + rtnl.attr(rtnl.IFLA_IFNAME, b"eth0\0")
        return rtnl._link(header + rtnl.attr(rtnl.IFLA_AF_SPEC | rtnl.NLA_F_NESTED, af_spec))

    def conf(disabled: int) -> bytes:
        values = [0] * 60
        values[rtnl.DEVCONF_DISABLE_IPV6] = disabled
        values[rtnl.DEVCONF_DISABLE_IPV6 - 1] = 1  # its neighbour (mc_forwarding): not read
        inet6 = rtnl.attr(rtnl.IFLA_INET6_CONF, struct.pack("=60i", *values))
        return rtnl.attr(10 | rtnl.NLA_F_NESTED, inet6)  # AF_INET6

    assert link(conf(1))["ipv6_disabled"] is True
    assert link(conf(0))["ipv6_disabled"] is False
    # An interface below 1280 bytes of MTU has no IPv6 settings, only IPv4's (AF_INET, 2): no such sysctl either.
    assert link(rtnl.attr(2 | rtnl.NLA_F_NESTED, rtnl.attr(1, b"\0" * 8)))["ipv6_disabled"] is None
    truncated = rtnl.attr(10 | rtnl.NLA_F_NESTED, rtnl.attr(rtnl.IFLA_INET6_CONF, struct.pack("=3i", 0, 0, 0)))
    assert link(truncated)["ipv6_disabled"] is None
