"""Unit tests: the topology filters (plugins/filter/topology.py), cnm_info results drawn as Graphviz DOT and Mermaid.

The input is a recording: cnm_info on two hosts of the 3-host demo lab (playbooks/demo.yml, then playbooks/overlay.yml)
after drift was made by hand on h2 (an endpoint's MTU changed, a peer's FDB entry deleted, a link with a cnm alias
added, ip_forward turned off), cut to the keys the filters read. Pure rendering: no kernel, no Graphviz needed (the
one test that hands the output to dot is skipped without it).
"""

from __future__ import annotations

import copy
import random
import re
import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from conftest import load_filter

from ansible_collections.cnm.network.plugins.module_utils.info import DRIFT_KINDS

topology = load_filter("topology")
topology_dot = topology.topology_dot
topology_mermaid = topology.topology_mermaid
RED = "#cc0000"


def network(name, driver, subnet, devices, endpoints, **keys):
    return dict(
        dict(name=name, driver=driver, subnet=subnet, ipv6_subnet=None, devices=devices), endpoints=endpoints, **keys
    )


def device(role, name, addresses=(), kind=None, **keys):
    return dict(role=role, name=name, present=True, kind=kind or role, addresses=list(addresses), **keys)


def endpoint(network, netns, ipv4, mac, host_ifname=None, ipv6=None, link="veth"):
    return {
        "network": network,
        "sandbox": "netns:" + netns,
        "netns": netns,
        "ifname": "eth0",
        "host_ifname": host_ifname,
        "link": link,
        "ipv4_address": ipv4,
        "ipv6_address": ipv6,
        "mac_address": mac,
        "name": netns,
        "aliases": [],
        "sandbox_exists": True,
    }


def port(network, netns, ipv4, ipv6):
    return {
        "key": "tcp/*:8080",
        "published": "8080:80/tcp",
        "network": network,
        "sandbox": "netns:" + netns,
        "container_ip": ipv4,
        "container_ipv6": ipv6,
        "host_ip": None,
        "host_port": 8080,
        "container_port": 80,
        "protocol": "tcp",
        "rules_present": True,
    }


def peer(vtep, endpoints, fdb=None):
    macs = [mac for _ip, mac in endpoints] if fdb is None else fdb
    return {
        "network": "ov0",
        "vtep": vtep,
        "recorded": True,
        "endpoints": [{"ip": ip, "mac": mac} for ip, mac in endpoints],
        "flood": True,
        "fdb": macs,
        "neighbours": [{"ip": ip, "mac": mac} for ip, mac in endpoints if mac in macs],
    }


def drift(kind, obj, network=None, sandbox=None, expected=None, found=None):
    return dict(kind=kind, object=obj, network=network, sandbox=sandbox, expected=expected, found=found, message=obj)


def host_report(number, lan_ip, veths, peers, drift_items):
    """cnm_info on lab host h<number> (the addresses and names the recording holds)."""
    h = "cnmtp-h%d" % number
    ov0 = {1: ("10.200.128.0", "10.200.128.1", "80:00", "80:01"), 2: ("10.200.176.0", "10.200.176.1", "b0:00", "b0:01")}
    a1, a2, m1, m2 = ov0[number]
    return {
        "changed": False,
        "networks": [
            network(
                "lan",
                "macvlan",
                "192.0.2.0/24",
                [
                    device("shim", "mvs-6999b006eec", ["192.0.2.20%d/32" % number], kind="macvlan"),
                    device("parent", "eth0", ["192.0.2.1%d/24" % number], kind="veth"),
                ],
                ["netns:%s-mv1" % h],
                parent="eth0",
                mode="bridge",
                host_access_ip="192.0.2.20%d" % number,
                shim_name="mvs-6999b006eec",
            ),
            network(
                "ov0",
                "overlay",
                "10.200.0.0/16",
                [
                    device("bridge", "br-ov0", ["10.200.0.1/16"]),
                    device(
                        "vxlan",
                        "vx-ov0",
                        master="br-ov0",
                        vxlan={"vni": 4200, "local": "192.0.2.1%d" % number, "port": 4789},
                    ),
                ],
                ["netns:%s-app1" % h, "netns:%s-app2" % h],
                vni=4200,
                local_ip="192.0.2.1%d" % number,
                port=4789,
                bridge_name="br-ov0",
                vxlan_name="vx-ov0",
            ),
            network(
                "web",
                "bridge",
                "172.30.0.0/24",
                [device("bridge", "br-web", ["172.30.0.1/24", "fd00:30::1/64"])],
                ["netns:%s-web1" % h, "netns:%s-web2" % h],
                ipv6_subnet="fd00:30::/64",
                bridge_name="br-web",
            ),
        ],
        "endpoints": [
            endpoint("lan", h + "-mv1", lan_ip, "02:42:c0:00:02:%02x" % (0x80 + 8 * (number - 1)), link="macvlan"),
            endpoint("ov0", h + "-app1", a1, "02:42:0a:c8:" + m1, veths[0]),
            endpoint("ov0", h + "-app2", a2, "02:42:0a:c8:" + m2, veths[1]),
            endpoint("web", h + "-web1", "172.30.0.2", "02:42:ac:1e:00:02", veths[2], "fd00:30::2"),
            endpoint("web", h + "-web2", "172.30.0.3", "02:42:ac:1e:00:03", veths[3], "fd00:30::3"),
        ],
        "ports": [port("web", h + "-web1", "172.30.0.2", "fd00:30::2")],
        "peers": peers,
        "drift": drift_items,
    }


