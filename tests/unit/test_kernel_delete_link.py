"""NetnsSession.delete_link: a link that the kernel removes between the lookup and the delete counts as deleted.

A namespace deleted by hand (``ip netns del``) is torn down by the kernel in the background, and its veth's host end
goes with it: a run that planned "delete the veth of the vanished sandbox" found it gone when it got there (the soak,
cycle 62 of a loaded machine: ``No such device (errno 19)``). No kernel: a fake rtnetlink client.
"""

from __future__ import annotations

import errno

import pytest

from ansible_collections.cnm.network.plugins.module_utils.kernel import NetnsSession


class VanishingRtnl:
    """Knows link ``ve-1`` at lookup; the delete meets ``code`` (the kernel took the link away meanwhile)."""

    def __init__(self, code):
        self.code = code

    def link(self, name):
        return {"index": 7, "name": name} if name == "ve-1" else None

    def delete_link(self, index):
        raise OSError(self.code, "No such device" if self.code == errno.ENODEV else "Operation not permitted")


def session(rtnl):
    s = NetnsSession.__new__(NetnsSession)
    s.label, s.fd, s.rtnl, s._indexes = "host", None, rtnl, {}
    return s


def test_a_link_gone_between_lookup_and_delete_is_deleted():
    host = session(VanishingRtnl(errno.ENODEV))
    assert host.index("ve-1") == 7  # looked up (and remembered) when the run planned
    host.delete_link("ve-1")
    assert "ve-1" not in host._indexes


def test_any_other_error_of_the_delete_is_raised():
    host = session(VanishingRtnl(errno.EPERM))
    with pytest.raises(OSError) as caught:
        host.delete_link("ve-1")
    assert caught.value.errno == errno.EPERM
