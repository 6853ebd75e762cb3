"""The resolver's pure parts: the options' checks, the records, aardvark-dns's files and the resolv.conf files
rendered from a store, the firewall's guard of the gateways. (The process and real queries are in
tests/integration/test_dns.py.)"""

from __future__ import annotations

import pytest

from ansible_collections.cnm.network.plugins.module_utils import dns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.firewall import render, render_dns_guard
from ansible_collections.cnm.network.plugins.module_utils.model import BridgeNetwork, OverlayNetwork, parse_dns
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord, EndpointRecord, NetworkRecord

WEB = BridgeRecord(
    subnet="172.30.0.0/24",
    gateway="172.30.0.1",
    ipv6_subnet="fd00:30::/64",
    ipv6_gateway="fd00:30::1",
    mtu=1500,
    bridge_name="br-web",
    dns=True,
)
DB = BridgeRecord(subnet="172.31.0.0/24", gateway="172.31.0.1", mtu=1500, bridge_name="br-db", dns=True)
PLAIN = BridgeRecord(subnet="172.32.0.0/24", gateway="172.32.0.1", mtu=1500, bridge_name="br-plain")


def endpoint(network: str, sandbox: str, v4: str, v6: str | None = None, name=None, aliases=()) -> EndpointRecord:
    return EndpointRecord(
        network, sandbox, "eth0", "veth", ipv4_address=v4, ipv6_address=v6, name=name, aliases=aliases
    )


def state(*endpoints: EndpointRecord, **networks) -> dict:
    return {"networks": networks or {"web": WEB, "db": DB}, "endpoints": {e.key: e for e in endpoints}}


# ---- options and records ----


def test_dns_options_parse_and_deduplicate():
    assert parse_dns({}) == (False, ())
    dns_on, servers = parse_dns({"dns": True, "dns_servers": ["192.0.2.53", "2001:db8::53", "192.0.2.53"]})
    assert dns_on and [str(s) for s in servers] == ["192.0.2.53", "2001:db8::53"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"dns": "yes"}, "option 'dns': yes must be true or false"),
        ({"dns": True, "dns_servers": "192.0.2.53"}, "option 'dns_servers': 192.0.2.53 must be a list"),
        ({"dns": True, "dns_servers": ["dns.example"]}, "option 'dns_servers[0]': dns.example is not an IP"),
        ({"dns": True, "dns_servers": ["::"]}, "option 'dns_servers[0]': :: is not the address of a DNS server"),
        ({"dns": True, "dns_servers": ["224.0.0.251"]}, "is not the address of a DNS server"),
        ({"dns_servers": ["192.0.2.53"]}, "option 'dns_servers': ['192.0.2.53'] needs dns: true"),
        ({"dns": True, "dns_servers": ["192.0.2.%d" % n for n in range(1, 5)]}, "lists more than 3 servers"),
    ],
)
def test_bad_dns_options_name_the_option(params, message):
    with pytest.raises(CnmError) as caught:
        parse_dns(params)
    assert message in str(caught.value)


def test_the_record_keeps_dns_and_writes_it_only_when_set():
    network = BridgeNetwork.from_params(
        {"name": "web", "subnet": "172.30.0.0/24", "dns": True, "dns_servers": ["192.0.2.53"]}
    )
    record = network.to_record()
    assert (record.dns, record.dns_servers) == (True, ("192.0.2.53",))
    data = record.to_dict()
    assert (data["dns"], data["dns_servers"]) == (True, ["192.0.2.53"])
    assert NetworkRecord.from_dict(data) == record
    assert BridgeNetwork.from_record("web", record) == network
    plain = BridgeNetwork.from_params({"name": "web", "subnet": "172.30.0.0/24"}).to_record().to_dict()
    assert "dns" not in plain and "dns_servers" not in plain  # older stores read back and re-save unchanged


# ---- aardvark-dns's files ----


def test_each_network_with_dns_gets_a_file_of_its_gateways_and_endpoints():
    a = endpoint("web", "netns:a", "172.30.0.2", "fd00:30::2", name="Front", aliases=("www", "front"))
    b = endpoint("web", "pid:4242", "172.30.0.3")
    c = endpoint("db", "netns:a", "172.31.0.2", name="front")
    d = endpoint("plain", "netns:d", "172.32.0.2", name="nobody-resolves-me")
    files = dns.render(state(a, b, c, d, web=WEB, db=DB, plain=PLAIN))
    assert sorted(files) == ["db", "web"]
    ident = dns.sandbox_id("netns:a")
    assert files["web"] == (
        "172.30.0.1,fd00:30::1\n"
        "%s 172.30.0.2 fd00:30::2 front,front.web,www\n"
        "%s 172.30.0.3  %s\n" % (ident, dns.sandbox_id("pid:4242"), dns.sandbox_id("pid:4242"))
    )
    # the same ID on both networks: aardvark-dns then answers a's queries with the names of both
    assert files["db"] == "172.31.0.1\n%s 172.31.0.2  front,front.db\n" % ident