H3_ENDPOINTS = [("10.200.80.0", "02:42:0a:c8:50:00"), ("10.200.80.1", "02:42:0a:c8:50:01")]
H1_ENDPOINTS = [("10.200.128.0", "02:42:0a:c8:80:00"), ("10.200.128.1", "02:42:0a:c8:80:01")]
H2_ENDPOINTS = [("10.200.176.0", "02:42:0a:c8:b0:00"), ("10.200.176.1", "02:42:0a:c8:b0:01")]
RECORDED = {
    "h1": host_report(
        1,
        "192.0.2.128",
        ["ve-80d7ba35011", "ve-672637eda58", "ve-bcfbc67163a", "ve-889306b16a1"],
        [peer("192.0.2.12", H2_ENDPOINTS), peer("192.0.2.13", H3_ENDPOINTS)],
        [],
    ),
    "h2": host_report(
        2,
        "192.0.2.136",
        ["ve-1d5b74fa653", "ve-502c9e21acd", "ve-07fec084166", "ve-a09814400a2"],
        [peer("192.0.2.11", H1_ENDPOINTS, fdb=["02:42:0a:c8:80:01"]), peer("192.0.2.13", H3_ENDPOINTS)],
        [
            drift("host_sysctl", "sysctl net.ipv4.ip_forward", expected="1", found="0"),
            drift(
                "endpoint_mtu",
                "interface eth0 in netns:cnmtp-h2-web2",
                "web",
                "netns:cnmtp-h2-web2",
                expected=1500,
                found=1400,
            ),
            drift(
                "peer_fdb_missing",
                "vxlan vx-ov0 fdb 02:42:0a:c8:80:00 dst 192.0.2.11",
                "ov0",
                expected={"mac": "02:42:0a:c8:80:00", "vtep": "192.0.2.11"},
            ),
            drift("unclaimed_device", "link ghost0", "ghost", found={"kind": "veth", "alias": "cnm:network:ghost"}),
        ],
    ),
}


# --- reading the output back -----------------------------------------------------------------

DOT_QUOTED = r'"(?:[^"\\]|\\.)*"'
DOT_ATTRIBUTE = re.compile(r"(\w+)=(%s)" % DOT_QUOTED)


def dot_unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda match: match.group(1), text[1:-1])


def dot_label(quoted: str) -> list:
    """The lines of a DOT label: split at \\n, then backslash and quote unescaped."""
    return [dot_unquote('"%s"' % line) for line in quoted[1:-1].split("\\n")]


def dot_parse(text: str) -> tuple:
    """{id: attributes} of the nodes and clusters, and [(tail, head, attributes)] of the edges."""
    nodes, clusters, edges = {}, {}, []
    current = []
    for line in text.splitlines():
        if match := re.fullmatch(r"\s*subgraph (%s) \{" % DOT_QUOTED, line):
            current.append(dot_unquote(match.group(1)))
        elif match := re.fullmatch(r"\s*graph \[(.*)\];", line):
            if current:
                clusters[current[-1]] = dict(DOT_ATTRIBUTE.findall(match.group(1)))
        elif re.fullmatch(r"\s*\}", line):
            if current:
                current.pop()
        elif match := re.fullmatch(r"\s*(%s) -> (%s) \[(.*)\];" % (DOT_QUOTED, DOT_QUOTED), line):
            attributes = dict(DOT_ATTRIBUTE.findall(match.group(3)))
            edges.append((dot_unquote(match.group(1)), dot_unquote(match.group(2)), attributes))
        elif match := re.fullmatch(r"\s*(%s) \[(.*)\];" % DOT_QUOTED, line):
            nodes[dot_unquote(match.group(1))] = dict(
                DOT_ATTRIBUTE.findall(match.group(2)), cluster=current[-1] if current else None
            )
    return nodes, clusters, edges


