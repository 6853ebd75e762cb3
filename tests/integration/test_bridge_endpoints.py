"""Bridge networks and endpoints on the real kernel: traffic, idempotence, check mode, removal."""

from __future__ import annotations

import json
import subprocess

from conftest import pings, tcp_connects

NET = dict(name="web", subnet="172.30.0.0/24")


def attach(host, *sandboxes, **extra):
    return host.ok(
        "cnm_endpoint",
        network=extra.pop("network", "web"),
        endpoints=[dict(netns=host.sandbox(s)) for s in sandboxes],
        **extra,
    )


def test_two_endpoints_on_one_bridge_reach_each_other(host):
    host.ok("cnm_bridge", **NET)
    result = attach(host, "a", "b")
    a, b = result["endpoints"]
    assert (a["ipv4_address"], b["ipv4_address"]) == ("172.30.0.2", "172.30.0.3")
    assert a["mac_address"] == "02:42:ac:1e:00:02" and a["ifname"] == "eth0"
    assert pings(host.sandbox("a"), "172.30.0.3")
    assert pings(host.sandbox("b"), "172.30.0.1")  # the gateway on the bridge
    assert tcp_connects(host.sandbox("a"), host.sandbox("b"), "172.30.0.3")
    inner = host.in_sandbox("a", "ip -j link show eth0").stdout
    assert json.loads(inner)[0]["address"] == "02:42:ac:1e:00:02"


def test_second_run_reports_no_change(host):
    for _attempt in range(2):
        first_bridge = host.module("cnm_bridge", ipv6_subnet="fd00:30::/64", mtu=1400, **NET)
        first_eps = attach(
            host,
            "a",
            "b",
            routes=[dict(dst="10.99.0.0/16", gateway="172.30.0.254")],
            sysctls={"net.ipv4.conf.IFNAME.rp_filter": 2},
        )
    assert first_bridge["changed"] is False and first_bridge["changes"] == []
    assert first_eps["changed"] is False and first_eps["changes"] == []


def test_check_mode_changes_nothing_and_predicts_the_real_run(host):
    steps = [
        ("cnm_bridge", dict(ipv6_subnet="fd00:30::/64", **NET)),
        (
            "cnm_endpoint",
            dict(
                network="web",
                endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"), ipv4_address="172.30.0.77")],
            ),
        ),
        (
            "cnm_bridge",
            dict(NET, ipv6_subnet="fd00:30::/64", mtu=1400, gateway="172.30.0.254"),
        ),  # reconcile: endpoints follow
        ("cnm_endpoint", dict(network="web", netns=host.sandbox("a"), state="absent")),
        ("cnm_bridge", dict(NET, state="absent", force=True)),
    ]
    for module, args in steps:
        before = host.snapshot()
        predicted = host.module(module, check=True, **args)
        assert host.snapshot() == before, "check mode changed something in %s %s" % (module, args)
        real = host.module(module, **args)
        assert not real.get("failed"), real
        assert (predicted["changed"], predicted["changes"]) == (real["changed"], real["changes"])
        assert predicted["diff"] == real["diff"]
        assert real["changed"]


def test_diff_shows_each_object_before_and_after(host):
    host.ok("cnm_bridge", **NET)
    created = attach(host, "a")
    assert "endpoint web on netns:%s" % host.sandbox("a") in created["diff"]["after"]
    result = host.ok("cnm_bridge", **dict(NET, mtu=1400))
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before["network web"]["mtu"] == 1500 and after["network web"]["mtu"] == 1400
    key = "endpoint web on netns:%s" % host.sandbox("a")
    assert before[key]["mtu"] == 1500 and after[key]["mtu"] == 1400
    assert json.loads(host.in_sandbox("a", "ip -j link show eth0").stdout)[0]["mtu"] == 1400


