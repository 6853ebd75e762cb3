"""The facts layer (tests/unit/facts.py) answers the reads of kernel.NetnsSession and refuses every write, so a
planner that writes while planning fails its test."""

from __future__ import annotations

import ipaddress

import pytest
from facts import READS, FactsKernel, FactsSession, Machine, PlanningWrite, Runner

from ansible_collections.cnm.network.plugins.module_utils import bridge, kernel
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, Gone
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef


def link(index: int, name: str, kind=None, **more) -> kernel.Link:
    fields = dict(mtu=1500, mac="02:00:00:00:00:%02x" % index, up=True, master=None, peer_index=None, alias=None)
    fields.update(more)
    return kernel.Link(index=index, name=name, kind=kind, **fields)


def host() -> FactsSession:
    return FactsSession(
        "the host",
        (link(1, "lo", mtu=65536), link(2, "eth0"), link(4, "br-web", "bridge"), link(5, "ve-1", "veth", master=4)),
        addresses={"lo": ["127.0.0.1/8", "::1/128"], "eth0": ["192.0.2.11/24"], "br-web": ["172.30.0.1/24"]},
        routes={"eth0": [("0.0.0.0/0", "192.0.2.1")]},
        port_flags={"ve-1": (False, True)},
        fdb={"eth0": [("00:00:00:00:00:00", "192.0.2.12")]},
        neighbours={"eth0": [("02:42:0a:c8:02:02", "10.200.2.2")]},
        sysctls={"net/ipv4/ip_forward": "1"},
    )


def test_the_reads_answer_from_the_facts_as_netns_session_does():
    session = host()
    assert list(session.links()) == ["lo", "eth0", "br-web", "ve-1"]
    assert session.link("br-web").kind == "bridge" and session.link("nope") is None
    assert session.by_index(5).name == "ve-1" and session.by_index(9) is None
    assert session.index("eth0") == 2
    with pytest.raises(Gone):
        session.index("nope")
    assert [str(a) for a in session.addresses(1)] == ["127.0.0.1/8", "::1/128"] and session.addresses(5) == []
    assert [r.describe() for r in session.routes()] == ["default via 192.0.2.1"] and session.routes(4) == []
    assert session.port_flags(5) == (False, True) and session.port_flags(4) == (False, False)
    assert session.sysctl("net/ipv4/ip_forward") == "1" and session.sysctl("net/ipv4/nope") is None
    assert session.sysctls(["net/ipv4/ip_forward", "net/x"]) == {"net/ipv4/ip_forward": "1", "net/x": None}


def test_the_main_table_holds_the_kernels_connected_routes_and_the_vxlan_tables_their_entries():
    session = host()
    assert [(r.describe(), r.oif) for r in session.main_routes()] == [
        ("192.0.2.0/24", 2),
        ("172.30.0.0/24", 4),
        ("default via 192.0.2.1", 2),
    ]
    assert session.fdb(2) == [("00:00:00:00:00:00", "192.0.2.12")] and session.fdb(4) == []
    assert session.neighbours(2) == [("02:42:0a:c8:02:02", "10.200.2.2")]


def test_facts_of_an_interface_the_namespace_lacks_are_refused():
    with pytest.raises(ValueError, match="facts of interfaces it lacks: eth9"):
        FactsSession("the host", (link(1, "lo"),), addresses={"eth9": ["10.0.0.1/24"]})


def test_every_write_of_a_session_and_of_its_rtnl_raises():
    session = host()
    for call in (
        lambda: session.create_bridge("br-x", 1500, "cnm:network:x", "02:42:00:00:00:01"),
        lambda: session.set_link("eth0", up=False),
        lambda: session.add_address("eth0", ipaddress.ip_interface("10.0.0.1/24")),
        lambda: session.delete_route("eth0", None),
        lambda: session.write_sysctl("net/ipv4/ip_forward", "0"),
        lambda: session.delete_links(["ve-1"], 7),
        lambda: session.rtnl.delete_link(5),
        lambda: session.rtnl.create_vxlan("vx", 1, "192.0.2.11", 4789, 1450, "02:00:00:00:00:01", 4),
        session.rtnl.routes,
    ):
        with pytest.raises(PlanningWrite):
            call()
    with pytest.raises(PlanningWrite):
        FactsKernel(session).run(object())


def test_every_public_method_of_netns_session_is_a_read_or_refused():
    session = host()
    for name, value in vars(kernel.NetnsSession).items():
        if callable(value) and not name.startswith("_"):
            assert hasattr(FactsSession, name), name
            if name not in READS:
                with pytest.raises(PlanningWrite, match=name):
                    getattr(session, name)()


def test_every_public_method_of_the_kernel_is_answered_from_facts_or_refused():
    facts = FactsKernel(host(), {"netns:app": FactsSession("app", (link(1, "lo"),))}, ["netns:old"], ["ipvlan"])
    for name, value in vars(kernel.Kernel).items():
        if callable(value) and not name.startswith("_"):
            assert hasattr(FactsKernel, name), name
    for verb in kernel.Kernel.NAMESPACE_VERBS:
        with pytest.raises(PlanningWrite):
            facts.run(Op(HOST, verb, ("app",)))
    app, old = SandboxRef("netns", "app"), SandboxRef("netns", "old")
    assert facts.sandbox_exists(app) and not facts.sandbox_exists(old)
    assert facts.sandbox_is_stub(old) and not facts.sandbox_is_stub(app) and not facts.is_host_namespace(app)
    assert facts.namespace_identity(app) == ("facts", "netns:app") and facts.namespace_identity(old) is None
    assert facts.has_module("ipvlan") and not facts.has_module("8021q")


def test_the_kernel_hands_out_the_sessions_of_existing_sandboxes_only():
    sandbox = FactsSession("sandbox", (link(1, "lo"),))
    facts = FactsKernel(host(), {"netns:app": sandbox})
    assert facts.sandbox(SandboxRef("netns", "app")) is sandbox and facts.session("netns:app") is sandbox
    assert facts.session("host") is facts.host
    with pytest.raises(CnmError, match="option 'netns': gone does not name an existing network namespace"):
        facts.sandbox(SandboxRef("netns", "gone"))


def test_a_planner_that_writes_while_planning_fails(tmp_path, monkeypatch):
    """The guard itself: were cnm_bridge to set a sysctl while planning, the run would fail, not plan."""
    runner = Runner(tmp_path, monkeypatch)

    def eager(host_, target, device, enabled, mtu=1500):
        host_.kernel.host.write_sysctl("net/ipv6/conf/%s/disable_ipv6" % device, "0" if enabled else "1")

    monkeypatch.setattr(bridge, "plan_device_ipv6", eager)
    machine = Machine(FactsSession("the host", (link(1, "lo"),), sysctls={"net/ipv4/ip_forward": "0"}))
    with pytest.raises(PlanningWrite, match="write_sysctl"):
        runner.run(machine, "cnm_bridge", name="web", subnet="172.30.0.0/24")
    assert runner.stored() is None