MERMAID_NODE = re.compile(r'\s*(n\d+)(?:\(\[|\{\{|\[|\(|>)"([^"]*)"(?:\]\)|\}\}|\]|\))')
MERMAID_LINK = re.compile(r'\s*(n\d+) (---|==>|-\.-)(?:\|"([^"]*)"\|)? (n\d+)')


def mermaid_parse(text: str) -> tuple:
    """{name: label lines} of the nodes, [(tail, link, label, head)] of the links, the names of class drift, and the
    numbers of the red links."""
    nodes, links, red, red_links = {}, [], set(), set()
    for line in text.splitlines():
        if match := MERMAID_NODE.fullmatch(line):
            nodes[match.group(1)] = match.group(2).split("<br>")
        elif match := MERMAID_LINK.fullmatch(line):
            links.append(match.groups())
        elif match := re.fullmatch(r"\s*class (\S+) drift", line):
            red |= set(match.group(1).split(","))
        elif match := re.fullmatch(r"\s*linkStyle (\S+) stroke:%s.*" % RED, line):
            red_links |= {int(number) for number in match.group(1).split(",")}
    return nodes, links, red, red_links


def all_endpoints(reports: dict):
    for host, report in sorted(reports.items()):
        for item in report["endpoints"]:
            yield host, item


# --- the picture -------------------------------------------------------------------------------


def test_every_endpoint_appears_with_its_addresses_and_mac_in_dot():
    nodes, clusters, edges = dot_parse(topology_dot(RECORDED))
    for host, item in all_endpoints(RECORDED):
        node_id = "endpoint/%s/%s/%s" % (host, item["network"], item["sandbox"])
        label = dot_label(nodes[node_id]["label"])
        assert label[0] == item["sandbox"]
        assert label[1] == "eth0 %s" % item["ipv4_address"]
        if item["ipv6_address"]:
            assert item["ipv6_address"] in label
        assert item["mac_address"] in label
        assert nodes[node_id]["cluster"] == "cluster/network/%s/%s" % (host, item["network"])
    # a veth endpoint hangs off its bridge by the host end of the veth, a macvlan one off the host's parent
    assert ("device/h1/br-web", "endpoint/h1/web/netns:cnmtp-h1-web1") in [(t, h) for t, h, _a in edges]
    attach = {(tail, head): dot_unquote(a.get("label", '""')) for tail, head, a in edges}
    assert attach[("device/h1/br-web", "endpoint/h1/web/netns:cnmtp-h1-web1")] == "ve-bcfbc67163a"
    assert attach[("device/h2/eth0", "endpoint/h2/lan/netns:cnmtp-h2-mv1")] == "macvlan"
    assert nodes["device/h2/eth0"]["cluster"] == "cluster/host/h2"  # the parent is the host's, not one network's
    assert attach[("device/h1/br-ov0", "device/h1/vx-ov0")] == ""  # the VXLAN device is a port of the bridge
    # the published port points at its endpoint
    assert ("port/h1/tcp%2F*:8080", "endpoint/h1/web/netns:cnmtp-h1-web1") in attach
    assert dot_label(nodes["port/h1/tcp%2F*:8080"]["label"]) == ["8080:80/tcp"]
    assert dot_label(clusters["cluster/network/h1/web"]["label"]) == ["web (bridge)", "172.30.0.0/24, fd00:30::/64"]


def test_every_endpoint_appears_with_its_addresses_in_mermaid():
    nodes, links, red, _red_links = mermaid_parse(topology_mermaid(RECORDED))
    labels = list(nodes.values())
    for _host, item in all_endpoints(RECORDED):
        expected = [item["sandbox"], "eth0 %s" % item["ipv4_address"]]
        expected += [item["ipv6_address"]] if item["ipv6_address"] else []
        expected.append(item["mac_address"])
        assert [lines for lines in labels if lines[: len(expected)] == expected], item["sandbox"]