def test_a_network_s_own_servers_follow_its_gateways():
    web = BridgeRecord(subnet="10.0.0.0/24", gateway="10.0.0.1", bridge_name="br-x", dns=True, dns_servers=("9.9.9.9",))
    assert dns.render(state(web=web)) == {"web": "10.0.0.1 9.9.9.9\n"}


def test_no_network_with_dns_means_no_file():
    assert dns.render(state(endpoint("plain", "netns:a", "172.32.0.2", name="a"), plain=PLAIN)) == {}


def test_named_namespaces_get_a_resolv_conf_of_the_gateways_they_reach():
    a = endpoint("web", "netns:a", "172.30.0.2", "fd00:30::2", name="front")
    a_db = endpoint("db", "netns:a", "172.31.0.2")
    b = endpoint("web", "netns:b", "172.30.0.3")
    c = endpoint("web", "container:docker/c", "172.30.0.4", name="c")  # a container's runtime owns its resolv.conf
    d = endpoint("plain", "netns:d", "172.32.0.2")
    confs = dns.render_resolv_confs(state(a, a_db, b, c, d, web=WEB, db=DB, plain=PLAIN))
    assert confs == {
        "a": dns.RESOLV_MARK + "db, web\nnameserver 172.31.0.1\nnameserver 172.30.0.1\nnameserver fd00:30::1\n",
        "b": dns.RESOLV_MARK + "web\nnameserver 172.30.0.1\n",
    }


def test_the_diff_view_shows_each_network_s_records():
    files = {"web": "172.30.0.1\nID 172.30.0.2  front\n"}
    assert dns._view(files, True) == {
        "running": True,
        "networks": {"web": {"listen": "172.30.0.1", "records": ["ID 172.30.0.2  front"]}},
    }


# ---- the firewall's guard ----


def test_only_the_network_s_own_bridge_reaches_its_gateways_port_53():
    rules = render_dns_guard({"web": WEB, "plain": PLAIN})
    assert [rule.owner for rule in rules] == ["network web dns guard"] * 2  # one per gateway, none for plain
    text = rules[0].expr
    for part in ('"op": "!="', '"iifname"', '"br-web"', '"172.30.0.1"', '"dport"', "53", '"drop"'):
        assert part in text
    assert '"fd00:30::1"' in rules[1].expr and '"ip6"' in rules[1].expr
    assert set(rules) <= set(render({"web": WEB, "plain": PLAIN}))


# ---- what cnm_info reports ----


def test_info_shows_the_resolver_and_its_drift():
    a = endpoint("web", "netns:a", "172.30.0.2", name="front", aliases=("www",))
    b = endpoint("web", "pid:1", "172.30.0.3")
    store = state(a, b, web=WEB)
    files = dns.render(store)
    view, drift = dns.report(store, {"files": files, "pid": 42, "bound": {"172.30.0.1", "fd00:30::1"}})
    assert view == {
        "running": True,
        "pid": 42,
        "networks": {
            "web": {
                "listen": ["172.30.0.1", "fd00:30::1"],
                "listening": ["172.30.0.1", "fd00:30::1"],
                "names": ["front", "front.web", "www"],
            }
        },
    }
    assert drift == []

    _view, drift = dns.report(store, {"files": {}, "pid": None, "bound": set()})
    assert [d[0] for d in drift] == ["resolver_not_running", "resolver_config"]
    _view, drift = dns.report(store, {"files": files, "pid": 42, "bound": {"172.30.0.1"}})
    assert [(d[0], d[2], d[4]) for d in drift] == [("resolver_not_listening", "web", ["172.30.0.1"])]
    # a resolver left with files of a network that no longer asks for one
    _view, drift = dns.report(state(web=PLAIN), {"files": files, "pid": 42, "bound": set()})
    assert [(d[0], d[2]) for d in drift] == [("resolver_config", "web")]


# ---- an overlay's names on other hosts ----


