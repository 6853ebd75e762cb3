"""The firewall layer on the real kernel: masquerade, internal networks, ICC, isolation, drift.

Beside the throwaway host, the ``world`` fixture (conftest) gives a LAN namespace (203.0.113.2, the
host's upstream router) and the internet behind it (198.51.100.2). Servers print the address they
see a connection come from.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import INTERNET, LAN, pings, sh


def peer_seen(client_ns: str, server_ns: str, address: str, port: int = 9000) -> str:
    """Connect from client_ns to a server in server_ns; return the source address the server saw ('' if none)."""
    server = subprocess.Popen(
        [
            "nsenter",
            "--net=/run/netns/%s" % server_ns,
            "--",
            sys.executable,
            "-c",
            "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('%s',%d));"
            "s.listen(1);"
            "s.settimeout(8);c,a=s.accept();print(a[0],flush=True);c.close()" % (address, port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        client = (
            "import socket,time\nfor i in range(40):\n    try:\n        "
            "socket.create_connection((%r,%d),timeout=1).close();break\n"
            "    except OSError:\n        time.sleep(0.1)\n" % (address, port)
        )
        sh("%s -c \"%s\"" % (sys.executable, client), netns=client_ns, check=False, timeout=20)
        out, _err = server.communicate(timeout=15)
        return out.strip()
    except subprocess.TimeoutExpired:
        return ""
    finally:
        server.kill()
        server.wait()


def attach(host, network: str, *sandboxes: str) -> list:
    result = host.ok("cnm_endpoint", network=network, endpoints=[dict(netns=host.sandbox(s)) for s in sandboxes])
    return [e["ipv4_address"] for e in result["endpoints"]]


def test_masquerade_hides_endpoints_behind_the_host_address(host, world):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    attach(host, "web", "a")
    assert peer_seen(host.sandbox("a"), world[1], INTERNET) == "203.0.113.1"
    assert pings(host.sandbox("a"), LAN)


def test_without_masquerade_the_lan_sees_the_endpoint_address(host, world):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", masquerade=False)
    (address,) = attach(host, "web", "a")
    assert not pings(host.sandbox("a"), LAN)  # the LAN has no route back to 172.30.0.0/24
    sh("ip route add 172.30.0.0/24 via 203.0.113.1", netns=world[0])
    assert peer_seen(host.sandbox("a"), world[0], LAN) == address


def test_internal_network_reaches_nothing_outside(host, world):
    host.ok("cnm_bridge", name="vault", subnet="172.31.9.0/24", internal=True)
    a, b = attach(host, "vault", "a", "b")
    sh("ip route add 172.31.9.0/24 via 203.0.113.1", netns=world[0])
    assert "default" not in host.in_sandbox("a", "ip route").stdout
    assert pings(host.sandbox("a"), b)  # its own endpoints still talk
    host.in_sandbox("a", "ip route add default via 172.31.9.1")  # even a route by hand gets nowhere
    assert not pings(host.sandbox("a"), LAN)
    assert not pings(world[0], a)


def test_isolation_matrix_between_two_networks(host, world):
    host.ok("cnm_bridge", name="neta", subnet="10.61.0.0/24")
    host.ok("cnm_bridge", name="netb", subnet="10.62.0.0/24")
    (a,) = attach(host, "neta", "a")
    (b,) = attach(host, "netb", "b")
    matrix = {
        "a->b": pings(host.sandbox("a"), b),
        "b->a": pings(host.sandbox("b"), a),
        "a->gateway": pings(host.sandbox("a"), "10.61.0.1"),
        "b->gateway": pings(host.sandbox("b"), "10.62.0.1"),
        "a->lan": pings(host.sandbox("a"), LAN),
        "b->internet": pings(host.sandbox("b"), INTERNET),
    }
    assert matrix == {
        "a->b": False,
        "b->a": False,
        "a->gateway": True,
        "b->gateway": True,
        "a->lan": True,
        "b->internet": True,
    }
    host.ok("cnm_bridge", name="netb", state="absent", force=True)  # the rules of a removed network go with it
    assert "netb" not in host.ruleset() and "isolation" not in host.ruleset()


def test_icc_off_blocks_endpoints_on_the_same_bridge(host, world):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", icc=False)
    a, b = attach(host, "web", "a", "b")
    assert not pings(host.sandbox("a"), b)
    assert not pings(host.sandbox("b"), a)
    assert pings(host.sandbox("a"), "172.30.0.1")
    assert pings(host.sandbox("a"), LAN)
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", icc=True)
    assert pings(host.sandbox("a"), b)


def test_rules_are_commented_with_their_owner_and_rerun_changes_nothing(host):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_bridge", name="db", subnet="172.31.0.0/24", icc=False)
    listing = json.loads(host.sh("nft -j list ruleset").stdout)["nftables"]
    comments = [item["rule"]["comment"] for item in listing if "rule" in item]
    assert comments and all(
        c.startswith(("cnm network ", "cnm ports accept published", "cnm forward accept replies")) for c in comments
    )
    assert any("db isolation" in c for c in comments) and any("web masquerade" in c for c in comments)
    again = host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    assert again["changed"] is False


def test_out_of_band_delete_of_a_cnm_rule_is_repaired_by_a_rerun(host, world):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    attach(host, "web", "a")
    before = host.ruleset()
    listing = json.loads(host.sh("nft -j -a list chain inet cnm postrouting").stdout)["nftables"]
    handle = next(item["rule"]["handle"] for item in listing if "rule" in item)
    host.sh("nft delete rule inet cnm postrouting handle %d" % handle)
    assert not pings(host.sandbox("a"), INTERNET)  # no masquerade: the internet cannot answer
    repaired = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))  # any module run repairs the table
    assert repaired["changed"] and host.ruleset() == before
    assert pings(host.sandbox("a"), INTERNET)


def test_a_firewalld_style_reload_of_another_table_leaves_ours_alone(host, world):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    attach(host, "web", "a")
    script = (
        "table inet firewalld {\n chain filter_FORWARD { type filter hook forward priority 10; policy accept; }\n}\n"
    )
    host.sh("nft -f - <<'EOF'\n%sEOF" % script)
    host.sh("nft flush table inet firewalld && nft delete table inet firewalld && nft -f - <<'EOF'\n%sEOF" % script)
    assert host.module("cnm_bridge", name="web", subnet="172.30.0.0/24")["changed"] is False
    assert "table inet firewalld" in host.ruleset()  # never touched
    assert pings(host.sandbox("a"), INTERNET)


def test_check_mode_predicts_rule_changes_and_changes_nothing(host):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))
    before = host.snapshot()
    predicted = host.module("cnm_bridge", check=True, name="web", subnet="172.30.0.0/24", icc=False, masquerade=False)
    assert host.snapshot() == before
    assert any("nft command" in c for c in predicted["changes"]) and any(
        "isolated (icc off)" in c for c in predicted["changes"]
    )
    assert any("masquerade" in c for c in predicted["diff"]["before"]["firewall"]["inet postrouting"])
    assert (
        predicted["diff"]["after"]["firewall"]["inet postrouting"] == []
    )  # one network, no masquerade: only its inbound rules
    real = host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", icc=False, masquerade=False)
    assert (real["changed"], real["changes"], real["diff"]) == (
        predicted["changed"],
        predicted["changes"],
        predicted["diff"],
    )


def test_absent_removes_the_tables_and_restores_forwarding(host):
    assert host.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    empty = host.snapshot()
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    assert host.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert "table inet cnm" in host.ruleset()
    host.ok("cnm_bridge", name="web", state="absent")
    assert host.snapshot() == empty  # no table, no rule, forwarding back to 0, nothing in the store


DOCKER_FORWARD = (
    "iptables -w -N DOCKER-USER && iptables -w -A DOCKER-USER -j RETURN && iptables -w -P FORWARD DROP "
    "&& iptables -w -A FORWARD -j DOCKER-USER && iptables -w -N DOCKER-FORWARD && iptables -w -A FORWARD -j "
    "DOCKER-FORWARD"
)


def test_docker_forward_drop_policy_is_passed_in_docker_user_and_undone(host, world):
    host.sh(DOCKER_FORWARD)
    docker_rules = host.sh("iptables -w -S").stdout
    host.ok("cnm_bridge", name="neta", subnet="10.61.0.0/24")
    host.ok("cnm_bridge", name="netb", subnet="10.62.0.0/24")
    (a,) = attach(host, "neta", "a")
    result = host.ok("cnm_endpoint", network="netb", netns=host.sandbox("b"))
    b = result["endpoint"]["ipv4_address"]
    user = host.sh("iptables -w -S DOCKER-USER").stdout
    assert user.count("cnm network neta pass") == 3 and user.count("cnm network netb pass") == 3
    assert user.strip().splitlines()[-1] == "-A DOCKER-USER -j RETURN"  # Docker's own rule is still there, last
    assert pings(host.sandbox("a"), LAN) and pings(host.sandbox("b"), INTERNET)
    assert not pings(host.sandbox("a"), b) and not pings(host.sandbox("b"), a)  # our isolation still holds
    assert host.module("cnm_endpoint", network="netb", netns=host.sandbox("b"))["changed"] is False
    host.ok("cnm_bridge", name="neta", state="absent", force=True)
    host.ok("cnm_bridge", name="netb", state="absent", force=True)
    assert host.sh("iptables -w -S").stdout == docker_rules  # exactly Docker's rules again


def test_a_native_forward_drop_chain_gets_pass_rules_that_go_with_the_network(host, world):
    host.sh(
        "nft add table inet strict && nft add chain inet strict forward_filter '{ type filter hook forward priority 5; "
        "policy drop; }'"
    )
    strict = host.sh("nft list table inet strict").stdout
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    result = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))
    assert pings(host.sandbox("a"), INTERNET)
    assert host.sh("nft list chain inet strict forward_filter").stdout.count("cnm network web pass") == 3
    assert result["changed"] and host.module("cnm_endpoint", network="web", netns=host.sandbox("a"))["changed"] is False
    host.ok("cnm_bridge", name="web", state="absent", force=True)
    assert host.sh("nft list table inet strict").stdout == strict
