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
  - Each command is run as C(nsenter --net=/run/netns/NAME -- /bin/sh -c CMD). Only the network
    namespace changes; the mount namespace, filesystem, users and processes are the controller's.
    This is on purpose and differs from C(ip netns exec), which also gives the command a private
    mount namespace, so that a namespace a module creates with C(ip netns add) inside it would
    disappear when the module ends.
  - Files are copied locally (the filesystem is shared), as the P(ansible.builtin.local#connection)
    connection does.
  - Because C(/sys) still shows the controller's own network namespace, modules run this way must read
    interfaces through netlink or C(/proc/sys/net), not through C(/sys/class/net).
author:
  - cnm.network contributors (!UNKNOWN)
version_added: 0.1.0
notes:
  - Privilege escalation (C(become)) is not supported; run Ansible as root, which entering a network
    namespace needs anyway. A task that asks for C(become) fails.
  - The remote user is ignored; commands run as the user that runs Ansible.
  - The namespace must exist before the first task runs; a missing one fails the host as unreachable.
  - Set C(ansible_python_interpreter) for these hosts (for example to C({{ ansible_playbook_python }})),
    as interpreter discovery runs on the controller's filesystem anyway.
requirements:
  - nsenter (util-linux) on the controller
  - Linux, and the rights to enter the namespace (root)
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
"""

import os
import shlex
import shutil
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

display = Display()

NETNS_RUN_DIR = '/run/netns'


class Connection(LocalConnection):
    """Local connection whose commands run inside a named network namespace."""

    transport = 'cnm.network.netns'
    has_pipelining = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._nsenter: str | None = None

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
            if self._nsenter is None:
                raise AnsibleConnectionFailure('netns connection: nsenter (util-linux) was not found in PATH')
            path = self._check_netns()
            display.vvv(f'ESTABLISH NETNS CONNECTION INTO {path}', host=self._play_context.remote_addr)
        return super()._connect()

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        """Run cmd with /bin/sh inside the network namespace."""
        if not self._connected:
            self._connect()
        # Checked on every command: a play may delete the namespace between tasks.
        path = self._check_netns()
        wrapped = ' '.join(
            [
                shlex.quote(self._nsenter or 'nsenter'),
                shlex.quote(f'--net={path}'),
                '--',
                '/bin/sh',
                '-c',
                shlex.quote(to_text(cmd, errors='surrogate_or_strict')),
            ]
        )
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
