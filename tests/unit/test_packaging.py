"""Packaging: requirements, bindep, the execution environment, galaxy.yml and the changelog agree.

- bindep.txt (profile ``node``) and the cnm_prepare role name the same packages, and no Python library is
  required of a managed node (requirements.txt is empty; no plugin imports one);
- ``execution-environment.yml`` makes a build context (ansible-builder, no container runtime) from
  which the collection installs offline the way its Containerfile does, and ansible-builder's
  introspection finds the collection's requirements in it;
- the collection tarball keeps local state out (``build_ignore``) and the EE copies everything else
  the tarball holds that a controller needs;
- released changelog fragments are not edited afterwards (their names are recorded in
  changelogs/changelog.yaml and antsibull-changelog ignores them from then on), and galaxy.yml's
  version is the next release while anything unreleased exists.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
CHANGELOG = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
CHANGELOG_CONFIG = yaml.safe_load((REPO / "changelogs" / "config.yaml").read_text())
PREPARE_DEFAULTS = yaml.safe_load((REPO / "roles" / "cnm_prepare" / "defaults" / "main.yml").read_text())
EE = yaml.safe_load((REPO / "execution-environment.yml").read_text())

# bindep's platform profiles of a few distributions of each OS family the role knows.
PLATFORMS = {
    "Debian": [
        ["platform:debian", "platform:dpkg", "platform:debian-12"],
        ["platform:ubuntu", "platform:dpkg", "platform:ubuntu-24.04"],
    ],
    "RedHat": [
        ["platform:fedora", "platform:redhat", "platform:rpm"],
        ["platform:rhel", "platform:redhat", "platform:rpm", "platform:rhel-9"],
        ["platform:centos", "platform:redhat", "platform:rpm"],
        ["platform:rocky", "platform:redhat", "platform:rpm"],
    ],
    "Suse": [["platform:opensuse", "platform:suse", "platform:rpm"]],
    "Alpine": [["platform:alpine", "platform:apk"]],
    "Archlinux": [["platform:arch", "platform:pacman"]],
}
# Top-level entries of the collection tarball that an execution environment does not need.
DEV_ONLY = {
    "tests",
    "bench",
    "scripts",
    "molecule",
    "guestlab",
    "pyproject.toml",
    "requirements-dev.txt",
    "execution-environment.yml",
    "ansible.cfg",
    ".ansible-lint",
    ".gitignore",
    ".git-blame-ignore-revs",
    ".ci",
}
# Local state that must never reach the tarball (planted in the copy that is built).
LOCAL_STATE = [
    ".venv/lib/x.py",
    ".venv-2.16/bin/python",
    ".lab/cnmlab.yml",
    ".ansible/collections/x",
    ".pytest_cache/v",
    ".ruff_cache/x",
    "bench/results/x.json",
    "tests/output/junit.xml",
    "guestlab/cache/rootfs.raw",
    ".guestlab/state",
    "context/Containerfile",
    "plugins/modules/__pycache__/x.cpython-312.pyc",
    "cnm-network-0.0.1.tar.gz",
    "collections/x",
]


def requirement_lines(path: Path) -> list:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def bindep_rules():
    from bindep.depends import Depends

    return Depends((REPO / "bindep.txt").read_text())


def packages(depends, profiles) -> list:
    return sorted(rule[0] for rule in depends.active_rules(profiles))


def version_key(version: str) -> tuple:
    return tuple(int(part) for part in version.split("."))


# --- requirements, bindep and the role --------------------------------------------------------


def test_requirements_dev_repeats_every_collection_requirement():
    dev = requirement_lines(REPO / "requirements-dev.txt")
    assert [line for line in requirement_lines(REPO / "requirements.txt") if line not in dev] == []


def test_meta_execution_environment_names_the_requirement_files():
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta["version"] == 1
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    for name in meta["dependencies"].values():
        assert (REPO / name).is_file()


def test_no_python_library_is_required_of_a_managed_node():
    """The modules speak netlink with their own clients: nothing to install with pip, no import of pyroute2."""
    assert requirement_lines(REPO / "requirements.txt") == []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "pyroute2" not in imported, path


@pytest.mark.parametrize("family", sorted(PLATFORMS))
def test_bindep_node_profile_lists_what_cnm_prepare_installs(family):
    depends = bindep_rules()
    tools = PREPARE_DEFAULTS["cnm_prepare_packages"][family]
    for platform in PLATFORMS[family]:
        assert packages(depends, platform + ["node"]) == sorted(tools), platform


@pytest.mark.parametrize("family", sorted(PLATFORMS))
def test_bindep_default_profile_is_the_controller_s_nsenter_only(family):
    """ansible-builder installs the default profile into an execution environment: no managed-node package."""
    depends = bindep_rules()
    for platform in PLATFORMS[family]:
        expected = ["util-linux-misc"] if family == "Alpine" else ["util-linux"]
        assert packages(depends, platform + ["default"]) == expected
        assert packages(depends, platform + ["epel"]) == expected  # ansible-builder's EPEL pass adds nothing
        assert packages(depends, platform + ["compile"]) == expected  # nothing to compile


# --- the execution environment ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ee_context(tmp_path_factory) -> Path:
    context = tmp_path_factory.mktemp("ee") / "context"
    subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", str(REPO / "execution-environment.yml"), "-c", str(context)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return context


def isolated_ansible_env(tmp: Path, collections: Path) -> dict:
    config = tmp / "ansible.cfg"
    config.write_text("")
    return dict(os.environ, ANSIBLE_CONFIG=str(config), ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1")


def test_ee_definition_is_version_3_on_a_public_base_with_a_supported_ansible_core(ee_context):
    assert EE["version"] == 3
    containerfile = (ee_context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="docker.io/redhat/ubi9:latest"' in containerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    requires = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    assert requires == ">=2.16.0" and EE["dependencies"]["ansible_core"]["package_pip"] == "ansible-core>=2.19,<2.22"
    assert (
        EE["dependencies"]["python_interpreter"]["python_path"] == "/usr/bin/python3.12"
    )  # ansible-core 2.19+ needs >= 3.11


def test_requires_ansible_is_the_oldest_ansible_core_the_compat_stage_runs():
    """The collection claims no older ansible-core than scripts/test.sh's compat stage proves (and runs no newer)."""
    requires = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    stage = (REPO / "scripts" / "test.sh").read_text().split("\nstage_compat() {\n", 1)[1].split("\n}\n", 1)[0]
    oldest = re.search(r"^    local oldest=(\d+\.\d+) ", stage, re.M).group(1)
    assert requires == ">=%s.0" % oldest
    assert '"ansible-core~=$oldest.0"' in stage and 'venv="$ROOT/.venv-$oldest"' in stage


