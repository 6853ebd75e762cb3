"""The verbs of kernel.NetnsSession that plan.Op names and that take what only the run knows: a sandbox's namespace
by its key (looked up when the verb runs, not when the run plans), the XFRM socket opened once; and Kernel.run, which
calls a verb on the session of the Op's namespace with its keyword arguments. No kernel: fake clients."""

from __future__ import annotations

import pytest

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.kernel import Kernel, NetnsSession
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST


class FakeRtnl:
    """Records the requests; knows the links of one namespace by name."""

    def __init__(self, links) -> None:
        self.links = dict(links)
        self.calls = []

    def link(self, name):
        return {"index": self.links[name], "name": name} if name in self.links else None

    def create_veth(self, name, mtu, master, peer_name, peer_netns_fd, peer_mac):
        self.calls.append(("create_veth", name, mtu, master, peer_name, peer_netns_fd, peer_mac))
        self.links[name] = 100 + len(self.links)

    def create_lower(self, kind, name, parent, mode, mtu, mac, netns_fd=None):
        self.calls.append(("create_lower", kind, name, parent, netns_fd))

    def create_vxlan(self, name, vni, local, port, mtu, mac, master, up=True):
        self.calls.append(("create_vxlan", name, vni, local, port, mtu, mac, master, up))
        self.links[name] = 100 + len(self.links)

    def set_link(self, index, **kwargs):
        self.calls.append(("set_link", index, kwargs))

    def close(self):
        self.calls.append(("close",))


class FakeXfrmSocket:
    def __init__(self) -> None:
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def session(label, rtnl, fd=None):
    s = NetnsSession.__new__(NetnsSession)
    s.label, s.fd, s.rtnl, s._indexes = label, fd, rtnl, {}
    return s


def kernel_of(host, sandboxes):
    kernel = Kernel.__new__(Kernel)
    kernel.host, kernel._sandboxes = host, dict(sandboxes)
    host.sessions = kernel.session
    return kernel


def test_a_veth_peer_goes_into_the_sandbox_its_key_names_when_the_op_runs():
    host = session("the host", FakeRtnl({"br-web": 5}))
    kernel = kernel_of(host, {})
    op = Op(
        HOST,
        "create_veth_into",
        ("ve-1", 1500, "cnm:endpoint:web|netns:app", "br-web", {"ifname": "eth0"}, "netns:app"),
    )
    assert repr(op).startswith("Op(where='host', verb='create_veth_into', args=('ve-1', 1500")  # planned: no fd in it
    kernel._sandboxes["netns:app"] = session("sandbox app", FakeRtnl({"lo": 1}), fd=42)  # opened later in the run
    kernel.run(op)
    assert host.rtnl.calls == [
        ("create_veth", "ve-1", 1500, 5, "eth0", 42, None),
        ("set_link", 101, {"alias": "cnm:endpoint:web|netns:app"}),
    ]


def test_a_lower_link_is_born_in_the_sandbox_its_key_names():
    host = session("the host", FakeRtnl({"eth1": 3}))
    sandbox = session("sandbox app", FakeRtnl({"lo": 1}), fd=7)
    kernel = kernel_of(host, {"netns:app": sandbox})
    sandbox.rtnl.links["eth0"] = 9  # what the kernel shows in the sandbox once the link is born there
    kernel.run(Op(HOST, "create_lower_into", ("macvlan", "eth0", "eth1", "bridge", 1500, None, "cnm:e", "netns:app")))
    assert host.rtnl.calls == [("create_lower", "macvlan", "eth0", 3, 7)]
    assert sandbox.rtnl.calls == [("set_link", 9, {"alias": "cnm:e", "up": True, "name": None})]


def test_a_session_outside_a_kernel_refuses_a_verb_that_needs_another_namespace():
    host = session("the host", FakeRtnl({"br-web": 5}))
    with pytest.raises(CnmError, match="no session of netns:app"):
        host.create_veth_into("ve-1", 1500, "a", "br-web", {"ifname": "eth0"}, "netns:app")


def test_a_vxlan_device_is_made_on_its_bridge_then_named():
    host = session("the host", FakeRtnl({"br-ov": 5}))
    kernel_of(host, {}).run(
        Op.call(
            HOST, "create_vxlan", "vx-ov", 42, "192.0.2.1", 4789, 1450, "02:00:00:00:00:01", "br-ov", "cnm:o", up=False
        )
    )
    assert host.rtnl.calls == [
        ("create_vxlan", "vx-ov", 42, "192.0.2.1", 4789, 1450, "02:00:00:00:00:01", 5, False),
        ("set_link", 101, {"alias": "cnm:o"}),
    ]


def test_the_xfrm_verbs_share_one_socket_opened_on_first_use_and_closed_with_the_session(monkeypatch):
    opened = []

    def open_socket():
        opened.append(FakeXfrmSocket())
        return opened[-1]

    monkeypatch.setattr("ansible_collections.cnm.network.plugins.module_utils.kernel.Xfrm", open_socket)
    host = session("the host", FakeRtnl({}))
    kernel = kernel_of(host, {})
    assert not opened  # planning a run without an encrypted overlay opens no XFRM socket
    state, policy = {"dst": "192.0.2.2", "spi": 256}, {"dir": "out"}
    for verb, arg in (
        ("add_xfrm_state", state),
        ("delete_xfrm_state", state),
        ("add_xfrm_policy", policy),
        ("update_xfrm_policy", policy),
        ("delete_xfrm_policy", policy),
    ):
        kernel.run(Op(HOST, verb, (arg,)))
    assert len(opened) == 1 and opened[0].calls == [
        ("add_state", (state,), {}),
        ("delete_state", (state,), {}),
        ("add_policy", (policy,), {}),
        ("add_policy", (policy,), {"update": True}),
        ("delete_policy", (policy,), {}),
    ]
    host.close()
    assert opened[0].calls[-1] == ("close", (), {}) and host.rtnl.calls[-1] == ("close",)


def test_kernel_run_calls_the_verb_on_the_session_of_the_ops_namespace_with_its_keyword_arguments():
    calls = []

    class Session:
        def __init__(self, label) -> None:
            self.label = label

        def set_link(self, name, up=None, mtu=None):
            calls.append((self.label, name, up, mtu))

    kernel = kernel_of(Session("host"), {"netns:app": Session("app")})
    kernel.run(Op.call(HOST, "set_link", "br-web", mtu=1400))
    kernel.run(Op.call("netns:app", "set_link", "eth0", up=True))
    assert calls == [("host", "br-web", None, 1400), ("app", "eth0", True, None)]
