# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cnm.network.netns connection gives tasks the namespace's own view, on the real kernel and ansible-playbook.

A host namespace of the test's own (eth0 with a known MAC and address, a default route through a peer namespace)
is the inventory's only host. Its facts must be its own, not the machine's (whose eth0 has another MAC, and which has
ifb0), and the machine's mount table must not change: the connection mounts the namespace's /sys in a mount
namespace of each command. Once more with every mount shared (as systemd makes them), ansible-playbook running in a
mount namespace of the test's own: there a mount on /sys would propagate back unless the connection made /sys a
slave first. Names a task gives namespaces under /run/netns must still reach the machine, and file transfers must
see what the task sees. Needs root, ip, nsenter and unshare; every namespace and file is removed, even on failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from test_lab import ansible_env, ansible_playbook, assert_ok, run_playbook

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ('ip', 'nsenter', 'unshare')),
    reason='needs root, ip, nsenter and unshare',
)

MAC = '02:cb:00:00:00:11'
ADDRESS, GATEWAY = '198.51.100.11', '198.51.100.1'
MOUNTINFO = Path('/proc/self/mountinfo')
ETC_NETNS = Path('/etc/netns')


def ip(*args: str) -> None:
    subprocess.run(['ip', *args], check=True, capture_output=True, text=True)


def netns_list() -> list[str]:
    listing = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


