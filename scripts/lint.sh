#!/usr/bin/env bash
# Static checks, with the tools in .venv:
#   ruff check           plugins/ tests/ bench/   (config: pyproject.toml [tool.ruff])
#   ansible-lint         roles/ playbooks/ molecule/  (config: .ansible-lint, profile production)
#   the shellcheck tool  scripts/*.sh .ci/run     (when it is installed)
# Directories that do not exist yet are skipped. All checks run; the exit status is non-zero
# if any of them failed.
# Usage: bash scripts/lint.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
VENV="$ROOT/.venv"

say() { printf 'lint: %s\n' "$*"; }

if [ ! -x "$VENV/bin/ruff" ] || [ ! -x "$VENV/bin/ansible-lint" ]; then
    say ".venv lacks ruff or ansible-lint; running scripts/setup.sh"
    bash "$ROOT/scripts/setup.sh"
fi
# ansible-lint runs ansible-playbook --syntax-check and warns when its own bin dir is not on PATH.
export PATH="$VENV/bin:$PATH"
# Lint this checkout's collection, never a copy that a tool installed earlier: molecule's
# ansible-compat installs the project collection into ~/.ansible/collections, where an old copy
# would hide new plugins from ansible-lint's syntax check.
export ANSIBLE_COLLECTIONS_PATH="$VENV/collections"
stale="${HOME:-/root}/.ansible/collections/ansible_collections/cnm/network"
if [ -d "$stale" ] && [ ! -L "$stale" ]; then
    say "removing a copy of this collection installed by a tool: $stale"
    rm -rf "$stale"
fi

existing() {  # print the arguments that exist
    local p
    for p in "$@"; do
        if [ -e "$p" ]; then printf '%s\n' "$p"; fi
    done
}

failed=()

mapfile -t py_dirs < <(existing plugins tests bench)
if [ "${#py_dirs[@]}" -gt 0 ]; then
    say "ruff check ${py_dirs[*]}"
    ruff check --no-cache "${py_dirs[@]}" || failed+=(ruff)
else
    say "ruff: nothing to check yet"
fi

# ansible-lint needs YAML to look at; an empty roles/ (or none at all, as in a fresh clone
# before the first role) is not an error.
mapfile -t yaml_dirs < <(for d in roles playbooks molecule; do
    if [ -d "$d" ] && [ -n "$(find "$d" -name '*.yml' -o -name '*.yaml' | head -n1)" ]; then echo "$d"; fi
done)
if [ "${#yaml_dirs[@]}" -gt 0 ]; then
    say "ansible-lint --profile production ${yaml_dirs[*]}"
    ansible-lint --profile production "${yaml_dirs[@]}" || failed+=(ansible-lint)
else
    say "ansible-lint: no roles or playbooks yet"
fi

if command -v shellcheck >/dev/null 2>&1; then
    mapfile -t shell_files < <(existing scripts/*.sh .ci/run)
    if [ "${#shell_files[@]}" -gt 0 ]; then
        say "shellcheck ${shell_files[*]}"
        shellcheck "${shell_files[@]}" || failed+=(shellcheck)
    fi
else
    say "shellcheck not installed (scripts/setup.sh installs it): skipped"
fi

if [ "${#failed[@]}" -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "passed"