def test_absent_leaves_nothing_behind(host):
    empty = host.snapshot()
    host.ok("cnm_bridge", ipv6_subnet="fd00:30::/64", **NET)
    attach(host, "a", "b")
    host.ok(
        "cnm_endpoint",
        network="web",
        endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))],
        state="absent",
        delete_netns=True,
    )
    host.ok("cnm_bridge", name="web", state="absent")
    after = host.snapshot()
    assert after["netns"] == empty["netns"]
    assert after[host.name] == empty[host.name]
    assert after["store"] == {}  # no store file left
    again = host.ok("cnm_bridge", name="web", state="absent")
    assert again["changed"] is False


def test_absent_refuses_while_endpoints_are_attached_unless_forced(host):
    host.ok("cnm_bridge", **NET)
    attach(host, "a")
    refused = host.module("cnm_bridge", name="web", state="absent")
    assert refused["failed"] and "force" in refused["msg"] and host.sandbox("a") in refused["msg"]
    assert "br-web" in host.sh("ip -br link").stdout
    forced = host.ok("cnm_bridge", name="web", state="absent", force=True)
    assert forced["network"]["detached"] == 1
    assert host.in_sandbox("a", "ip -br link").stdout.split()[0] == "lo"
    assert "ve-" not in host.sh("ip -br link").stdout


def test_host_mode_binds_the_name_to_the_host_namespace(host):
    host.ok("cnm_bridge", **NET)
    result = host.ok("cnm_endpoint", network="host", netns=host.sandbox("hostnet"))
    assert result["changed"]
    assert "br-web" in host.in_sandbox("hostnet", "ip -br link").stdout  # sees the host's own interfaces
    assert host.module("cnm_endpoint", network="host", netns=host.sandbox("hostnet"))["changed"] is False
    removed = host.ok("cnm_endpoint", network="host", netns=host.sandbox("hostnet"), state="absent")
    assert removed["changed"] and host.sandbox("hostnet") not in host.namespaces()
    assert "br-web" in host.sh("ip -br link").stdout  # the host itself is untouched


def test_host_mode_refuses_a_name_taken_by_another_namespace(host):
    host.ok("cnm_endpoint", network="none", netns=host.sandbox("other"))
    failed = host.module("cnm_endpoint", network="host", netns=host.sandbox("other"))
    assert failed["failed"] and "option 'netns'" in failed["msg"]


def test_none_mode_leaves_only_loopback_up(host):
    result = host.ok("cnm_endpoint", network="none", netns=host.sandbox("n"))
    assert result["changed"]
    links = json.loads(host.in_sandbox("n", "ip -j link").stdout)
    assert [link["ifname"] for link in links] == ["lo"] and "UP" in links[0]["flags"]
    assert pings(host.sandbox("n"), "127.0.0.1")
    assert host.module("cnm_endpoint", network="none", netns=host.sandbox("n"))["changed"] is False


def test_rerun_repairs_drift(host):
    host.ok("cnm_bridge", **NET)
    attach(host, "a", "b")
    host.in_sandbox("a", "ip addr flush dev eth0 && ip addr add 172.30.0.99/24 dev eth0")
    host.in_sandbox("b", "ip route del default")
    repaired = attach(host, "a", "b")
    assert repaired["changed"]
    assert "172.30.0.2/24" in host.in_sandbox("a", "ip -br addr show eth0").stdout
    assert "172.30.0.99" not in host.in_sandbox("a", "ip -br addr show eth0").stdout
    assert "default via 172.30.0.1" in host.in_sandbox("b", "ip route").stdout
    veth = repaired["endpoints"][0]["host_ifname"]
    host.sh("ip link del %s" % veth)
    again = attach(host, "a", "b")
    assert again["changed"] and again["endpoints"][0]["ipv4_address"] == "172.30.0.2"
    assert pings(host.sandbox("a"), "172.30.0.3")
    assert attach(host, "a", "b")["changed"] is False