class Host:
    """A namespace that plays the lab host h1 (eth0 to a peer namespace, default route through it) and its
    inventory."""

    def __init__(self, tmp: Path) -> None:
        self.prefix = 'cnmnf' + secrets.token_hex(2)
        self.name, self.peer = f'{self.prefix}-h1', f'{self.prefix}-gw'
        self.tmp = tmp
        self.env = ansible_env(tmp)
        self.inventory = tmp / 'inventory.yml'
        self.inventory.write_text(
            'all:\n  hosts:\n    h1:\n'
            '      ansible_connection: cnm.network.netns\n'
            f'      ansible_netns_name: {self.name}\n'
            '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        )
        self.etc = ETC_NETNS / self.name
        self.made_etc_netns = False
        self.mountinfo = ('', '')

    def up(self) -> None:
        ip('netns', 'add', self.name)
        ip('netns', 'add', self.peer)
        pair = ['eth0', 'netns', self.name, 'address', MAC, 'type', 'veth', 'peer', 'eth0', 'netns', self.peer]
        ip('link', 'add', *pair)
        for ns, address in ((self.name, ADDRESS), (self.peer, GATEWAY)):
            ip('-n', ns, 'address', 'add', f'{address}/24', 'dev', 'eth0')
            ip('-n', ns, 'link', 'set', 'eth0', 'up')
            ip('-n', ns, 'link', 'set', 'lo', 'up')
        ip('-n', self.name, 'route', 'add', 'default', 'via', GATEWAY)

    def overlay(self, entry: str, text: str) -> None:
        """/etc/netns/NAME/ENTRY, what ip netns exec (and the connection) mounts over /etc/ENTRY."""
        self.made_etc_netns = self.made_etc_netns or not ETC_NETNS.exists()
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / entry).write_text(text)

    def down(self) -> None:
        for ns in netns_list():
            if ns.startswith(self.prefix + '-'):
                subprocess.run(['ip', 'netns', 'delete', ns], capture_output=True, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)
        if self.made_etc_netns:
            try:
                ETC_NETNS.rmdir()  # only when left empty: other tests' namespaces may have files there now
            except OSError:
                pass

    def play(self, tasks: str, *, gather: bool = False, pipelining: bool = False, shared: bool = False):
        """Run a play of ``tasks`` on h1; with ``shared``, in a mount namespace whose mounts are all shared. Returns
        the result; the mountinfo of the namespace ansible-playbook ran in, before and after, are kept in
        ``mountinfo``."""
        playbook = self.tmp / 'play.yml'
        playbook.write_text(
            '- name: Play on the namespace host\n  hosts: h1\n'
            f'  gather_facts: {str(gather).lower()}\n'
            '  gather_subset: [network]\n'
            '  tasks:\n' + tasks
        )
        env = dict(self.env, ANSIBLE_PIPELINING=str(pipelining))
        before, after = self.tmp / 'mountinfo.before', self.tmp / 'mountinfo.after'
        if not shared:
            before.write_text(MOUNTINFO.read_text())
            result = run_playbook(playbook, str(self.inventory), env)
            after.write_text(MOUNTINFO.read_text())
        else:
            script = (
                'cat /proc/self/mountinfo >"$1"; "$3" -i "$4" "$5"; rc=$?; cat /proc/self/mountinfo >"$2"; exit $rc'
            )
            result = subprocess.run(
                ['unshare', '--mount', '--propagation', 'shared', '--', '/bin/sh', '-c', script, 'sh']
                + [str(before), str(after), ansible_playbook(), str(self.inventory), str(playbook)],
                cwd=Path(__file__).resolve().parents[2],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        self.mountinfo = (before.read_text(), after.read_text())
        return result


@pytest.fixture
def host(tmp_path):
    host = Host(tmp_path)
    try:
        host.up()
        yield host
    finally:
        host.down()


def mounts_that_matter(mountinfo: str, prefix: str) -> list[str]:
    """The mounts the connection could have changed: sysfs anywhere, anything on /sys, /etc or /proc, /run/netns
    itself and the test's own names in it. Others' names in /run/netns come and go with the tests running beside."""
    kept = []
    for line in mountinfo.splitlines():
        point, fstype = line.split()[4], line.split(' - ')[1].split()[0]
        if (
            fstype == 'sysfs'
            or point in ('/', '/run/netns')
            or point.split('/')[1] in ('sys', 'etc', 'proc')
            or point.startswith(f'/run/netns/{prefix}-')
        ):
            kept.append(line)
    return kept


def machine_macs() -> dict[str, str]:
    return {path.name: (path / 'address').read_text().strip() for path in Path('/sys/class/net').iterdir()}


@pytest.mark.parametrize(
    'shared', [False, True], ids=['machine-mounts-pipelining-off', 'all-mounts-shared-pipelining-on']
)
def test_facts_are_the_namespace_own_and_the_mounts_stay(host, shared):
    saved = host.tmp / 'facts.json'
    result = host.play(
        '    - name: Save the facts (a file transfer through the connection)\n'
        '      ansible.builtin.copy:\n'
        f'        dest: {saved}\n'
        '        content: "{{ ansible_facts | to_json }}"\n'
        '        mode: "0600"\n',
        gather=True,
        pipelining=shared,
        shared=shared,
    )
    assert_ok(result)
    before, after = host.mountinfo
    facts = json.loads(saved.read_text())
    machine = machine_macs()
    assert 'ifb0' in machine and machine.get('eth0') != MAC  # the machine's view differs, else nothing is shown

    assert sorted(facts['interfaces']) == ['eth0', 'lo']
    assert facts['eth0']['macaddress'] == MAC
    assert facts['eth0']['ipv4']['address'] == ADDRESS
    assert facts['default_ipv4']['address'] == ADDRESS
    assert facts['default_ipv4']['gateway'] == GATEWAY
    assert facts['default_ipv4']['macaddress'] == MAC
    assert 'ifb0' not in facts and 'ansible_ifb0' not in json.dumps(facts)
    assert machine['eth0'] not in json.dumps(facts)

    assert mounts_that_matter(after, host.prefix) == mounts_that_matter(before, host.prefix)
    assert not [line for line in after.splitlines() if ' - sysfs ' in line and line not in before]


def test_a_namespace_a_task_names_reaches_the_machine_and_later_tasks(host):
    inner = f'{host.prefix}-inner'
    result = host.play(
        f'    - name: Name a namespace\n      ansible.builtin.command: ip netns add {inner}\n'
        f'    - name: A later task enters it\n      ansible.builtin.command: ip netns exec {inner} ip link show lo\n'
    )
    assert_ok(result)
    assert inner in netns_list()
    subprocess.run(['nsenter', f'--net=/run/netns/{inner}', 'true'], check=True)  # a namespace, not an empty file

    result = host.play(f'    - name: Delete it\n      ansible.builtin.command: ip netns delete {inner}\n')
    assert_ok(result)
    assert inner not in netns_list()


def test_file_transfers_see_what_the_task_sees(host):
    host.overlay('hosts', f'{ADDRESS} {host.prefix}-marker\n')
    machine_hosts = Path('/etc/hosts').read_text()
    fetched = host.tmp / 'fetched'
    result = host.play(
        f'    - name: glibc reads the /etc/hosts of the namespace\n'
        f'      ansible.builtin.command: getent hosts {host.prefix}-marker\n'
        '      register: found\n'
        '    - name: Fetch a file of the namespace /sys and its /etc/hosts\n'
        '      ansible.builtin.fetch:\n'
        '        src: "{{ item }}"\n'
        f'        dest: {fetched}/\n'
        '      loop: [/sys/class/net/eth0/address, /etc/hosts]\n'
        '    - name: Both were found\n'
        '      ansible.builtin.assert:\n'
        f'        that: found.stdout.split() == ["{ADDRESS}", "{host.prefix}-marker"]\n'
    )
    assert_ok(result)
    assert (fetched / 'h1' / 'sys' / 'class' / 'net' / 'eth0' / 'address').read_text() == MAC + '\n'
    assert (fetched / 'h1' / 'etc' / 'hosts').read_text() == f'{ADDRESS} {host.prefix}-marker\n'
    assert Path('/etc/hosts').read_text() == machine_hosts
