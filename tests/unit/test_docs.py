"""ansible-doc is complete for every plugin and role of the collection.

Everything is found at run time: the plugin files under plugins/ and the role directories under
roles/ give the parameters, and ``ansible-doc -t TYPE -l cnm.network -j`` for every documentable
plugin type must list each of them (a plugin whose documentation does not parse is left out of
that list by ansible-doc). Then ``ansible-doc -t TYPE -j NAME`` gives each one's documentation:

- DOCUMENTATION with a short description, a description, an author and ``version_added``;
  EXAMPLES; RETURN for modules, filters, tests and lookups (each value described and typed;
  ``returned`` for modules); modules support check mode and declare their diff mode support;
- every option and sub-option described and typed (``elements`` for lists);
- for roles, every entry point described, every option described and typed, and every variable of
  ``defaults/main.yml`` documented (with the same default when it is not templated);
- ``version_added`` tells the truth: the release that first listed the plugin in
  changelogs/changelog.yaml, or, for a plugin no release has listed yet, galaxy.yml's version
  (the next release).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")
COLLECTION = "cnm.network"
GALAXY_VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]

# Plugin directories that hold one plugin per .py file, and the type ansible-doc knows them by.
ONE_PER_FILE = {
    "modules": "module",
    "connection": "connection",
    "lookup": "lookup",
    "inventory": "inventory",
    "callback": "callback",
    "become": "become",
    "cache": "cache",
    "cliconf": "cliconf",
    "httpapi": "httpapi",
    "netconf": "netconf",
    "shell": "shell",
    "strategy": "strategy",
    "vars": "vars",
}
# Filter and test plugins: several per .py file, each documented by a YAML file of its name.
YAML_DOCUMENTED = {"filter": "filter", "test": "test"}
NEEDS_RETURN = {"module", "filter", "test", "lookup"}
TYPES = {
    "str",
    "string",
    "int",
    "integer",
    "float",
    "bool",
    "boolean",
    "list",
    "dict",
    "path",
    "raw",
    "jsonarg",
    "json",
    "bytes",
    "bits",
    "tmppath",
    "pathspec",
    "pathlist",
    "tmp",
    "temppath",
    "tmpdir",
}


def documentable_types() -> list:
    from ansible import constants

    return sorted(set(constants.DOCUMENTABLE_PLUGINS) | {"role"})


def discovered() -> list:
    """(type, short name) of every plugin file and role directory in the checkout."""
    found = []
    for directory, plugin_type in ONE_PER_FILE.items():
        for path in sorted((REPO / "plugins" / directory).glob("*.py")):
            if not path.name.startswith("_"):
                found.append((plugin_type, path.stem))
    for directory, plugin_type in YAML_DOCUMENTED.items():
        for path in sorted((REPO / "plugins" / directory).glob("*.y*ml")):
            found.append((plugin_type, path.stem))
    for path in sorted((REPO / "roles").iterdir()) if (REPO / "roles").is_dir() else []:
        if path.is_dir():
            found.append(("role", path.name))
    return found


@cache
def environment() -> tuple:
    """An ansible-doc environment that sees this checkout as cnm.network and nothing else of ours."""
    root = Path(tempfile.mkdtemp(prefix="cnm-doc-collections-"))
    atexit.register(shutil.rmtree, root, True)
    (root / "ansible_collections" / "cnm").mkdir(parents=True)
    (root / "ansible_collections" / "cnm" / "network").symlink_to(REPO)
    (root / "ansible.cfg").write_text("")
    env = dict(
        os.environ, ANSIBLE_COLLECTIONS_PATH=str(root), ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1"
    )
    return str(root), tuple(sorted(env.items()))


def ansible_doc(*args: str) -> subprocess.CompletedProcess:
    root, env = environment()
    return subprocess.run(
        [ANSIBLE_DOC, *args], cwd=root, env=dict(env), capture_output=True, text=True, timeout=300, check=False
    )


@cache
def listing(plugin_type: str) -> dict:
    result = ansible_doc("-t", plugin_type, "-l", COLLECTION, "-j")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout or "{}")


@cache
def docs(plugin_type: str) -> dict:
    """Documentation of every listed plugin of the type: one ansible-doc call, or one per plugin when that fails."""
    names = sorted(listing(plugin_type))
    if not names:
        return {}
    result = ansible_doc("-t", plugin_type, "-j", *names)
    if result.returncode == 0:
        return json.loads(result.stdout)
    found = {}
    for name in names:
        one = ansible_doc("-t", plugin_type, "-j", name)
        found[name] = json.loads(one.stdout)[name] if one.returncode == 0 else {"error": one.stderr.strip()}
    return found


@cache
def released() -> dict:
    """(type, short name) -> the version whose release first listed it, from changelogs/changelog.yaml."""
    changelog = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
    first = {}
    releases = changelog.get("releases") or {}
    for version in sorted(releases, key=lambda v: tuple(int(p) for p in v.split("."))):
        release = releases[version]
        for item in release.get("modules", []):
            first.setdefault(("module", item["name"]), version)
        for plugin_type, items in (release.get("plugins") or {}).items():
            for item in items:
                first.setdefault((plugin_type, item["name"]), version)
        for object_type, items in (release.get("objects") or {}).items():
            for item in items:
                first.setdefault((object_type, item["name"]), version)
    return first


def option_problems(options: dict, where: str) -> list:
    problems = []
    for name, spec in (options or {}).items():
        path = "%s.%s" % (where, name)
        if not spec.get("description"):
            problems.append("%s: no description" % path)
        if spec.get("type") not in TYPES:
            problems.append("%s: type %r" % (path, spec.get("type")))
        if spec.get("type") == "list" and not spec.get("elements"):
            problems.append("%s: a list without elements" % path)
        problems += option_problems(spec.get("suboptions") or spec.get("options"), path)
    return problems


def return_problems(values: dict, where: str, need_returned: bool) -> list:
    problems = []
    for name, spec in (values or {}).items():
        path = "%s.%s" % (where, name)
        if not spec.get("description"):
            problems.append("%s: no description" % path)
        if spec.get("type") not in TYPES:
            problems.append("%s: type %r" % (path, spec.get("type")))
        if need_returned and not spec.get("returned"):
            problems.append("%s: no 'returned'" % path)
        problems += return_problems(spec.get("contains"), path, False)
    return problems


def test_every_plugin_type_is_listed_and_nothing_is_undocumented():
    plugins = discovered()
    assert ("module", "cnm_bridge") in plugins and ("role", "cnm_prepare") in plugins
    for plugin_type in documentable_types():
        undocumented = [
            name
            for name, description in listing(plugin_type).items()
            if description == "UNDOCUMENTED" or (isinstance(description, dict) and not description.get("entry_points"))
        ]
        assert undocumented == [], "%s plugins without documentation: %s" % (plugin_type, undocumented)
        # Nothing listed that the checkout does not have (a stale copy of the collection would show here).
        extra = sorted(
            set(listing(plugin_type)) - {"%s.%s" % (COLLECTION, name) for kind, name in plugins if kind == plugin_type}
        )
        if plugin_type not in YAML_DOCUMENTED:
            assert extra == [], extra


@pytest.mark.parametrize(("plugin_type", "name"), discovered(), ids=lambda v: v)
def test_ansible_doc_is_complete(plugin_type, name):
    fqcn = "%s.%s" % (COLLECTION, name)
    assert fqcn in listing(plugin_type), (
        "ansible-doc -t %s -l %s does not list %s: its documentation does not parse%s"
        % (
            plugin_type,
            COLLECTION,
            name,
            " (or roles/%s/meta/argument_specs.yml is missing)" % name if plugin_type == "role" else "",
        )
    )
    data = docs(plugin_type)[fqcn]
    assert "error" not in data, data.get("error")
    if plugin_type == "role":
        check_role(name, data)
        return

    doc, problems = data["doc"], []
    for key in ("short_description", "description", "author", "version_added"):
        if not doc.get(key):
            problems.append("DOCUMENTATION has no %s" % key)
    if not (data.get("examples") or "").strip():
        problems.append("no EXAMPLES")
    if plugin_type in NEEDS_RETURN and not data.get("return"):
        problems.append("no RETURN")
    problems += option_problems(doc.get("options"), "options")
    problems += return_problems(data.get("return"), "RETURN", need_returned=plugin_type == "module")
    if plugin_type == "module":
        attributes = doc.get("attributes") or {}
        if (attributes.get("check_mode") or {}).get("support") not in ("full", "partial"):
            problems.append("attributes.check_mode.support is not full or partial (every module supports check mode)")
        if (attributes.get("diff_mode") or {}).get("support") not in ("full", "partial", "none", "N/A"):
            problems.append("attributes.diff_mode is not declared")
    assert problems == [], "%s %s: %s" % (plugin_type, fqcn, problems)
    check_version_added(plugin_type, name, str(doc["version_added"]))


def check_version_added(plugin_type: str, name: str, version_added: str) -> None:
    first = released().get((plugin_type, name))
    if first is not None:
        assert version_added == first, "%s %s was first released in %s but says version_added: %s" % (
            plugin_type,
            name,
            first,
            version_added,
        )
    else:
        assert version_added == GALAXY_VERSION, (
            "%s %s is in no release yet (changelogs/changelog.yaml): version_added must be the next release, "
            "galaxy.yml's %s, not %s" % (plugin_type, name, GALAXY_VERSION, version_added)
        )


def check_role(name: str, data: dict) -> None:
    entry_points = data["entry_points"]
    problems = []
    for entry, spec in entry_points.items():
        for key in ("short_description", "description"):
            if not spec.get(key):
                problems.append("entry point %s has no %s" % (entry, key))
        problems += option_problems(spec.get("options"), "%s.options" % entry)
    defaults_file = REPO / "roles" / name / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    options = (entry_points.get("main") or {}).get("options") or {}
    for variable, value in defaults.items():
        if variable not in options:
            problems.append("defaults/main.yml's %s is not documented in meta/argument_specs.yml" % variable)
        elif (
            "default" in options[variable]
            and not (isinstance(value, str) and "{{" in value)
            and options[variable]["default"] != value
        ):
            problems.append(
                "%s: default %r in argument_specs, %r in defaults/main.yml"
                % (variable, options[variable]["default"], value)
            )
    assert problems == [], "role %s.%s: %s" % (COLLECTION, name, problems)