def test_failure_in_the_middle_of_an_attach_leaves_no_veth_and_no_lease(host):
    host.ok("cnm_bridge", **NET)
    host.ok("cnm_endpoint", network="none", netns=host.sandbox("a"))
    links_before = host.links()
    # The kernel refuses the sysctl only after the veth exists and has its addresses.
    failed = host.module(
        "cnm_endpoint", network="web", netns=host.sandbox("a"), sysctls={"net.ipv4.conf.IFNAME.rp_filter": "strict"}
    )
    assert (
        failed["failed"]
        and "option 'sysctls'" in failed["msg"]
        and "rp_filter" in failed["msg"]
        and "undid" in failed["msg"]
    )
    assert host.links() == links_before
    assert host.links("a") == ["lo"]
    assert host.store()["endpoints"] == {}


def test_leases_are_stable_released_and_reclaimed(host):
    host.ok("cnm_bridge", ip_range="172.30.0.8/29", **NET)
    first = attach(host, "a", "b", "c")["endpoints"]
    assert [e["ipv4_address"] for e in first] == ["172.30.0.8", "172.30.0.9", "172.30.0.10"]
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("b"), state="absent")
    assert attach(host, "d")["endpoints"][0]["ipv4_address"] == "172.30.0.9"  # released, lowest free again
    host.sh("true")
    subprocess.run(["ip", "netns", "del", host.sandbox("c")], check=True)  # the sandbox vanishes out of band
    result = attach(host, "e")
    assert result["endpoints"][0]["ipv4_address"] == "172.30.0.10"
    assert result["reclaimed"][0]["sandbox"] == "netns:%s" % host.sandbox("c")
    assert attach(host, "a")["endpoints"][0]["ipv4_address"] == "172.30.0.8"


def test_ipv6_endpoint_has_no_dad_delay_and_reaches_the_gateway(host):
    host.ok("cnm_bridge", ipv6_subnet="fd00:30::/64", **NET)
    result = attach(host, "a", "b")
    a, b = result["endpoints"]
    assert (a["ipv6_address"], b["ipv6_address"]) == ("fd00:30::2", "fd00:30::3")
    global_line = [
        line for line in host.in_sandbox("a", "ip -6 -o addr show dev eth0").stdout.splitlines() if "fd00:30::2" in line
    ]
    assert global_line and "tentative" not in global_line[0]
    assert pings(host.sandbox("a"), "fd00:30::3")
    assert "default via fd00:30::1" in host.in_sandbox("a", "ip -6 route").stdout
    assert tcp_connects(host.sandbox("a"), host.sandbox("b"), "fd00:30::3")


def test_sandbox_by_pid_and_by_path(host):
    host.ok("cnm_bridge", **NET)
    host.ok("cnm_endpoint", network="none", netns=host.sandbox("p"))
    proc = subprocess.Popen(["nsenter", "--net=/run/netns/%s" % host.sandbox("p"), "--", "sleep", "300"])
    try:
        by_pid = host.ok("cnm_endpoint", network="web", pid=proc.pid)
        assert by_pid["endpoint"]["ifname"] == "eth0"
        host.ok("cnm_bridge", name="db", subnet="172.31.0.0/24")
        by_path = host.ok("cnm_endpoint", network="db", netns_path="/proc/%d/ns/net" % proc.pid)
        assert by_path["endpoint"]["ifname"] == "eth1"  # a second network in the same sandbox
        routes = host.in_sandbox("p", "ip route").stdout
        assert (
            "default via 172.30.0.1 dev eth0" in routes and "default via 172.31" not in routes
        )  # one default gateway, the first network's
        assert pings(host.sandbox("p"), "172.30.0.1")
        assert host.module("cnm_endpoint", network="web", pid=proc.pid)["changed"] is False
        host.ok("cnm_endpoint", network="web", pid=proc.pid, state="absent")
        assert "eth0" not in host.in_sandbox("p", "ip -br link").stdout
    finally:
        proc.kill()
        proc.wait()


