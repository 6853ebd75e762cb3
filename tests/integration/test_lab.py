# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab (playbooks/lab_up.yml, lab_down.yml) and the cnm.network.netns connection, on the real kernel.

Needs root, ip and nsenter. Every lab gets a unique name prefix and is deleted by its fixture,
even when a test fails. The playbook binary is $ANSIBLE_PLAYBOOK, else the repo's
.venv/bin/ansible-playbook, else the one next to this Python.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NETNS_DIR = Path('/run/netns')

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which('ip') or not shutil.which('nsenter'),
    reason='needs root, ip and nsenter',
)


def ansible_playbook() -> str:
    if os.environ.get('ANSIBLE_PLAYBOOK'):
        return os.environ['ANSIBLE_PLAYBOOK']
    for candidate in (REPO / '.venv' / 'bin' / 'ansible-playbook', Path(sys.executable).parent / 'ansible-playbook'):
        if candidate.exists():
            return str(candidate)
    return 'ansible-playbook'


def ansible_env(tmp: Path) -> dict[str, str]:
    """Environment for ansible-playbook run from the repo root (so ansible.cfg applies)."""
    env = dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    if not (REPO / '.venv' / 'collections' / 'ansible_collections' / 'cnm' / 'network').exists():
        # The checkout has no collection link (scripts/setup.sh makes it): make a private one.
        link = tmp / 'collections' / 'ansible_collections' / 'cnm' / 'network'
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(REPO)
        env['ANSIBLE_COLLECTIONS_PATH'] = str(tmp / 'collections')
    return env


def run_playbook(playbook: Path, inventory: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ansible_playbook(), '-i', inventory, str(playbook), *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def recap_changed(result: subprocess.CompletedProcess) -> dict[str, int]:
    """changed= per host from the PLAY RECAP."""
    return {
        host: int(changed) for host, changed in re.findall(r'^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)', result.stdout, re.M)
    }


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f'rc={result.returncode}\n{result.stdout}\n{result.stderr}'


def lab_namespaces(prefix: str) -> list[str]:
    listing = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True, check=True).stdout
    return sorted(
        line.split()[0] for line in listing.splitlines() if line.split() and line.split()[0].startswith(prefix + '-')
    )


def machine_links() -> dict[str, str]:
    """The machine's own links: name -> flags."""
    listing = subprocess.run(['ip', '-brief', 'link'], capture_output=True, text=True, check=True).stdout
    return {fields[0].split('@')[0]: fields[-1] for fields in map(str.split, listing.splitlines()) if fields}


def assert_machine_links_untouched(before: dict[str, str]) -> None:
    # Compared loosely (other test runs may add links of their own), but none of the lab's
    # link names may show up on the machine and no link of the machine may change.
    after = machine_links()
    assert {name: after.get(name) for name in before} == before
    assert not {name for name in after.keys() - before.keys() if re.fullmatch(r'ulbr|lan|h\d+', name)}


def read_ip_forward(netns: str | None = None) -> str:
    enter = ['nsenter', f'--net={NETNS_DIR / netns}'] if netns else []
    return subprocess.run(
        [*enter, 'cat', '/proc/sys/net/ipv4/ip_forward'], capture_output=True, text=True, check=True
    ).stdout.strip()


def delete_namespaces(prefix: str) -> None:
    for name in lab_namespaces(prefix):
        subprocess.run(['ip', 'netns', 'delete', name], capture_output=True, check=False)


class Lab:
    """One lab: its unique prefix, its inventory file, and what the machine looked like before it."""

    def __init__(self, tmp: Path, size: int) -> None:
        self.prefix = 't' + secrets.token_hex(3)[:5]
        self.size = size
        self.inventory = tmp / f'{self.prefix}.yml'
        self.env = ansible_env(tmp)
        self.machine_links = machine_links()
        self.machine_ip_forward = read_ip_forward()
        self.first_up: subprocess.CompletedProcess | None = None

    def _vars(self) -> list[str]:
        return [
            '-e',
            f'lab_prefix={self.prefix}',
            '-e',
            f'lab_size={self.size}',
            '-e',
            f'lab_inventory={self.inventory}',
        ]

    def up(self) -> subprocess.CompletedProcess:
        return run_playbook(REPO / 'playbooks' / 'lab_up.yml', 'localhost,', self.env, *self._vars())

    def down(self) -> subprocess.CompletedProcess:
        return run_playbook(REPO / 'playbooks' / 'lab_down.yml', 'localhost,', self.env, *self._vars())