def test_an_overlay_s_resolver_answers_for_the_named_endpoints_of_its_peers():
    network = OverlayNetwork.from_overlay_params(
        {
            "name": "ov0",
            "vni": 42,
            "subnet": "10.200.0.0/16",
            "local_ip": "192.0.2.11",
            "dns": True,
            "peers": [
                {
                    "vtep": "192.0.2.12",
                    "endpoints": [
                        {"ip": "10.200.2.10", "name": "API", "aliases": ["backend"]},
                        {"ip": "10.200.2.11"},
                    ],
                }
            ],
        }
    )
    record = network.to_record()
    data = record.to_dict()
    assert data["peers"][0]["endpoints"] == [
        {"ip": "10.200.2.10", "mac": "02:42:0a:c8:02:0a", "name": "API", "aliases": ["backend"]},
        {"ip": "10.200.2.11", "mac": "02:42:0a:c8:02:0b"},
    ]
    assert NetworkRecord.from_dict(data) == record
    assert OverlayNetwork.from_record("ov0", record) == network
    local = endpoint("ov0", "netns:a", "10.200.1.10", name="front")
    files = dns.render(state(local, ov0=record))
    assert files["ov0"] == (
        "10.200.0.1\n"
        "%s 10.200.1.10  front,front.ov0\n"
        "%s 10.200.2.10  api,api.ov0,backend\n" % (dns.sandbox_id("netns:a"), dns.sandbox_id("peer:10.200.2.10"))
    )
    assert dns.answered_names(state(local, ov0=record), "ov0", record) == [
        "api",
        "api.ov0",
        "backend",
        "front",
        "front.ov0",
    ]


@pytest.mark.parametrize(
    "endpoint_entry, message",
    [
        ({"ip": "10.200.2.10", "name": "bad name"}, "option 'peers[0].endpoints[0].name': bad name is not a DNS name"),
        ({"ip": "10.200.2.10", "aliases": "api"}, "option 'peers[0].endpoints[0].aliases': api must be a list"),
        ({"ip": "10.200.2.10", "aliases": ["-x"]}, "option 'peers[0].endpoints[0].aliases[0]': -x is not a DNS name"),
    ],
)
def test_bad_peer_names_name_the_option(endpoint_entry, message):
    params = {"name": "ov0", "vni": 42, "subnet": "10.200.0.0/16", "local_ip": "192.0.2.11"}
    with pytest.raises(CnmError) as caught:
        OverlayNetwork.from_overlay_params(dict(params, peers=[{"vtep": "192.0.2.12", "endpoints": [endpoint_entry]}]))
    assert str(caught.value).startswith(message)


# ---- who starts the process ----


class CommandLog:
    """Stands in for the Host's run_command: records the commands a sync runs."""

    def __init__(self) -> None:
        self.commands: list = []

    def run_command(self, argv):
        self.commands.append(argv)
        return 0, "", ""


def test_under_systemd_the_resolver_is_started_and_stopped_through_its_unit(tmp_path, monkeypatch):
    directory = str(tmp_path / "dns")
    monkeypatch.setattr(dns, "under_systemd", lambda where: where == directory)
    monkeypatch.setattr(dns, "bound_addresses", lambda port=53: {"172.30.0.1"})
    host = CommandLog()

    dns.sync_resolver(host, directory, (("web", "172.30.0.1\n"),))
    assert host.commands == [["systemctl", "start", "cnm-dns.service"]]
    assert dns.read_files(directory) == {"web": "172.30.0.1\n"}

    dns.sync_resolver(host, directory, ())
    assert host.commands[-1] == ["systemctl", "stop", "cnm-dns.service"]
    assert not (tmp_path / "dns").exists()


def test_elsewhere_the_run_starts_aardvark_dns_itself(tmp_path, monkeypatch):
    directory = str(tmp_path / "dns")
    monkeypatch.setattr(dns, "under_systemd", lambda where: False)
    monkeypatch.setattr(dns, "binary", lambda: "/usr/lib/podman/aardvark-dns")
    monkeypatch.setattr(dns, "bound_addresses", lambda port=53: {"172.30.0.1"})
    host = CommandLog()

    dns.sync_resolver(host, directory, (("web", "172.30.0.1\n"),))
    assert host.commands == [["/usr/lib/podman/aardvark-dns", "--config", directory, "-p", "53", "run"]]


def test_the_read_watch_sees_files_read_after_it_began_and_not_those_written(tmp_path):
    (tmp_path / "web").write_text("172.30.0.1\n")
    (tmp_path / "web").read_text()  # before the watch: not seen
    with dns.ReadWatch(str(tmp_path)) as watch:
        assert watch.read() == set()
        (tmp_path / "db").write_text("172.31.0.1\n")
        assert watch.read() == set()
        (tmp_path / "web").read_text()
        assert watch.read() == {"web"}


def test_the_environment_names_another_binary(tmp_path, monkeypatch):
    monkeypatch.setenv(dns.BINARY_VARIABLE, str(tmp_path / "aardvark-dns"))
    with pytest.raises(CnmError, match="CNM_NETWORK_AARDVARK_DNS names .* not an executable file"):
        dns.binary()
    (tmp_path / "aardvark-dns").write_text("#!/bin/sh\n")
    (tmp_path / "aardvark-dns").chmod(0o755)
    assert dns.binary() == str(tmp_path / "aardvark-dns")
