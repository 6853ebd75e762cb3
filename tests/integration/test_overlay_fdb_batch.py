"""An overlay with thousands of remote endpoints: its FDB and neighbour entries go to the kernel in batches (many
requests to a send); every entry lands, a rerun changes nothing, removals are exact, and a refusal in the middle of a
batch undoes what the batch applied."""

from __future__ import annotations

import contextlib
import json

import pytest
from conftest import RUN_PREFIX, LabHost

VTEPS = ["192.0.2.%d" % (10 + n) for n in range(20)]
FLOOD = "00:00:00:00:00:00"


@contextlib.contextmanager
def one_host():
    """A host whose eth0 (one end of a veth pair of its own) holds the VTEP address 192.0.2.1."""
    host = LabHost("%s-fb%s" % (RUN_PREFIX, pytest.importorskip("secrets").token_hex(2)))
    try:
        host.sh("ip link add eth0 type veth peer name eth0p && ip link set eth0p up")
        host.sh("ip addr add 192.0.2.1/24 dev eth0 && ip link set eth0 up")
        yield host
    finally:
        host.destroy()


@pytest.fixture
def host():
    with one_host() as made:
        yield made


def endpoints(count: int) -> dict:
    """VTEP -> its endpoints' (IP, MAC), ``count`` endpoints dealt over VTEPS."""
    peers: dict = {vtep: [] for vtep in VTEPS}
    for n in range(count):
        ip = "10.210.%d.%d" % (1 + n // 250, 1 + n % 250)
        peers[VTEPS[n % len(VTEPS)]].append((ip, "02:42:0a:d2:%02x:%02x" % (1 + n // 250, 1 + n % 250)))
    return peers


def overlay(host, peers: dict) -> dict:
    listed = [
        {"vtep": vtep, "endpoints": [{"ip": ip, "mac": mac} for ip, mac in items]} for vtep, items in peers.items()
    ]
    return host.module(
        "cnm_overlay",
        name="ov",
        vni=4300,
        subnet="10.210.0.0/16",
        ip_range="10.210.0.0/24",
        local_ip="192.0.2.1",
        peers=listed,
        diff=False,
    )


def kernel_entries(host) -> tuple:
    """(the remote FDB entries of vx-ov as (MAC, VTEP), its permanent neighbours as (IP, MAC)), as sets."""
    fdb = json.loads(host.sh("bridge -j fdb show dev vx-ov").stdout or "[]")
    neigh = json.loads(host.sh("ip -j neigh show dev vx-ov").stdout or "[]")
    return (
        {(e["mac"], e["dst"]) for e in fdb if "dst" in e},
        {(e["dst"], e["lladdr"]) for e in neigh if "PERMANENT" in e.get("state", [])},
    )


def wanted(peers: dict) -> tuple:
    fdb = {(FLOOD, vtep) for vtep in peers} | {(mac, vtep) for vtep, items in peers.items() for _ip, mac in items}
    return fdb, {item for items in peers.values() for item in items}


def test_two_thousand_remote_endpoints_are_programmed_exactly_rerun_and_halved(host):
    peers = endpoints(2000)
    result = overlay(host, peers)
    assert not result.get("failed"), result.get("msg")
    assert kernel_entries(host) == wanted(peers)
    assert len(kernel_entries(host)[0]) == 2020
    rerun = overlay(host, peers)
    assert rerun["changed"] is False and not rerun["changes"]
    half = {vtep: items[::2] for vtep, items in peers.items() if vtep in VTEPS[:10]}
    result = overlay(host, half)
    assert result["changed"] and not result.get("failed"), result.get("msg")
    assert kernel_entries(host) == wanted(half)
    assert len([what for what in result["changes"] if what.startswith("remove fdb")]) == 2020 - 510
    assert overlay(host, half)["changed"] is False


def test_a_refusal_in_the_middle_of_a_batch_undoes_what_the_batch_applied(host):
    few = endpoints(20)
    assert not overlay(host, few).get("failed")
    # The same device again, by hand, but holding at most 300 FDB entries: the kernel refuses the 301st (ENOSPC)
    # in the middle of the first batch of the run below.
    link = json.loads(host.sh("ip -d -j link show vx-ov").stdout)[0]
    host.sh(
        "ip link del vx-ov && ip link add vx-ov address %s mtu %d type vxlan id 4300 local 192.0.2.1 dstport 4789 "
        "nolearning proxy maxaddress 300 && ip link set vx-ov alias %s master %s up"
        % (link["address"], link["mtu"], link["ifalias"], link["master"])
    )
    assert not overlay(host, few).get("failed")  # the entries back, on the device the module takes as its own
    before = kernel_entries(host)
    assert before == wanted(few)
    result = overlay(host, endpoints(2000))
    assert result.get("failed") and "No space left on device (errno 28)" in result["msg"], result
    assert "undid" in result["msg"] and "undo incomplete" not in result["msg"]
    assert kernel_entries(host) == before  # the entries applied before and after the refused one are gone again
    assert overlay(host, few)["changed"] is False
