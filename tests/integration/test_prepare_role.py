# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cnm.network.cnm_prepare role through ansible-playbook, on this machine (connection local).

It only reads the machine's packages: the tests that let it use the package manager run only when
iproute2, nftables and aardvark-dns are installed already (scripts/setup.sh installs them), so the package
tasks find nothing to do.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_lab import ansible_env, assert_ok, recap_changed, run_playbook

SYSTEM_PYTHON = "/usr/bin/python3"
PLAYBOOK = "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: cnm.network.cnm_prepare\n"


def deb_installed(*packages: str) -> bool:
    if not shutil.which("dpkg-query"):
        return False
    for package in packages:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package], capture_output=True, text=True, check=False
        )
        if status.stdout != "installed":
            return False
    return True


needs_packages = pytest.mark.skipif(
    not deb_installed("aardvark-dns", "iproute2", "nftables"),
    reason="needs Debian's aardvark-dns, iproute2 and nftables installed (scripts/setup.sh), so the role changes no "
    "package",
)


@pytest.fixture
def prepare(tmp_path: Path):
    """Run the role on localhost with the given interpreter and role variables (extra vars)."""
    playbook = tmp_path / "prepare.yml"
    playbook.write_text(PLAYBOOK)
    env = ansible_env(tmp_path)

    def run(python: str, *extra: str, **role_vars) -> subprocess.CompletedProcess:
        args = ["-c", "local", "-e", "ansible_python_interpreter=" + python]
        # never into this machine's /etc: see the restore test
        role_vars.setdefault("cnm_prepare_restore_at_boot", False)
        role_vars.setdefault("cnm_prepare_resolver_service", False)
        for name, value in role_vars.items():
            args += ["-e", '{"%s": %s}' % (name, json.dumps(value))]
        return run_playbook(playbook, "localhost,", env, *args, *extra)

    return run


@pytest.fixture
def bare_venv(tmp_path: Path) -> str:
    """A virtual environment with nothing but the standard library (the system site-packages hidden); its python."""
    where = tmp_path / "bare"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(where)], check=True, capture_output=True)
    return str(where / "bin" / "python")


@needs_packages
def test_a_prepared_debian_host_changes_nothing_in_check_mode_and_for_real(prepare):
    """iproute2 and nftables present: the package tasks find them, nothing changes."""
    for extra in (("--check",), ()):
        result = prepare(SYSTEM_PYTHON, *extra)
        assert_ok(result)
        assert recap_changed(result) == {"localhost": 0}


@needs_packages
def test_a_bare_python_is_all_the_role_asks_for(prepare, bare_venv):
    """The modules need no Python library: the role installs none and changes nothing for a bare interpreter."""
    result = prepare(bare_venv)
    assert_ok(result)
    assert recap_changed(result) == {"localhost": 0}
    assert "pyroute2" not in result.stdout


@needs_packages
def test_the_restore_at_boot_is_installed_enabled_and_runs(prepare, tmp_path, host, monkeypatch):
    """The program, the core beside it, its enabled unit and the resolver's (naming the aardvark-dns found) land
    under a root of the test's own; the program as installed restores a lab host's network after a simulated reboot
    (test_restore.py has the full reboot)."""
    root = tmp_path / "root"
    options = dict(
        cnm_prepare_restore_at_boot=True,
        cnm_prepare_resolver_service=True,
        cnm_prepare_restore_root=str(root),
        cnm_prepare_install_packages=False,
    )
    check = prepare(SYSTEM_PYTHON, "--check", **options)
    assert_ok(check)
    assert not root.exists() or not any(root.rglob("*.service"))
    first, again = prepare(SYSTEM_PYTHON, **options), prepare(SYSTEM_PYTHON, **options)
    assert_ok(first)
    assert_ok(again)
    assert recap_changed(first)["localhost"] >= 4 and recap_changed(again) == {"localhost": 0}
    unit = (root / "etc/systemd/system/cnm-network-restore.service").read_text()
    assert "\nExecStart=/usr/local/sbin/cnm-network-restore\n" in unit and "\nWantedBy=multi-user.target\n" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/cnm-network-restore.service"
    assert wants.is_symlink() and wants.resolve() == (root / "etc/systemd/system/cnm-network-restore.service").resolve()
    resolver = (root / "etc/systemd/system/cnm-dns.service").read_text()
    assert "\nExecStart=/usr/lib/podman/aardvark-dns --config /run/cnm-network/dns -p 53 run\n" in resolver
    assert "\nPIDFile=/run/cnm-network/dns/aardvark.pid\n" in resolver and "\nRestart=on-failure\n" in resolver
    assert (root / "etc/systemd/system/multi-user.target.wants/cnm-dns.service").is_symlink()
    program = root / "usr/local/sbin/cnm-network-restore"
    assert program.read_text().startswith("#!/usr/bin/python3\n")
    lib = root / "usr/local/lib/cnm-network"
    assert (lib / "ansible_collections/cnm/network/plugins/module_utils/restore.py").is_file()

    monkeypatch.setenv("CNM_PERSISTENT_STORE", str(tmp_path / "state.json"))
    host.ok("cnm_bridge", name="web", subnet="172.31.8.0/24")
    shutil.rmtree(host.store_path())
    subprocess.run(f"ip netns del {host.name} && ip netns add {host.name}", shell=True, check=True)
    proc = subprocess.run(
        ["nsenter", "--net=/run/netns/" + host.name, "--", str(program)],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(lib),
            "CNM_PERSISTENT_STORE": str(tmp_path / "state.json"),
        },
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert json.loads(proc.stdout)["changed"] is True
    assert "br-web" in host.links()