def test_the_overlay_is_one_cluster_joined_to_each_host_s_vtep_and_peers_are_one_edge_per_pair():
    nodes, clusters, edges = dot_parse(topology_dot(RECORDED))
    assert [name for name in clusters if name.startswith("cluster/overlay/")] == ["cluster/overlay/ov0/4200"]
    members = {(t, h): a for t, h, a in edges if t == "segment/ov0/4200"}
    assert sorted(members) == [("segment/ov0/4200", "device/h1/vx-ov0"), ("segment/ov0/4200", "device/h2/vx-ov0")]
    assert dot_unquote(members[("segment/ov0/4200", "device/h2/vx-ov0")]["label"]) == "VTEP 192.0.2.12"
    peers = sorted((t, h) for t, h, a in edges if a.get("style") == '"dashed"')
    # h1 and h2 list each other: one edge; both list h3, which is not in the input: a node of its own
    assert peers == [
        ("device/h1/vx-ov0", "device/h2/vx-ov0"),
        ("device/h1/vx-ov0", "outside/192.0.2.13"),
        ("device/h2/vx-ov0", "outside/192.0.2.13"),
    ]
    assert dot_label(nodes["outside/192.0.2.13"]["label"]) == ["VTEP 192.0.2.13", "not in the diagram"]


def test_drift_is_red_where_it_is_and_nowhere_else():
    nodes, clusters, edges = dot_parse(topology_dot(RECORDED))
    red_nodes = {name for name, attributes in nodes.items() if attributes.get("color") == '"%s"' % RED}
    assert red_nodes == {"endpoint/h2/web/netns:cnmtp-h2-web2", "unclaimed/h2/ghost0", "drift/h2"}
    assert dot_label(nodes["endpoint/h2/web/netns:cnmtp-h2-web2"]["label"])[-1] == "drift: endpoint_mtu"
    assert dot_label(nodes["drift/h2"]["label"]) == ["drift", "host_sysctl: sysctl net.ipv4.ip_forward"]
    assert nodes["unclaimed/h2/ghost0"]["cluster"] == "cluster/host/h2"
    red_edges = [(t, h, a) for t, h, a in edges if a.get("color") == '"%s"' % RED]
    assert [(t, h) for t, h, _a in red_edges] == [("device/h1/vx-ov0", "device/h2/vx-ov0")]  # h2 lacks h1's FDB entry
    assert dot_unquote(red_edges[0][2]["label"]) == "drift: peer_fdb_missing"
    assert not [name for name, attributes in clusters.items() if attributes.get("color") == '"%s"' % RED]
    assert dot_label(clusters["cluster/host/h2"]["label"]) == ["host h2", "drift: 4"]
    assert dot_label(clusters["cluster/host/h1"]["label"]) == ["host h1"]

    mermaid_nodes, links, red, red_links = mermaid_parse(topology_mermaid(RECORDED))
    assert sorted(mermaid_nodes[name][0] for name in red) == ["drift", "ghost0", "netns:cnmtp-h2-web2"]
    assert [links[number][2] for number in sorted(red_links)] == ["drift: peer_fdb_missing"]


def test_drift_of_devices_ports_networks_and_missing_things_is_red():
    reports = copy.deepcopy(RECORDED)
    h1 = reports["h1"]
    h1["networks"][2]["devices"][0]["present"] = False
    h1["ports"][0]["rules_present"] = False
    h1["endpoints"][1]["sandbox_exists"] = False
    h1["peers"][1]["recorded"] = False
    h1["drift"] = [
        drift("network_device_missing", "bridge br-web", "web"),
        drift("port_rules_missing", "port tcp/*:8080", "web", "netns:cnmtp-h1-web1"),
        drift("network_rules_missing", "network ov0", "ov0"),
        drift("endpoint_sandbox_missing", "endpoint ov0|netns:cnmtp-h1-app1", "ov0", "netns:cnmtp-h1-app1"),
        drift("peer_neighbour_stale", "vxlan vx-ov0 neighbour 10.200.80.1", "ov0", found={"ip": "10.200.80.1"}),
        drift("resolver_not_running", "resolver", "ov0"),
        drift("netns_stub", "netns cnmtp-h1-x", sandbox="netns:cnmtp-h1-x"),
    ]
    nodes, clusters, edges = dot_parse(topology_dot(reports))
    red = '"%s"' % RED
    assert dot_label(nodes["device/h1/br-web"]["label"])[-2:] == ["missing", "drift: network_device_missing"]
    assert dot_label(nodes["port/h1/tcp%2F*:8080"]["label"])[-2:] == ["rules missing", "drift: port_rules_missing"]
    assert dot_label(nodes["endpoint/h1/ov0/netns:cnmtp-h1-app1"]["label"])[-2:] == [
        "sandbox missing",
        "drift: endpoint_sandbox_missing",
    ]
    for name in ("device/h1/br-web", "port/h1/tcp%2F*:8080", "endpoint/h1/ov0/netns:cnmtp-h1-app1"):
        assert nodes[name]["color"] == red, name
    assert clusters["cluster/network/h1/ov0"]["color"] == red
    assert dot_label(clusters["cluster/network/h1/ov0"]["label"])[-1] == (
        "drift: network_rules_missing, resolver_not_running"
    )
    outside = [a for t, h, a in edges if (t, h) == ("device/h1/vx-ov0", "outside/192.0.2.13")][0]
    assert outside["color"] == red
    assert dot_label(outside["label"]) == ["h1: only in the FDB", "drift: peer_neighbour_stale"]
    assert dot_label(nodes["drift/h1"]["label"]) == ["drift", "netns_stub: netns cnmtp-h1-x"]


