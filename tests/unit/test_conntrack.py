"""ctnetlink messages: entries decoded from what the kernel sends, delete requests built from them, and the flush's
choice of entries (pure: a stand-in session replays decoded entries)."""

import ipaddress
import socket
import struct

from ansible_collections.cnm.network.plugins.module_utils.conntrack import (
    CTA_IP_V4_DST,
    CTA_IP_V4_SRC,
    CTA_IP_V6_DST,
    CTA_IP_V6_SRC,
    CTA_PROTO_DST_PORT,
    CTA_PROTO_NUM,
    CTA_PROTO_SRC_PORT,
    CTA_TUPLE_IP,
    CTA_TUPLE_ORIG,
    CTA_TUPLE_PROTO,
    CTA_TUPLE_REPLY,
    CTA_ZONE,
    NLA_F_NESTED,
    decode_flow,
    delete_request,
    flush,
)
from ansible_collections.cnm.network.plugins.module_utils.firewall import flush_addresses, flush_flows
from ansible_collections.cnm.network.plugins.module_utils.rtnl import attr, attributes

CTA_STATUS = 3


def tuple_attr(kind, src, dst, protocol, sport, dport):
    version = ipaddress.ip_address(src).version
    fields = (CTA_IP_V4_SRC, CTA_IP_V4_DST) if version == 4 else (CTA_IP_V6_SRC, CTA_IP_V6_DST)
    ip = attr(fields[0], ipaddress.ip_address(src).packed) + attr(fields[1], ipaddress.ip_address(dst).packed)
    proto = attr(CTA_PROTO_NUM, bytes([protocol])) + attr(CTA_PROTO_SRC_PORT, struct.pack("!H", sport))
    proto += attr(CTA_PROTO_DST_PORT, struct.pack("!H", dport))
    inner = attr(CTA_TUPLE_IP | NLA_F_NESTED, ip) + attr(CTA_TUPLE_PROTO | NLA_F_NESTED, proto)
    return attr(kind | NLA_F_NESTED, inner)


def entry(orig, reply, zone=None):
    """The payload of an IPCTNL_MSG_CT_NEW message: nfgenmsg, the two tuples, a status (and a zone)."""
    family = socket.AF_INET if ipaddress.ip_address(orig[0]).version == 4 else socket.AF_INET6
    body = struct.pack("=BBH", family, 0, 0) + tuple_attr(CTA_TUPLE_ORIG, *orig) + tuple_attr(CTA_TUPLE_REPLY, *reply)
    body += attr(CTA_STATUS, struct.pack("!I", 0x18E))
    if zone is not None:
        body += attr(CTA_ZONE, struct.pack("!H", zone))
    return body


# A published UDP port: 10.0.0.1:5000 -> host 10.0.0.2:4000, DNAT'd to the container 172.30.0.2:80.
DNAT4 = entry(("10.0.0.1", "10.0.0.2", 17, 5000, 4000), ("172.30.0.2", "10.0.0.1", 17, 80, 5000))
# A masqueraded IPv6 TCP flow of a container (its long address form in the store is compressed here).
OUT6 = entry(("fd00:30:0:0:0:0:0:3", "2001:db8::9", 6, 4711, 80), ("2001:db8::9", "2001:db8::1", 6, 80, 4711), zone=7)


def test_an_ipv4_dnat_entry_is_decoded():
    flow = decode_flow(DNAT4)
    assert (flow.family, flow.protocol, flow.orig_src, flow.orig_dst, flow.orig_dport, flow.reply_src) == (
        socket.AF_INET,
        "udp",
        "10.0.0.1",
        "10.0.0.2",
        4000,
        "172.30.0.2",
    )
    assert flow.addresses() == {"10.0.0.1", "10.0.0.2", "172.30.0.2"}


