"""The netns connection's view of a namespace: which mounts it makes slaves, what it mounts (pure: mountinfo texts
and a temporary directory standing in for /etc/netns; the real kernel is tests/integration/test_netns_connection.py).
"""

from conftest import load_plugin

netns = load_plugin("connection", "netns")

# /proc/self/mountinfo of a systemd machine: every mount shared, /sys/fs/cgroup below /sys, /run/netns of ip netns.
SYSTEMD = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
24 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw
25 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 22 0:25 / /run rw,nosuid,nodev shared:13 - tmpfs tmpfs rw,mode=755
27 26 0:25 /netns /run/netns rw,nosuid,nodev shared:14 - tmpfs tmpfs rw,mode=755
28 27 0:4 net:[4026532300] /run/netns/lab-h1 rw shared:15 - nsfs nsfs rw
"""
# A container: nothing shared, a read-only /sys, /etc/resolv.conf a mount of its own, a path with a space.
CONTAINER = """\
40 39 0:50 / / rw,relatime master:9 - overlay overlay rw
41 40 0:52 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
42 40 254:1 /resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vdb rw
43 40 0:53 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""


def test_mountinfo_gives_points_read_only_and_shared():
    mounts = netns.parse_mountinfo(SYSTEMD + CONTAINER + "garbage line\n")
    assert mounts[1] == netns.Mount("/sys", read_only=False, shared=True)
    assert netns.Mount("/sys", read_only=True, shared=False) in mounts
    assert netns.Mount("/mnt/with space", read_only=False, shared=False) in mounts
    assert netns.Mount("/", read_only=False, shared=False) in mounts  # master: only, a slave: not shared
    assert len(mounts) == 11


def test_a_mount_is_made_on_the_topmost_mount_at_or_above_its_path():
    mounts = netns.parse_mountinfo(SYSTEMD)
    assert netns.mount_of(mounts, "/sys").point == "/sys"
    assert netns.mount_of(mounts, "/sys/fs/cgroup/x").point == "/sys/fs/cgroup"
    assert netns.mount_of(mounts, "/etc/hosts").point == "/"
    assert netns.mount_of(mounts, "/system").point == "/"  # a prefix of the name is not a parent
    assert netns.mount_of(mounts, "/run/netns/x/../lab-h1").point == "/run/netns/lab-h1"
    stacked = netns.parse_mountinfo(SYSTEMD + "29 23 0:60 / /sys rw - sysfs lab rw\n")
    assert netns.mount_of(stacked, "/sys") == netns.Mount("/sys", read_only=False, shared=False)
    assert netns.mount_of([], "/sys") is None


def test_shared_mounts_under_the_new_mounts_become_slaves_first_and_nothing_else():
    prelude = netns.view_prelude("lab-h1", netns.parse_mountinfo(SYSTEMD), ["hosts", "resolv.conf"], "/e/netns")
    assert prelude.splitlines() == [
        "mount -n --make-slave /sys || exit 1",
        "mount -n --make-slave / || exit 1",  # /etc/hosts and /etc/resolv.conf are on /: made a slave once
        "mount -n -t sysfs lab-h1 /sys || { echo 'netns connection: cannot mount the /sys of network namespace "
        "lab-h1' >&2; exit 1; }",
        "mount -n --bind /e/netns/lab-h1/hosts /etc/hosts || true",
        "mount -n --bind /e/netns/lab-h1/resolv.conf /etc/resolv.conf || true",
    ]
    assert "/run/netns" not in prelude  # names a task gives namespaces keep reaching the machine


def test_nothing_shared_means_only_the_mounts_and_a_read_only_sys_stays_read_only():
    prelude = netns.view_prelude("a b'c", netns.parse_mountinfo(CONTAINER), ["resolv.conf"], "/etc/netns")
    assert prelude.splitlines() == [
        "mount -n -o ro -t sysfs 'a b'\"'\"'c' /sys || { echo 'netns connection: cannot mount the /sys of network "
        "namespace a b'\"'\"'c' >&2; exit 1; }",
        "mount -n --bind '/etc/netns/a b'\"'\"'c/resolv.conf' /etc/resolv.conf || true",
    ]


def test_without_a_sys_mount_the_sysfs_goes_on_the_root():
    prelude = netns.view_prelude("n", netns.parse_mountinfo(SYSTEMD.splitlines(True)[0]), [], "/etc/netns")
    assert prelude.splitlines()[0] == "mount -n --make-slave / || exit 1"
    assert prelude.splitlines()[1].startswith("mount -n -t sysfs n /sys ")


def test_etc_overlays_are_the_entries_of_the_namespace_directory(tmp_path):
    assert netns.etc_overlays("h1", str(tmp_path)) == []  # no /etc/netns at all
    (tmp_path / "h1").mkdir()
    assert netns.etc_overlays("h1", str(tmp_path)) == []
    for name in ("resolv.conf", "hosts", ".hidden"):
        (tmp_path / "h1" / name).write_text("x")
    (tmp_path / "h1" / "sub").mkdir()
    (tmp_path / "h2").write_text("a file, not a directory")
    assert netns.etc_overlays("h1", str(tmp_path)) == [".hidden", "hosts", "resolv.conf", "sub"]
    assert netns.etc_overlays("h2", str(tmp_path)) == []