def test_a_peer_listed_by_one_side_only_is_red():
    reports = copy.deepcopy(RECORDED)
    reports["h2"]["peers"] = [item for item in reports["h2"]["peers"] if item["vtep"] != "192.0.2.11"]
    reports["h2"]["drift"] = []
    nodes, clusters, edges = dot_parse(topology_dot(reports))
    pair = [a for t, h, a in edges if (t, h) == ("device/h1/vx-ov0", "device/h2/vx-ov0")][0]
    assert pair["color"] == '"%s"' % RED and dot_label(pair["label"]) == ["h2 lacks the peer"]
    # without h2's peers gathered, nothing says that it should list h1
    del reports["h2"]["peers"]
    nodes, clusters, edges = dot_parse(topology_dot(reports))
    pair = [a for t, h, a in edges if (t, h) == ("device/h1/vx-ov0", "device/h2/vx-ov0")][0]
    assert "color" not in pair or pair["color"] != '"%s"' % RED


def test_an_overlay_of_the_same_name_with_another_vni_is_another_cluster():
    reports = copy.deepcopy(RECORDED)
    reports["h2"]["networks"][1]["vni"] = 4201
    nodes, clusters, edges = dot_parse(topology_dot(reports))
    assert sorted(name for name in clusters if name.startswith("cluster/overlay/")) == [
        "cluster/overlay/ov0/4200",
        "cluster/overlay/ov0/4201",
    ]


def test_what_was_not_gathered_is_not_drawn_and_endpoints_alone_still_are():
    reports = {host: {"endpoints": report["endpoints"], "drift": []} for host, report in RECORDED.items()}
    nodes, clusters, edges = dot_parse(topology_dot(reports))
    assert sorted(name for name in nodes if name.startswith("endpoint/")) == sorted(
        "endpoint/%s/%s/%s" % (host, item["network"], item["sandbox"]) for host, item in all_endpoints(RECORDED)
    )
    assert not [name for name in nodes if name.startswith(("device/", "port/", "segment/"))]
    assert edges == []
    assert dot_label(clusters["cluster/network/h1/web"]["label"]) == ["web"]


def shuffled(reports: dict, seed: int) -> dict:
    """The same reports with hosts and every list in another order."""
    rng = random.Random(seed)
    hosts = list(reports)
    rng.shuffle(hosts)
    result = {}
    for host in hosts:
        report = copy.deepcopy(reports[host])
        for key in ("networks", "endpoints", "ports", "peers", "drift"):
            rng.shuffle(report[key])
        for item in report["networks"]:
            rng.shuffle(item["devices"])
        result[host] = report
    return result


@pytest.mark.parametrize("render", [topology_dot, topology_mermaid])
def test_the_output_depends_on_the_reports_only_not_on_their_order(render):
    expected = render(RECORDED)
    assert render(copy.deepcopy(RECORDED)) == expected
    for seed in range(5):
        assert render(shuffled(RECORDED, seed)) == expected


NASTY = 'we"b\\1/%x#<b>&|`\nend'


def nasty_reports() -> dict:
    """Names with quotes, backslashes, slashes, percent signs, Mermaid's entity and markup characters, a newline."""
    return {
        'h"1\\': {
            "networks": [network(NASTY, "bridge", "172.31.0.0/24", [device("bridge", 'br"\\x')], ["netns:" + NASTY])],
            "endpoints": [endpoint(NASTY, NASTY, "172.31.0.2", "02:42:ac:1f:00:02", 'v"e\\')],
            "ports": [],
            "peers": [],
            "drift": [drift("endpoint_mtu", "x", NASTY, "netns:" + NASTY)],
        },
        'h"1/': {"endpoints": [endpoint("n", "a", "10.0.0.2", "02:42:0a:00:00:02")], "drift": []},
    }