def test_reconciling_subnet_gateway_and_mtu(host):
    host.ok("cnm_bridge", **NET)
    attach(host, "a")
    changed = host.ok("cnm_bridge", name="web", subnet="172.30.0.0/23", gateway="172.30.1.254", mtu=1400)
    assert changed["changed"]
    assert "172.30.1.254/23" in host.sh("ip -br addr show br-web").stdout
    assert "default via 172.30.1.254" in host.in_sandbox("a", "ip route").stdout
    assert "172.30.0.2/23" in host.in_sandbox("a", "ip -br addr show eth0").stdout
    assert pings(host.sandbox("a"), "172.30.1.254")
    refused = host.module("cnm_bridge", name="web", subnet="10.1.0.0/24")
    assert refused["failed"] and "option 'subnet'" in refused["msg"]


def test_options_left_out_keep_the_networks_values(host):
    host.ok("cnm_bridge", mtu=9000, masquerade=False, gateway="172.30.0.254", **NET)
    attach(host, "a")

    for args in (dict(name="web"), dict(NET)):  # the name alone, or the same subnet without its gateway
        predicted = host.module("cnm_bridge", check=True, **args)
        rerun = host.module("cnm_bridge", **args)
        assert (predicted["changed"], rerun["changed"], rerun["changes"]) == (False, False, []), rerun["changes"]
    mtus = [json.loads(host.in_sandbox("a", "ip -j link show eth0").stdout)[0]["mtu"]]
    mtus.append(json.loads(host.sh("ip -j link show br-web").stdout)[0]["mtu"])
    assert mtus == [9000, 9000]
    assert pings(host.sandbox("a"), "172.30.0.254")

    added = host.ok("cnm_bridge", name="web", ipv6_subnet="fd00:30::/64")  # only what is given changes
    assert added["network"]["mtu"] == 9000 and added["network"]["subnet"] == "172.30.0.0/24"
    assert added["network"]["masquerade"] is False and added["network"]["gateway"] == "172.30.0.254"
    after, before = added["diff"]["after"]["network web"], added["diff"]["before"]["network web"]
    assert "fd00:30::1/64" in after["addresses"] and "fd00:30::1/64" not in before["addresses"]
    assert before["mtu"] == after["mtu"] == 9000
    assert pings(host.sandbox("a"), "fd00:30::1")  # the endpoint followed: IPv6 up on both ends
    refused = host.module("cnm_bridge", name="web", ipv6_subnet="")  # an empty text removes a subnet...
    assert refused.get("failed") and "option 'ipv6_subnet'" in refused["msg"]  # ...not one an endpoint is in
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), state="absent")
    removed = host.ok("cnm_bridge", name="web", ipv6_subnet="")
    assert removed["network"]["ipv6_subnet"] is None and removed["network"]["mtu"] == 9000


def test_a_new_network_without_a_subnet_is_refused_naming_the_option(host):
    result = host.module("cnm_bridge", name="web", mtu=1400)

    assert result.get("failed") and "option 'subnet'" in result["msg"], result
    assert host.store().get("networks", {}) == {}


def test_an_endpoint_rerun_without_its_options_keeps_them(host):
    host.ok("cnm_bridge", **NET)
    given = dict(
        ifname="web0",
        ipv4_address="172.30.0.50",
        default_route=False,
        gw_priority=5,
        routes=[dict(dst="10.99.0.0/16", gateway="172.30.0.254")],
        sysctls={"net.ipv4.conf.IFNAME.rp_filter": "2"},
        aliases=["db"],
    )
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), **given)

    predicted = host.module("cnm_endpoint", check=True, network="web", netns=host.sandbox("a"))
    rerun = host.module("cnm_endpoint", network="web", netns=host.sandbox("a"))
    assert (predicted["changed"], rerun["changed"], rerun["changes"]) == (False, False, []), rerun["changes"]
    endpoint = rerun["endpoint"]
    assert (endpoint["ifname"], endpoint["ipv4_address"], endpoint["aliases"]) == ("web0", "172.30.0.50", ["db"])
    routes = host.in_sandbox("a", "ip -4 route show").stdout
    assert "10.99.0.0/16 via 172.30.0.254" in routes and "default" not in routes

    cleared = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), routes=[], default_route=True)
    routes = host.in_sandbox("a", "ip -4 route show").stdout
    assert cleared["changed"] and "10.99.0.0/16" not in routes and "default via 172.30.0.1" in routes
