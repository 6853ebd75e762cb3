# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cnm.network.cnm_prepare role through ansible-playbook, on this machine (connection local).

It only reads the machine's packages: the tests that let it use the package manager run only when
iproute2, nftables and python3-pyroute2 are installed already (scripts/setup.sh installs them), so
the package tasks find nothing to do. The pip fallback installs into a throwaway virtual
environment under the test's tmp_path (pyroute2 from the package index).
"""

from __future__ import annotations

import json
import shutil
import subprocess
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


def imports_pyroute2(python: str) -> bool:
    return subprocess.run([python, "-c", "import pyroute2"], capture_output=True, check=False).returncode == 0


needs_packages = pytest.mark.skipif(
    not deb_installed("iproute2", "nftables", "python3-pyroute2") or not imports_pyroute2(SYSTEM_PYTHON),
    reason="needs Debian's iproute2, nftables and python3-pyroute2 installed (scripts/setup.sh), "
    "so the role changes no package",
)


@pytest.fixture
def prepare(tmp_path: Path):
    """Run the role on localhost with the given interpreter and role variables (extra vars)."""
    playbook = tmp_path / "prepare.yml"
    playbook.write_text(PLAYBOOK)
    env = ansible_env(tmp_path)

    def run(python: str, *extra: str, **role_vars) -> subprocess.CompletedProcess:
        args = ["-c", "local", "-e", "ansible_python_interpreter=" + python]
        role_vars.setdefault(
            "cnm_prepare_restore_at_boot", False
        )  # never into this machine's /etc: see the restore test
        for name, value in role_vars.items():
            args += ["-e", '{"%s": %s}' % (name, json.dumps(value))]
        return run_playbook(playbook, "localhost,", env, *args, *extra)

    return run


def make_venv(where: Path, *options: str) -> str:
    """A virtual environment without pyroute2 (the system site-packages hidden); its python."""
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", *options, str(where)], check=True, capture_output=True)
    python = str(where / "bin" / "python")
    assert not imports_pyroute2(python)
    return python


@pytest.fixture
def bare_venv(tmp_path: Path) -> str:
    return make_venv(tmp_path / "bare", "--without-pip")


@pytest.fixture
def pip_venv(tmp_path: Path) -> str:
    return make_venv(tmp_path / "with-pip")


def one_line(result: subprocess.CompletedProcess) -> str:
    return " ".join(result.stdout.split())  # the callback folds long messages


@needs_packages
def test_a_prepared_debian_host_changes_nothing_in_check_mode_and_for_real(prepare):
    """iproute2, nftables and python3-pyroute2 present: the package tasks find them, nothing changes."""
    for extra in (("--check",), ()):
        result = prepare(SYSTEM_PYTHON, *extra)
        assert_ok(result)
        assert recap_changed(result) == {"localhost": 0}
        assert "Install pyroute2 from PyPI" in result.stdout and "skipping: [localhost]" in result.stdout


@needs_packages
def test_a_python_without_pyroute2_uses_the_system_one_like_the_modules(prepare, bare_venv):
    """The modules respawn under /usr/bin/python3 (Debian's pyroute2): the role accepts that and installs nothing."""
    result = prepare(bare_venv)
    assert_ok(result)
    assert recap_changed(result) == {"localhost": 0}
    assert not imports_pyroute2(bare_venv)


def test_without_pyroute2_and_without_pip_fallback_it_fails_naming_the_option(prepare, bare_venv):
    result = prepare(bare_venv, cnm_prepare_install_packages=False, cnm_prepare_pyroute2_pythons=[])
    assert result.returncode != 0
    message = one_line(result)
    assert "pyroute2 0.7.2 or newer is missing on localhost (%s: missing)" % bare_venv in message
    assert "Package installation is off (cnm_prepare_install_packages: false)" in message
    assert "set cnm_prepare_pyroute2_pip: true to install pyroute2>=0.7.2 from PyPI into %s" % bare_venv in message
    assert not imports_pyroute2(bare_venv)


@needs_packages
def test_an_old_pyroute2_counts_as_missing_and_a_failed_package_install_is_reported(prepare):
    """The first interpreter that imports pyroute2 is the one the modules use: too old there means missing."""
    result = prepare(
        SYSTEM_PYTHON,
        cnm_prepare_pyroute2_pythons=[],
        cnm_prepare_pyroute2_min_version="99.0",
        cnm_prepare_pyroute2_package={"Debian": "python3-cnm-no-such-package"},
    )
    assert result.returncode != 0
    message = one_line(result)
    assert "pyroute2 99.0 or newer is missing on localhost (/usr/bin/python3: old " in message
    assert "Installing the distribution's package python3-cnm-no-such-package failed: No package matching" in message


def test_pip_fallback_installs_into_the_task_python_checks_first_and_is_idempotent(prepare, pip_venv):
    options = dict(cnm_prepare_install_packages=False, cnm_prepare_pyroute2_pythons=[], cnm_prepare_pyroute2_pip=True)

    check = prepare(pip_venv, "--check", **options)
    assert_ok(check)  # the install that check mode skipped would bring pyroute2: no failure
    assert recap_changed(check) == {"localhost": 1}
    assert not imports_pyroute2(pip_venv)

    first = prepare(pip_venv, **options)
    assert_ok(first)
    assert recap_changed(first) == {"localhost": 1}
    assert imports_pyroute2(pip_venv)

    again = prepare(pip_venv, **options)
    assert_ok(again)
    assert recap_changed(again) == {"localhost": 0}


@needs_packages
def test_the_restore_at_boot_is_installed_enabled_and_runs(prepare, tmp_path, host, monkeypatch):
    """The program, the core beside it and the enabled unit land under a root of the test's own; the program as
    installed restores a lab host's network after a simulated reboot (test_restore.py has the full reboot)."""
    root = tmp_path / "root"
    options = dict(
        cnm_prepare_restore_at_boot=True, cnm_prepare_restore_root=str(root), cnm_prepare_install_packages=False
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