@pytest.fixture
def new_lab(tmp_path):
    """A lab not yet built (size 1); whatever it leaves is deleted afterwards."""
    lab = Lab(tmp_path, size=1)
    yield lab
    delete_namespaces(lab.prefix)


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    """A lab of two hosts, built once for the module and always deleted."""
    lab = Lab(tmp_path_factory.mktemp('lab'), size=2)
    try:
        lab.first_up = lab.up()
        assert_ok(lab.first_up)
        yield lab
    finally:
        lab.down()
        delete_namespaces(lab.prefix)


def test_lab_up_builds_the_namespaces_and_inventory(lab):
    assert recap_changed(lab.first_up)['localhost'] > 0
    assert lab_namespaces(lab.prefix) == sorted(f'{lab.prefix}-{n}' for n in ('ul', 'lan', 'h1', 'h2'))
    inventory = lab.inventory.read_text()
    assert f'ansible_netns_name: {lab.prefix}-h2' in inventory
    assert 'ansible_python_interpreter: "{{ ansible_playbook_python }}"' in inventory


def test_lab_up_again_changes_nothing(lab):
    result = lab.up()
    assert_ok(result)
    assert recap_changed(result) == {'localhost': 0}


def test_lab_hosts_reach_each_other_and_the_lan_over_the_underlay(lab):
    for source, target in (('h1', '192.0.2.12'), ('h2', '192.0.2.11'), ('lan', '192.0.2.11'), ('h1', '192.0.2.2')):
        ping = subprocess.run(
            ['nsenter', f'--net={NETNS_DIR / f"{lab.prefix}-{source}"}', 'ping', '-c1', '-W1', target],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ping.returncode == 0, f'{source} -> {target}: {ping.stdout}{ping.stderr}'


def test_lab_hosts_forward_ipv4_but_the_machine_is_untouched(lab):
    assert read_ip_forward(f'{lab.prefix}-h1') == '1'
    assert read_ip_forward() == lab.machine_ip_forward
    assert_machine_links_untouched(lab.machine_links)


def test_netns_connection_runs_tasks_inside_the_lab_host(lab, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    playbook = tmp_path / 'show_addresses.yml'
    playbook.write_text(
        '- name: Show the addresses each lab host sees\n'
        '  hosts: cnm_lab\n'
        '  gather_facts: false\n'
        '  tasks:\n'
        '    - name: List addresses\n'
        '      ansible.builtin.command: ip -brief address show\n'
        '      register: addresses\n'
        '      changed_when: false\n'
        '    - name: Save them (a file transfer through the connection)\n'
        '      ansible.builtin.copy:\n'
        f'        dest: "{out}/{{{{ inventory_hostname }}}}.txt"\n'
        '        content: "{{ addresses.stdout }}"\n'
        '        mode: "0644"\n'
    )
    result = run_playbook(playbook, str(lab.inventory), lab.env)
    assert_ok(result)

    h1 = (out / 'h1.txt').read_text()
    h2 = (out / 'h2.txt').read_text()
    assert '192.0.2.11/24' in h1 and '192.0.2.12' not in h1
    assert '192.0.2.12/24' in h2
    assert sorted(line.split()[0].split('@')[0] for line in h1.splitlines()) == ['eth0', 'lo']
    machine = subprocess.run(['ip', '-brief', 'address', 'show'], capture_output=True, text=True, check=True).stdout
    machine_addresses = {a for line in machine.splitlines() for a in line.split()[2:]} - {'127.0.0.1/8', '::1/128'}
    assert machine_addresses.isdisjoint(h1.split())


def test_netns_connection_fails_clearly_on_a_missing_namespace(lab, tmp_path):
    inventory = tmp_path / 'missing.yml'
    inventory.write_text(
        'all:\n'
        '  hosts:\n'
        '    ghost:\n'
        '      ansible_connection: cnm.network.netns\n'
        f'      ansible_netns_name: {lab.prefix}-missing\n'
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    playbook = tmp_path / 'ping.yml'
    playbook.write_text(
        '- name: Ping\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n'
    )
    # JSON results: the YAML of ansible-core < 2.19 wraps the message and doubles its quotes.
    result = run_playbook(playbook, str(inventory), dict(lab.env, ANSIBLE_CALLBACK_RESULT_FORMAT='json'))
    assert result.returncode != 0
    assert f"network namespace '{lab.prefix}-missing' does not exist" in result.stdout + result.stderr
    assert 'unreachable=1' in result.stdout


def test_netns_connection_refuses_become(lab, tmp_path):
    playbook = tmp_path / 'become.yml'
    playbook.write_text(
        '- name: Become\n  hosts: h1\n  gather_facts: false\n  become: true\n  tasks:\n'
        '    - name: Ping\n      ansible.builtin.ping:\n'
    )
    result = run_playbook(playbook, str(lab.inventory), lab.env)
    assert result.returncode != 0
    assert 'become is not supported' in result.stdout + result.stderr


def test_lab_down_removes_the_lab_and_nothing_else(new_lab):
    assert_ok(new_lab.up())
    assert new_lab.inventory.exists()

    result = new_lab.down()
    assert_ok(result)
    assert lab_namespaces(new_lab.prefix) == []
    assert not new_lab.inventory.exists()
    assert_machine_links_untouched(new_lab.machine_links)

    again = new_lab.down()
    assert_ok(again)
    assert recap_changed(again) == {'localhost': 0}


def group_task(module: str, defaults: str, args: str = '', extra: str = '') -> str:
    """A task of ``module`` whose options ``defaults`` (a flow mapping) come only from the action group."""
    return (
        f'    - name: {module} with options from the group\n'
        f'      cnm.network.{module}:{args or " {}"}\n'
        f'      module_defaults:\n'
        f'        group/cnm.network.cnm: {defaults}\n'
        f'      register: r_{module}\n{extra}'
    )


def test_module_defaults_of_the_action_group_reach_every_module(lab, tmp_path):
    """meta/runtime.yml's action group: module_defaults for group/cnm.network.cnm set options of every module. Each
    task gets a required option (or a refused value) only from the group: the task shows the value arrived."""
    absent = '\n        state: absent'
    tasks = ''.join(
        group_task(module, '{name: cnmgroup0}', absent)
        for module in ('cnm_bridge', 'cnm_overlay', 'cnm_macvlan', 'cnm_ipvlan')
    )
    sandbox = f'\n        netns: {lab.prefix}-h1-none' + absent
    tasks += group_task('cnm_endpoint', '{network: cnmgroup0}', sandbox)
    tasks += group_task('cnm_port_publish', '{network: cnmgroup0}', sandbox)
    tasks += group_task('cnm_info', '{gather: [cnmgroup0]}', '', '      ignore_errors: true\n')
    playbook = tmp_path / 'group.yml'
    playbook.write_text(
        '- name: Options from module_defaults of the action group\n'
        '  hosts: h1\n'
        '  gather_facts: false\n'
        '  tasks:\n' + tasks + '    - name: Without the group, a module misses its required option\n'
        '      cnm.network.cnm_bridge:\n'
        '        state: absent\n'
        '      register: r_none\n'
        '      ignore_errors: true\n'
        '    - name: Every module ran with the group\'s values\n'
        '      ansible.builtin.assert:\n'
        '        that:\n'
        '          - r_cnm_endpoint.endpoint.network == "cnmgroup0"\n'
        '          - \'r_none is failed and "missing required arguments: name" in r_none.msg\'\n'
        '          - r_cnm_info is failed and "cnmgroup0" in r_cnm_info.msg and "gather" in r_cnm_info.msg\n'
    )
    result = run_playbook(playbook, str(lab.inventory), lab.env)
    assert_ok(result)
    assert 'ignored=2' in ' '.join(result.stdout.split())  # cnm_info's refusal and the task without the group
