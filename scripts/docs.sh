#!/usr/bin/env bash
# The collection's docs site (HTML), built with antsibull-docs and Sphinx, offline:
#   1. antsibull-docs sphinx-init --use-current: conf.py, antsibull-docs.cfg and index template in DIR;
#   2. antsibull-docs collection: the RST of every module, plugin and role of cnm.network (--fail-on-error);
#   3. sphinx-build -W --keep-going: the HTML in DIR/build/html, every Sphinx warning an error;
#   4. antsibull-docs lint-collection-docs --plugin-docs: semantic markup (O(), M(), P() ...) must name options and
#      plugins that exist, in this collection and in ansible.builtin, and no other collection.
# The collection documented is the one ansible finds (ANSIBLE_COLLECTIONS_PATH; default: this checkout, through
# the link scripts/setup.sh makes in .venv/collections). scripts/test.sh's build stage runs this on the installed
# tarball. Nothing is downloaded: the links to ansible-core's docsite (return values, configuration, environment
# variables, ansible.builtin plugins) resolve through an intersphinx inventory made here from the installed
# ansible-core instead of the one on the web.
# Usage: bash scripts/docs.sh [DIR]    (default DIR: .docs-site in the checkout; remade on every run)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
COLLECTION=cnm.network
MARK=.cnm-docs-site  # DIR is removed before a build only if it holds this file (made by an earlier build)

say() { printf 'docs: %s\n' "$*"; }

for tool in antsibull-docs sphinx-build ansible-doc; do
    if [ ! -x "$VENV/bin/$tool" ]; then
        say "ERROR: .venv has no $tool: run bash scripts/setup.sh (requirements-dev.txt)" >&2
        exit 1
    fi
done
# antsibull-docs runs ansible, ansible-doc and ansible-galaxy from PATH.
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$VENV/collections}"

dir="${1:-$ROOT/.docs-site}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
if [ -e "$dir" ]; then
    if [ ! -e "$dir/$MARK" ] && [ -n "$(ls -A "$dir")" ]; then
        say "ERROR: $dir exists and was not made by scripts/docs.sh: not removing it" >&2
        exit 1
    fi
    rm -rf "$dir"
fi
# antsibull-docs writes only into directories that no one else can write to.
mkdir -p "$(dirname "$dir")"
mkdir -m 700 "$dir"
: >"$dir/$MARK"

coll_dir=""
IFS=: read -r -a coll_paths <<<"$ANSIBLE_COLLECTIONS_PATH"
for p in "${coll_paths[@]}"; do
    if [ -d "$p/ansible_collections/cnm/network" ]; then
        coll_dir="$p/ansible_collections/cnm/network"
        break
    fi
done
if [ -z "$coll_dir" ]; then
    say "ERROR: no $COLLECTION in ANSIBLE_COLLECTIONS_PATH ($ANSIBLE_COLLECTIONS_PATH)" >&2
    exit 1
fi
say "documenting $coll_dir into $dir"

antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir "$dir" \
    --project "$COLLECTION" --copyright "$COLLECTION contributors" --title "$COLLECTION" "$COLLECTION" >/dev/null

# ansible-core's docsite for intersphinx, from the installed ansible-core: the labels antsibull-docs' pages link
# to, the environment variables of ansible-core's configuration (config/base.yml, as antsibull-docs reads them) and
# the ansible.builtin plugins. Sphinx fails on a reference to anything else, as it would with the web's inventory.
"$VENV/bin/python" -I - "$dir/ansible_devel.inv" <<'EOF'
import pathlib
import sys
import zlib

import ansible
import yaml

core = pathlib.Path(ansible.__file__).parent
lines = [
    "common_return_values std:label -1 reference_appendices/common_return_values.html#common-return-values"
    " Return Values",
    "ansible_configuration_settings std:label -1 reference_appendices/config.html#ansible-configuration-settings"
    " Ansible Configuration Settings",
]
config = yaml.safe_load((core / "config" / "base.yml").read_text())
envvars = {"ANSIBLE_CONFIG"} | {env["name"] for entry in config.values() for env in entry.get("env") or []}
lines += [f"{name} std:envvar 1 reference_appendices/config.html#envvar-{name} -" for name in sorted(envvars)]
plugins = {("module", p.stem) for p in (core / "modules").glob("*.py")}
for kind in (core / "plugins").iterdir():
    # Filters and tests are documented in YAML files, one per name; the other types in their Python files.
    pattern = "*.yml" if kind.name in ("filter", "test") else "*.py"
    plugins |= {(kind.name, p.stem) for p in kind.glob(pattern)}
for kind, name in sorted(plugins):
    if name.startswith("_") or kind in ("action", "doc_fragments", "terminal"):
        continue
    lines.append(
        f"ansible_collections.ansible.builtin.{name}_{kind} std:label -1 collections/ansible/builtin/{name}_{kind}.html"
        f"#ansible-collections-ansible-builtin-{name}-{kind} ansible.builtin.{name} {kind}"
    )
header = "# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
header += "# The remainder of this file is compressed using zlib.\n"
pathlib.Path(sys.argv[1]).write_bytes(header.encode() + zlib.compress("\n".join(lines).encode() + b"\n"))
EOF
# Later assignments in conf.py win: only that inventory, no other (python, jinja2) and nothing fetched.
cat >>"$dir/conf.py" <<'EOF'

# scripts/docs.sh: offline; ansible-core's docsite from an inventory made from the installed ansible-core
# (the path is relative to the source directory, rst/).
intersphinx_mapping = {
    'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/', '../ansible_devel.inv'),
}
EOF

# The lint runs beside the build (both mostly wait on ansible-doc and Python: two cores halve the time).
# rstcheck is skipped: the Sphinx build fails on any RST error anyway.
antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck --validate-collection-refs dependent \
    --disallow-unknown-collection-refs --check-extra-docs-refs "$coll_dir" >"$dir/lint.log" 2>&1 &
lint_pid=$!
# shellcheck disable=SC2064  # the pid is known now
trap "kill $lint_pid 2>/dev/null || true" EXIT

build_rc=0
mkdir -p "$dir/rst"
chmod og-w "$dir/rst"  # sphinx-init made it; antsibull-docs writes only where no one else can
antsibull-docs --config-file "$dir/antsibull-docs.cfg" collection --use-current --squash-hierarchy \
    --fail-on-error --cleanup everything --dest-dir "$dir/rst" "$COLLECTION" >/dev/null || build_rc=$?
if [ "$build_rc" -eq 0 ]; then
    sphinx-build -M html "$dir/rst" "$dir/build" -c "$dir" -W --keep-going -q || build_rc=$?
fi

lint_rc=0
wait "$lint_pid" || lint_rc=$?
trap - EXIT
cat "$dir/lint.log"
if [ "$lint_rc" -ne 0 ]; then say "FAILED: antsibull-docs lint-collection-docs (exit $lint_rc)" >&2; fi
if [ "$build_rc" -ne 0 ]; then say "FAILED: the docs site's build (exit $build_rc)" >&2; fi
if [ "$lint_rc" -ne 0 ] || [ "$build_rc" -ne 0 ]; then exit 1; fi
say "site: $dir/build/html/index.html ($(find "$dir/build/html" -name '*.html' | wc -l) pages)"
