"""Unit tests: the core's pure logic (ipam, model, plan, store), no kernel, no root.

The core is imported as ``ansible_collections.cnm.network``, as Ansible imports it: a temporary
directory holds ansible_collections/cnm/network -> this checkout, put first on sys.path for the
session and removed at its end.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collections_root() -> str:
    root = tempfile.mkdtemp(prefix="cnm-unit-collections-")
    os.makedirs(os.path.join(root, "ansible_collections", "cnm"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "cnm", "network"))
    return root


COLLECTIONS = _collections_root()
sys.path.insert(0, COLLECTIONS)

# Import the core now, with Python's own import system. pytest-ansible installs Ansible's collection
# finder after the first conftests are loaded, and that finder refuses to import a module whose
# package lies under more than one collections root ("this loader requires exactly one path to
# search"): with tests/integration/conftest.py in the same session (its own root, which it imports
# from at once) and .venv/collections from pyproject.toml, the core has three.
for _name in sorted(os.listdir(os.path.join(REPO, "plugins", "module_utils"))):
    if _name.endswith(".py") and not _name.startswith("_"):
        importlib.import_module("ansible_collections.cnm.network.plugins.module_utils." + _name[:-3])


def pytest_sessionfinish(session, exitstatus):
    """Remove the temporary collections directory once the session is over (also after --collect-only)."""
    if COLLECTIONS in sys.path:
        sys.path.remove(COLLECTIONS)
    shutil.rmtree(COLLECTIONS, ignore_errors=True)


def load_plugin(kind: str, name: str):
    """A plugin file of this collection (``kind``: its folder under plugins/), imported under its collection name.

    conftest.py imports module_utils before pytest-ansible installs Ansible's collection finder, which refuses
    ansible_collections.* imports once the package spans several roots; plugins/filter and plugins/modules are not
    among those, so the plugin is loaded from its file (its own module_utils imports are loaded already).
    """
    import importlib.util

    full = "ansible_collections.cnm.network.plugins.%s.%s" % (kind, name)
    if full not in sys.modules:
        spec = importlib.util.spec_from_file_location(full, os.path.join(REPO, "plugins", kind, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[full] = module
    return sys.modules[full]


def load_filter(name: str):
    """A filter plugin file of this collection (see load_plugin)."""
    return load_plugin("filter", name)
