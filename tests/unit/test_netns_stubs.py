"""Namespace stubs: a name left without its namespace is reported only if it stays one (pure: a temporary directory
stands in for /run/netns, and the re-check's pause is where the test changes the directory)."""

import os

from ansible_collections.cnm.network.plugins.module_utils import netns


def test_only_names_that_stay_stubs_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(netns, "NETNS_RUN_DIR", str(tmp_path))
    for name in ("left", "being-named", "renamed", "being-removed"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "mounted").write_bytes(b"x")  # not empty: stands in for a namespace mounted on its name
    pauses = []

    def meanwhile(seconds):
        pauses.append(seconds)
        (tmp_path / "being-named").write_bytes(b"x")  # its namespace is bound now
        (tmp_path / "other").write_bytes(b"")  # made while the first exists: another inode
        os.rename(tmp_path / "other", tmp_path / "renamed")  # another file under the same name: not the one seen
        os.unlink(tmp_path / "being-removed")

    monkeypatch.setattr(netns.time, "sleep", meanwhile)
    assert netns.stubs() == ["left"]
    assert pauses == [netns.STUB_RECHECK_SECONDS]


def test_no_pause_without_a_stub(tmp_path, monkeypatch):
    monkeypatch.setattr(netns, "NETNS_RUN_DIR", str(tmp_path))
    (tmp_path / "mounted").write_bytes(b"x")

    def never(seconds):
        raise AssertionError("paused %s s" % seconds)

    monkeypatch.setattr(netns.time, "sleep", never)
    assert netns.stubs() == []
