"""bench/conn_rate.py's pure logic: the hosts' addresses do not overlap, the summary's ratios, unsupported rows."""

from __future__ import annotations

import ipaddress
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench"))
conn_rate = pytest.importorskip("conn_rate")


class FakeLab:
    prefix = "cnmr000000"


def hosts():
    return [conn_rate.Host(FakeLab(), *spec) for spec in conn_rate.HOSTS]


def test_hosts_have_disjoint_links_and_subnets():
    networks = []
    for host in hosts():
        for address, subnet in zip(host.uplink + host.client_ip, host.client_subnets * 2, strict=True):
            assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
        networks += [ipaddress.ip_network(n) for n in host.client_subnets + list(host.subnets)]
    for i, a in enumerate(networks):
        for b in networks[i + 1 :]:
            assert a.version != b.version or not a.overlaps(b), (a, b)


def test_published_target_is_the_measured_port_on_the_hosts_link():
    host = hosts()[1]
    host.addresses = {"IPv4": "10.102.0.2", "IPv6": "2001:db8:102::2"}
    assert host.target("IPv4", "published") == ("192.0.2.65", conn_rate.MEASURED_PORT)
    assert host.target("IPv6", "published") == ("2001:db8:2::1", conn_rate.MEASURED_PORT)
    assert host.target("IPv6", "direct") == ("2001:db8:102::2", conn_rate.CONTAINER_PORT)


def test_summary_ratio_of_medians_paired_ratios_and_spread():
    def runs(*rates):
        return [{"per_second": r, "errors": 0, "load": 5.0 + i, "round": i + 1} for i, r in enumerate(rates)]

    samples = {"rate": {"cnm|1|IPv4|published": runs(100, 120, 110), "cnm|1000|IPv4|published": runs(30, 36, 22)}}
    options = type("Options", (), {"ports": 1000})
    summary = conn_rate.summarize(samples, options)
    cell = summary["cells"]["rate"]["cnm|1|IPv4|published"]
    assert cell["median"] == 110 and cell["spread"] == pytest.approx(20 / 110)
    ratio = summary["ratios"]["rate"]["cnm|IPv4|published"]
    assert ratio["of_medians"] == pytest.approx(30 / 110)
    assert ratio["paired"] == pytest.approx([0.3, 0.3, 0.2])
    assert ratio["paired_median"] == pytest.approx(0.3)
    assert summary["round_loads"] == {1: [5.0, 5.0], 2: [6.0, 6.0], 3: [7.0, 7.0]}


def test_unsupported_cells_make_one_line():
    head = "not supported by this version ("
    assert conn_rate.why_text(
        [head + "[2001:db8:1::1]:10999: ConnectionRefusedError)", head + "[2001:db8:2::1]:10999: TimeoutError)"]
    ) == (head + "[2001:db8:1::1]:10999: ConnectionRefusedError; [2001:db8:2::1]:10999: TimeoutError)")
    assert conn_rate.why_text(["the sandbox has no IPv6 address"] * 2) == "the sandbox has no IPv6 address"
