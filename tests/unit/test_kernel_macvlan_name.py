"""NetnsSession.create_lower (a macvlan here) on kernels that look a new link's name up in the asking namespace
(Debian 12's 6.1 refuses an endpoint named eth0 with EEXIST when the host has an eth0): the macvlan is
born in the sandbox under a temporary name and renamed there (no kernel: fake rtnetlink clients)."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.cnm.network.plugins.module_utils.kernel import NetnsSession


class FakeRtnl:
    """One namespace's links by name; creation checks names like Debian 12's kernel: in the asking namespace."""

    def __init__(self, links, old_kernel=True):
        self.links = dict(links)  # name -> index
        self.sandbox = None
        self.old_kernel = old_kernel
        self.calls = []

    def link(self, name):
        return {"index": self.links[name], "name": name} if name in self.links else None

    def create_lower(self, kind, name, parent, mode, mtu, mac, netns_fd=None):
        self.calls.append(("create", name))
        target = self.sandbox if netns_fd is not None else self
        if (self.old_kernel and name in self.links) or name in target.links:
            raise OSError(errno.EEXIST, "File exists")
        target.links[name] = 100 + len(target.links)

    def set_link(self, index, up=None, mtu=None, mac=None, alias=None, master=None, group=None, name=None):
        self.calls.append(("set", index, name, alias, up))
        if name is not None:
            old = next(n for n, i in self.links.items() if i == index)
            self.links[name] = self.links.pop(old)

    def delete_link(self, index):
        self.links = {n: i for n, i in self.links.items() if i != index}


def session(label, rtnl, fd=None):
    s = NetnsSession.__new__(NetnsSession)
    s.label, s.fd, s.rtnl, s._indexes = label, fd, rtnl, {}
    return s


def sessions(old_kernel=True, sandbox_links=None):
    host_rtnl = FakeRtnl({"lo": 1, "eth0": 2, "eth1.10": 3}, old_kernel)
    sandbox_rtnl = FakeRtnl(sandbox_links or {"lo": 1})
    host_rtnl.sandbox = sandbox_rtnl
    return session("host", host_rtnl), session("sandbox", sandbox_rtnl, fd=7)


def test_a_name_taken_on_the_host_is_born_under_a_temporary_name_and_renamed_in_the_sandbox():
    host, sandbox = sessions()
    host.create_lower(
        "macvlan", "eth0", "eth1.10", "bridge", 1500, None, "cnm:endpoint:vlan10|netns:a", sandbox=sandbox
    )
    assert sorted(sandbox.rtnl.links) == ["eth0", "lo"] and sorted(host.rtnl.links) == ["eth0", "eth1.10", "lo"]
    temp = host.rtnl.calls[1][1]
    assert temp.startswith("cnm") and len(temp) <= 15
    assert sandbox.rtnl.calls == [("set", sandbox.rtnl.links["eth0"], "eth0", "cnm:endpoint:vlan10|netns:a", True)]


def test_a_kernel_that_checks_the_sandbox_gets_the_final_name_at_once():
    host, sandbox = sessions(old_kernel=False)
    host.create_lower(
        "macvlan", "eth0", "eth1.10", "bridge", 1500, None, "cnm:endpoint:vlan10|netns:a", sandbox=sandbox
    )
    assert host.rtnl.calls == [("create", "eth0")]
    assert sandbox.rtnl.calls == [("set", sandbox.rtnl.links["eth0"], None, "cnm:endpoint:vlan10|netns:a", True)]


def test_a_name_taken_in_the_sandbox_itself_is_still_refused():
    host, sandbox = sessions(sandbox_links={"lo": 1, "eth0": 5})
    with pytest.raises(OSError) as raised:
        host.create_lower(
            "macvlan", "eth0", "eth1.10", "bridge", 1500, None, "cnm:endpoint:vlan10|netns:a", sandbox=sandbox
        )
    assert raised.value.errno == errno.EEXIST and host.rtnl.calls == [("create", "eth0")]


def test_on_the_host_a_taken_name_is_refused():
    host, _sandbox = sessions()
    with pytest.raises(OSError):
        host.create_lower("macvlan", "eth0", "eth1.10", "bridge", 1500, None, "cnm:shim:vlan10")