def test_ipv6_addresses_come_compressed_as_the_store_writes_them():
    flow = decode_flow(OUT6)
    assert (flow.protocol, flow.orig_src, flow.orig_dport, flow.reply_src) == ("tcp", "fd00:30::3", 80, "2001:db8::9")


def test_the_delete_request_sends_back_the_original_tuple_and_the_zone_as_received():
    request = delete_request(decode_flow(OUT6))
    assert struct.unpack_from("=BBH", request) == (socket.AF_INET6, 0, 0)
    sent = attributes(request, 4)
    received = attributes(OUT6, 4)
    assert sent == {CTA_TUPLE_ORIG: received[CTA_TUPLE_ORIG], CTA_ZONE: received[CTA_ZONE]}
    assert struct.unpack_from("=HH", request, 4)[1] == CTA_TUPLE_ORIG | NLA_F_NESTED  # the reply tuple is not sent
    assert CTA_ZONE not in attributes(delete_request(decode_flow(DNAT4)), 4)


class Session:
    """A stand-in ctnetlink session: dumps what it was given, records deletes (one entry already gone)."""

    def __init__(self, payloads, gone=()):
        self.flows_of = {4: [], 6: []}
        for payload in payloads:
            flow = decode_flow(payload)
            self.flows_of[4 if flow.family == socket.AF_INET else 6].append(flow)
        self.dumped, self.deleted, self.gone = [], [], set(gone)

    def flows(self, version):
        self.dumped.append(version)
        return self.flows_of[version]

    def delete(self, flow):
        self.deleted.append(flow.orig_src)
        return flow.orig_src not in self.gone


OTHER4 = entry(("10.0.0.5", "10.0.0.2", 6, 6000, 4000), ("172.30.0.9", "10.0.0.5", 6, 80, 6000))


def test_flush_dumps_each_version_once_and_deletes_only_the_doomed():
    session = Session([DNAT4, OTHER4, OUT6], gone={"10.0.0.5"})
    assert flush([4, 4], lambda flow: flow.orig_dport == 4000, session) == 1  # one of the two had gone meanwhile
    assert session.dumped == [4] and session.deleted == ["10.0.0.1", "10.0.0.5"]
    assert flush([], lambda flow: True, None) == 0  # nothing to look at: no socket opened


class Host:
    def __init__(self):
        self.warnings = []


def test_a_mapping_flush_matches_protocol_port_and_container_address(monkeypatch):
    session = Session([DNAT4, OTHER4, OUT6])
    monkeypatch.setattr("ansible_collections.cnm.network.plugins.module_utils.conntrack.Conntrack", lambda: session)
    session.close = lambda: None
    # OUT6 is a flow of fd00:30::3 to port 80, not one DNAT'd to it: its reply comes from 2001:db8::9
    flush_flows(Host(), [("udp", 4000, "172.30.0.2", None), ("tcp", 80, None, "fd00:30::3")])
    assert session.deleted == ["10.0.0.1"] and session.dumped == [4, 6]


def test_an_address_flush_takes_every_entry_it_appears_in(monkeypatch):
    session = Session([DNAT4, OTHER4, OUT6])
    monkeypatch.setattr("ansible_collections.cnm.network.plugins.module_utils.conntrack.Conntrack", lambda: session)
    session.close = lambda: None
    flush_addresses(Host(), ["172.30.0.2", "fd00:30:0::3"])
    assert session.deleted == ["10.0.0.1", "fd00:30::3"]


def test_a_kernel_without_ctnetlink_gets_a_warning_not_a_failure(monkeypatch):
    def refused():
        raise OSError(93, "Protocol not supported")

    monkeypatch.setattr("ansible_collections.cnm.network.plugins.module_utils.conntrack.Conntrack", refused)
    host = Host()
    flush_addresses(host, ["172.30.0.2"])
    assert host.warnings == [
        "conntrack entries of 1 address(es) were not flushed: this kernel has no ctnetlink (nf_conntrack_netlink): "
        "Protocol not supported"
    ]
