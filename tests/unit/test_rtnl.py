"""The rtnetlink reader's encoding and decoding of attributes and link messages (no kernel)."""

from __future__ import annotations

import struct

import pytest

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


# ---- batches: many requests to a send, their acks mapped back (rtnl.Netlink.batch) ----


def _ack(sequence: int, code: int = 0) -> bytes:
    """An NLMSG_ERROR message: the error (negative errno, 0 for done) and the request's header."""
    payload = struct.pack("=i", -code) + struct.pack("=IHHII", 16, rtnl.RTM_NEWNEIGH, 0, sequence, 0)
    return struct.pack("=IHHII", 16 + len(payload), rtnl.NLMSG_ERROR, 0, sequence, 1) + payload


class AckingSocket:
    """Stands in for the netlink socket: records each send's requests and acks each in its own datagram, refusing
    the sequence numbers in ``refuse`` (errno) - as the kernel handles each message of a send on its own."""

    def __init__(self, refuse: dict | None = None, noise: bool = False) -> None:
        self.refuse = refuse or {}
        self.noise = noise
        self.sends: list = []
        self.queue: list = []

    def send(self, data: bytes) -> int:
        sequences, offset = [], 0
        while offset < len(data):
            length, _kind, flags, sequence, _port = struct.unpack_from("=IHHII", data, offset)
            assert flags & rtnl.NLM_F_ACK and flags & rtnl.NLM_F_REQUEST
            sequences.append(sequence)
            offset += (length + 3) & ~3
        self.sends.append(sequences)
        if self.noise:  # a late ack of an earlier request and a non-ack message: both ignored
            self.queue.append(_ack(10_000) + struct.pack("=IHHII", 16, rtnl.NLMSG_DONE, 0, sequences[0], 1))
        self.queue.extend(_ack(sequence, self.refuse.get(sequence, 0)) for sequence in sequences)
        return len(data)

    def recv(self, _size: int) -> bytes:
        return self.queue.pop(0)


def _netlink(sock, per_send: int) -> rtnl.Netlink:
    netlink = rtnl.Netlink.__new__(rtnl.Netlink)  # no kernel socket
    netlink.sock, netlink.sequence, netlink._batch_messages = sock, 0, per_send
    return netlink


def _requests(count: int) -> list:
    return [rtnl.neighbour_request(True, 7, 4, "02:42:0a:00:00:%02x" % n, "10.0.0.%d" % n) for n in range(count)]


def test_split_batch_bounds_each_send_by_messages_and_bytes_in_order():
    requests = [(1, 0, b"x" * 32)] * 10  # 48 bytes a message
    chunks = list(rtnl.split_batch(requests, 4, 1 << 16))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    assert [len(chunk) for chunk in rtnl.split_batch(requests, 100, 150)] == [3, 3, 3, 1]
    big = (1, 0, b"y" * 500)  # larger than a send may be: alone in its send rather than never sent
    assert [len(chunk) for chunk in rtnl.split_batch([big, big], 100, 100)] == [1, 1]
    assert list(rtnl.split_batch([], 4, 100)) == []


def test_acks_of_one_datagram_are_read_with_their_sequence_and_errno():
    data = _ack(5) + _ack(6, 17) + struct.pack("=IHHII", 16, rtnl.NLMSG_DONE, 0, 7, 1) + _ack(8, 22)
    assert list(rtnl.acks(data)) == [(5, 0), (6, 17), (8, 22)]
    assert list(rtnl.acks(b"\0" * 8)) == []


def test_a_neighbour_request_encodes_an_fdb_append_and_a_neighbour_delete():
    kind, flags, body = rtnl.neighbour_request(True, 7, 4, "02:42:0A:00:00:02", "192.0.2.12")  # AF_BRIDGE
    assert (kind, flags) == (rtnl.RTM_NEWNEIGH, rtnl.NLM_F_CREATE | rtnl.NLM_F_APPEND)
    assert struct.unpack_from("=BxxxiHBB", body) == (7, 4, rtnl.NUD_PERMANENT, rtnl.NTF_SELF, 0)
    attrs = rtnl.attributes(body, 12)
    assert attrs[rtnl.NDA_LLADDR] == bytes([2, 0x42, 10, 0, 0, 2]) and attrs[rtnl.NDA_DST] == bytes([192, 0, 2, 12])
    kind, flags, body = rtnl.neighbour_request(False, 2, 4, "02:42:0a:00:00:02", "10.0.0.2")  # AF_INET
    assert (kind, flags) == (rtnl.RTM_DELNEIGH, 0) and struct.unpack_from("=BxxxiHBB", body)[3] == 0


def test_a_batch_sends_many_requests_at_once_and_maps_every_ack_to_its_request():
    sock = AckingSocket(noise=True)
    netlink = _netlink(sock, per_send=4)
    assert netlink.batch(_requests(10)) == [0] * 10
    assert sock.sends == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert netlink.sequence == 10


def test_a_refusal_in_a_batch_names_its_request_and_stops_after_its_send():
    sock = AckingSocket(refuse={6: 17})
    netlink = _netlink(sock, per_send=4)
    # The kernel applied 5, 7 and 8 (sent with 6): their codes say so; 9 and 10 are not sent.
    assert netlink.batch(_requests(10)) == [0, 0, 0, 0, 0, 17, 0, 0]
    assert sock.sends == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_a_batch_that_keeps_going_sends_everything_despite_refusals():
    sock = AckingSocket(refuse={2: 2, 9: 2})
    assert _netlink(sock, per_send=4).batch(_requests(10), keep_going=True) == [0, 2] + [0] * 6 + [2, 0]
    assert len(sock.sends) == 3


def test_lost_acknowledgements_are_an_error_not_a_guess():
    class Overrun(AckingSocket):
        def recv(self, _size: int) -> bytes:
            raise OSError(105, "No buffer space available")  # ENOBUFS: the kernel dropped acks

    with pytest.raises(OSError, match="acknowledgements lost"):
        _netlink(Overrun(), per_send=4).batch(_requests(3))


def test_the_sends_of_a_batch_are_bounded_by_the_receive_buffer():
    class Buffered:
        def __init__(self, room: int) -> None:
            self.room = room

        def setsockopt(self, level, option, value) -> None:
            if option == rtnl.SO_RCVBUFFORCE:
                raise PermissionError(1, "Operation not permitted")  # not root: the capped option

        def getsockopt(self, level, option) -> int:
            return self.room

    assert _netlink(Buffered(425984), 0)._batch_limit() == 425984 // rtnl.ACK_COST
    assert _netlink(Buffered(1 << 24), 0)._batch_limit() == rtnl.BATCH_MESSAGES
    assert _netlink(Buffered(100), 0)._batch_limit() == 1