def test_ee_context_installs_this_collection_offline_and_ansible_builder_finds_its_requirements(ee_context, tmp_path):
    build = ee_context / "_build"
    installed = tmp_path / "collections"
    env = isolated_ansible_env(tmp_path, installed)
    # The Containerfile's galaxy stage: WORKDIR /build, then this command.
    subprocess.run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-r",
            "requirements.yml",
            "--collections-path",
            str(installed),
        ],
        cwd=build,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    root = installed / "ansible_collections" / "cnm" / "network"
    manifest = json.loads((root / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("cnm", "network", GALAXY["version"])
    assert {p.name for p in (root / "plugins" / "modules").glob("*.py")} == {
        p.name for p in (REPO / "plugins" / "modules").glob("*.py")
    }
    assert sorted(p.name for p in (root / "roles").iterdir()) == sorted(
        p.name for p in (REPO / "roles").iterdir() if p.is_dir()
    )

    # The builder stage: introspect.py over the installed collections, plus the EE's own bindep lines.
    out = subprocess.run(
        [
            sys.executable,
            str(build / "scripts" / "introspect.py"),
            "introspect",
            str(installed),
            "--user-bindep",
            str(build / "bindep.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = yaml.safe_load(out)
    assert [line.split("#")[0].strip() for line in found["python"]] == requirement_lines(REPO / "requirements.txt")
    system = [line.split("  #")[0].strip() for line in found["system"]]
    assert system[: len(requirement_lines(REPO / "bindep.txt"))] == requirement_lines(REPO / "bindep.txt")
    assert "openssh-clients [platform:rpm]" in system

    listed = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "module", "-l", "cnm.network", "-j"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(json.loads(listed)) == sorted(
        "cnm.network." + p.stem for p in (REPO / "plugins" / "modules").glob("cnm_*.py")
    )


# --- galaxy.yml and the tarball ---------------------------------------------------------------


def copy_checkout(dest: Path) -> None:
    """The checkout as a clone plus work in progress has it: tracked and untracked files that git does not ignore."""
    if shutil.which("git") and (REPO / ".git").exists():
        files = subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
        ).stdout
        for name in filter(None, files.decode().split("\0")):
            source = REPO / name
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    else:
        shutil.copytree(
            REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".venv*", ".lab", ".git", "__pycache__")
        )


@pytest.fixture(scope="module")
def tarball_names(tmp_path_factory) -> list:
    work = tmp_path_factory.mktemp("build")
    src, out = work / "src", work / "dist"
    copy_checkout(src)
    for name in LOCAL_STATE:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("local state\n")
    out.mkdir()
    env = isolated_ansible_env(work, work / "none")
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(src)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    (tarball,) = out.glob("cnm-network-*.tar.gz")
    assert tarball.name == "cnm-network-%s.tar.gz" % GALAXY["version"]
    with tarfile.open(tarball) as archive:
        return archive.getnames()


def test_build_ignore_keeps_local_state_out_of_the_tarball(tarball_names):
    assert [name for name in LOCAL_STATE if name in tarball_names] == []
    assert not [name for name in tarball_names if "__pycache__" in name or name.endswith(".pyc")]
    for wanted in (
        "galaxy.yml",
        "README.md",
        "meta/runtime.yml",
        "meta/execution-environment.yml",
        "requirements.txt",
        "bindep.txt",
        "changelogs/changelog.yaml",
        "roles/cnm_prepare/meta/argument_specs.yml",
    ):
        assert wanted in tarball_names or (wanted == "galaxy.yml" and "MANIFEST.json" in tarball_names), wanted


def test_ee_copies_everything_the_collection_holds_but_development_files(tarball_names):
    top = {name.split("/")[0] for name in tarball_names} - {"MANIFEST.json", "FILES.json"}
    copied = {Path(item["src"]).parts[0] for item in EE["additional_build_files"]}
    assert sorted(top - copied - DEV_ONLY) == [], (
        "add these to execution-environment.yml's additional_build_files, or to DEV_ONLY here"
    )
    assert sorted(copied - top - {"galaxy.yml"}) == []
    assert all(item["dest"].startswith("cnm_network") for item in EE["additional_build_files"])


def test_galaxy_metadata():
    assert (GALAXY["namespace"], GALAXY["name"]) == ("cnm", "network")
    assert re.fullmatch(r"\d+\.\d+\.\d+", GALAXY["version"])
    assert GALAXY["dependencies"] == {}  # Galaxy is not reachable from the machines that build and test this
    tags = GALAXY["tags"]
    assert len(tags) <= 20 and len(set(tags)) == len(tags)
    assert all(re.fullmatch(r"[a-z0-9_]{1,64}", tag) for tag in tags)  # Galaxy's tag rule
    for key in ("repository", "documentation", "issues", "homepage"):  # optional; never a placeholder
        assert key not in GALAXY or re.match(r"https://(?!example\.)", GALAXY[key]), key
    assert GALAXY["license"] == ["GPL-3.0-or-later"]


def test_the_license_the_headers_name_is_in_the_tarball(tarball_names):
    assert "COPYING" in tarball_names
    text = (REPO / "COPYING").read_text()
    assert text.split()[:7] == ["GNU", "GENERAL", "PUBLIC", "LICENSE", "Version", "3,", "29"]


# --- the changelog ----------------------------------------------------------------------------


def fragment_entries(path: Path) -> dict:
    sections = {name for name, _title in CHANGELOG_CONFIG["sections"]}
    data = yaml.safe_load(path.read_text()) or {}
    return {section: entries for section, entries in data.items() if section in sections}


def squash(text: str) -> str:
    return " ".join(text.split())


def test_changelog_config_keeps_released_fragments_and_ignores_them():
    assert CHANGELOG_CONFIG["keep_fragments"] is True
    assert CHANGELOG_CONFIG.get("prevent_known_fragments", CHANGELOG_CONFIG["keep_fragments"]) is True


def test_released_fragments_are_not_edited_afterwards():
    """antsibull-changelog never reads a released fragment again: a change to one would silently get lost."""
    edited = []
    for version, release in (CHANGELOG.get("releases") or {}).items():
        changes = release.get("changes", {})
        for name in release.get("fragments", []):
            path = REPO / "changelogs" / "fragments" / name
            if not path.exists():
                continue
            for section, entries in fragment_entries(path).items():
                released = {squash(entry) for entry in changes.get(section, [])}
                edited += [
                    "%s (released in %s): %s" % (name, version, entry[:60])
                    for entry in entries
                    if squash(entry) not in released
                ]
    assert edited == [], "put new changes in a new fragment file; released ones are frozen"


def test_galaxy_version_is_the_next_release_while_anything_is_unreleased():
    releases = sorted((CHANGELOG.get("releases") or {}), key=version_key)
    if not releases:
        return
    latest = releases[-1]
    released_fragments = {name for release in CHANGELOG["releases"].values() for name in release.get("fragments", [])}
    unreleased = sorted(
        p.name for p in (REPO / "changelogs" / "fragments").glob("*.y*ml") if p.name not in released_fragments
    )
    assert version_key(GALAXY["version"]) >= version_key(latest)
    if unreleased:
        assert version_key(GALAXY["version"]) > version_key(latest), (
            "galaxy.yml still says %s, released already; unreleased: %s" % (latest, unreleased)
        )
