"""Bad inputs of cnm_port_publish on the real kernel: each fails naming its option and changes nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def web(shared_host):
    """One lab for the whole file: every test leaves it as it found it (each compares snapshots, or fails
    before acting)."""
    host = shared_host
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_bridge", name="vault", subnet="172.31.9.0/24", internal=True)
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])
    host.ok("cnm_endpoint", network="vault", netns=host.sandbox("v"))
    host.ok("cnm_bridge", name="web6", subnet="172.30.6.0/24", ipv6_subnet="fd00:36::/64")  # dual stack: endpoint d
    host.ok("cnm_endpoint", network="web6", netns=host.sandbox("d"))
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("b"), ports=["4100:80"])
    return host


CASES = {
    "port_zero": (dict(ports=["0:80"]), "ports[0]"),
    "port_too_big": (dict(ports=["70000:80"]), "ports[0]"),
    "container_port_too_big": (dict(ports=[dict(host_port=4000, container_port=65536)]), "ports[0].container_port"),
    "reversed_range": (dict(ports=["8010-8000:80-90"]), "ports[0]"),
    "range_lengths_differ": (dict(ports=["8000-8010:80-85"]), "ports[0]"),
    "unknown_protocol": (dict(ports=["4000:80/icmp"]), "ports[0]"),
    "not_a_port": (dict(ports=["http:80"]), "ports[0]"),
    "ephemeral_host_port": (dict(ports=["80"]), "ports[0]"),
    "host_ip_not_on_this_host": (dict(ports=["10.9.9.9:4000:80"]), "ports[0].host_ip"),
    "host_ip_not_an_address": (
        dict(ports=[dict(host_ip="nope", host_port=4000, container_port=80)]),
        "ports[0].host_ip",
    ),
    "ipv6_host_address": (dict(ports=["[::1]:4000:80"]), "ports[0].host_ip"),
    "ipv6_all_addresses": (dict(ports=["[::]:4000:80"]), "ports[0].host_ip"),  # endpoint a has no IPv6 address
    # IPv6 forms of -p (on the dual-stack endpoint d unless said otherwise)
    "ipv6_loopback": (dict(network="web6", sandbox="d", ports=["[::1]:80:80"]), "ports[0].host_ip"),
    "ipv6_loopback_dict": (
        dict(network="web6", sandbox="d", ports=[dict(host_ip="::1", host_port=80, container_port=80)]),
        "ports[0].host_ip",
    ),
    "ipv6_without_brackets_is_ambiguous": (dict(network="web6", sandbox="d", ports=["::1:80:80"]), "ports[0]"),
    "ipv6_not_a_host_address": (dict(network="web6", sandbox="d", ports=["[2001:db8::1]:80:80"]), "ports[0].host_ip"),
    "ipv6_host_address_endpoint_without_ipv6": (dict(ports=["[2001:db8::1]:4000:80"]), "ports[0].host_ip"),
    "ipv6_open_bracket_only": (dict(network="web6", sandbox="d", ports=["[2001:db8::1:80:80"]), "ports[0]"),
    "ipv6_close_bracket_only": (dict(network="web6", sandbox="d", ports=["2001:db8::1]:80:80"]), "ports[0]"),
    "ipv6_empty_brackets": (dict(network="web6", sandbox="d", ports=["[]:80:80"]), "ports[0].host_ip"),
    "ipv4_in_brackets": (dict(network="web6", sandbox="d", ports=["[127.0.0.1]:80:80"]), "ports[0].host_ip"),
    "ipv4_mapped_ipv6": (dict(network="web6", sandbox="d", ports=["[::ffff:127.0.0.1]:80:80"]), "ports[0].host_ip"),
    "ipv6_zone_index": (
        dict(network="web6", sandbox="d", ports=[dict(host_ip="fe80::1%lo", host_port=80, container_port=80)]),
        "ports[0].host_ip",
    ),
    "ipv6_not_an_address": (
        dict(network="web6", sandbox="d", ports=[dict(host_ip="2001:db8::zz", host_port=80, container_port=80)]),
        "ports[0].host_ip",
    ),
    # 4100 is published to b on the IPv4-only web: d's plain 4100:80 takes both families, so its IPv4 side clashes
    "plain_binding_ipv4_side_taken": (dict(network="web6", sandbox="d", ports=["4101:80", "4100:80"]), "ports[1]"),
    "zero_address_taken_by_plain_binding": (dict(network="web6", sandbox="d", ports=["0.0.0.0:4100:80"]), "ports[0]"),
    "ipv6_both_halves_in_one_list_overlap_plain": (
        dict(network="web6", sandbox="d", ports=["[::]:4200:80", "4200:80"]),
        "ports[1]",
    ),
    "duplicate_mapping": (dict(ports=["4000:80", "4000:81"]), "ports[1]"),
    "port_taken_by_another_endpoint": (dict(ports=["4100:80"]), "ports[0]"),
    "no_ports": (dict(ports=[]), "ports"),
    "unknown_endpoint": (dict(netns="nobody"), "netns"),
    "container_ip_of_no_endpoint": (dict(netns=None, container_ip="172.30.0.99"), "container_ip"),
    "container_ip_ipv6": (dict(netns=None, container_ip="fd00::2"), "container_ip"),
    "unknown_network": (dict(network="nonet"), "network"),
    "internal_network": (dict(network="vault", sandbox="v"), "network"),
    "batch_item_bad": (dict(endpoints=[dict(ports=["4200:80"]), dict(ports=["99999:80"])]), "endpoints[1].ports[0]"),
}


@pytest.mark.parametrize("args, option", list(CASES.values()), ids=list(CASES))
def test_bad_port_input_fails_naming_the_option_and_changes_nothing(web, args, option):
    args = dict(args)
    params = dict(network=args.pop("network", "web"), netns=web.sandbox(args.pop("sandbox", "a")), ports=["4000:80"])
    params.update(args)
    if params.get("netns") == "nobody":
        params["netns"] = web.sandbox("nobody")
    if "endpoints" in params:
        params["endpoints"] = [dict(item, netns=web.sandbox("a")) for item in params["endpoints"]]
        params.pop("netns")
        params.pop("ports")
    params = {key: value for key, value in params.items() if value is not None}
    before = web.snapshot()
    result = web.module("cnm_port_publish", **params)
    assert result.get("failed") is True, result
    assert "option '%s" % option in result["msg"], result["msg"]
    assert web.snapshot() == before


def test_a_port_bound_by_a_host_process_is_refused_naming_the_process(web):
    server = subprocess.Popen(
        [
            "nsenter",
            "--net=/run/netns/%s" % web.name,
            "--",
            sys.executable,
            "-c",
            "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            "s.bind(('0.0.0.0',4300));s.listen(1);time.sleep(60)",
        ]
    )
    try:
        for _attempt in range(50):
            if ":10CC " in web.sh("cat /proc/net/tcp").stdout:
                break
        before = web.snapshot()
        result = web.module("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4300:80"])
        assert result["failed"] and "option 'ports[0]'" in result["msg"] and "process %d" % server.pid in result["msg"]
        assert web.snapshot() == before
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize(
    "args, words",
    [
        (dict(netns="x", container_ip="172.30.0.2"), "mutually exclusive"),
        (dict(state="bogus"), "state"),
        (dict(ports="4000:80", pid="notanumber"), "pid"),
    ],
)
def test_argument_spec_errors_name_the_option(web, args, words):
    result = web.module("cnm_port_publish", network="web", **args)
    assert result.get("failed") and words in result["msg"], result
