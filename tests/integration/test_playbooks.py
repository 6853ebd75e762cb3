"""The main job (playbooks/demo.yml) on a real lab through ansible-playbook and the netns connection.

Covers what only a real playbook run shows: check mode on a fresh host, idempotence of the whole
scenario, removal, and the respawn under the distribution's Python and pyroute2 (0.7.2 on Debian 12)
when the task's interpreter has no pyroute2.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from test_lab import REPO, ansible_env, assert_ok, lab_namespaces, recap_changed, run_playbook

PLAYBOOKS = REPO / "playbooks"


@pytest.fixture
def lab(tmp_path: Path):
    prefix = "tp" + secrets.token_hex(3)
    inventory = tmp_path / "lab.yml"
    env = ansible_env(tmp_path)
    try:
        assert_ok(run_playbook(PLAYBOOKS / "lab_up.yml", "localhost,", env, "-e", "lab_prefix=" + prefix, "-e", "lab_size=1",
                               "-e", "lab_inventory=" + str(inventory)))
        yield prefix, str(inventory), env
    finally:
        run_playbook(PLAYBOOKS / "lab_down.yml", "localhost,", env, "-e", "lab_prefix=" + prefix, "-e", "lab_inventory=" + str(inventory))
        for name in lab_namespaces(prefix):
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_demo_playbook_checks_converges_and_is_idempotent(lab):
    prefix, inventory, env = lab
    check = run_playbook(PLAYBOOKS / "demo.yml", inventory, env, "--check", "--diff")
    assert_ok(check)
    assert recap_changed(check) == {"h1": 5}
    assert lab_namespaces(prefix) == sorted([prefix + "-h1", prefix + "-lan", prefix + "-ul"])  # check mode made nothing

    first = run_playbook(PLAYBOOKS / "demo.yml", inventory, env)
    assert_ok(first)
    assert recap_changed(first) == {"h1": 5}
    output = " ".join(first.stdout.split())  # the callback folds long lines
    assert "-> 172.30.0.3: reachable (expected reachable)" in output and "-> 172.30.0.2: unreachable (expected unreachable)" in output
    assert "(published web1:80): HTTP 200" in output
    again = run_playbook(PLAYBOOKS / "demo.yml", inventory, env)
    assert_ok(again)
    assert recap_changed(again) == {"h1": 0}

    removed = run_playbook(PLAYBOOKS / "demo.yml", inventory, env, "-e", "demo_state=absent")
    assert_ok(removed)
    assert lab_namespaces(prefix) == sorted([prefix + "-h1", prefix + "-lan", prefix + "-ul"])
    links = subprocess.run(["ip", "-n", prefix + "-h1", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert sorted(line.split()[0].split("@")[0] for line in links.splitlines()) == ["eth0", "lo"]


def test_module_respawns_under_the_system_python_with_pyroute2(lab, tmp_path: Path):
    """A bare interpreter without pyroute2 hands the module to /usr/bin/python3 and its python3-pyroute2."""
    if subprocess.run(["/usr/bin/python3", "-c", "import pyroute2"], capture_output=True, check=False).returncode != 0:
        pytest.skip("the system Python has no pyroute2 (Debian: apt-get install python3-pyroute2)")
    prefix, inventory, env = lab
    bare = tmp_path / "bare"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    assert subprocess.run([str(bare / "bin" / "python"), "-c", "import pyroute2"], capture_output=True, check=False).returncode != 0
    playbook = tmp_path / "respawn.yml"
    playbook.write_text(
        "- hosts: cnm_lab\n  gather_facts: false\n  tasks:\n"
        "    - cnm.network.cnm_bridge: {name: rs, subnet: 10.77.0.0/24}\n"
        "    - cnm.network.cnm_endpoint: {network: rs, netns: %s-h1-rs1, delete_netns: true}\n"
        "    - cnm.network.cnm_endpoint: {network: rs, netns: %s-h1-rs1, delete_netns: true, state: absent}\n"
        "    - cnm.network.cnm_bridge: {name: rs, state: absent}\n" % (prefix, prefix)
    )
    interpreter = "ansible_python_interpreter=" + str(bare / "bin" / "python")
    first = run_playbook(playbook, inventory, env, "-e", interpreter)
    assert_ok(first)
    assert recap_changed(first) == {"h1": 4}
