# Copyright (c) 2026, cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks inside a named network namespace on the controller
description:
  - Runs the tasks of a host inside a named network namespace (one made with C(ip netns add), found
    under C(/run/netns)) on the machine that runs Ansible, so that several network namespaces of one
    machine can act as the hosts of an inventory (a lab, a CI run, a network topology on a laptop).
  - Each command CMD is run as
    C(nsenter --net=/run/netns/NAME -- unshare --mount --propagation unchanged -- /bin/sh -c SCRIPT),
    where SCRIPT mounts a C(sysfs) of the namespace on C(/sys), bind-mounts every entry of
    C(/etc/netns/NAME) over the same name in C(/etc), and then runs CMD, as C(/bin/sh -c CMD) would.
    This is the view C(ip netns exec) gives, so modules that read C(/sys/class/net) see the namespace's
    own interfaces; for example the facts of P(ansible.builtin.setup#module) (C(ansible_interfaces),
    C(ansible_default_ipv4), C(ansible_eth0)) are those of the namespace, not of the controller.
  - The mounts are made in a new mount namespace of that one command, which ends with the command
    (and with the last process it started, such as a daemon). Unlike C(ip netns exec), which makes
    every mount a slave, only the mounts these mounts are made on (C(/sys), and the one holding each
    overlaid C(/etc) entry) are made slaves first, and only if they are shared, so none of them
    propagates back to the controller. Every other mount keeps its propagation, so a namespace a task
    creates and names under C(/run/netns) (a shared mount, as C(ip netns add) makes it) is seen by the
    controller and by later tasks. Whatever a task writes to a file (the remote temporary directory,
    a C(dest)) is on the controller's filesystem.
  - Files are transferred locally, as the P(ansible.builtin.local#connection) connection does, but as
    the task sees them; a path under C(/etc) that C(/etc/netns/NAME) overlays is the overlay's file,
    and a path under C(/sys) is read or written by C(cat) inside the namespace.
  - Users, processes and the rest of the filesystem are the controller's.
author:
  - cnm.network contributors (!UNKNOWN)
version_added: 0.1.0
notes:
  - Privilege escalation (C(become)) is not supported; run Ansible as root, which entering a network
    namespace and mounting need anyway. A task that asks for C(become) fails.
  - The remote user is ignored; commands run as the user that runs Ansible.
  - The namespace must exist before the first task runs; a missing one fails the host as unreachable.
  - Set C(ansible_python_interpreter) for these hosts (for example to C({{ ansible_playbook_python }})),
    as interpreter discovery runs on the controller's filesystem anyway.
  - The namespace's view costs two more short processes per command (C(unshare) and C(mount)), and one
    more for each mount that must be made a slave first and each C(/etc/netns/NAME) entry, than entering
    the network namespace alone. With O(pipelining) a module task runs one command instead of
    about five.
  - A mount a task makes elsewhere reaches the controller only if the mount it is made on is shared
    with the controller's (as C(/run/netns) is); otherwise it ends with the command, as with
    C(ip netns exec).
  - A command that fails to mount the namespace's C(/sys) is not run and fails with a message saying so.
requirements:
  - nsenter, unshare and mount (util-linux) on the controller
  - Linux, and the rights to enter the namespace and to mount (root)
extends_documentation_fragment:
  - connection_pipelining
options:
  netns_name:
    description:
      - The name of the network namespace to run in, that is the file name under C(/run/netns).
      - Taken from C(ansible_netns_name); without it from C(ansible_host); without that the
        inventory hostname is the namespace name.
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_name
"""

EXAMPLES = r"""
# Inventory: two lab hosts, each a network namespace of this machine.
# cnm_lab:
#   hosts:
#     h1:
#       ansible_connection: cnm.network.netns
#       ansible_netns_name: cnmlab-h1
#       ansible_python_interpreter: "{{ ansible_playbook_python }}"
#     h2:
#       ansible_connection: cnm.network.netns
#       ansible_netns_name: cnmlab-h2
#       ansible_python_interpreter: "{{ ansible_playbook_python }}"

- name: Show the addresses each lab host sees
  hosts: cnm_lab
  gather_facts: false
  tasks:
    - name: List addresses inside the namespace
      ansible.builtin.command: ip -brief address show
      changed_when: false

- name: Facts of the lab hosts are their own
  hosts: cnm_lab
  gather_facts: true
  tasks:
    - name: Show the interfaces and default route of each lab host
      ansible.builtin.debug:
        msg: "{{ ansible_interfaces }} {{ ansible_default_ipv4.address | default('no default route') }}"
"""

import os
import shlex
import shutil
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display
from ansible.utils.path import unfrackpath

display = Display()

NETNS_RUN_DIR = '/run/netns'
ETC_NETNS_DIR = '/etc/netns'
MOUNTINFO = '/proc/self/mountinfo'


class Mount(t.NamedTuple):
    """One line of /proc/self/mountinfo, as far as the connection needs it."""

    point: str
    read_only: bool
    shared: bool


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash of paths as octal escapes
    for code, char in (('\\040', ' '), ('\\011', '\t'), ('\\012', '\n'), ('\\134', '\\')):
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a /proc/PID/mountinfo text, in its order (a mount comes after the one it is mounted on)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(' ')
        if len(fields) < 10 or '-' not in fields[6:]:
            continue
        optional = fields[6 : fields.index('-', 6)]
        mounts.append(
            Mount(
                point=_unescape(fields[4]),
                read_only='ro' in fields[5].split(','),
                shared=any(tag.startswith('shared:') for tag in optional),
            )
        )
    return mounts


def mount_of(mounts: list[Mount], path: str) -> Mount | None:
    """The mount a new mount on ``path`` would be mounted on: the topmost one at ``path`` or its nearest parent."""
    path = os.path.normpath(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.point
        inside = path == point or path.startswith(point.rstrip('/') + '/')
        # the longest mount point wins; of equal ones the last (it is stacked on the earlier)
        if inside and (best is None or len(point) >= len(best.point)):
            best = mount
    return best


def etc_overlays(name: str, etc_netns_dir: str = ETC_NETNS_DIR) -> list[str]:
    """The entries of /etc/netns/NAME that ``ip netns exec`` bind-mounts over /etc/ENTRY, sorted."""
    try:
        return sorted(entry for entry in os.listdir(os.path.join(etc_netns_dir, name)) if entry not in ('.', '..'))
    except (FileNotFoundError, NotADirectoryError):
        return []


def view_prelude(name: str, mounts: list[Mount], overlays: list[str], etc_netns_dir: str = ETC_NETNS_DIR) -> str:
    """Shell code that, run in a new mount namespace inside the network namespace ``name``, gives it the namespace's
    own /sys and /etc/netns/NAME files, as ``ip netns exec`` does. The command follows on the next line, so the same
    shell runs it (and execs it when it is one simple command), as ``/bin/sh -c CMD`` would.

    Each mount it makes goes on a mount that is made a slave first when it is shared, so none propagates back to the
    controller; every other mount keeps its propagation, so a namespace a task names under /run/netns (a shared
    mount) is seen by the controller and later tasks."""
    targets = ['/sys'] + [os.path.join('/etc', entry) for entry in overlays]
    parents = [mount_of(mounts, target) for target in targets]
    lines = [
        f'mount -n --make-slave {shlex.quote(point)} || exit 1'
        for point in dict.fromkeys(parent.point for parent in parents if parent is not None and parent.shared)
    ]
    sysfs = mount_of(mounts, '/sys')
    # a read-only /sys (a container) can only be shadowed by a read-only one, as ip netns exec knows
    read_only = '-o ro ' if sysfs is not None and sysfs.point == '/sys' and sysfs.read_only else ''
    failed = shlex.quote(f'netns connection: cannot mount the /sys of network namespace {name}')
    lines.append(f'mount -n {read_only}-t sysfs {shlex.quote(name)} /sys || {{ echo {failed} >&2; exit 1; }}')
    for entry in overlays:
        source = shlex.quote(os.path.join(etc_netns_dir, name, entry))
        # as ip netns exec: an entry that cannot be bound is only a warning (mount says why)
        lines.append(f'mount -n --bind {source} {shlex.quote(os.path.join("/etc", entry))} || true')
    return '\n'.join(lines)


class Connection(LocalConnection):
    """Local connection whose commands run inside a named network namespace, with its own /sys."""

    transport = 'cnm.network.netns'
    has_pipelining = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._nsenter: str | None = None
        self._unshare: str | None = None

    @property
    def netns_path(self) -> str:
        """The bind mount of the namespace, /run/netns/NAME, after checking the name."""
        name = self.get_option('netns_name')
        if not name:
            raise AnsibleConnectionFailure('netns connection: no namespace name (set ansible_netns_name)')
        name = to_text(name)
        if '/' in name or name in ('.', '..') or '\0' in name:
            raise AnsibleConnectionFailure(
                f"netns connection: option 'netns_name': {name!r} is not a namespace name (no '/', not '.' or '..')"
            )
        return os.path.join(NETNS_RUN_DIR, name)

    def _check_netns(self) -> str:
        path = self.netns_path
        if not os.path.exists(path):
            raise AnsibleConnectionFailure(
                f'netns connection: network namespace {os.path.basename(path)!r} does not exist ({path} is missing); '
                'create it first, for example with "ip netns add" or playbooks/lab_up.yml'
            )
        return path

    def set_become_plugin(self, plugin: t.Any) -> None:
        # Raised here, before any command runs, so the task fails with this message
        # rather than with a confusing error from nsenter under sudo.
        if plugin is not None:
            raise AnsibleError(
                'netns connection: become is not supported (the namespace is entered as the user running Ansible, '
                'which must be root); remove become from this play or task'
            )
        super().set_become_plugin(plugin)

    def _connect(self) -> LocalConnection:
        if not self._connected:
            self._nsenter = shutil.which('nsenter')
            self._unshare = shutil.which('unshare')
            if self._nsenter is None or self._unshare is None or shutil.which('mount') is None:
                raise AnsibleConnectionFailure('netns connection: nsenter, unshare or mount (util-linux) not in PATH')
            path = self._check_netns()
            display.vvv(f'ESTABLISH NETNS CONNECTION INTO {path}', host=self._play_context.remote_addr)
        return super()._connect()

    def _wrap(self, cmd: str) -> str:
        """cmd as a shell command that runs it in the namespace, with the namespace's view of /sys and /etc."""
        # Checked on every command: a play may delete the namespace between tasks.
        path = self._check_netns()
        name = os.path.basename(path)
        # Read on every command (it is cheap): a task may add /etc/netns/NAME files or change mounts.
        with open(MOUNTINFO, encoding='utf-8', errors='surrogateescape') as mountinfo:
            mounts = parse_mountinfo(mountinfo.read())
        script = view_prelude(name, mounts, etc_overlays(name)) + '\n' + to_text(cmd, errors='surrogate_or_strict')
        return ' '.join(
            [
                shlex.quote(self._nsenter or 'nsenter'),
                shlex.quote(f'--net={path}'),
                '--',
                shlex.quote(self._unshare or 'unshare'),
                '--mount',
                '--propagation',
                'unchanged',
                '--',
                '/bin/sh',
                '-c',
                shlex.quote(script),
                '/bin/sh',  # $0, as for /bin/sh -c CMD
            ]
        )

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        """Run cmd with /bin/sh inside the network namespace, with its own /sys and /etc/netns files."""
        if not self._connected:
            self._connect()
        return super().exec_command(self._wrap(cmd), in_data=in_data, sudoable=sudoable)

    def _task_path(self, path: str) -> tuple[str, bool]:
        """The controller's path of the file a task sees at path, and whether only the namespace can reach it."""
        path = unfrackpath(path, basedir=self.cwd, follow=False)
        if path == '/sys' or path.startswith('/sys/'):
            return path, True
        parts = path.split('/')
        if len(parts) > 2 and parts[1] == 'etc':
            name = os.path.basename(self.netns_path)
            if parts[2] in etc_overlays(name):
                return os.path.join(ETC_NETNS_DIR, name, *parts[2:]), False
        return path, False

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy a controller file to where a task in the namespace sees out_path."""
        target, inside = self._task_path(out_path)
        if not inside:
            super().put_file(in_path, target)
            return
        display.vvv(f'PUT {in_path} TO {target} (inside the namespace)', host=self._play_context.remote_addr)
        with open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb') as source:
            data = source.read()
        rc, dummy, stderr = self.exec_command(f'cat > {shlex.quote(target)}', in_data=data, sudoable=False)
        if rc != 0:
            raise AnsibleError(f'netns connection: failed to write {target}: {to_text(stderr).strip()}')

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Copy the file a task in the namespace sees at in_path to the controller."""
        source, inside = self._task_path(in_path)
        if not inside:
            # local's fetch_file is its put_file, which must not map the controller's out_path
            LocalConnection.put_file(self, source, out_path)
            return
        display.vvv(f'FETCH {source} TO {out_path} (inside the namespace)', host=self._play_context.remote_addr)
        rc, stdout, stderr = self.exec_command(f'cat -- {shlex.quote(source)}', sudoable=False)
        if rc != 0:
            raise AnsibleError(f'netns connection: failed to read {source}: {to_text(stderr).strip()}')
        with open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb') as target:
            target.write(stdout)