def test_dot_ids_and_labels_are_quoted_and_escaped():
    text = topology_dot(nasty_reports(), title='say "hi" \\')
    nodes, clusters, edges = dot_parse(text)
    one_line = NASTY.replace("\n", " ")
    sandbox = "netns:" + one_line
    endpoint_ids = [name for name in nodes if name.startswith("endpoint/")]
    # each part percent-encoded: the hosts 'h"1\' and 'h"1/' stay apart, no backslash ends an ID
    assert sorted(endpoint_ids) == [
        "endpoint/h%221%2F/n/netns:a",
        "endpoint/h%221%5C/"
        + "/".join(
            part.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C").replace('"', "%22")
            for part in (one_line, sandbox)
        ),
    ]
    label = dot_label(nodes[sorted(endpoint_ids)[1]]["label"])
    assert label[0] == sandbox and label[-1] == "drift: endpoint_mtu"
    assert dot_label(clusters["cluster/host/h%221%5C"]["label"]) == ['host h"1\\', "drift: 1"]
    assert [dot_unquote(a["label"]) for t, h, a in edges] == ['v"e\\']
    assert 'label="say \\"hi\\" \\\\", labelloc=t' in text


@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("name", ["recorded", "nasty"])
def test_graphviz_reads_the_dot_back(name):
    reports = RECORDED if name == "recorded" else nasty_reports()
    text = topology_dot(reports, title='say "hi" \\')
    canon = subprocess.run(["dot", "-Tcanon"], input=text, capture_output=True, text=True, check=True, timeout=60)
    assert canon.stderr == ""
    nodes, _clusters, edges = dot_parse(text)
    # Graphviz has every node and edge the text has (none merged by a broken quote, none made up)
    plain = subprocess.run(["dot", "-Tplain"], input=text, capture_output=True, text=True, check=True, timeout=60)
    lines = plain.stdout.splitlines()
    assert sum(line.startswith("node ") for line in lines) == len(nodes)
    assert sum(line.startswith("edge ") for line in lines) == len(edges)


def test_mermaid_labels_are_quoted_with_entity_codes():
    text = topology_mermaid(nasty_reports(), title='a: "b"')
    assert text.startswith('---\ntitle: "a: \\"b\\""\n---\nflowchart LR\n')
    nodes, links, red, red_links = mermaid_parse(text)
    encoded = "we#34;b\\1/%x#35;#60;b#62;#38;#124;#96; end"
    assert ["netns:" + encoded, "eth0 172.31.0.2", "02:42:ac:1f:00:02", "drift: endpoint_mtu"] in nodes.values()
    assert [label for _t, _l, label, _h in links] == ["v#34;e\\"]
    assert 'subgraph s0["host h#34;1/"]' in text and 'subgraph s3["host h#34;1\\<br>drift: 1"]' in text
    for line in text.splitlines()[4:]:  # every quoted string is one token: an even number of quotes, none escaped
        assert line.count('"') % 2 == 0, line
    assert len(red) == 1


def test_the_filters_are_registered():
    assert topology.FilterModule().filters() == {"topology_dot": topology_dot, "topology_mermaid": topology_mermaid}


@pytest.mark.parametrize(
    "reports, message",
    [
        ([RECORDED["h1"]], "input must be a dict of host name -> cnm_info result, not list"),
        ({"h1": "x"}, "the result of host h1 is not a dict (str)"),
        ({"h1": {"failed": True, "msg": "boom"}}, "cnm_info failed on host h1: boom"),
        ({"h1": {"changed": False}}, "the result of host h1 is not a cnm_info result"),
        ({"h1": {"endpoints": "x"}}, "endpoints of host h1 must be a list of dicts"),
    ],
)
@pytest.mark.parametrize("render", [topology_dot, topology_mermaid])
def test_bad_input_fails_naming_the_host(render, reports, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        render(reports)


def test_the_device_drift_kinds_are_cnm_infos_own():
    # The filter keeps its own copy (a controller plugin should not import the module's core); it must not drift.
    assert topology.DEVICE_DRIFT <= set(DRIFT_KINDS)
    assert all(kind.startswith(("network_", "vxlan_")) for kind in topology.DEVICE_DRIFT)