TWO_PLAYS = "".join(
    "- name: Play %d\n  hosts: all\n  gather_facts: false\n  roles:\n    - role: cnm.network.cnm_prepare\n" % n
    for n in (1, 2)
)
PROBES = ("Gather the facts this role needs", "Install iproute2, nftables and aardvark-dns")


def probed(result: subprocess.CompletedProcess, host: str) -> list:
    """Per play of a run (default stdout callback, skipped hosts shown): the probing tasks that ran on ``host``."""
    assert_ok(result)
    plays = []
    for play in re.split(r"^PLAY \[", result.stdout, flags=re.M)[1:]:
        ran = []
        for task in re.split(r"^TASK \[", play, flags=re.M)[1:]:
            name = task.split("]", 1)[0].split(" : ", 1)[-1]
            if name in PROBES and re.search(r"^(ok|changed): \[%s\]" % re.escape(host), task, re.M):
                ran.append(name)
        plays.append(sorted(ran))
    return plays


@needs_packages
def test_the_probing_happens_once_per_run_and_a_rerun_with_a_fact_cache_skips_it(tmp_path):
    """Two plays applying the role: only the first gathers facts and asks the package manager, also in check mode.
    With a persistent fact cache a rerun does neither, until --flush-cache; nothing changes anywhere."""
    playbook = tmp_path / "twice.yml"
    playbook.write_text(TWO_PLAYS)
    env = dict(
        ansible_env(tmp_path),
        ANSIBLE_DISPLAY_OK_HOSTS="true",
        ANSIBLE_CACHE_PLUGIN="ansible.builtin.jsonfile",
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"),
    )
    args = ["-c", "local", "-e", "ansible_python_interpreter=" + SYSTEM_PYTHON]
    args += ["-e", '{"cnm_prepare_restore_at_boot": false, "cnm_prepare_resolver_service": false}']

    def play(*extra: str) -> subprocess.CompletedProcess:
        return run_playbook(playbook, "localhost,", env, *args, *extra)

    both = sorted(PROBES)
    first = play()
    assert probed(first, "localhost") == [both, []] and recap_changed(first) == {"localhost": 0}
    rerun = play()
    assert probed(rerun, "localhost") == [[], []] and recap_changed(rerun) == {"localhost": 0}
    check = play("--check", "--flush-cache")
    assert probed(check, "localhost") == [both, []] and recap_changed(check) == {"localhost": 0}
    after_check = play()  # the check found the packages present: facts and packages are cached again
    assert probed(after_check, "localhost") == [[], []] and recap_changed(after_check) == {"localhost": 0}


def test_a_lab_host_without_packages_needs_no_probing(tmp_path, host):
    """A namespace of this machine (connection cnm.network.netns) with cnm_prepare_install_packages=false: the role
    runs no module on it at all, and changes nothing."""
    playbook = tmp_path / "lab.yml"
    playbook.write_text(TWO_PLAYS)
    env = dict(ansible_env(tmp_path), ANSIBLE_DISPLAY_OK_HOSTS="true")
    result = run_playbook(
        playbook,
        "h1,",
        env,
        "-e",
        "ansible_connection=cnm.network.netns",
        "-e",
        "ansible_netns_name=" + host.name,
        "-e",
        "ansible_python_interpreter=" + sys.executable,
        "-e",
        '{"cnm_prepare_install_packages": false}',
    )
    assert probed(result, "h1") == [[], []] and recap_changed(result) == {"h1": 0}
